//! `bench [--smoke] [--only PART] [--bin-dir DIR] [--lambda-dir DIR] [--baseline-dir DIR]
//! [--charts DIR] [--perf-dir DIR]`: the benchmark of BENCHMARKS.md.
//!
//! Runs against real services it starts itself (a `redis-server`, dynoxide) and prints every
//! figure as one JSON line (`{"name", "value", "unit", "goal"}`), then a table. Figures that
//! depend on a noisy shared machine are ratios measured inside one run.
//!
//! - `telemetry.*`: in this process, the per-request log line and metrics (EMF) of a warm
//!   invocation.
//! - `auth.*`: in this process, the auth hot path against a bare Redis `GET` of the same key
//!   on the same connection, interleaved; the miss and no-cache paths; DynamoDB user reads; the
//!   hot path on a local Redis Cluster against a single server, interleaved.
//! - `cached.*`: in this process, DynamoDB reads per 1,000 warm hits of a post, the feed's
//!   first page and a post's first comments (issue 22), and a post hit against the auth hit,
//!   interleaved.
//! - `allocs.*`: in this process, heap allocations per warm invocation of three routes'
//!   handler paths.
//! - `cpu.*`: CPU per warm invocation of each function binary against the minimal
//!   `lambda_http` function's (the floor), one at a time, and the bill that implies; with
//!   `--baseline-dir`, the same for another build's binaries in the same rounds; with
//!   `--perf-dir`, a `perf` profile of each route afterwards.
//! - `cold_start.*`, `throughput.*`, `rss.*`: the function binaries in `--bin-dir` (release,
//!   this machine's architecture) under a Runtime API this program serves.
//! - `size.*`: the arm64 bootstraps in `--lambda-dir` (`cargo lambda build --release --arm64`),
//!   or, without them, the binaries in `--bin-dir`, with a note saying so.
//!
//! - `concurrency.*`, `node.*`: many invocations at once in one environment (Lambda Managed
//!   Instances) at 1, 8, 32 and 64 in flight, each function on one core, and the Node.js
//!   middleware it replaces on the same core when `--node-dir` names its installed folder.
//!
//! `--only auth|cpu|cold_start|load|concurrency|size` runs one part (to iterate on it); a full run
//! runs all. `--charts DIR` draws the run as SVG charts there (`charts.rs`).
//!
//! `--smoke` runs tiny counts and fails unless every figure was produced; goals are not
//! checked then, since tiny counts say nothing.

mod allocs;
mod auth;
mod charts;
mod cluster;
mod concurrency;
mod cpu;
mod lambda;
mod report;
mod size;
mod telemetry;

use std::path::PathBuf;
use std::time::Instant;

use report::Report;

/// Counts the allocations of the `allocs.*` figures (and only while they are taken).
#[global_allocator]
static ALLOCATOR: allocs::Counting = allocs::Counting;

struct Options {
    smoke: bool,
    bin_dir: PathBuf,
    lambda_dir: Option<PathBuf>,
    node_dir: Option<PathBuf>,
    baseline_dir: Option<PathBuf>,
    charts: Option<PathBuf>,
    perf_dir: Option<PathBuf>,
    only: Option<Part>,
}

/// The parts of a run, in the order they run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Auth,
    Cpu,
    ColdStart,
    Load,
    Concurrency,
    Size,
}

impl Part {
    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "auth" => Ok(Part::Auth),
            "cpu" => Ok(Part::Cpu),
            "cold_start" => Ok(Part::ColdStart),
            "load" => Ok(Part::Load),
            "concurrency" => Ok(Part::Concurrency),
            "size" => Ok(Part::Size),
            other => Err(format!(
                "unknown part {other:?}: auth, cpu, cold_start, load, concurrency or size"
            )),
        }
    }

    /// The part a figure belongs to, by its name.
    fn of(figure: &str) -> Self {
        match figure.split('.').next() {
            Some("cpu") => Part::Cpu,
            Some("cold_start") => Part::ColdStart,
            Some("rss" | "throughput") => Part::Load,
            Some("concurrency" | "node") => Part::Concurrency,
            Some("size") => Part::Size,
            _ => Part::Auth,
        }
    }
}

