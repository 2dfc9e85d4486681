//! Security properties that cut across routes: only owners change things, logs never hold a
//! secret, and login does not tell an unknown email from a wrong password, by body or time.

use std::time::{Duration, Instant};

use integration_tests::logs::capture_logs;
use integration_tests::tokens::{sign, sign_with};
use integration_tests::{id_of, unique_email, ApiRequest, ApiResponse, TestEnv, PASSWORD};
use jsonwebtoken::Algorithm;
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Only owners change things.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_mutating_route_refuses_everyone_but_who_may_use_it() {
    let env = TestEnv::new().await;
    let (owner, _) = env.new_user("PostAuthor").await;
    let (commenter, _) = env.new_user("CommentAuthor").await;
    let (third, third_user) = env.new_user("Third").await;
    let post = env.new_post(&owner, "mine").await;
    let post_path = format!("/posts/{}", id_of(&post));
    let comment = env
        .send(
            ApiRequest::post(&format!("{post_path}/comments"))
                .bearer(&commenter)
                .json(json!({"text": "theirs"})),
        )
        .await;
    assert_eq!(comment.status, 201, "{}", comment.raw_body);
    let comment_path = format!("{post_path}/comments/{}", id_of(&comment.body));

    let patch_post = || ApiRequest::patch(&post_path).json(json!({"caption": "hijacked"}));
    let patch_comment = || ApiRequest::patch(&comment_path).json(json!({"text": "hijacked"}));
    let table: Vec<(&str, &str, ApiRequest)> = vec![
        ("PATCH post, commenter", &commenter, patch_post()),
        ("PATCH post, third user", &third, patch_post()),
        (
            "PATCH post, third user, right If-Match",
            &third,
            patch_post().header("if-match", "\"1\""),
        ),
        (
            "PATCH post, third user, wrong If-Match",
            &third,
            patch_post().header("if-match", "\"9\""),
        ),
        (
            "PATCH post, third user, If-Match *",
            &third,
            patch_post().header("if-match", "*"),
        ),
        (
            "DELETE post, commenter",
            &commenter,
            ApiRequest::delete(&post_path),
        ),
        (
            "DELETE post, third user",
            &third,
            ApiRequest::delete(&post_path),
        ),
        (
            "DELETE post, third user, right If-Match",
            &third,
            ApiRequest::delete(&post_path).header("if-match", "\"1\""),
        ),
        (
            "DELETE post, third user, wrong If-Match",
            &third,
            ApiRequest::delete(&post_path).header("if-match", "\"9\""),
        ),
        ("PATCH comment, post author", &owner, patch_comment()),
        ("PATCH comment, third user", &third, patch_comment()),
        (
            "DELETE comment, third user",
            &third,
            ApiRequest::delete(&comment_path),
        ),
    ];
    for (what, token, request) in table {
        let res = env.send(request.clone().bearer(token)).await;
        assert_eq!(
            (res.status, res.error_code()),
            (403, Some("forbidden")),
            "{what}: {}",
            res.raw_body
        );
        // Without a token, the same request is not even looked at.
        let res = env.send(request).await;
        assert_eq!(
            (res.status, res.error_code()),
            (401, Some("unauthorized")),
            "{what}, anonymous: {}",
            res.raw_body
        );
    }

    // Nothing changed.
    let got = env.send(ApiRequest::get(&post_path).bearer(&third)).await;
    for field in ["caption", "imageUrl", "version", "updatedAt", "authorId"] {
        assert_eq!(got.body[field], post[field], "{field}");
    }
    assert_eq!(env.comment_count(&third, &id_of(&post)).await, 1);
    let got = env
        .send(ApiRequest::get(&comment_path).bearer(&third))
        .await;
    assert_eq!(got.body, comment.body, "the comment is untouched");

    // `/users/me` has no id to forge: a token only ever changes its own user.
    let res = env
        .send(
            ApiRequest::patch("/users/me")
                .bearer(&third)
                .json(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(
        (res.status, &res.body["id"]),
        (200, &third_user["id"]),
        "{}",
        res.raw_body
    );
    let owner_me = env.me(&owner).await;
    assert_eq!(owner_me.body["name"], "PostAuthor");

    // What is allowed: the comment's author edits it, the post's author removes it (by design,
    // a post's author moderates its comments), the post's author edits and deletes the post.
    let res = env.send(patch_comment().bearer(&commenter)).await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    let res = env
        .send(ApiRequest::delete(&comment_path).bearer(&owner))
        .await;
    assert_eq!(
        res.status, 204,
        "the post's author may delete others' comments: {}",
        res.raw_body
    );
    let res = env
        .send(patch_post().bearer(&owner).header("if-match", "\"1\""))
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    let res = env
        .send(ApiRequest::delete(&post_path).bearer(&owner))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
}

// ---------------------------------------------------------------------------------------
// Logs never hold a token, a password or a hash.
// ---------------------------------------------------------------------------------------

/// The stored password hash, read from DynamoDB directly.
async fn stored_hash(env: &TestEnv, email: &str) -> String {
    let item = env.dynamo.user_item(email).await.expect("the user item");
    item.get("passwordHash")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .expect("passwordHash")
}

/// Everything a client sends that is secret, through every path that touches it, with every
/// log line of the process captured at TRACE (the emulator's own lines aside: it is not
/// deployed), through the production filter that holds the crates printing whole HTTP
/// messages at DEBUG (without it, the AWS SDK's TRACE lines print every item it reads,
/// password hashes included). The subscriber is this thread's; the runtime has only this one.
#[tokio::test(flavor = "current_thread")]
async fn logs_never_contain_a_token_a_password_or_a_hash() {
    let (captured, _capture) = capture_logs("trace,dynoxide=off");
    let env = TestEnv::new().await;
    let email = unique_email("Secretive");
    let wrong_password = "not the right password";
    let short_password = "short";
    let mut tokens = Vec::new();

    let res = env.register(&email, "Secretive").await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let user = res.body.clone();
    env.register(&email, "Again")
        .await
        .assert_error(409, "email_taken");
    env.send(
        ApiRequest::post("/users")
            .json(json!({"email": unique_email("x"), "name": "X", "password": short_password})),
    )
    .await
    .assert_error(400, "validation_failed");

    let login = env.login(&email).await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    let token = login.body["token"].as_str().expect("token").to_owned();
    tokens.push(token.clone());

    // Authenticated requests, from Redis and from DynamoDB, through every function.
    let post = env.new_post(&token, "logged").await;
    let post_path = format!("/posts/{}", id_of(&post));
    for request in [
        ApiRequest::me().bearer(&token),
        ApiRequest::me().aid(&token),
        ApiRequest::get(&post_path).bearer(&token),
        ApiRequest::post(&format!("{post_path}/comments"))
            .bearer(&token)
            .json(json!({"text": "hi"})),
        ApiRequest::patch("/users/me")
            .bearer(&token)
            .json(json!({"name": "Renamed"})),
    ] {
        assert!(env.send(request).await.status < 300);
    }
    env.redis.evict(&email).await;
    assert_eq!(env.me(&token).await.status, 200, "a miss");

    // Failed logins.
    for (email, password) in [
        (email.as_str(), wrong_password),
        (email.as_str(), short_password),
    ] {
        let res = env
            .send(
                ApiRequest::post("/auth/login").json(json!({"email": email, "password": password})),
            )
            .await;
        res.assert_error(401, "invalid_credentials");
    }
    let res = env
        .send(
            ApiRequest::post("/auth/login")
                .json(json!({"email": unique_email("nobody"), "password": PASSWORD})),
        )
        .await;
    res.assert_error(401, "invalid_credentials");

    // Bad tokens: tampered, signed with another key, expired, for nobody, malformed.
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |exp: u64, email: &str| {
        json!({"sub": user["id"], "email": email, "name": "X", "jwtVersion": 1,
               "iss": "Caching-Code-Login", "aud": "Caching-Code-Auth", "iat": now, "exp": exp})
    };
    let mut tampered = token.clone();
    let last = tampered.pop().expect("a char");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let bad = [
        tampered,
        sign_with(
            &claims(now + 600, &email),
            Algorithm::HS256,
            "another-secret-another-secret-0123456789",
        ),
        sign(&claims(now - 600, &email)),
        sign(&claims(now + 600, &unique_email("ghost"))),
        format!(
            "{}.not-base64!.sig",
            token.split('.').next().expect("header")
        ),
    ];
    for bad_token in &bad {
        env.me(bad_token).await.assert_error(401, "unauthorized");
        env.send(ApiRequest::me().aid(bad_token))
            .await
            .assert_error(401, "unauthorized");
        tokens.push(bad_token.clone());
    }

    // Logout, and the revoked token refused.
    assert_eq!(
        env.send(ApiRequest::post("/auth/logout").bearer(&token))
            .await
            .status,
        204
    );
    env.me(&token).await.assert_error(401, "unauthorized");
    let second = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(env.me(&second).await.status, 200);
    tokens.push(second);

    let hash = stored_hash(&env, &email).await;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    drop(env);
    let logs = captured.text();
    assert!(
        logs.contains("request done"),
        "the capture works: {} bytes",
        logs.len()
    );
    assert!(logs.contains("\"status\":401"), "refusals were logged");

    let mut secrets: Vec<(String, String)> = vec![
        ("the password".into(), PASSWORD.into()),
        ("a wrong password".into(), wrong_password.into()),
        ("a short password".into(), short_password.into()),
        ("the hash".into(), hash.clone()),
        ("a hash prefix".into(), "$argon2".into()),
        (
            "the hash's digest".into(),
            hash.rsplit('$').next().expect("digest").into(),
        ),
        (
            "the hash's salt".into(),
            hash.rsplit('$').nth(1).expect("salt").into(),
        ),
    ];
    for (i, token) in tokens.iter().enumerate() {
        secrets.push((format!("token {i}"), token.clone()));
        let signature = token.rsplit('.').next().expect("signature");
        if signature.len() >= 8 {
            secrets.push((format!("token {i}'s signature"), signature.to_owned()));
        }
    }
    for (what, secret) in &secrets {
        if let Some(at) = logs.find(secret.as_str()) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!("the logs contain {what}: {}", &logs[line_start..line_end]);
        }
    }
    println!(
        "logs: {} lines, {} bytes, none holding any of {} secrets",
        logs.lines().count(),
        logs.len(),
        secrets.len()
    );
}

// ---------------------------------------------------------------------------------------
// Login: an unknown email and a wrong password look alike.
// ---------------------------------------------------------------------------------------

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn login_answers_an_unknown_email_and_a_wrong_password_alike_in_body_and_time() {
    const TRIES: usize = 30;
    // Many failures of one pair on purpose: the abuse limits would answer 429 after five.
    let env = TestEnv::with_config(|c| {
        c.login_limits.per_pair = 1_000;
        c.login_limits.per_ip = 1_000;
    })
    .await;
    let email = unique_email("Timing");
    assert_eq!(env.register(&email, "Timing").await.status, 201);
    let wrong = || {
        ApiRequest::post("/auth/login")
            .json(json!({"email": email, "password": "wrong password here"}))
    };
    let unknown = || {
        ApiRequest::post("/auth/login")
            .json(json!({"email": unique_email("nobody"), "password": PASSWORD}))
    };

    let timed = |request: ApiRequest| {
        let env = &env;
        async move {
            let started = Instant::now();
            let res: ApiResponse = env.send(request).await;
            (res, started.elapsed())
        }
    };
    // Warm-up (connections, allocator).
    for _ in 0..3 {
        timed(wrong()).await;
        timed(unknown()).await;
    }

    let (mut wrong_times, mut unknown_times) = (Vec::new(), Vec::new());
    let reference = timed(unknown()).await.0;
    for i in 0..TRIES * 2 {
        // Interleaved, and alternating which goes first, so drift hits both alike.
        let (res, took) = if i % 2 == 0 {
            timed(wrong()).await
        } else {
            timed(unknown()).await
        };
        res.assert_error(401, "invalid_credentials");
        assert_eq!(
            res.raw_body, reference.raw_body,
            "bodies are byte-identical"
        );
        assert_eq!(res.headers, reference.headers, "headers are identical");
        if i % 2 == 0 {
            &mut wrong_times
        } else {
            &mut unknown_times
        }
        .push(took);
    }
    let (wrong_median, unknown_median) = (median(&mut wrong_times), median(&mut unknown_times));
    let ratio = unknown_median.as_secs_f64() / wrong_median.as_secs_f64();
    println!("login medians over {TRIES} tries each: wrong password {wrong_median:?}, unknown email {unknown_median:?}, ratio {ratio:.2}");
    assert!(
        (0.5..=2.0).contains(&ratio),
        "an unknown email ({unknown_median:?}) and a wrong password ({wrong_median:?}) take visibly different times"
    );
}
