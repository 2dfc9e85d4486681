//! A table that already holds data in the legacy layout keeps working, and moves by itself: its
//! posts in the one partition `FEED` of `gsi1`, its comments in their post's own partition,
//! counted by the transactions that wrote them. The deployment adds the `feed` index (as
//! CloudFormation does); reads then merge both layouts, changes of legacy items work as any
//! other, and `migrate-layout`, stopped half way and resumed, moves every legacy item with
//! nothing lost, after which the functions no longer need to read the legacy layout.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CreateGlobalSecondaryIndexAction,
    GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use integration_tests::{id_of, send_to, ApiRequest, TestEnv, TABLE_NAME};
use serde_json::json;
use shared::domain::{new_id, now_rfc3339};

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("a key")
}

fn attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("an attribute")
}

/// The table as the legacy template made it: `pk`/`sk`, the index `gsi1` (every attribute); its
/// stream keys only, as the deployment that keeps hashes out of the stream left it (issue 23).
async fn legacy_table(env: &TestEnv) {
    let client = &env.dynamo.client;
    client
        .delete_table()
        .table_name(TABLE_NAME)
        .send()
        .await
        .expect("DeleteTable");
    let gsi1 = GlobalSecondaryIndex::builder()
        .index_name("gsi1")
        .key_schema(key("gsi1pk", KeyType::Hash))
        .key_schema(key("gsi1sk", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("gsi1");
    client
        .create_table()
        .table_name(TABLE_NAME)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .attribute_definitions(attribute("gsi1pk"))
        .attribute_definitions(attribute("gsi1sk"))
        .global_secondary_indexes(gsi1)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::KeysOnly)
                .build()
                .expect("a stream"),
        )
        .send()
        .await
        .expect("CreateTable");
}

