//! The table's little language: what a case is, the world cases run in, and how an answer
//! is judged. The cases themselves are in `cases.rs`.

use std::collections::HashSet;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use integration_tests::{ApiRequest, ApiResponse, TestEnv};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// The table's vocabulary.
// ---------------------------------------------------------------------------------------

/// What a case must get back.
#[derive(Debug, Clone)]
pub(super) enum Expect {
    /// A success status (and, for bodies, JSON).
    Ok(u16),
    /// An error status and the contract's code.
    Err(u16, &'static str),
    /// `400 validation_failed` whose message names the field.
    Invalid(&'static str),
}

#[derive(Debug, Clone)]
pub(super) enum BodySpec {
    None,
    /// Text with placeholders; `size` pads the `"pad":""` field until the body is exactly that
    /// many bytes; `base64` sends it encoded, as API Gateway does for binary media types.
    Text {
        content_type: String,
        text: String,
        size: Option<usize>,
        base64: bool,
    },
    /// Raw bytes, always base64-encoded (the only way an event carries non-UTF-8).
    Bytes {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// One row of the table. Strings may hold placeholders (see [`Fixture::fill`]).
#[derive(Debug, Clone)]
pub(super) struct Case {
    pub(super) name: String,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    /// The token sent as `Authorization: Bearer`, unless the case sets a token header itself.
    token: Option<&'static str>,
    body: BodySpec,
    expect: Expect,
    /// JSON pointers into the response body and the values they must hold.
    body_checks: Vec<(&'static str, Value)>,
    /// Response headers and the values they must have.
    header_checks: Vec<(&'static str, &'static str)>,
}

pub(super) fn case(name: impl Into<String>, method: &'static str, path: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        method,
        path: path.into(),
        headers: Vec::new(),
        token: Some("{token}"),
        body: BodySpec::None,
        expect: Expect::Ok(200),
        body_checks: Vec::new(),
        header_checks: Vec::new(),
    }
}

impl Case {
    pub(super) fn raw(mut self, content_type: &str, text: impl Into<String>) -> Self {
        self.body = BodySpec::Text {
            content_type: content_type.to_owned(),
            text: text.into(),
            size: None,
            base64: false,
        };
        self
    }
    pub(super) fn json(self, body: Value) -> Self {
        self.raw("application/json", body.to_string())
    }
    /// `body` (which must hold `"pad": ""`) padded to exactly `size` bytes.
    pub(super) fn sized(mut self, content_type: &str, body: Value, size: usize) -> Self {
        assert!(
            body.get("pad").is_some(),
            "{}: a sized body needs a pad field",
            self.name
        );
        self.body = BodySpec::Text {
            content_type: content_type.to_owned(),
            text: body.to_string(),
            size: Some(size),
            base64: false,
        };
        self
    }
    pub(super) fn base64(mut self) -> Self {
        match &mut self.body {
            BodySpec::Text { base64, .. } => *base64 = true,
            _ => panic!("{}: base64 of no text", self.name),
        }
        self
    }
    pub(super) fn bytes(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = BodySpec::Bytes {
            content_type: content_type.to_owned(),
            bytes: bytes.into(),
        };
        self
    }
    pub(super) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }
    pub(super) fn anon(mut self) -> Self {
        self.token = None;
        self
    }
    pub(super) fn by_b(mut self) -> Self {
        self.token = Some("{token_b}");
        self
    }
    pub(super) fn ok(mut self, status: u16) -> Self {
        self.expect = Expect::Ok(status);
        self
    }
    pub(super) fn err(mut self, status: u16, code: &'static str) -> Self {
        self.expect = Expect::Err(status, code);
        self
    }
    pub(super) fn invalid(mut self, field: &'static str) -> Self {
        self.expect = Expect::Invalid(field);
        self
    }
    pub(super) fn check(mut self, pointer: &'static str, value: Value) -> Self {
        self.body_checks.push((pointer, value));
        self
    }
    pub(super) fn check_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.header_checks.push((name, value));
        self
    }
}

pub(super) fn bad_json(name: impl Into<String>, method: &'static str, path: &str) -> Case {
    case(name, method, path).err(400, "invalid_json")
}

// ---------------------------------------------------------------------------------------
// The world the cases run in.
// ---------------------------------------------------------------------------------------

/// Two users, a post of each, comments on both, and valid cursors of every scope.
pub(super) struct Fixture {
    token_a: String,
    token_b: String,
    email_a: String,
    post: String,
    post_b: String,
    comment: String,
    comment_b: String,
    feed_cursor: String,
    comments_cursor: String,
    comments_cursor_b: String,
}

/// A valid ULID that names nothing.
pub(super) fn missing_id() -> String {
    shared::domain::new_id()
}

/// The same cursor with one bit of its id flipped: still well-formed, no longer signed.
pub(super) fn tampered(cursor: &str) -> String {
    let mut raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .expect("a cursor is base64url");
    raw[3] ^= 0x01;
    URL_SAFE_NO_PAD.encode(raw)
}

impl Fixture {
    pub(super) async fn new(env: &TestEnv) -> Fixture {
        let email_a = integration_tests::unique_email("alice");
        assert_eq!(env.register(&email_a, "Alice").await.status, 201);
        let login = env.login(&email_a).await;
        let token_a = login.body["token"].as_str().expect("token").to_owned();
        let (token_b, _) = env.new_user("Bob").await;
        let post = env.new_post(&token_a, "the fixture post").await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let post_b = env.new_post(&token_b, "bob's post").await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let comment = Self::comment(env, &token_a, &post).await;
        Self::comment(env, &token_a, &post).await;
        let comment_b = Self::comment(env, &token_a, &post_b).await;
        Self::comment(env, &token_a, &post_b).await;
        let cursor = |path: String, token: String| async move {
            let res = env.send(ApiRequest::get(&path).bearer(&token)).await;
            assert_eq!(res.status, 200, "{path}: {}", res.raw_body);
            res.body["nextCursor"]
                .as_str()
                .expect("a next page")
                .to_owned()
        };
        let feed_cursor = cursor("/posts?limit=1".into(), token_a.clone()).await;
        let comments_cursor =
            cursor(format!("/posts/{post}/comments?limit=1"), token_a.clone()).await;
        let comments_cursor_b =
            cursor(format!("/posts/{post_b}/comments?limit=1"), token_a.clone()).await;
        Fixture {
            token_a,
            token_b,
            email_a,
            post,
            post_b,
            comment,
            comment_b,
            feed_cursor,
            comments_cursor,
            comments_cursor_b,
        }
    }

    pub(super) async fn comment(env: &TestEnv, token: &str, post: &str) -> String {
        let res = env
            .send(
                ApiRequest::post(&format!("/posts/{post}/comments"))
                    .bearer(token)
                    .json(json!({"text": "hi"})),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.raw_body);
        res.body["id"].as_str().expect("id").to_owned()
    }

    /// Replaces the placeholders of `text`. `{fresh}` is a new post of A at version 1 and
    /// `{fresh_comment}` a new comment of A on `{post}`, made for this case alone.
    pub(super) async fn fill(&self, env: &TestEnv, text: &str) -> String {
        let mut out = text.to_owned();
        if out.contains("{fresh}") {
            let id = env.new_post(&self.token_a, "fresh").await["id"]
                .as_str()
                .expect("id")
                .to_owned();
            out = out.replace("{fresh}", &id);
        }
        if out.contains("{fresh_comment}") {
            out = out.replace(
                "{fresh_comment}",
                &Self::comment(env, &self.token_a, &self.post).await,
            );
        }
        while out.contains("{email}") {
            out = out.replacen("{email}", &integration_tests::unique_email("case"), 1);
        }
        for (placeholder, value) in [
            ("{post_lower}", self.post.to_lowercase()),
            ("{post}", self.post.clone()),
            ("{post_b}", self.post_b.clone()),
            ("{comment}", self.comment.clone()),
            ("{comment_b}", self.comment_b.clone()),
            ("{missing}", missing_id()),
            ("{token_b}", self.token_b.clone()),
            ("{token}", self.token_a.clone()),
            ("{known_email}", self.email_a.clone()),
            ("{feed_cursor_tampered}", tampered(&self.feed_cursor)),
            ("{feed_cursor}", self.feed_cursor.clone()),
            ("{comments_cursor_b}", self.comments_cursor_b.clone()),
            ("{comments_cursor}", self.comments_cursor.clone()),
        ] {
            out = out.replace(placeholder, &value);
        }
        out
    }

    pub(super) async fn request(&self, env: &TestEnv, case: &Case) -> ApiRequest {
        let mut req = ApiRequest::new(case.method, &self.fill(env, &case.path).await);
        let sets_token = case
            .headers
            .iter()
            .any(|(k, _)| k == "authorization" || k == "aid");
        if let (Some(token), false) = (case.token, sets_token) {
            req = req.bearer(&self.fill(env, token).await);
        }
        for (name, value) in &case.headers {
            req = req.header(name, &self.fill(env, value).await);
        }
        match &case.body {
            BodySpec::None => {}
            BodySpec::Text {
                content_type,
                text,
                size,
                base64,
            } => {
                let mut text = self.fill(env, text).await;
                if let Some(size) = size {
                    let missing = size
                        .checked_sub(text.len())
                        .expect("the body without padding fits its size");
                    text = text.replacen(
                        "\"pad\":\"\"",
                        &format!("\"pad\":\"{}\"", "x".repeat(missing)),
                        1,
                    );
                    assert_eq!(text.len(), *size, "{}: padding", case.name);
                }
                req = req.raw_body(content_type, &text);
                if *base64 {
                    req = req.base64_encoded();
                }
            }
            BodySpec::Bytes {
                content_type,
                bytes,
            } => {
                req = req.raw_body(content_type, "");
                req.body = Some(STANDARD.encode(bytes));
                req.base64 = true;
            }
        }
        req
    }
}

/// What is wrong with `res` for `case`, if anything.
pub(super) fn verdict(case: &Case, res: &ApiResponse) -> Result<(), String> {
    let json_type = res.header("content-type") == Some("application/json");
    match &case.expect {
        Expect::Ok(status) => {
            if res.status != *status {
                return Err(format!(
                    "want {status}, got {}: {}",
                    res.status, res.raw_body
                ));
            }
            let bodiless = *status == 204 || *status == 304;
            if bodiless && !res.raw_body.is_empty() {
                return Err(format!("want no body, got {}", res.raw_body));
            }
            let json_object = json_type && res.body.is_object();
            if !bodiless && !json_object {
                return Err(format!(
                    "want a JSON object body, got {:?}: {}",
                    res.header("content-type"),
                    res.raw_body
                ));
            }
        }
        Expect::Err(status, code) => {
            if (res.status, res.error_code()) != (*status, Some(*code)) {
                return Err(format!(
                    "want {status} {code}, got {}: {}",
                    res.status, res.raw_body
                ));
            }
        }
        Expect::Invalid(field) => {
            if (res.status, res.error_code()) != (400, Some("validation_failed")) {
                return Err(format!(
                    "want 400 validation_failed on `{field}`, got {}: {}",
                    res.status, res.raw_body
                ));
            }
            let message = res.body["error"]["message"].as_str().unwrap_or_default();
            if !message.contains(&format!("`{field}`")) {
                return Err(format!("the message should name `{field}`: {message}"));
            }
        }
    }
    if !matches!(case.expect, Expect::Ok(_)) {
        let message = res.body["error"]["message"].as_str().unwrap_or_default();
        if !json_type || message.is_empty() || res.body.as_object().map(|o| o.len()) != Some(1) {
            return Err(format!(
                "not the contract's error JSON: {:?} {}",
                res.header("content-type"),
                res.raw_body
            ));
        }
    }
    for (name, want) in &case.header_checks {
        if res.header(name) != Some(*want) {
            return Err(format!(
                "header {name}: want {want:?}, got {:?}",
                res.header(name)
            ));
        }
    }
    for (pointer, want) in &case.body_checks {
        let got = res.body.pointer(pointer).cloned().unwrap_or(Value::Null);
        if &got != want {
            return Err(format!("{pointer}: want {want}, got {got}"));
        }
    }
    Ok(())
}

/// Runs every case in order and fails once, listing every case that went wrong.
pub(super) async fn run(cases: Vec<Case>) {
    let mut names = HashSet::new();
    for case in &cases {
        assert!(
            names.insert(case.name.clone()),
            "two cases are named {:?}",
            case.name
        );
    }
    let env = TestEnv::new().await;
    let fixture = Fixture::new(&env).await;
    let mut failures = Vec::new();
    for case in &cases {
        let res = env.send(fixture.request(&env, case).await).await;
        let mut case = case.clone();
        for (_, want) in &mut case.body_checks {
            if let Value::String(text) = want {
                *text = fixture.fill(&env, text).await;
            }
        }
        if let Err(why) = verdict(&case, &res) {
            failures.push(format!(
                "  {} [{} {}]: {why}",
                case.name, case.method, case.path
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
