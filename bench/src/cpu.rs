//! Figure 9: CPU per warm invocation, against the runtime's floor, and what it is on a bill.
//!
//! The binaries run as Lambda runs them, one invocation at a time (default Lambda), under the
//! benchmark's Runtime API and pinned to core 0: the minimal `lambda_http` function
//! (`minimal-lambda`, the **floor**: the runtime's long poll, the event's decoding and the
//! response, nothing else), then `GET /users/me` (the auth hit alone), `GET /posts/{postId}`
//! (the auth hit and the post's hit, sent together), the feed's first page of 20 (the auth hit;
//! the posts from the instance's near copy, or its window and one `MGET`), a post's first page of
//! 20 comments (the auth, post and window hits, sent together) and `POST /posts/{postId}/comments`
//! (the auth and post hits, one `PutItem`, one compare-and-set). The cached reads are also
//! given as ratios to `GET /users/me` in the same round: the cost of a cached read beyond
//! authentication (issue 22's figures). Each figure is the function process's own CPU time (`/proc` schedstat, every
//! thread) divided by the invocations it served.
//!
//! The six are measured in rounds, each round one batch per route in a rotating order, so a
//! slow moment of this shared machine falls on all of them: a route's ratio to the floor is the
//! median over rounds of (its CPU ÷ the floor's CPU in the same round).
//!
//! With `--baseline-dir`, the same four binaries of another build (the code before a change)
//! run in the same rounds, each against its own build's floor: before and after, one run.
//!
//! The bill: Lambda gives a function CPU in proportion to its memory, a whole vCPU at 1,769 MB.
//! So an invocation that needs `c` µs of CPU and waits `w` µs on the network lasts about
//! `c × 1769 / memory + w` at a smaller size, and is billed by the millisecond, rounded up.
//! `w` is measured here (the median latency less the CPU), against a loopback Redis and an
//! in-process DynamoDB emulator; in AWS the waits are longer and the CPU the same.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use integration_tests::{ApiRequest, TestEnv};
use serde_json::{json, Value};

use crate::lambda::{self, Fixture, Function};
use crate::report::{median, Goal, Report};

pub struct Counts {
    /// Invocations of each binary before any is timed.
    pub warmup: usize,
    /// Rounds, and invocations of each binary per round.
    pub rounds: usize,
    pub per_round: usize,
}

/// The routes measured, by figure name, with their goals as multiples of the floor.
pub const ROUTES: [(&str, Option<f64>); 6] = [
    ("floor", None),
    ("users_me", Some(1.3)),
    ("get_post", Some(2.0)),
    ("feed_first_page", None),
    ("comments_first_page", None),
    ("post_comment", Some(2.5)),
];

/// The cached reads' goals as multiples of `GET /users/me` (an auth hit alone), same round.
pub const OVER_USERS_ME: [(&str, f64); 3] = [
    ("get_post", 1.15),
    ("feed_first_page", 1.4),
    ("comments_first_page", 1.4),
];

/// Memory sizes the bill is estimated at: the default, and the size that gets one whole vCPU.
pub const MEMORY_MB: [u32; 2] = [128, 1769];
const FULL_VCPU_MB: f64 = 1769.0;

/// What a run measured of one binary, for the charts.
#[derive(Debug, Clone)]
pub struct Measured {
    pub route: &'static str,
    /// Whether it is the baseline build's (`--baseline-dir`) rather than this one's.
    pub baseline: bool,
    pub cpu_us: f64,
    pub over_floor: f64,
}

struct Target {
    route: &'static str,
    binary: &'static str,
    event: Bytes,
    /// What the answer's body must contain, so a wrong answer fails the run.
    expect: String,
}

fn targets(fixture: &Fixture) -> Vec<Target> {
    let post = &fixture.post_id;
    vec![
        Target {
            route: "floor",
            binary: "minimal-lambda",
            event: fixture.event(ApiRequest::get("/users/me")),
            expect: "ok".into(),
        },
        Target {
            route: "users_me",
            binary: "users",
            event: fixture.event(ApiRequest::get("/users/me")),
            expect: fixture.email.clone(),
        },
        Target {
            route: "get_post",
            binary: "posts",
            event: fixture.event(ApiRequest::get(&format!("/posts/{post}"))),
            expect: post.clone(),
        },
        Target {
            route: "feed_first_page",
            binary: "posts",
            event: fixture.event(ApiRequest::get("/posts?limit=20")),
            expect: post.clone(),
        },
        Target {
            route: "comments_first_page",
            binary: "comments",
            event: fixture.event(ApiRequest::get(&format!("/posts/{post}/comments?limit=20"))),
            expect: "comment 19".into(),
        },
        Target {
            route: "post_comment",
            binary: "comments",
            event: fixture.event(
                ApiRequest::post(&format!("/posts/{post}/comments")).json(json!({"text": "cpu"})),
            ),
            expect: post.clone(),
        },
    ]
}

/// One binary of one build, running, with what its rounds measured.
struct Running {
    route: &'static str,
    baseline: bool,
    function: Function,
    event: Bytes,
    expect: String,
    /// CPU µs per invocation, per round.
    cpu_us: Vec<f64>,
    /// Median latency (µs) per round.
    latency_us: Vec<f64>,
}

impl Running {
    async fn batch(&mut self, n: usize) -> (f64, f64) {
        let check = |answer: &Value| {
            answer["body"]
                .as_str()
                .is_some_and(|b| b.contains(self.expect.as_str()))
        };
        let mut latencies = Vec::with_capacity(n);
        let before = self.function.cpu_time();
        for _ in 0..n {
            let sent = Instant::now();
            self.function.invoke_checked(&self.event, check).await;
            latencies.push(sent.elapsed().as_secs_f64() * 1e6);
        }
        let cpu = (self.function.cpu_time() - before).as_secs_f64() * 1e6 / n as f64;
        (cpu, median(&mut latencies))
    }
}

