//! Property tests: every parser and decoder that reads client (or cache) input never panics,
//! and what it refuses is always the contract's error; what it accepts is within the limits.

use std::time::Duration;

use lambda_http::http::{HeaderMap, HeaderName, HeaderValue};
use lambda_http::{Body, Request};
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::auth::token::token_from_headers;
use shared::auth::TokenKeys;
use shared::cache::entry::{item_bytes, parse, Order};
use shared::cache::{decode_entry, Cached, Entry};
use shared::config::Secret;
use shared::cursor::{CursorCodec, CursorScope};
use shared::domain::{is_valid_id, Caption, CommentText, Email, ImageUrl, Name, Password, User};
use shared::http::idempotency::IdempotencyKey;
use shared::http::request::{
    if_match, if_none_match, IfMatch, IfNoneMatch, JsonObject, MAX_BODY_BYTES,
};
use shared::AppError;

const SECRET: &str = "proptest-secret-0123456789abcdef0123";

fn code(e: &AppError) -> &'static str {
    e.code()
}

/// The field a `validation_failed` error names (a value parser's refusal, as the contract
/// answers it), or a failure naming the error.
fn field_of(e: impl Into<AppError>) -> Result<&'static str, TestCaseError> {
    match e.into() {
        AppError::Validation { field, .. } => Ok(field),
        other => Err(TestCaseError::fail(format!(
            "not a validation error: {other:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Content types: the JSON ones, common others, and arbitrary header-safe text.
fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("application/vnd.api+json".to_owned())),
        Just(Some("text/plain".to_owned())),
        Just(Some("multipart/form-data; boundary=x".to_owned())),
        Just(Some(String::new())),
        "[ -~]{0,40}".prop_map(Some),
    ]
}

fn request(body: Body, content_type: Option<&str>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://example.com/posts");
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body).expect("a request")
}

fn is_json_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Header values as API Gateway could hand them over: any bytes a `HeaderValue` takes.
fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        ".{0,60}".prop_filter_map("a header value", |s| HeaderValue::from_str(&s).ok()),
        prop::collection::vec(any::<u8>(), 0..60)
            .prop_filter_map("a header value", |b| HeaderValue::from_bytes(&b).ok()),
        "[\"W/*, 0-9a-z]{0,20}"
            .prop_filter_map("a header value", |s| HeaderValue::from_str(&s).ok()),
    ]
}

/// `If-None-Match` values as a client sends them: lists of entity tags, ours among them or not
/// (strong and weak, versions 1 to 5), `*`, other tags and noise, with the spacing a client
/// may use. Random header bytes almost never spell one of our tags, so without these the
/// property never sees a match.
fn etag_list() -> impl Strategy<Value = HeaderValue> {
    let tag = prop_oneof![
        (1u64..6).prop_map(|v| format!("\"{v}\"")),
        (1u64..6).prop_map(|v| format!("W/\"{v}\"")),
        Just("*".to_owned()),
        "\"[0-9]{1,3}\"",
        "[\"W/0-9a-z]{0,6}",
    ];
    (prop::collection::vec(tag, 0..4), " {0,2}").prop_filter_map("a header value", |(tags, pad)| {
        HeaderValue::from_str(&tags.join(&format!(",{pad}"))).ok()
    })
}

/// `Idempotency-Key` bytes: printable ASCII of every length up to past the limit (and close
/// around it), bytes a header may hold that are not printable ASCII (tab, obs-text), and any
/// bytes. Random bytes alone are almost never a header value, and almost never a key the
/// contract allows (4 accepted in 2,560 cases).
fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,300}".prop_map(String::into_bytes),
        "[ -~]{250,260}".prop_map(String::into_bytes),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff], 0..40),
        prop::collection::vec(any::<u8>(), 0..300),
    ]
}

fn headers_of(name: &'static str, values: Vec<HeaderValue>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for v in values {
        map.append(HeaderName::from_static(name), v);
    }
    map
}

fn codec() -> CursorCodec {
    CursorCodec::new(&Secret::new(SECRET))
}

fn keys() -> TokenKeys {
    TokenKeys::new(&Secret::new(SECRET), Duration::from_secs(3600))
}

