//! Users and sessions, as API.md describes them: every route and every error.

use integration_tests::{keys_of, unique_email, ApiRequest, ApiResponse, TestEnv, PASSWORD};
use serde_json::{json, Value};

fn assert_user_shape(user: &Value) {
    assert_eq!(
        keys_of(user),
        ["createdAt", "email", "id", "name"],
        "user: {user}"
    );
    assert!(user["id"].as_str().is_some_and(|s| !s.is_empty()));
    let created = user["createdAt"].as_str().expect("createdAt");
    assert!(created.ends_with('Z'), "UTC timestamp: {created}");
    let text = user.to_string().to_lowercase();
    assert!(
        !text.contains("password") && !text.contains("hash") && !text.contains("argon"),
        "{text}"
    );
}

async fn register_raw(env: &TestEnv, body: Value) -> ApiResponse {
    env.send(ApiRequest::post("/users").json(body)).await
}

#[tokio::test]
async fn register_returns_201_with_exactly_the_public_user() {
    let env = TestEnv::new().await;
    let email = unique_email("ada");
    let res = env.register(&email, "Ada").await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_user_shape(&res.body);
    assert_eq!(res.body["email"], email);
    assert_eq!(res.body["name"], "Ada");
    assert!(!res.raw_body.contains(PASSWORD));
}

