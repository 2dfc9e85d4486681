//! The one compare-and-set (`shared/src/cache/cas.lua`) on a real Redis, case by case: what
//! each write leaves in an entry, and what a reader then serves. The suites above it (posts,
//! coherence, interleavings) drive it through the functions; here each rule of the script is
//! shown alone, including the races they exist for: a read of the table that began before a
//! change and lands after it must never bring the older state back, nor claim the list ends
//! without an item created meanwhile, nor land in an entry made after Redis lost the one it
//! leased (with the change in it).

use redis::AsyncCommands;
use shared::cache::entry::{parse, Order, Record, Revision};
use shared::cache::kinds::{WindowKind, COMMENTS, FEED};
use shared::cache::{Lease, RedisCache, WindowWrite, WriteOutcome};

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

/// A fill under `lease`.
fn fill(complete: bool, lease: &Lease) -> WindowWrite<'_> {
    WindowWrite::Fill { complete, lease }
}

/// A window in a small size, for the tests: the comments' rules at 3 items.
const SMALL: WindowKind = WindowKind {
    size: 3,
    ..COMMENTS
};

/// The record a reader of the item entry `key` serves (`None`: a miss).
async fn served(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    subject: &str,
) -> Option<(bool, String)> {
    let raw: Option<Vec<u8>> = conn.get(key).await.expect("GET");
    let raw = raw?;
    let entry = parse(&raw)?;
    let record = entry.item(subject)?;
    Some((record.live, record.body.to_owned()))
}

