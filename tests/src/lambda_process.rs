//! A function binary run as Lambda runs it: a process of its own with Lambda's environment and
//! the test's, polling a [`RuntimeApi`] served here, its log lines kept for the test to read.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::events::{ApiRequest, ApiResponse};
use crate::runtime_api::{Outcome, RuntimeApi};
use crate::{TestEnv, TEST_SECRET};

/// A running (or exited) function process.
pub struct LambdaProcess {
    name: String,
    api: RuntimeApi,
    child: Child,
    log: PathBuf,
    started: Instant,
}

/// How a process's init ended.
#[derive(Debug)]
pub enum Init {
    /// It asked for its first event this long after it was started.
    Ready(Duration),
    /// It exited this long after it was started, without asking for an event.
    Exited(ExitStatus, Duration),
}

impl LambdaProcess {
    /// Starts `bin` with nothing in its environment but Lambda's variables for a function
    /// `name` (the Runtime API's address among them) and `vars`; stdout and stderr go to a log.
    pub async fn spawn(bin: &Path, name: &str, vars: &[(&str, String)]) -> Self {
        Self::spawn_command(Command::new(bin), name, vars).await
    }

    /// The same for a function that `command` starts (its binary through `taskset`, say).
    pub async fn spawn_command(mut command: Command, name: &str, vars: &[(&str, String)]) -> Self {
        let api = RuntimeApi::start(name).await;
        let log = std::env::temp_dir().join(format!("lambda-{name}-{}.log", ulid::Ulid::new()));
        let out = File::create(&log).expect("a log file");
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/02/[1]test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("the log file"))
            .stderr(out);
        let started = Instant::now();
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("starting {}: {e}", command.get_program().to_string_lossy())
        });
        LambdaProcess {
            name: name.to_owned(),
            api,
            child,
            log,
            started,
        }
    }

    /// `bin` started as a function of `env`'s world (`environment`, then `vars` on top) and
    /// ready for events: its init done, its first `next` poll made. Panics, with its log, if the
    /// init fails.
    pub async fn ready(
        bin: &Path,
        name: &str,
        env: &TestEnv,
        dynamodb: &str,
        vars: &[(&str, String)],
    ) -> Self {
        let mut all = environment(env, dynamodb);
        all.extend(vars.iter().map(|(k, v)| (*k, v.clone())));
        let mut function = Self::spawn(bin, name, &all).await;
        match function.init(Duration::from_secs(10)).await {
            Init::Ready(_) => function,
            Init::Exited(status, _) => panic!("the init failed ({status}):\n{}", function.log()),
        }
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The most memory the process has held at once so far (`VmHWM`, its resident set's high
    /// water mark), in KiB: what a request cost at its peak, read from the kernel, not timed.
    pub fn peak_memory_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process's status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in the process's status")
    }

    /// Waits, at most `timeout`, for the init to end: the first `next` poll, or the process
    /// exiting. Panics if neither happens.
    pub async fn init(&mut self, timeout: Duration) -> Init {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Ok(at)) = self.api.first_poll(Duration::from_millis(10)).await {
                return Init::Ready(at - self.started);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Init::Exited(status, self.started.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "no end to the init within {timeout:?}:\n{}",
                self.log()
            );
        }
    }

    /// Hands the function `event` (any event: a stream batch, say) and returns its raw answer.
    pub async fn invoke(&self, event: &Value) -> Outcome {
        self.invoke_raw(bytes::Bytes::from(event.to_string())).await
    }

    /// Hands the function an event already serialized, and returns its raw answer.
    pub async fn invoke_raw(&self, event: bytes::Bytes) -> Outcome {
        match self.api.invoke(event, Duration::from_secs(30)).await {
            Ok(outcome) => outcome,
            Err(error) => panic!("{}: {error}\n{}", self.name, self.log()),
        }
    }

    /// Sends `request` as an API Gateway (HTTP API) event and returns the function's answer.
    pub async fn send(&self, request: ApiRequest) -> ApiResponse {
        let event = bytes::Bytes::from(request.to_v2_event().to_string());
        let outcome = self.invoke_raw(event).await;
        assert!(
            outcome.ok,
            "the invocation failed: {}",
            String::from_utf8_lossy(&outcome.body)
        );
        let answer: Value = serde_json::from_slice(&outcome.body).expect("a JSON answer");
        let status = answer["statusCode"].as_u64().expect("statusCode") as u16;
        let headers = answer["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.to_lowercase(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let text = answer["body"].as_str().unwrap_or_default();
        let raw_body = if answer["isBase64Encoded"].as_bool() == Some(true) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64 body");
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            text.to_owned()
        };
        let body = serde_json::from_str(&raw_body).unwrap_or(Value::Null);
        ApiResponse {
            status,
            headers,
            body,
            raw_body,
        }
    }
}

/// The environment `template.yaml` gives a function, pointed at `env`'s Redis (in this run's
/// mode) and at DynamoDB at `dynamodb` (`env`'s, or a proxy in front of it), with the tests'
/// signing key and JSON logs.
pub fn environment(env: &TestEnv, dynamodb: &str) -> Vec<(&'static str, String)> {
    let mode = match env.redis.mode() {
        shared::config::CacheMode::Standalone => "standalone",
        shared::config::CacheMode::Cluster => "cluster",
    };
    vec![
        ("TABLE_NAME", crate::TABLE_NAME.to_owned()),
        ("DYNAMODB_ENDPOINT", dynamodb.to_owned()),
        ("REDIS_URL", env.redis.url()),
        ("REDIS_MODE", mode.to_owned()),
        ("JWT_SECRET", TEST_SECRET.to_owned()),
        // A loaded 2-core machine: long enough that a hit is never a timed-out miss.
        ("REDIS_TIMEOUT_MS", "500".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDTESTING".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test-secret-key".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
