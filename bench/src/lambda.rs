//! Figures 4 to 6: the release function binaries run as Lambda runs them, under the
//! benchmark's own Runtime API: cold start, throughput on one core, peak memory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use integration_tests::lambda_process::{environment, Init, LambdaProcess};
use integration_tests::{ApiRequest, TestEnv, PASSWORD};
use serde_json::{json, Value};

use crate::report::{median, Goal, Report};

pub const FUNCTIONS: [&str; 3] = ["users", "posts", "comments"];

/// How long a function gets to init before the run fails (an invocation gets the harness's
/// 30 s).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running function binary, as the harness runs one ([`LambdaProcess`]).
pub struct Function {
    pub name: &'static str,
    process: LambdaProcess,
}

/// The data a function run needs: a user, their token, a post.
pub struct Fixture {
    pub token: String,
    pub email: String,
    pub post_id: String,
}

impl Fixture {
    /// A user, a feed of 20 posts and, on the one measured, 20 comments: full first pages.
    pub async fn new(env: &TestEnv) -> Self {
        let (token, user) = env.new_user("Lambda").await;
        for n in 0..19 {
            env.new_post(&token, &format!("feed {n}")).await;
        }
        let post = env.new_post(&token, "benchmarked").await;
        let post_id = post["id"].as_str().expect("post id");
        for n in 0..20 {
            let res = env
                .send(
                    ApiRequest::post(&format!("/posts/{post_id}/comments"))
                        .bearer(&token)
                        .json(serde_json::json!({"text": format!("comment {n}")})),
                )
                .await;
            assert_eq!(res.status, 201, "{}", res.raw_body);
        }
        let me = env.send(ApiRequest::get("/users/me").bearer(&token)).await;
        assert_eq!(me.status, 200, "the user is cached: {}", me.raw_body);
        Fixture {
            token,
            email: user["email"].as_str().expect("email").to_owned(),
            post_id: post["id"].as_str().expect("post id").to_owned(),
        }
    }

    pub fn event(&self, request: ApiRequest) -> Bytes {
        Bytes::from(request.bearer(&self.token).to_v2_event().to_string())
    }

    /// The request each function's cold-start run serves, a read with authentication.
    pub fn read_for(&self, function: &str) -> Bytes {
        match function {
            "users" => self.event(ApiRequest::get("/users/me")),
            "posts" => self.event(ApiRequest::get(&format!("/posts/{}", self.post_id))),
            _ => self.event(ApiRequest::get(&format!(
                "/posts/{}/comments?limit=20",
                self.post_id
            ))),
        }
    }
}

impl Function {
    /// Starts `bin_dir/name` with Lambda's environment pointed at its own Runtime API, and the
    /// app's pointed at `env`. `cpu` pins it (through `taskset`) to one core.
    pub async fn spawn(
        name: &'static str,
        bin_dir: &Path,
        env: &TestEnv,
        cpu: Option<usize>,
    ) -> Self {
        Self::spawn_with(name, bin_dir, env, cpu, None).await
    }

    /// The same, as Lambda Managed Instances run it: `AWS_LAMBDA_MAX_CONCURRENCY` set to
    /// `concurrency` (unset for `None`, as default Lambda leaves it).
    pub async fn spawn_with(
        name: &'static str,
        bin_dir: &Path,
        env: &TestEnv,
        cpu: Option<usize>,
        concurrency: Option<usize>,
    ) -> Self {
        let bin = bin_dir.join(name);
        assert!(
            bin.exists(),
            "{} is missing: build the functions first (scripts/bench does)",
            bin.display()
        );
        let command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string()]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        // The tests' function environment, with logs and metrics as deployed (template.yaml's
        // variables and LoggingConfig: each request's log line and EMF metrics are part of what
        // is measured) and the deployed Redis timeout.
        let mut vars = environment(env, &env.dynamo.endpoint);
        vars.retain(|(name, _)| !["RUST_LOG", "REDIS_TIMEOUT_MS"].contains(name));
        vars.extend([
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
            ("METRICS_NAMESPACE", "bench".to_owned()),
        ]);
        vars.extend(concurrency.map(|c| ("AWS_LAMBDA_MAX_CONCURRENCY", c.to_string())));
        Function {
            name,
            process: LambdaProcess::spawn_command(command, name, &vars).await,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits for the first `next` poll: how long after the exec it came.
    pub async fn ready(&mut self) -> Duration {
        match self.process.init(INIT_TIMEOUT).await {
            Init::Ready(took) => took,
            Init::Exited(status, _) => panic!(
                "{} failed its init ({status})\n{}",
                self.name,
                self.process.log()
            ),
        }
    }

    /// One invocation; its duration. Panics unless the function answered 2xx.
    pub async fn invoke(&self, event: &Bytes) -> Duration {
        self.invoke_checked(event, |_| true).await
    }

    /// One invocation whose answer must be 2xx and pass `check` (its body, parsed); its
    /// duration from the event leaving `next` to the answer arriving.
    pub async fn invoke_checked(&self, event: &Bytes, check: impl Fn(&Value) -> bool) -> Duration {
        let outcome = self.process.invoke_raw(event.clone()).await;
        let answer = serde_json::from_slice::<Value>(&outcome.body).unwrap_or_default();
        let status = answer["statusCode"].as_u64();
        if !outcome.ok || !status.is_some_and(|s| (200..300).contains(&s)) || !check(&answer) {
            panic!(
                "{} answered {}: {}",
                self.name,
                status.unwrap_or(0),
                String::from_utf8_lossy(&outcome.body)
            );
        }
        outcome.elapsed
    }

    /// Peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.process.peak_memory_kib() * 1024
    }

