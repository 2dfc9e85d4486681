//! An HTTP proxy in front of the test DynamoDB that can fail the way a network does: refuse
//! connections, swallow requests and never answer, or pass a request on and lose its answer.
//! It speaks the AWS JSON protocol's HTTP and nothing DynamoDB's own, so it stands in front of
//! Secrets Manager as well (a Secrets Manager that never answers, `production_init.rs`).
//!
//! It can also hold answers: a request reaches DynamoDB and is answered there, and the answer
//! waits in the proxy until released, which is a read "in flight" that saw the table as it was
//! when it arrived.
//!
//! Losing answers is what makes the SDK retry a write that was applied: DynamoDB (dynoxide) has
//! done the write, the client sees the connection close before an answer, and sends the
//! same request again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the proxy does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Passes requests and answers.
    Open,
    /// Nothing listens on the port (connection refused); open connections are dropped.
    Refuse,
    /// Connections are accepted and requests read, and nothing is ever answered.
    Blackhole,
}

/// The proxy; stops when dropped.
pub struct DynamoProxy {
    pub endpoint: String,
    mode: watch::Sender<Mode>,
    losses: Arc<Mutex<HashMap<String, usize>>>,
    failures: Arc<Mutex<HashMap<String, usize>>>,
    lost: Arc<Mutex<Vec<String>>>,
    holds: Arc<Mutex<HashMap<String, usize>>>,
    held: watch::Sender<usize>,
    release: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

type Upstream = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

impl DynamoProxy {
    /// A proxy on a free loopback port in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mode, watch) = watch::channel(Mode::Open);
        let losses: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let failures: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let lost: Arc<Mutex<Vec<String>>> = Arc::default();
        let holds: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (held, _) = watch::channel(0);
        let (release, _) = watch::channel(0);
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            losses: losses.clone(),
            failures: failures.clone(),
            lost: lost.clone(),
            holds: holds.clone(),
            held: held.clone(),
            release: release.clone(),
        };
        let task = tokio::spawn(serve(listener, addr, shared, watch));
        DynamoProxy {
            endpoint: format!("http://{addr}"),
            mode,
            losses,
            failures,
            lost,
            holds,
            held,
            release,
            task,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// The next `count` requests of `operation` (`PutItem`, `TransactWriteItems`, ...; or
    /// `PutItem|COMMENT#`: those whose body holds the text after the bar) reach DynamoDB, which
    /// applies them, and their answers are lost: the client's connection is closed before any
    /// byte of the answer.
    pub fn lose_answers(&self, operation: &str, count: usize) {
        self.losses
            .lock()
            .expect("lock")
            .insert(operation.to_owned(), count);
    }

    /// The next `count` requests of `operation` never reach DynamoDB: the proxy answers each
    /// with DynamoDB's own `500 InternalServerError`, which the SDK retries.
    pub fn fail_requests(&self, operation: &str, count: usize) {
        self.failures
            .lock()
            .expect("lock")
            .insert(operation.to_owned(), count);
    }

    /// The next `count` requests of `operation` reach DynamoDB, which answers them, and their
    /// answers wait in the proxy until [`DynamoProxy::release_answers`].
    pub fn hold_answers(&self, operation: &str, count: usize) {
        self.holds
            .lock()
            .expect("lock")
            .insert(operation.to_owned(), count);
    }

    /// Waits until `count` answers in all are held (DynamoDB has answered them); panics after 10 s.
    pub async fn answers_held(&self, count: usize) {
        let mut held = self.held.subscribe();
        tokio::time::timeout(Duration::from_secs(10), held.wait_for(|n| *n >= count))
            .await
            .expect("answers held in time")
            .expect("proxy running");
    }

    /// Lets every held answer go on to its client.
    pub fn release_answers(&self) {
        self.release.send_modify(|generation| *generation += 1);
    }

    /// The operations whose answers were lost so far, in order.
    pub fn lost(&self) -> Vec<String> {
        self.lost.lock().expect("lock").clone()
    }
}

impl Drop for DynamoProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: Upstream,
    losses: Arc<Mutex<HashMap<String, usize>>>,
    failures: Arc<Mutex<HashMap<String, usize>>>,
    lost: Arc<Mutex<Vec<String>>>,
    holds: Arc<Mutex<HashMap<String, usize>>>,
    held: watch::Sender<usize>,
    release: watch::Sender<u64>,
}

