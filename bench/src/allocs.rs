//! `allocs.*`: heap allocations per warm invocation of each route's handler path, in this
//! process: the API Gateway event decoded by `lambda_http`, the handler (authentication, the
//! Redis `GET`, DynamoDB through the SDK, the response built). The runtime's own client (the
//! long poll and the answer's `POST`) is outside it; `scripts/profile` shows that part's CPU.
//!
//! Counted by this binary's global allocator ([`Counting`]), which counts only while a count is
//! being taken, so the other figures pay one relaxed load per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use integration_tests::{ApiRequest, TestEnv};
use serde_json::json;

use crate::lambda::Fixture;
use crate::report::{median, Report};

/// The system allocator, counting allocations (and reallocations) while [`COUNTING`] is set.
pub struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Allocations and bytes allocated by `work`.
async fn counted<F: std::future::Future>(work: F) -> (u64, u64) {
    let (a, b) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    COUNTING.store(true, Ordering::Relaxed);
    work.await;
    COUNTING.store(false, Ordering::Relaxed);
    (
        ALLOCATIONS.load(Ordering::Relaxed) - a,
        BYTES.load(Ordering::Relaxed) - b,
    )
}

pub async fn run(report: &mut Report, env: &TestEnv, fixture: &Fixture, invocations: usize) {
    let post = &fixture.post_id;
    let routes = [
        ("users_me", "GET /users/me", ApiRequest::get("/users/me")),
        (
            "get_post",
            "GET /posts/{postId}",
            ApiRequest::get(&format!("/posts/{post}")),
        ),
        (
            "post_comment",
            "POST /posts/{postId}/comments",
            ApiRequest::post(&format!("/posts/{post}/comments")).json(json!({"text": "allocs"})),
        ),
    ];
    for (figure, route, request) in routes {
        let event = String::from_utf8_lossy(&fixture.event(request)).into_owned();
        let invoke = || async {
            let req =
                lambda_http::request::from_str(&event).expect("lambda_http decodes the event");
            let response = match figure {
                "users_me" => users_fn::handle(&env.app, req).await,
                "get_post" => posts_fn::handle(&env.app, req).await,
                _ => comments_fn::handle(&env.app, req).await,
            };
            assert!(
                response.status().is_success(),
                "{figure} answered {}",
                response.status()
            );
        };
        for _ in 0..10 {
            invoke().await; // warm: token remembered, connections open, script loaded
        }
        let (mut counts, mut bytes) = (Vec::new(), Vec::new());
        for _ in 0..invocations {
            let (n, b) = counted(invoke()).await;
            counts.push(n as f64);
            bytes.push(b as f64);
        }
        let note = format!("{route}: event decoded by lambda_http, then the handler");
        report.add_noted(
            format!("allocs.{figure}.per_invocation"),
            median(&mut counts),
            "allocs",
            None,
            Some(note),
        );
        report.add(
            format!("allocs.{figure}.bytes_per_invocation"),
            median(&mut bytes),
            "bytes",
            None,
        );
    }
}