    /// CPU time the process has used, all threads, from the scheduler's accounting.
    pub fn cpu_time(&self) -> Duration {
        process_cpu(self.pid())
    }
}

/// CPU time process `pid` has used, all threads, from the scheduler's accounting.
pub fn process_cpu(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok);
    let nanos: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum();
    Duration::from_nanos(nanos)
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

pub struct ColdCounts {
    /// Processes started per function.
    pub starts: usize,
    /// Warm invocations after the first, per process.
    pub warm: usize,
}

/// 4. Cold start: exec to the first `next` poll, and the first invocation against the warm ones.
pub async fn cold_start(
    report: &mut Report,
    env: &TestEnv,
    fixture: &Fixture,
    bin_dir: &Path,
    counts: &ColdCounts,
) {
    for name in FUNCTIONS {
        let event = fixture.read_for(name);
        let (mut to_next, mut firsts, mut warms) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..counts.starts {
            let mut function = Function::spawn(name, bin_dir, env, None).await;
            to_next.push(ms(function.ready().await));
            firsts.push(us(function.invoke(&event).await));
            let mut warm = Vec::with_capacity(counts.warm);
            for _ in 0..counts.warm {
                warm.push(us(function.invoke(&event).await));
            }
            warms.push(median(&mut warm));
        }
        let (first, warm) = (median(&mut firsts), median(&mut warms));
        report.add(
            format!("cold_start.{name}.exec_to_next_ms"),
            median(&mut to_next),
            "ms",
            Some(Goal::AtMost(10.0)),
        );
        report.add(
            format!("cold_start.{name}.first_invoke_us"),
            first,
            "us",
            None,
        );
        report.add(
            format!("cold_start.{name}.warm_invoke_us"),
            warm,
            "us",
            None,
        );
        report.add(
            format!("cold_start.{name}.first_over_warm"),
            first / warm,
            "ratio",
            Some(Goal::AtMost(3.0)),
        );
    }
}

pub struct LoadCounts {
    /// Invocations timed for a throughput figure.
    pub throughput: usize,
    /// Invocations a process serves before its peak memory is read.
    pub total: usize,
}

