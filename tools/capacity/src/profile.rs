//! A request class's profile: everything recorded while it ran (its requests and what the
//! stream consumers did for them), divided by the number of requests, kept per **role**
//! (`roles`) rather than per raw key, so the model can place it on the partitions and keys of
//! a production-sized table.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::monitor::Command;
use crate::record::{Call, Check, Kind, TABLE};
use crate::roles::{population, Distinct, Names, Population};
use crate::rules::ecpu;
use crate::slot::slot;

/// Capacity per request on one role of the table or of an index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleLoad {
    /// `table` or an index's name.
    pub resource: String,
    pub template: String,
    pub population: Population,
    /// Distinct partitions of this role the class touched: the shards its traffic spreads over.
    pub distinct: usize,
    pub wcu: f64,
    pub rcu: f64,
}

/// Transactional writes per request on one item role (contention on one item).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemLoad {
    pub template: String,
    pub population: Population,
    pub transactions: f64,
}

/// Redis traffic per request on one key role, or on one slot (the key roles that shared it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisLoad {
    pub template: String,
    pub population: Population,
    pub distinct: usize,
    pub ops: f64,
    pub bytes: f64,
    pub ecpu: f64,
}

/// One class's profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub class: String,
    pub requests: usize,
    /// Answers that were not the expected success, by status.
    pub failures: BTreeMap<u16, usize>,
    /// DynamoDB calls per request, by operation.
    pub calls: BTreeMap<String, f64>,
    pub roles: Vec<RoleLoad>,
    pub items: Vec<ItemLoad>,
    pub redis_keys: Vec<RedisLoad>,
    pub redis_slots: Vec<RedisLoad>,
}

/// How the recorder's figures compared with the emulator's, over a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CrossCheck {
    pub agreed: usize,
    pub disagreed: usize,
    pub not_checked: BTreeMap<String, usize>,
    /// A few disagreements, as text.
    pub examples: Vec<String>,
}

impl CrossCheck {
    pub fn add(&mut self, calls: &[Call]) {
        for call in calls {
            match &call.check {
                Check::Agreed => self.agreed += 1,
                Check::Disagreed(differences) => {
                    self.disagreed += 1;
                    if self.examples.len() < 10 {
                        self.examples
                            .push(format!("{}: {differences:?}", call.operation));
                    }
                }
                Check::NotChecked(why) => {
                    *self
                        .not_checked
                        .entry(format!("{} ({why})", call.operation))
                        .or_default() += 1
                }
            }
        }
    }
}

/// The profile of `requests` requests of `class`, from the calls and commands recorded while
/// they ran. `sizes` are the sampled sizes of the Redis keys read.
pub fn profile(
    class: &str,
    requests: usize,
    failures: BTreeMap<u16, usize>,
    calls: &[Call],
    commands: &[Command],
    sizes: &std::collections::HashMap<String, usize>,
    names: &Names,
) -> Profile {
    let per = |x: f64| x / requests.max(1) as f64;
    let mut operations: BTreeMap<String, f64> = BTreeMap::new();
    let mut roles: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    let mut distinct = Distinct::default();
    let mut items: BTreeMap<String, f64> = BTreeMap::new();
    for call in calls {
        *operations.entry(call.operation.clone()).or_default() += 1.0;
        for access in &call.accesses {
            let template = names.template(&access.partition);
            distinct.note(
                &format!("{}|{template}", access.resource),
                &access.partition,
            );
            let load = roles
                .entry((access.resource.clone(), template))
                .or_default();
            match access.kind {
                Kind::Write => load.0 += access.units,
                Kind::Read => load.1 += access.units,
            }
            if access.transactional && access.kind == Kind::Write && access.resource == TABLE {
                if let Some(item) = &access.item {
                    *items.entry(names.template(item)).or_default() += 1.0;
                }
            }
        }
    }
    let roles = roles
        .into_iter()
        .map(|((resource, template), (wcu, rcu))| RoleLoad {
            distinct: distinct.count(&format!("{resource}|{template}")),
            population: population(&template),
            resource,
            template,
            wcu: per(wcu),
            rcu: per(rcu),
        })
        .collect();
    let items = items
        .into_iter()
        .map(|(template, count)| ItemLoad {
            population: population(&template),
            template,
            transactions: per(count),
        })
        .collect();
    let (redis_keys, redis_slots) = redis_loads(commands, sizes, names, requests);
    Profile {
        class: class.to_owned(),
        requests,
        failures,
        calls: operations.into_iter().map(|(k, v)| (k, per(v))).collect(),
        roles,
        items,
        redis_keys,
        redis_slots,
    }
}

