//! The library every function shares: configuration, authentication, the user
//! cache-aside, DynamoDB storage, HTTP plumbing and telemetry.
//!
//! A reader looking for the cache-aside finds it whole in [`cache::users`]; [`cache`] says
//! how the rest of the cache keeps it coherent.

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod cursor;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod runtime;
pub mod sdk;
pub mod store;
pub mod telemetry;

pub use app::App;
pub use error::AppError;
