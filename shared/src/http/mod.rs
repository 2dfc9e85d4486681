//! HTTP plumbing shared by the functions: reading requests, writing responses, and the
//! wrapper that turns any [`AppError`](crate::error::AppError) into the contract's JSON.

pub mod request;
pub mod response;
pub mod serve;

pub use request::{if_match, limit_param, path_segments, IfMatch, JsonObject};
pub use response::{created, json, no_content, with_etag};
pub use serve::serve;
