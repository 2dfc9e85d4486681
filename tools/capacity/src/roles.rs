//! What a recorded partition key or Redis key *is*, generically, so the same tool reads today's
//! keys and a redesign's without being told them.
//!
//! A raw key becomes a **template**: the ids the run knows are replaced by their names (the
//! viral post `{viral}`, the ordinary post `{post}`, a user `{user}` / `{email}`), any other id
//! (a ULID: a post or comment or key created by the request itself) by `{id}`, and a numeric
//! segment (a shard number, `FEED#3`, `POST#<id>#7`) by `*`. The template decides the role's
//! **population**, how the model spreads a class's traffic over real partitions:
//!
//! - `{id}`: a fresh partition per request, never hot;
//! - `{viral}`: the viral post's, which takes its fixed share of the traffic;
//! - `{post}`: the most popular ordinary post's (Zipf's head);
//! - `{user}` / `{email}`: one of the active users';
//! - anything else (`FEED`, `FEED#*`): one shared partition, or, with `*`, one of the distinct
//!   values the run saw (the traffic spread evenly over them).

use std::collections::BTreeMap;

/// The ids a run created and the names they stand for in templates.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// `(raw text, name)`, longest raw text first so no id is replaced inside a longer one.
    pairs: Vec<(String, String)>,
}

impl Names {
    /// `raw` (an id, an email) stands for `name` (`viral`, `post`, `user`, `email`).
    pub fn add(&mut self, raw: &str, name: &str) {
        if raw.is_empty() {
            return;
        }
        self.pairs.push((raw.to_owned(), format!("{{{name}}}")));
        // Case-insensitive matches too: an email holds its ULID in lower case.
        self.pairs
            .push((raw.to_ascii_lowercase(), format!("{{{name}}}")));
        self.pairs
            .sort_by_key(|pair| std::cmp::Reverse(pair.0.len()));
        self.pairs.dedup();
    }

    /// The template of `raw`.
    pub fn template(&self, raw: &str) -> String {
        let mut text = raw.to_owned();
        for (value, name) in &self.pairs {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), name);
            }
        }
        let text = replace_ulids(&text);
        text.split_inclusive(['#', ':'])
            .map(|segment| {
                let (body, sep) = match segment.char_indices().last() {
                    Some((at, c)) if c == '#' || c == ':' => (&segment[..at], &segment[at..]),
                    _ => (segment, ""),
                };
                if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
                    format!("*{sep}")
                } else {
                    segment.to_owned()
                }
            })
            .collect()
    }
}

/// `text` with every ULID (26 characters of Crockford's base32, either case) replaced by `{id}`.
fn replace_ulids(text: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let is_ulid_char = |b: u8| ALPHABET.contains(&b.to_ascii_uppercase());
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|&&b| is_ulid_char(b)).count();
        let boundary_before = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        // A ULID stands alone: 26 characters, not part of a longer word, with a letter in it
        // (so a 26-digit number is not taken for one).
        if run == 26 && boundary_before && bytes[i..i + 26].iter().any(|b| b.is_ascii_alphabetic())
        {
            out.push_str("{id}");
            i += 26;
        } else if run > 0 {
            out.push_str(&text[i..i + run]);
            i += run;
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// How the model spreads a role's traffic over real partitions (or Redis keys).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Population {
    /// One partition per request (a new post, a fresh idempotency record): never hot.
    Fresh,
    /// The viral post's.
    Viral,
    /// The most popular ordinary post's.
    HotPost,
    /// One of the active users'.
    User,
    /// Shared by every request of the class (spread evenly over its distinct values).
    Shared,
}

/// The population of `template` (module docs).
pub fn population(template: &str) -> Population {
    if template.contains("{id}") {
        Population::Fresh
    } else if template.contains("{viral}") {
        Population::Viral
    } else if template.contains("{post}") {
        Population::HotPost
    } else if template.contains("{user}") || template.contains("{email}") {
        Population::User
    } else {
        Population::Shared
    }
}

