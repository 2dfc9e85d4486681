//! What the cache holds, in what format: one format for every kind of entry, read with one
//! `GET` and written only by the compare-and-set script (`cas.lua`).
//!
//! An entry is lines of text. The first is its header, the others its *records*, one per item
//! of the table the entry holds (tab-separated; JSON bodies never hold a raw tab or newline):
//!
//! ```text
//! c4 <shape> <subject> <flags> <epoch> <edge>
//! <id> <version> <L|X> <at> <tag> <body>
//! ```
//!
//! - **shape** `item`: one item (a user under its email, a post under its id), one record.
//!   `window`: the first items of a list (the feed's post ids; a post's first comments), in
//!   the list's order, at most a kind's size of them.
//! - **subject** what the key is of; the script treats an entry of another subject as absent.
//! - **version** where this state of the item stands among its states, compared byte by byte:
//!   a cache revision that every change of the item bumps, zero-padded ([`Revision`]); `~` for
//!   an item gone for good (a post or comment id is never used again); empty for "the table
//!   had none". A user's is its id then its revision, so a later user of an email is newer.
//! - **L** the item as it is (its **tag**: a post's `version`, for `ETag`; its **body**: the
//!   response's JSON, so a hit is served without decoding it), **X** a tombstone.
//! - **at** when the script wrote the record (Redis's clock, ms): how long a window remembers
//!   changes outside it.
//! - **flags** say what the entry serves. An item's: `-` (its record), `placeholder` (nothing:
//!   a reader leased it and is reading the table; it remembers the changes that land
//!   meanwhile). A window's: `complete` (the list ends inside it), `partial` (more follow its
//!   **edge**, the last id it covers), `placeholder` (nothing yet: it only remembers changes
//!   until a read of the table fills it).
//! - **epoch** `<incarnation>.<count>`: the incarnation names this life of the entry (the
//!   token of the lease that made it), so a write-back lands only in the entry its reader
//!   leased, never in one made after Redis lost it (and maybe a change with it). A window's
//!   count grows whenever a change lands outside what it covers, so a read of the table that
//!   began before cannot claim more than it read (`cas.lua`).
//!
//! A reader serves a window's live records inside what it covers, in order; a page it cannot
//! answer whole from them is a miss. The password hash is never in an entry.

use std::fmt::Write as _;

/// The format's name, first in every entry: a new format takes a new name and new key
/// prefixes, so it never reads an old entry as new.
pub const FORMAT: &str = "c4";

/// A state's place among the states of its item (the `version` field), compared byte by byte
/// as the script compares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(String);

impl Revision {
    /// The table had no item here: older than any state.
    pub fn none() -> Self {
        Revision(String::new())
    }

    /// The state at cache revision `rev`.
    pub fn at(rev: u64) -> Self {
        Revision(format!("{rev:020}"))
    }

    /// The item is gone for good (its id is never used again): newer than any state.
    pub fn gone() -> Self {
        Revision("~".to_owned())
    }

    /// A user's state: `r<registration>.<revision>`, both zero-padded, so a later user of the
    /// email is newer whatever its id (no clock in the order: [`crate::domain::Version`]). The
    /// `r` sorts after every character a ULID starts with: an entry written before this order
    /// (`<id>.<revision>`) never wins over one written in it.
    pub fn of_user(version: &crate::domain::Version) -> Self {
        if version.id.is_empty() {
            return Self::none();
        }
        Revision(format!(
            "r{:020}.{:020}",
            version.registration, version.revision
        ))
    }

    /// The registration a user version names (`None` for another kind of version, or one
    /// written before registrations were counted).
    pub fn registration_of_user(version: &str) -> Option<u64> {
        version
            .strip_prefix('r')
            .and_then(|rest| rest.split('.').next())
            .and_then(|registration| registration.parse().ok())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One state of one item, as a write sends it to the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub revision: Revision,
    pub state: State,
}

/// Whether the item is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// There, with its tag (a post's `version`; empty when the kind has none) and its body.
    Live { tag: String, body: String },
    /// Not there.
    Gone,
}

impl Record {
    /// A live item's record.
    pub fn live(
        id: impl Into<String>,
        revision: Revision,
        tag: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Record {
            id: id.into(),
            revision,
            state: State::Live {
                tag: tag.into(),
                body: body.into(),
            },
        }
    }

    /// A tombstone.
    pub fn gone(id: impl Into<String>, revision: Revision) -> Self {
        Record {
            id: id.into(),
            revision,
            state: State::Gone,
        }
    }

    /// The record as the script takes it: `<id>\t<version>\t<L|X>\t<tag>\t<body>`.
    pub fn line(&self) -> String {
        let (flag, tag, body) = match &self.state {
            State::Live { tag, body } => ("L", tag.as_str(), body.as_str()),
            State::Gone => ("X", "-", ""),
        };
        let tag = if tag.is_empty() { "-" } else { tag };
        let mut line = String::with_capacity(self.id.len() + body.len() + 40);
        let _ = write!(
            line,
            "{}\t{}\t{flag}\t{tag}\t{body}",
            self.id,
            self.revision.as_str()
        );
        line
    }
}

