//! The wrapper around every handler: a span per request, errors to contract responses,
//! one log line per request with its status, latency and cache outcome.

use std::future::Future;
use std::time::Instant;

use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

use super::response;
use crate::error::AppError;

/// Runs `handler` for `req` inside a request span and never fails: an error becomes its
/// contract response, and a server-side one is logged with its details.
pub async fn serve<F, Fut>(function: &'static str, req: Request, handler: F) -> Response<Body>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, AppError>>,
{
    let request_id = req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default();
    let method = req.method().to_string();
    let route = super::path_segments(&req)
        .iter()
        .enumerate()
        .map(|(i, s)| if i % 2 == 1 { "{id}" } else { s.as_str() })
        .collect::<Vec<_>>()
        .join("/");
    let span = tracing::info_span!(
        "request",
        function,
        request_id = %request_id,
        method = %method,
        route = %format!("/{route}"),
        user_id = tracing::field::Empty,
        cache = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let response = respond(handler(req).await);
        tracing::info!(
            status = response.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "request done"
        );
        response
    }
    .instrument(span)
    .await
}

/// A handler's result as the client gets it: an error becomes its contract response, logged
/// (a server-side one with its details, which the client never sees).
pub fn respond(result: Result<Response<Body>, AppError>) -> Response<Body> {
    match result {
        Ok(response) => response,
        Err(err) => {
            if err.is_server_error() {
                tracing::error!(code = err.code(), error = %err, "request failed");
            } else {
                tracing::info!(code = err.code(), reason = %err, "request refused");
            }
            response::error(&err)
        }
    }
}
