//! The `upkeep` function, started exactly as its `main.rs` starts it (`upkeep_fn::run` on the
//! runtime `shared::runtime` sizes), for tests that run it as a process of its own under their
//! Runtime API and read what it writes (its metrics among them).

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::build()?.block_on(upkeep_fn::run())
}
