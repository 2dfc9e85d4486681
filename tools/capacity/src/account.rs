//! One DynamoDB call turned into capacity by AWS's rules (`rules`): which items it touches
//! (the plan, from the request alone), then, from the items as they were before and after it
//! and its answer, the units it consumed on each partition of the table and of each index.
//!
//! Reads are charged on the whole item whatever a projection returns, so they are sized on the
//! item read directly; a `Query` or `Scan` is charged on the items it evaluates, which only the
//! emulator knows, so its `ConsumedCapacity` figure is taken as it is.

use std::collections::{BTreeMap, HashMap};

use dynoxide::types::{item_size, Item};
use serde_json::Value;

use crate::record::{Access, Call, Check, Kind, Outcome, TABLE};
use crate::rules::{change_write_units, index_write_units, read_units, TRANSACTION_FACTOR};
use crate::schema::{key_text, TableSchema};

/// What a write does to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Write,
    /// A transaction's `ConditionCheck`: charged as a write of the item it reads.
    Check,
}

/// One item a write touches.
#[derive(Debug, Clone)]
pub struct Touch {
    pub key: Item,
    pub action: Action,
    pub transactional: bool,
}

/// One item a read reads.
#[derive(Debug, Clone)]
pub struct ReadKey {
    pub key: Item,
    pub consistent: bool,
    pub transactional: bool,
}

/// What a call will touch, known from the request before it runs.
#[derive(Debug, Clone)]
pub enum Plan {
    Writes(Vec<Touch>),
    Reads(Vec<ReadKey>),
    /// A `Query` or `Scan`: the table or index, and the partition (for a query).
    Range {
        resource: String,
        partition: String,
        consistent: bool,
    },
    /// PartiQL and anything else on the table: the emulator's figure, partition unknown.
    Opaque,
    /// Not a call on the table's items (control plane: `DescribeTable`, ...).
    None,
}

/// The items as read straight from the table, by identity (`TableSchema::identity`).
pub type Images = HashMap<String, Item>;

fn item(value: &Value) -> Option<Item> {
    serde_json::from_value(value.clone()).ok()
}

fn on_table(schema: &TableSchema, name: Option<&str>) -> bool {
    name.is_none_or(|n| n == schema.name)
}

