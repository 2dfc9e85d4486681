//! The model: each axis is a rate (`R` per second) split over the request classes by the mix;
//! each class's profile is placed on production-sized partitions and keys by its roles'
//! populations (`roles`); the load on every partition is then linear in `R`, so the hottest
//! partition at any target, and the largest `R` before the first one passes 70% of its limit,
//! follow exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::profile::Profile;
use crate::roles::{describe, Population};
use crate::rules::{zipf_top_share, HEADROOM, PARTITION_RCU, PARTITION_WCU, SLOT_ECPU};

/// The mix (stated in BENCHMARKS.md).
pub const POSTS: u64 = 1_000_000;
pub const ZIPF_S: f64 = 1.1;
/// Writes: a quarter posts, three quarters comments (the issue's example: 160 posts to 480
/// comments).
pub const POST_SHARE_OF_WRITES: f64 = 0.25;
/// The viral post's share of all comments, and of all reads.
pub const VIRAL_COMMENTS: f64 = 0.10;
pub const VIRAL_READS: f64 = 0.20;
/// Reads: `GET /posts/{postId}`, feed first pages, first comment pages.
pub const READ_GET: f64 = 0.70;
pub const READ_FEED: f64 = 0.20;
pub const READ_COMMENTS: f64 = 0.10;
/// Active users the requests come from: a user's own partition and cache entry take
/// `1 / ACTIVE_USERS` of the traffic, which keeps them cold at any rate here.
pub const ACTIVE_USERS: f64 = 100_000.0;

/// One axis: what its rate counts, how it splits over the classes, the rates to report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Axis {
    pub id: String,
    pub title: String,
    /// `(class id, share of the axis's rate)`.
    pub weights: Vec<(String, f64)>,
    pub targets: Vec<f64>,
    /// The issue's goal for the largest sustainable rate, if it sets one.
    pub goal: Option<f64>,
    /// What the issue says the design does today.
    pub issue_today: Option<String>,
}

/// The axes of the issue (and the read mix as a whole).
pub fn axes() -> Vec<Axis> {
    let axis = |id: &str,
                title: &str,
                weights: &[(&str, f64)],
                targets: &[f64],
                goal,
                today: Option<&str>| Axis {
        id: id.to_owned(),
        title: title.to_owned(),
        weights: weights.iter().map(|(c, w)| ((*c).to_owned(), *w)).collect(),
        targets: targets.to_vec(),
        goal,
        issue_today: today.map(str::to_owned),
    };
    let comments = 1.0 - POST_SHARE_OF_WRITES;
    // The viral post takes a fifth of all reads; feed pages name no post, so it takes
    // 0.20 / (0.70 + 0.10) of the reads that name one.
    let viral_of_named = VIRAL_READS / (READ_GET + READ_COMMENTS);
    vec![
        axis(
            "a",
            "(a) posts + comments created per second, whole app",
            &[
                ("post_create", POST_SHARE_OF_WRITES),
                ("comment_create", comments * (1.0 - VIRAL_COMMENTS)),
                ("comment_create_viral", comments * VIRAL_COMMENTS),
            ],
            &[1_000.0, 5_000.0, 20_000.0, 100_000.0],
            Some(20_000.0),
            Some("~1,000/s"),
        ),
        axis(
            "b",
            "(b) comments per second on one post",
            &[("comment_create_viral", 1.0)],
            &[250.0, 1_000.0, 2_000.0, 10_000.0],
            Some(2_000.0),
            Some("~250/s"),
        ),
        axis(
            "c",
            "(c) feed first pages per second",
            &[("feed_page", 1.0)],
            &[1_000.0, 10_000.0, 100_000.0, 1_000_000.0],
            Some(100_000.0),
            None,
        ),
        axis(
            "reads",
            "the read mix per second (70% posts, 20% feed, 10% comment pages; the viral post 20%)",
            &[
                ("get_post", READ_GET * (1.0 - viral_of_named)),
                ("get_post_viral", READ_GET * viral_of_named),
                ("feed_page", READ_FEED),
                ("comments_page", READ_COMMENTS * (1.0 - viral_of_named)),
                ("comments_page_viral", READ_COMMENTS * viral_of_named),
            ],
            &[1_000.0, 10_000.0, 100_000.0, 1_000_000.0],
            None,
            None,
        ),
    ]
}

