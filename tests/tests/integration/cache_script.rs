//! The one compare-and-set (`shared/src/cache/cas.lua`) on a real Redis, case by case: what
//! each write leaves in an entry, and what a reader then serves. The suites above it (posts,
//! coherence, interleavings) drive it through the functions; here each rule of the script is
//! shown alone, including the races they exist for: a read of the table that began before a
//! change and lands after it must never bring the older state back, nor claim the list ends
//! without an item created meanwhile.

use redis::AsyncCommands;
use shared::cache::entry::{parse, Order, Record, Revision};
use shared::cache::kinds::{WindowKind, COMMENTS, FEED};
use shared::cache::{RedisCache, WindowWrite, WriteOutcome};

use integration_tests::{test_config, RedisServer};

/// A cache on a fresh `redis-server`, and a direct connection to it.
async fn cache() -> (RedisServer, RedisCache, redis::aio::MultiplexedConnection) {
    let server = RedisServer::start().await;
    let config = test_config(&server.url(), "http://127.0.0.1:1");
    let cache = RedisCache::new(&config.cache, None).expect("cache");
    let conn = server.connection().await.expect("conn");
    (server, cache, conn)
}

/// A comment-like record: `id` at revision `rev`, its body naming both.
fn live(id: &str, rev: u64) -> Record {
    Record::live(
        id,
        Revision::at(rev),
        "",
        format!("{{\"id\":\"{id}\",\"rev\":{rev}}}"),
    )
}

fn gone(id: &str) -> Record {
    Record::gone(id, Revision::gone())
}

/// The ids (and bodies) a reader serves for a page of `limit`, and the next page's id; `None`:
/// a miss.
async fn page(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    subject: &str,
    kind: &WindowKind,
    limit: usize,
) -> Option<(Vec<String>, Option<String>)> {
    let raw: Option<Vec<u8>> = conn.get(key).await.expect("GET");
    let raw = raw?;
    let entry = parse(&raw).expect("an entry in the cache's format");
    let page = entry.page(subject, kind.order, limit)?;
    Some((
        page.records.iter().map(|r| r.body.to_owned()).collect(),
        page.next.map(str::to_owned),
    ))
}

/// The epoch a reader sees.
async fn epoch(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    let raw: Option<Vec<u8>> = conn.get(key).await.expect("GET");
    raw.and_then(|raw| parse(&raw).map(|e| e.epoch.to_owned()))
}

fn bodies(items: &[(&str, u64)]) -> Vec<String> {
    items
        .iter()
        .map(|(id, rev)| format!("{{\"id\":\"{id}\",\"rev\":{rev}}}"))
        .collect()
}

/// A window in a small size, for the tests: the comments' rules at 3 items.
const SMALL: WindowKind = WindowKind {
    size: 3,
    ..COMMENTS
};

#[tokio::test]
async fn an_item_keeps_its_newer_state_whatever_lands_last() {
    let (_server, cache, mut conn) = cache().await;
    let key = "post:v3:p1";
    let put = |record: Record| {
        let cache = cache.clone();
        async move { cache.put_item(key, "p1", &record).await }
    };
    assert_eq!(put(live("p1", 2)).await, WriteOutcome::Written);
    assert_eq!(put(live("p1", 1)).await, WriteOutcome::Stale, "older");
    assert_eq!(
        put(live("p1", 2)).await,
        WriteOutcome::Written,
        "the same, again"
    );
    assert_eq!(
        put(Record::gone("p1", Revision::none())).await,
        WriteOutcome::Stale,
        "'the table had none' is older than any state"
    );
    assert_eq!(put(gone("p1")).await, WriteOutcome::Written);
    assert_eq!(
        put(live("p1", 99)).await,
        WriteOutcome::Stale,
        "gone is for good"
    );
    let raw: Vec<u8> = conn.get(key).await.expect("GET");
    let record = parse(&raw).and_then(|e| e.item("p1")).expect("the item");
    assert!(!record.live);
    // An entry of another subject, or of no format at all, is older than anything.
    let () = conn.set(key, "not an entry").await.expect("SET");
    assert_eq!(put(live("p1", 1)).await, WriteOutcome::Written);
    assert_eq!(
        cache.put_item(key, "p2", &live("p2", 1)).await,
        WriteOutcome::Written,
        "another subject's entry is replaced"
    );
}

