//! AWS's published capacity rules and limits, as pure functions, each with its source. The
//! recorder and the model both use these, so one definition is applied everywhere and the unit
//! tests pin it. The sources are listed in [`SOURCES`] and written into BENCHMARKS.md.

/// A write capacity unit writes up to 1 KB ([`SOURCES`]: read/write operations).
pub const WRITE_UNIT_BYTES: usize = 1024;
/// A read capacity unit reads up to 4 KB, strongly consistent (same source).
pub const READ_UNIT_BYTES: usize = 4096;
/// What one partition of a table or of an index serves per second (partition key design).
pub const PARTITION_WCU: f64 = 1000.0;
pub const PARTITION_RCU: f64 = 3000.0;
/// The share of a partition's limit the design may use: the "sustains" bound. The rest
/// is headroom for bursts the per-second averages here do not show.
pub const HEADROOM: f64 = 0.7;
/// A transactional read or write costs twice a standard one (transactions: capacity).
pub const TRANSACTION_FACTOR: f64 = 2.0;

/// One published rule and where AWS publishes it.
pub struct Source {
    pub rule: &'static str,
    pub url: &'static str,
}

/// Every rule the tool applies, in the order BENCHMARKS.md lists them.
pub const SOURCES: &[Source] = &[
    Source {
        rule: "A write of an item up to 1 KB is one WCU, rounded up per KB; a write is sized on the larger of the item before and after it; a transactional write of up to 1 KB is two WCU. A strongly consistent read of up to 4 KB is one RCU, rounded up per 4 KB; eventually consistent half of that; transactional twice. `BatchGetItem` rounds each item up on its own; `Query` adds the sizes of the items it reads and rounds the sum up once, whatever a filter then keeps.",
        url: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html",
    },
    Source {
        rule: "A conditional write whose condition fails still consumes write capacity, sized on the existing item (at least one unit).",
        url: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate",
    },
    Source {
        rule: "Transactions: two underlying reads or writes of every item (prepare and commit); a transaction's changes reach global secondary indexes after it completes, so index writes are ordinary writes. No published charge for a cancelled transaction: the model charges each of its items as a failed conditional transactional write (twice the existing item's units), an upper bound.",
        url: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling",
    },
    Source {
        rule: "A global secondary index is written when the write touches it: a new entry is one write of the entry's size (index keys, table keys, projected attributes); a changed projected attribute is one write; a changed index key is two (a delete and a put); an item leaving the index is one; a write that changes nothing the index projects costs the index nothing. Index reads are eventually consistent.",
        url: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations",
    },
    Source {
        rule: "Each partition of a table or index serves at most 3,000 RCU and 1,000 WCU per second, in provisioned and on-demand mode alike.",
        url: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html",
    },
    Source {
        rule: "Adaptive capacity isolates a hot item on a partition of its own, still capped at 3,000 RCU and 1,000 WCU; split for heat does not help a key range whose writes all go to an ever-increasing sort key (the new items land in the same half).",
        url: "https://aws.amazon.com/blogs/database/part-3-scaling-dynamodb-how-partitions-hot-keys-and-split-for-heat-impact-performance/",
    },
    Source {
        rule: "ElastiCache Serverless: a simple command (GET, SET) costs one ECPU per KB transferred (at least one); a slot serves up to 30,000 ECPU per second (90,000 with reads from replicas).",
        url: "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/quota-limits.html",
    },
];

/// ElastiCache Serverless's throughput of one slot, ECPU per second ([`SOURCES`]).
pub const SLOT_ECPU: f64 = 30_000.0;

/// WCU of writing `bytes`: one per KB, rounded up, at least one.
pub fn write_units(bytes: usize) -> f64 {
    (bytes.div_ceil(WRITE_UNIT_BYTES)).max(1) as f64
}

/// WCU of a write that found an item of `old` bytes (or none) and left `new` (or none): the
/// larger of the two, at least one.
pub fn change_write_units(old: Option<usize>, new: Option<usize>) -> f64 {
    let old = old.map(write_units).unwrap_or(0.0);
    let new = new.map(write_units).unwrap_or(0.0);
    old.max(new).max(1.0)
}

/// RCU of reading `bytes` (one item, or a query's sum): one per 4 KB rounded up, at least one,
/// half of that when eventually consistent.
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let strong = (bytes.div_ceil(READ_UNIT_BYTES)).max(1) as f64;
    if consistent {
        strong
    } else {
        strong / 2.0
    }
}

/// ECPU of a simple Redis command moving `bytes`: one per KB, at least one ([`SOURCES`]).
pub fn ecpu(bytes: f64) -> f64 {
    (bytes / 1024.0).max(1.0)
}

