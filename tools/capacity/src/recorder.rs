//! The recording proxy: an HTTP proxy in front of the emulator through which the app and the
//! stream consumers reach the table, so what is measured is what goes over the wire, whatever
//! code sends it.
//!
//! For each DynamoDB call (`X-Amz-Target: DynamoDB_20120810.<Op>`; the streams API passes
//! untouched) it asks the emulator for `ReturnConsumedCapacity: INDEXES` (the app ignores the
//! extra field). In [`Mode::Full`] calls go one at a time: the items a call touches are read
//! straight from the emulator just before and just after it (consistent reads the app never
//! sees), so each write is sized exactly on both images and each index's entry is known
//! (`account`). [`Mode::Light`] records without those reads or the one-at-a-time gate, taking
//! the emulator's figures: for timing a request without the recorder's own cost in it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dynoxide::types::Item;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::account::{account, outcome, reported, Images, Plan};
use crate::record::{Access, Call, Check, Kind, TABLE};
use crate::schema::TableSchema;
use crate::wire::Wire;

/// How much the recorder does per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One call at a time, each write sized on the items before and after it.
    Full,
    /// The emulator's figures only, calls concurrent: for timing.
    Light,
}

/// The proxy; stops when dropped.
pub struct Recorder {
    /// Where the app and the consumers send their calls.
    pub endpoint: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    wire: Wire,
    schema: TableSchema,
    /// Calls in [`Mode::Full`] hold it from their first image read to their last.
    gate: tokio::sync::Mutex<()>,
    light: AtomicBool,
    log: Mutex<Vec<Call>>,
}

