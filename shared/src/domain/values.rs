//! Validated field values: each `parse` enforces one limit of `API.md` and names the field.

use std::borrow::Cow;

/// A value outside its limits: which field, and what is wrong with it (for people). The HTTP
/// layer answers it as `400 validation_failed` (`crate::error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: Cow<'static, str>,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Invalid {
            field,
            message: message.into(),
        }
    }
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// A normalized email: trimmed, in Unicode NFC, lower-cased, so `A@X.io` and ` a@x.io ` are
/// one user, and so are `josé@x.io` typed with a precomposed `é` and with `e` plus a
/// combining accent (two strings that look the same would otherwise be two accounts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        use unicode_normalization::UnicodeNormalization;
        let trimmed = raw.trim();
        let email = if trimmed.is_ascii() {
            // ASCII is already NFC, and lower-cases to ASCII: the common case, at the cost of
            // one copy (every user read from the cache or the table parses its email).
            trimmed.to_ascii_lowercase()
        } else {
            // NFC, then lower case; NFC once more, since lower-casing can leave a sequence
            // that composes (so parsing a parsed email changes nothing).
            let lower = trimmed.nfc().collect::<String>().to_lowercase();
            lower.nfc().collect()
        };
        if email.is_empty() {
            return Err(Invalid::new("email", "must not be empty"));
        }
        if char_len(&email) > 254 {
            return Err(Invalid::new("email", "must be at most 254 characters"));
        }
        if !looks_like_email(&email) {
            return Err(Invalid::new("email", "must look like an email address"));
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Written as the string it is.
impl serde::Serialize for Email {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Read through [`Email::parse`]: an email read back (from the table, the cache, a token) is
/// one only if it still is one, normalized.
impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Email::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One `@`, a non-empty local part, a dotted domain, no spaces or control characters.
/// Deliberately loose: the only real check of an address is mail reaching it.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let clean = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '@')
    };
    clean(local)
        && clean(domain)
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// A display name: 1 to 100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        match char_len(name) {
            0 => Err(Invalid::new("name", "must not be empty")),
            1..=100 => Ok(Name(name.to_owned())),
            _ => Err(Invalid::new("name", "must be at most 100 characters")),
        }
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A password as typed: 8 to 128 characters, never trimmed, never stored or logged.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match char_len(raw) {
            0..=7 => Err(Invalid::new("password", "must be at least 8 characters")),
            8..=128 => Ok(Password(raw.to_owned())),
            _ => Err(Invalid::new("password", "must be at most 128 characters")),
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A post caption: 1 to 2200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption(String);

impl Caption {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text("caption", raw, 2200).map(Caption)
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A comment's text: 1 to 1000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentText(String);

impl CommentText {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text("text", raw, 1000).map(CommentText)
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

fn bounded_text(field: &'static str, raw: &str, max: usize) -> Result<String, Invalid> {
    match char_len(raw) {
        0 => Err(Invalid::new(field, "must not be empty")),
        n if n > max => Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        )),
        _ => Ok(raw.to_owned()),
    }
}

/// An image URL: an absolute `https://` URL with a host, at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUrl(String);

impl ImageUrl {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if char_len(raw) > 2048 {
            return Err(Invalid::new("imageUrl", "must be at most 2048 characters"));
        }
        let ok = url::Url::parse(raw)
            .map(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()))
            .unwrap_or(false);
        // The URL parser forgives white space and control characters (it strips or escapes
        // them), but the string is stored as sent: refuse them rather than keep them.
        let clean = !raw.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok || !clean || !raw.starts_with("https://") {
            return Err(Invalid::new("imageUrl", "must be null or an https:// URL"));
        }
        Ok(ImageUrl(raw.to_owned()))
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: Invalid) -> &'static str {
        e.field
    }

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  A@X.io ").map(|e| e.0).ok(),
            Some("a@x.io".to_owned())
        );
    }

    #[test]
    fn precomposed_and_decomposed_accents_are_one_email() {
        let precomposed = Email::parse("jos\u{e9}@x.io").expect("valid");
        let decomposed = Email::parse("JOSE\u{301}@X.io").expect("valid");
        assert_eq!(precomposed, decomposed);
        assert_eq!(precomposed.as_str(), "jos\u{e9}@x.io");
        let again = Email::parse(precomposed.as_str()).expect("valid");
        assert_eq!(again, precomposed, "parsing is idempotent");
    }

    #[test]
    fn email_limits() {
        for bad in [
            "", "   ", "no-at", "a@b", "@x.io", "a@.io", "a b@x.io", "a@x..io", "a@@x.io",
            "a@x.io.",
        ] {
            assert_eq!(
                field_of(Email::parse(bad).expect_err(bad)),
                "email",
                "{bad}"
            );
        }
        let long = format!("{}@{}.io", "a".repeat(64), "b".repeat(186));
        assert_eq!(long.len(), 254);
        assert!(Email::parse(&long).is_ok());
        let too_long = format!("{}@{}.io", "a".repeat(64), "b".repeat(187));
        assert!(Email::parse(&too_long).is_err());
    }

    #[test]
    fn name_counts_characters_after_trimming() {
        assert!(Name::parse("  ").is_err());
        assert!(Name::parse(&"é".repeat(100)).is_ok());
        assert!(Name::parse(&"é".repeat(101)).is_err());
        assert_eq!(
            Name::parse(" Ada ").map(Name::into_inner).ok(),
            Some("Ada".to_owned())
        );
    }

    #[test]
    fn password_bounds() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(128)).is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("hunter22hunter22").ok()),
            "Some(Password(***))"
        );
    }

    #[test]
    fn text_bounds() {
        assert!(Caption::parse("").is_err());
        assert!(Caption::parse(&"c".repeat(2200)).is_ok());
        assert!(Caption::parse(&"c".repeat(2201)).is_err());
        assert!(CommentText::parse(&"t".repeat(1000)).is_ok());
        assert_eq!(
            field_of(CommentText::parse(&"t".repeat(1001)).expect_err("long")),
            "text"
        );
    }

    #[test]
    fn image_url_must_be_https() {
        assert!(ImageUrl::parse("https://img.example.com/a.png").is_ok());
        for bad in [
            "http://x.io/a.png",
            "ftp://x.io",
            "https://",
            "not a url",
            "javascript:alert(1)",
            "HTTPS//x",
            "https://x.io/a.png ",
            "https://x.io/a\n.png",
            "https://x.\tio/",
            "https://x.io/\u{0}",
        ] {
            assert_eq!(
                field_of(ImageUrl::parse(bad).expect_err(bad)),
                "imageUrl",
                "{bad}"
            );
        }
        let long = format!("https://x.io/{}", "a".repeat(2048));
        assert!(ImageUrl::parse(&long).is_err());
    }
}
