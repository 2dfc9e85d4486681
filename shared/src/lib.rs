//! The library every function shares: configuration, authentication, the cache of the table
//! (users, posts, the feed's first page, a post's first comments), DynamoDB storage, HTTP
//! plumbing, metrics and telemetry, and the life of a function ([`app`]).
//!
//! A reader looking for the cache finds its design in [`cache`], the user cache-aside whole in
//! [`cache::users`], and posts, the feed and comments in [`cache::posts`].

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