impl Recorder {
    /// A recorder on a free loopback port in front of `upstream` (`http://host:port`), for the
    /// table `table`, whose schema it reads now.
    pub async fn start(upstream: &str, table: &str) -> Result<Self, String> {
        let wire = Wire::new(upstream);
        let described = wire
            .ok("DescribeTable", &json!({ "TableName": table }))
            .await?;
        let schema = TableSchema::from_describe(&described)?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("recorder: bind: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("recorder: {e}"))?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            wire,
            schema,
            gate: tokio::sync::Mutex::new(()),
            light: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(serve(listener, addr, shared.clone()));
        Ok(Recorder {
            endpoint: format!("http://{addr}"),
            shared,
            task,
        })
    }

    pub fn schema(&self) -> &TableSchema {
        &self.shared.schema
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared
            .light
            .store(mode == Mode::Light, Ordering::SeqCst);
    }

    /// Every call recorded since the last `take`, in order.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.shared.log.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, _addr: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(req, shared.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

/// Why the proxy gave no answer (hyper closes the connection; the client sees a network error).
#[derive(Debug)]
struct NoAnswer(String);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoAnswer {}

async fn forward(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, NoAnswer> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| NoAnswer(format!("request body: {e}")))?
        .to_bytes();
    let operation = target.strip_prefix("DynamoDB_20120810.").map(str::to_owned);
    let parsed: Option<Value> = operation
        .as_ref()
        .and_then(|_| serde_json::from_slice(&body).ok());
    let (Some(operation), Some(mut request)) = (operation, parsed) else {
        // The streams API, or a body that is not JSON: passed on as it is.
        let (status, headers, answer) = send(&shared, &parts, body).await?;
        return respond(status, headers, answer);
    };
    let plan = Plan::of(&operation, &request, &shared.schema);
    if matches!(plan, Plan::None) {
        let (status, headers, answer) = send(&shared, &parts, body).await?;
        return respond(status, headers, answer);
    }
    request["ReturnConsumedCapacity"] = json!("INDEXES");
    let body = Bytes::from(request.to_string());
    let light = shared.light.load(Ordering::SeqCst);
    let (status, headers, answer, call) = if light {
        let (status, headers, answer) = send(&shared, &parts, body).await?;
        let json: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let call = account_light(&operation, &plan, &shared.schema, status, &json);
        (status, headers, answer, call)
    } else {
        let _turn = shared.gate.lock().await;
        let keys = plan.keys();
        let before = images(&shared.wire, &shared.schema, &keys).await;
        let (status, headers, answer) = send(&shared, &parts, body).await?;
        let after = if plan.is_write() {
            images(&shared.wire, &shared.schema, &keys).await
        } else {
            Ok(Images::new())
        };
        let json: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let call = match (before, after) {
            (Ok(before), Ok(after)) => account(
                &operation,
                &plan,
                &shared.schema,
                &before,
                &after,
                status,
                &json,
            ),
            (Err(e), _) | (_, Err(e)) => {
                let mut call = account_light(&operation, &plan, &shared.schema, status, &json);
                call.check = Check::NotChecked(format!("images not read: {e}"));
                call
            }
        };
        (status, headers, answer, call)
    };
    shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(call);
    respond(status, headers, answer)
}

type Headers = Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>;

/// Sends `body` on to the emulator with the client's headers (but its length, which the body
/// now sets).
async fn send(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<(u16, Headers, Bytes), NoAnswer> {
    let uri = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in &parts.headers {
        if name != hyper::header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream
        .body(Full::new(body))
        .map_err(|e| NoAnswer(format!("request: {e}")))?;
    let answer = shared
        .client
        .request(upstream)
        .await
        .map_err(|e| NoAnswer(format!("upstream: {e}")))?;
    let (parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| NoAnswer(format!("answer body: {e}")))?
        .to_bytes();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((parts.status.as_u16(), headers, body))
}

fn respond(status: u16, headers: Headers, body: Bytes) -> Result<Response<Full<Bytes>>, NoAnswer> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        if name != hyper::header::CONTENT_LENGTH {
            response = response.header(name, value);
        }
    }
    response
        .body(Full::new(body))
        .map_err(|e| NoAnswer(format!("answer: {e}")))
}

/// The items under `keys` as the table holds them now (strongly consistent), by identity.
pub async fn images(wire: &Wire, schema: &TableSchema, keys: &[Item]) -> Result<Images, String> {
    let mut images = Images::new();
    let mut seen = HashSet::new();
    let unique: Vec<&Item> = keys
        .iter()
        .filter(|k| seen.insert(schema.identity(k)))
        .collect();
    for chunk in unique.chunks(100) {
        let mut pending: Vec<Value> = chunk
            .iter()
            .map(|k| serde_json::to_value(k).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        for _ in 0..20 {
            if pending.is_empty() {
                break;
            }
            let body = json!({"RequestItems": {schema.name.as_str(): {"Keys": pending, "ConsistentRead": true}}});
            let answer = wire.ok("BatchGetItem", &body).await?;
            for found in answer["Responses"][schema.name.as_str()]
                .as_array()
                .into_iter()
                .flatten()
            {
                let item: Item =
                    serde_json::from_value(found.clone()).map_err(|e| e.to_string())?;
                images.insert(schema.identity(&item), item);
            }
            pending = answer["UnprocessedKeys"][schema.name.as_str()]["Keys"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
    }
    Ok(images)
}

/// A call accounted from the emulator's figures alone: the table's units spread evenly over
/// the partitions it names, an index's units on no known partition.
fn account_light(
    operation: &str,
    plan: &Plan,
    schema: &TableSchema,
    status: u16,
    answer: &Value,
) -> Call {
    let outcome = outcome(status, answer);
    let reported = reported(schema, answer).unwrap_or_default();
    let (kind, partitions, consistent): (Kind, Vec<String>, bool) = match plan {
        Plan::Writes(touches) => (
            Kind::Write,
            touches
                .iter()
                .filter_map(|t| schema.partition_of(&t.key))
                .collect(),
            true,
        ),
        Plan::Reads(reads) => (
            Kind::Read,
            reads
                .iter()
                .filter_map(|r| schema.partition_of(&r.key))
                .collect(),
            reads.iter().all(|r| r.consistent),
        ),
        Plan::Range {
            partition,
            consistent,
            ..
        } => (Kind::Read, vec![partition.clone()], *consistent),
        _ => (Kind::Write, vec!["(PartiQL)".to_owned()], true),
    };
    let transactional = operation.starts_with("Transact");
    let mut accesses = Vec::new();
    for (resource, units) in reported {
        if resource == TABLE && !partitions.is_empty() {
            let share = units / partitions.len() as f64;
            accesses.extend(partitions.iter().map(|p| Access {
                resource: TABLE.to_owned(),
                partition: p.clone(),
                kind,
                units: share,
                bytes: 0,
                transactional,
                consistent,
                item: None,
            }));
        } else {
            let partition = match plan {
                Plan::Range { partition, .. } => partition.clone(),
                _ => "(not imaged: light mode)".to_owned(),
            };
            accesses.push(Access {
                resource,
                partition,
                kind,
                units,
                bytes: 0,
                transactional,
                consistent,
                item: None,
            });
        }
    }
    Call {
        operation: operation.to_owned(),
        outcome,
        accesses,
        check: Check::NotChecked("light mode: the emulator's figures".into()),
        written: vec![],
    }
}
