//! A table of hostile and borderline requests over every route, each with the exact status
//! and error code `API.md` gives it.
//!
//! Bodies (malformed JSON, arrays, scalars, wrong field types, missing fields, nulls, lengths
//! at each boundary counted in Unicode characters, unicode oddities, huge numbers, nesting
//! bombs), content types, sizes, base64 bodies, path ids, query parameters, `If-Match` and
//! the token headers. Where `API.md` is silent, the case pins what the code does and the
//! comment beside it says why that is the careful answer.
//!
//! A base64 body that is not valid base64 never reaches a handler: `lambda_http` panics while
//! deserializing the event (`Body::from_maybe_encoded` calls `expect`), and the Lambda
//! runtime reports that invocation as failed. API Gateway only ever sends valid base64, so a
//! client cannot reach that; [`invalid_base64_never_reaches_a_handler`] documents it.
//!
//! `language.rs` says what a case is and how it is run and judged; `cases.rs` holds the
//! table.

mod cases;
mod language;

use std::collections::HashSet;

use integration_tests::ApiRequest;
use serde_json::json;

use cases::*;
use language::{run, Case};

// ---------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------

fn all_cases() -> Vec<Vec<Case>> {
    vec![
        body_shape_cases(),
        boundary_cases(),
        json_oddity_cases(),
        transport_cases(),
        path_cases(),
        query_cases(),
        header_cases(),
    ]
}

#[test]
fn the_corpus_has_at_least_150_distinct_cases() {
    let cases: Vec<Case> = all_cases().into_iter().flatten().collect();
    let mut names = HashSet::new();
    let twice: Vec<&str> = cases
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| !names.insert(*n))
        .collect();
    assert!(twice.is_empty(), "case names must be unique: {twice:?}");
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    println!("bad input corpus: {} cases", cases.len());
}

#[tokio::test]
async fn bodies_that_are_not_objects_and_fields_of_every_wrong_type() {
    run(body_shape_cases()).await;
}

#[tokio::test]
async fn every_limit_at_and_past_its_boundary() {
    run(boundary_cases()).await;
}

#[tokio::test]
async fn odd_json_unknown_fields_numbers_and_depth_bombs() {
    run(json_oddity_cases()).await;
}

#[tokio::test]
async fn content_types_sizes_and_base64_bodies() {
    run(transport_cases()).await;
}

#[tokio::test]
async fn path_ids_and_methods() {
    run(path_cases()).await;
}

#[tokio::test]
async fn limits_and_cursors() {
    run(query_cases()).await;
}

#[tokio::test]
async fn if_match_and_token_headers() {
    run(header_cases()).await;
}

/// Not reachable by a client (API Gateway only sends valid base64), so not a contract case:
/// `lambda_http` panics on it while building the request, before any handler runs, and the
/// Lambda runtime's panic layer reports the invocation as failed.
#[test]
fn invalid_base64_never_reaches_a_handler() {
    let mut event = ApiRequest::post("/posts")
        .raw_body("application/json", "{}")
        .to_v2_event();
    event["body"] = json!("this is not base64!");
    event["isBase64Encoded"] = json!(true);
    let text = event.to_string();
    let outcome = std::panic::catch_unwind(|| lambda_http::request::from_str(&text).map(|_| ()));
    assert!(
        outcome.is_err(),
        "lambda_http no longer panics on invalid base64: make it a contract case"
    );
}