impl Options {
    fn runs(&self, part: Part) -> bool {
        self.only.is_none_or(|only| only == part)
    }
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            smoke: false,
            bin_dir: PathBuf::from("target/release"),
            lambda_dir: None,
            node_dir: None,
            baseline_dir: None,
            charts: None,
            perf_dir: None,
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
            match arg.as_str() {
                "--smoke" => options.smoke = true,
                "--bin-dir" => options.bin_dir = PathBuf::from(value("--bin-dir")?),
                "--lambda-dir" => options.lambda_dir = Some(PathBuf::from(value("--lambda-dir")?)),
                "--node-dir" => options.node_dir = Some(PathBuf::from(value("--node-dir")?)),
                "--baseline-dir" => options.baseline_dir = Some(PathBuf::from(value("--baseline-dir")?)),
                "--charts" => options.charts = Some(PathBuf::from(value("--charts")?)),
                "--perf-dir" => options.perf_dir = Some(PathBuf::from(value("--perf-dir")?)),
                "--only" => options.only = Some(Part::parse(&value("--only")?)?),
                "-h" | "--help" => {
                    return Err(concat!(
                        "usage: bench [--smoke] [--only PART] [--bin-dir DIR] [--lambda-dir DIR] [--node-dir DIR]",
                        " [--baseline-dir DIR] [--charts DIR] [--perf-dir DIR]"
                    )
                    .into())
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }
}

/// Every figure a run must produce.
fn expected() -> Vec<String> {
    let mut names: Vec<String> = [
        "auth.hit_us",
        "auth.redis_get_us",
        "auth.hit_over_redis_get",
        "auth.cluster_hit_us",
        "auth.cluster_hit_over_standalone_hit",
        "auth.miss_us",
        "auth.no_cache_us",
        "auth.dynamodb_user_reads_per_1000",
        "cached.post.dynamodb_reads_per_1000",
        "cached.feed_first_page.dynamodb_reads_per_1000",
        "cached.comments_first_page.dynamodb_reads_per_1000",
        "cached.post_hit_us",
        "cached.auth_hit_us",
        "cached.post_hit_over_auth_hit",
        "telemetry.log_line_us",
        "telemetry.metrics_us",
        "telemetry.per_invocation_us",
        "throughput.get_post_per_s",
        "throughput.post_comment_per_s",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for route in ["users_me", "get_post", "post_comment"] {
        names.push(format!("allocs.{route}.per_invocation"));
    }
    for (route, goal) in cpu::ROUTES {
        names.push(format!("cpu.{route}.cpu_us"));
        if goal.is_some() {
            names.push(format!("cpu.{route}.over_floor"));
        }
        if cpu::OVER_USERS_ME.iter().any(|(r, _)| *r == route) {
            names.push(format!("cpu.{route}.over_users_me"));
        }
        for memory in cpu::MEMORY_MB {
            names.push(format!("cpu.{route}.billed_ms_at_{memory}mb"));
        }
    }
    for target in concurrency::TARGETS {
        for level in concurrency::LEVELS {
            for figure in ["per_s", "per_core_s", "core_busy", "p50_us", "p99_us"] {
                names.push(format!("concurrency.{target}.c{level}.{figure}"));
            }
        }
        names.push(format!("concurrency.{target}.c64.peak_rss_mb"));
    }
    names.push("concurrency.users_me.c32.over_node".to_owned());
    names.push("concurrency.users_me.c32.over_node_reference".to_owned());
    for name in lambda::FUNCTIONS {
        names.push(format!("cold_start.{name}.exec_to_next_ms"));
        names.push(format!("cold_start.{name}.first_over_warm"));
        names.push(format!("rss.{name}.peak_mb"));
        names.push(format!("size.{name}.mb"));
    }
    names
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = lambda::online_cores();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let memory_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!(
        "{cpu}, {cores} cores, {memory_gb:.0} GB, Linux {}, {}",
        kernel.trim(),
        std::env::consts::ARCH
    )
}

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    // One thread, as the functions run (their `main.rs`): the in-process figures then time the
    // auth path as a function runs it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let (report, auth_samples, cpu_measured) = runtime.block_on(run(&options));
    if let Some(dir) = &options.charts {
        match charts::draw(dir, &report, &auth_samples, &cpu_measured) {
            Ok(files) => files
                .iter()
                .for_each(|f| eprintln!("chart: {}", f.display())),
            Err(e) => {
                eprintln!("bench: {e}");
                std::process::exit(1);
            }
        }
    }
    println!();
    println!("machine: {}", machine());
    println!("{}", report.table());

    let missing: Vec<String> = expected()
        .into_iter()
        .filter(|n| options.runs(Part::of(n)))
        .filter(|n| report.get(n).is_none_or(|f| !f.value.is_finite()))
        .collect();
    if !missing.is_empty() {
        eprintln!("bench: figures not produced: {}", missing.join(", "));
        std::process::exit(1);
    }
    if options.smoke {
        println!(
            "bench --smoke: all {} figures produced in {:.1} s (goals not checked at smoke counts)",
            report.figures.len(),
            started.elapsed().as_secs_f64()
        );
    } else {
        let missed = report.missed();
        println!(
            "bench: {} figures in {:.0} s; goals missed: {}",
            report.figures.len(),
            started.elapsed().as_secs_f64(),
            if missed.is_empty() {
                "none".to_owned()
            } else {
                missed
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
}

async fn run(options: &Options) -> (Report, charts::AuthSamples, Vec<cpu::Measured>) {
    let smoke = options.smoke;
    let mut report = Report::default();
    let (mut auth_samples, mut cpu_measured) = (charts::AuthSamples::default(), Vec::new());

    let counts = if smoke {
        auth::Counts {
            pairs: 200,
            misses: 20,
            requests: 100,
        }
    } else {
        auth::Counts {
            pairs: 20_000,
            misses: 2_000,
            requests: 1_000,
        }
    };
    if options.runs(Part::Auth) {
        // First: it sends the metric lines to nowhere before any test world would keep them.
        telemetry::run(&mut report, if smoke { 700 } else { 70_000 }).await;
        auth_samples = auth::run(&mut report, &counts).await;
        auth::cached_reads(&mut report, &counts).await;
        cluster::run(&mut report, counts.pairs).await;
        let env = auth::new_env().await;
        let fixture = lambda::Fixture::new(&env).await;
        allocs::run(&mut report, &env, &fixture, if smoke { 5 } else { 200 }).await;
    }

    if options.runs(Part::ColdStart) {
        let env = auth::new_env().await;
        let fixture = lambda::Fixture::new(&env).await;
        let counts = if smoke {
            lambda::ColdCounts { starts: 1, warm: 5 }
        } else {
            lambda::ColdCounts {
                starts: 10,
                warm: 100,
            }
        };
        lambda::cold_start(&mut report, &env, &fixture, &options.bin_dir, &counts).await;
    }

    // From here the function under test has core 0 to itself (where there is more than one).
    lambda::keep_off_core(0);
    if options.runs(Part::Load) {
        let env = auth::new_env().await;
        let fixture = lambda::Fixture::new(&env).await;
        let counts = if smoke {
            lambda::LoadCounts {
                throughput: 50,
                total: 200,
            }
        } else {
            lambda::LoadCounts {
                throughput: 3_000,
                total: 10_000,
            }
        };
        lambda::load(&mut report, &env, &fixture, &options.bin_dir, &counts).await;
    }

    if options.runs(Part::Cpu) {
        let env = auth::new_env().await;
        let fixture = lambda::Fixture::new(&env).await;
        let counts = if smoke {
            cpu::Counts {
                warmup: 5,
                rounds: 2,
                per_round: 10,
            }
        } else {
            cpu::Counts {
                warmup: 300,
                rounds: 10,
                per_round: 500,
            }
        };
        let (baseline, perf) = (options.baseline_dir.as_deref(), options.perf_dir.as_deref());
        cpu_measured = cpu::run(
            &mut report,
            &env,
            &fixture,
            &options.bin_dir,
            baseline,
            &counts,
            perf,
        )
        .await;
    }

    if options.runs(Part::Concurrency) {
        let env = auth::new_env().await;
        let fixture = lambda::Fixture::new(&env).await;
        let counts = if smoke {
            concurrency::Counts {
                timed: 128,
                warmup: 64,
            }
        } else {
            concurrency::Counts {
                timed: 20_000,
                warmup: 2_000,
            }
        };
        concurrency::run(
            &mut report,
            &env,
            &fixture,
            &options.bin_dir,
            &counts,
            options.node_dir.as_deref(),
        )
        .await;
    }

    if options.runs(Part::Size) {
        size::run(&mut report, options.lambda_dir.as_deref(), &options.bin_dir);
    }
    (report, auth_samples, cpu_measured)
}