/// The deployment of this layout: the index `feed` added to the table, as CloudFormation adds
/// a GSI to an existing table.
async fn add_feed_index(env: &TestEnv) {
    let create = CreateGlobalSecondaryIndexAction::builder()
        .index_name("feed")
        .key_schema(key("feedpk", KeyType::Hash))
        .key_schema(key("feedsk", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .expect("the feed index");
    env.dynamo
        .client
        .update_table()
        .table_name(TABLE_NAME)
        .attribute_definitions(attribute("feedpk"))
        .attribute_definitions(attribute("feedsk"))
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder().create(create).build(),
        )
        .send()
        .await
        .expect("UpdateTable");
}

/// A post and its comments as the legacy code wrote them; their ids.
async fn legacy_post(
    env: &TestEnv,
    author: &serde_json::Value,
    comments: usize,
) -> (String, Vec<String>) {
    let (id, now) = (new_id(), now_rfc3339());
    let author_id = id_of(author);
    let put = |item: Vec<(&str, AttributeValue)>| {
        env.dynamo
            .client
            .put_item()
            .table_name(TABLE_NAME)
            .set_item(Some(
                item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .send()
    };
    put(vec![
        ("pk", s(format!("POST#{id}"))),
        ("sk", s("POST")),
        ("gsi1pk", s("FEED")),
        ("gsi1sk", s(&id)),
        ("id", s(&id)),
        ("authorId", s(&author_id)),
        ("authorName", s("Legacy")),
        ("caption", s(format!("legacy {comments}"))),
        ("imageUrl", AttributeValue::Null(true)),
        ("commentCount", AttributeValue::N(comments.to_string())),
        ("version", AttributeValue::N("1".into())),
        ("createdAt", s(&now)),
        ("updatedAt", s(&now)),
    ])
    .await
    .expect("a legacy post");
    let mut ids = Vec::new();
    for i in 0..comments {
        let comment = new_id();
        put(vec![
            ("pk", s(format!("POST#{id}"))),
            ("sk", s(format!("COMMENT#{comment}"))),
            ("id", s(&comment)),
            ("postId", s(&id)),
            ("authorId", s(&author_id)),
            ("authorName", s("Legacy")),
            ("text", s(format!("legacy comment {i}"))),
            ("createdAt", s(&now)),
            ("updatedAt", s(&now)),
        ])
        .await
        .expect("a legacy comment");
        ids.push(comment);
    }
    (id, ids)
}

/// How many items of the legacy layout the table still holds.
async fn legacy_items(env: &TestEnv) -> usize {
    let out = env
        .dynamo
        .client
        .scan()
        .table_name(TABLE_NAME)
        .send()
        .await
        .expect("Scan");
    out.items()
        .iter()
        .filter(|item| {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            let (pk, sk) = (
                text("pk").unwrap_or_default(),
                text("sk").unwrap_or_default(),
            );
            item.contains_key("gsi1pk")
                || shared::store::keys::comment_of_key(&pk, &sk)
                    .is_some_and(|(_, _, legacy)| legacy)
        })
        .count()
}

#[tokio::test]
async fn a_table_of_the_legacy_layout_keeps_working_and_moves_with_nothing_lost() {
    let env = TestEnv::new().await;
    legacy_table(&env).await;
    let (token, author) = env.new_user("Legacy").await;
    let (quiet, _) = legacy_post(&env, &author, 0).await;
    let (small, small_comments) = legacy_post(&env, &author, 2).await;
    let (busy, busy_comments) = legacy_post(&env, &author, 60).await;
    add_feed_index(&env).await;

    // Read as they are, both layouts merged.
    let feed = || {
        let (env, token) = (&env, &token);
        async move { env.walk(token, "/posts", 2).await.0 }
    };
    assert_eq!(feed().await, [busy.clone(), small.clone(), quiet.clone()]);
    let comments = |post: String| {
        let (env, token) = (&env, &token);
        async move {
            env.walk(token, &format!("/posts/{post}/comments"), 7)
                .await
                .0
        }
    };
    assert_eq!(comments(busy.clone()).await, busy_comments);
    assert_eq!(comments(small.clone()).await, small_comments);
    assert_eq!(env.comment_count(&token, &busy).await, 60);

    // Changed as any other: a new post and a new comment (the current layout), a legacy
    // comment edited and another deleted, a legacy post deleted with its comments.
    let fresh = id_of(&env.new_post(&token, "current layout").await);
    let res = env
        .send(
            ApiRequest::post(&format!("/posts/{busy}/comments"))
                .bearer(&token)
                .json(json!({"text": "a new one"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let new_comment = id_of(&res.body);
    let res = env
        .send(
            ApiRequest::patch(&format!("/posts/{busy}/comments/{}", busy_comments[0]))
                .bearer(&token)
                .json(json!({"text": "edited"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    let res = env
        .send(
            ApiRequest::delete(&format!("/posts/{busy}/comments/{}", busy_comments[1]))
                .bearer(&token),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    let res = env
        .send(ApiRequest::delete(&format!("/posts/{small}")).bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert_eq!(
        env.comment_count(&token, &busy).await,
        60,
        "one more, one less"
    );
    assert!(env.post_partition(&small).await.is_empty(), "swept");
    let mut expected_busy: Vec<String> = busy_comments
        .iter()
        .filter(|c| **c != busy_comments[1])
        .cloned()
        .collect();
    expected_busy.push(new_comment.clone());
    let expected_feed = vec![fresh.clone(), busy.clone(), quiet.clone()];
    assert_eq!(feed().await, expected_feed);
    assert_eq!(comments(busy.clone()).await, expected_busy);

    // The move, stopped after one page and resumed from its checkpoint.
    let checkpoint = std::env::temp_dir().join(format!("migrate-{}.checkpoint", new_id()));
    let first = migrate_layout::run(&env.app.store, &checkpoint, 5, Some(1))
        .await
        .expect("a page");
    assert!(!first.done);
    assert!(legacy_items(&env).await > 0, "half way");
    assert_eq!(feed().await, expected_feed, "half way, the same lists");
    assert_eq!(comments(busy.clone()).await, expected_busy);
    let rest = migrate_layout::run(&env.app.store, &checkpoint, 5, None)
        .await
        .expect("the rest");
    assert!(rest.done);
    assert_eq!(legacy_items(&env).await, 0, "every legacy item moved");
    assert_eq!(
        first.moved.posts + rest.moved.posts,
        2,
        "the two legacy posts left"
    );
    assert_eq!(first.moved.comments + rest.moved.comments, 59);
    let again = migrate_layout::run(&env.app.store, &checkpoint, 5, None)
        .await
        .expect("a finished run");
    assert!(
        again.done && again.moved.scanned == 0,
        "finished stays finished"
    );
    let _ = std::fs::remove_file(&checkpoint);

    // Nothing lost, nothing counted twice (the moved comments come through the stream as new
    // items: the upkeep finds them counted), and the functions may stop reading the legacy
    // layout.
    assert_eq!(env.comment_count(&token, &busy).await, 60);
    assert_eq!(feed().await, expected_feed);
    assert_eq!(comments(busy.clone()).await, expected_busy);
    let current = env.instance_with(&env.redis.url(), |c| c.table.legacy_layout = false);
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/posts/{busy}/comments?limit=100"),
            Some(c) => format!("/posts/{busy}/comments?limit=100&cursor={c}"),
        };
        let res = send_to(&current, ApiRequest::get(&path).bearer(&token)).await;
        assert_eq!(res.status, 200, "{}", res.raw_body);
        walked.extend(
            res.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(id_of),
        );
        match res.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked, expected_busy, "read without the legacy layout");
    let res = send_to(&current, ApiRequest::get("/posts?limit=100").bearer(&token)).await;
    let ids: Vec<String> = res.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, expected_feed);
}
