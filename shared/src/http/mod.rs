//! HTTP plumbing shared by the functions: reading requests, writing responses, and the
//! wrapper that turns any [`AppError`](crate::error::AppError) into the contract's JSON.

pub mod idempotency;
pub mod request;
pub mod response;
pub mod routing;
pub mod serve;

pub use idempotency::idempotent;
pub use request::{
    if_match, if_none_match, limit_param, path_id, path_segments, source_ip, IfMatch, IfNoneMatch,
    JsonObject,
};
pub use response::{created, json, no_content, not_modified, page, raw_json, with_etag};
pub use routing::{Matched, Router};
pub use serve::{respond, serve};
