//! Routes are named by their router, the one place that knows them: API Gateway's route keys
//! (`GET /posts/{postId}`, `ANY /posts/{postId}` for a method the path does not serve,
//! `$default` for no route), which logs and metrics use. Never a guess from the raw path.

use integration_tests::contract::api_md_routes;
use integration_tests::logs::capture_logs;
use integration_tests::{function_for, ApiRequest, TestEnv};
use lambda_http::http::Method;
use serde_json::Value;
use shared::http::Matched;

/// The route key a function's router gives `method` on `path`.
fn route_key(method: &str, path: &str) -> &'static str {
    let method: Method = method.parse().expect("a method");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    fn key<R>(matched: Matched<R>) -> &'static str {
        matched.route_key
    }
    match function_for(path) {
        "users" => key(users_fn::router(&method, &segments)),
        "comments" => key(comments_fn::router(&method, &segments)),
        _ => key(posts_fn::router(&method, &segments)),
    }
}

/// A concrete path for a template: ids where the template has parameters.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                "01J0000000000000000000000A"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_contract_route_is_named_by_its_method_and_template() {
    let routes = api_md_routes();
    assert!(routes.len() >= 16, "{routes:?}");
    for (method, template) in routes {
        assert_eq!(
            route_key(&method, &concrete(&template)),
            format!("{method} {template}"),
            "{method} {template}"
        );
        // Another method on the same path: the path's template, and the contract's 405.
        assert_eq!(
            route_key("PUT", &concrete(&template)),
            format!("ANY {template}"),
            "PUT {template}"
        );
    }
    for unknown in [
        "/",
        "/nowhere",
        "/posts/1/2/3/4/5",
        "/users/someone-else",
        "/auth",
    ] {
        assert_eq!(route_key("GET", unknown), "$default", "{unknown}");
    }
}

/// The request's log line carries the route's template: `POST /auth/login` and
/// `POST /auth/logout` are two routes, `GET /users/me` is not `/users/{id}`.
#[tokio::test(flavor = "current_thread")]
async fn the_request_log_line_names_the_route_template() {
    let (captured, _capture) = capture_logs("info");
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Logged").await;
    env.me(&token).await;
    env.send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    env.send(ApiRequest::get("/posts/12345/nope").bearer(&token))
        .await;

    let routes: Vec<(String, String)> = captured
        .text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "request done")
        .map(|line| {
            let span = &line["span"];
            (
                span["method"].as_str().unwrap_or_default().to_owned(),
                span["route"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("POST", "/users"),
        ("POST", "/auth/login"),
        ("GET", "/users/me"),
        ("POST", "/auth/logout"),
        ("GET", "$default"),
    ] {
        assert!(
            routes
                .iter()
                .any(|(m, r)| (m.as_str(), r.as_str()) == expected),
            "{expected:?} not among {routes:?}"
        );
    }
}
