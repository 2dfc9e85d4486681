//! The wrapper around every handler: a span per request, errors to contract responses,
//! one log line per request with its status, latency and cache outcome.

use std::future::Future;
use std::time::Instant;

use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

use super::response;
use super::routing::{route, template, Router};
use crate::error::AppError;

/// Serves one request of `function`: `router` names its route (the one place that knows
/// routes; the path is parsed here, once), then `handler` runs it inside a request span. It
/// never fails: an error becomes its contract response, and a server-side one is logged with
/// its details. One log line per request says its status, latency and cache outcome.
pub async fn serve<R, H, Fut>(
    function: &'static str,
    req: Request,
    router: Router<R>,
    handler: H,
) -> Response<Body>
where
    H: FnOnce(R, Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, AppError>>,
{
    let matched = {
        let (segments, stage) = super::request::path_segments(&req);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        route(router, req.method(), &segments, stage.as_deref())
    };
    let context = req.lambda_context_ref();
    let request_id = context.map(|c| c.request_id.as_str()).unwrap_or_default();
    let trace_id = context.and_then(|c| c.xray_trace_id.as_deref());
    let span = tracing::info_span!(
        "request",
        function,
        request_id = %request_id,
        trace_id,
        method = %req.method(),
        route = template(matched.route_key),
        user_id = tracing::field::Empty,
        cache = tracing::field::Empty,
    );
    let started = Instant::now();
    let route_key = matched.route_key;
    let invocation = async move {
        // On the heap: a route's future holds every call it may make (the SDK's are several
        // KB each), and the wrapper's own state need not sit on top of it on the stack of
        // whatever thread polls it (a debug build's 2 MiB test threads overflowed).
        let result = match matched.route {
            Ok(route) => Box::pin(handler(route, req)).await,
            Err(refused) => Err(refused),
        };
        let response = respond(result);
        let (status, elapsed) = (response.status().as_u16(), started.elapsed());
        tracing::info!(
            status,
            latency_us = elapsed.as_micros() as u64,
            "request done"
        );
        crate::metrics::request_done(function, route_key, status, elapsed);
        response
    };
    crate::metrics::scope(function, invocation.instrument(span)).await
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
