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

/// Bars of CPU µs per warm invocation, one group per route, with each bar's multiple of its
/// build's floor written above it.
fn cpu_per_invocation(path: &Path, cpu: &[Measured]) -> Result<PathBuf, String> {
    let routes: Vec<&str> = crate::cpu::ROUTES.iter().map(|(r, _)| *r).collect();
    let builds: Vec<bool> = [true, false]
        .into_iter()
        .filter(|b| cpu.iter().any(|m| m.baseline == *b))
        .collect();
    let y_max = cpu.iter().map(|m| m.cpu_us).fold(1.0, f64::max) * 1.2;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "CPU per warm invocation, one at a time (× the floor above each bar)",
            (FONT, 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(routes.len() as f64 - 0.5), 0f64..y_max)
        .map_err(failed)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            routes
                .get(i as usize)
                .map(|r| route_label(r).to_owned())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(routes.len())
        .x_label_formatter(&label)
        .y_desc("CPU µs per invocation")
        .draw()
        .map_err(failed)?;
    let width = 0.8 / builds.len() as f64;
    for (b, &baseline) in builds.iter().enumerate() {
        let color = if baseline {
            RGBColor(170, 170, 170)
        } else {
            RGBColor(40, 110, 200)
        };
        let bars: Vec<(f64, f64, f64)> = routes
            .iter()
            .enumerate()
            .filter_map(|(i, route)| {
                let m = cpu
                    .iter()
                    .find(|m| m.baseline == baseline && m.route == *route)?;
                let x0 = i as f64 - 0.4 + b as f64 * width;
                Some((x0, m.cpu_us, m.over_floor))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x0, y, _)| {
                Rectangle::new([(x0, 0.0), (x0 + width * 0.95, y)], color.filled())
            }))
            .map_err(failed)?
            .label(if baseline {
                "before (--baseline-dir)"
            } else {
                "this build"
            })
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        chart
            .draw_series(bars.iter().map(|&(x0, y, ratio)| {
                let text = if ratio == 1.0 {
                    format!("{y:.0} µs")
                } else {
                    format!("{y:.0} µs, {ratio:.2}×")
                };
                Text::new(text, (x0, y + y_max * 0.02), (FONT, 13).into_font())
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
    let y_max = init.iter().map(|&(_, a, b)| a.max(b)).fold(1.0, f64::max) * 1.25;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cold start: exec to the first poll, and the first invocation (medians)",
            (FONT, 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..(init.len() as f64 - 0.5), 0f64..y_max)
        .map_err(failed)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            init.get(i as usize)
                .map(|(name, ..)| (*name).to_owned())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(init.len())
        .x_label_formatter(&label)
        .y_desc("ms")
        .draw()
        .map_err(failed)?;
    let kinds = [
        ("exec → first next poll", RGBColor(40, 110, 200)),
        ("first invocation", RGBColor(230, 140, 30)),
    ];
    for (k, (name, color)) in kinds.into_iter().enumerate() {
        let bars: Vec<(f64, f64)> = init
            .iter()
            .enumerate()
            .map(|(i, &(_, to_next, first))| {
                (
                    i as f64 - 0.4 + k as f64 * 0.4,
                    if k == 0 { to_next } else { first },
                )
            })
            .collect();
        chart
            .draw_series(
                bars.iter()
                    .map(|&(x0, y)| Rectangle::new([(x0, 0.0), (x0 + 0.38, y)], color.filled())),
            )
            .map_err(failed)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        chart
            .draw_series(bars.iter().map(|&(x0, y)| {
                Text::new(
                    format!("{y:.1} ms"),
                    (x0, y + y_max * 0.02),
                    (FONT, 13).into_font(),
                )
            }))
            .map_err(failed)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(failed)?;
    root.present().map_err(failed)?;
    Ok(path.to_owned())
}