/// A load linear in the axis's rate: `per_rate × R + fixed`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Linear {
    pub per_rate: f64,
    pub fixed: f64,
}

impl Linear {
    pub fn at(&self, rate: f64) -> f64 {
        self.per_rate * rate + self.fixed
    }

    fn add(&mut self, per_rate: f64, fixed: f64) {
        self.per_rate += per_rate;
        self.fixed += fixed;
    }

    /// The largest rate at which this load stays at or under `limit`.
    fn max_rate(&self, limit: f64) -> f64 {
        if self.per_rate <= 0.0 {
            return f64::INFINITY;
        }
        ((limit - self.fixed) / self.per_rate).max(0.0)
    }
}

/// One real partition (or key, or slot, or item) the model places load on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Instance {
    /// `table`, an index's name, `redis key`, `redis slot`, `item`.
    pub resource: String,
    pub label: String,
    pub wcu: Linear,
    pub rcu: Linear,
    pub ops: Linear,
    pub bytes: Linear,
    pub ecpu: Linear,
    pub transactions: Linear,
}

/// How much of a class's rate one instance of a role gets, and the role's units as a fixed
/// load instead (fresh partitions: one request's worth, whatever the rate).
fn placement(population: Population, distinct: usize) -> (f64, f64) {
    let spread = 1.0 / distinct.max(1) as f64;
    match population {
        Population::Shared | Population::Viral => (spread, 0.0),
        Population::HotPost => (zipf_top_share(POSTS, ZIPF_S) * spread, 0.0),
        Population::User => (1.0 / ACTIVE_USERS, 0.0),
        Population::Fresh => (0.0, 1.0),
    }
}

/// The instance of `(resource, template)`, made with `label` the first time.
fn entry<'a>(
    instances: &'a mut BTreeMap<(String, String), Instance>,
    resource: &str,
    template: &str,
    label: impl FnOnce() -> String,
) -> &'a mut Instance {
    instances
        .entry((resource.to_owned(), template.to_owned()))
        .or_insert_with(|| Instance {
            resource: resource.to_owned(),
            label: label(),
            ..Instance::default()
        })
}

/// Every instance's load under `axis`, from the classes' profiles.
pub fn instances(axis: &Axis, profiles: &[Profile]) -> Vec<Instance> {
    let mut instances: BTreeMap<(String, String), Instance> = BTreeMap::new();
    for (class, weight) in &axis.weights {
        let Some(profile) = profiles.iter().find(|p| &p.class == class) else {
            continue;
        };
        for role in &profile.roles {
            let (share, fixed) = placement(role.population, role.distinct);
            let instance = entry(&mut instances, &role.resource, &role.template, || {
                describe(&role.template, role.distinct)
            });
            instance
                .wcu
                .add(role.wcu * weight * share, role.wcu * fixed);
            instance
                .rcu
                .add(role.rcu * weight * share, role.rcu * fixed);
        }
        for item in &profile.items {
            let (share, fixed) = placement(item.population, 1);
            let instance = entry(&mut instances, "item", &item.template, || {
                format!("`{}`", item.template)
            });
            let count = item.transactions;
            instance
                .transactions
                .add(count * weight * share, count * fixed);
        }
        for (resource, loads) in [
            ("redis key", &profile.redis_keys),
            ("redis slot", &profile.redis_slots),
        ] {
            for load in loads {
                let (share, fixed) = placement(load.population, load.distinct);
                let instance = entry(&mut instances, resource, &load.template, || {
                    format!("`{}`", load.template)
                });
                instance
                    .ops
                    .add(load.ops * weight * share, load.ops * fixed);
                instance
                    .bytes
                    .add(load.bytes * weight * share, load.bytes * fixed);
                instance
                    .ecpu
                    .add(load.ecpu * weight * share, load.ecpu * fixed);
            }
        }
    }
    instances.into_values().collect()
}

