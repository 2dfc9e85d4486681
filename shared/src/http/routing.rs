//! What a function's router answers: the route a request matched, named once for logs and
//! metrics, and what to run.
//!
//! A route is named by its *route key*, in API Gateway's own form: `GET /posts/{postId}` for a
//! route, `ANY /posts/{postId}` for a known path with a method it does not serve, `$default`
//! for any other path. That is a small, fixed set (never an id, an email or a raw path), so it
//! can be a metric dimension, and it is the name the template and the API Gateway console use.

use lambda_http::http::Method;

use crate::error::AppError;

/// The route key of every path no route serves (API Gateway's catch-all route).
pub const UNMATCHED: &str = "$default";

/// A router's answer for one request.
#[derive(Debug)]
pub struct Matched<R> {
    /// `METHOD /template`, `ANY /template` or [`UNMATCHED`].
    pub route_key: &'static str,
    /// What to run, or the contract's `405`/`404`.
    pub route: Result<R, AppError>,
}

impl<R> Matched<R> {
    /// A route this function serves.
    pub fn found(route_key: &'static str, route: R) -> Self {
        Matched {
            route_key,
            route: Ok(route),
        }
    }

    /// A path this function serves, with a method it does not: `405` listing `allow`.
    pub fn not_allowed(route_key: &'static str, allow: &'static str) -> Self {
        Matched {
            route_key,
            route: Err(AppError::MethodNotAllowed { allow }),
        }
    }

    /// A path no route serves: `404`.
    pub fn not_found() -> Self {
        Matched {
            route_key: UNMATCHED,
            route: Err(AppError::NotFound("route")),
        }
    }
}

/// The path template of a route key (`/posts/{postId}` of `GET /posts/{postId}`); the key
/// itself when it has none ([`UNMATCHED`]).
pub fn template(route_key: &str) -> &str {
    route_key
        .split_once(' ')
        .map_or(route_key, |(_, template)| template)
}

/// A function's router: the request's method and path segments in, its match out. Plain
/// data, so a test can walk every route without a request.
pub type Router<R> = fn(&Method, &[&str]) -> Matched<R>;

/// What `router` makes of a request's path: without its first segment when that is the API's
/// `stage` and the rest is a path the router knows (the stage may lead the path, or not, as
/// [`super::request::path_segments`] says), or else as it is. So what the router serves decides,
/// not a list of route prefixes kept beside it.
pub fn route<R>(
    router: Router<R>,
    method: &Method,
    segments: &[&str],
    stage: Option<&str>,
) -> Matched<R> {
    if let (Some(stage), [first, rest @ ..]) = (stage, segments) {
        if *first == stage {
            let matched = router(method, rest);
            if matched.route_key != UNMATCHED {
                return matched;
            }
        }
    }
    router(method, segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(method: &Method, segments: &[&str]) -> Matched<&'static str> {
        match (segments, method) {
            (["posts"], &Method::GET) => Matched::found("GET /posts", "list"),
            (["posts"], _) => Matched::not_allowed("ANY /posts", "GET"),
            _ => Matched::not_found(),
        }
    }

    #[test]
    fn a_stage_in_front_of_a_known_path_is_dropped() {
        let get = &Method::GET;
        let key = |segments: &[&str], stage| route(router, get, segments, stage).route_key;
        assert_eq!(key(&["Prod", "posts"], Some("Prod")), "GET /posts");
        assert_eq!(key(&["posts"], Some("Prod")), "GET /posts");
        assert_eq!(key(&["posts"], None), "GET /posts");
        assert_eq!(
            route(router, &Method::PUT, &["Prod", "posts"], Some("Prod")).route_key,
            "ANY /posts"
        );
        // Not the stage, or nothing the router knows after it: the path as it is.
        assert_eq!(key(&["Prod", "posts"], None), UNMATCHED);
        assert_eq!(key(&["Prod", "posts"], Some("Dev")), UNMATCHED);
        assert_eq!(key(&["Prod", "users"], Some("Prod")), UNMATCHED);
        assert_eq!(key(&["posts", "posts"], Some("posts")), "GET /posts");
    }

    #[test]
    fn templates_of_route_keys() {
        assert_eq!(template("GET /posts/{postId}"), "/posts/{postId}");
        assert_eq!(template("ANY /users/me"), "/users/me");
        assert_eq!(template(UNMATCHED), "$default");
        let unmatched: Matched<()> = Matched::not_found();
        assert!(matches!(unmatched.route, Err(AppError::NotFound(_))));
        assert_eq!(unmatched.route_key, UNMATCHED);
    }
}
