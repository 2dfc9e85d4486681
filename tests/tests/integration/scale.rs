//! What the key design must hold at scale, on the local stack (the functions, Redis and the
//! DynamoDB emulator, which has no partition limits: BENCHMARKS.md's "Scale" models those):
//!
//! - 2,000 comments at once on one post: each answered `201` or with a contract error, never a
//!   `500`; once the upkeep has had the stream, the post's `commentCount` is the number of
//!   comments stored, and every one is listed once.
//! - Lists merged from their shards keep the contract's promise while items are added: every
//!   item once, in order, across the cached first page and the pages read from the table
//!   after it (a property test, with pages, sizes and arrivals drawn at random).

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use integration_tests::{id_of, ApiRequest, TestEnv};
use proptest::prelude::*;
use serde_json::{json, Value};

fn comment(token: &str, post_id: &str, text: &str) -> ApiRequest {
    ApiRequest::post(&format!("/posts/{post_id}/comments"))
        .bearer(token)
        .json(json!({ "text": text }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_comments_at_once_on_one_post_are_each_answered_and_counted() {
    const COMMENTS: usize = 2_000;
    let env = Arc::new(TestEnv::patient().await);
    let (author, _) = env.new_user("Viral").await;
    let mut crowd = Vec::new();
    for i in 0..8 {
        crowd.push(env.new_user(&format!("Crowd{i}")).await.0);
    }
    let post_id = id_of(&env.new_post(&author, "viral").await);

    let tasks = (0..COMMENTS).map(|i| {
        let env = Arc::clone(&env);
        let request = comment(&crowd[i % crowd.len()], &post_id, &format!("c{i}"));
        tokio::spawn(async move { env.send(request).await })
    });
    let answers: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("a task"))
        .collect();
    let mut created = HashSet::new();
    for res in &answers {
        match res.status {
            201 => {
                created.insert(id_of(&res.body));
            }
            // The contract's own answer for a store that cannot keep up; never seen here.
            503 => res.assert_error(503, "service_unavailable"),
            _ => panic!(
                "not an answer of the contract: {} {}",
                res.status, res.raw_body
            ),
        }
    }
    assert_eq!(created.len(), COMMENTS, "every comment created, once");

    let (listed, _) = env
        .walk(&author, &format!("/posts/{post_id}/comments"), 100)
        .await;
    assert_eq!(listed.len(), COMMENTS, "each listed once");
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), COMMENTS);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "oldest first");
    assert_eq!(
        listed.iter().cloned().collect::<HashSet<_>>(),
        created,
        "the comments answered are the comments stored"
    );
    assert_eq!(
        env.comment_count(&author, &post_id).await,
        COMMENTS as u64,
        "the count is the comments stored"
    );
    // Spread over the post's comment shards, not one partition.
    let shards: HashSet<u32> = created
        .iter()
        .map(|id| shared::store::keys::shard_of(id, shared::store::keys::COMMENT_SHARDS))
        .collect();
    assert_eq!(shards.len() as u32, shared::store::keys::COMMENT_SHARDS);
}

/// One run of the property: `before` items, then a walk with pages of `limits` (cycled), with
/// `arrivals[i]` items added after page `i`. Checks the contract's list promise.
async fn walk_while_adding(list: List, before: usize, limits: Vec<usize>, arrivals: Vec<usize>) {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Walker").await;
    let post_id = id_of(&env.new_post(&token, "the list").await);
    let add = |n: usize| {
        let (env, token, post_id) = (&env, &token, &post_id);
        async move {
            let mut ids = Vec::new();
            for i in 0..n {
                let res = match list {
                    List::Feed => {
                        env.send(
                            ApiRequest::post("/posts")
                                .bearer(token)
                                .json(json!({"caption": format!("p{i}")})),
                        )
                        .await
                    }
                    List::Comments => env.send(comment(token, post_id, &format!("c{i}"))).await,
                };
                assert_eq!(res.status, 201, "{}", res.raw_body);
                ids.push(id_of(&res.body));
            }
            ids
        }
    };
    let mut existing = match list {
        List::Feed => vec![post_id.clone()],
        List::Comments => Vec::new(),
    };
    existing.extend(add(before).await);
    let path = match list {
        List::Feed => "/posts".to_owned(),
        List::Comments => format!("/posts/{post_id}/comments"),
    };
    let (mut seen, mut cursor, mut page) = (Vec::<String>::new(), None::<String>, 0);
    loop {
        let limit = limits[page % limits.len()];
        let url = match &cursor {
            None => format!("{path}?limit={limit}"),
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
        };
        let res = env.send(ApiRequest::get(&url).bearer(&token)).await;
        assert_eq!(res.status, 200, "{url}: {}", res.raw_body);
        let items = res.body["items"].as_array().expect("items");
        assert!(
            items.len() <= limit,
            "{} items for limit {limit}",
            items.len()
        );
        seen.extend(items.iter().map(id_of));
        if let Some(n) = arrivals.get(page) {
            add(*n).await;
        }
        page += 1;
        match &res.body["nextCursor"] {
            Value::Null => break,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("nextCursor: {other}"),
        }
        assert!(page < 1_000, "paging does not end");
    }
    // Every item there when the walk began, exactly once, in the list's order.
    let ordered = |ids: &[String]| match list {
        List::Feed => ids.windows(2).all(|w| w[0] > w[1]),
        List::Comments => ids.windows(2).all(|w| w[0] < w[1]),
    };
    assert!(ordered(&seen), "out of order: {seen:?}");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item twice: {seen:?}");
    for id in &existing {
        assert!(unique.contains(id), "{id} was skipped: {seen:?}");
    }
}

#[derive(Debug, Clone, Copy)]
enum List {
    Feed,
    Comments,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn a_merged_list_visits_every_item_once_in_order_while_items_arrive(
        feed in any::<bool>(),
        before in 0usize..70,
        limits in prop::collection::vec(prop_oneof![1usize..5, 15usize..25, 45usize..60], 1..4),
        arrivals in prop::collection::vec(0usize..4, 0..6),
    ) {
        let list = if feed { List::Feed } else { List::Comments };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(walk_while_adding(list, before, limits, arrivals));
    }
}