/// The share of all requests the most popular of `n` items gets under Zipf's law with exponent
/// `s`: `1 / H(n, s)`, where `H(n, s) = Σ_{k=1..n} k^-s`.
pub fn zipf_top_share(n: u64, s: f64) -> f64 {
    // Summed from the smallest terms up, so the million small ones are not lost to rounding.
    let harmonic: f64 = (1..=n).rev().map(|k| (k as f64).powf(-s)).sum();
    1.0 / harmonic
}

/// One index entry as it was or is: where it sits and its size.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryImage {
    /// The index's partition key value.
    pub partition: String,
    /// The index key (partition and sort key values): whether a write moves the entry.
    pub key: (String, Option<String>),
    pub size: usize,
}

/// What one write does to one index: the `(partition, WCU)` pairs it charges, from the entry
/// before and after the write and whether the projected attributes differ. Index writes are
/// never transactional ([`SOURCES`]).
pub fn index_write_units(
    old: Option<&EntryImage>,
    new: Option<&EntryImage>,
    projection_changed: bool,
) -> Vec<(String, f64)> {
    match (old, new) {
        (None, None) => vec![],
        (None, Some(new)) => vec![(new.partition.clone(), write_units(new.size))],
        (Some(old), None) => vec![(old.partition.clone(), write_units(old.size))],
        (Some(old), Some(new)) if old.key != new.key => vec![
            (old.partition.clone(), write_units(old.size)),
            (new.partition.clone(), write_units(new.size)),
        ],
        (Some(_), Some(_)) if !projection_changed => vec![],
        (Some(old), Some(new)) => vec![(
            new.partition.clone(),
            write_units(old.size).max(write_units(new.size)),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_one_unit_per_kilobyte_rounded_up_on_the_larger_image() {
        assert_eq!(write_units(1), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(write_units(2560), 3.0);
        assert_eq!(change_write_units(None, Some(500)), 1.0);
        assert_eq!(change_write_units(Some(3000), Some(500)), 3.0);
        assert_eq!(change_write_units(Some(3000), None), 3.0);
        assert_eq!(change_write_units(None, None), 1.0);
    }

    #[test]
    fn a_read_is_one_unit_per_four_kilobytes_and_half_when_eventually_consistent() {
        assert_eq!(read_units(0, true), 1.0);
        assert_eq!(read_units(3500, true), 1.0);
        assert_eq!(read_units(10 * 1024, true), 3.0);
        assert_eq!(read_units(10 * 1024, false), 1.5);
        assert_eq!(read_units(100, false), 0.5);
    }

    #[test]
    fn the_zipf_head_share_is_one_over_the_generalized_harmonic_number() {
        // H(1, s) = 1; H(2, 1) = 1.5; H(3, 2) = 1 + 1/4 + 1/9.
        assert!((zipf_top_share(1, 1.1) - 1.0).abs() < 1e-12);
        assert!((zipf_top_share(2, 1.0) - 1.0 / 1.5).abs() < 1e-12);
        assert!((zipf_top_share(3, 2.0) - 1.0 / (1.0 + 0.25 + 1.0 / 9.0)).abs() < 1e-12);
        // The popularity: s = 1.1 over a million posts. H is about 8.1 (ζ(1.1) ≈ 10.58
        // less the tail's ≈ n^(1-s)/(s-1) ≈ 2.51), so the top post gets about 12%.
        let share = zipf_top_share(1_000_000, 1.1);
        assert!((0.121..0.126).contains(&share), "{share}");
    }

    #[test]
    fn index_writes_follow_the_entry_not_the_item() {
        let entry = |partition: &str, sort: &str, size| EntryImage {
            partition: partition.into(),
            key: (partition.into(), Some(sort.into())),
            size,
        };
        let a = entry("FEED", "1", 700);
        let a_bigger = entry("FEED", "1", 1500);
        let b = entry("FEED#3", "1", 700);
        assert_eq!(index_write_units(None, None, false), vec![]);
        assert_eq!(
            index_write_units(None, Some(&a), true),
            vec![("FEED".into(), 1.0)]
        );
        assert_eq!(
            index_write_units(Some(&a), None, true),
            vec![("FEED".into(), 1.0)]
        );
        // Nothing projected changed (a KEYS_ONLY index, a counter moving): free.
        assert_eq!(index_write_units(Some(&a), Some(&a), false), vec![]);
        assert_eq!(
            index_write_units(Some(&a), Some(&a_bigger), true),
            vec![("FEED".into(), 2.0)]
        );
        // A moved key: a delete from the old partition and a put into the new one.
        assert_eq!(
            index_write_units(Some(&a), Some(&b), true),
            vec![("FEED".into(), 1.0), ("FEED#3".into(), 1.0)]
        );
    }
}
