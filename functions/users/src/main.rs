//! Lambda entry point: the services are built once per instance, then every request is served,
//! one at a time on demand and many at once on Lambda Managed Instances, on a runtime sized to
//! the environment (`shared::runtime`).

fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::build()?.block_on(shared::app::run(users_fn::handle))
}
