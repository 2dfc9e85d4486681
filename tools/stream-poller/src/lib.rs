//! What Lambda's event source mapping does for a DynamoDB stream, for the local stack and the
//! tests: read the table's stream and hand its records, as the Lambda event they would be
//! (`aws_lambda_events`' DynamoDB `Event`), to a function, then act on its answer the way the
//! mapping does:
//!
//! - success: the records are done, the next batch follows;
//! - `batchItemFailures` (`ReportBatchItemFailures`): the records before the first reported one
//!   are done; the batch is retried from it;
//! - a function error: the batch is retried, bisected (`BisectBatchOnFunctionError`), so one
//!   bad record ends up alone;
//! - a record retried `max_retries` times, or older than `max_record_age`, goes to the failure
//!   destination (here: [`Poller::failed`] and an error log line) and the shard moves on.
//!
//! The stream is read through the DynamoDB Streams JSON API (`GetShardIterator`, `GetRecords`),
//! whose records are the objects a Lambda event carries; dynoxide serves that API locally.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// A plain HTTP/1 client for JSON POSTs (the local endpoints are `http://`).
#[derive(Clone)]
struct JsonHttp {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// Signs requests to the DynamoDB APIs with SigV4, as every AWS client does (dynoxide, like
/// DynamoDB, refuses an unsigned request). Credentials and region from the environment, as the
/// functions take them; local placeholders when unset.
#[derive(Clone)]
struct Signer {
    identity: aws_smithy_runtime_api::client::identity::Identity,
    region: String,
}

impl Signer {
    fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let credentials = aws_credential_types::Credentials::new(
            var("AWS_ACCESS_KEY_ID", "local"),
            var("AWS_SECRET_ACCESS_KEY", "local"),
            std::env::var("AWS_SESSION_TOKEN").ok(),
            None,
            "environment",
        );
        Signer {
            identity: credentials.into(),
            region: var("AWS_REGION", "us-east-1"),
        }
    }

    fn sign(&self, request: &mut hyper::Request<Full<Bytes>>, body: &[u8]) -> Result<(), String> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("dynamodb")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let uri = request.uri().to_string();
        let signable =
            SignableRequest::new("POST", uri, headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

/// An HTTP answer: status, whether it names a function error, and the body.
struct Answer {
    status: u16,
    function_error: bool,
    body: Bytes,
}

impl JsonHttp {
    fn new() -> Self {
        JsonHttp {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn post(
        &self,
        url: &str,
        target: Option<&str>,
        body: &Value,
        signer: Option<&Signer>,
    ) -> Result<Answer, String> {
        let mut request =
            hyper::Request::post(url).header("content-type", "application/x-amz-json-1.0");
        if let Some(target) = target {
            request = request.header("x-amz-target", target);
        }
        let body = Bytes::from(body.to_string());
        let mut request = request
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        if let Some(signer) = signer {
            signer.sign(&mut request, &body)?;
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status().as_u16();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            function_error,
            body,
        })
    }
}

/// The DynamoDB and DynamoDB Streams JSON APIs of one endpoint.
#[derive(Clone)]
pub struct StreamApi {
    endpoint: String,
    http: JsonHttp,
    signer: Signer,
}

impl StreamApi {
    pub fn new(endpoint: &str) -> Self {
        StreamApi {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            http: JsonHttp::new(),
            signer: Signer::from_env(),
        }
    }

    async fn call(&self, target: &str, body: Value) -> Result<Value, String> {
        let answer = self
            .http
            .post(
                &format!("{}/", self.endpoint),
                Some(target),
                &body,
                Some(&self.signer),
            )
            .await?;
        let value: Value =
            serde_json::from_slice(&answer.body).map_err(|e| format!("{target}: {e}"))?;
        if answer.status != 200 {
            return Err(format!("{target}: {} {value}", answer.status));
        }
        Ok(value)
    }

    /// The ARN of `table`'s current stream, if it has one.
    pub async fn stream_arn(&self, table: &str) -> Result<Option<String>, String> {
        let out = self
            .call(
                "DynamoDB_20120810.DescribeTable",
                json!({"TableName": table}),
            )
            .await?;
        Ok(out["Table"]["LatestStreamArn"].as_str().map(str::to_owned))
    }

    async fn shards(&self, stream_arn: &str) -> Result<Vec<String>, String> {
        let out = self
            .call(
                "DynamoDBStreams_20120810.DescribeStream",
                json!({"StreamArn": stream_arn}),
            )
            .await?;
        let shards = out["StreamDescription"]["Shards"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(shards
            .iter()
            .filter_map(|s| s["ShardId"].as_str().map(str::to_owned))
            .collect())
    }

    async fn iterator(
        &self,
        stream_arn: &str,
        shard: &str,
        latest: bool,
    ) -> Result<String, String> {
        let kind = if latest { "LATEST" } else { "TRIM_HORIZON" };
        let body = json!({"StreamArn": stream_arn, "ShardId": shard, "ShardIteratorType": kind});
        let out = self
            .call("DynamoDBStreams_20120810.GetShardIterator", body)
            .await?;
        out["ShardIterator"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "GetShardIterator: no iterator".into())
    }

    async fn records(
        &self,
        iterator: &str,
        limit: usize,
    ) -> Result<(Vec<EventRecord>, Option<String>), String> {
        let out = self
            .call(
                "DynamoDBStreams_20120810.GetRecords",
                json!({"ShardIterator": iterator, "Limit": limit}),
            )
            .await?;
        let records = serde_json::from_value(out["Records"].clone())
            .map_err(|e| format!("GetRecords: {e}"))?;
        Ok((
            records,
            out["NextShardIterator"].as_str().map(str::to_owned),
        ))
    }
}

/// A function the poller can hand a batch to: `Ok` with its answer, `Err` for a function error.
pub trait Invoke {
    fn invoke(&self, event: Event) -> impl Future<Output = Result<DynamoDbEventResponse, String>>;
}

/// A function served by the Lambda invoke API (`cargo lambda watch`, or Lambda itself):
/// `POST /2015-03-31/functions/<name>/invocations`.
pub struct HttpInvoker {
    url: String,
    http: JsonHttp,
}

impl HttpInvoker {
    pub fn new(api: &str, function: &str) -> Self {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            api.trim_end_matches('/')
        );
        HttpInvoker {
            url,
            http: JsonHttp::new(),
        }
    }
}

impl Invoke for HttpInvoker {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, String> {
        let body = serde_json::to_value(&event).map_err(|e| e.to_string())?;
        let answer = self.http.post(&self.url, None, &body, None).await?;
        let text = String::from_utf8_lossy(&answer.body);
        if answer.function_error || !(200..300).contains(&answer.status) {
            return Err(format!("function error ({}): {text}", answer.status));
        }
        serde_json::from_slice(&answer.body).map_err(|e| format!("function answer {text}: {e}"))
    }
}

/// How the mapping behaves; the defaults are the template's.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// `BatchSize`.
    pub batch_size: usize,
    /// How long an idle shard waits before it is read again (Lambda reads each shard about four
    /// times a second).
    pub idle_wait: Duration,
    /// Wait before retrying a failed batch.
    pub retry_wait: Duration,
    /// `MaximumRetryAttempts`.
    pub max_retries: u32,
    /// `MaximumRecordAgeInSeconds`.
    pub max_record_age: Duration,
    /// `StartingPosition: LATEST` (else `TRIM_HORIZON`).
    pub start_at_latest: bool,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            batch_size: 100,
            idle_wait: Duration::from_millis(250),
            retry_wait: Duration::from_millis(200),
            max_retries: 10_000,
            max_record_age: Duration::from_secs(600),
            start_at_latest: true,
        }
    }
}

