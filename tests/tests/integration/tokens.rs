//! Which tokens `GET /users/me` accepts, and that every refusal is the same contract `401`.
//!
//! Tokens are built here by hand from the claims `API.md` names, signed with the test
//! app's secret; a control test shows such a token is accepted, so each refusal below is
//! caused by the one thing it changes.

use base64::Engine;
use integration_tests::tokens::{sign, sign_raw, sign_with, unsigned};
use integration_tests::{unique_email, ApiRequest, TestEnv, PASSWORD, TEST_SECRET};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

const ISSUER: &str = "Caching-Code-Login";
const AUDIENCE: &str = "Caching-Code-Auth";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The claims a login would issue for a freshly registered `user` (`jwtVersion` 1).
fn claims_for(user: &Value) -> Value {
    json!({
        "sub": user["id"],
        "email": user["email"],
        "name": user["name"],
        "jwtVersion": 1,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 600,
    })
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().expect("claims object").remove(name);
    claims
}

/// Sends `request` and asserts the contract's `401 unauthorized`, with exactly the body a
/// request without any token gets: the answer never tells one cause from another.
async fn assert_refused(env: &TestEnv, request: ApiRequest) {
    let res = env.send(request.clone()).await;
    res.assert_error(401, "unauthorized");
    let reference = env.send(ApiRequest::me()).await;
    assert_eq!(
        res.body, reference.body,
        "every refusal gives the same answer ({:?})",
        request.headers
    );
}

async fn assert_accepted(env: &TestEnv, request: ApiRequest, user: &Value) {
    let res = env.send(request.clone()).await;
    assert_eq!(res.status, 200, "{:?}: {}", request.headers, res.raw_body);
    assert_eq!(&res.body, user);
}

#[tokio::test]
async fn a_hand_built_token_with_the_contract_claims_is_accepted() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("Control").await;
    assert_accepted(
        &env,
        ApiRequest::me().bearer(&sign(&claims_for(&user))),
        &user,
    )
    .await;
}

#[tokio::test]
async fn no_token_is_refused() {
    let env = TestEnv::new().await;
    env.send(ApiRequest::me())
        .await
        .assert_error(401, "unauthorized");
    assert_refused(&env, ApiRequest::me().aid("")).await;
    assert_refused(&env, ApiRequest::me().header("authorization", "Bearer")).await;
    assert_refused(&env, ApiRequest::me().header("authorization", "Bearer ")).await;
}

#[tokio::test]
async fn a_garbage_token_is_refused() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Garbage").await;
    for garbage in [
        "garbage",
        "a.b.c",
        "...",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        &format!("{token}x"),
        &token[1..],
    ] {
        assert_refused(&env, ApiRequest::me().bearer(garbage)).await;
    }
}

#[tokio::test]
async fn an_alg_none_token_is_refused() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("None").await;
    let claims = claims_for(&user);
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        assert_refused(&env, ApiRequest::me().bearer(&unsigned(&header, &claims))).await;
        assert_refused(&env, ApiRequest::me().bearer(&sign_raw(&header, &claims))).await;
    }
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_refused() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("WrongKey").await;
    let token = sign_with(
        &claims_for(&user),
        Algorithm::HS256,
        "another-secret-of-enough-length-0123456789",
    );
    assert_refused(&env, ApiRequest::me().bearer(&token)).await;
}

#[tokio::test]
async fn a_token_naming_another_algorithm_is_refused_even_with_the_right_secret() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("AlgConfusion").await;
    let claims = claims_for(&user);
    for algorithm in [Algorithm::HS384, Algorithm::HS512] {
        assert_refused(
            &env,
            ApiRequest::me().bearer(&sign_with(&claims, algorithm, TEST_SECRET)),
        )
        .await;
    }
    // RS256 and ES256 headers over an HMAC made with the HS secret: the classic confusion.
    for alg in ["RS256", "ES256", "PS256"] {
        assert_refused(
            &env,
            ApiRequest::me().bearer(&sign_raw(&json!({"alg": alg, "typ": "JWT"}), &claims)),
        )
        .await;
    }
    // The same construction with the right header is accepted, so the header is the cause.
    assert_accepted(
        &env,
        ApiRequest::me().bearer(&sign_raw(&json!({"alg": "HS256", "typ": "JWT"}), &claims)),
        &user,
    )
    .await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("Expired").await;
    let mut claims = claims_for(&user);
    claims["iat"] = json!(now() - 3_600);
    claims["exp"] = json!(now() - 60);
    assert_refused(&env, ApiRequest::me().bearer(&sign(&claims))).await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("Early").await;
    let mut claims = claims_for(&user);
    claims["nbf"] = json!(now() + 600);
    assert_refused(&env, ApiRequest::me().bearer(&sign(&claims))).await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("Issuer").await;
    let mut claims = claims_for(&user);
    claims["iss"] = json!("Someone-Else-Login");
    assert_refused(&env, ApiRequest::me().bearer(&sign(&claims))).await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("Audience").await;
    let mut claims = claims_for(&user);
    claims["aud"] = json!("Someone-Else-Auth");
    assert_refused(&env, ApiRequest::me().bearer(&sign(&claims))).await;
}

