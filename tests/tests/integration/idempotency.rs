//! `Idempotency-Key` on `POST /posts` and `POST /posts/{postId}/comments`, as API.md's
//! "Retries and idempotency" says: the first request runs, a repeat gets its answer and creates
//! nothing, another request with the key is `422`, a running one `409`, and `500`/`503` are
//! not kept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{id_of, ApiRequest, ApiResponse, TestEnv, TABLE_NAME};
use serde_json::json;
use shared::store::keys::idempotency_key;

fn create_post(token: &str, key: &str, caption: &str) -> ApiRequest {
    ApiRequest::post("/posts")
        .bearer(token)
        .header("idempotency-key", key)
        .json(json!({"caption": caption}))
}

fn add_comment(token: &str, key: &str, post_id: &str, text: &str) -> ApiRequest {
    ApiRequest::post(&format!("/posts/{post_id}/comments"))
        .bearer(token)
        .header("idempotency-key", key)
        .json(json!({"text": text}))
}

/// How many posts the feed holds.
async fn feed_len(env: &TestEnv, token: &str) -> usize {
    let feed = env
        .send(ApiRequest::get("/posts?limit=100").bearer(token))
        .await;
    feed.body["items"].as_array().map_or(0, Vec::len)
}

fn assert_replay_of(replay: &ApiResponse, first: &ApiResponse) {
    assert_eq!(replay.status, first.status, "{}", replay.raw_body);
    assert_eq!(replay.raw_body, first.raw_body, "the same body");
    for header in ["location", "etag", "content-type"] {
        assert_eq!(replay.header(header), first.header(header), "{header}");
    }
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        first.header("idempotent-replayed"),
        None,
        "the first answer is not a replay"
    );
}

/// Sets numeric attribute `name` of the record to `value` (as time passing would).
async fn set_number(env: &TestEnv, user_id: &str, key: &str, name: &str, value: u128) {
    env.dynamo
        .client
        .update_item()
        .table_name(TABLE_NAME)
        .set_key(Some(idempotency_key(user_id, key)))
        .update_expression("SET #n = :v")
        .expression_attribute_names("#n", name)
        .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
        .send()
        .await
        .expect("UpdateItem");
}

fn now() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock")
}

#[tokio::test]
async fn a_repeat_gets_the_first_answer_and_creates_nothing() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Repeat").await;
    let first = env.send(create_post(&token, "order-1", "hello")).await;
    assert_eq!(first.status, 201, "{}", first.raw_body);
    assert!(first.header("location").is_some() && first.header("etag").is_some());
    for _ in 0..3 {
        assert_replay_of(
            &env.send(create_post(&token, "order-1", "hello")).await,
            &first,
        );
    }
    assert_eq!(feed_len(&env, &token).await, 1);

    // Kept for 24 hours: DynamoDB's TTL removes the record after `expiresAt`.
    let record = env
        .dynamo
        .idempotency_record(&id_of(&user), "order-1")
        .await
        .expect("the record");
    let expires: u64 = record["expiresAt"]
        .as_n()
        .expect("expiresAt")
        .parse()
        .expect("a number");
    let in_a_day = now().as_secs() + 24 * 3600;
    assert!(
        (in_a_day - 60..=in_a_day).contains(&expires),
        "{expires} vs {in_a_day}"
    );

    // Comments alike.
    let post = id_of(&first.body);
    let first = env.send(add_comment(&token, "c-1", &post, "nice")).await;
    assert_eq!(first.status, 201, "{}", first.raw_body);
    assert_replay_of(
        &env.send(add_comment(&token, "c-1", &post, "nice")).await,
        &first,
    );
    assert_eq!(env.comment_count(&token, &post).await, 1);
}

#[tokio::test]
async fn the_same_body_in_another_member_order_is_the_same_request() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Order").await;
    let a = ApiRequest::post("/posts")
        .bearer(&token)
        .header("idempotency-key", "k")
        .raw_body("application/json", r#"{"caption":"c","imageUrl":null}"#);
    let b = ApiRequest::post("/posts")
        .bearer(&token)
        .header("idempotency-key", "k")
        .raw_body(
            "application/json",
            r#"{ "imageUrl": null, "caption": "c" }"#,
        );
    let first = env.send(a).await;
    assert_replay_of(&env.send(b).await, &first);
}

