//! A post and the rules about who may change it.

use serde::{Deserialize, Serialize};

use super::values::{Caption, ImageUrl, Invalid};

/// `Post` in `API.md`; its serde form is both the response body and the stored attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Post {
    pub id: String,
    pub author_id: String,
    /// The author's name when the post was written (a snapshot, not a join).
    pub author_name: String,
    pub caption: String,
    pub image_url: Option<String>,
    pub comment_count: u64,
    /// Starts at 1, grows by one on every edit; the `ETag`.
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl Post {
    pub fn new(
        id: String,
        author_id: String,
        author_name: String,
        caption: Caption,
        image_url: Option<ImageUrl>,
        now: String,
    ) -> Self {
        Post {
            id,
            author_id,
            author_name,
            caption: caption.into_inner(),
            image_url: image_url.map(ImageUrl::into_inner),
            comment_count: 0,
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        }
    }
}

/// An edit of a post: at least one field is set (`PostPatch::new` enforces it).
#[derive(Debug, Clone)]
pub struct PostPatch {
    pub caption: Option<Caption>,
    /// `Some(None)` clears the image; `None` leaves it.
    pub image_url: Option<Option<ImageUrl>>,
}

impl PostPatch {
    pub fn new(
        caption: Option<Caption>,
        image_url: Option<Option<ImageUrl>>,
    ) -> Result<Self, Invalid> {
        if caption.is_none() && image_url.is_none() {
            return Err(Invalid::new("caption", "or `imageUrl` must be given"));
        }
        Ok(PostPatch { caption, image_url })
    }
}

/// What a change of a post requires of the version it finds (`If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Any version (no `If-Match`, or `*`).
    Any,
    /// Exactly this one.
    Exactly(u64),
    /// One no post can be at (a malformed or weak tag, or several): the change is refused as a
    /// version mismatch, once the post's existence and author have been checked.
    Unmatchable,
}
