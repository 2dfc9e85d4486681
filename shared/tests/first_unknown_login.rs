//! The first unknown-email login of an instance does the work later ones do (issue 14, defect
//! 6): the password is checked against the dummy hash, one Argon2 run, and no dummy hash is
//! made then. A hash made on first use cost that first login a second Argon2 run (a timing
//! signal: "this instance has not seen an unknown email yet").
//!
//! A fresh instance is a fresh process: this file is a test binary of its own, and its test
//! runs each probe in a new process (this binary again), where nothing has been checked yet.
//! The work is the process's CPU time, whatever the machine's load does to wall time.

use std::process::Command;
use std::time::Duration;

use shared::auth::password;
use shared::domain::Password;

/// Set in a probe's environment: run the probe instead of the test.
const PROBE: &str = "SHARED_FIRST_UNKNOWN_LOGIN_PROBE";

/// Probes (processes), and checks after the first in each.
const PROBES: usize = 3;
const LATER_CHECKS: usize = 5;

/// A hash made on first use doubles the first check's work (a hash costs what a check does);
/// a first check within this factor of the later ones made none.
const MAX_RATIO: f64 = 1.5;

/// CPU time used by the whole process so far (every thread: the checks run on tokio's
/// blocking threads).
fn process_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the `timespec` it is given, which outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The CPU time of one unknown-email check (no stored hash), as the login route makes it.
async fn unknown_email_check() -> Duration {
    let started = process_cpu_time();
    let verified = password::verify(
        Password::parse("an unknown user's guess").expect("a password"),
        None,
    )
    .await;
    assert!(!verified.expect("verify"), "no user never verifies");
    process_cpu_time() - started
}

/// In a fresh process: the first check's CPU time, then the later ones', as one line.
fn probe() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let first = unknown_email_check().await;
        let mut later = Vec::new();
        for _ in 0..LATER_CHECKS {
            later.push(unknown_email_check().await.as_micros().to_string());
        }
        println!(
            "probe first_us={} later_us={}",
            first.as_micros(),
            later.join(",")
        );
    });
}

/// One probe's first check over the median of its later ones.
fn probe_ratio() -> (f64, String) {
    let me = std::env::current_exe().expect("this test binary");
    let out = Command::new(me)
        .args([
            "--exact",
            "the_first_unknown_email_check_of_an_instance_costs_what_later_ones_do",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(PROBE, "1")
        .output()
        .expect("the probe runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest writes its own "test ... " before the probe's line, on the same line.
    let line = stdout
        .lines()
        .find_map(|l| l.find("probe first_us=").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no probe line: {stdout}"));
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .to_owned()
    };
    let first: f64 = field("first_us=").parse().expect("first_us");
    let mut later: Vec<f64> = field("later_us=")
        .split(',')
        .map(|v| v.parse().expect("later_us"))
        .collect();
    later.sort_by(f64::total_cmp);
    (first / later[later.len() / 2], line.to_owned())
}

#[test]
fn the_first_unknown_email_check_of_an_instance_costs_what_later_ones_do() {
    if std::env::var_os(PROBE).is_some() {
        return probe();
    }
    let mut ratios = Vec::new();
    for _ in 0..PROBES {
        let (ratio, line) = probe_ratio();
        println!("{line}: first / median of later = {ratio:.2}");
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[PROBES / 2];
    assert!(
        median < MAX_RATIO,
        "the first unknown-email check of a fresh instance costs {median:.2}× a later one (ratios {ratios:.2?}): \
         it does work the later ones do not (a dummy hash made on first use?)"
    );
}