/// The bytes the script stores for one item's `record` under an entry of `subject` (its write
/// time left 0): for tests and tools that make an entry up without Redis.
pub fn item_bytes(subject: &str, record: &Record) -> Vec<u8> {
    let line = record.line();
    let mut fields = line.splitn(4, '\t');
    let (id, version, state, rest) = (
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
    );
    format!("{FORMAT}\titem\t{subject}\t-\t0.0\t-\n{id}\t{version}\t{state}\t0\t{rest}")
        .into_bytes()
}

/// What a window says it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// The list ends inside the window.
    Complete,
    /// More items follow the window's edge.
    Partial,
    /// Nothing servable yet.
    Placeholder,
}

/// A stored record, borrowed from the entry's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRecord<'a> {
    pub id: &'a str,
    pub version: &'a str,
    pub live: bool,
    pub tag: &'a str,
    pub body: &'a str,
}

/// A stored entry, borrowed from its bytes: what a reader needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub shape: &'a str,
    pub subject: &'a str,
    pub coverage: Coverage,
    pub epoch: &'a str,
    pub edge: Option<&'a str>,
    pub records: Vec<StoredRecord<'a>>,
}

/// Reads an entry; `None` for anything else (another format, cut, not UTF-8), which every
/// reader treats as a miss. Never panics, whatever the bytes.
pub fn parse(raw: &[u8]) -> Option<Parsed<'_>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split('\n');
    let mut header = lines.next()?.splitn(6, '\t');
    if header.next()? != FORMAT {
        return None;
    }
    let (shape, subject, flags, epoch, edge) = (
        header.next()?,
        header.next()?,
        header.next()?,
        header.next()?,
        header.next()?,
    );
    let coverage = match flags {
        "complete" | "-" => Coverage::Complete,
        "partial" => Coverage::Partial,
        "placeholder" => Coverage::Placeholder,
        _ => return None,
    };
    let mut records = Vec::new();
    for line in lines {
        let mut fields = line.splitn(6, '\t');
        let (id, version, state, _at, tag, body) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let live = match state {
            "L" => true,
            "X" => false,
            _ => return None,
        };
        records.push(StoredRecord {
            id,
            version,
            live,
            tag,
            body,
        });
    }
    Some(Parsed {
        shape,
        subject,
        coverage,
        epoch,
        edge: (edge != "-").then_some(edge),
        records,
    })
}

/// Which way a window's list runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first (a post's comments).
    Ascending,
    /// Newest first (the feed).
    Descending,
}

/// A page a window answers: its records, in order, and the id the next page follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPage<'a> {
    pub records: Vec<StoredRecord<'a>>,
    pub next: Option<&'a str>,
}

impl<'a> Parsed<'a> {
    /// The record of a one-item entry of `subject`; `None` for a placeholder (a miss).
    pub fn item(&self, subject: &str) -> Option<StoredRecord<'a>> {
        (self.shape == "item" && self.subject == subject && self.coverage != Coverage::Placeholder)
            .then(|| self.records.first().copied())
            .flatten()
    }

    /// The live records inside what a window of `subject` running in `order` covers, in
    /// order, and whether the list ends with them; `None` for another kind of entry.
    pub fn inside(&self, subject: &str, order: Order) -> Option<(Vec<StoredRecord<'a>>, bool)> {
        if self.shape != "window" || self.subject != subject {
            return None;
        }
        let inside = |id: &str| match (self.coverage, self.edge) {
            (Coverage::Complete, _) => true,
            (Coverage::Partial, Some(edge)) => match order {
                Order::Ascending => id <= edge,
                Order::Descending => id >= edge,
            },
            _ => false,
        };
        let live = self
            .records
            .iter()
            .filter(|r| r.live && inside(r.id))
            .copied()
            .collect();
        Some((live, self.coverage == Coverage::Complete))
    }

    /// The first `limit` items of a window of `subject` running in `order`, if the window can
    /// answer that page whole: its live records inside what it covers, and the id the next
    /// page follows (none when the list ends). `None` is a miss.
    pub fn page(&self, subject: &str, order: Order, limit: usize) -> Option<WindowPage<'a>> {
        let (live, complete) = self.inside(subject, order)?;
        let (records, more) = first_page(live, complete, limit)?;
        let next = if more {
            records.last().map(|r| r.id)
        } else {
            None
        };
        Some(WindowPage { records, next })
    }
}

/// The first page of `limit` items that a list's first `items` answer, if they answer it
/// whole, and whether more follow it (its cursor is then its last item's id): more items than
/// the page holds, or as many with the list going on after them (`complete` says it ends), or
/// fewer and the list ends. Otherwise the page is not all here: `None`.
pub fn first_page<T>(mut items: Vec<T>, complete: bool, limit: usize) -> Option<(Vec<T>, bool)> {
    match items.len() {
        n if n > limit => {
            items.truncate(limit);
            Some((items, true))
        }
        n if n == limit => Some((items, !complete)),
        _ if complete => Some((items, false)),
        _ => None,
    }
}