pub async fn run(
    report: &mut Report,
    env: &TestEnv,
    fixture: &Fixture,
    bin_dir: &Path,
    baseline_dir: Option<&Path>,
    counts: &Counts,
    perf_dir: Option<&Path>,
) -> Vec<Measured> {
    let cpu = lambda::pin_core();
    let mut running = Vec::new();
    for (dir, baseline) in std::iter::once((bin_dir, false)).chain(baseline_dir.map(|d| (d, true)))
    {
        for target in targets(fixture) {
            let mut function = Function::spawn(target.binary, dir, env, cpu).await;
            function.ready().await;
            running.push(Running {
                route: target.route,
                baseline,
                function,
                event: target.event,
                expect: target.expect,
                cpu_us: Vec::new(),
                latency_us: Vec::new(),
            });
        }
    }
    for r in running.iter_mut() {
        r.batch(counts.warmup).await;
    }
    for round in 0..counts.rounds {
        // A rotating order, so no binary always runs right after another.
        let n = running.len();
        for i in 0..n {
            let r = &mut running[(i + round) % n];
            let (cpu_us, latency_us) = r.batch(counts.per_round).await;
            r.cpu_us.push(cpu_us);
            r.latency_us.push(latency_us);
        }
    }

    let mut measured = Vec::new();
    for baseline in [false, true] {
        let build: Vec<&Running> = running.iter().filter(|r| r.baseline == baseline).collect();
        let Some(floor) = build.iter().find(|r| r.route == "floor") else {
            continue;
        };
        let prefix = if baseline { "cpu.baseline" } else { "cpu" };
        for r in &build {
            let goal = ROUTES
                .iter()
                .find(|(route, _)| *route == r.route)
                .and_then(|(_, goal)| *goal);
            let mut ratios: Vec<f64> = r
                .cpu_us
                .iter()
                .zip(&floor.cpu_us)
                .map(|(c, f)| c / f)
                .collect();
            let (cpu_us, latency_us) = (
                median(&mut r.cpu_us.clone()),
                median(&mut r.latency_us.clone()),
            );
            let over_floor = median(&mut ratios);
            report.add(format!("{prefix}.{}.cpu_us", r.route), cpu_us, "us", None);
            if r.route != "floor" {
                // The goals are this build's; the baseline's ratios are for comparison.
                let goal = if baseline {
                    None
                } else {
                    goal.map(Goal::AtMost)
                };
                report.add(
                    format!("{prefix}.{}.over_floor", r.route),
                    over_floor,
                    "ratio",
                    goal,
                );
            }
            if !baseline {
                let wait_us = (latency_us - cpu_us).max(0.0);
                report.add(
                    format!("{prefix}.{}.latency_us", r.route),
                    latency_us,
                    "us",
                    None,
                );
                for memory in MEMORY_MB {
                    let stretched = cpu_us * (FULL_VCPU_MB / f64::from(memory)).max(1.0);
                    let billed_ms = ((stretched + wait_us) / 1e3).ceil();
                    report.add_noted(
                        format!("{prefix}.{}.billed_ms_at_{memory}mb", r.route),
                        billed_ms,
                        "ms",
                        None,
                        Some(format!(
                            "{:.2} ms of CPU at {memory} MB + {:.2} ms waiting",
                            stretched / 1e3,
                            wait_us / 1e3
                        )),
                    );
                }
            }
            if !baseline {
                let users_me = build.iter().find(|u| u.route == "users_me");
                if let (Some(goal), Some(users_me)) = (
                    OVER_USERS_ME
                        .iter()
                        .find(|(route, _)| *route == r.route)
                        .map(|(_, g)| *g),
                    users_me,
                ) {
                    let mut ratios: Vec<f64> = r
                        .cpu_us
                        .iter()
                        .zip(&users_me.cpu_us)
                        .map(|(c, u)| c / u)
                        .collect();
                    report.add(
                        format!("{prefix}.{}.over_users_me", r.route),
                        median(&mut ratios),
                        "ratio",
                        Some(Goal::AtMost(goal)),
                    );
                }
            }
            measured.push(Measured {
                route: r.route,
                baseline,
                cpu_us,
                over_floor,
            });
        }
    }

    if let Some(dir) = perf_dir {
        for r in running.iter_mut().filter(|r| !r.baseline) {
            profile(r, dir, counts.per_round * 2).await;
        }
    }
    measured
}

/// `perf record` (cpu-clock samples with DWARF call stacks) attached to the running function
/// for `n` more invocations: `DIR/<route>.perf.data`, which `scripts/profile` turns into a
/// flame graph. The binaries keep their symbols (the release profile strips debug info only).
async fn profile(r: &mut Running, dir: &Path, n: usize) {
    let _ = std::fs::create_dir_all(dir);
    let out = dir.join(format!("{}.perf.data", r.route));
    let pid = r.function.pid().to_string();
    let spawned = tokio::process::Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            "4999",
            "--call-graph",
            "dwarf,16384",
            "-p",
            &pid,
            "-o",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn();
    let mut perf = match spawned {
        Ok(perf) => perf,
        Err(e) => {
            eprintln!("note: perf not run ({e}): install linux-perf to profile");
            return;
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await; // perf attaches
    r.batch(n).await;
    if let Some(id) = perf.id() {
        // SAFETY: kill sends a signal to the perf process we started; no memory is touched.
        unsafe { libc::kill(id as libc::pid_t, libc::SIGINT) };
    }
    let _ = perf.wait().await;
    eprintln!("perf: {} ({n} invocations of {})", out.display(), r.route);
}
