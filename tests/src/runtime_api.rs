//! A minimal Lambda Runtime API, served to one function process (by the benchmark, and by the
//! tests of the functions' real init): what
//! `lambda_runtime` 1.x asks for (`invocation/next`, `invocation/{id}/response`,
//! `invocation/{id}/error`, `init/error`), one invocation at a time as Lambda does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot, Notify};

const PREFIX: &str = "/2018-06-01/runtime/";

/// What the function answered, and how long it took from the event leaving `next` to the
/// answer arriving.
#[derive(Debug)]
pub struct Outcome {
    pub ok: bool,
    pub body: Bytes,
    pub elapsed: Duration,
}

struct Pending {
    id: String,
    event: Bytes,
    done: oneshot::Sender<Outcome>,
}

struct State {
    function: String,
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    in_flight: Mutex<HashMap<String, (Instant, oneshot::Sender<Outcome>)>>,
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<String>>,
    changed: Notify,
}

/// The server for one function process. Dropping it stops it.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    state: Arc<State>,
    queue: mpsc::Sender<Pending>,
    next_id: AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start(function: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the runtime API");
        let addr = listener.local_addr().expect("addr");
        let (queue, rx) = mpsc::channel(1);
        let state = Arc::new(State {
            function: function.to_owned(),
            queue: tokio::sync::Mutex::new(rx),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: Mutex::new(None),
            init_error: Mutex::new(None),
            changed: Notify::new(),
        });
        let served = state.clone();
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let state = served.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi {
            addr,
            state,
            queue,
            next_id: AtomicU64::new(1),
            server,
        }
    }

    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// When the function first asked for an event, or why its init failed; `None` on timeout.
    pub async fn first_poll(&self, timeout: Duration) -> Option<Result<Instant, String>> {
        let wait = async {
            loop {
                let changed = self.state.changed.notified();
                if let Some(at) = *self.state.first_poll.lock().expect("lock") {
                    return Ok(at);
                }
                if let Some(error) = self.state.init_error.lock().expect("lock").clone() {
                    return Err(error);
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }

    /// Hands `event` to the function's pending `next` and waits for its answer.
    pub async fn invoke(&self, event: Bytes, timeout: Duration) -> Result<Outcome, String> {
        let id = format!(
            "request-{:08}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Pending { id, event, done })
            .await
            .map_err(|_| "runtime API stopped".to_owned())?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err("the invocation was dropped".to_owned()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, ""));
    };
    let method = req.method().clone();
    match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => {
            {
                let mut first = state.first_poll.lock().expect("lock");
                if first.is_none() {
                    *first = Some(Instant::now());
                    state.changed.notify_waiters();
                }
            }
            let Some(pending) = state.queue.lock().await.recv().await else {
                return Ok(reply(StatusCode::GONE, ""));
            };
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                + Duration::from_secs(30);
            let response = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("lambda-runtime-aws-request-id", &pending.id)
                .header(
                    "lambda-runtime-deadline-ms",
                    deadline.as_millis().to_string(),
                )
                .header(
                    "lambda-runtime-invoked-function-arn",
                    format!(
                        "arn:aws:lambda:us-east-1:123456789012:function:{}",
                        state.function
                    ),
                )
                .header(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000;Sampled=0",
                )
                .body(Full::new(pending.event))
                .expect("response");
            state
                .in_flight
                .lock()
                .expect("lock")
                .insert(pending.id, (Instant::now(), pending.done));
            Ok(response)
        }
        (Method::POST, ["invocation", id, outcome @ ("response" | "error")]) => {
            let ok = *outcome == "response";
            let id = id.to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let arrived = Instant::now();
            if let Some((sent, done)) = state.in_flight.lock().expect("lock").remove(&id) {
                let _ = done.send(Outcome {
                    ok,
                    body,
                    elapsed: arrived - sent,
                });
            }
            Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
        }
        (Method::POST, ["init", "error"]) => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            *state.init_error.lock().expect("lock") =
                Some(String::from_utf8_lossy(&body).into_owned());
            state.changed.notify_waiters();
            Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, "")),
    }
}
