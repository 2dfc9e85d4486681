//! A run's results: saved as JSON (`--save`, and read back as `--baseline`), printed as one
//! JSON line per figure (as `bench` prints its figures) and as markdown tables, with a
//! "today" and an "after" column when a baseline is given.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::delete::{DeleteResult, API_GATEWAY_TIMEOUT_S, FUNCTION_TIMEOUT_S};
use crate::model::{AtRate, AxisResult};
use crate::profile::{CrossCheck, Profile};
use crate::rules::HEADROOM;

/// Everything one run measured and modelled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// When and on what: a date, the commit, the table's schema as described.
    pub date: String,
    pub commit: String,
    pub schema: String,
    pub smoke: bool,
    /// Measured requests per class.
    pub requests: usize,
    pub consumers: Vec<String>,
    pub seconds: f64,
    pub profiles: Vec<Profile>,
    pub axes: Vec<AxisResult>,
    pub delete: Option<DeleteResult>,
    pub cross_check: CrossCheck,
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "unbounded".to_owned();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A small quantity with sensible precision: 0.013, 2.5, 340.
pub fn amount(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else if x.abs() >= 100.0 {
        thousands(x)
    } else if x.abs() >= 1.0 {
        format!("{x:.1}").trim_end_matches(".0").to_owned()
    } else {
        format!("{x:.2}")
    }
}

/// A share of a limit: `33%`, `0.02%`, `2,000%`.
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p >= 10.0 {
        format!("{}%", thousands(p))
    } else if p >= 0.1 {
        format!("{p:.1}%")
    } else if p > 0.0 {
        format!("{p:.1e}%")
    } else {
        "0%".to_owned()
    }
}

/// Prints one figure as a JSON line.
fn figure(name: &str, value: f64, unit: &str, goal: Option<String>) {
    let value = if value.is_finite() {
        json!((value * 1000.0).round() / 1000.0)
    } else {
        json!(null)
    };
    println!(
        "{}",
        json!({"name": name, "value": value, "unit": unit, "goal": goal})
    );
}

/// Every figure of `run`, one JSON line each.
pub fn print_figures(run: &Run) {
    for result in &run.axes {
        let axis = &result.axis;
        figure(
            &format!("capacity.{}.max_rate", axis.id),
            result.max_rate,
            "/s",
            axis.goal.map(|g| format!(">= {}", thousands(g))),
        );
        for at in &result.at {
            let prefix = format!("capacity.{}.at_{}", axis.id, at.rate);
            for (resource, hot) in &at.partitions {
                figure(
                    &format!("{prefix}.{resource}.hottest_wcu"),
                    hot.wcu,
                    "WCU/s",
                    None,
                );
                figure(
                    &format!("{prefix}.{resource}.hottest_rcu"),
                    hot.rcu,
                    "RCU/s",
                    None,
                );
                figure(
                    &format!("{prefix}.{resource}.utilisation"),
                    hot.utilisation * 100.0,
                    "%",
                    Some(format!("<= {}", HEADROOM * 100.0)),
                );
            }
            if let Some(key) = &at.redis_key {
                figure(&format!("{prefix}.redis_key.ops"), key.ops, "ops/s", None);
            }
            if let Some(slot) = &at.redis_slot {
                figure(
                    &format!("{prefix}.redis_slot.ecpu"),
                    slot.ecpu,
                    "ECPU/s",
                    None,
                );
            }
            if let Some((_, tx)) = &at.item {
                figure(&format!("{prefix}.item_transactions"), *tx, "/s", None);
            }
        }
    }
    if let Some(d) = &run.delete {
        figure(
            "capacity.d.latency_s",
            d.latency_s,
            "s",
            Some(format!("<= {FUNCTION_TIMEOUT_S}")),
        );
        figure(
            "capacity.d.swept_after_s",
            d.swept_after_s.unwrap_or(f64::NAN),
            "s",
            None,
        );
        figure("capacity.d.floor_s", d.floor_s, "s", None);
        figure("capacity.d.wcu", d.wcu, "WCU", None);
    }
    for profile in &run.profiles {
        let total =
            |f: fn(&crate::profile::RoleLoad) -> f64| profile.roles.iter().map(f).sum::<f64>();
        figure(
            &format!("capacity.profile.{}.wcu", profile.class),
            total(|r| r.wcu),
            "WCU/request",
            None,
        );
        figure(
            &format!("capacity.profile.{}.rcu", profile.class),
            total(|r| r.rcu),
            "RCU/request",
            None,
        );
    }
    figure(
        "capacity.cross_check.disagreed",
        run.cross_check.disagreed as f64,
        "calls",
        Some("= 0".into()),
    );
    figure(
        "capacity.cross_check.agreed",
        run.cross_check.agreed as f64,
        "calls",
        None,
    );
}

