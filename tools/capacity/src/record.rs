//! What the recorder keeps of each DynamoDB call: the capacity it consumed, broken down to the
//! partitions of the table and of each index it touched, and how that compared with the
//! emulator's own `ConsumedCapacity`.

use serde::{Deserialize, Serialize};

/// The table itself, in [`Access::resource`]; an index is named by its name.
pub const TABLE: &str = "table";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Read,
    Write,
}

/// Capacity one call consumed on one partition of the table or of an index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Access {
    /// [`TABLE`] or an index's name.
    pub resource: String,
    /// The partition key value, as text.
    pub partition: String,
    pub kind: Kind,
    /// RCU or WCU.
    pub units: f64,
    /// The size the units were computed from (0 when the emulator's figure was taken).
    pub bytes: usize,
    pub transactional: bool,
    /// Strongly consistent (reads); writes are always `true`.
    pub consistent: bool,
    /// The item (`pk|sk`) a write of the table touched, to count what one item takes.
    pub item: Option<String>,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ok,
    /// A single-item write whose condition failed (still charged).
    ConditionFailed,
    /// A cancelled transaction (each item charged: `rules::SOURCES`).
    Cancelled,
    /// Any other error: not charged.
    Error(String),
}

/// The computed figure against the emulator's `ConsumedCapacity`, per resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Check {
    Agreed,
    /// `(resource, computed, reported)` for each resource where the two differ.
    Disagreed(Vec<(String, f64, f64)>),
    /// Not comparable, and why (an error answer carries no `ConsumedCapacity`; a query's
    /// figure is the emulator's own).
    NotChecked(String),
}

/// One DynamoDB call as the recorder saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    pub operation: String,
    pub outcome: Outcome,
    pub accesses: Vec<Access>,
    pub check: Check,
    /// The items a successful write left, as DynamoDB JSON (full mode only): what the delete
    /// axis copies to build a post with many comments in the layout the code uses.
    #[serde(skip)]
    pub written: Vec<serde_json::Value>,
}

impl Call {
    /// Total units of `kind` the call consumed.
    pub fn units(&self, kind: Kind) -> f64 {
        self.accesses
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.units)
            .sum()
    }
}