#[tokio::test]
async fn a_complete_window_takes_new_items_until_it_is_full_then_stops_claiming_the_end() {
    let (_server, cache, mut conn) = cache().await;
    let key = "w";
    let fill = WindowWrite::Fill {
        complete: true,
        seen: None,
    };
    cache
        .put_window(key, &SMALL, "s", fill, &[live("a", 1)])
        .await;
    assert_eq!(
        page(&mut conn, key, "s", &SMALL, 20).await,
        Some((bodies(&[("a", 1)]), None)),
        "a list of one, complete"
    );
    let before = epoch(&mut conn, key).await;
    cache
        .put_window(
            key,
            &SMALL,
            "s",
            WindowWrite::Put,
            &[live("b", 1), live("c", 1)],
        )
        .await;
    assert_eq!(
        page(&mut conn, key, "s", &SMALL, 20).await,
        Some((bodies(&[("a", 1), ("b", 1), ("c", 1)]), None))
    );
    assert_eq!(
        epoch(&mut conn, key).await,
        before,
        "nothing outside it yet"
    );
    // A fourth: the window keeps three, and says more follow.
    cache
        .put_window(key, &SMALL, "s", WindowWrite::Put, &[live("d", 1)])
        .await;
    assert_eq!(
        page(&mut conn, key, "s", &SMALL, 3).await,
        Some((bodies(&[("a", 1), ("b", 1), ("c", 1)]), Some("c".into())))
    );
    assert_eq!(page(&mut conn, key, "s", &SMALL, 4).await, None, "a miss");
    assert_ne!(
        epoch(&mut conn, key).await,
        before,
        "cut shorter: a new epoch"
    );
    // A fifth lands past it: not kept, only noted.
    let cut = epoch(&mut conn, key).await;
    cache
        .put_window(key, &SMALL, "s", WindowWrite::Put, &[live("e", 1)])
        .await;
    let raw: Vec<u8> = conn.get(key).await.expect("GET");
    assert!(!String::from_utf8_lossy(&raw).contains("\"e\""), "not kept");
    assert_ne!(epoch(&mut conn, key).await, cut);
}

#[tokio::test]
async fn edits_and_deletes_inside_the_window_land_in_any_order() {
    let (_server, cache, mut conn) = cache().await;
    let key = "w";
    let fill = WindowWrite::Fill {
        complete: true,
        seen: None,
    };
    cache
        .put_window(key, &COMMENTS, "s", fill, &[live("a", 1), live("b", 1)])
        .await;
    // An edit, then an older state of it, then a delete, then the edit again.
    let put = |records: Vec<Record>| {
        let cache = cache.clone();
        async move {
            cache
                .put_window(key, &COMMENTS, "s", WindowWrite::Put, &records)
                .await
        }
    };
    assert_eq!(put(vec![live("a", 3)]).await, WriteOutcome::Written);
    assert_eq!(put(vec![live("a", 2)]).await, WriteOutcome::Stale);
    assert_eq!(
        page(&mut conn, key, "s", &COMMENTS, 20).await,
        Some((bodies(&[("a", 3), ("b", 1)]), None))
    );
    assert_eq!(put(vec![gone("b")]).await, WriteOutcome::Written);
    assert_eq!(
        put(vec![live("b", 5)]).await,
        WriteOutcome::Stale,
        "gone for good"
    );
    assert_eq!(
        page(&mut conn, key, "s", &COMMENTS, 20).await,
        Some((bodies(&[("a", 3)]), None))
    );
}

/// A read of the table that began before a delete, and lands after it, cannot bring the item
/// back: the delete's tombstone is kept, and wins.
#[tokio::test]
async fn a_fill_read_before_a_delete_cannot_bring_the_item_back() {
    let (_server, cache, mut conn) = cache().await;
    let key = "w";
    for landed_first in [true, false] {
        let () = conn.del(key).await.expect("DEL");
        let stale_fill = [live("a", 1), live("b", 1)];
        let fill = WindowWrite::Fill {
            complete: true,
            seen: None,
        };
        if landed_first {
            // The delete lands on an entry that is not there yet: remembered.
            cache
                .put_window(key, &COMMENTS, "s", WindowWrite::Put, &[gone("b")])
                .await;
        }
        cache
            .put_window(key, &COMMENTS, "s", fill, &stale_fill)
            .await;
        if !landed_first {
            cache
                .put_window(key, &COMMENTS, "s", WindowWrite::Put, &[gone("b")])
                .await;
        }
        // No page of any size serves it (a page the window cannot answer is a miss).
        for limit in 1..=3 {
            let served = page(&mut conn, key, "s", &COMMENTS, limit).await;
            assert!(
                served
                    .as_ref()
                    .is_none_or(|(items, _)| !items.iter().any(|b| b.contains("\"b\""))),
                "the deleted item came back ({landed_first}, {limit}): {served:?}"
            );
        }
    }
}