/// How often [`Poller::run`] looks for new shards.
const SHARD_REFRESH: Duration = Duration::from_secs(5);

/// One shard's place in the stream.
struct Shard {
    /// Where the next `GetRecords` reads.
    iterator: Option<String>,
    /// Records read and not yet done, oldest first.
    pending: Vec<EventRecord>,
    /// Failed attempts of the batch at the head of `pending`.
    attempts: u32,
    /// How many pending records the next invocation takes (halved on function errors).
    batch_limit: usize,
}

/// What one [`Poller::step`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Records handed to the function.
    pub delivered: usize,
    /// Records now done (acknowledged or sent to the failure destination).
    pub done: usize,
    /// Whether records remain to be delivered (a retry, or more in the stream).
    pub behind: bool,
}

/// The event source mapping of one table's stream.
pub struct Poller {
    api: StreamApi,
    stream_arn: String,
    config: PollerConfig,
    shards: BTreeMap<String, Shard>,
    failed: Vec<EventRecord>,
}

impl Poller {
    /// Finds `table`'s stream. Shards are picked up at the configured starting position.
    pub async fn new(api: StreamApi, table: &str, config: PollerConfig) -> Result<Self, String> {
        let stream_arn = api
            .stream_arn(table)
            .await?
            .ok_or_else(|| format!("table {table} has no stream"))?;
        let mut poller = Poller {
            api,
            stream_arn,
            config,
            shards: BTreeMap::new(),
            failed: Vec::new(),
        };
        poller.discover().await?;
        Ok(poller)
    }

    /// Records sent to the failure destination so far.
    pub fn failed(&self) -> &[EventRecord] {
        &self.failed
    }

    async fn discover(&mut self) -> Result<(), String> {
        for shard in self.api.shards(&self.stream_arn).await? {
            if !self.shards.contains_key(&shard) {
                let iterator = self
                    .api
                    .iterator(&self.stream_arn, &shard, self.config.start_at_latest)
                    .await?;
                let batch_limit = self.config.batch_size;
                self.shards.insert(
                    shard,
                    Shard {
                        iterator: Some(iterator),
                        pending: Vec::new(),
                        attempts: 0,
                        batch_limit,
                    },
                );
            }
        }
        Ok(())
    }