/// The largest sustainable rate of an axis, as a cell.
fn max_cell(result: Option<&AxisResult>) -> String {
    match result {
        Some(r) => format!("**{}/s**: {}", thousands(r.max_rate), r.limited_by),
        None => String::new(),
    }
}

/// What one target rate shows, as a cell: the hottest partition of the table and of each
/// index, the hottest Redis key and slot, the busiest item's transactions.
fn at_cell(at: Option<&AtRate>) -> String {
    let Some(at) = at else {
        return String::new();
    };
    let mut lines = Vec::new();
    for (resource, hot) in &at.partitions {
        let name = if resource == "table" {
            "table".to_owned()
        } else {
            format!("index `{resource}`")
        };
        lines.push(format!(
            "{name}: {}, {} WCU/s + {} RCU/s (**{}**)",
            hot.label,
            amount(hot.wcu),
            amount(hot.rcu),
            percent(hot.utilisation)
        ));
    }
    if let Some(key) = &at.redis_key {
        lines.push(format!(
            "Redis key {}: {} ops/s, {} KB/s",
            key.label,
            amount(key.ops),
            amount(key.kb)
        ));
    }
    if let Some(slot) = &at.redis_slot {
        lines.push(format!(
            "Redis slot of {}: {} ECPU/s ({} of a slot)",
            slot.label,
            amount(slot.ecpu),
            percent(slot.utilisation)
        ));
    }
    if let Some((item, tx)) = &at.item {
        lines.push(format!("one item, {item}: {} transactions/s", amount(*tx)));
    }
    lines.join("<br>")
}

/// One markdown table per axis: the largest rate, then each target rate; `today` and `after`
/// columns.
pub fn axis_tables(today: &Run, after: Option<&Run>) -> String {
    let mut out = String::new();
    for result in &today.axes {
        let axis = &result.axis;
        let later = after.and_then(|a| a.axes.iter().find(|r| r.axis.id == axis.id));
        out.push_str(&format!("#### {}\n\n", axis.title));
        out.push_str("| | today | after |\n| --- | --- | --- |\n");
        let goal = axis
            .goal
            .map(|g| format!(" (goal ≥ {}/s)", thousands(g)))
            .unwrap_or_default();
        out.push_str(&format!(
            "| largest rate with every partition ≤ {}%{goal} | {} | {} |\n",
            HEADROOM * 100.0,
            max_cell(Some(result)),
            max_cell(later)
        ));
        let rates: BTreeSet<u64> = result
            .at
            .iter()
            .chain(later.into_iter().flat_map(|l| l.at.iter()))
            .map(|a| a.rate as u64)
            .collect();
        for rate in rates {
            let find = |r: &AxisResult| r.at.iter().find(|a| a.rate as u64 == rate).cloned();
            out.push_str(&format!(
                "| at {}/s | {} | {} |\n",
                thousands(rate as f64),
                at_cell(find(result).as_ref()),
                at_cell(later.and_then(find).as_ref())
            ));
        }
        out.push('\n');
    }
    out
}