/// The compare-and-set script every cache write runs (`cas.lua`).
pub const COMPARE_AND_SET: &str = include_str!("cas.lua");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_order_as_the_script_compares_them() {
        assert!(Revision::none() < Revision::at(0));
        assert!(Revision::at(9) < Revision::at(10));
        assert!(Revision::at(u64::MAX) < Revision::gone());
        let user = |id: &str, registration, revision| {
            Revision::of_user(&crate::domain::Version {
                registration,
                revision,
                id: id.into(),
            })
        };
        // The later user's id sorts first (made on a clock behind): its registration decides.
        let (old, new) = ("01J00000000000000000000000", "01H00000000000000000000000");
        assert!(user(old, 1, 2) > user(old, 1, 1));
        assert!(user(new, 2, 1) > user(old, 1, 99));
        assert!(user(old, 1, 1) > Revision::none());
        assert_eq!(user("", 1, 5), Revision::none());
        assert!(
            user(old, 0, 0) > Revision(format!("{}.{:020}", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ", 99)),
            "newer than any version of the order before"
        );
        assert_eq!(
            Revision::registration_of_user(user(old, 7, 3).as_str()),
            Some(7)
        );
        assert_eq!(
            Revision::registration_of_user("01J0.00000000000000000003"),
            None
        );
    }

    #[test]
    fn records_are_lines_and_parse_back() {
        let live = Record::live("01J0", Revision::at(3), "2", r#"{"a":"b\tc"}"#);
        assert_eq!(
            live.line(),
            "01J0\t00000000000000000003\tL\t2\t{\"a\":\"b\\tc\"}"
        );
        assert_eq!(
            Record::gone("01J1", Revision::gone()).line(),
            "01J1\t~\tX\t-\t"
        );
        let raw = "c4\titem\tp1\t-\t0.0\t-\n01J0\t00000000000000000003\tL\t1700\t2\t{\"a\":1}";
        let parsed = parse(raw.as_bytes()).expect("parses");
        let record = parsed.item("p1").expect("a record");
        assert_eq!(
            (record.tag, record.body, record.live),
            ("2", "{\"a\":1}", true)
        );
        assert_eq!(parsed.item("p2"), None, "another subject");
        for bad in [
            &b""[..],
            b"c3\titem\tp1\t-\t0\t-",
            b"c4\titem\tp1",
            b"c4\titem\tp1\t-\t0.0\t-\nid\tv\tQ\t1\t-\t",
            b"\xff\xfe",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    fn window(flags: &str, edge: &str, records: &[(&str, bool)]) -> String {
        let mut raw = format!("c4\twindow\tw\t{flags}\t0.0\t{edge}");
        for (id, live) in records {
            let state = if *live { "L" } else { "X" };
            raw.push_str(&format!("\n{id}\t1\t{state}\t0\t-\t"));
        }
        raw
    }

    #[test]
    fn a_window_answers_only_pages_it_holds_whole() {
        let ids = |page: WindowPage<'_>| -> (Vec<String>, Option<String>) {
            (
                page.records.iter().map(|r| r.id.to_owned()).collect(),
                page.next.map(str::to_owned),
            )
        };
        let raw = window("complete", "-", &[("a", true), ("b", false), ("c", true)]);
        let parsed = parse(raw.as_bytes()).expect("parses");
        assert_eq!(
            parsed.page("w", Order::Ascending, 5).map(ids),
            Some((vec!["a".into(), "c".into()], None))
        );
        assert_eq!(
            parsed.page("w", Order::Ascending, 2).map(ids),
            Some((vec!["a".into(), "c".into()], None)),
            "exactly the rest of a complete list"
        );
        assert_eq!(
            parsed.page("w", Order::Ascending, 1).map(ids),
            Some((vec!["a".into()], Some("a".into())))
        );
        let raw = window("partial", "c", &[("a", true), ("c", true), ("d", true)]);
        let parsed = parse(raw.as_bytes()).expect("parses");
        assert_eq!(
            parsed.page("w", Order::Ascending, 2).map(ids),
            Some((vec!["a".into(), "c".into()], Some("c".into()))),
            "a change remembered past the edge is not served"
        );
        assert_eq!(parsed.page("w", Order::Ascending, 3), None, "a miss");
        let raw = window("partial", "b", &[("c", true), ("b", true), ("a", true)]);
        let parsed = parse(raw.as_bytes()).expect("parses");
        assert_eq!(
            parsed.page("w", Order::Descending, 2).map(ids),
            Some((vec!["c".into(), "b".into()], Some("b".into())))
        );
        let raw = window("placeholder", "-", &[("a", true)]);
        assert_eq!(
            parse(raw.as_bytes()).and_then(|p| p.page("w", Order::Ascending, 1)),
            None
        );
    }
}