/// A partition's share of its limit at `rate`: the larger of its writes' and its reads'.
pub fn utilisation(instance: &Instance, rate: f64) -> f64 {
    (instance.wcu.at(rate) / PARTITION_WCU).max(instance.rcu.at(rate) / PARTITION_RCU)
}

fn is_partition(instance: &Instance) -> bool {
    !matches!(
        instance.resource.as_str(),
        "item" | "redis key" | "redis slot"
    )
}

/// The hottest partition of one resource at a rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hot {
    pub label: String,
    pub wcu: f64,
    pub rcu: f64,
    pub utilisation: f64,
}

/// The hottest Redis key or slot at a rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HotRedis {
    pub label: String,
    pub ops: f64,
    pub kb: f64,
    pub ecpu: f64,
    /// Of one slot's ECPU limit.
    pub utilisation: f64,
}

/// Everything the report shows of one target rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AtRate {
    pub rate: f64,
    /// By resource: `table` and each index.
    pub partitions: BTreeMap<String, Hot>,
    pub redis_key: Option<HotRedis>,
    pub redis_slot: Option<HotRedis>,
    /// The item taking the most transactions, and how many per second.
    pub item: Option<(String, f64)>,
}

/// One axis evaluated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AxisResult {
    pub axis: Axis,
    pub at: Vec<AtRate>,
    /// The largest rate before the first partition (or Redis slot) passes 70% of its limit.
    pub max_rate: f64,
    /// What reaches 70% first there.
    pub limited_by: String,
    /// The hottest partition's utilisation at rates from 10 to 10^7 per second (the chart).
    pub curve: Vec<(f64, f64)>,
}

