//! `Idempotency-Key` on the routes that create (API.md, "Retries and idempotency"): the first
//! request with a key runs, and for 24 hours a repeat from the same user with the same route,
//! post and body gets the first one's answer, creating nothing.

use lambda_http::http::header::{CONTENT_TYPE, ETAG, LOCATION};
use lambda_http::http::{HeaderMap, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};

use super::request::{body_bytes, MAX_BODY_BYTES};
use super::serve::respond;
use crate::error::AppError;
use crate::store::{Claim, Store, StoredAnswer};

/// The header a client sends, and the one a replayed answer carries.
const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";

/// An `Idempotency-Key` as the contract allows it: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key in `headers`, if one was sent; `400 validation_failed` if it is not one the
    /// contract allows (empty, too long, not printable ASCII, or sent twice).
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, AppError> {
        let invalid = || {
            AppError::validation(
                "Idempotency-Key",
                "must be 1 to 255 printable ASCII characters",
            )
        };
        let mut values = headers.get_all(HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AppError::validation("Idempotency-Key", "must be sent once"));
        }
        let key = value.as_bytes();
        if key.is_empty() || key.len() > 255 || !key.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(invalid());
        }
        // Printable ASCII is valid UTF-8.
        Ok(Some(IdempotencyKey(
            String::from_utf8_lossy(key).into_owned(),
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests "the same" for a key: the route, the post it names, and the body
/// (as JSON, its members in a fixed order, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are one body;
/// a body that is not JSON is compared byte for byte).
///
/// A body over the contract's limit is never parsed: a few MB of `[0,0,…]` would become about
/// twenty times that in JSON values (on Managed Instances, in memory many requests share).
/// [`idempotent`] refuses such a body before it gets here; this holds for any other caller.
pub fn fingerprint(route: &str, post_id: Option<&str>, req: &Request) -> String {
    let bytes = body_bytes(req);
    let canonical = (bytes.len() <= MAX_BODY_BYTES)
        .then(|| serde_json::from_slice::<serde_json::Value>(bytes).ok())
        .flatten()
        .and_then(|v| serde_json::to_vec(&v).ok());
    let digest = Sha256::new()
        .chain_update(route.as_bytes())
        .chain_update([0])
        .chain_update(post_id.unwrap_or_default().as_bytes())
        .chain_update([0])
        .chain_update(canonical.as_deref().unwrap_or(bytes))
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `handler` at most once per `Idempotency-Key` of `user_id` (when the request has one),
/// as the contract says: a repeat gets the stored answer with `Idempotent-Replayed: true`, a
/// key in use by a running request `409`, a key used for another request `422`. Every answer
/// but `500` and `503` is kept, the errors among them too.
///
/// `handler` gets the id of the item it creates. With a key, the key's claim drew it, and every
/// run of the request gets the same one: a `503` is often a write that landed and whose answer
/// was lost, and the retry the contract lets run again writes that same id, finds the earlier
/// run's item and answers as if it had made it, so the request never applies twice. Without a
/// key, a new id.
pub async fn idempotent<F, Fut>(
    store: &Store,
    req: &Request,
    user_id: &str,
    route: &str,
    post_id: Option<&str>,
    handler: F,
) -> Result<Response<Body>, AppError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, AppError>>,
{
    let Some(key) = IdempotencyKey::from_headers(req.headers())? else {
        return handler(crate::domain::new_id()).await;
    };
    // The size first, as the handler's own parse checks it: a body over the limit is `413`
    // whatever it holds, so it is neither parsed for its fingerprint nor worth a claim.
    if body_bytes(req).len() > MAX_BODY_BYTES {
        return Err(AppError::PayloadTooLarge);
    }
    let fingerprint = fingerprint(route, post_id, req);
    let claim = match store
        .claim_idempotency_key(user_id, key.as_str(), &fingerprint)
        .await?
    {
        Claim::Acquired(claim) => claim,
        Claim::Replay(answer) => {
            tracing::info!(
                status = answer.status,
                "idempotent repeat answered from the first request"
            );
            return Ok(replay(&answer));
        }
        Claim::InProgress => return Err(AppError::RequestInProgress),
        Claim::Reused => return Err(AppError::IdempotencyKeyReused),
    };
    let response = respond(handler(claim.resource_id().to_owned()).await);
    let status = response.status();
    let kept = if status == StatusCode::SERVICE_UNAVAILABLE {
        store
            .release_idempotency_key(user_id, key.as_str(), &claim)
            .await
    } else if status == StatusCode::INTERNAL_SERVER_ERROR {
        store
            .drop_idempotency_key(user_id, key.as_str(), &claim)
            .await
    } else {
        store
            .complete_idempotency_key(user_id, key.as_str(), &claim, &answer_of(&response))
            .await
    };
    if let Err(e) = kept {
        // The answer itself stands; a repeat finds the claim until its lease ends.
        tracing::error!(error = %e, "could not keep the idempotency record");
    }
    Ok(response)
}

/// What is kept of an answer: status, body, `Location`, `ETag`.
fn answer_of(response: &Response<Body>) -> StoredAnswer {
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let body = match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    StoredAnswer {
        status: response.status().as_u16(),
        body,
        location: header(LOCATION),
        etag: header(ETAG),
    }
}

/// The first request's answer, marked as a replay.
fn replay(answer: &StoredAnswer) -> Response<Body> {
    let body = if answer.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(answer.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if !answer.body.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    for (name, value) in [(LOCATION, &answer.location), (ETAG, &answer.etag)] {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The headers with these values (a value no HTTP header can carry is left out).
    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values
            .iter()
            .filter_map(|v| HeaderValue::from_bytes(v).ok())
        {
            map.append(HEADER, value);
        }
        map
    }

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert_eq!(
            IdempotencyKey::from_headers(&HeaderMap::new()).expect("none"),
            None
        );
        for good in [
            &b"a"[..],
            b"order 42/retry#1",
            b"~!@#$%^&*()_+",
            &[b'k'; 255],
        ] {
            assert!(IdempotencyKey::from_headers(&headers(&[good]))
                .expect("valid")
                .is_some());
        }
        for bad in [
            &b""[..],
            &[b'k'; 256],
            b"tab\there",
            b"caf\xc3\xa9",
            b"\x80",
        ] {
            assert!(
                IdempotencyKey::from_headers(&headers(&[bad])).is_err(),
                "{bad:?}"
            );
        }
        assert!(
            IdempotencyKey::from_headers(&headers(&[b"a", b"a"])).is_err(),
            "sent twice"
        );
    }

    fn request(body: &str) -> Request {
        let mut req = Request::new(Body::Text(body.to_owned()));
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        req
    }

    #[test]
    fn the_same_request_has_the_same_fingerprint_and_any_difference_another() {
        let base = fingerprint(
            "POST /posts",
            None,
            &request(r#"{"caption":"hi","imageUrl":null}"#),
        );
        assert_eq!(
            base,
            fingerprint(
                "POST /posts",
                None,
                &request(r#"{ "imageUrl": null, "caption": "hi" }"#)
            )
        );
        assert_eq!(base.len(), 64);
        for other in [
            fingerprint(
                "POST /posts",
                None,
                &request(r#"{"caption":"hi!","imageUrl":null}"#),
            ),
            fingerprint(
                "POST /posts/{postId}/comments",
                None,
                &request(r#"{"caption":"hi","imageUrl":null}"#),
            ),
            fingerprint(
                "POST /posts",
                Some("01J"),
                &request(r#"{"caption":"hi","imageUrl":null}"#),
            ),
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(
            fingerprint("r", None, &request("{not json")),
            fingerprint("r", None, &request("{not json "))
        );
    }
}
