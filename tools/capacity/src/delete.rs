//! Axis (d): `DELETE /posts/{postId}` of a post with many comments.
//!
//! A few comments are made through the API and their items, as the recorder saw them written,
//! are the shape the code uses (today `POST#<postId>#<shard>` / `COMMENT#<id>`; after a
//! redesign whatever it writes): copies with fresh ids are loaded straight into the emulator with
//! `BatchWriteItem`, cycling over the partitions the real ones went to. Then the delete is
//! timed through the handler (the recorder in light mode, so its own reads are not in the
//! time) with the stream consumers running, and the post's comment partitions are counted
//! until none is left.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use integration_tests::ApiRequest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::phases::{text, Fixture, COMMENT_CHARS};
use crate::record::{Kind, TABLE};
use crate::recorder::Mode;
use crate::rules::{PARTITION_RCU, PARTITION_WCU};
use crate::world::World;

/// The functions' timeout (template.yaml, `Globals`) and API Gateway's.
pub const FUNCTION_TIMEOUT_S: f64 = 10.0;
pub const API_GATEWAY_TIMEOUT_S: f64 = 30.0;
/// Comments made through the API to learn their shape.
const SHAPE_COMMENTS: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteResult {
    pub comments: usize,
    pub status: u16,
    /// The handler's time, locally (the debug emulator; not DynamoDB's speed).
    pub latency_s: f64,
    /// From the request until no comment of the post was left, if that happened in time.
    pub swept_after_s: Option<f64>,
    /// DynamoDB calls the delete made, synchronous and not, by operation.
    pub calls: BTreeMap<String, usize>,
    /// Capacity the delete consumed, and the most on one partition (`(label, WCU, RCU)`).
    pub wcu: f64,
    pub rcu: f64,
    pub hottest: (String, f64, f64),
    /// The least time DynamoDB could do that in: the hottest partition's units at its limit.
    pub floor_s: f64,
}

/// A fresh ULID-like id for a copied comment, in order.
fn next_id(generator: &mut ulid::Generator) -> String {
    generator
        .generate()
        .map(|u| u.to_string())
        .unwrap_or_else(|_| ulid::Ulid::new().to_string())
}

