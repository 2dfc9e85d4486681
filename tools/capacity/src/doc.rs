//! `--write-doc`: BENCHMARKS.md's "Scale: partitions and hot keys" section, written whole
//! between its markers, so the figures, the method and the sources always go together. The
//! section is created after "Latest run" the first time.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::{
    ACTIVE_USERS, POSTS, POST_SHARE_OF_WRITES, READ_COMMENTS, READ_FEED, READ_GET, VIRAL_COMMENTS,
    VIRAL_READS, ZIPF_S,
};
use crate::phases::{CAPTION_CHARS, CLASSES, COMMENT_CHARS};
use crate::report::{axis_tables, profile_table, summary_table, thousands, Run};
use crate::rules::{zipf_top_share, HEADROOM, SOURCES};

pub const BEGIN: &str = "<!-- scale:begin -->";
pub const END: &str = "<!-- scale:end -->";
const HEADING: &str = "## Scale: partitions and hot keys";

/// The section's text between the markers. `today` fills the "today" column; `after`, when
/// given, the "after" column.
pub fn section(today: &Run, after: Option<&Run>, chart: &str) -> String {
    let labels: BTreeMap<&str, &str> = CLASSES.iter().map(|c| (c.id, c.label)).collect();
    let latest = after.unwrap_or(today);
    let run_line = |run: &Run, what: &str| {
        format!(
            "{what}: {}, commit `{}`, {} requests per class, {:.0} s; the table as described: {}; stream consumers: {}.",
            run.date,
            run.commit,
            run.requests,
            run.seconds,
            run.schema,
            run.consumers.join(", ")
        )
    };
    let mut out = String::new();
    out.push_str("<!-- written by `scripts/capacity --write-doc` (tools/capacity/src/doc.rs): edit there -->\n\n");
    out.push_str(
        "```sh\nscripts/capacity                 # the full run (about the time below), figures as JSON lines and tables\nscripts/capacity --smoke         # small counts, output to a temp dir: the CI step\nscripts/capacity --baseline bench/capacity-today.json --write-doc   # after a change: both columns, this section rewritten\n```\n\n",
    );
    out.push_str(&format!("{}\n", run_line(today, "Today")));
    match after {
        Some(after) => out.push_str(&format!("{}\n\n", run_line(after, "After"))),
        None => out.push_str(
            "After: not measured yet (the column fills when the redesign is run with `--baseline bench/capacity-today.json`).\n\n",
        ),
    }
    out.push_str(&format!(
        "![The hottest partition's share of its limit against the rate, per axis]({chart})\n\n"
    ));
    out.push_str(&format!(
        "### The largest rate each design sustains (every partition ≤ {}% of its limit)\n\n",
        HEADROOM * 100.0
    ));
    out.push_str(&summary_table(today, after));
    out.push('\n');
    out.push_str(&format!(
        "### Per axis, at target rates\n\nEach cell: the hottest partition of the table and of each index (its role, its WCU/s and RCU/s, its share of 1,000 WCU/s or 3,000 RCU/s, whichever is higher), the hottest Redis key and slot, and the item taking the most transactions.\n\n{}",
        axis_tables(today, after)
    ));
    out.push_str(METHOD);
    out.push_str(&mix());
    out.push_str("### AWS's rules, as applied\n\n");
    for source in SOURCES {
        out.push_str(&format!("- {} <{}>\n", source.rule, source.url));
    }
    out.push('\n');
    out.push_str(&format!(
        "### Per request ({})\n\nWhat one request of each class costs, everything its phase recorded divided by its requests, by role of the partition key (`{{post}}` the ordinary post, `{{viral}}` the viral one, `{{id}}` an id made by the request itself, `*` a shard number).\n\n{}\n",
        if after.is_some() { "after" } else { "today" },
        profile_table(latest, &labels)
    ));
    let check = &latest.cross_check;
    out.push_str(&format!(
        "### The recorder against the emulator\n\nEvery call's computed units were compared with dynoxide's own `ConsumedCapacity` (captured against real DynamoDB by its authors), for the table and each index: {} calls agreed, {} disagreed{}. Not compared: {}.\n\n",
        thousands(check.agreed as f64),
        thousands(check.disagreed as f64),
        if check.examples.is_empty() {
            String::new()
        } else {
            format!(" ({})", check.examples.join("; "))
        },
        if check.not_checked.is_empty() {
            "none".to_owned()
        } else {
            check
                .not_checked
                .iter()
                .map(|(k, v)| format!("{v} × {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    out.push_str(LIMITS);
    out
}

fn mix() -> String {
    let comments = 1.0 - POST_SHARE_OF_WRITES;
    format!(
        "### The mix\n\n\
- Writes: {post:.0}% `POST /posts`, {com:.0}% `POST /posts/{{postId}}/comments` (the issue's example run made 160 posts to 480 comments); the viral post takes {vc:.0}% of all comments, the rest follow post popularity. Posts carry a {cap}-character caption and an image URL; comments {cc} characters; every create sends an `Idempotency-Key`, as a retrying client does.\n\
- Reads: {get:.0}% `GET /posts/{{postId}}`, {feed:.0}% feed first pages (`GET /posts`), {cp:.0}% first comment pages; the viral post takes {vr:.0}% of all reads (so {vn:.0}% of the reads that name a post).\n\
- Popularity: Zipf with s = {s} over {n} posts: the most popular ordinary post takes 1/H(n, s) = {top:.1}% of the traffic on ordinary posts (`rules::zipf_top_share`). Requests come from {users} active users, so a user's own partition and cache entry stay cold.\n\
- Axes: (a) creates per second at the write mix; (b) comments per second, all on the viral post; (c) feed first pages per second; the read mix as a whole; (d) one delete.\n\n",
        post = POST_SHARE_OF_WRITES * 100.0,
        com = comments * 100.0,
        vc = VIRAL_COMMENTS * 100.0,
        cap = CAPTION_CHARS,
        cc = COMMENT_CHARS,
        get = READ_GET * 100.0,
        feed = READ_FEED * 100.0,
        cp = READ_COMMENTS * 100.0,
        vr = VIRAL_READS * 100.0,
        vn = VIRAL_READS / (READ_GET + READ_COMMENTS) * 100.0,
        s = ZIPF_S,
        n = thousands(POSTS as f64),
        top = zipf_top_share(POSTS, ZIPF_S) * 100.0,
        users = thousands(ACTIVE_USERS),
    )
}

const METHOD: &str = "### How it is measured\n\n\
`tools/capacity` runs the real handlers (`TestEnv::send`, API Gateway events through `lambda_http`) against a real redis-server and dynoxide. The app and the stream consumers (today `cache-sync`, fed by the local event source mapping) reach the table only through a **recording proxy** (`recorder.rs`): for every DynamoDB call it asks for `ReturnConsumedCapacity: INDEXES`, reads each item the call touches straight from the emulator just before and just after it (calls go one at a time), and sizes the write on both images (`dynoxide::types::item_size`); each global secondary index's entry is projected from the images by the schema `DescribeTable` gives at start, so the tool follows a change of keys or projection without being told. A `Query` is charged what the emulator reports (the items it evaluated, whatever a filter keeps). A `MONITOR` connection records every Redis command: its keys, their slots (CRC16 with hash tags), the bytes written, and the size of what is read (sampled after each phase).\n\n\
Each **request class** runs alone: a warm-up, then its requests, then the stream consumers drain the stream (so they get batches as full as at high rate). Everything recorded in the phase is the class's, divided by its requests, kept per **role**: the partition key with the run's ids replaced by what they are (`POST#{viral}`, `FEED#*`, `USER#{email}`). The **model** (`model.rs`) splits each axis's rate over the classes by the mix and places each role on a production-sized table: a shared key (`FEED`) takes the whole class, spread evenly over the shards the run saw (`FEED#*`); the viral post its share; an ordinary post Zipf's head; a user one active user's share; a key made by the request (a new post, an idempotency record) one request's worth. Every partition's load is then linear in the rate, so the largest rate before the first reaches 70% of its limit is exact; Redis slots count as a limit too (70% of a slot's ECPU).\n\n\
**Axis (d)** makes comments through the API, copies the items the recorder saw written (so the layout is the code's, whatever it is) to the full count with `BatchWriteItem`, then times `DELETE /posts/{postId}` through the handler with the consumers running and the recorder in light mode (the emulator's figures, no extra reads), and counts the comment partitions' items until none is left. Local times are the debug emulator's; what binds on DynamoDB is the partition: a sweep confined to one partition cannot go faster than 1,000 WCU/s.\n\n";

const LIMITS: &str = "### What the model does not capture\n\n\
- **Adaptive capacity and split for heat.** DynamoDB isolates a hot item on a partition of its own and splits a hot key range, but no partition goes past 1,000 WCU/s or 3,000 RCU/s, and a split cannot help a key range whose writes all land at an ever-increasing sort key (new posts in `FEED`, new comments in `POST#<id>`: ULIDs grow), so the single-partition limits here are the ones that hold. Burst capacity (up to 300 s of unused throughput) hides an overload for seconds, not for good.\n\
- **Transactions on one item.** DynamoDB cancels a transaction that meets another on the same item (`TransactionConflict`) and publishes no per-item transaction rate; the tables give the rate on the busiest item so the contention shows. The \"no 503\" limits of the today column assume only the partition's throughput binds: that code made every comment a transaction on its post's item, retried a conflict 8 times (10-200 ms apart) and then answered `503`, so at high rates on one post conflicts bound first. After the redesign no request makes a transaction on a shared item; `upkeep` makes one per post per batch, and retries a conflict itself.\n\
- **Caches under a TTL.** A class's requests run within a second or two, so a cached page or post is measured as a hit after the warm-up: at real rates each key misses once per TTL, which adds little, but a model that scales the warm run's misses per request would overstate them. The redesign's cache keys appear as Redis key roles.\n\
- **The instance's copy of the feed.** Each instance keeps the feed's first page for 250 ms, so the feed window's Redis reads grow with instances, not with requests: up to four a second per instance serving the feed. The run has one instance, so its reads per request (about one in a hundred) scale with the rate here. At the 70% line of a slot and the window's size above, the feed's slot takes about 1,500 instances refreshing at once, whatever their rate: 100,000 first pages a second hold as long as the instances serving them average 65 a second or more each. Without the copy, each page would read the window from Redis and its slot would bind near 6,000 pages a second.\n\
- **Stream consumers' batching.** Consumers are drained after each phase, in batches of up to the template's `BatchSize` (100), as at high rates; at low rates batches are smaller and a per-batch write costs more per request.\n\
- **Cancelled transactions and scripts.** AWS publishes no charge for a cancelled transaction (the model charges each item as a failed conditional transactional write) nor the vCPU part of a Lua script's ECPU (the model counts its bytes).\n\
- **Everything else on one machine**: network latency, Lambda concurrency and cold starts, DynamoDB's table-level and account quotas, on-demand's own scaling of a new table.\n";

/// `markdown` with the section replaced by `body` (or inserted after "Latest run").
pub fn rewrite(markdown: &str, body: &str) -> Result<String, String> {
    let block = format!("{BEGIN}\n{body}{END}");
    if let (Some(start), Some(end)) = (markdown.find(BEGIN), markdown.find(END)) {
        if end < start {
            return Err("BENCHMARKS.md: scale:end comes before scale:begin".into());
        }
        return Ok(format!(
            "{}{block}{}",
            &markdown[..start],
            &markdown[end + END.len()..]
        ));
    }
    let latest = markdown
        .find("\n## Latest run")
        .ok_or("BENCHMARKS.md has no \"## Latest run\" section to put the new one after")?;
    let next = markdown[latest + 1..]
        .find("\n## ")
        .map_or(markdown.len(), |at| latest + 1 + at + 1);
    Ok(format!(
        "{}{HEADING}\n\n{block}\n\n{}",
        &markdown[..next],
        &markdown[next..]
    ))
}

/// Rewrites the section of the file at `path`.
pub fn write(path: &Path, body: &str) -> Result<(), String> {
    let markdown = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let rewritten = rewrite(&markdown, body)?;
    std::fs::write(path, rewritten).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_goes_after_latest_run_then_is_replaced_in_place() {
        let doc = "# B\n\nintro\n\n## Latest run\n\nfigures\n\n## 9. CPU\n\ntext\n";
        let first = rewrite(doc, "one\n").expect("inserted");
        assert!(first.contains("figures\n\n## Scale: partitions and hot keys\n\n<!-- scale:begin -->\none\n<!-- scale:end -->\n\n## 9. CPU"), "{first}");
        let second = rewrite(&first, "two\n").expect("replaced");
        assert_eq!(second, first.replace("one\n", "two\n"));
    }
}