#[tokio::test]
async fn register_trims_and_lowercases_email_and_trims_name() {
    let env = TestEnv::new().await;
    let email = unique_email("grace");
    let shouted = format!("  {} ", email.to_uppercase());
    let res = register_raw(
        &env,
        json!({"email": shouted, "name": "  Grace  ", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_eq!(res.body["email"], email);
    assert_eq!(res.body["name"], "Grace");

    // The same address in another case and with spaces is the same user.
    env.register(&email, "Grace again")
        .await
        .assert_error(409, "email_taken");
    env.register(&format!("{email} "), "Grace again")
        .await
        .assert_error(409, "email_taken");

    // And logs in with any spelling of it.
    let login = env
        .send(ApiRequest::post("/auth/login").json(json!({"email": shouted, "password": PASSWORD})))
        .await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    assert_eq!(login.body["user"], res.body);
}

#[tokio::test]
async fn email_normalization_makes_one_user_of_two_spellings() {
    let env = TestEnv::new().await;
    let local = ulid::Ulid::new().to_string();
    let first = env.register(&format!("{local}@X.io "), "First").await;
    assert_eq!(first.status, 201, "{}", first.raw_body);
    assert_eq!(
        first.body["email"],
        format!("{}@x.io", local.to_lowercase())
    );
    env.register(&format!("{}@x.io", local.to_lowercase()), "Second")
        .await
        .assert_error(409, "email_taken");
}

#[tokio::test]
async fn register_rejects_every_field_out_of_bounds() {
    let env = TestEnv::new().await;
    let ok_email = || unique_email("limits");
    let long_email = format!("{}@{}.io", "a".repeat(64), "b".repeat(187));
    assert_eq!(long_email.chars().count(), 255);
    let cases: Vec<(&str, Value)> = vec![
        (
            "email",
            json!({"email": long_email, "name": "A", "password": PASSWORD}),
        ),
        (
            "email",
            json!({"email": "not-an-email", "name": "A", "password": PASSWORD}),
        ),
        (
            "email",
            json!({"email": "a@b", "name": "A", "password": PASSWORD}),
        ),
        (
            "email",
            json!({"email": "   ", "name": "A", "password": PASSWORD}),
        ),
        (
            "name",
            json!({"email": ok_email(), "name": "   ", "password": PASSWORD}),
        ),
        (
            "name",
            json!({"email": ok_email(), "name": "", "password": PASSWORD}),
        ),
        (
            "name",
            json!({"email": ok_email(), "name": "n".repeat(101), "password": PASSWORD}),
        ),
        (
            "password",
            json!({"email": ok_email(), "name": "A", "password": "1234567"}),
        ),
        (
            "password",
            json!({"email": ok_email(), "name": "A", "password": "p".repeat(129)}),
        ),
        // wrong types
        (
            "email",
            json!({"email": 42, "name": "A", "password": PASSWORD}),
        ),
        (
            "name",
            json!({"email": ok_email(), "name": true, "password": PASSWORD}),
        ),
        (
            "password",
            json!({"email": ok_email(), "name": "A", "password": ["x", "y"]}),
        ),
        (
            "name",
            json!({"email": ok_email(), "name": {"first": "A"}, "password": PASSWORD}),
        ),
        // missing or null
        ("email", json!({"name": "A", "password": PASSWORD})),
        ("name", json!({"email": ok_email(), "password": PASSWORD})),
        ("password", json!({"email": ok_email(), "name": "A"})),
        (
            "password",
            json!({"email": ok_email(), "name": "A", "password": null}),
        ),
    ];
    for (field, body) in cases {
        let res = register_raw(&env, body.clone()).await;
        assert_eq!(res.status, 400, "{body} → {}", res.raw_body);
        res.assert_validation(field);
    }

    // The bounds themselves are accepted: 254-char email, 100-char name, 8 and 128-char passwords.
    let at_limit = format!("{}@{}.io", "a".repeat(64), "c".repeat(186));
    assert_eq!(at_limit.chars().count(), 254);
    let res = register_raw(
        &env,
        json!({"email": at_limit, "name": "é".repeat(100), "password": "12345678"}),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let res = register_raw(
        &env,
        json!({"email": ok_email(), "name": "A", "password": "p".repeat(128)}),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
}

#[tokio::test]
async fn register_refuses_bodies_that_are_not_json_objects() {
    let env = TestEnv::new().await;
    let good =
        json!({"email": unique_email("body"), "name": "A", "password": PASSWORD}).to_string();

    env.send(ApiRequest::post("/users").raw_body("text/plain", &good))
        .await
        .assert_error(415, "unsupported_media_type");
    env.send(
        ApiRequest::post("/users").raw_body("application/x-www-form-urlencoded", "email=a%40x.io"),
    )
    .await
    .assert_error(415, "unsupported_media_type");

    for bad in [
        "{not json",
        "[1, 2]",
        "[]",
        "\"a string\"",
        "null",
        "42",
        "",
        "   ",
    ] {
        let res = env
            .send(ApiRequest::post("/users").raw_body("application/json", bad))
            .await;
        res.assert_error(400, "invalid_json");
    }
    // No body at all.
    env.send(ApiRequest::post("/users"))
        .await
        .assert_error(400, "invalid_json");

    // Over 64 KiB, whatever it holds.
    let huge = json!({"email": unique_email("huge"), "name": "A", "password": PASSWORD, "pad": "x".repeat(65 * 1024)});
    env.send(ApiRequest::post("/users").json(huge))
        .await
        .assert_error(413, "payload_too_large");

    // Exactly 64 KiB is still accepted; one byte more is not.
    let exact = |email: String, len: usize| {
        let base =
            json!({"email": email, "name": "A", "password": PASSWORD, "pad": ""}).to_string();
        json!({"email": email, "name": "A", "password": PASSWORD, "pad": "x".repeat(len - base.len())})
    };
    let body = exact(unique_email("edge"), 64 * 1024);
    assert_eq!(body.to_string().len(), 64 * 1024);
    let res = env.send(ApiRequest::post("/users").json(body)).await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let body = exact(unique_email("edge"), 64 * 1024 + 1);
    env.send(ApiRequest::post("/users").json(body))
        .await
        .assert_error(413, "payload_too_large");

    // A JSON content type with parameters is JSON.
    let res = env
        .send(ApiRequest::post("/users").raw_body("application/json; charset=utf-8", &good))
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
}

#[tokio::test]
async fn register_accepts_a_base64_encoded_body() {
    let env = TestEnv::new().await;
    let email = unique_email("b64");
    let res = env
        .send(
            ApiRequest::post("/users")
                .json(json!({"email": email, "name": "Base Sixtyfour", "password": PASSWORD}))
                .base64_encoded(),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_eq!(res.body["email"], email);
    assert_eq!(env.login(&email).await.status, 200);
}

#[tokio::test]
async fn login_returns_a_bearer_token_and_the_user() {
    let env = TestEnv::new().await;
    let email = unique_email("login");
    let user = env.register(&email, "Login").await.body;
    let res = env.login(&email).await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(
        keys_of(&res.body),
        ["expiresIn", "token", "tokenType", "user"]
    );
    assert_eq!(res.body["tokenType"], "Bearer");
    assert!(res.body["expiresIn"].as_u64().is_some_and(|s| s > 0));
    assert_eq!(res.body["user"], user);
    assert_user_shape(&res.body["user"]);
    let token = res.body["token"].as_str().expect("token");
    assert_eq!(token.split('.').count(), 3, "a JWT");

    // The token works in both headers.
    let me = env.me(token).await;
    assert_eq!((me.status, &me.body), (200, &user));
    let me = env.send(ApiRequest::me().aid(token)).await;
    assert_eq!((me.status, &me.body), (200, &user));
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_401() {
    let env = TestEnv::new().await;
    let email = unique_email("secret");
    env.register(&email, "Secret").await;

    let wrong_password = env
        .send(
            ApiRequest::post("/auth/login")
                .json(json!({"email": email, "password": "wrong password"})),
        )
        .await;
    let unknown = env
        .send(
            ApiRequest::post("/auth/login")
                .json(json!({"email": unique_email("nobody"), "password": PASSWORD})),
        )
        .await;
    wrong_password.assert_error(401, "invalid_credentials");
    unknown.assert_error(401, "invalid_credentials");
    assert_eq!(wrong_password.raw_body, unknown.raw_body);
    assert_eq!(wrong_password.headers, unknown.headers);

    // Out-of-bounds credentials cannot belong to anyone either.
    let short = env
        .send(ApiRequest::post("/auth/login").json(json!({"email": email, "password": "short"})))
        .await;
    assert_eq!(short.raw_body, unknown.raw_body);

    // A missing field is a malformed request, not a wrong password.
    let res = env
        .send(ApiRequest::post("/auth/login").json(json!({"email": email})))
        .await;
    res.assert_validation("password");
    let res = env
        .send(ApiRequest::post("/auth/login").json(json!({"password": PASSWORD})))
        .await;
    res.assert_validation("email");
    env.send(ApiRequest::post("/auth/login").raw_body("application/json", "[]"))
        .await
        .assert_error(400, "invalid_json");
}

#[tokio::test]
async fn logout_revokes_every_token_and_a_new_login_works() {
    let env = TestEnv::new().await;
    let email = unique_email("logout");
    env.register(&email, "Logout").await;
    let first = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let second = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_ne!(
        first, second,
        "two logins, two tokens (even within one second)"
    );

    let res = env
        .send(ApiRequest::post("/auth/logout").bearer(&first))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert!(res.raw_body.is_empty());

    for token in [&first, &second] {
        env.me(token).await.assert_error(401, "unauthorized");
        env.send(ApiRequest::post("/auth/logout").bearer(token))
            .await
            .assert_error(401, "unauthorized");
    }

    let fresh = env.login(&email).await;
    assert_eq!(fresh.status, 200, "{}", fresh.raw_body);
    let fresh = fresh.body["token"].as_str().expect("token");
    assert_eq!(env.me(fresh).await.status, 200);
}

#[tokio::test]
async fn authenticated_routes_refuse_missing_or_bad_tokens() {
    let env = TestEnv::new().await;
    for request in [
        ApiRequest::me(),
        ApiRequest::patch("/users/me").json(json!({"name": "X"})),
        ApiRequest::delete("/users/me"),
        ApiRequest::post("/auth/logout"),
    ] {
        env.send(request.clone())
            .await
            .assert_error(401, "unauthorized");
        env.send(request.clone().bearer("not.a.jwt"))
            .await
            .assert_error(401, "unauthorized");
        env.send(request.header("authorization", "Basic dXNlcjpwYXNz"))
            .await
            .assert_error(401, "unauthorized");
    }
}

#[tokio::test]
async fn me_get_patch_delete() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Me").await;

    let me = env.me(&token).await;
    assert_eq!((me.status, &me.body), (200, &user));

    // Rename: trimmed, returned, and seen by the very next request.
    let renamed = env
        .send(
            ApiRequest::patch("/users/me")
                .bearer(&token)
                .json(json!({"name": "  Renamed "})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.raw_body);
    assert_user_shape(&renamed.body);
    assert_eq!(renamed.body["name"], "Renamed");
    assert_eq!(renamed.body["id"], user["id"]);
    assert_eq!(renamed.body["email"], user["email"]);
    let me = env.me(&token).await;
    assert_eq!(me.body["name"], "Renamed");

    // Bad renames.
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "  "}), "name"),
        (json!({"name": "n".repeat(101)}), "name"),
        (json!({"name": 7}), "name"),
    ] {
        let res = env
            .send(ApiRequest::patch("/users/me").bearer(&token).json(body))
            .await;
        res.assert_validation(field);
    }
    env.send(
        ApiRequest::patch("/users/me")
            .bearer(&token)
            .raw_body("text/plain", "{\"name\":\"x\"}"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    env.send(
        ApiRequest::patch("/users/me")
            .bearer(&token)
            .raw_body("application/json", "nope"),
    )
    .await
    .assert_error(400, "invalid_json");

    // Delete: gone at once, token and password with it.
    let deleted = env
        .send(ApiRequest::delete("/users/me").bearer(&token))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.raw_body);
    env.me(&token).await.assert_error(401, "unauthorized");
    env.send(ApiRequest::delete("/users/me").bearer(&token))
        .await
        .assert_error(401, "unauthorized");
    let email = user["email"].as_str().expect("email");
    env.login(email)
        .await
        .assert_error(401, "invalid_credentials");

    // The email is free again, for a new user whom the old token does not reach.
    let again = env.register(email, "Again").await;
    assert_eq!(again.status, 201, "{}", again.raw_body);
    assert_ne!(again.body["id"], user["id"]);
    env.me(&token).await.assert_error(401, "unauthorized");
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Router").await;
    for path in [
        "/nope",
        "/users/123",
        "/auth",
        "/auth/nope",
        "/users/me/extra",
        "/",
    ] {
        env.send(ApiRequest::get(path).bearer(&token))
            .await
            .assert_error(404, "not_found");
    }
    env.send(ApiRequest::get("/nope"))
        .await
        .assert_error(404, "not_found");
    for (method, path) in [
        ("PUT", "/users/me"),
        ("POST", "/users/me"),
        ("GET", "/auth/login"),
        ("GET", "/auth/logout"),
        ("DELETE", "/auth/login"),
        ("GET", "/users"),
        ("PATCH", "/users"),
    ] {
        env.send(ApiRequest::new(method, path).bearer(&token))
            .await
            .assert_error(405, "method_not_allowed");
    }
}

#[tokio::test]
async fn precomposed_and_decomposed_accents_are_one_email() {
    let env = TestEnv::new().await;
    let local = ulid::Ulid::new().to_string().to_lowercase();
    let precomposed = format!("jos\u{e9}.{local}@example.com");
    let decomposed = format!("JOSE\u{301}.{local}@EXAMPLE.com");
    assert_ne!(
        precomposed.to_lowercase(),
        decomposed.to_lowercase(),
        "they differ as strings"
    );
    let res = env.register(&precomposed, "Jos\u{e9}").await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    env.register(&decomposed, "Impostor")
        .await
        .assert_error(409, "email_taken");
    let login = env
        .send(
            ApiRequest::post("/auth/login")
                .json(json!({"email": decomposed, "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        (login.status, &login.body["user"]),
        (200, &res.body),
        "{}",
        login.raw_body
    );
}

#[tokio::test]
async fn a_change_acts_only_on_the_user_and_jwt_version_the_token_was_checked_against() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Checked").await;
    let mut headers = lambda_http::http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    // Authenticated as the route would, then the token is revoked before the change is made
    // (a logout on another instance between the two).
    let user = env
        .app
        .auth
        .authenticate(&headers)
        .await
        .expect("authenticated");
    assert_eq!(
        env.send(ApiRequest::post("/auth/logout").bearer(&token))
            .await
            .status,
        204
    );

    let renamed = env.app.users.rename(&user, "Too Late".into()).await;
    assert!(
        matches!(renamed, Err(shared::AppError::Unauthorized(_))),
        "{renamed:?}"
    );
    let logged_out = env.app.users.logout(&user).await;
    assert!(
        matches!(logged_out, Err(shared::AppError::Unauthorized(_))),
        "{logged_out:?}"
    );
    let deleted = env.app.users.delete(&user).await;
    assert!(
        matches!(deleted, Err(shared::AppError::Unauthorized(_))),
        "{deleted:?}"
    );

    let fresh = env.login(user.email.as_str()).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let me = env.me(&fresh).await;
    assert_eq!(
        (me.status, me.body["name"].as_str()),
        (200, Some("Checked")),
        "nothing changed"
    );
}

/// The user item as DynamoDB holds it: id, name, `jwtVersion`, `revision`.
async fn stored_user(env: &TestEnv, email: &str) -> Option<(String, String, String, String)> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = env
        .dynamo
        .client
        .get_item()
        .table_name("social")
        .key("pk", AttributeValue::S(format!("USER#{email}")))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item?;
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v) | AttributeValue::N(v)) => v.clone(),
        other => panic!("{name}: {other:?}"),
    };
    Some((
        text("id"),
        text("name"),
        text("jwtVersion"),
        text("revision"),
    ))
}

/// Issue 14's own scenario: a request authenticated as user 1, whose email is deleted and
/// registered again (user 2, at `jwtVersion` 1 again, so the version alone cannot tell them
/// apart) before its change is made. The change is refused, as the contract's "Revocation"
/// says (a token of an earlier user of the same email changes nothing), and user 2 is exactly
/// as registered.
#[tokio::test]
async fn a_change_authenticated_as_an_earlier_user_of_the_email_leaves_the_new_user_alone() {
    let env = TestEnv::new().await;
    let (token, first) = env.new_user("Earlier").await;
    let email = first["email"].as_str().expect("email").to_owned();
    let mut headers = lambda_http::http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    // Authenticated as each route does it, then (on another instance) the email is deleted
    // and registered again before the route makes its change.
    let user_1 = env
        .app
        .auth
        .authenticate(&headers)
        .await
        .expect("authenticated");
    assert_eq!(
        env.send(ApiRequest::delete("/users/me").bearer(&token))
            .await
            .status,
        204
    );
    let second = env.register(&email, "Later").await;
    assert_eq!(second.status, 201, "{}", second.raw_body);
    assert_ne!(
        second.body["id"], first["id"],
        "another user of the same email"
    );
    let before = stored_user(&env, &email).await.expect("user 2 stored");
    assert_eq!(
        (before.2.as_str(), before.3.as_str()),
        ("1", "1"),
        "user 2 starts at jwtVersion 1, like user 1 did"
    );
    assert_eq!(user_1.jwt_version, 1);

    let renamed = env.app.users.rename(&user_1, "Hijacked".into()).await;
    let logged_out = env.app.users.logout(&user_1).await;
    let deleted = env.app.users.delete(&user_1).await;
    let refused =
        |r: Result<(), &shared::AppError>| matches!(r, Err(shared::AppError::Unauthorized(_)));
    assert!(
        refused(renamed.as_ref().map(|_| ()))
            && refused(logged_out.as_ref().map(|_| ()))
            && refused(deleted.as_ref().copied()),
        "every change as user 1 is refused: rename {renamed:?}, logout {logged_out:?}, delete {deleted:?}"
    );

    // User 2 is untouched: the same item (name, jwtVersion, revision), its login and token work,
    // and it reads as registered.
    assert_eq!(
        stored_user(&env, &email).await,
        Some(before),
        "user 2's item unchanged"
    );
    let login = env.login(&email).await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    let fresh = login.body["token"].as_str().expect("token");
    let me = env.send(ApiRequest::get("/users/me").bearer(fresh)).await;
    assert_eq!(
        (me.status, &me.body),
        (200, &second.body),
        "{}",
        me.raw_body
    );
    // And user 1's token is still refused.
    env.send(ApiRequest::get("/users/me").bearer(&token))
        .await
        .assert_error(401, "unauthorized");
}

/// Issue 23, item 5: clock skew must fail closed. A user's delete answers while its tombstone
/// never reaches the cache (the instance's Redis is gone), and before any stream sync the email
/// is registered again on an instance whose clock runs an hour behind, so the new user's id (a
/// ULID) sorts before the deleted one's. Then the stream sync runs. The deleted user's token
/// must be refused, and the new user's accepted: the order of an email's states may not depend
/// on any instance's clock.
#[tokio::test]
async fn a_re_registration_on_a_clock_behind_after_a_lost_tombstone_fails_closed() {
    let env = TestEnv::new().await;
    let (old_token, old_user) = env.new_user("Skewed").await;
    let email = old_user["email"].as_str().expect("email").to_owned();
    assert_eq!(env.me(&old_token).await.status, 200, "cached");

    let no_redis = format!("redis://127.0.0.1:{}", integration_tests::closed_port());
    let cut_off = env.instance(&no_redis);
    let deleted =
        integration_tests::send_to(&cut_off, ApiRequest::delete("/users/me").bearer(&old_token))
            .await;
    assert_eq!(deleted.status, 204, "{}", deleted.raw_body);

    let mut behind = env.instance(&env.redis.url());
    behind.clock = shared::domain::Clock::behind(std::time::Duration::from_secs(3_600));
    let again = integration_tests::send_to(
        &behind,
        ApiRequest::post("/users").json(json!({
            "email": email, "name": "Again", "password": PASSWORD
        })),
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.raw_body);
    let (old_id, new_id) = (
        old_user["id"].as_str().expect("id"),
        again.body["id"].as_str().expect("id"),
    );
    assert!(
        new_id < old_id,
        "the skew is real: {new_id} sorts before {old_id}"
    );

    env.settle().await;
    env.me(&old_token).await.assert_error(401, "unauthorized");
    integration_tests::send_to(&behind, ApiRequest::me().bearer(&old_token))
        .await
        .assert_error(401, "unauthorized");

    let login = env.login(&email).await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    let token = login.body["token"].as_str().expect("token");
    let me = env.me(token).await;
    assert_eq!((me.status, me.body["id"].as_str()), (200, Some(new_id)));
}
