//! The sample events under `events/` (see events/README.md): each one, its placeholders
//! filled with real values, goes through `lambda_http`'s deserializer and the function that
//! serves its path, and gets the status the contract promises. A sample that no longer parses,
//! routes or validates fails. Samples that need no token (register, login, an unknown path, a
//! wrong method) carry no placeholder: they work as they are (`sam local invoke -e`) on a fresh
//! stack, login once registration has run.

use std::path::{Path, PathBuf};

use integration_tests::contract::{self, documented_routes, openapi, openapi_operations, API_MD};
use integration_tests::{unique_email, ApiRequest, TestEnv, PASSWORD};
use serde_json::{json, Value};

const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");

/// A path with its id placeholders standing for ids, to match it against the contract's routes.
fn fill_ids(path: &str) -> String {
    path.replace("{{POST_ID}}", "01JDX7Z6V3W6M0Q0VJ5R8ZK3QF")
        .replace("{{COMMENT_ID}}", "01JDX80C9P2N7X4D5E6F7G8H9J")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// Method and path of an event: HTTP API (2.0) or REST API (1.0).
fn method_and_path(event: &Value) -> (String, String) {
    let method = event["requestContext"]["http"]["method"]
        .as_str()
        .or_else(|| event["httpMethod"].as_str())
        .expect("a method (requestContext.http.method or httpMethod)");
    let path = event["rawPath"]
        .as_str()
        .or_else(|| event["path"].as_str())
        .expect("a path (rawPath or path)");
    (method.to_owned(), path.to_owned())
}

/// What the contract says of a method and a concrete path: the route template it matches,
/// whether it needs a token, and the status it answers when all goes well.
struct Expected {
    /// The route key API Gateway gives it, as `template.yaml` wires routes: `METHOD /template`
    /// for a contract route, `ANY /template` for another method on a known path (`405`), and
    /// `$default` for any other path (`404`).
    route_key: String,
    needs_token: bool,
    status: u16,
}

fn expected(method: &str, path: &str) -> Expected {
    let doc = openapi();
    let operations = openapi_operations(&doc);
    let routes = documented_routes(API_MD);
    let template = contract::matching_template(routes.iter().map(|r| r.route.1.as_str()), path);
    let Some(template) = template else {
        return Expected {
            route_key: "$default".to_owned(),
            needs_token: false,
            status: 404,
        };
    };
    let route = (method.to_owned(), template.to_owned());
    match routes.iter().find(|r| r.route == route) {
        Some(row) => Expected {
            route_key: format!("{method} {template}"),
            needs_token: operations
                .get(&route)
                .is_some_and(|op| contract::needs_token(&doc, op)),
            status: row.success.unwrap_or_else(|| {
                panic!("API.md names no success status for {method} {template}")
            }),
        },
        None => Expected {
            route_key: format!("ANY {template}"),
            needs_token: false,
            status: 405,
        },
    }
}

/// Real values for one event: its own user, post and comment, so events that change or
/// delete them (logout, delete, `if-match: "1"`) never disturb another event.
struct Fixture {
    token: String,
    post_id: String,
    comment_id: String,
}

impl Fixture {
    async fn new(env: &TestEnv) -> Self {
        let email = unique_email("sample");
        let registered = env.register(&email, "Ada Lovelace").await;
        assert_eq!(registered.status, 201, "{}", registered.raw_body);
        let login = env.login(&email).await;
        assert_eq!(login.status, 200, "{}", login.raw_body);
        let token = login.body["token"].as_str().expect("token").to_owned();
        let post = env.new_post(&token, "sample post").await;
        let post_id = post["id"].as_str().expect("post id").to_owned();
        let comment = env
            .send(
                ApiRequest::post(&format!("/posts/{post_id}/comments"))
                    .bearer(&token)
                    .json(json!({"text": "sample comment"})),
            )
            .await;
        assert_eq!(comment.status, 201, "{}", comment.raw_body);
        let comment_id = comment.body["id"].as_str().expect("comment id").to_owned();
        Fixture {
            token,
            post_id,
            comment_id,
        }
    }

    /// Fills the placeholders.
    fn fill(&self, raw: &str) -> String {
        raw.replace("{{TOKEN}}", &self.token)
            .replace("{{POST_ID}}", &self.post_id)
            .replace("{{COMMENT_ID}}", &self.comment_id)
    }
}

#[tokio::test]
async fn every_sample_event_succeeds_once_filled() {
    let checked = check_samples(Path::new(EVENTS_DIR)).await;
    assert!(
        checked.len() >= 20,
        "only {} samples found: {checked:?}",
        checked.len()
    );
    for folder in ["users", "posts", "comments", "v1"] {
        assert!(
            checked
                .iter()
                .any(|name| name.starts_with(&format!("{folder}/"))),
            "no sample under events/{folder}/"
        );
    }
}

/// The check itself fails on a broken sample: one that is not JSON, has a wrong path, an
/// invalid body, or an unknown placeholder.
#[tokio::test]
async fn a_broken_sample_fails_the_check() {
    let good = std::fs::read_to_string(format!("{EVENTS_DIR}/posts/create.json"))
        .expect("posts/create.json");
    let register = std::fs::read_to_string(format!("{EVENTS_DIR}/users/register.json"))
        .expect("users/register.json");
    let broken = [
        ("not-json", good.replacen('{', "", 1), &good),
        (
            "wrong-path",
            good.replace(r#""/posts""#, r#""/postz""#),
            &good,
        ),
        (
            "invalid-body",
            good.replace(r#"\"caption\":\"Hello\""#, r#"\"caption\":\"\""#),
            &good,
        ),
        (
            "unknown-placeholder",
            good.replace("Hello", "{{CAPTION}}"),
            &good,
        ),
        (
            "no-token",
            good.replace("Bearer {{TOKEN}}", "Bearer nope")
                .replace(r#""accept""#, r#""x-ph": "{{EMAIL}}", "accept""#),
            &good,
        ),
        (
            "wrong-route-key",
            good.replace(
                r#""routeKey": "POST /posts""#,
                r#""routeKey": "ANY /posts""#,
            ),
            &good,
        ),
        (
            "placeholder-without-token",
            register.replace("sample@example.com", "{{EMAIL}}"),
            &register,
        ),
    ];
    for (what, sample, original) in broken {
        assert_ne!(
            &sample, original,
            "{what}: the breakage must change the sample"
        );
        let dir = std::env::temp_dir().join(format!("events-{what}-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("sample.json"), sample).expect("write sample");
        let outcome = tokio::spawn({
            let dir = dir.clone();
            async move { check_samples(&dir).await }
        })
        .await;
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            outcome.is_err_and(|e| e.is_panic()),
            "{what}: a broken sample passed the check"
        );
    }
}

/// Runs every `*.json` under `dir` as events/README.md says to, and returns their names.
async fn check_samples(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    json_files(dir, &mut files);
    files.sort();
    let env = TestEnv::new().await;
    let mut checked = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(dir)
            .unwrap_or(file)
            .display()
            .to_string()
            .trim_start_matches('/')
            .to_owned();
        if name == "sam-local-env.json" {
            continue; // not an event: `sam local`'s --env-vars file (template.rs checks it)
        }
        if name.starts_with("cache-sync/") {
            continue; // DynamoDB stream events, not API Gateway's: cache_sync.rs runs them
        }
        let raw = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{name}: {e}"));
        let event: Value =
            serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        let (method, path) = method_and_path(&event);
        let expected = expected(&method, &fill_ids(&path));
        if let Some(route_key) = event["routeKey"].as_str() {
            assert_eq!(route_key, expected.route_key, "{name}: routeKey");
            assert_eq!(
                event["requestContext"]["routeKey"].as_str(),
                Some(route_key),
                "{name}"
            );
            assert_eq!(
                event["requestContext"]["http"]["path"].as_str(),
                Some(path.as_str()),
                "{name}"
            );
        }

        if !expected.needs_token {
            // It works as it is, on a stack of its own as fresh as `scripts/dev`'s.
            assert!(
                !raw.contains("{{"),
                "{name}: needs no token, so it must work as it is: no placeholder"
            );
            let fresh = TestEnv::new().await;
            if path == "/auth/login" {
                // What `users/register.json` leaves: its user, with the samples' password.
                let body: Value = serde_json::from_str(event["body"].as_str().expect("a body"))
                    .expect("a JSON body");
                let email = body["email"].as_str().expect("an email");
                assert_eq!(body["password"].as_str(), Some(PASSWORD), "{name}");
                assert_eq!(
                    fresh.register(email, "Ada Lovelace").await.status,
                    201,
                    "{name}"
                );
            }
            let res = fresh.invoke_event(&raw, &path).await;
            assert_eq!(
                res.status, expected.status,
                "{name} ({method} {path}): {}",
                res.raw_body
            );
            match name.as_str() {
                "users/login.json" | "v1/users-login.json" => {
                    assert_eq!(res.body["user"]["email"], "sample@example.com", "{name}");
                    assert!(res.body["token"].is_string(), "{name}");
                }
                "users/register.json" => assert_eq!(res.body["name"], "Ada Lovelace", "{name}"),
                _ => {}
            }
            checked.push(name);
            continue;
        }
        assert!(
            raw.contains("{{TOKEN}}"),
            "{name}: needs a token, so it carries {{{{TOKEN}}}}"
        );

        let fixture = Fixture::new(&env).await;
        let filled = fixture.fill(&raw);
        assert!(
            !filled.contains("{{"),
            "{name}: a placeholder events/README.md does not list is left"
        );
        let path = fixture.fill(&path);

        let res = env.invoke_event(&filled, &path).await;
        assert_eq!(
            res.status, expected.status,
            "{name} ({method} {path}): {}",
            res.raw_body
        );

        // What some samples promise beyond the status.
        match name.as_str() {
            "posts/create-base64.json" => {
                assert_eq!(res.body["caption"], "Hello from a base64 body", "{name}");
                assert_eq!(
                    res.body["imageUrl"], "https://example.com/hello.jpg",
                    "{name}"
                );
            }
            "posts/patch.json" => assert_eq!(res.body["version"], 2, "{name}"),
            "posts/list.json" | "comments/list.json" | "v1/posts-list.json" => {
                assert!(
                    res.body["items"].as_array().is_some_and(|i| !i.is_empty()),
                    "{name}: {}",
                    res.raw_body
                );
            }
            _ => {}
        }
        if method == "DELETE" || path == "/auth/logout" {
            // The effect is real: what was deleted or revoked is gone.
            let after = if path == "/users/me" || path == "/auth/logout" {
                env.me(&fixture.token).await.status
            } else {
                env.send(ApiRequest::get(&path).bearer(&fixture.token))
                    .await
                    .status
            };
            assert!(
                after == 401 || after == 404,
                "{name}: still there after it ({after})"
            );
        }
        checked.push(name);
    }
    checked
}
