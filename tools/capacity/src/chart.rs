//! `bench/charts/capacity.svg`: the hottest partition's share of its limit against the rate,
//! one line per axis (log scales), the 70% line the model holds the design to, and, with a
//! baseline, the baseline's lines dashed. Drawn as bench/src/charts.rs draws: plotters' SVG
//! backend, text left to the viewer's sans-serif font.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Run;
use crate::rules::HEADROOM;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 520);
const COLORS: [RGBColor; 5] = [
    RGBColor(40, 110, 200),
    RGBColor(200, 60, 60),
    RGBColor(40, 150, 70),
    RGBColor(150, 80, 180),
    RGBColor(220, 140, 20),
];

fn failed(e: impl std::fmt::Display) -> String {
    format!("drawing the capacity chart: {e}")
}

/// Draws `run` (and `baseline`, dashed) to `path`.
pub fn draw(path: &Path, run: &Run, baseline: Option<&Run>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let (x_min, x_max) = (10f64, 1e6f64);
    let (y_min, y_max) = (1e-3f64, 1e3f64);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Hottest DynamoDB partition's share of its limit, by rate (log scales)",
            (FONT, 20),
        )
        .margin(12)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("rate of the axis (per second)")
        .x_label_formatter(&|x| crate::report::thousands(*x))
        .y_desc("hottest partition, share of its limit")
        .y_label_formatter(&|y| crate::report::percent(*y))
        .draw()
        .map_err(failed)?;
    let limit = RGBColor(120, 120, 120);
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x_min, HEADROOM), (x_max, HEADROOM)],
            6,
            4,
            limit.stroke_width(1),
        ))
        .map_err(failed)?
        .label(format!("{}% of the partition's limit", HEADROOM * 100.0))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], limit));
    let clip = |points: &[(f64, f64)]| -> Vec<(f64, f64)> {
        points
            .iter()
            .map(|&(x, y)| (x, y.clamp(y_min, y_max)))
            .filter(|&(x, _)| x >= x_min && x <= x_max)
            .collect()
    };
    for (i, result) in run.axes.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if let Some(old) =
            baseline.and_then(|b| b.axes.iter().find(|r| r.axis.id == result.axis.id))
        {
            let faded = color.mix(0.45);
            chart
                .draw_series(DashedLineSeries::new(
                    clip(&old.curve),
                    5,
                    5,
                    faded.stroke_width(2),
                ))
                .map_err(failed)?;
        }
        let label = format!(
            "{}: {}/s at 70%",
            result
                .axis
                .title
                .split(')')
                .next()
                .map(|s| format!("{s})"))
                .unwrap_or_default(),
            crate::report::thousands(result.max_rate)
        );
        let label = if result.axis.id == "reads" {
            format!(
                "read mix: {}/s at 70%",
                crate::report::thousands(result.max_rate)
            )
        } else {
            label
        };
        chart
            .draw_series(LineSeries::new(clip(&result.curve), color.stroke_width(2)))
            .map_err(failed)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        // Where the axis reaches the 70% line: its largest sustainable rate.
        if (x_min..=x_max).contains(&result.max_rate) {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (result.max_rate, HEADROOM),
                    4,
                    color.filled(),
                )))
                .map_err(failed)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(failed)?;
    root.present().map_err(failed)?;
    Ok(())
}