#[tokio::test]
async fn a_key_reused_for_another_body_route_or_post_is_422() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Reuse").await;
    let first = env.send(create_post(&token, "k", "one")).await;
    assert_eq!(first.status, 201);
    let post = id_of(&first.body);
    let other_post = id_of(&env.new_post(&token, "other").await);

    env.send(create_post(&token, "k", "two"))
        .await
        .assert_error(422, "idempotency_key_reused");
    env.send(add_comment(&token, "k", &post, "one"))
        .await
        .assert_error(422, "idempotency_key_reused");
    assert_eq!(
        env.send(add_comment(&token, "c", &post, "hi")).await.status,
        201
    );
    env.send(add_comment(&token, "c", &other_post, "hi"))
        .await
        .assert_error(422, "idempotency_key_reused");
    env.send(add_comment(&token, "c", &post, "hi!"))
        .await
        .assert_error(422, "idempotency_key_reused");
    assert_eq!(feed_len(&env, &token).await, 2, "nothing more was created");
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let env = TestEnv::new().await;
    let (ada, _) = env.new_user("Ada").await;
    let (bob, _) = env.new_user("Bob").await;
    let a = env.send(create_post(&ada, "shared-key", "same")).await;
    let b = env.send(create_post(&bob, "shared-key", "same")).await;
    assert_eq!((a.status, b.status), (201, 201));
    assert_ne!(a.body["id"], b.body["id"]);
    assert_eq!(b.header("idempotent-replayed"), None);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_run_once() {
    let (env, proxy) = TestEnv::builder().patient().behind_dynamo_proxy().await;
    let (token, _) = env.new_user("Race").await;
    // The first request's claim (a conditional PutItem) is taken in DynamoDB and its answer
    // held, so that request is still running while the other eleven arrive: they overlap it
    // by construction, not by luck.
    proxy.hold_answers("PutItem", 1);
    let first = env.send(create_post(&token, "race", "only once"));
    let others = async {
        proxy.answers_held(1).await;
        let requests = (0..11).map(|_| env.send(create_post(&token, "race", "only once")));
        // Bounded: a request that waited for the first instead of answering would wait for
        // an answer this test holds.
        let answers =
            tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(requests))
                .await
                .expect("the other requests answered while the first one was running");
        proxy.release_answers();
        answers
    };
    let (first, others) = tokio::join!(first, others);
    let answers: Vec<ApiResponse> = std::iter::once(first).chain(others).collect();
    let (mut ran, mut replayed, mut in_progress) = (0, 0, 0);
    for res in &answers {
        match (res.status, res.header("idempotent-replayed")) {
            (201, None) => ran += 1,
            (201, Some("true")) => replayed += 1,
            (409, _) => {
                in_progress += 1;
                res.assert_error(409, "request_in_progress");
                assert_eq!(res.header("retry-after"), Some("1"));
            }
            other => panic!("unexpected answer {other:?}: {}", res.raw_body),
        }
    }
    println!("12 requests with one key: {ran} ran, {replayed} replayed, {in_progress} in progress");
    assert_eq!(ran, 1, "exactly one request ran");
    assert_eq!(answers[0].status, 201, "the one that ran is the first");
    assert!(
        in_progress >= 1,
        "a request that arrived while the first ran was answered 409 request_in_progress"
    );
    assert_eq!(
        in_progress, 11,
        "every request sent while the first one's claim was held found it running"
    );
    assert_eq!(feed_len(&env, &token).await, 1);
}

#[tokio::test]
async fn a_running_claim_is_409_until_its_lease_ends_then_a_repeat_runs() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Dead").await;
    // A function that died mid-request leaves its claim: made here with the store, exactly
    // as the route claims (same fingerprint as the request below).
    let request = create_post(&token, "dead", "after a crash");
    let event = request.to_v2_event().to_string();
    let req = lambda_http::request::from_str(&event).expect("event");
    let fingerprint = shared::http::idempotency::fingerprint("POST /posts", None, &req);
    let claim = env
        .app
        .store
        .claim_idempotency_key(&id_of(&user), "dead", &fingerprint)
        .await
        .expect("claim");
    assert!(matches!(claim, shared::store::Claim::Acquired(_)));

    let res = env.send(request.clone()).await;
    res.assert_error(409, "request_in_progress");
    assert_eq!(res.header("retry-after"), Some("1"));
    // Another body is still another request.
    env.send(create_post(&token, "dead", "something else"))
        .await
        .assert_error(422, "idempotency_key_reused");

    // The lease passes.
    set_number(
        &env,
        &id_of(&user),
        "dead",
        "claimedUntil",
        now().as_millis() - 1,
    )
    .await;
    let res = env.send(request.clone()).await;
    assert_eq!(
        (res.status, res.header("idempotent-replayed")),
        (201, None),
        "{}",
        res.raw_body
    );
    assert_replay_of(&env.send(request).await, &res);
    assert_eq!(feed_len(&env, &token).await, 1);
}

