//! What a stream function's failed batch leaves in its log: the `ERROR` line, the one alarms
//! and log filters catch, is the runtime's own print of the error the handler returned. It must
//! say what failed and what happens next, not only a variant's name (`ERROR … Cache` was all
//! cache-sync's said while Redis refused writes).

use std::path::Path;

use integration_tests::lambda_process::LambdaProcess;
use integration_tests::{ApiRequest, TestEnv};
use serde_json::{json, Value};

fn stream_event(records: &[aws_lambda_events::event::dynamodb::EventRecord]) -> Value {
    let mut event = aws_lambda_events::event::dynamodb::Event::default();
    event.records = records.to_vec();
    serde_json::to_value(event).expect("a stream event")
}

/// The log's `ERROR` lines (JSON lines, as in Lambda).
fn error_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line).is_ok_and(|v| v["level"].as_str() == Some("ERROR"))
        })
        .map(str::to_owned)
        .collect()
}

fn assert_an_error_line_says(log: &str, words: &[&str]) {
    let errors = error_lines(log);
    assert!(
        errors
            .iter()
            .any(|line| words.iter().all(|w| line.contains(w))),
        "no ERROR line says {words:?}; ERROR lines: {errors:#?}"
    );
}

#[tokio::test]
async fn cache_sync_s_error_line_says_redis_cannot_take_writes_and_the_batch_is_retried() {
    let env = TestEnv::new().await;
    let (_, user) = env.new_user("ErrorLine").await;
    let email = user["email"].as_str().expect("email").to_owned();
    let records = integration_tests::sync::stream_records(&env.dynamo.endpoint).await;
    let mine = integration_tests::sync::user_records(&records, &email);
    assert!(!mine.is_empty(), "the registration's record");
    let unreachable = format!("redis://127.0.0.1:{}", integration_tests::closed_port());
    let vars = [("REDIS_URL", unreachable)];
    let sync = LambdaProcess::ready(
        Path::new(env!("CARGO_BIN_EXE_cache-sync-app")),
        "cache-sync",
        &env,
        &env.dynamo.endpoint,
        &vars,
    )
    .await;
    assert!(
        !sync.invoke(&stream_event(&mine)).await.ok,
        "the batch fails"
    );
    assert_an_error_line_says(
        &sync.log(),
        &["redis cannot take writes", "the batch will be retried"],
    );
}

#[tokio::test]
async fn upkeep_s_error_line_says_the_table_failed_and_the_batch_is_retried() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("UpkeepErrorLine").await;
    let post = env.new_post(&token, "counted later").await;
    let post_id = post["id"].as_str().expect("id");
    let res = env
        .send(
            ApiRequest::post(&format!("/posts/{post_id}/comments"))
                .bearer(&token)
                .json(json!({"text": "to count"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let records = integration_tests::sync::stream_records(&env.dynamo.endpoint).await;
    let unreachable = format!("http://127.0.0.1:{}", integration_tests::closed_port());
    let upkeep = LambdaProcess::ready(
        Path::new(env!("CARGO_BIN_EXE_upkeep-app")),
        "upkeep",
        &env,
        &unreachable,
        &[],
    )
    .await;
    assert!(
        !upkeep.invoke(&stream_event(&records)).await.ok,
        "the batch fails"
    );
    assert_an_error_line_says(
        &upkeep.log(),
        &[
            "the table cannot be read or written",
            "the batch will be retried",
        ],
    );
}