/// 5 and 6. Each function on one core: throughput of its hot route, then a mix of its routes
/// up to `total` invocations, then its peak resident memory.
pub async fn load(
    report: &mut Report,
    env: &TestEnv,
    fixture: &Fixture,
    bin_dir: &Path,
    counts: &LoadCounts,
) {
    let cpu = pin_core();
    let post = &fixture.post_id;
    for name in FUNCTIONS {
        let mut function = Function::spawn(name, bin_dir, env, cpu).await;
        function.ready().await;
        let mut served = 0usize;

        let hot = match name {
            "posts" => Some((
                "throughput.get_post",
                fixture.event(ApiRequest::get(&format!("/posts/{post}"))),
            )),
            "comments" => Some((
                "throughput.post_comment",
                fixture.event(
                    ApiRequest::post(&format!("/posts/{post}/comments"))
                        .json(json!({"text": "bench"})),
                ),
            )),
            _ => None,
        };
        if let Some((figure, event)) = hot {
            for _ in 0..counts.throughput.div_ceil(10) {
                function.invoke(&event).await; // warm-up
            }
            let (cpu_before, started) = (function.cpu_time(), Instant::now());
            for _ in 0..counts.throughput {
                function.invoke(&event).await;
            }
            let (wall, cpu_used) = (started.elapsed(), function.cpu_time() - cpu_before);
            served += counts.throughput + counts.throughput.div_ceil(10);
            let n = counts.throughput as f64;
            report.add(
                format!("{figure}_per_s"),
                n / wall.as_secs_f64(),
                "inv/s",
                None,
            );
            report.add(format!("{figure}_cpu_us"), us(cpu_used) / n, "us", None);
        }

        let mix = mix_for(name, fixture);
        let mut i = 0;
        while served < counts.total {
            function.invoke(&mix[i % mix.len()]).await;
            served += 1;
            i += 1;
        }
        let peak = function.peak_rss() as f64 / 1e6;
        let (anon, file) = (
            proc_status_kb(function.pid(), "RssAnon:"),
            proc_status_kb(function.pid(), "RssFile:"),
        );
        let now = format!(
            "at the end: {:.1} MB heap and stacks, {:.1} MB code and data mapped from the binary",
            anon as f64 * 1.024e-3,
            file as f64 * 1.024e-3
        );
        report.add_noted(
            format!("rss.{name}.peak_mb"),
            peak,
            "MB",
            Some(Goal::AtMost(30.0)),
            Some(now),
        );
    }
}

/// What a function serves, in proportions an app like this sees: mostly reads.
fn mix_for(name: &str, f: &Fixture) -> Vec<Bytes> {
    let post = &f.post_id;
    let mut mix = Vec::new();
    match name {
        "users" => {
            // 1 login (Argon2id, 12 MiB) and 9 renames per 90 reads.
            for i in 0..100 {
                mix.push(match i {
                    0 => Bytes::from(
                        ApiRequest::post("/auth/login")
                            .json(json!({"email": f.email, "password": PASSWORD}))
                            .to_v2_event()
                            .to_string(),
                    ),
                    i if i % 10 == 5 => f.event(
                        ApiRequest::patch("/users/me").json(json!({"name": format!("N{i}")})),
                    ),
                    _ => f.event(ApiRequest::get("/users/me")),
                });
            }
        }
        "posts" => {
            for i in 0..20 {
                mix.push(match i {
                    0 => f.event(ApiRequest::post("/posts").json(json!({"caption": "mixed"}))),
                    i if i % 4 == 1 => f.event(ApiRequest::get("/posts?limit=20")),
                    _ => f.event(ApiRequest::get(&format!("/posts/{post}"))),
                });
            }
        }
        _ => {
            mix.push(f.event(
                ApiRequest::post(&format!("/posts/{post}/comments")).json(json!({"text": "mixed"})),
            ));
            mix.push(f.event(ApiRequest::get(&format!("/posts/{post}/comments?limit=20"))));
            mix.push(f.event(ApiRequest::get(&format!(
                "/posts/{post}/comments?limit=100"
            ))));
        }
    }
    mix
}

/// Core 0 for the function, through `taskset`, when there is more than one core and
/// `taskset` exists; the benchmark itself (Runtime API, Redis, DynamoDB) then keeps off it.
pub fn pin_core() -> Option<usize> {
    let cores = online_cores();
    let taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let taskset = taskset.is_ok_and(|s| s.success());
    if cores < 2 || !taskset {
        eprintln!(
            "note: the function is not pinned to a core (cores: {cores}, taskset works: {taskset})"
        );
        return None;
    }
    Some(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Moves every thread of this process (and so Redis and anything it starts later) off
/// `core`, leaving that core to the function under test. No-op on a single core.
pub fn keep_off_core(core: usize) {
    let cores = online_cores();
    if cores < 2 {
        return;
    }
    // SAFETY: `cpu_set_t` is plain data; zeroed is the empty set, and the CPU_* helpers only
    // touch bits within it. `sched_setaffinity` reads it and changes no memory of ours.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in (0..cores).filter(|&c| c != core) {
            libc::CPU_SET(cpu, &mut set);
        }
        let tasks = std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .filter_map(Result::ok);
        for tid in tasks.filter_map(|t| t.file_name().to_str()?.parse::<libc::pid_t>().ok()) {
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// Cores online on the machine, whatever this process's affinity.
pub fn online_cores() -> usize {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}
