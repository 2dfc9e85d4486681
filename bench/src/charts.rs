//! `--charts DIR`: the run drawn as SVG charts (`plotters`), for BENCHMARKS.md to show.
//!
//! - `auth-latency.svg`: the distribution (share of requests at or under each latency) of the
//!   auth hit, the bare Redis `GET` it wraps, the miss and the no-cache path.
//! - `cpu-per-invocation.svg`: CPU per warm invocation by route, and the floor, for this build
//!   and, when the run had `--baseline-dir`, the build before.
//! - `init.svg`: exec to the first `next` poll of each function, and its first invocation.
//!
//! Text is left to the SVG viewer's sans-serif font: no font is read or embedded.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::cpu::Measured;
use crate::report::{percentile, Report};

/// The raw samples of the in-process auth figures (µs), for the latency chart.
#[derive(Debug, Default, Clone)]
pub struct AuthSamples {
    pub hit: Vec<f64>,
    pub bare_get: Vec<f64>,
    pub miss: Vec<f64>,
    pub no_cache: Vec<f64>,
}

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 480);

/// Draws every chart the run has data for; the files written.
pub fn draw(
    dir: &Path,
    report: &Report,
    auth: &AuthSamples,
    cpu: &[Measured],
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    if !auth.hit.is_empty() {
        written.push(auth_latency(&dir.join("auth-latency.svg"), auth)?);
    }
    if !cpu.is_empty() {
        written.push(cpu_per_invocation(
            &dir.join("cpu-per-invocation.svg"),
            cpu,
        )?);
    }
    let init: Vec<(&str, f64, f64)> = crate::lambda::FUNCTIONS
        .iter()
        .filter_map(|name| {
            let to_next = report
                .get(&format!("cold_start.{name}.exec_to_next_ms"))?
                .value;
            let first = report
                .get(&format!("cold_start.{name}.first_invoke_us"))?
                .value
                / 1e3;
            Some((*name, to_next, first))
        })
        .collect();
    if !init.is_empty() {
        written.push(init_times(&dir.join("init.svg"), &init)?);
    }
    Ok(written)
}

fn failed(e: impl std::fmt::Display) -> String {
    format!("drawing a chart: {e}")
}

/// Share of samples at or under each latency: one line per path, up to the slowest p99.
fn auth_latency(path: &Path, auth: &AuthSamples) -> Result<PathBuf, String> {
    let series = [
        ("bare Redis GET", &auth.bare_get, BLUE),
        ("auth hit (token, GET, checks)", &auth.hit, GREEN),
        ("no cache (token, GetItem)", &auth.no_cache, MAGENTA),
        ("miss (GET, GetItem, compare-and-set)", &auth.miss, RED),
    ];
    // A log scale: a hit takes microseconds, a miss hundreds of them.
    let x_max = series
        .iter()
        .map(|(_, s, _)| percentile(&mut s.to_vec(), 99.0))
        .fold(1.0, f64::max)
        * 1.05;
    let x_min = series
        .iter()
        .map(|(_, s, _)| percentile(&mut s.to_vec(), 0.5))
        .fold(x_max, f64::min)
        .max(0.1)
        * 0.8;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Authentication latency, in process (share of requests at or under)",
            (FONT, 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..1f64)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("latency (µs, log scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("share of requests")
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .draw()
        .map_err(failed)?;
    for (label, samples, color) in series {
        let mut sorted = samples.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        // At most about 500 points a line: the file stays small and the curve the same.
        let n = sorted.len().max(1) as f64;
        let step = (sorted.len() / 500).max(1);
        let points: Vec<(f64, f64)> = sorted
            .iter()
            .enumerate()
            .filter(|&(i, &x)| x <= x_max && x >= x_min && (i % step == 0 || i + 1 == sorted.len()))
            .map(|(i, &x)| (x, (i + 1) as f64 / n))
            .collect();
        let median = percentile(&mut sorted, 50.0);
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(failed)?
            .label(format!("{label}: median {median:.0} µs"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(failed)?;
    root.present().map_err(failed)?;
    Ok(path.to_owned())
}

/// One series of a bar chart: a bar (its height and the text above it) per category, or none.
struct Bars {
    label: &'static str,
    color: RGBColor,
    values: Vec<Option<(f64, String)>>,
}

/// Bars grouped by category (one group per category, one bar per series), each with its text
/// above it, and the series' legend.
fn bar_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    categories: &[&str],
    series: &[Bars],
) -> Result<PathBuf, String> {
    let y_max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().map(|(y, _)| *y))
        .fold(1.0, f64::max)
        * 1.2;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(categories.len() as f64 - 0.5), 0f64..y_max)
        .map_err(failed)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            categories
                .get(i as usize)
                .map(|c| (*c).to_owned())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(categories.len())
        .x_label_formatter(&label)
        .y_desc(y_desc)
        .draw()
        .map_err(failed)?;
    let width = 0.8 / series.len().max(1) as f64;
    for (k, s) in series.iter().enumerate() {
        let color = s.color;
        let bars: Vec<(f64, f64, &str)> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let (y, text) = v.as_ref()?;
                Some((i as f64 - 0.4 + k as f64 * width, *y, text.as_str()))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x0, y, _)| {
                Rectangle::new([(x0, 0.0), (x0 + width * 0.95, y)], color.filled())
            }))
            .map_err(failed)?
            .label(s.label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        chart
            .draw_series(bars.iter().map(|&(x0, y, text)| {
                Text::new(
                    text.to_owned(),
                    (x0, y + y_max * 0.02),
                    (FONT, 13).into_font(),
                )
            }))
            .map_err(failed)?;
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
    Ok(path.to_owned())
}