/// Redis traffic per key role and per slot group. A command on several keys counts once on
/// each; its bytes are shared among them. A read's bytes are its key's sampled size.
fn redis_loads(
    commands: &[Command],
    sizes: &std::collections::HashMap<String, usize>,
    names: &Names,
    requests: usize,
) -> (Vec<RedisLoad>, Vec<RedisLoad>) {
    let per = |x: f64| x / requests.max(1) as f64;
    // (ops, bytes, ecpu) per raw key.
    let mut by_key: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for command in commands {
        let keys = command.keys.len().max(1) as f64;
        for key in &command.keys {
            let read = if command.reads {
                sizes.get(key).copied().unwrap_or(0) as f64
            } else {
                0.0
            };
            let bytes = command.written as f64 / keys + read;
            let entry = by_key.entry(key.clone()).or_default();
            entry.0 += 1.0;
            entry.1 += bytes;
            entry.2 += ecpu(bytes);
        }
    }
    let mut keys: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    let mut distinct = Distinct::default();
    let mut slots: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    for (key, load) in &by_key {
        let template = names.template(key);
        distinct.note(&template, key);
        slots
            .entry(slot(key.as_bytes()))
            .or_default()
            .insert(key.clone());
        let entry = keys.entry(template).or_default();
        entry.0 += load.0;
        entry.1 += load.1;
        entry.2 += load.2;
    }
    let key_loads = keys
        .into_iter()
        .map(|(template, (ops, bytes, ecpu))| RedisLoad {
            distinct: distinct.count(&template),
            population: population(&template),
            template,
            ops: per(ops),
            bytes: per(bytes),
            ecpu: per(ecpu),
        })
        .collect();
    // A slot group is named by the key roles that shared a slot; groups of the same name (one
    // per user, say) add up, and spread as their most concentrated member does.
    let mut groups: BTreeMap<String, (f64, f64, f64, Population, BTreeSet<u16>)> = BTreeMap::new();
    for (slot, raw_keys) in &slots {
        let templates: BTreeSet<String> = raw_keys.iter().map(|k| names.template(k)).collect();
        let label = templates.iter().cloned().collect::<Vec<_>>().join(" + ");
        let concentrated = templates
            .iter()
            .map(|t| population(t))
            .max_by_key(|p| concentration(*p))
            .unwrap_or(Population::Fresh);
        let entry = groups
            .entry(label)
            .or_insert((0.0, 0.0, 0.0, concentrated, BTreeSet::new()));
        for key in raw_keys {
            if let Some(load) = by_key.get(key) {
                entry.0 += load.0;
                entry.1 += load.1;
                entry.2 += load.2;
            }
        }
        entry.4.insert(*slot);
    }
    let slot_loads = groups
        .into_iter()
        .map(
            |(template, (ops, bytes, ecpu, population, slots))| RedisLoad {
                template,
                population,
                // Spread over the slots it took only when it is shared (shards of one role).
                distinct: if population == Population::Shared {
                    slots.len()
                } else {
                    1
                },
                ops: per(ops),
                bytes: per(bytes),
                ecpu: per(ecpu),
            },
        )
        .collect();
    (key_loads, slot_loads)
}

/// How much of a class's traffic one member of a population takes: the most concentrated name
/// a slot group.
fn concentration(population: Population) -> u8 {
    match population {
        Population::Shared => 4,
        Population::Viral => 3,
        Population::HotPost => 2,
        Population::User => 1,
        Population::Fresh => 0,
    }
}