#[tokio::test]
async fn a_record_past_its_24_hours_answers_nothing() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Expired").await;
    let first = env.send(create_post(&token, "old", "yesterday")).await;
    assert_eq!(first.status, 201);
    // DynamoDB's TTL deletes expired items within days, not at once: until then the record
    // is read as gone.
    set_number(
        &env,
        &id_of(&user),
        "old",
        "expiresAt",
        u128::from(now().as_secs()) - 1,
    )
    .await;
    let again = env.send(create_post(&token, "old", "yesterday")).await;
    assert_eq!(
        (again.status, again.header("idempotent-replayed")),
        (201, None),
        "{}",
        again.raw_body
    );
    assert_ne!(again.body["id"], first.body["id"]);
}

#[tokio::test]
async fn client_errors_are_kept_and_server_errors_are_not() {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let (token, _) = env.new_user("Errors").await;

    // A 400 is an answer like any other: kept.
    let bad = ApiRequest::post("/posts")
        .bearer(&token)
        .header("idempotency-key", "bad")
        .json(json!({"caption": ""}));
    let first = env.send(bad.clone()).await;
    first.assert_error(400, "validation_failed");
    assert_replay_of(&env.send(bad).await, &first);

    // A 404 (comment on a missing post) too.
    let missing = ulid::Ulid::new().to_string();
    let first = env
        .send(add_comment(&token, "gone", &missing, "hello?"))
        .await;
    first.assert_error(404, "not_found");
    assert_replay_of(
        &env.send(add_comment(&token, "gone", &missing, "hello?"))
            .await,
        &first,
    );

    // A 503 is not: the table refuses the comment's write (both of the SDK's attempts), and
    // the retry with the same key runs again and succeeds.
    let post = id_of(&env.new_post(&token, "p").await);
    proxy.fail_requests("PutItem|COMMENT#", 2);
    env.send(add_comment(&token, "flaky", &post, "hi"))
        .await
        .assert_error(503, "service_unavailable");
    let retry = env.send(add_comment(&token, "flaky", &post, "hi")).await;
    assert_eq!(
        (retry.status, retry.header("idempotent-replayed")),
        (201, None),
        "{}",
        retry.raw_body
    );
    assert_eq!(env.comment_count(&token, &post).await, 1);
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_ours() {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let (token, _) = env.new_user("LostClaim").await;
    // The claim is the first PutItem of the request: its answer is lost, the SDK sends it
    // again, and the retry finds this request's own claim.
    proxy.lose_answers("PutItem", 1);
    let res = env.send(create_post(&token, "lost", "claimed once")).await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_eq!(proxy.lost(), ["PutItem"]);
    assert_replay_of(
        &env.send(create_post(&token, "lost", "claimed once")).await,
        &res,
    );
}

#[tokio::test]
async fn a_key_the_contract_does_not_allow_is_400_and_none_changes_nothing() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Keys").await;
    for bad in ["k".repeat(256), "caf\u{e9}".to_owned()] {
        let res = env.send(create_post(&token, &bad, "x")).await;
        res.assert_error(400, "validation_failed");
        assert!(
            res.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Idempotency-Key")),
            "{}",
            res.raw_body
        );
    }
    assert_eq!(
        env.send(create_post(&token, &"k".repeat(255), "x"))
            .await
            .status,
        201
    );
    // Without the header, every request runs.
    for _ in 0..2 {
        let res = env
            .send(
                ApiRequest::post("/posts")
                    .bearer(&token)
                    .json(json!({"caption": "twice"})),
            )
            .await;
        assert_eq!(res.status, 201);
    }
    assert_eq!(feed_len(&env, &token).await, 3);
}

