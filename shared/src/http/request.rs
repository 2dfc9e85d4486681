//! Reading requests: the path and the API's stage, the client's IP, JSON bodies with per-field
//! errors, query parameters (`limit`, `cursor`), `If-Match` and `If-None-Match`, ids from the
//! path. Each failure is the contract's 4xx, never a panic.

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::http::HeaderMap;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Map, Value};

use crate::domain::ExpectedVersion;
use crate::error::AppError;

/// The contract's body limit: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The request's path as segments, and the API's stage when the event names one (`$default`,
/// HTTP API's unnamed stage, is none). The same for REST API, HTTP API, function URLs and
/// `cargo lambda watch`; whether the stage leads the path (it may: a custom domain's base path,
/// `cargo lambda`, SAM, an HTTP API's named stage) is for the router to tell
/// ([`super::routing::route`]).
pub fn path_segments(req: &Request) -> (Vec<String>, Option<String>) {
    let raw = req.raw_http_path();
    let path = if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    };
    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (segments, stage.filter(|s| s != "$default"))
}

/// The client's IP as API Gateway saw it (`requestContext`), never a client-sent header such
/// as `X-Forwarded-For`, which anyone can write. `None` where the event has none (ALB).
pub fn source_ip(req: &Request) -> Option<&str> {
    let ip = match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref(),
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.as_deref(),
        _ => None,
    };
    ip.map(str::trim).filter(|ip| !ip.is_empty())
}

/// The body as sent (`lambda_http` has already decoded a base64 one).
pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

/// A JSON object body; unknown fields are kept but never read.
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    /// Reads the body as a JSON object: `413` over 64 KiB, `415` for a non-JSON content type,
    /// `400 invalid_json` when it is not a JSON object.
    pub fn from_request(req: &Request) -> Result<Self, AppError> {
        let bytes = body_bytes(req);
        if bytes.len() > MAX_BODY_BYTES {
            return Err(AppError::PayloadTooLarge);
        }
        check_content_type(req.headers(), !bytes.is_empty())?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(AppError::InvalidJson("the body is empty".into()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(AppError::InvalidJson("the body must be an object".into())),
            Err(e) => Err(AppError::InvalidJson(
                format!("line {} column {}", e.line(), e.column()).into(),
            )),
        }
    }

    /// A required string field.
    pub fn required_str(&self, field: &'static str) -> Result<&str, AppError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Err(AppError::validation(field, "is required")),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(AppError::validation(field, "must be a string")),
        }
    }

    /// An optional string field that may not be `null`.
    pub fn optional_str(&self, field: &'static str) -> Result<Option<&str>, AppError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(AppError::validation(field, "must be a string")),
        }
    }

    /// A field that may be absent (`None`), `null` (`Some(None)`) or a string.
    pub fn nullable_str(&self, field: &'static str) -> Result<Option<Option<&str>>, AppError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s))),
            Some(_) => Err(AppError::validation(field, "must be a string or null")),
        }
    }
}

/// `415` when a body comes with a content type that is not JSON (`application/json`,
/// with or without parameters, or any `+json` type). A body without a type is read as JSON.
fn check_content_type(headers: &HeaderMap, has_body: bool) -> Result<(), AppError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    if !has_body {
        return Ok(());
    }
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType)
    }
}

/// The first value of a query parameter.
fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}

/// `limit`: 1 to 100, default 20; anything else is `400 validation_failed`.
pub fn limit_param(req: &Request) -> Result<usize, AppError> {
    match query_param(req, "limit") {
        None => Ok(20),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n @ 1..=100) => Ok(n),
            _ => Err(AppError::validation(
                "limit",
                "must be a whole number from 1 to 100",
            )),
        },
    }
}

/// The raw `cursor` query parameter; an empty one counts as absent.
pub fn cursor_param(req: &Request) -> Option<String> {
    query_param(req, "cursor").filter(|c| !c.is_empty())
}

/// What an `If-Match` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// `If-Match: "<version>"`.
    Version(u64),
    /// A value that no version can match (malformed, weak, or several): the write is `412`
    /// once existence and authorship have been checked.
    Never,
}

impl IfMatch {
    /// What a change must find, when `header` is the request's `If-Match` (`None`: absent).
    pub fn expected(header: Option<IfMatch>) -> ExpectedVersion {
        match header {
            None => ExpectedVersion::Any,
            Some(IfMatch::Version(version)) => ExpectedVersion::Exactly(version),
            Some(IfMatch::Never) => ExpectedVersion::Unmatchable,
        }
    }
}