impl Plan {
    /// The plan of `operation` with request `body`.
    pub fn of(operation: &str, body: &Value, schema: &TableSchema) -> Plan {
        let single = |key: Option<Item>, transactional| {
            key.map(|key| Touch {
                key,
                action: Action::Write,
                transactional,
            })
        };
        match operation {
            "PutItem" => Plan::Writes(
                single(item(&body["Item"]).and_then(|i| schema.key_of(&i)), false)
                    .into_iter()
                    .collect(),
            ),
            "UpdateItem" | "DeleteItem" => {
                Plan::Writes(single(item(&body["Key"]), false).into_iter().collect())
            }
            "BatchWriteItem" => {
                let mut touches = Vec::new();
                for (table, requests) in body["RequestItems"].as_object().into_iter().flatten() {
                    if !on_table(schema, Some(table)) {
                        continue;
                    }
                    for request in requests.as_array().into_iter().flatten() {
                        let key = item(&request["PutRequest"]["Item"])
                            .and_then(|i| schema.key_of(&i))
                            .or_else(|| item(&request["DeleteRequest"]["Key"]));
                        touches.extend(single(key, false));
                    }
                }
                Plan::Writes(touches)
            }
            "TransactWriteItems" => {
                let mut touches = Vec::new();
                for action in body["TransactItems"].as_array().into_iter().flatten() {
                    let (kind, part) = match action.as_object().and_then(|o| o.iter().next()) {
                        Some((kind, part)) => (kind.as_str(), part),
                        None => continue,
                    };
                    if !on_table(schema, part["TableName"].as_str()) {
                        continue;
                    }
                    let key = match kind {
                        "Put" => item(&part["Item"]).and_then(|i| schema.key_of(&i)),
                        _ => item(&part["Key"]),
                    };
                    if let Some(key) = key {
                        touches.push(Touch {
                            key,
                            action: if kind == "ConditionCheck" {
                                Action::Check
                            } else {
                                Action::Write
                            },
                            transactional: true,
                        });
                    }
                }
                Plan::Writes(touches)
            }
            "GetItem" => Plan::Reads(
                item(&body["Key"])
                    .map(|key| ReadKey {
                        key,
                        consistent: body["ConsistentRead"] == Value::Bool(true),
                        transactional: false,
                    })
                    .into_iter()
                    .collect(),
            ),
            "BatchGetItem" => {
                let mut reads = Vec::new();
                for (table, request) in body["RequestItems"].as_object().into_iter().flatten() {
                    if !on_table(schema, Some(table)) {
                        continue;
                    }
                    let consistent = request["ConsistentRead"] == Value::Bool(true);
                    for key in request["Keys"].as_array().into_iter().flatten() {
                        reads.extend(item(key).map(|key| ReadKey {
                            key,
                            consistent,
                            transactional: false,
                        }));
                    }
                }
                Plan::Reads(reads)
            }
            "TransactGetItems" => Plan::Reads(
                body["TransactItems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|a| on_table(schema, a["Get"]["TableName"].as_str()))
                    .filter_map(|a| item(&a["Get"]["Key"]))
                    .map(|key| ReadKey {
                        key,
                        consistent: true,
                        transactional: true,
                    })
                    .collect(),
            ),
            "Query" | "Scan" => {
                let resource = body["IndexName"].as_str().unwrap_or(TABLE).to_owned();
                let partition = if operation == "Scan" {
                    "(scan)".to_owned()
                } else {
                    query_partition(body, schema, &resource).unwrap_or_else(|| "(unknown)".into())
                };
                Plan::Range {
                    resource,
                    partition,
                    consistent: body["ConsistentRead"] == Value::Bool(true),
                }
            }
            "ExecuteStatement" | "BatchExecuteStatement" | "ExecuteTransaction" => Plan::Opaque,
            _ => Plan::None,
        }
    }

    /// The keys whose items must be read before (and, for writes, after) the call.
    pub fn keys(&self) -> Vec<Item> {
        match self {
            Plan::Writes(touches) => touches.iter().map(|t| t.key.clone()).collect(),
            Plan::Reads(reads) => reads.iter().map(|r| r.key.clone()).collect(),
            _ => vec![],
        }
    }

    pub fn is_write(&self) -> bool {
        matches!(self, Plan::Writes(_))
    }
}

/// The partition key value a query names: the `=` clause of its key condition on the hash key
/// of the table or index it reads.
fn query_partition(body: &Value, schema: &TableSchema, resource: &str) -> Option<String> {
    let hash = if resource == TABLE {
        schema.hash.clone()
    } else {
        schema.index(resource)?.hash.clone()
    };
    let values = &body["ExpressionAttributeValues"];
    if let Some(expression) = body["KeyConditionExpression"].as_str() {
        let names = &body["ExpressionAttributeNames"];
        let lower = expression.to_ascii_lowercase();
        let mut clauses = Vec::new();
        let mut start = 0;
        while let Some(at) = lower[start..].find(" and ") {
            clauses.push(&expression[start..start + at]);
            start += at + 5;
        }
        clauses.push(&expression[start..]);
        for clause in clauses {
            let clause = clause.trim().trim_matches(|c| c == '(' || c == ')');
            let Some((left, right)) = clause.split_once('=') else {
                continue;
            };
            if left.ends_with(['<', '>']) {
                continue;
            }
            let left = left.trim();
            let name = match left.strip_prefix('#') {
                Some(_) => names[left].as_str().unwrap_or(left),
                None => left,
            };
            if name == hash {
                return item_value(&values[right.trim()]);
            }
        }
        return None;
    }
    // The legacy `KeyConditions` form.
    item_value(&body["KeyConditions"][hash.as_str()]["AttributeValueList"][0])
}

fn item_value(value: &Value) -> Option<String> {
    serde_json::from_value::<dynoxide::types::AttributeValue>(value.clone())
        .ok()
        .map(|v| key_text(&v))
}

/// How the call ended, from its answer.
pub fn outcome(status: u16, answer: &Value) -> Outcome {
    if status == 200 {
        return Outcome::Ok;
    }
    let kind = answer["__type"].as_str().unwrap_or("unknown");
    let kind = kind.rsplit('#').next().unwrap_or(kind);
    match kind {
        "ConditionalCheckFailedException" => Outcome::ConditionFailed,
        "TransactionCanceledException" => Outcome::Cancelled,
        other => Outcome::Error(other.to_owned()),
    }
}

/// The units the emulator reported, per resource ([`TABLE`] or an index), if it reported any.
pub fn reported(schema: &TableSchema, answer: &Value) -> Option<BTreeMap<String, f64>> {
    let consumed = &answer["ConsumedCapacity"];
    let entries: Vec<&Value> = match consumed {
        Value::Array(list) => list.iter().collect(),
        Value::Object(_) => vec![consumed],
        _ => return None,
    };
    let mut units = BTreeMap::new();
    for entry in entries {
        if entry["TableName"].as_str() != Some(schema.name.as_str()) {
            continue;
        }
        let table = entry["Table"]["CapacityUnits"]
            .as_f64()
            .or_else(|| entry["CapacityUnits"].as_f64())
            .unwrap_or(0.0);
        *units.entry(TABLE.to_owned()).or_insert(0.0) += table;
        for (index, detail) in entry["GlobalSecondaryIndexes"]
            .as_object()
            .into_iter()
            .flatten()
        {
            *units.entry(index.clone()).or_insert(0.0) +=
                detail["CapacityUnits"].as_f64().unwrap_or(0.0);
        }
    }
    Some(units)
}

/// Keys of a batch's unprocessed requests (`UnprocessedItems` / `UnprocessedKeys`): not done,
/// not charged.
fn unprocessed(schema: &TableSchema, answer: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    let table = &schema.name;
    for request in answer["UnprocessedItems"][table.as_str()]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key =
            item(&request["PutRequest"]["Item"]).or_else(|| item(&request["DeleteRequest"]["Key"]));
        ids.extend(key.map(|k| schema.identity(&k)));
    }
    for key in answer["UnprocessedKeys"][table.as_str()]["Keys"]
        .as_array()
        .into_iter()
        .flatten()
    {
        ids.extend(item(key).map(|k| schema.identity(&k)));
    }
    ids
}

