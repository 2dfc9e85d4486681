//! The smallest `lambda_http` function: answers every event `200 ok`, on the same runtime and
//! Runtime API client as the real functions (`shared::runtime`, `run_concurrent`). The
//! benchmark runs it beside them to show the runtime's own ceiling: what a function that does
//! nothing costs per invocation.

use lambda_http::{service_fn, Body, Error, Request, Response};

fn main() -> Result<(), Error> {
    shared::runtime::build()?.block_on(lambda_http::run_concurrent(service_fn(
        |_: Request| async {
            Ok::<_, Error>(
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain")
                    .body(Body::from("ok"))?,
            )
        },
    )))
}