#[tokio::test]
async fn an_item_keeps_its_newer_state_whatever_lands_last() {
    let (_server, cache, mut conn) = cache().await;
    let key = "post:v4:p1";
    let put = |record: Record| {
        let cache = cache.clone();
        async move { cache.put_item(key, "p1", &record).await }
    };
    assert_eq!(
        put(live("p1", 2)).await,
        WriteOutcome::NoEntry,
        "a change makes no entry"
    );
    let lease = cache.lease_item(key, "p1").await.expect("a lease");
    assert_eq!(
        served(&mut conn, key, "p1").await,
        None,
        "a lease is a miss"
    );
    assert_eq!(
        cache
            .fill_item(key, "p1", &live("p1", 2), Some(&lease))
            .await,
        WriteOutcome::Written
    );
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
    assert_eq!(
        cache
            .fill_item(key, "p1", &live("p1", 1), Some(&lease))
            .await,
        WriteOutcome::Stale,
        "a write-back older than the entry"
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
    // An entry of another subject, or of no format at all, is no entry: a lease replaces it.
    let () = conn.set(key, "not an entry").await.expect("SET");
    assert_eq!(put(live("p1", 1)).await, WriteOutcome::NoEntry);
    let lease = cache.lease_item(key, "p1").await.expect("a lease");
    assert_eq!(
        cache
            .fill_item(key, "p1", &live("p1", 1), Some(&lease))
            .await,
        WriteOutcome::Written
    );
    let lease = cache.lease_item(key, "p2").await.expect("a lease");
    assert_eq!(
        cache
            .fill_item(key, "p2", &live("p2", 1), Some(&lease))
            .await,
        WriteOutcome::Written,
        "another subject's entry is replaced"
    );
}

/// A change that lands while a reader reads the table is kept in the reader's placeholder and
/// wins over the reader's older read when it lands.
#[tokio::test]
async fn a_change_landing_in_a_lease_wins_over_the_older_read() {
    let (_server, cache, mut conn) = cache().await;
    let key = "post:v4:p1";
    let lease = cache.lease_item(key, "p1").await.expect("a lease");
    assert_eq!(
        cache.put_item(key, "p1", &live("p1", 3)).await,
        WriteOutcome::Written
    );
    assert_eq!(
        served(&mut conn, key, "p1").await,
        None,
        "still a placeholder: nothing served before the fill"
    );
    assert_eq!(
        cache
            .fill_item(key, "p1", &live("p1", 2), Some(&lease))
            .await,
        WriteOutcome::Written,
        "the placeholder becomes the entry"
    );
    assert_eq!(
        served(&mut conn, key, "p1").await,
        Some((true, bodies(&[("p1", 3)])[0].clone())),
        "the change, not the older read"
    );
    // A second reader that leased the same entry lands in it too, newer-wins.
    let again = cache.lease_item(key, "p1").await.expect("a lease");
    assert_eq!(again, lease, "the entry as it is: no new placeholder");
    assert_eq!(
        cache
            .fill_item(key, "p1", &live("p1", 1), Some(&again))
            .await,
        WriteOutcome::Stale
    );
}

/// The gap a lease closes: a reader reads the table before a change, the change lands in the
/// entry, Redis loses the entry (a flush, an eviction, a restart), and then the reader's
/// write-back arrives. It must not make a new entry of its older read, nor land in an entry
/// another reader leased after the loss.
#[tokio::test]
async fn a_write_back_lands_only_in_the_entry_its_reader_leased() {
    let (_server, cache, mut conn) = cache().await;
    let key = "post:v4:p1";
    let seed = cache.lease_item(key, "p1").await.expect("a lease");
    cache
        .fill_item(key, "p1", &live("p1", 1), Some(&seed))
        .await;
    // The entry expires; a reader leases it again and reads version 1 from the table.
    let () = conn.del(key).await.expect("DEL");
    let reader = cache.lease_item(key, "p1").await.expect("a lease");
    // An edit to 2 lands in its placeholder; then Redis loses everything.
    cache.put_item(key, "p1", &live("p1", 2)).await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");
    assert_eq!(
        cache
            .fill_item(key, "p1", &live("p1", 1), Some(&reader))
            .await,
        WriteOutcome::NoEntry,
        "no entry made of a read older than a lost change"
    );
    assert_eq!(served(&mut conn, key, "p1").await, None);
    // Another reader leases after the loss; the first one's write-back still does not land.
    let later = cache.lease_item(key, "p1").await.expect("a lease");
    assert_ne!(later, reader);
    assert_eq!(
        cache
            .fill_item(key, "p1", &live("p1", 1), Some(&reader))
            .await,
        WriteOutcome::NoEntry,
        "not the entry it leased"
    );
    assert_eq!(
        cache
            .fill_item(key, "p1", &live("p1", 2), Some(&later))
            .await,
        WriteOutcome::Written
    );
    assert_eq!(
        served(&mut conn, key, "p1").await,
        Some((true, bodies(&[("p1", 2)])[0].clone()))
    );
    // The same for a window.
    let key = "w";
    let reader = cache
        .lease_window(key, &COMMENTS, "s")
        .await
        .expect("a lease");
    cache
        .put_window(key, &COMMENTS, "s", WindowWrite::Put, &[gone("a")])
        .await;
    let () = conn.del(key).await.expect("DEL");
    assert_eq!(
        cache
            .put_window(key, &COMMENTS, "s", fill(true, &reader), &[live("a", 1)])
            .await,
        WriteOutcome::NoEntry
    );
    assert_eq!(page(&mut conn, key, "s", &COMMENTS, 20).await, None);
}

#[tokio::test]
async fn a_complete_window_takes_new_items_until_it_is_full_then_stops_claiming_the_end() {
    let (_server, cache, mut conn) = cache().await;
    let key = "w";
    let lease = cache.lease_window(key, &SMALL, "s").await.expect("a lease");
    cache
        .put_window(key, &SMALL, "s", fill(true, &lease), &[live("a", 1)])
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
    let lease = cache
        .lease_window(key, &COMMENTS, "s")
        .await
        .expect("a lease");
    let items = [live("a", 1), live("b", 1)];
    cache
        .put_window(key, &COMMENTS, "s", fill(true, &lease), &items)
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
        let lease = cache
            .lease_window(key, &COMMENTS, "s")
            .await
            .expect("a lease");
        if landed_first {
            // The delete lands in the reader's placeholder: remembered.
            cache
                .put_window(key, &COMMENTS, "s", WindowWrite::Put, &[gone("b")])
                .await;
        }
        cache
            .put_window(key, &COMMENTS, "s", fill(true, &lease), &stale_fill)
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
    // The reader looks: no entry. It leases one and reads the table: [a], the whole list.
    assert_eq!(epoch(&mut conn, key).await, None);
    let lease = cache
        .lease_window(key, &COMMENTS, "s")
        .await
        .expect("a lease");
    // Meanwhile "b" is created, and its write lands first (in the placeholder).
    cache
        .put_window(key, &COMMENTS, "s", WindowWrite::Put, &[live("b", 1)])
        .await;
    cache
        .put_window(key, &COMMENTS, "s", fill(true, &lease), &[live("a", 1)])
        .await;
    assert_ne!(
        page(&mut conn, key, "s", &COMMENTS, 20).await,
        Some((bodies(&[("a", 1)]), None)),
        "the list does not end at a"
    );
    // The same on a window that exists: the reader saw its epoch, a new item landed past it.
    let () = conn.del(key).await.expect("DEL");
    let lease = cache.lease_window(key, &SMALL, "s").await.expect("a lease");
    let items = [live("a", 1), live("b", 1), live("c", 1)];
    cache
        .put_window(key, &SMALL, "s", fill(false, &lease), &items)
        .await;
    let seen = cache.lease_window(key, &SMALL, "s").await.expect("a lease");
    assert_eq!(
        epoch(&mut conn, key).await.as_deref(),
        Some(seen.as_str()),
        "a lease of an entry that is there is its epoch"
    );
    cache
        .put_window(key, &SMALL, "s", WindowWrite::Put, &[gone("b"), gone("c")])
        .await;
    cache
        .put_window(key, &SMALL, "s", WindowWrite::Put, &[live("d", 1)])
        .await;
    // Read before "d": the list was [a].
    cache
        .put_window(key, &SMALL, "s", fill(true, &seen), &[live("a", 1)])
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
    let lease = cache
        .lease_window(key, &FEED, "feed")
        .await
        .expect("a lease");
    let first: Vec<Record> = (0..3).rev().map(record).collect();
    cache
        .put_window(key, &FEED, "feed", fill(false, &lease), &first)
        .await;
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
    // A fill read before a new post, whose write landed in the reader's placeholder first:
    // the post is not left out of the head of the feed.
    let () = conn.del(key).await.expect("DEL");
    let lease = cache
        .lease_window(key, &FEED, "feed")
        .await
        .expect("a lease");
    cache
        .put_window(key, &FEED, "feed", WindowWrite::Put, &[record(7)])
        .await;
    cache
        .put_window(key, &FEED, "feed", fill(true, &lease), &first)
        .await;
    assert_eq!(
        page(&mut conn, key, "feed", &FEED, 2).await,
        Some((vec![id(7), id(2)], Some(id(2))))
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
    let lease = cache.lease_window(key, &SMALL, "s").await.expect("a lease");
    let items = [live("a", 1), live("b", 1), live("c", 1)];
    cache
        .put_window(key, &SMALL, "s", fill(false, &lease), &items)
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