pub fn at_rate(instances: &[Instance], rate: f64) -> AtRate {
    let mut partitions: BTreeMap<String, Hot> = BTreeMap::new();
    for instance in instances.iter().filter(|i| is_partition(i)) {
        let hot = Hot {
            label: instance.label.clone(),
            wcu: instance.wcu.at(rate),
            rcu: instance.rcu.at(rate),
            utilisation: utilisation(instance, rate),
        };
        match partitions.get(&instance.resource) {
            Some(best) if best.utilisation >= hot.utilisation => {}
            _ => {
                partitions.insert(instance.resource.clone(), hot);
            }
        }
    }
    let redis = |resource: &str| {
        instances
            .iter()
            .filter(|i| i.resource == resource)
            .map(|i| HotRedis {
                label: i.label.clone(),
                ops: i.ops.at(rate),
                kb: i.bytes.at(rate) / 1024.0,
                ecpu: i.ecpu.at(rate),
                utilisation: i.ecpu.at(rate) / SLOT_ECPU,
            })
            .max_by(|a, b| a.ecpu.total_cmp(&b.ecpu).then(a.ops.total_cmp(&b.ops)))
    };
    let item = instances
        .iter()
        .filter(|i| i.resource == "item")
        .map(|i| (i.label.clone(), i.transactions.at(rate)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    AtRate {
        rate,
        partitions,
        redis_key: redis("redis key"),
        redis_slot: redis("redis slot"),
        item,
    }
}

/// `axis` evaluated on `profiles`.
pub fn evaluate(axis: &Axis, profiles: &[Profile]) -> AxisResult {
    let instances = instances(axis, profiles);
    let mut max_rate = f64::INFINITY;
    let mut limited_by = "nothing in the model".to_owned();
    for instance in &instances {
        let limits: Vec<(f64, &str)> = if is_partition(instance) {
            vec![
                (instance.wcu.max_rate(HEADROOM * PARTITION_WCU), "WCU"),
                (instance.rcu.max_rate(HEADROOM * PARTITION_RCU), "RCU"),
            ]
        } else if instance.resource == "redis slot" {
            vec![(instance.ecpu.max_rate(HEADROOM * SLOT_ECPU), "ECPU")]
        } else {
            vec![]
        };
        for (rate, unit) in limits {
            if rate < max_rate {
                max_rate = rate;
                let resource = match instance.resource.as_str() {
                    "table" => "table".to_owned(),
                    "redis slot" => "Redis slot".to_owned(),
                    index => format!("index `{index}`"),
                };
                limited_by = format!("{unit} of {} ({resource})", instance.label);
            }
        }
    }
    let curve = (0..=60)
        .map(|i| 10f64.powf(1.0 + i as f64 / 10.0))
        .map(|rate| {
            let hottest = instances
                .iter()
                .filter(|i| is_partition(i))
                .map(|i| utilisation(i, rate))
                .fold(0.0, f64::max);
            (rate, hottest)
        })
        .collect();
    AxisResult {
        at: axis
            .targets
            .iter()
            .map(|&r| at_rate(&instances, r))
            .collect(),
        axis: axis.clone(),
        max_rate,
        limited_by,
        curve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::RoleLoad;

    fn profile(class: &str, roles: Vec<RoleLoad>) -> Profile {
        Profile {
            class: class.into(),
            requests: 1,
            failures: BTreeMap::new(),
            calls: BTreeMap::new(),
            roles,
            items: vec![],
            redis_keys: vec![],
            redis_slots: vec![],
        }
    }

    fn role(template: &str, population: Population, distinct: usize, wcu: f64) -> RoleLoad {
        RoleLoad {
            resource: "table".into(),
            template: template.into(),
            population,
            distinct,
            wcu,
            rcu: 0.0,
        }
    }

    #[test]
    fn a_single_partition_role_limits_at_seventy_percent_of_its_units() {
        // Four WCU per comment on one post: 1,000 / 4 = 250/s at the limit, 175/s at 70%.
        let axis = Axis {
            id: "t".into(),
            title: "t".into(),
            weights: vec![("c".into(), 1.0)],
            targets: vec![250.0],
            goal: None,
            issue_today: None,
        };
        let result = evaluate(
            &axis,
            &[profile(
                "c",
                vec![role("POST#{viral}", Population::Viral, 1, 4.0)],
            )],
        );
        assert!(
            (result.max_rate - 175.0).abs() < 1e-9,
            "{}",
            result.max_rate
        );
        assert!((result.at[0].partitions["table"].utilisation - 1.0).abs() < 1e-9);
    }

    #[test]
    fn shards_split_a_role_and_fresh_partitions_never_bind() {
        let axis = Axis {
            id: "t".into(),
            title: "t".into(),
            weights: vec![("c".into(), 1.0)],
            targets: vec![],
            goal: None,
            issue_today: None,
        };
        let sharded = evaluate(
            &axis,
            &[profile(
                "c",
                vec![
                    role("FEED#*", Population::Shared, 10, 1.0),
                    role("POST#{id}", Population::Fresh, 1, 1.0),
                ],
            )],
        );
        assert!(
            (sharded.max_rate - 7_000.0).abs() < 1e-6,
            "{}",
            sharded.max_rate
        );
        // The most popular ordinary post takes 1/H(10^6, 1.1) of its class.
        let hot = evaluate(
            &axis,
            &[profile(
                "c",
                vec![role("POST#{post}", Population::HotPost, 1, 1.0)],
            )],
        );
        let expected = 700.0 / zipf_top_share(POSTS, ZIPF_S);
        assert!((hot.max_rate - expected).abs() < 1e-6);
    }
}