/// The call's capacity, from its plan, the items before and after it, and its answer.
pub fn account(
    operation: &str,
    plan: &Plan,
    schema: &TableSchema,
    before: &Images,
    after: &Images,
    status: u16,
    answer: &Value,
) -> Call {
    let outcome = outcome(status, answer);
    let skipped = unprocessed(schema, answer);
    let mut accesses = Vec::new();
    match plan {
        Plan::Writes(touches) => {
            for touch in touches {
                let id = schema.identity(&touch.key);
                if skipped.contains(&id) {
                    continue;
                }
                accesses.extend(write_accesses(
                    schema,
                    touch,
                    before.get(&id),
                    after.get(&id),
                    &outcome,
                ));
            }
        }
        Plan::Reads(reads) if outcome == Outcome::Ok => {
            for read in reads {
                let id = schema.identity(&read.key);
                if skipped.contains(&id) {
                    continue;
                }
                let bytes = before.get(&id).map_or(0, item_size);
                let factor = if read.transactional {
                    TRANSACTION_FACTOR
                } else {
                    1.0
                };
                accesses.push(Access {
                    resource: TABLE.to_owned(),
                    partition: schema.partition_of(&read.key).unwrap_or_default(),
                    kind: Kind::Read,
                    units: read_units(bytes, read.consistent) * factor,
                    bytes,
                    transactional: read.transactional,
                    consistent: read.consistent,
                    item: None,
                });
            }
        }
        Plan::Range {
            resource,
            partition,
            consistent,
        } if outcome == Outcome::Ok => {
            let units = reported(schema, answer)
                .map(|r| r.get(resource).copied().unwrap_or(0.0))
                .unwrap_or(0.0);
            accesses.push(Access {
                resource: resource.clone(),
                partition: partition.clone(),
                kind: Kind::Read,
                units,
                bytes: 0,
                transactional: false,
                consistent: *consistent,
                item: None,
            });
        }
        Plan::Opaque if outcome == Outcome::Ok => {
            if let Some(reported) = reported(schema, answer) {
                for (resource, units) in reported {
                    accesses.push(Access {
                        resource,
                        partition: "(PartiQL)".to_owned(),
                        kind: if operation == "ExecuteStatement" {
                            Kind::Read
                        } else {
                            Kind::Write
                        },
                        units,
                        bytes: 0,
                        transactional: operation == "ExecuteTransaction",
                        consistent: true,
                        item: None,
                    });
                }
            }
        }
        _ => {}
    }
    let check = check(plan, schema, &accesses, &outcome, answer);
    let written = match plan {
        Plan::Writes(touches) if outcome == Outcome::Ok => touches
            .iter()
            .filter_map(|t| after.get(&schema.identity(&t.key)))
            .filter_map(|item| serde_json::to_value(item).ok())
            .collect(),
        _ => vec![],
    };
    Call {
        operation: operation.to_owned(),
        outcome,
        accesses,
        check,
        written,
    }
}

