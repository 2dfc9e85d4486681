//! A write whose answer is lost on the way back is applied, and the SDK sends it again: the
//! second attempt must be answered as the first one would have been, not refused by the first
//! one's own effect. Each test loses one answer of the write on purpose (a proxy in front of
//! DynamoDB closes the connection after DynamoDB applied it) and checks the client's answer and
//! the table.

use integration_tests::{unique_email, ApiRequest, DynamoProxy, TestEnv, PASSWORD};
use serde_json::json;

/// `(world behind the proxy, token, user)` with a registered, logged-in user.
async fn world() -> (TestEnv, DynamoProxy, String, serde_json::Value) {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let (token, user) = env.new_user("Retry").await;
    (env, proxy, token, user)
}

/// Asserts the proxy lost exactly one answer, of `operation`, and the SDK sent it again.
fn assert_one_answer_lost(env: &TestEnv, proxy: &DynamoProxy, operation: &str, calls_before: u64) {
    assert_eq!(
        proxy.lost().last().map(String::as_str),
        Some(operation),
        "the first answer was lost"
    );
    assert_eq!(
        env.dynamo.calls.get(operation),
        calls_before + 2,
        "{operation} was sent twice"
    );
}

#[tokio::test]
async fn a_post_created_by_a_lost_attempt_is_201_once() {
    let (env, proxy, token, _) = world().await;
    let before = env.dynamo.calls.get("PutItem");
    proxy.lose_answers("PutItem", 1);
    let res = env
        .send(
            ApiRequest::post("/posts")
                .bearer(&token)
                .json(json!({"caption": "once"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_one_answer_lost(&env, &proxy, "PutItem", before);
    let id = res.body["id"].as_str().expect("id");
    assert_eq!(env.post_partition(id).await, ["POST"]);
    let feed = env.send(ApiRequest::get("/posts").bearer(&token)).await;
    assert_eq!(
        feed.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        feed.raw_body
    );
}

#[tokio::test]
async fn a_registration_written_by_a_lost_attempt_is_201_not_email_taken() {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let email = unique_email("Lost");
    // A registration is one transaction (the user, and a check of the email's tombstone): the
    // SDK sends it again with the same `ClientRequestToken`, which DynamoDB answers as it
    // answered the first.
    proxy.lose_answers("TransactWriteItems", 1);
    let res = env.register(&email, "Lost").await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_eq!(proxy.lost(), ["TransactWriteItems"]);
    assert_eq!(env.login(&email).await.status, 200);
    env.register(&email, "Again")
        .await
        .assert_error(409, "email_taken");
}

#[tokio::test]
async fn an_edit_with_if_match_applied_by_a_lost_attempt_is_200_not_412() {
    let (env, proxy, token, _) = world().await;
    let post = env.new_post(&token, "v1").await;
    let id = post["id"].as_str().expect("id");
    let before = env.dynamo.calls.get("UpdateItem");
    proxy.lose_answers("UpdateItem", 1);
    let res = env
        .send(
            ApiRequest::patch(&format!("/posts/{id}"))
                .bearer(&token)
                .header("if-match", "\"1\"")
                .json(json!({"caption": "v2"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_one_answer_lost(&env, &proxy, "UpdateItem", before);
    assert_eq!(
        (res.body["version"].as_u64(), res.header("etag")),
        (Some(2), Some("\"2\""))
    );
    assert_eq!(res.body["caption"], "v2");
}

#[tokio::test]
async fn an_edit_without_if_match_applied_by_a_lost_attempt_counts_once() {
    let (env, proxy, token, _) = world().await;
    let id = env.new_post(&token, "v1").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let before = env.dynamo.calls.get("UpdateItem");
    proxy.lose_answers("UpdateItem", 1);
    let res = env
        .send(
            ApiRequest::patch(&format!("/posts/{id}"))
                .bearer(&token)
                .json(json!({"caption": "v2"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_one_answer_lost(&env, &proxy, "UpdateItem", before);
    assert_eq!(
        res.body["version"], 2,
        "one edit, one version: {}",
        res.raw_body
    );
    let read = env
        .send(ApiRequest::get(&format!("/posts/{id}")).bearer(&token))
        .await;
    assert_eq!(read.body["version"], 2);
}

#[tokio::test]
async fn a_logout_and_a_rename_applied_by_lost_attempts_succeed_once() {
    let (env, proxy, token, user) = world().await;
    proxy.lose_answers("UpdateItem", 1);
    let res = env
        .send(
            ApiRequest::patch("/users/me")
                .bearer(&token)
                .json(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(res.body["name"], "Renamed");
    assert_eq!(proxy.lost(), ["UpdateItem"]);

    proxy.lose_answers("UpdateItem", 1);
    let res = env
        .send(ApiRequest::post("/auth/logout").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_eq!(proxy.lost(), ["UpdateItem", "UpdateItem"]);
    env.me(&token).await.assert_error(401, "unauthorized");

    // Each change was applied once: registration 1, rename +1, logout +1.
    let email = user["email"].as_str().expect("email");
    let item = env.dynamo.user_item(email).await.expect("the user");
    let number = |name: &str| {
        item[name]
            .as_n()
            .expect("a number")
            .parse::<u64>()
            .expect("u64")
    };
    assert_eq!((number("revision"), number("jwtVersion")), (3, 2));
}

#[tokio::test]
async fn a_user_deleted_by_a_lost_attempt_is_204() {
    let (env, proxy, token, user) = world().await;
    proxy.lose_answers("DeleteItem", 1);
    let res = env
        .send(ApiRequest::delete("/users/me").bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_eq!(proxy.lost(), ["DeleteItem"]);
    env.me(&token).await.assert_error(401, "unauthorized");
    let email = user["email"].as_str().expect("email");
    let login = env
        .send(ApiRequest::post("/auth/login").json(json!({"email": email, "password": PASSWORD})))
        .await;
    login.assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn a_post_deleted_by_a_lost_attempt_is_204_and_its_comments_go() {
    let (env, proxy, token, _) = world().await;
    let id = env.new_post(&token, "doomed").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let comment = env
        .send(
            ApiRequest::post(&format!("/posts/{id}/comments"))
                .bearer(&token)
                .json(json!({"text": "x"})),
        )
        .await;
    assert_eq!(comment.status, 201);
    proxy.lose_answers("DeleteItem", 1);
    let res = env
        .send(ApiRequest::delete(&format!("/posts/{id}")).bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_eq!(proxy.lost(), ["DeleteItem"]);
    env.settle().await;
    assert!(
        env.post_partition(&id).await.is_empty(),
        "post and comment gone (the comment swept by the upkeep)"
    );
    // A post that never was is still 404.
    let never = ulid::Ulid::new().to_string();
    env.send(ApiRequest::delete(&format!("/posts/{never}")).bearer(&token))
        .await
        .assert_error(404, "not_found");
}

/// A comment's write and its delete's mark are single writes, safe as every write is here (the
/// comment's id is its own, the mark carries a write token); the count follows from the stream,
/// once per comment, however the answers went.
#[tokio::test]
async fn a_comment_added_or_removed_by_a_lost_attempt_counts_once() {
    let (env, proxy, token, _) = world().await;
    let id = env.new_post(&token, "counted").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let before = env.dynamo.calls.get("PutItem");
    proxy.lose_answers("PutItem|COMMENT#", 1);
    let res = env
        .send(
            ApiRequest::post(&format!("/posts/{id}/comments"))
                .bearer(&token)
                .json(json!({"text": "once"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_one_answer_lost(&env, &proxy, "PutItem", before);
    assert_eq!(env.comment_count(&token, &id).await, 1);
    assert_eq!(
        env.post_partition(&id).await.len(),
        2,
        "the post and one comment"
    );

    let comment_id = res.body["id"].as_str().expect("id");
    let before = env.dynamo.calls.get("UpdateItem");
    proxy.lose_answers("UpdateItem|deletedAt", 1);
    let res = env
        .send(ApiRequest::delete(&format!("/posts/{id}/comments/{comment_id}")).bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_one_answer_lost(&env, &proxy, "UpdateItem", before);
    assert_eq!(env.comment_count(&token, &id).await, 0);
    assert_eq!(env.post_partition(&id).await, ["POST"]);
}
