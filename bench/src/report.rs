//! Figures: printed as JSON lines the moment they are measured, then as one table.

use serde_json::json;

/// What a figure should be, if the issue sets a goal for it.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    Exactly(f64),
}

impl Goal {
    fn met(self, value: f64) -> bool {
        match self {
            Goal::AtMost(limit) => value <= limit,
            Goal::AtLeast(floor) => value >= floor,
            Goal::Exactly(target) => value == target,
        }
    }

    fn text(self) -> String {
        match self {
            Goal::AtMost(limit) => format!("<= {}", trim(limit)),
            Goal::AtLeast(floor) => format!(">= {}", trim(floor)),
            Goal::Exactly(target) => format!("= {}", trim(target)),
        }
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub goal: Option<Goal>,
    pub note: Option<String>,
}

#[derive(Default)]
pub struct Report {
    pub figures: Vec<Figure>,
}

impl Report {
    /// Records a figure and prints its JSON line at once.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        goal: Option<Goal>,
    ) {
        self.add_noted(name, value, unit, goal, None);
    }

    pub fn add_noted(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        goal: Option<Goal>,
        note: Option<String>,
    ) {
        let figure = Figure {
            name: name.into(),
            value,
            unit,
            goal,
            note,
        };
        let mut line = json!({
            "name": figure.name,
            "value": round(figure.value),
            "unit": figure.unit,
            "goal": figure.goal.map(Goal::text),
        });
        if let Some(note) = &figure.note {
            line["note"] = json!(note);
        }
        println!("{line}");
        self.figures.push(figure);
    }

    pub fn get(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// The human table: every figure, its goal, and whether it was met.
    pub fn table(&self) -> String {
        let width = self
            .figures
            .iter()
            .map(|f| f.name.len())
            .max()
            .unwrap_or(10)
            .max(6);
        let mut out = format!(
            "{:<width$}  {:>12}  {:<8}  {:<8}  {}\n",
            "figure", "value", "unit", "goal", "status"
        );
        out.push_str(&format!("{}\n", "-".repeat(width + 46)));
        for f in &self.figures {
            let (goal, status) = match f.goal {
                Some(goal) => (
                    goal.text(),
                    if goal.met(f.value) { "met" } else { "MISSED" },
                ),
                None => ("".to_owned(), ""),
            };
            let note = f
                .note
                .as_deref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<width$}  {:>12}  {:<8}  {:<8}  {status}{note}\n",
                f.name,
                display(f.value),
                f.unit,
                goal
            ));
        }
        out
    }

    /// Figures whose goal was missed.
    pub fn missed(&self) -> Vec<&Figure> {
        self.figures
            .iter()
            .filter(|f| f.goal.is_some_and(|g| !g.met(f.value)))
            .collect()
    }
}

fn round(x: f64) -> f64 {
    if x.abs() >= 100.0 {
        (x * 10.0).round() / 10.0
    } else {
        (x * 1000.0).round() / 1000.0
    }
}

fn display(x: f64) -> String {
    if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Median of samples (sorted in place); 0 when there are none.
pub fn median(samples: &mut [f64]) -> f64 {
    percentile(samples, 50.0)
}

/// The `p`th percentile (nearest rank) of samples, sorted in place.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&mut v), 3.0);
        assert_eq!(percentile(&mut v, 100.0), 5.0);
        assert_eq!(percentile(&mut v, 1.0), 1.0);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn goals_read_as_written() {
        assert!(Goal::AtMost(1.1).met(1.1));
        assert!(!Goal::AtMost(1.1).met(1.11));
        assert!(Goal::Exactly(0.0).met(0.0));
        assert!(Goal::AtLeast(5.0).met(5.0) && !Goal::AtLeast(5.0).met(4.99));
        assert_eq!(Goal::AtMost(1.10).text(), "<= 1.1");
        assert_eq!(Goal::AtMost(30.0).text(), "<= 30");
    }
}
