//! The recorder sees what it claims: known writes cost what AWS's rules say, on the partitions
//! they touch, and agree with the emulator's own `ConsumedCapacity`; the app's post create
//! writes the feed index's partition.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use capacity::record::{Call, Check, Kind, TABLE};
use capacity::recorder::Recorder;
use integration_tests::{Dynamo, TestEnv, TestRedis, TABLE_NAME};
use shared::config::{CacheMode, Secret};
use shared::App;

/// An item of exactly `bytes` bytes as DynamoDB sizes it (names and values): `pk`, `sk`, `data`.
fn item_of(pk: &str, bytes: usize) -> std::collections::HashMap<String, AttributeValue> {
    let fixed = "pk".len() + pk.len() + "sk".len() + 1 + "data".len();
    std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S("a".to_owned())),
        (
            "data".to_owned(),
            AttributeValue::S("x".repeat(bytes - fixed)),
        ),
    ])
}

fn writes_on(calls: &[Call], resource: &str) -> Vec<(String, f64)> {
    calls
        .iter()
        .flat_map(|c| &c.accesses)
        .filter(|a| a.kind == Kind::Write && a.resource == resource)
        .map(|a| (a.partition.clone(), a.units))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_writes_cost_what_the_rules_say_on_their_partitions() {
    let dynamo = Dynamo::start().await;
    let recorder = Recorder::start(&dynamo.endpoint, TABLE_NAME)
        .await
        .expect("recorder");
    let client = integration_tests::dynamo::client_for(&recorder.endpoint, None);

    // A 2.5 KB item: three write units, on its own partition.
    client
        .put_item()
        .table_name(TABLE_NAME)
        .set_item(Some(item_of("T#1", 2560)))
        .send()
        .await
        .expect("PutItem");
    let calls = recorder.take();
    assert_eq!(calls.len(), 1);
    assert_eq!(writes_on(&calls, TABLE), vec![("T#1".to_owned(), 3.0)]);
    assert_eq!(calls[0].check, Check::Agreed);

    // Two 1 KB items in one transaction: two units each, four in all.
    let put = |pk: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(TABLE_NAME)
                    .set_item(Some(item_of(pk, 1024)))
                    .build()
                    .expect("Put"),
            )
            .build()
    };
    client
        .transact_write_items()
        .transact_items(put("T#2"))
        .transact_items(put("T#3"))
        .send()
        .await
        .expect("TransactWriteItems");
    let calls = recorder.take();
    let writes = writes_on(&calls, TABLE);
    assert_eq!(
        writes,
        vec![("T#2".to_owned(), 2.0), ("T#3".to_owned(), 2.0)]
    );
    assert_eq!(calls[0].units(Kind::Write), 4.0);
    assert_eq!(calls[0].check, Check::Agreed);

    // A failed conditional write is still charged, on the existing item.
    let refused = client
        .put_item()
        .table_name(TABLE_NAME)
        .set_item(Some(item_of("T#1", 100)))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    assert!(refused.is_err());
    assert_eq!(
        writes_on(&recorder.take(), TABLE),
        vec![("T#1".to_owned(), 3.0)]
    );

    // A strongly consistent read of the 2.5 KB item: one unit; eventually consistent: half.
    for (consistent, units) in [(true, 1.0), (false, 0.5)] {
        client
            .get_item()
            .table_name(TABLE_NAME)
            .key("pk", AttributeValue::S("T#1".into()))
            .key("sk", AttributeValue::S("a".into()))
            .consistent_read(consistent)
            .projection_expression("pk")
            .send()
            .await
            .expect("GetItem");
        let calls = recorder.take();
        assert_eq!(calls[0].units(Kind::Read), units);
        assert_eq!(calls[0].check, Check::Agreed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_create_writes_the_feed_index_partition() {
    let redis = TestRedis::start_in(CacheMode::Standalone).await;
    let dynamo = Dynamo::start().await;
    let recorder = Recorder::start(&dynamo.endpoint, TABLE_NAME)
        .await
        .expect("recorder");
    let mut config = integration_tests::test_config(&redis.url(), &recorder.endpoint);
    redis.configure(&mut config.cache);
    let app = App::build(
        config,
        integration_tests::dynamo::client_for(&recorder.endpoint, None),
        Secret::new(integration_tests::TEST_SECRET),
        None,
    )
    .expect("app");
    let env = TestEnv::from_parts(app, redis, dynamo);
    let (token, _) = env.new_user("recorded").await;
    recorder.take();
    let post = env.new_post(&token, "hello").await;
    let calls = recorder.take();
    // Its feed shard of the index `feed` (keys only: 1 WCU), and nothing on the legacy `gsi1`.
    let id = post["id"].as_str().expect("id");
    let index = writes_on(&calls, "feed");
    assert_eq!(
        index,
        vec![(shared::store::keys::feed_pk(id), 1.0)],
        "{calls:#?}"
    );
    assert!(writes_on(&calls, "gsi1").is_empty(), "{calls:#?}");
    let post_pk = format!("POST#{}", post["id"].as_str().expect("id"));
    assert!(writes_on(&calls, TABLE).iter().any(|(p, _)| *p == post_pk));
    assert!(
        calls
            .iter()
            .all(|c| !matches!(c.check, Check::Disagreed(_))),
        "{calls:#?}"
    );
}
