//! The tokio runtime a function runs on, sized to what its execution environment is given.
//!
//! One binary serves both ways Lambda runs a function:
//! - **On demand** (default Lambda): an environment gets one event at a time, and
//!   `AWS_LAMBDA_MAX_CONCURRENCY` is unset. One thread is all it can use: more would only add
//!   wake-ups between threads, and memory.
//! - **Lambda Managed Instances**: an environment gets up to `AWS_LAMBDA_MAX_CONCURRENCY`
//!   events at once (the function's `PerExecutionEnvironmentMaxConcurrency`), and
//!   `lambda_http::run_concurrent` runs one long-poll loop per slot as a task. Those tasks need
//!   as many worker threads as the environment has vCPUs, no more: the work is short and
//!   non-blocking, so a thread per vCPU keeps every core busy without threads taking turns on
//!   one. The vCPUs are what the process may use (`available_parallelism`: its CPU affinity
//!   and cgroup quota), not what the host has. With a single vCPU the one thread stays: the
//!   tasks interleave on it.
//!
//! Argon2 runs on the blocking pool either way, bounded to one hash per vCPU at once
//! (`auth::password`).

use std::num::NonZeroUsize;

/// How a function's runtime is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Invocations the environment may send at once (1 on demand).
    pub max_concurrency: u32,
    /// Worker threads; 1 means tokio's current-thread runtime.
    pub workers: usize,
}

impl Sizing {
    /// From `AWS_LAMBDA_MAX_CONCURRENCY` and the vCPUs this process may use.
    pub fn from_env() -> Self {
        Self::new(
            std::env::var("AWS_LAMBDA_MAX_CONCURRENCY").ok().as_deref(),
            vcpus(),
        )
    }

    /// `max_concurrency` as Lambda sets it (unset, unparsable or 0: one at a time, as
    /// `lambda_runtime` reads it too), on `vcpus` cores.
    pub fn new(max_concurrency: Option<&str>, vcpus: usize) -> Self {
        let max_concurrency = max_concurrency
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|&c| c > 0)
            .unwrap_or(1);
        let workers = if max_concurrency > 1 {
            vcpus.clamp(1, max_concurrency as usize)
        } else {
            1
        };
        Sizing {
            max_concurrency,
            workers,
        }
    }

    /// The runtime: current-thread for one worker, multi-threaded with `workers` threads
    /// otherwise, with I/O and timers either way.
    pub fn build(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = if self.workers > 1 {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(self.workers);
            builder
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        builder.enable_all().build()
    }
}

/// The vCPUs this process may run on (1 when unknown).
pub fn vcpus() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The runtime for this environment ([`Sizing::from_env`]).
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    Sizing::from_env().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_unless_lambda_sends_several_events_at_once() {
        for unset in [None, Some(""), Some("0"), Some("1"), Some("x"), Some("-4")] {
            assert_eq!(
                Sizing::new(unset, 8),
                Sizing {
                    max_concurrency: 1,
                    workers: 1
                },
                "{unset:?}"
            );
        }
        assert_eq!(
            Sizing::new(Some("64"), 2),
            Sizing {
                max_concurrency: 64,
                workers: 2
            }
        );
        assert_eq!(
            Sizing::new(Some(" 32 "), 1),
            Sizing {
                max_concurrency: 32,
                workers: 1
            },
            "one vCPU: one thread"
        );
        assert_eq!(
            Sizing::new(Some("2"), 16),
            Sizing {
                max_concurrency: 2,
                workers: 2
            },
            "no idle workers"
        );
    }

    #[test]
    fn both_layouts_build_and_run() {
        for sizing in [Sizing::new(None, 4), Sizing::new(Some("8"), 2)] {
            let runtime = sizing.build().expect("runtime");
            let flavor = runtime.handle().runtime_flavor();
            let expected = if sizing.workers > 1 {
                tokio::runtime::RuntimeFlavor::MultiThread
            } else {
                tokio::runtime::RuntimeFlavor::CurrentThread
            };
            assert_eq!(flavor, expected);
            assert_eq!(
                runtime.block_on(async { tokio::spawn(async { 7 }).await.expect("task") }),
                7
            );
        }
    }
}
