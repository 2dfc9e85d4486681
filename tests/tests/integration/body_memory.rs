//! A body's size is checked before anything reads it, with or without an `Idempotency-Key`: a
//! few MB of `[0,0,0,…]` parsed into JSON values is about twenty times its size in memory, and on
//! Lambda Managed Instances many requests share one environment's memory. Each case runs in a
//! process of its own (the functions' binary under the test's Runtime API), and the peaks are
//! the kernel's high-water marks of those processes, compared with each other, not timed.

use std::path::Path;

use integration_tests::lambda_process::LambdaProcess;
use integration_tests::{ApiRequest, TestEnv};

/// A JSON body of `bytes` bytes that is one array of zeros: two bytes a value.
fn zeros(bytes: usize) -> String {
    let mut body = String::with_capacity(bytes + 2);
    body.push('[');
    while body.len() + 2 < bytes {
        body.push_str("0,");
    }
    body.push('0');
    body.push(']');
    body
}

/// The peak memory (KiB) of a fresh process of the API functions that answered `request`,
/// which must be `413 payload_too_large`.
async fn peak_after(env: &TestEnv, request: ApiRequest) -> u64 {
    let function = LambdaProcess::ready(
        Path::new(env!("CARGO_BIN_EXE_lambda-app")),
        "posts",
        env,
        &env.dynamo.endpoint,
        &[],
    )
    .await;
    function
        .send(request)
        .await
        .assert_error(413, "payload_too_large");
    function.peak_memory_kib()
}

#[tokio::test]
async fn a_5_mb_body_costs_no_more_memory_with_an_idempotency_key_than_without() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("BigBody").await;
    let body = zeros(5 * 1024 * 1024);
    let request = ApiRequest::post("/posts")
        .bearer(&token)
        .raw_body("application/json", &body);
    let without = peak_after(&env, request.clone()).await;
    let with = peak_after(&env, request.header("idempotency-key", "big")).await;
    println!("peak memory: without a key {without} KiB, with a key {with} KiB");
    // Parsing the body would take about 80 MB of values (32 bytes each) and more to
    // serialize them again; what the two processes otherwise do is the same.
    assert!(
        with < without + 32 * 1024,
        "with a key the peak was {with} KiB, without {without} KiB"
    );
}
