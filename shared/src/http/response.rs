//! Writing responses: JSON bodies with the contract's headers.

use lambda_http::http::header::{ALLOW, CONTENT_TYPE, ETAG, LOCATION, RETRY_AFTER};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::error::AppError;

/// A JSON response. Serializing our own types cannot fail; if it ever did, the client gets
/// a `500` body of the contract rather than a panic.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => raw_json(status, text),
        Err(e) => error(&AppError::Internal(format!("serializing a response: {e}"))),
    }
}

/// A JSON body already serialized (a cached one, served without decoding it).
pub fn raw_json(status: u16, text: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `201` with `Location`.
pub fn created<T: Serialize>(body: &T, location: &str) -> Response<Body> {
    let mut response = json(201, body);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// A page of a list: `{"items": [...], "nextCursor": ...}`, from its items' JSON (cached or
/// freshly serialized) and its cursor.
pub fn page(items: &[String], next_cursor: Option<&str>) -> Response<Body> {
    let mut text = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 64);
    text.push_str("{\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(item);
    }
    text.push_str("],\"nextCursor\":");
    match next_cursor {
        // A cursor is base64url: nothing in it needs escaping.
        Some(cursor) => {
            text.push('"');
            text.push_str(cursor);
            text.push('"');
        }
        None => text.push_str("null"),
    }
    text.push('}');
    raw_json(200, text)
}

/// Adds `ETag: "<version>"`.
pub fn with_etag(mut response: Response<Body>, version: u64) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// `304 Not Modified` for a resource at `version`: its `ETag`, no body.
pub fn not_modified(version: u64) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    with_etag(response, version)
}

/// `204`, no body.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// `{"error": {"code", "message"}}` with the error's status; a `405` also says, in `Allow`,
/// which methods the path does serve.
pub fn error(err: &AppError) -> Response<Body> {
    let body =
        serde_json::json!({ "error": { "code": err.code(), "message": err.public_message() } });
    let mut response = raw_json(err.status(), body.to_string());
    if let AppError::MethodNotAllowed { allow } = err {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(seconds) = err.retry_after() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