/// The accesses of one touched item: the table's, and each index's it changes.
fn write_accesses(
    schema: &TableSchema,
    touch: &Touch,
    old: Option<&Item>,
    new: Option<&Item>,
    outcome: &Outcome,
) -> Vec<Access> {
    let factor = if touch.transactional {
        TRANSACTION_FACTOR
    } else {
        1.0
    };
    let old_size = old.map(item_size);
    let table = |units: f64, bytes: usize| Access {
        resource: TABLE.to_owned(),
        partition: schema.partition_of(&touch.key).unwrap_or_default(),
        kind: Kind::Write,
        units,
        bytes,
        transactional: touch.transactional,
        consistent: true,
        item: Some(schema.identity(&touch.key)),
    };
    let applied = *outcome == Outcome::Ok && touch.action == Action::Write;
    if !applied {
        // A condition check, a failed condition, a cancelled transaction: charged on the item
        // as it is, nothing written, no index touched. Other errors cost nothing.
        return match outcome {
            Outcome::Error(_) => vec![],
            _ => vec![table(
                change_write_units(old_size, None) * factor,
                old_size.unwrap_or(0),
            )],
        };
    }
    let new_size = new.map(item_size);
    let mut accesses = vec![table(
        change_write_units(old_size, new_size) * factor,
        old_size.max(new_size).unwrap_or(0),
    )];
    for index in &schema.indexes {
        let old_entry = old.and_then(|i| index.entry(schema, i));
        let new_entry = new.and_then(|i| index.entry(schema, i));
        let changed = match (&old_entry, &new_entry) {
            (Some((_, a)), Some((_, b))) => a != b,
            _ => true,
        };
        let size = new_entry
            .as_ref()
            .or(old_entry.as_ref())
            .map_or(0, |(e, _)| e.size);
        for (partition, units) in index_write_units(
            old_entry.as_ref().map(|(e, _)| e),
            new_entry.as_ref().map(|(e, _)| e),
            changed,
        ) {
            accesses.push(Access {
                resource: index.name.clone(),
                partition,
                kind: Kind::Write,
                units,
                bytes: size,
                transactional: false,
                consistent: true,
                item: None,
            });
        }
    }
    accesses
}

/// The computed units against the emulator's, per resource.
fn check(
    plan: &Plan,
    schema: &TableSchema,
    accesses: &[Access],
    outcome: &Outcome,
    answer: &Value,
) -> Check {
    if matches!(plan, Plan::Range { .. } | Plan::Opaque) {
        return Check::NotChecked("the emulator's figure is the one used".into());
    }
    if *outcome != Outcome::Ok {
        return Check::NotChecked("an error answer carries no ConsumedCapacity".into());
    }
    let Some(reported) = reported(schema, answer) else {
        return Check::NotChecked("no ConsumedCapacity in the answer".into());
    };
    let mut computed: BTreeMap<String, f64> = BTreeMap::new();
    for access in accesses {
        *computed.entry(access.resource.clone()).or_insert(0.0) += access.units;
    }
    let mut differences = Vec::new();
    let resources: std::collections::BTreeSet<&String> =
        computed.keys().chain(reported.keys()).collect();
    for resource in resources {
        let ours = computed.get(resource).copied().unwrap_or(0.0);
        let theirs = reported.get(resource).copied().unwrap_or(0.0);
        if (ours - theirs).abs() > 1e-9 {
            differences.push((resource.clone(), ours, theirs));
        }
    }
    if differences.is_empty() {
        Check::Agreed
    } else {
        Check::Disagreed(differences)
    }
}