#[tokio::test]
async fn a_token_missing_a_required_claim_is_refused() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("Missing").await;
    for claim in ["exp", "jwtVersion", "sub", "email", "iss", "aud"] {
        let token = sign(&without(claims_for(&user), claim));
        let res = env.send(ApiRequest::me().bearer(&token)).await;
        assert_eq!(res.status, 401, "without {claim}: {}", res.raw_body);
        assert_refused(&env, ApiRequest::me().bearer(&token)).await;
    }
}

#[tokio::test]
async fn a_valid_token_for_a_deleted_user_is_refused() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Deleted").await;
    let res = env
        .send(ApiRequest::delete("/users/me").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_refused(&env, ApiRequest::me().bearer(&token)).await;
    assert_refused(&env, ApiRequest::me().bearer(&sign(&claims_for(&user)))).await;
}

#[tokio::test]
async fn a_valid_token_for_an_email_never_registered_is_refused() {
    let env = TestEnv::new().await;
    let ghost = json!({"id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "email": unique_email("ghost"), "name": "Ghost"});
    assert_refused(&env, ApiRequest::me().bearer(&sign(&claims_for(&ghost)))).await;
}

#[tokio::test]
async fn a_token_with_an_old_jwt_version_is_refused_after_logout() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Versioned").await;
    let res = env
        .send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_refused(&env, ApiRequest::me().bearer(&token)).await;
    assert_refused(&env, ApiRequest::me().bearer(&sign(&claims_for(&user)))).await; // jwtVersion 1, now 2

    let mut current = claims_for(&user);
    current["jwtVersion"] = json!(2);
    assert_accepted(&env, ApiRequest::me().bearer(&sign(&current)), &user).await;
}

#[tokio::test]
async fn a_token_for_an_email_deleted_and_registered_again_is_refused() {
    let env = TestEnv::new().await;
    let email = unique_email("Again");
    assert_eq!(env.register(&email, "First").await.status, 201);
    let first = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let res = env
        .send(ApiRequest::delete("/users/me").bearer(&first))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);

    let second_user = env.register(&email, "Second").await;
    assert_eq!(second_user.status, 201, "{}", second_user.raw_body);
    let second = env.login(&email).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();

    // Same email, same jwtVersion (1): only `sub` tells the two users apart.
    assert_refused(&env, ApiRequest::me().bearer(&first)).await;
    assert_accepted(&env, ApiRequest::me().bearer(&second), &second_user.body).await;
}

#[tokio::test]
async fn aid_and_bearer_headers_that_disagree_are_refused() {
    let env = TestEnv::new().await;
    let (mine, _) = env.new_user("Mine").await;
    let (theirs, _) = env.new_user("Theirs").await;
    assert_refused(&env, ApiRequest::me().aid(&mine).bearer(&theirs)).await;
    assert_refused(&env, ApiRequest::me().aid(&mine).bearer("garbage")).await;
}

#[tokio::test]
async fn aid_and_bearer_headers_with_the_same_token_are_accepted() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Both").await;
    assert_accepted(&env, ApiRequest::me().aid(&token).bearer(&token), &user).await;
}

#[tokio::test]
async fn the_aid_header_alone_is_accepted() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Aid").await;
    assert_accepted(&env, ApiRequest::me().aid(&token), &user).await;
}

#[tokio::test]
async fn a_lowercase_bearer_scheme_is_accepted() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Lower").await;
    assert_accepted(
        &env,
        ApiRequest::me().header("Authorization", &format!("bearer {token}")),
        &user,
    )
    .await;
}

#[tokio::test]
async fn a_basic_authorization_header_is_refused() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Basic").await;
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{PASSWORD}",
        user["email"].as_str().expect("email")
    ));
    assert_refused(
        &env,
        ApiRequest::me().header("Authorization", &format!("Basic {credentials}")),
    )
    .await;
    assert_refused(
        &env,
        ApiRequest::me().header("Authorization", &format!("Basic {token}")),
    )
    .await;
}

#[tokio::test]
async fn another_authorization_scheme_beside_aid_is_ignored_and_a_second_token_is_not() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Proxied").await;
    for scheme in ["Basic dXNlcjpwYXNz", "AWS4-HMAC-SHA256 Credential=AKIA/20261202/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=abc"] {
        let res = env.send(ApiRequest::me().aid(&token).header("authorization", scheme)).await;
        assert_eq!((res.status, &res.body), (200, &user), "aid with {scheme}: {}", res.raw_body);
    }
    let (other, _) = env.new_user("Other").await;
    let res = env.send(ApiRequest::me().aid(&token).bearer(&other)).await;
    res.assert_error(401, "unauthorized");
    env.send(ApiRequest::me().header("authorization", "Basic dXNlcjpwYXNz"))
        .await
        .assert_error(401, "unauthorized");
}
