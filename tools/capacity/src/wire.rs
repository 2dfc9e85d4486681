//! DynamoDB's JSON protocol over plain HTTP, for the tool's own calls to the emulator (the
//! images before and after a write, the schema, bulk loading): no SDK in between, so nothing
//! of the tool's own reaches the recorder or changes what the app's client does.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// An HTTP client for the JSON protocol of one endpoint.
#[derive(Clone)]
pub struct Wire {
    endpoint: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer: the HTTP status and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The error type DynamoDB named (`ConditionalCheckFailedException`, ...), without its
    /// namespace.
    pub fn error_type(&self) -> Option<&str> {
        self.body["__type"]
            .as_str()
            .map(|t| t.rsplit('#').next().unwrap_or(t))
    }
}

/// dynoxide checks that a request carries SigV4 material and never verifies it: a well-formed
/// placeholder, since the tool's own calls need no identity.
const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=capacity/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000";

impl Wire {
    pub fn new(endpoint: &str) -> Self {
        Wire {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Calls `operation` (`GetItem`, `BatchGetItem`, ...) with `body`.
    pub async fn call(&self, operation: &str, body: &Value) -> Result<Answer, String> {
        let request = hyper::Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .header("x-amz-date", "20260101T000000Z")
            .header("authorization", AUTHORIZATION)
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("{operation}: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{operation}: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{operation}: {e}"))?
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{operation}: answer is not JSON ({e})"))?;
        Ok(Answer { status, body })
    }

    /// Calls `operation` and fails on any answer but `200`.
    pub async fn ok(&self, operation: &str, body: &Value) -> Result<Value, String> {
        let answer = self.call(operation, body).await?;
        if answer.status != 200 {
            return Err(format!("{operation}: {} {}", answer.status, answer.body));
        }
        Ok(answer.body)
    }
}