/// The summary table: each axis's largest rate, today and after, and the delete axis.
pub fn summary_table(today: &Run, after: Option<&Run>) -> String {
    let mut out = String::from("| axis | today | after | goal |\n| --- | --- | --- | --- |\n");
    for result in &today.axes {
        let axis = &result.axis;
        let later = after.and_then(|a| a.axes.iter().find(|r| r.axis.id == axis.id));
        let short = |r: Option<&AxisResult>| {
            r.map(|r| format!("**{}/s** ({})", thousands(r.max_rate), r.limited_by))
                .unwrap_or_default()
        };
        let issue = axis
            .issue_today
            .as_ref()
            .map(|t| format!(" (the issue: {t} today)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "| {}{issue} | {} | {} | {} |\n",
            axis.title,
            short(Some(result)),
            short(later),
            axis.goal
                .map(|g| format!("≥ {}/s", thousands(g)))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "| (d) `DELETE /posts/{{postId}}` of a post with {} comments | {} | {} | `204` within the usual latency; the sweep finishes on its own |\n",
        today.delete.as_ref().map_or("many".to_owned(), |d| thousands(d.comments as f64)),
        delete_cell(today.delete.as_ref()),
        delete_cell(after.and_then(|a| a.delete.as_ref()))
    ));
    out
}

fn delete_cell(d: Option<&DeleteResult>) -> String {
    let Some(d) = d else {
        return String::new();
    };
    // Swept within the request (a synchronous sweep, as before the upkeep), or after the answer
    // (the upkeep's, from the delete's stream record).
    let in_request = d.swept_after_s.is_some_and(|s| s <= d.latency_s + 0.5);
    let swept = match d.swept_after_s {
        Some(_) if in_request => "every comment gone when it answers".to_owned(),
        Some(s) => format!("the last comment gone {s:.1} s after the request"),
        None => "comments still there at the deadline".to_owned(),
    };
    let floor = format!(
        "on DynamoDB the delete and its sweep need at least **{:.0} s** ({} WCU + {} RCU on one partition, {}, at its limit)",
        d.floor_s,
        thousands(d.hottest.1),
        thousands(d.hottest.2),
        d.hottest.0
    );
    let verdict = match (in_request, d.floor_s) {
        (true, f) if f > API_GATEWAY_TIMEOUT_S => format!(
            "{floor}, inside the request: past the function's {FUNCTION_TIMEOUT_S:.0} s and API Gateway's {API_GATEWAY_TIMEOUT_S:.0} s"
        ),
        (true, f) if f > FUNCTION_TIMEOUT_S => {
            format!("{floor}, inside the request: past the function's {FUNCTION_TIMEOUT_S:.0} s")
        }
        (true, _) => format!("{floor}, inside the request"),
        (false, _) => format!("{floor}, after the answer"),
    };
    let calls: usize = d.calls.values().sum();
    let detail = d
        .calls
        .iter()
        .map(|(op, n)| format!("{} {op}", thousands(*n as f64)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "`{}` after {:.1} s locally, {} DynamoDB calls ({detail}); {swept}; {verdict}",
        d.status,
        d.latency_s,
        thousands(calls as f64)
    )
}

/// Per class, what one request costs, where: this run's profiles.
pub fn profile_table(run: &Run, labels: &BTreeMap<&str, &str>) -> String {
    let mut out = String::from(
        "| class | DynamoDB calls | WCU | RCU | on (per request) | Redis |\n| --- | --- | ---: | ---: | --- | --- |\n",
    );
    for profile in &run.profiles {
        let calls = profile
            .calls
            .iter()
            .map(|(op, n)| format!("{} {op}", amount(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        let wcu: f64 = profile.roles.iter().map(|r| r.wcu).sum();
        let rcu: f64 = profile.roles.iter().map(|r| r.rcu).sum();
        let roles = profile
            .roles
            .iter()
            .map(|r| {
                let units = match (r.wcu > 0.0, r.rcu > 0.0) {
                    (true, true) => format!("{} WCU + {} RCU", amount(r.wcu), amount(r.rcu)),
                    (true, false) => format!("{} WCU", amount(r.wcu)),
                    _ => format!("{} RCU", amount(r.rcu)),
                };
                let resource = if r.resource == "table" {
                    String::new()
                } else {
                    format!("{} ", r.resource)
                };
                format!("{resource}`{}` {units}", r.template)
            })
            .collect::<Vec<_>>()
            .join("; ");
        let redis = profile
            .redis_keys
            .iter()
            .map(|k| {
                format!(
                    "`{}` {} ops ({} B)",
                    k.template,
                    amount(k.ops),
                    thousands(k.bytes)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let failures = if profile.failures.is_empty() {
            String::new()
        } else {
            format!(" (unexpected answers: {:?})", profile.failures)
        };
        out.push_str(&format!(
            "| {}{failures} | {calls} | {} | {} | {roles} | {redis} |\n",
            labels
                .get(profile.class.as_str())
                .copied()
                .unwrap_or(&profile.class),
            amount(wcu),
            amount(rcu),
        ));
    }
    out
}