/// Reads `If-Match`: absent or `*` is no precondition.
pub fn if_match(headers: &HeaderMap) -> Option<IfMatch> {
    let values: Vec<&str> = headers
        .get_all("if-match")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    match values.as_slice() {
        [] | ["*"] => None,
        // Entity tags compare as strings: only the exact ETag we send, `"<version>"`, names a
        // version (`"01"` or `"+1"` are other tags, not version 1).
        [single] => Some(version_of_tag(single).map_or(IfMatch::Never, IfMatch::Version)),
        _ => Some(IfMatch::Never),
    }
}

/// What an `If-None-Match` header lists: `*`, or entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfNoneMatch {
    Any,
    /// The versions named by well-formed tags (weak or strong: `If-None-Match` compares weakly,
    /// RFC 9110 13.1.2); other tags name no version of ours and are left out.
    Versions(Vec<u64>),
}

impl IfNoneMatch {
    /// Whether a resource at `version` is one the client already has (`304`).
    pub fn matches(&self, version: u64) -> bool {
        match self {
            IfNoneMatch::Any => true,
            IfNoneMatch::Versions(versions) => versions.contains(&version),
        }
    }
}

/// Reads `If-None-Match` (every value, comma-separated lists); absent or empty is `None`.
pub fn if_none_match(headers: &HeaderMap) -> Option<IfNoneMatch> {
    let tags: Vec<&str> = headers
        .get_all("if-none-match")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if tags.is_empty() {
        return None;
    }
    if tags.contains(&"*") {
        return Some(IfNoneMatch::Any);
    }
    let versions = tags
        .iter()
        .filter_map(|tag| version_of_tag(tag.strip_prefix("W/").unwrap_or(tag)))
        .collect();
    Some(IfNoneMatch::Versions(versions))
}

/// The version an entity tag names: only the exact form we send, `"<version>"` (so `"01"` or
/// `"+1"` are other tags, not version 1).
fn version_of_tag(tag: &str) -> Option<u64> {
    tag.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0 && n.to_string() == v)
        })
}

/// An id from the path, if it could be one of ours; anything else names nothing, so `what` is
/// simply not found (`404`), and no such id ever reaches a key.
pub fn path_id<'a>(raw: &'a str, what: &'static str) -> Result<&'a str, AppError> {
    if crate::domain::is_valid_id(raw) {
        Ok(raw)
    } else {
        Err(AppError::NotFound(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).expect("value"));
        h
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(if_match(&HeaderMap::new()), None);
        assert_eq!(if_match(&headers("if-match", "*")), None);
        assert_eq!(
            if_match(&headers("if-match", "\"3\"")),
            Some(IfMatch::Version(3))
        );
        for never in [
            "3",
            "W/\"3\"",
            "\"x\"",
            "\"0\"",
            "\"1\", \"2\"",
            "\"-1\"",
            "\"03\"",
            "\"+3\"",
        ] {
            assert_eq!(
                if_match(&headers("if-match", never)),
                Some(IfMatch::Never),
                "{never}"
            );
        }
    }

    #[test]
    fn if_none_match_forms() {
        assert_eq!(if_none_match(&HeaderMap::new()), None);
        assert_eq!(if_none_match(&headers("if-none-match", " ")), None);
        assert_eq!(
            if_none_match(&headers("if-none-match", "*")),
            Some(IfNoneMatch::Any)
        );
        let list = if_none_match(&headers("if-none-match", "\"1\", W/\"3\", \"x\", \"03\""))
            .expect("a list");
        assert_eq!(list, IfNoneMatch::Versions(vec![1, 3]));
        assert!(list.matches(3) && list.matches(1) && !list.matches(2));
        assert!(
            !if_none_match(&headers("if-none-match", "3"))
                .expect("a tag")
                .matches(3),
            "unquoted"
        );
        let mut two = headers("if-none-match", "\"1\"");
        two.append("if-none-match", HeaderValue::from_static("\"2\""));
        assert!(if_none_match(&two).expect("two").matches(2));
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(
            &headers("content-type", "application/json; charset=utf-8"),
            true
        )
        .is_ok());
        assert!(check_content_type(
            &headers("content-type", "application/merge-patch+json"),
            true
        )
        .is_ok());
        assert!(check_content_type(&HeaderMap::new(), true).is_ok());
        assert!(check_content_type(&headers("content-type", "text/plain"), false).is_ok());
        assert!(matches!(
            check_content_type(&headers("content-type", "text/plain"), true),
            Err(AppError::UnsupportedMediaType)
        ));
        assert!(matches!(
            check_content_type(
                &headers("content-type", "application/x-www-form-urlencoded"),
                true
            ),
            Err(AppError::UnsupportedMediaType)
        ));
    }
}