/// A read of the table that began before a new item was created, and lands after that item's
/// own write was noted outside the window, cannot say the list ends without it.
#[tokio::test]
async fn a_fill_read_before_an_item_was_created_cannot_claim_the_list_ends() {
    let (_server, cache, mut conn) = cache().await;
    let key = "w";
    // The reader looks: no entry. It reads the table: [a], the whole list.
    let seen = epoch(&mut conn, key).await;
    assert_eq!(seen, None);
    // Meanwhile "b" is created, and its write lands first (on no entry).
    cache
        .put_window(key, &COMMENTS, "s", WindowWrite::Put, &[live("b", 1)])
        .await;
    let fill = WindowWrite::Fill {
        complete: true,
        seen: None,
    };
    cache
        .put_window(key, &COMMENTS, "s", fill, &[live("a", 1)])
        .await;
    assert_ne!(
        page(&mut conn, key, "s", &COMMENTS, 20).await,
        Some((bodies(&[("a", 1)]), None)),
        "the list does not end at a"
    );
    // The same on a window that exists: the reader saw its epoch, a new item landed past it.
    let () = conn.del(key).await.expect("DEL");
    let fill = WindowWrite::Fill {
        complete: false,
        seen: None,
    };
    cache
        .put_window(
            key,
            &SMALL,
            "s",
            fill,
            &[live("a", 1), live("b", 1), live("c", 1)],
        )
        .await;
    let seen = epoch(&mut conn, key).await.expect("an epoch");
    cache
        .put_window(key, &SMALL, "s", WindowWrite::Put, &[gone("b"), gone("c")])
        .await;
    cache
        .put_window(key, &SMALL, "s", WindowWrite::Put, &[live("d", 1)])
        .await;
    let fill = WindowWrite::Fill {
        complete: true,
        seen: Some(&seen),
    };
    // Read before "d": the list was [a].
    cache
        .put_window(key, &SMALL, "s", fill, &[live("a", 1)])
        .await;
    assert_ne!(
        page(&mut conn, key, "s", &SMALL, 20).await,
        Some((bodies(&[("a", 1)]), None)),
        "the list does not end at a"
    );
}

#[tokio::test]
async fn the_feed_runs_newest_first_and_new_posts_enter_at_its_head() {
    let (_server, cache, mut conn) = cache().await;
    let key = "feed";
    let id = |n: u8| format!("01J0000000000000000000000{n}");
    let record = |n: u8| Record::live(id(n), Revision::at(1), "", id(n));
    let fill = WindowWrite::Fill {
        complete: false,
        seen: None,
    };
    let first: Vec<Record> = (0..3).rev().map(record).collect();
    cache.put_window(key, &FEED, "feed", fill, &first).await;
    assert_eq!(
        page(&mut conn, key, "feed", &FEED, 3).await,
        Some(((0..3).rev().map(id).collect(), Some(id(0))))
    );
    cache
        .put_window(key, &FEED, "feed", WindowWrite::Put, &[record(5)])
        .await;
    assert_eq!(
        page(&mut conn, key, "feed", &FEED, 2).await,
        Some((vec![id(5), id(2)], Some(id(2)))),
        "the new post first"
    );
    assert_eq!(parse_order(&FEED), Order::Descending);
}

fn parse_order(kind: &WindowKind) -> Order {
    kind.order
}

/// What a window remembers outside itself is bounded: a flood of changes past it keeps the
/// window and at most twice its size of them.
#[tokio::test]
async fn what_a_window_remembers_is_bounded() {
    let (_server, cache, mut conn) = cache().await;
    let key = "w";
    let fill = WindowWrite::Fill {
        complete: false,
        seen: None,
    };
    cache
        .put_window(
            key,
            &SMALL,
            "s",
            fill,
            &[live("a", 1), live("b", 1), live("c", 1)],
        )
        .await;
    for n in 0..50 {
        cache
            .put_window(
                key,
                &SMALL,
                "s",
                WindowWrite::Put,
                &[live(&format!("z{n:02}"), 2)],
            )
            .await;
    }
    let raw: Vec<u8> = conn.get(key).await.expect("GET");
    let entry = parse(&raw).expect("an entry");
    assert!(
        entry.records.len() <= 3 + 2 * 3,
        "{} records",
        entry.records.len()
    );
    assert_eq!(
        page(&mut conn, key, "s", &SMALL, 3).await,
        Some((bodies(&[("a", 1), ("b", 1), ("c", 1)]), Some("c".into())))
    );
}
