//! Tokens made by the tests themselves: the contract's claims, signed with the test key (or
//! another key, or algorithm, to be refused).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use shared::auth::token::{AUDIENCE, ISSUER};

use crate::TEST_SECRET;

/// The contract's claims of a token for user `sub` of `email` at `jwt_version`, valid for ten
/// minutes from now.
pub fn claims(sub: &str, email: &str, jwt_version: u64) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({
        "sub": sub, "email": email, "name": "Anyone", "jwtVersion": jwt_version,
        "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600,
    })
}

/// `claims` signed HS256 with the test apps' key: a token the apps accept as far as the
/// signature goes.
pub fn sign(claims: &Value) -> String {
    sign_with(claims, Algorithm::HS256, TEST_SECRET)
}

/// `claims` signed with `algorithm` and `secret`.
pub fn sign_with(claims: &Value, algorithm: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A signed token for user `sub` of `email` at `jwt_version` ([`claims`]).
pub fn token_for(sub: &str, email: &str, jwt_version: u64) -> String {
    sign(&claims(sub, email, jwt_version))
}

/// `header.claims.signature` with the header exactly as given: the signature an HMAC-SHA256
/// with the test apps' key over exactly these bytes, whatever `alg` the header names (a
/// token no well-behaved signer would make: `alg: none`, or an RS256 header over an HMAC).
pub fn sign_raw(header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let key = EncodingKey::from_secret(TEST_SECRET.as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).expect("hmac");
    format!("{input}.{signature}")
}

/// `header.claims.` with no signature at all.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", b64(header), b64(claims))
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}