/// Sets the post's `commentCount` to `value`, straight in the table.
async fn set_comment_count(env: &TestEnv, post_id: &str, value: AttributeValue) {
    env.redis
        .evict_key(&shared::cache::kinds::post_key(post_id))
        .await;
    env.dynamo
        .client
        .update_item()
        .table_name("social")
        .key("pk", AttributeValue::S(format!("POST#{post_id}")))
        .key("sk", AttributeValue::S("POST".into()))
        .update_expression("SET commentCount = :v")
        .expression_attribute_values(":v", value)
        .send()
        .await
        .expect("UpdateItem");
}

/// A `500` is not kept either: a post whose `commentCount` is not a number (our own data,
/// broken) cannot be read when the comment checks its post (not cached), which is no transient
/// fault, so the answer is `500 internal`. The claim is given back, not completed: once the
/// data is repaired, the retry with the same key runs again (`201`, not a replay).
#[tokio::test]
async fn a_server_error_500_is_not_kept_and_a_retry_with_the_key_runs_again() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Broken").await;
    let post = id_of(&env.new_post(&token, "p").await);
    set_comment_count(&env, &post, AttributeValue::S("not a number".into())).await;

    let first = env.send(add_comment(&token, "broken", &post, "hi")).await;
    first.assert_error(500, "internal");
    assert!(
        env.dynamo
            .idempotency_record(&id_of(&user), "broken")
            .await
            .is_none(),
        "the claim of a 500 is given back"
    );

    set_comment_count(&env, &post, AttributeValue::N("0".into())).await;
    let retry = env.send(add_comment(&token, "broken", &post, "hi")).await;
    assert_eq!(
        (retry.status, retry.header("idempotent-replayed")),
        (201, None),
        "{}",
        retry.raw_body
    );
    assert_replay_of(
        &env.send(add_comment(&token, "broken", &post, "hi")).await,
        &retry,
    );
    assert_eq!(env.comment_count(&token, &post).await, 1);
}

/// Issue 23, item 1: a create whose write landed and whose every answer was lost is a `503`
/// (its key given back, as the contract says); the retry with the key must find that write and
/// answer as if it had made it, not create a second item. The proxy lets DynamoDB apply the
/// write and drops the answer of each of the SDK's attempts.
#[tokio::test]
async fn a_create_whose_every_answer_was_lost_is_not_applied_twice_by_the_retry_with_its_key() {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let (token, _) = env.new_user("LostTwice").await;

    // A comment: one `PutItem` of the comment item, two attempts, both answers lost.
    let post = id_of(&env.new_post(&token, "p").await);
    proxy.lose_answers("PutItem|COMMENT#", 2);
    env.send(add_comment(&token, "lost", &post, "once"))
        .await
        .assert_error(503, "service_unavailable");
    assert_eq!(proxy.lost().len(), 2, "both attempts reached DynamoDB");
    let retry = env.send(add_comment(&token, "lost", &post, "once")).await;
    assert_eq!(retry.status, 201, "{}", retry.raw_body);
    assert_eq!(retry.body["text"], "once");
    assert_replay_of(
        &env.send(add_comment(&token, "lost", &post, "once")).await,
        &retry,
    );
    env.settle().await;
    let listed = env
        .send(ApiRequest::get(&format!("/posts/{post}/comments")).bearer(&token))
        .await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, [retry.body["id"].as_str().expect("id")], "one comment");
    assert_eq!(env.comment_count(&token, &post).await, 1);

    // A post alike: its `PutItem` (the one holding its feed keys) applied, both answers lost.
    proxy.lose_answers("PutItem|feedpk", 2);
    env.send(create_post(&token, "lost-post", "once"))
        .await
        .assert_error(503, "service_unavailable");
    let retry = env.send(create_post(&token, "lost-post", "once")).await;
    assert_eq!(retry.status, 201, "{}", retry.raw_body);
    assert_eq!(
        feed_len(&env, &token).await,
        2,
        "the first post and this one"
    );
    let location = retry.header("location").expect("a Location").to_owned();
    let read = env.send(ApiRequest::get(&location).bearer(&token)).await;
    assert_eq!(read.status, 200, "{}", read.raw_body);
    assert_eq!(read.body["caption"], "once");
}
