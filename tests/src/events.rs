//! Requests as API Gateway sends them (HTTP API, payload 2.0), and what comes back.

use std::collections::BTreeMap;

use base64::Engine;
use lambda_http::{Body, Response};
use serde_json::{json, Value};

/// A request to build into an API Gateway event.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub base64: bool,
    /// The client's IP as API Gateway reports it (`requestContext.http.sourceIp`).
    pub source_ip: String,
}

impl ApiRequest {
    pub fn new(method: &str, path: &str) -> Self {
        ApiRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: BTreeMap::new(),
            body: None,
            base64: false,
            source_ip: "127.0.0.1".to_owned(),
        }
    }
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }
    pub fn patch(path: &str) -> Self {
        Self::new("PATCH", path)
    }
    pub fn delete(path: &str) -> Self {
        Self::new("DELETE", path)
    }
    pub fn put(path: &str) -> Self {
        Self::new("PUT", path)
    }

    /// `GET /users/me`, with no token yet (add one with [`ApiRequest::bearer`] or
    /// [`ApiRequest::aid`]).
    pub fn me() -> Self {
        Self::get("/users/me")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_owned());
        self
    }

    /// Sends the request from `ip`, as API Gateway would report it.
    pub fn from_ip(mut self, ip: &str) -> Self {
        self.source_ip = ip.to_owned();
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn aid(self, token: &str) -> Self {
        self.header("aid", token)
    }

    pub fn json(self, body: Value) -> Self {
        self.raw_body("application/json", &body.to_string())
    }

    pub fn raw_body(mut self, content_type: &str, body: &str) -> Self {
        if !content_type.is_empty() {
            self.headers
                .insert("content-type".to_owned(), content_type.to_owned());
        }
        self.body = Some(body.to_owned());
        self
    }

    /// Sends the body base64-encoded, as API Gateway does for binary media.
    pub fn base64_encoded(mut self) -> Self {
        if let Some(body) = self.body.take() {
            self.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
            self.base64 = true;
        }
        self
    }

    /// The event API Gateway (HTTP API, payload format 2.0) would deliver.
    pub fn to_v2_event(&self) -> Value {
        let (path, query) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": self.headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "test",
                "domainName": "test.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "test",
                "http": {"method": self.method, "path": path, "protocol": "HTTP/1.1", "sourceIp": self.source_ip, "userAgent": "tests"},
                "requestId": "test-request",
                "routeKey": "$default",
                "stage": "$default",
                "time": "26/Nov/2026:20:00:00 +0000",
                "timeEpoch": 1795723200000u64
            },
            "isBase64Encoded": self.base64
        });
        if let Some(body) = &self.body {
            event["body"] = Value::String(body.clone());
        }
        event
    }
}

/// A response, its body parsed as JSON (`Value::Null` when empty).
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub raw_body: String,
}

impl ApiResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The contract's `error.code`, if this is an error.
    pub fn error_code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// Asserts status and error code together, with the body in the message.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.error_code()),
            (status, Some(code)),
            "body: {}",
            self.raw_body
        );
        assert!(
            self.body["error"]["message"].is_string(),
            "message missing: {}",
            self.raw_body
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }

    /// Asserts the contract's `400 validation_failed`, its message naming `field`.
    pub fn assert_validation(&self, field: &str) {
        self.assert_error(400, "validation_failed");
        let message = self.body["error"]["message"].as_str().expect("message");
        assert!(
            message.contains(field),
            "message should name `{field}`: {message}"
        );
    }
}

impl From<Response<Body>> for ApiResponse {
    fn from(response: Response<Body>) -> Self {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let raw_body = match response.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        let body = if raw_body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&raw_body).unwrap_or(Value::Null)
        };
        ApiResponse {
            status,
            headers,
            body,
            raw_body,
        }
    }
}