/// Takes one from the count of the first rule in `counts` this request matches, if any is
/// left. A rule is an operation (`PutItem`), or an operation and a text its body holds
/// (`PutItem|COMMENT#`: a comment's `PutItem`, not an idempotency claim's).
fn take_one(counts: &Mutex<HashMap<String, usize>>, operation: &str, body: &[u8]) -> bool {
    let mut counts = counts.lock().expect("lock");
    let holds = |needle: &str| body.windows(needle.len()).any(|w| w == needle.as_bytes());
    let rule = counts.iter_mut().find(|(rule, left)| {
        **left > 0
            && match rule.split_once('|') {
                Some((op, needle)) => op == operation && holds(needle),
                None => rule.as_str() == operation,
            }
    });
    match rule {
        Some((_, left)) => {
            *left -= 1;
            true
        }
        None => false,
    }
}

async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    shared: Shared,
    mut mode: watch::Receiver<Mode>,
) {
    let mut listener = Some(listener);
    loop {
        let current = *mode.borrow_and_update();
        match (current, &listener) {
            (Mode::Refuse, _) => {
                listener = None; // closed: the kernel refuses connections to the port
                if mode.changed().await.is_err() {
                    return;
                }
            }
            (_, None) => listener = Some(rebind(addr).await),
            (_, Some(open)) => tokio::select! {
                accepted = open.accept() => if let Ok((socket, _)) = accepted {
                    tokio::spawn(connection(socket, shared.clone(), mode.clone()));
                },
                changed = mode.changed() => if changed.is_err() { return },
            },
        }
    }
}

async fn rebind(addr: SocketAddr) -> TcpListener {
    for _ in 0..200 {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("could not bind {addr} again");
}

/// One client connection, served until it closes or the mode leaves `Open`/`Blackhole`.
async fn connection(
    socket: tokio::net::TcpStream,
    shared: Shared,
    mut mode: watch::Receiver<Mode>,
) {
    let service_mode = mode.clone();
    let service = service_fn(move |req| forward(req, shared.clone(), service_mode.clone()));
    let served =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service);
    let start = *mode.borrow_and_update();
    tokio::select! {
        _ = served => {}
        _ = mode.wait_for(|m| *m != start) => {}
    }
}

/// Why the proxy gave no answer (hyper closes the connection).
#[derive(Debug)]
struct NoAnswer(&'static str);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for NoAnswer {}

async fn forward(
    req: Request<Incoming>,
    shared: Shared,
    mode: watch::Receiver<Mode>,
) -> Result<Response<Full<Bytes>>, NoAnswer> {
    if *mode.borrow() == Mode::Blackhole {
        std::future::pending::<()>().await;
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| NoAnswer("request body"))?
        .to_bytes();
    if take_one(&shared.failures, &operation, &body) {
        let error = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected"}"#;
        return Response::builder()
            .status(500)
            .header("content-type", "application/x-amz-json-1.0")
            .body(Full::new(Bytes::from_static(error.as_bytes())))
            .map_err(|_| NoAnswer("error answer"));
    }
    let uri = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        upstream = upstream.header(name, value);
    }
    let request_body = body.clone();
    let upstream = upstream
        .body(Full::new(body))
        .map_err(|_| NoAnswer("request"))?;
    let answer = shared
        .client
        .request(upstream)
        .await
        .map_err(|_| NoAnswer("upstream"))?;
    let (parts, answer_body) = answer.into_parts();
    let answer_body = answer_body
        .collect()
        .await
        .map_err(|_| NoAnswer("answer body"))?
        .to_bytes();
    if take_one(&shared.holds, &operation, &request_body) {
        let mut released = shared.release.subscribe();
        shared.held.send_modify(|n| *n += 1);
        let _ = released.changed().await;
    }
    if take_one(&shared.losses, &operation, &request_body) {
        shared.lost.lock().expect("lock").push(operation);
        return Err(NoAnswer("answer lost on purpose"));
    }
    Ok(Response::from_parts(parts, Full::new(answer_body)))
}