/// A reader's name for a DynamoDB partition role: "the feed partition", "one of 8 feed shards",
/// "one of 4 comment shards of the viral post".
pub fn describe(template: &str, distinct: usize) -> String {
    let shards = template.contains('*');
    let whose = match population(template) {
        Population::Viral => "the viral post",
        Population::HotPost => "the most popular ordinary post",
        _ => "",
    };
    let first = template.split(['#', ':']).next().unwrap_or(template);
    let text = match (first, population(template)) {
        ("FEED", _) if shards => format!("one of {distinct} feed shards"),
        ("FEED", _) => "the feed partition".to_owned(),
        ("POST", Population::Viral | Population::HotPost) if shards => {
            format!("one of {distinct} shards of {whose}")
        }
        ("POST", Population::Viral | Population::HotPost) => format!("{whose}'s partition"),
        ("POST", Population::Fresh) => "a new post's partition".to_owned(),
        ("USER", _) => "the user's partition".to_owned(),
        ("IDEMPOTENCY", _) => "a fresh idempotency record".to_owned(),
        _ if shards => format!("one of {distinct} `{template}`"),
        _ => format!("`{template}`"),
    };
    format!("{text} (`{template}`)")
}

/// Distinct raw values seen per template: how many shards a `*` role spread over.
#[derive(Debug, Default, Clone)]
pub struct Distinct {
    seen: BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl Distinct {
    pub fn note(&mut self, template: &str, raw: &str) {
        self.seen
            .entry(template.to_owned())
            .or_default()
            .insert(raw.to_owned());
    }

    pub fn count(&self, template: &str) -> usize {
        self.seen.get(template).map_or(1, |s| s.len().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let mut names = Names::default();
        names.add("01KAAAAAAAAAAAAAAAAAAAAAAA", "viral");
        names.add("01KBBBBBBBBBBBBBBBBBBBBBBB", "post");
        names.add("ann.01kccccccccccccccccccccc@example.com", "email");
        names
    }

    #[test]
    fn keys_become_templates_of_their_role() {
        let n = names();
        assert_eq!(n.template("FEED"), "FEED");
        assert_eq!(n.template("FEED#3"), "FEED#*");
        assert_eq!(
            n.template("POST#01KAAAAAAAAAAAAAAAAAAAAAAA"),
            "POST#{viral}"
        );
        assert_eq!(
            n.template("POST#01KAAAAAAAAAAAAAAAAAAAAAAA#12"),
            "POST#{viral}#*"
        );
        assert_eq!(n.template("POST#01KBBBBBBBBBBBBBBBBBBBBBBB"), "POST#{post}");
        assert_eq!(n.template("POST#01KDDDDDDDDDDDDDDDDDDDDDDD"), "POST#{id}");
        assert_eq!(
            n.template("USER#ann.01kccccccccccccccccccccc@example.com"),
            "USER#{email}"
        );
        assert_eq!(
            n.template("user:v2:ann.01kccccccccccccccccccccc@example.com"),
            "user:v2:{email}"
        );
        assert_eq!(
            n.template("IDEMPOTENCY#01KEEEEEEEEEEEEEEEEEEEEEEE#01KFFFFFFFFFFFFFFFFFFFFFFF"),
            "IDEMPOTENCY#{id}#{id}"
        );
        assert_eq!(n.template("FEED#2026-11-26"), "FEED#2026-11-26");
    }

    #[test]
    fn roles_spread_as_their_population_says() {
        assert_eq!(population("FEED"), Population::Shared);
        assert_eq!(population("FEED#*"), Population::Shared);
        assert_eq!(population("POST#{viral}#*"), Population::Viral);
        assert_eq!(population("POST#{post}"), Population::HotPost);
        assert_eq!(population("USER#{email}"), Population::User);
        assert_eq!(population("IDEMPOTENCY#{user}#{id}"), Population::Fresh);
        assert_eq!(describe("FEED#*", 8), "one of 8 feed shards (`FEED#*`)");
        assert_eq!(
            describe("POST#{viral}#*", 4),
            "one of 4 shards of the viral post (`POST#{viral}#*`)"
        );
    }
}