/// `value` with every occurrence of `old` in its strings replaced by `new`.
fn replace_id(value: &Value, old: &str, new: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(old, new)),
        Value::Array(list) => Value::Array(list.iter().map(|v| replace_id(v, old, new)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), replace_id(v, old, new)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub async fn run(
    world: &World,
    fixture: &Fixture,
    comments: usize,
    deadline: Duration,
) -> Result<DeleteResult, String> {
    let schema = world.recorder.schema().clone();
    let token = &fixture.tokens[0];
    let post_id = world
        .new_post(token, "a post about to go viral and then be deleted")
        .await?;
    world.recorder.take();
    let mut ids = Vec::new();
    for i in 0..SHAPE_COMMENTS {
        let res = world
            .send(
                ApiRequest::post(&format!("/posts/{post_id}/comments"))
                    .json(json!({"text": text(COMMENT_CHARS, i)}))
                    .bearer(token),
            )
            .await;
        if res.status != 201 {
            return Err(format!(
                "comment for the delete axis: {} {}",
                res.status, res.raw_body
            ));
        }
        ids.push(res.body["id"].as_str().unwrap_or_default().to_owned());
    }
    world.consumers.drain().await?;
    // The comment items: written items keyed under the post that hold a comment's id.
    let mut shapes: Vec<(Value, String)> = Vec::new();
    for call in world.recorder.take() {
        for item in call.written {
            let key_text = format!(
                "{}{}",
                item[&schema.hash],
                schema
                    .range
                    .as_ref()
                    .map(|r| item[r].to_string())
                    .unwrap_or_default()
            );
            let Some(id) = ids.iter().find(|id| item.to_string().contains(id.as_str())) else {
                continue;
            };
            if key_text.contains(&post_id) && !shapes.iter().any(|(_, i)| i == id) {
                shapes.push((item.clone(), id.clone()));
            }
        }
    }
    if shapes.is_empty() {
        return Err("no comment item found among the writes of the comments made".into());
    }
    let partitions: BTreeSet<String> = shapes
        .iter()
        .filter_map(|(item, _)| item[&schema.hash]["S"].as_str().map(str::to_owned))
        .collect();
    // Load the copies, 25 to a batch, four batches at a time.
    let mut generator = ulid::Generator::new();
    let copies: Vec<Value> = (0..comments.saturating_sub(shapes.len()))
        .map(|i| {
            let (item, id) = &shapes[i % shapes.len()];
            replace_id(item, id, &next_id(&mut generator))
        })
        .collect();
    let table = schema.name.clone();
    let loads = copies.chunks(25).map(|chunk| {
        let requests: Vec<Value> = chunk
            .iter()
            .map(|item| json!({"PutRequest": {"Item": item}}))
            .collect();
        let wire = world.wire.clone();
        let table = table.clone();
        async move {
            let mut pending = requests;
            for _ in 0..50 {
                let answer = wire
                    .ok(
                        "BatchWriteItem",
                        &json!({"RequestItems": {table.as_str(): pending}}),
                    )
                    .await?;
                pending = answer["UnprocessedItems"][table.as_str()]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if pending.is_empty() {
                    return Ok(());
                }
            }
            Err::<(), String>("BatchWriteItem kept items unprocessed".into())
        }
    });
    let loaded: Vec<Result<(), String>> = stream::iter(loads).buffer_unordered(4).collect().await;
    loaded.into_iter().collect::<Result<Vec<()>, String>>()?;
    eprintln!(
        "capacity: delete axis: {comments} comments loaded; the consumers read their records"
    );
    world.consumers.drain().await?;
    world.recorder.take();
    world.monitor.take().await?;

    // The delete, timed, with the consumers running.
    world.recorder.set_mode(Mode::Light);
    let mut consumers_running = BackgroundGuard::start(world);
    let started = Instant::now();
    let answer = tokio::time::timeout(
        deadline,
        world.send(ApiRequest::delete(&format!("/posts/{post_id}")).bearer(token)),
    )
    .await;
    let latency_s = started.elapsed().as_secs_f64();
    eprintln!("capacity: delete axis: answered after {latency_s:.1} s; waiting for the sweep");
    let status = answer.as_ref().map_or(0, |a| a.status);
    let mut swept_after_s = None;
    while started.elapsed() < deadline {
        if remaining(world, &partitions, &table).await? == 0 {
            swept_after_s = Some(started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    consumers_running.stop();
    world.consumers.drain().await?;
    let calls = world.recorder.take();
    world.recorder.set_mode(Mode::Full);
    let mut names = fixture.names.clone();
    names.add(&post_id, "deleted");
    world.monitor.take().await?;

    let mut by_op: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_partition: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let (mut wcu, mut rcu) = (0.0, 0.0);
    for call in &calls {
        *by_op.entry(call.operation.clone()).or_default() += 1;
        for access in &call.accesses {
            let entry = by_partition
                .entry(format!(
                    "{} {}",
                    if access.resource == TABLE {
                        "table"
                    } else {
                        access.resource.as_str()
                    },
                    names.template(&access.partition)
                ))
                .or_default();
            match access.kind {
                Kind::Write => {
                    wcu += access.units;
                    entry.0 += access.units;
                }
                Kind::Read => {
                    rcu += access.units;
                    entry.1 += access.units;
                }
            }
        }
    }
    let seconds = |(w, r): &(f64, f64)| (w / PARTITION_WCU).max(r / PARTITION_RCU);
    let hottest = by_partition
        .iter()
        .max_by(|a, b| seconds(a.1).total_cmp(&seconds(b.1)))
        .map(|(label, (w, r))| (label.clone(), *w, *r))
        .unwrap_or_default();
    Ok(DeleteResult {
        comments,
        status,
        latency_s,
        swept_after_s,
        calls: by_op,
        wcu,
        rcu,
        floor_s: seconds(&(hottest.1, hottest.2)),
        hottest,
    })
}

/// Items left in `partitions`, counted straight from the emulator.
async fn remaining(
    world: &World,
    partitions: &BTreeSet<String>,
    table: &str,
) -> Result<usize, String> {
    let schema = world.recorder.schema();
    let mut count = 0;
    for partition in partitions {
        let mut start: Option<Value> = None;
        loop {
            let mut body = json!({
                "TableName": table,
                "KeyConditionExpression": "#pk = :pk",
                "ExpressionAttributeNames": {"#pk": schema.hash},
                "ExpressionAttributeValues": {":pk": {"S": partition}},
                "Select": "COUNT",
                "ConsistentRead": true,
            });
            if let Some(start) = &start {
                body["ExclusiveStartKey"] = start.clone();
            }
            let answer = world.wire.ok("Query", &body).await?;
            count += answer["Count"].as_u64().unwrap_or(0) as usize;
            match answer.get("LastEvaluatedKey") {
                Some(key) if key.as_object().is_some_and(|k| !k.is_empty()) => {
                    start = Some(key.clone())
                }
                _ => break,
            }
        }
    }
    // The post item itself lives in its own partition today: only comments count.
    Ok(count)
}

/// The consumers running in the background for as long as it lives.
struct BackgroundGuard<'a> {
    world: &'a World,
    running: bool,
}

impl<'a> BackgroundGuard<'a> {
    fn start(world: &'a World) -> Self {
        world.consumers.background();
        BackgroundGuard {
            world,
            running: true,
        }
    }

    fn stop(&mut self) {
        if self.running {
            self.world.consumers.stop();
            self.running = false;
        }
    }
}

impl Drop for BackgroundGuard<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}