fn user_with(email: &str, id: u128, name: String, jwt_version: u64) -> User {
    User {
        id: ulid::Ulid::from(id).to_string(),
        email: Email::parse(email).expect("a valid email"),
        name,
        jwt_version,
        revision: jwt_version / 2,
        registration: 0,
        created_at: "2026-11-26T20:00:00.000Z".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Request bodies.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes under any content type: an object, or 400 / 413 / 415, in that precedence.
    #[test]
    fn body_parsing_never_panics(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            r#"[ \t\r\n{}\[\]":,a0-9]{0,40}"#.prop_map(String::into_bytes),
        ],
        ct in content_type(),
        text in any::<bool>(),
    ) {
        let body = match (text, String::from_utf8(bytes.clone())) {
            (true, Ok(s)) => Body::Text(s),
            _ if bytes.is_empty() => Body::Empty,
            _ => Body::Binary(bytes.clone()),
        };
        let req = request(body, ct.as_deref());
        match JsonObject::from_request(&req) {
            Ok(_) => {
                prop_assert!(is_json_type(ct.as_deref()) || bytes.is_empty());
                prop_assert!(matches!(serde_json::from_slice::<Value>(&bytes), Ok(Value::Object(_))));
            }
            Err(e) => {
                prop_assert!(matches!(code(&e), "invalid_json" | "unsupported_media_type"), "{e:?}");
                let has_body = !bytes.is_empty();
                if has_body && !is_json_type(ct.as_deref()) {
                    prop_assert_eq!(code(&e), "unsupported_media_type");
                } else {
                    prop_assert_eq!(code(&e), "invalid_json");
                }
            }
        }
    }

    /// Any JSON value: an object is read, anything else is `invalid_json`; the typed
    /// accessors never panic and name their field when they refuse.
    #[test]
    fn json_values_and_field_accessors(value in json_value(), field in prop::sample::select(vec!["caption", "imageUrl", "text", "name"])) {
        let req = request(Body::Text(value.to_string()), Some("application/json"));
        match (JsonObject::from_request(&req), &value) {
            (Ok(object), Value::Object(map)) => {
                let got = map.get(field);
                match object.required_str(field) {
                    Ok(s) => prop_assert_eq!(got, Some(&Value::String(s.to_owned()))),
                    Err(e) => prop_assert_eq!(field_of(e)?, field),
                }
                match object.optional_str(field) {
                    Ok(None) => prop_assert!(got.is_none()),
                    Ok(Some(s)) => prop_assert_eq!(got, Some(&Value::String(s.to_owned()))),
                    Err(e) => prop_assert_eq!(field_of(e)?, field),
                }
                match object.nullable_str(field) {
                    Ok(None) => prop_assert!(got.is_none()),
                    Ok(Some(None)) => prop_assert_eq!(got, Some(&Value::Null)),
                    Ok(Some(Some(s))) => prop_assert_eq!(got, Some(&Value::String(s.to_owned()))),
                    Err(e) => prop_assert_eq!(field_of(e)?, field),
                }
            }
            (Err(e), v) if !v.is_object() => prop_assert_eq!(code(&e), "invalid_json"),
            (result, v) => prop_assert!(false, "{v} gave {:?}", result.err()),
        }
    }

    /// Nesting of any depth is refused or read, never a stack overflow.
    #[test]
    fn nesting_bombs_are_400(depth in 0usize..20_000, object in any::<bool>()) {
        let text = if object {
            format!("{{\"caption\":{}1{}}}", "{\"a\":".repeat(depth), "}".repeat(depth))
        } else {
            format!("{{\"caption\":{}1{}}}", "[".repeat(depth), "]".repeat(depth))
        };
        let req = request(Body::Text(text.clone()), Some("application/json"));
        match JsonObject::from_request(&req) {
            Ok(object) => prop_assert!(depth < 128 && object.required_str("caption").is_err()),
            Err(e) if text.len() > MAX_BODY_BYTES => prop_assert_eq!(code(&e), "payload_too_large"),
            Err(e) => prop_assert!(depth >= 127 && code(&e) == "invalid_json", "depth {depth}: {e:?}"),
        }
    }

    /// Size: a body is 413 exactly when it is over 64 KiB, whatever it holds.
    #[test]
    fn size_limit_is_exact(extra in -64i64..64, fill in any::<u8>(), ct in content_type()) {
        let len = (MAX_BODY_BYTES as i64 + extra) as usize;
        let req = request(Body::Binary(vec![fill; len]), ct.as_deref());
        let result = JsonObject::from_request(&req);
        if len > MAX_BODY_BYTES {
            prop_assert_eq!(result.err().map(|e| e.code()), Some("payload_too_large"));
        } else {
            prop_assert!(result.is_err_and(|e| e.code() != "payload_too_large"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cursors, ids, If-Match, tokens.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cursor_decode_never_panics(cursor in prop_oneof![".*", "[A-Za-z0-9_-]{0,80}", "[A-Za-z0-9_-]{44}"], post in ".{0,30}") {
        for scope in [CursorScope::Feed, CursorScope::Comments { post_id: &post }] {
            match codec().decode(scope, &cursor) {
                Ok(id) => prop_assert!(is_valid_id(&id), "decoded {id}"),
                Err(e) => prop_assert!(matches!(e, AppError::InvalidCursor), "{e:?}"),
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_stay_in_their_scope(id in any::<u128>(), post in ".{0,30}", other in ".{0,30}") {
        let id = ulid::Ulid::from(id).to_string();
        let feed = codec().encode(CursorScope::Feed, &id).expect("encode");
        let comments = codec().encode(CursorScope::Comments { post_id: &post }, &id).expect("encode");
        prop_assert_eq!(codec().decode(CursorScope::Feed, &feed).ok(), Some(id.clone()));
        prop_assert_eq!(codec().decode(CursorScope::Comments { post_id: &post }, &comments).ok(), Some(id.clone()));
        prop_assert!(feed.len() <= 64 && !feed.contains(&id));
        let own = CursorScope::Comments { post_id: &post };
        prop_assert!(codec().decode(own, &feed).is_err());
        prop_assert!(codec().decode(CursorScope::Feed, &comments).is_err());
        if other != post {
            let foreign = CursorScope::Comments { post_id: &other };
            prop_assert!(codec().decode(foreign, &comments).is_err());
        }
    }

    /// Flipping any bit of a cursor's bytes makes it one we did not issue.
    #[test]
    fn tampered_cursors_are_refused(id in any::<u128>(), byte in 0usize..33, bit in 0u8..8) {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let cursor = codec().encode(CursorScope::Feed, &ulid::Ulid::from(id).to_string()).expect("encode");
        let mut raw = engine.decode(&cursor).expect("base64url");
        raw[byte] ^= 1 << bit;
        prop_assert!(matches!(codec().decode(CursorScope::Feed, &engine.encode(raw)), Err(AppError::InvalidCursor)));
    }

    #[test]
    fn path_ids(raw in prop_oneof![".*", "[0-9A-Za-z]{26}", "[0-9A-HJKMNP-TV-Z]{26}"], id in any::<u128>()) {
        if is_valid_id(&raw) {
            prop_assert!(raw.len() == 26 && raw.is_ascii() && ulid::Ulid::from_string(&raw).is_ok());
        }
        prop_assert!(is_valid_id(&ulid::Ulid::from(id).to_string()));
    }

    /// `If-Match` names a version only as the exact ETag `"<version>"`; anything else is
    /// either no precondition (absent, empty, `*`) or one no version meets.
    #[test]
    fn if_match_never_panics(values in prop::collection::vec(header_value(), 0..3)) {
        let headers = headers_of("if-match", values.clone());
        match if_match(&headers) {
            Some(IfMatch::Version(v)) => {
                prop_assert!(v >= 1);
                let items: Vec<String> = values
                    .iter()
                    .flat_map(|h| h.to_str().unwrap_or("").split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>())
                    .filter(|s| !s.is_empty())
                    .collect();
                prop_assert_eq!(items, vec![format!("\"{v}\"")]);
            }
            Some(IfMatch::Never) => {
                prop_assert_eq!(IfMatch::expected(Some(IfMatch::Never)), shared::domain::ExpectedVersion::Unmatchable)
            }
            None => {}
        }
    }

    /// `If-None-Match` never panics; it matches a version only when a listed tag is that
    /// version's ETag (weak or strong), or `*`.
    #[test]
    fn if_none_match_never_panics(values in prop::collection::vec(prop_oneof![header_value(), etag_list()], 0..3), version in 1u64..5) {
        let headers = headers_of("if-none-match", values.clone());
        let tags: Vec<String> = values
            .iter()
            .flat_map(|h| h.to_str().unwrap_or("").split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect();
        match if_none_match(&headers) {
            None => prop_assert!(tags.is_empty()),
            Some(IfNoneMatch::Any) => prop_assert!(tags.iter().any(|t| t == "*")),
            Some(list) => {
                let ours = [format!("\"{version}\""), format!("W/\"{version}\"")];
                prop_assert_eq!(list.matches(version), tags.iter().any(|t| ours.contains(t)));
            }
        }
    }

    /// An `Idempotency-Key` is accepted exactly when it is 1 to 255 printable ASCII characters.
    #[test]
    fn idempotency_keys_never_panic(raw in key_bytes()) {
        let Ok(value) = HeaderValue::from_bytes(&raw) else { return Ok(()) };
        let allowed = (1..=255).contains(&raw.len()) && raw.iter().all(|b| (0x20..=0x7e).contains(b));
        match IdempotencyKey::from_headers(&headers_of("idempotency-key", vec![value])) {
            Ok(Some(key)) => prop_assert!(allowed && key.as_str().as_bytes() == raw.as_slice()),
            Ok(None) => prop_assert!(false, "a key was sent"),
            Err(e) => {
                prop_assert!(!allowed);
                prop_assert_eq!(field_of(e)?, "Idempotency-Key");
            }
        }
    }

    #[test]
    fn if_match_reads_every_etag_we_send(version in 1u64.., pad in " {0,3}") {
        let headers = headers_of("if-match", vec![HeaderValue::from_str(&format!("{pad}\"{version}\"{pad}")).expect("value")]);
        prop_assert_eq!(if_match(&headers), Some(IfMatch::Version(version)));
    }

    /// Entity tags compare as strings: `"01"`, `"+1"` or `" 1"` are not the ETag `"1"`.
    #[test]
    fn if_match_refuses_other_spellings_of_a_version(version in 0u64..1_000_000, form in 0usize..4) {
        let tag = match form {
            0 => format!("\"0{version}\""),
            1 => format!("\"+{version}\""),
            2 => format!("\" {version}\""),
            _ => format!("W/\"{version}\""),
        };
        let headers = headers_of("if-match", vec![HeaderValue::from_str(&tag).expect("value")]);
        prop_assert_eq!(if_match(&headers), Some(IfMatch::Never), "{}", tag);
    }

    /// Any `aid` / `Authorization` pair: a token string out, or 401; and no arbitrary string
    /// verifies as a token.
    #[test]
    fn token_headers_and_verification_never_panic(
        aid in prop::collection::vec(header_value(), 0..2),
        authorization in prop::collection::vec(prop_oneof![header_value(), "(?i:bearer) .{0,80}".prop_filter_map("value", |s| HeaderValue::from_str(&s).ok())], 0..2),
    ) {
        let mut headers = headers_of("aid", aid);
        for v in authorization {
            headers.append("authorization", v);
        }
        match token_from_headers(&headers) {
            Ok(token) => {
                prop_assert!(!token.is_empty());
                prop_assert!(matches!(keys().verify(token), Err(AppError::Unauthorized(_))));
            }
            Err(e) => prop_assert!(matches!(e, AppError::Unauthorized(_)), "{e:?}"),
        }
    }

    #[test]
    fn arbitrary_and_jwt_shaped_strings_never_verify(
        token in prop_oneof![".*", "[A-Za-z0-9_-]{1,60}\\.[A-Za-z0-9_-]{1,200}\\.[A-Za-z0-9_-]{0,60}"],
        header in json_value(),
        claims in json_value(),
    ) {
        prop_assert!(matches!(keys().verify(&token), Err(AppError::Unauthorized(_))));
        use base64::Engine;
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let forged = format!("{}.{}.{}", b64(&header), b64(&claims), b64(&json!("sig")));
        prop_assert!(matches!(keys().verify(&forged), Err(AppError::Unauthorized(_))));
    }

    /// A real token with any one character changed no longer verifies.
    #[test]
    fn tampered_tokens_are_refused(index in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.-]") {
        let user = user_with("a@example.com", 1, "A".into(), 1);
        let token = keys().issue(&user).expect("issue").token;
        let at = index.index(token.len());
        prop_assume!(token[at..].chars().next() != replacement.chars().next());
        let tampered = format!("{}{}{}", &token[..at], replacement, &token[at + 1..]);
        prop_assert!(keys().verify(&tampered).is_err(), "{tampered}");
    }
}

// ---------------------------------------------------------------------------------------
// Field values.
// ---------------------------------------------------------------------------------------

fn chars(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), range).prop_map(|v| v.into_iter().collect())
}

/// Valid emails with accents written precomposed or decomposed (and an Angstrom sign, whose
/// NFC is another character), in either case: what NFC normalization is for. Random Unicode
/// is almost never a valid email, and the ASCII ones never need normalizing, so without
/// these the property never sees an email that NFC changes.
fn accented_email() -> impl Strategy<Value = String> {
    let accent = prop::sample::select(vec![
        "e\u{301}", "\u{e9}", "E\u{301}", "\u{c9}", "a\u{30a}", "\u{212b}", "o\u{308}", "\u{d6}",
    ]);
    ("[a-zA-Z]{1,6}", accent, "[a-zA-Z]{0,4}", " {0,2}")
        .prop_map(|(head, accent, tail, pad)| format!("{pad}{head}{accent}{tail}@Example.com{pad}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary unicode: accepted values are within the contract, refusals name the field.
    #[test]
    fn value_parsers_never_panic(raw in prop_oneof![".*", chars(0..=300), "[ a-zA-Z0-9@._+-]{0,80}", accented_email()]) {
        match Email::parse(&raw) {
            Ok(email) => {
                let s = email.as_str();
                prop_assert!(s.chars().count() <= 254 && s.contains('@'));
                use unicode_normalization::UnicodeNormalization;
                let normalized: String = raw.trim().nfc().collect::<String>().to_lowercase().nfc().collect();
                prop_assert_eq!(s, normalized.as_str());
                let again = Email::parse(s).map(|again| again.as_str().to_owned()).ok();
                prop_assert_eq!(again.as_deref(), Some(s), "idempotent");
                prop_assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()));
            }
            Err(e) => prop_assert_eq!(field_of(e)?, "email"),
        }
        match Name::parse(&raw) {
            Ok(name) => {
                let name = name.into_inner();
                prop_assert!((1..=100).contains(&name.chars().count()));
                prop_assert_eq!(name.as_str(), raw.trim());
            }
            Err(e) => {
                prop_assert_eq!(field_of(e)?, "name");
                prop_assert!(!(1..=100).contains(&raw.trim().chars().count()));
            }
        }
        match Password::parse(&raw) {
            Ok(p) => prop_assert!((8..=128).contains(&p.expose().chars().count()) && p.expose() == raw),
            Err(e) => {
                prop_assert_eq!(field_of(e)?, "password");
                prop_assert!(!(8..=128).contains(&raw.chars().count()));
            }
        }
        match Caption::parse(&raw) {
            Ok(c) => prop_assert_eq!(c.into_inner(), raw.clone()),
            Err(e) => {
                prop_assert_eq!(field_of(e)?, "caption");
                prop_assert!(raw.is_empty() || raw.chars().count() > 2200);
            }
        }
        match CommentText::parse(&raw) {
            Ok(t) => prop_assert_eq!(t.into_inner(), raw.clone()),
            Err(e) => {
                prop_assert_eq!(field_of(e)?, "text");
                prop_assert!(raw.is_empty() || raw.chars().count() > 1000);
            }
        }
        match ImageUrl::parse(&raw) {
            Ok(u) => {
                let u = u.into_inner();
                prop_assert!(u.starts_with("https://") && u.chars().count() <= 2048);
                prop_assert!(!u.chars().any(|c| c.is_whitespace() || c.is_control()));
            }
            Err(e) => prop_assert_eq!(field_of(e)?, "imageUrl"),
        }
    }

    /// Lengths are counted in characters: at the limit accepted, one more refused.
    #[test]
    fn length_limits_count_characters(c in any::<char>().prop_filter("not white space", |c| !c.is_whitespace()), n in 1usize..=100) {
        let s = |k: usize| c.to_string().repeat(k);
        prop_assert!(Name::parse(&s(n)).is_ok());
        prop_assert!(Name::parse(&s(101)).is_err());
        prop_assert_eq!(Password::parse(&s(n + 7)).is_ok(), n + 7 <= 128);
        prop_assert!(Password::parse(&s(128)).is_ok() && Password::parse(&s(129)).is_err());
        prop_assert!(Caption::parse(&s(2200)).is_ok() && Caption::parse(&s(2201)).is_err());
        prop_assert!(CommentText::parse(&s(1000)).is_ok() && CommentText::parse(&s(1001)).is_err());
    }

    /// The URL parser would forgive white space and controls; the stored string must not hold them.
    #[test]
    fn urls_with_white_space_or_controls_are_refused(
        at in any::<prop::sample::Index>(),
        c in any::<char>().prop_filter("white space or control", |c| c.is_whitespace() || c.is_control()),
    ) {
        let url = "https://img.example.com/a/b.png?x=1";
        let i = 8 + at.index(url.len() - 7);
        let bad = format!("{}{c}{}", &url[..i], &url[i..]);
        prop_assert!(ImageUrl::parse(&bad).is_err(), "{:?}", bad);
    }

    #[test]
    fn generated_https_urls_are_accepted(
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,3}".prop_filter("no punycode", |h| !h.contains("xn--")),
        path in "(/[A-Za-z0-9._~%-]{0,20}){0,5}") {
        let url = format!("https://{host}{path}");
        prop_assert!(ImageUrl::parse(&url).is_ok(), "{url}");
    }
}

// ---------------------------------------------------------------------------------------
// Cache entries.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever Redis holds (garbage, another format, foreign JSON, an entry of ours with any
    /// body) decodes or is a miss, and a window answers a page or misses: never a panic.
    #[test]
    fn cache_entries_never_panic(raw in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        json_value().prop_map(|v| format!("c4\titem\ta@example.com\t-\t0.0\t-\nid\t1\tL\t0\t-\t{v}").into_bytes()),
        "[ -~\t\n]{0,200}".prop_map(|text| format!("c4\twindow\tfeed\t{text}").into_bytes()),
    ], limit in 1usize..60) {
        let email = Email::parse("a@example.com").expect("email");
        if let Some(Cached::User(user)) = decode_entry(&raw, &email) {
            prop_assert_eq!(user.email.as_str(), email.as_str());
        }
        if let Some(entry) = parse(&raw) {
            let _ = entry.page("feed", Order::Descending, limit);
            let _ = entry.item("a@example.com");
        }
    }

    /// An entry reads back as the user it holds, for that email only; cut short, it is
    /// unreadable, not half a user.
    #[test]
    fn cache_entries_round_trip(id in any::<u128>(), name in ".{1,100}", jwt_version in any::<u64>(), local in "[a-z0-9]{1,20}") {
        let email = Email::parse(&format!("{local}@example.com")).expect("email");
        let user = user_with(email.as_str(), id, name, jwt_version);
        let record = Entry::User(user.clone()).record().expect("encodes");
        let written = item_bytes(email.as_str(), &record);
        prop_assert_eq!(decode_entry(&written, &email), Some(Cached::User(user.clone())));
        let other = Email::parse(&format!("{local}x@example.com")).expect("email");
        prop_assert_eq!(decode_entry(&written, &other), None);
        let gone = Entry::Absent(user.deleted()).record().expect("encodes");
        prop_assert_eq!(
            decode_entry(&item_bytes(email.as_str(), &gone), &email),
            Some(Cached::Absent { id: user.id.clone(), registration: Some(user.registration) })
        );
        let cut = written.len() - 1;
        prop_assert_eq!(decode_entry(&written[..cut], &email), None);
    }
}