    /// Reads each shard once and delivers at most one batch per shard.
    pub async fn step(&mut self, function: &impl Invoke) -> Result<Step, String> {
        let mut step = Step::default();
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for id in ids {
            let Some(mut shard) = self.shards.remove(&id) else {
                continue;
            };
            let result = self.step_shard(&mut shard, function, &mut step).await;
            step.behind |= !shard.pending.is_empty();
            self.shards.insert(id, shard);
            result?;
        }
        Ok(step)
    }

    async fn step_shard(
        &mut self,
        shard: &mut Shard,
        function: &impl Invoke,
        step: &mut Step,
    ) -> Result<(), String> {
        if shard.pending.is_empty() {
            let Some(iterator) = shard.iterator.take() else {
                return Ok(());
            };
            let (records, next) = match self.api.records(&iterator, self.config.batch_size).await {
                Ok(read) => read,
                Err(e) => {
                    shard.iterator = Some(iterator);
                    return Err(e);
                }
            };
            shard.iterator = next;
            shard.pending = records;
        }
        self.expire(shard, step);
        if shard.pending.is_empty() {
            return Ok(());
        }
        let count = shard.batch_limit.clamp(1, shard.pending.len());
        let mut records = shard.pending[..count].to_vec();
        for record in &mut records {
            record.event_source_arn = Some(self.stream_arn.clone());
        }
        let mut event = Event::default();
        event.records = records;
        step.delivered += count;
        match function.invoke(event).await {
            Ok(answer) => {
                let failed_at = answer
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.as_deref().unwrap_or_default())
                    .map(|id| {
                        shard.pending[..count]
                            .iter()
                            .position(|r| r.change.sequence_number.as_deref() == Some(id))
                    })
                    .map(|at| at.unwrap_or(0)) // an identifier we did not send: the whole batch failed
                    .min();
                match failed_at {
                    None => {
                        self.done(shard, count, step);
                        shard.batch_limit = self.config.batch_size;
                    }
                    Some(at) => {
                        self.done(shard, at, step);
                        self.retry_head(shard, step, "reported as failed");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, records = count, "cache-sync failed; retrying the batch");
                shard.batch_limit = (count / 2).max(1);
                self.retry_head(shard, step, &error);
            }
        }
        Ok(())
    }

    /// The first `count` pending records are done.
    fn done(&self, shard: &mut Shard, count: usize, step: &mut Step) {
        if count > 0 {
            shard.pending.drain(..count);
            shard.attempts = 0;
            step.done += count;
        }
    }

    /// Counts a failed attempt of the head record; past `max_retries` it goes to the failure
    /// destination.
    fn retry_head(&mut self, shard: &mut Shard, step: &mut Step, why: &str) {
        shard.attempts += 1;
        if shard.attempts > self.config.max_retries && shard.batch_limit <= 1 {
            let record = shard.pending.remove(0);
            tracing::error!(
                sequence_number = record.change.sequence_number.as_deref(),
                why,
                "record sent to the failure destination"
            );
            self.failed.push(record);
            shard.attempts = 0;
            step.done += 1;
        }
    }

    /// Records older than `max_record_age` go to the failure destination unprocessed.
    fn expire(&mut self, shard: &mut Shard, step: &mut Step) {
        let now = std::time::SystemTime::now();
        while let Some(head) = shard.pending.first() {
            let created: std::time::SystemTime = head.change.approximate_creation_date_time.into();
            if now.duration_since(created).unwrap_or_default() <= self.config.max_record_age {
                return;
            }
            let record = shard.pending.remove(0);
            tracing::error!(
                sequence_number = record.change.sequence_number.as_deref(),
                "record too old; sent to the failure destination"
            );
            self.failed.push(record);
            step.done += 1;
        }
    }

    /// Delivers until the stream has nothing pending for `quiet` in a row, or `deadline` passes.
    pub async fn drain(
        &mut self,
        function: &impl Invoke,
        quiet: Duration,
        deadline: Duration,
    ) -> Result<(), String> {
        let started = tokio::time::Instant::now();
        let mut idle_since = None;
        while started.elapsed() < deadline {
            let step = self.step(function).await?;
            if step.delivered == 0 && !step.behind {
                let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= quiet {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            } else {
                idle_since = None;
                if step.delivered > 0 && step.done == 0 {
                    tokio::time::sleep(self.config.retry_wait).await;
                }
            }
        }
        Err(format!("the stream did not drain within {deadline:?}"))
    }

    /// Runs forever: reads, delivers, waits when idle or after a failed batch, and picks up
    /// new shards. Errors reaching the stream are logged and retried.
    pub async fn run(mut self, function: impl Invoke) {
        let mut discovered = tokio::time::Instant::now();
        loop {
            let wait = match self.step(&function).await {
                Ok(step) if step.delivered > 0 && step.done == 0 => self.config.retry_wait,
                Ok(step) if step.delivered > 0 || step.behind => Duration::ZERO,
                Ok(_) => self.config.idle_wait,
                Err(error) => {
                    tracing::warn!(%error, "reading the stream failed; retrying");
                    self.config.retry_wait
                }
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if discovered.elapsed() > SHARD_REFRESH {
                discovered = tokio::time::Instant::now();
                if let Err(error) = self.discover().await {
                    tracing::warn!(%error, "listing the stream's shards failed");
                }
            }
        }
    }
}