/// Bars of CPU µs per warm invocation, one group per route, with each bar's multiple of its
/// build's floor written above it.
fn cpu_per_invocation(path: &Path, cpu: &[Measured]) -> Result<PathBuf, String> {
    let routes: Vec<&str> = crate::cpu::ROUTES.iter().map(|(r, _)| *r).collect();
    let series: Vec<Bars> = [true, false]
        .into_iter()
        .filter(|b| cpu.iter().any(|m| m.baseline == *b))
        .map(|baseline| Bars {
            label: if baseline {
                "before (--baseline-dir)"
            } else {
                "this build"
            },
            color: if baseline {
                RGBColor(170, 170, 170)
            } else {
                RGBColor(40, 110, 200)
            },
            values: routes
                .iter()
                .map(|route| {
                    let m = cpu
                        .iter()
                        .find(|m| m.baseline == baseline && m.route == *route)?;
                    let text = if m.route == "floor" {
                        format!("{:.0} µs", m.cpu_us)
                    } else {
                        format!("{:.0} µs, {:.2}×", m.cpu_us, m.over_floor)
                    };
                    Some((m.cpu_us, text))
                })
                .collect(),
        })
        .collect();
    let labels: Vec<&str> = routes.iter().map(|r| route_label(r)).collect();
    bar_chart(
        path,
        "CPU per warm invocation, one at a time (× the floor above each bar)",
        "CPU µs per invocation",
        &labels,
        &series,
    )
}

fn route_label(route: &str) -> &'static str {
    match route {
        "floor" => "floor (minimal lambda_http)",
        "users_me" => "GET /users/me",
        "get_post" => "GET /posts/{postId}",
        "post_comment" => "POST …/comments",
        _ => "?",
    }
}

/// Per function: exec to the first `next` poll, and the first invocation, in ms.
fn init_times(path: &Path, init: &[(&str, f64, f64)]) -> Result<PathBuf, String> {
    let ms = |v: f64| Some((v, format!("{v:.1} ms")));
    let series = [
        Bars {
            label: "exec → first next poll",
            color: RGBColor(40, 110, 200),
            values: init.iter().map(|&(_, to_next, _)| ms(to_next)).collect(),
        },
        Bars {
            label: "first invocation",
            color: RGBColor(230, 140, 30),
            values: init.iter().map(|&(_, _, first)| ms(first)).collect(),
        },
    ];
    let names: Vec<&str> = init.iter().map(|(name, ..)| *name).collect();
    bar_chart(
        path,
        "Cold start: exec to the first poll, and the first invocation (medians)",
        "ms",
        &names,
        &series,
    )
}
