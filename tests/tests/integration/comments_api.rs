//! Comments, as API.md describes them: create, list, read, edit and delete, the post's
//! `commentCount` kept exact, and many comments at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use integration_tests::sync::UpkeepInProcess;
use integration_tests::{id_of, keys_of, ApiRequest, ApiResponse, TestEnv};
use serde_json::{json, Value};
use shared::domain::new_id;

async fn comment(env: &TestEnv, token: &str, post_id: &str, text: &str) -> ApiResponse {
    env.send(
        ApiRequest::post(&format!("/posts/{post_id}/comments"))
            .bearer(token)
            .json(json!({"text": text})),
    )
    .await
}

async fn new_comment(env: &TestEnv, token: &str, post_id: &str, text: &str) -> Value {
    let res = comment(env, token, post_id, text).await;
    assert_eq!(res.status, 201, "create comment: {}", res.raw_body);
    res.body
}

#[tokio::test]
async fn create_returns_201_and_grows_comment_count() {
    let env = TestEnv::new().await;
    let (author, _) = env.new_user("Poster").await;
    let (token, user) = env.new_user("Commenter").await;
    let post_id = id_of(&env.new_post(&author, "talk to me").await);

    let res = comment(&env, &token, &post_id, "First!").await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let c = &res.body;
    assert_eq!(
        keys_of(c),
        [
            "authorId",
            "authorName",
            "createdAt",
            "id",
            "postId",
            "text",
            "updatedAt"
        ]
    );
    assert_eq!(c["postId"], post_id.as_str());
    assert_eq!(c["authorId"], user["id"]);
    assert_eq!(c["authorName"], "Commenter");
    assert_eq!(c["text"], "First!");
    assert_eq!(c["createdAt"], c["updatedAt"]);
    assert!(c["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(env.comment_count(&author, &post_id).await, 1);

    new_comment(&env, &author, &post_id, "Second").await;
    assert_eq!(env.comment_count(&token, &post_id).await, 2);

    // A post's other fields and version are not an edit.
    let post = env
        .send(ApiRequest::get(&format!("/posts/{post_id}")).bearer(&author))
        .await;
    assert_eq!(post.body["version"], 1);
}

#[tokio::test]
async fn create_enforces_text_limits() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Limits").await;
    let post_id = id_of(&env.new_post(&token, "limits").await);

    let res = comment(&env, &token, &post_id, &"t".repeat(1000)).await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let res = comment(&env, &token, &post_id, &"ü".repeat(1000)).await;
    assert_eq!(res.status, 201, "characters, not bytes: {}", res.raw_body);

    let path = format!("/posts/{post_id}/comments");
    for body in [
        json!({"text": ""}),
        json!({"text": "t".repeat(1001)}),
        json!({}),
        json!({"text": null}),
        json!({"text": 1}),
        json!({"comment": "wrong field"}),
    ] {
        let res = env
            .send(ApiRequest::post(&path).bearer(&token).json(body.clone()))
            .await;
        assert_eq!(res.status, 400, "{body} → {}", res.raw_body);
        res.assert_validation("text");
    }
    env.send(
        ApiRequest::post(&path)
            .bearer(&token)
            .raw_body("text/plain", "{\"text\":\"x\"}"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    env.send(
        ApiRequest::post(&path)
            .bearer(&token)
            .raw_body("application/json", "{\"text\":"),
    )
    .await
    .assert_error(400, "invalid_json");
    env.send(ApiRequest::post(&path).json(json!({"text": "anonymous"})))
        .await
        .assert_error(401, "unauthorized");

    assert_eq!(
        env.comment_count(&token, &post_id).await,
        2,
        "refused comments are not counted"
    );
    assert_eq!(
        env.walk(&token, &format!("/posts/{post_id}/comments"), 100)
            .await
            .0
            .len(),
        2
    );
}

#[tokio::test]
async fn comment_on_a_missing_post_is_404_and_writes_nothing() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Nowhere").await;
    let missing = new_id();
    comment(&env, &token, &missing, "hello?")
        .await
        .assert_error(404, "not_found");
    assert_eq!(env.post_partition(&missing).await.len(), 0);
    comment(&env, &token, "not-a-post", "hello?")
        .await
        .assert_error(404, "not_found");

    // A deleted post takes no more comments either.
    let post_id = id_of(&env.new_post(&token, "short-lived").await);
    assert_eq!(
        env.send(ApiRequest::delete(&format!("/posts/{post_id}")).bearer(&token))
            .await
            .status,
        204
    );
    comment(&env, &token, &post_id, "too late")
        .await
        .assert_error(404, "not_found");
    assert_eq!(env.post_partition(&post_id).await.len(), 0);

    // Lists, reads, edits and deletes under a missing post are 404 too.
    let comment_id = new_id();
    env.send(ApiRequest::get(&format!("/posts/{missing}/comments")).bearer(&token))
        .await
        .assert_error(404, "not_found");
    let one = format!("/posts/{missing}/comments/{comment_id}");
    env.send(ApiRequest::get(&one).bearer(&token))
        .await
        .assert_error(404, "not_found");
    env.send(
        ApiRequest::patch(&one)
            .bearer(&token)
            .json(json!({"text": "x"})),
    )
    .await
    .assert_error(404, "not_found");
    env.send(ApiRequest::delete(&one).bearer(&token))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn list_is_oldest_first_with_cursor_paging() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Lister").await;
    let post_id = id_of(&env.new_post(&token, "many comments").await);
    let other_post = id_of(&env.new_post(&token, "other").await);
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(id_of(
            &new_comment(&env, &token, &post_id, &format!("c{i}")).await,
        ));
    }
    new_comment(&env, &token, &other_post, "elsewhere").await;

    let (ids, sizes) = env
        .walk(&token, &format!("/posts/{post_id}/comments"), 3)
        .await;
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(ids, created);
    let (ids, sizes) = env
        .walk(&token, &format!("/posts/{post_id}/comments"), 7)
        .await;
    assert_eq!((ids, sizes), (created.clone(), vec![7]));
    let (ids, _) = env
        .walk(&token, &format!("/posts/{post_id}/comments"), 1)
        .await;
    assert_eq!(ids, created);

    // Default limit, and the full items.
    let res = env
        .send(ApiRequest::get(&format!("/posts/{post_id}/comments")).bearer(&token))
        .await;
    assert_eq!(res.body["items"].as_array().map(Vec::len), Some(7));
    assert_eq!(res.body["nextCursor"], Value::Null);
    assert_eq!(res.body["items"][0]["text"], "c0");

    // Paging stays exact while comments are added: new ones come at the end.
    let first = env
        .send(ApiRequest::get(&format!("/posts/{post_id}/comments?limit=4")).bearer(&token))
        .await;
    let cursor = first.body["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let late = id_of(&new_comment(&env, &token, &post_id, "late").await);
    let rest = env
        .send(
            ApiRequest::get(&format!(
                "/posts/{post_id}/comments?limit=10&cursor={cursor}"
            ))
            .bearer(&token),
        )
        .await;
    let mut seen: Vec<String> = first.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect();
    seen.extend(
        rest.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(id_of),
    );
    let mut expected = created.clone();
    expected.push(late);
    assert_eq!(seen, expected);

    // A cursor belongs to its post's list.
    env.send(
        ApiRequest::get(&format!("/posts/{other_post}/comments?cursor={cursor}")).bearer(&token),
    )
    .await
    .assert_error(400, "invalid_cursor");
    let feed = env
        .send(ApiRequest::get("/posts?limit=1").bearer(&token))
        .await;
    let feed_cursor = feed.body["nextCursor"].as_str().expect("feed cursor");
    env.send(
        ApiRequest::get(&format!("/posts/{post_id}/comments?cursor={feed_cursor}")).bearer(&token),
    )
    .await
    .assert_error(400, "invalid_cursor");
    for garbage in ["garbage", "AAAA", &"B".repeat(300)] {
        env.send(
            ApiRequest::get(&format!("/posts/{post_id}/comments?cursor={garbage}")).bearer(&token),
        )
        .await
        .assert_error(400, "invalid_cursor");
    }
    for limit in ["0", "101", "abc", "-1"] {
        let res = env
            .send(
                ApiRequest::get(&format!("/posts/{post_id}/comments?limit={limit}")).bearer(&token),
            )
            .await;
        res.assert_validation("limit");
    }
    env.send(ApiRequest::get(&format!("/posts/{post_id}/comments")))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn get_and_patch_a_comment() {
    let env = TestEnv::new().await;
    let (author, _) = env.new_user("PostAuthor").await;
    let (token, _) = env.new_user("CommentAuthor").await;
    let (third, _) = env.new_user("Third").await;
    let post_id = id_of(&env.new_post(&author, "post").await);
    let other_post = id_of(&env.new_post(&author, "other post").await);
    let created = new_comment(&env, &token, &post_id, "original").await;
    let path = format!("/posts/{post_id}/comments/{}", id_of(&created));

    for reader in [&author, &token, &third] {
        let res = env.send(ApiRequest::get(&path).bearer(reader)).await;
        assert_eq!((res.status, &res.body), (200, &created), "{}", res.raw_body);
    }
    env.send(ApiRequest::get(&path))
        .await
        .assert_error(401, "unauthorized");
    for missing in [
        format!("/posts/{post_id}/comments/{}", new_id()),
        format!("/posts/{post_id}/comments/garbage"),
        format!("/posts/{other_post}/comments/{}", id_of(&created)),
    ] {
        env.send(ApiRequest::get(&missing).bearer(&token))
            .await
            .assert_error(404, "not_found");
        env.send(
            ApiRequest::patch(&missing)
                .bearer(&token)
                .json(json!({"text": "x"})),
        )
        .await
        .assert_error(404, "not_found");
    }

    let res = env
        .send(
            ApiRequest::patch(&path)
                .bearer(&token)
                .json(json!({"text": "edited"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(res.body["text"], "edited");
    for field in ["id", "postId", "authorId", "authorName", "createdAt"] {
        assert_eq!(res.body[field], created[field], "{field}");
    }
    assert!(res.body["updatedAt"].as_str() >= created["updatedAt"].as_str());
    let got = env.send(ApiRequest::get(&path).bearer(&third)).await;
    assert_eq!(got.body, res.body);

    // Only the comment's author edits it, not even the post's author.
    for other in [&author, &third] {
        env.send(
            ApiRequest::patch(&path)
                .bearer(other)
                .json(json!({"text": "hijack"})),
        )
        .await
        .assert_error(403, "forbidden");
    }
    for (body, field) in [
        (json!({"text": ""}), "text"),
        (json!({"text": "t".repeat(1001)}), "text"),
        (json!({}), "text"),
    ] {
        env.send(ApiRequest::patch(&path).bearer(&token).json(body))
            .await
            .assert_validation(field);
    }
    let got = env.send(ApiRequest::get(&path).bearer(&token)).await;
    assert_eq!(got.body["text"], "edited");
    assert_eq!(
        env.comment_count(&author, &post_id).await,
        1,
        "edits do not count"
    );

    for method in ["PUT", "POST"] {
        env.send(ApiRequest::new(method, &path).bearer(&token))
            .await
            .assert_error(405, "method_not_allowed");
    }
    env.send(ApiRequest::new("PUT", &format!("/posts/{post_id}/comments")).bearer(&token))
        .await
        .assert_error(405, "method_not_allowed");
    env.send(ApiRequest::get(&format!("{path}/extra")).bearer(&token))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn delete_by_comment_author_or_post_author_only() {
    let env = TestEnv::new().await;
    let (author, _) = env.new_user("PostAuthor").await;
    let (token, _) = env.new_user("CommentAuthor").await;
    let (third, _) = env.new_user("Third").await;
    let post_id = id_of(&env.new_post(&author, "post").await);
    let by_commenter = id_of(&new_comment(&env, &token, &post_id, "one").await);
    let removed_by_post_author = id_of(&new_comment(&env, &token, &post_id, "two").await);
    let survivor = id_of(&new_comment(&env, &token, &post_id, "three").await);
    assert_eq!(env.comment_count(&author, &post_id).await, 3);
    let at = |id: &str| format!("/posts/{post_id}/comments/{id}");

    for id in [&by_commenter, &removed_by_post_author, &survivor] {
        env.send(ApiRequest::delete(&at(id)).bearer(&third))
            .await
            .assert_error(403, "forbidden");
    }
    env.send(ApiRequest::delete(&at(&survivor)))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(env.comment_count(&author, &post_id).await, 3);

    let res = env
        .send(ApiRequest::delete(&at(&by_commenter)).bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert!(res.raw_body.is_empty());
    assert_eq!(env.comment_count(&author, &post_id).await, 2);
    env.send(ApiRequest::get(&at(&by_commenter)).bearer(&token))
        .await
        .assert_error(404, "not_found");

    let res = env
        .send(ApiRequest::delete(&at(&removed_by_post_author)).bearer(&author))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_eq!(env.comment_count(&author, &post_id).await, 1);

    // Deleting again is 404 and counts nothing twice.
    for who in [&token, &author, &third] {
        env.send(ApiRequest::delete(&at(&by_commenter)).bearer(who))
            .await
            .assert_error(404, "not_found");
    }
    env.send(ApiRequest::delete(&at(&new_id())).bearer(&author))
        .await
        .assert_error(404, "not_found");
    env.send(ApiRequest::delete(&at("garbage")).bearer(&author))
        .await
        .assert_error(404, "not_found");
    assert_eq!(env.comment_count(&author, &post_id).await, 1);
    assert_eq!(
        env.walk(&token, &format!("/posts/{post_id}/comments"), 10)
            .await
            .0,
        vec![survivor]
    );
}

/// Makes DynamoDB cancel the next `remaining` transactions for a conflict with another
/// transaction, as real DynamoDB does when many write one post at once (dynoxide never
/// does): the request becomes a harmless `ListTables`, its answer a
/// `TransactionCanceledException` with a `TransactionConflict` reason.
#[derive(Debug, Clone, Default)]
struct Conflicts {
    remaining: Arc<AtomicU32>,
    injected: Arc<AtomicU32>,
}

#[derive(Debug, Clone)]
struct Injected(bool);

impl Storable for Injected {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Conflicts {
    fn name(&self) -> &'static str {
        "Conflicts"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let is_transaction = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with(".TransactWriteItems"));
        let inject = is_transaction
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if inject {
            self.injected.fetch_add(1, Ordering::SeqCst);
            request
                .headers_mut()
                .insert("x-amz-target", "DynamoDB_20120810.ListTables");
            request.headers_mut().insert("content-length", "2");
            *request.body_mut() = SdkBody::from("{}");
        }
        cfg.interceptor_state().store_put(Injected(inject));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Injected>().is_some_and(|i| i.0) {
            let body = json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
                "CancellationReasons": [
                    {"Code": "None"},
                    {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                ]
            });
            let mut response = Response::new(
                StatusCode::try_from(400u16)?,
                SdkBody::from(body.to_string()),
            );
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            *context.response_mut() = response;
        }
        Ok(())
    }
}

/// The upkeep of `env`'s table with [`Conflicts`] on its client: the one writer of
/// transactions (a comment's count).
fn upkeep_with_conflicts(env: &TestEnv) -> (UpkeepInProcess, Conflicts) {
    let conflicts = Conflicts::default();
    let client = integration_tests::dynamo::client_for(&env.dynamo.endpoint, None)
        .config()
        .to_builder()
        .interceptor(conflicts.clone())
        .build();
    let upkeep = UpkeepInProcess::with_client(
        &env.config_for(&env.redis.url()),
        aws_sdk_dynamodb::Client::from_conf(client),
    );
    (upkeep, conflicts)
}

/// The upkeep's transactions (a comment counted, a deleted one uncounted) cancelled for a
/// conflict with another (many batches counting one popular post) are tried again: the count
/// is right, once. Conflicts that never end fail the batch, which the stream delivers again.
#[tokio::test]
async fn the_upkeeps_transactions_cancelled_by_a_conflict_are_retried() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Busy").await;
    let post_id = id_of(&env.new_post(&token, "contended").await);
    let (upkeep, conflicts) = upkeep_with_conflicts(&env);
    let mut poller = integration_tests::sync::poller(&env.dynamo.endpoint).await;
    let quiet = Duration::from_millis(30);
    let deadline = Duration::from_secs(30);

    // A few conflicts: the comment is counted once.
    let created = new_comment(&env, &token, &post_id, "after conflicts").await;
    conflicts.remaining.store(3, Ordering::SeqCst);
    poller
        .drain(&upkeep, quiet, deadline)
        .await
        .expect("drained");
    assert_eq!(
        conflicts.injected.load(Ordering::SeqCst),
        3,
        "the conflicts happened"
    );
    assert_eq!(
        stored_count(&env, &post_id).await,
        1,
        "counted by this upkeep"
    );

    // The same for a delete.
    let res = env
        .send(
            ApiRequest::delete(&format!("/posts/{post_id}/comments/{}", id_of(&created)))
                .bearer(&token),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    conflicts.remaining.store(2, Ordering::SeqCst);
    poller
        .drain(&upkeep, quiet, deadline)
        .await
        .expect("drained");
    assert_eq!(conflicts.injected.load(Ordering::SeqCst), 5);
    assert_eq!(
        stored_count(&env, &post_id).await,
        0,
        "uncounted by this upkeep"
    );

    // Conflicts that never end: the batch fails (and is retried), nothing is counted twice.
    new_comment(&env, &token, &post_id, "contended for long").await;
    conflicts.remaining.store(u32::MAX, Ordering::SeqCst);
    let records = integration_tests::sync::stream_records(&env.dynamo.endpoint).await;
    let mut event = aws_lambda_events::event::dynamodb::Event::default();
    event.records = records;
    let failed = stream_poller::Invoke::invoke(&upkeep, event.clone()).await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.contains("cannot be read or written")),
        "{failed:?}"
    );
    conflicts.remaining.store(0, Ordering::SeqCst);
    assert_eq!(stored_count(&env, &post_id).await, 0, "nothing counted yet");
    stream_poller::Invoke::invoke(&upkeep, event)
        .await
        .expect("the retry applies");
    assert_eq!(stored_count(&env, &post_id).await, 1);
    assert_eq!(
        env.comment_count(&token, &post_id).await,
        1,
        "and once only"
    );
}

/// The post's `commentCount` as the table holds it, read directly.
async fn stored_count(env: &TestEnv, post_id: &str) -> u64 {
    let item = env.dynamo.post_item(post_id).await.expect("the post");
    item.get("commentCount")
        .and_then(|n| n.as_n().ok())
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

/// A post's delete answers at once and none of its comments is served from then on; a sweep
/// that fails (the table refusing its writes) fails its batch, which the stream brings again
/// until the sweep is done.
#[tokio::test]
async fn a_deleted_posts_comments_are_never_served_and_a_failed_sweep_is_retried() {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let (token, _) = env.new_user("Sweep").await;
    let post = id_of(&env.new_post(&token, "to sweep").await);
    let comment = id_of(&comment(&env, &token, &post, "orphan to be").await.body);
    let path = format!("/posts/{post}/comments/{comment}");

    let res = env
        .send(ApiRequest::delete(&format!("/posts/{post}")).bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_eq!(
        env.post_partition(&post).await.len(),
        1,
        "the comment is left"
    );
    env.send(ApiRequest::get(&path).bearer(&token))
        .await
        .assert_error(404, "not_found");
    env.send(
        ApiRequest::patch(&path)
            .bearer(&token)
            .json(json!({"text": "still here?"})),
    )
    .await
    .assert_error(404, "not_found");
    env.send(ApiRequest::get(&format!("/posts/{post}/comments")).bearer(&token))
        .await
        .assert_error(404, "not_found");

    // The upkeep, reaching the table through the proxy: its sweep's deletes fail (both of the
    // SDK's attempts), so the batch fails; the stream's retry sweeps.
    let config = env.config_for(&env.redis.url());
    let upkeep = UpkeepInProcess::with_client(
        &config,
        integration_tests::dynamo::client_for(&proxy.endpoint, None),
    );
    let records = integration_tests::sync::stream_records(&env.dynamo.endpoint).await;
    let mut event = aws_lambda_events::event::dynamodb::Event::default();
    event.records = records;
    proxy.fail_requests("BatchWriteItem", 2);
    let failed = stream_poller::Invoke::invoke(&upkeep, event.clone()).await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.contains("cannot be read or written")),
        "{failed:?}"
    );
    assert_eq!(env.post_partition(&post).await.len(), 1, "not swept yet");
    stream_poller::Invoke::invoke(&upkeep, event)
        .await
        .expect("the retry sweeps");
    assert!(env.post_partition(&post).await.is_empty());
}
