//! Opaque, signed list cursors.
//!
//! A cursor names the last item of a page (its ULID) and what list it belongs to, sealed
//! with an HMAC: a client can carry it but not forge, edit, or move it to another list.
//! Anything that does not verify is `400 invalid_cursor`. Because ids are time-ordered
//! keys, a cursor stays valid while new items arrive.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;
use crate::error::AppError;

const FORMAT: u8 = 1;
const TAG_LEN: usize = 16;
const ID_LEN: usize = 16;

/// Which list a cursor walks; part of what is signed.
#[derive(Debug, Clone, Copy)]
pub enum CursorScope<'a> {
    Feed,
    Comments { post_id: &'a str },
}

/// Seals and opens cursors with a key derived from the signing secret.
#[derive(Clone)]
pub struct CursorCodec {
    key: [u8; 32],
}

impl CursorCodec {
    pub fn new(secret: &Secret) -> Self {
        use sha2::Digest;
        let key = Sha256::new()
            .chain_update(b"cursor-key:v1:")
            .chain_update(secret.expose().as_bytes())
            .finalize();
        CursorCodec { key: key.into() }
    }

    fn tag(&self, scope: CursorScope<'_>, id: &[u8]) -> Result<[u8; TAG_LEN], AppError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .map_err(|e| AppError::Internal(format!("cursor key: {e}")))?;
        match scope {
            CursorScope::Feed => mac.update(b"feed\0"),
            CursorScope::Comments { post_id } => {
                mac.update(b"comments\0");
                mac.update(post_id.as_bytes());
                mac.update(b"\0");
            }
        }
        mac.update(&[FORMAT]);
        mac.update(id);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        Ok(tag)
    }

    /// The cursor that continues `scope` after the item `last_id`.
    pub fn encode(&self, scope: CursorScope<'_>, last_id: &str) -> Result<String, AppError> {
        let id = ulid::Ulid::from_string(last_id)
            .map_err(|e| AppError::Internal(format!("cursor of a non-ULID id: {e}")))?;
        let id_bytes = id.to_bytes();
        let mut raw = Vec::with_capacity(1 + ID_LEN + TAG_LEN);
        raw.push(FORMAT);
        raw.extend_from_slice(&id_bytes);
        raw.extend_from_slice(&self.tag(scope, &id_bytes)?);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// The id a cursor continues after, if it is one of ours for `scope`.
    pub fn decode(&self, scope: CursorScope<'_>, cursor: &str) -> Result<String, AppError> {
        if cursor.len() > 64 {
            return Err(AppError::InvalidCursor);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| AppError::InvalidCursor)?;
        if raw.len() != 1 + ID_LEN + TAG_LEN || raw[0] != FORMAT {
            return Err(AppError::InvalidCursor);
        }
        let (id, tag) = raw[1..].split_at(ID_LEN);
        let expected = self.tag(scope, id)?;
        // Constant-time comparison: the tag must not be guessable byte by byte.
        let same = expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !same {
            return Err(AppError::InvalidCursor);
        }
        let bytes: [u8; ID_LEN] = id.try_into().map_err(|_| AppError::InvalidCursor)?;
        Ok(ulid::Ulid::from_bytes(bytes).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> CursorCodec {
        CursorCodec::new(&Secret::new("s".repeat(32)))
    }

    #[test]
    fn round_trips_within_its_scope() {
        let id = crate::domain::new_id();
        let c = codec().encode(CursorScope::Feed, &id).expect("encode");
        assert_eq!(codec().decode(CursorScope::Feed, &c).expect("decode"), id);
        assert!(!c.contains(&id), "cursor must be opaque");
    }

    #[test]
    fn refuses_another_scope_or_key() {
        let id = crate::domain::new_id();
        let c = codec()
            .encode(CursorScope::Comments { post_id: "A" }, &id)
            .expect("encode");
        assert!(codec()
            .decode(CursorScope::Comments { post_id: "B" }, &c)
            .is_err());
        assert!(codec().decode(CursorScope::Feed, &c).is_err());
        let other = CursorCodec::new(&Secret::new("t".repeat(32)));
        assert!(other
            .decode(CursorScope::Comments { post_id: "A" }, &c)
            .is_err());
    }

    #[test]
    fn refuses_tampering_and_garbage() {
        let c = codec()
            .encode(CursorScope::Feed, &crate::domain::new_id())
            .expect("encode");
        let mut bytes = URL_SAFE_NO_PAD.decode(&c).expect("b64");
        bytes[5] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        for bad in [
            tampered.as_str(),
            "",
            "!!!",
            "AAAA",
            &"A".repeat(1000),
            "eyJwayI6IlBPU1QjMSJ9",
        ] {
            assert!(
                matches!(
                    codec().decode(CursorScope::Feed, bad),
                    Err(AppError::InvalidCursor)
                ),
                "{bad}"
            );
        }
    }
}
