//! The table as DynamoDB describes it (`DescribeTable`), read at start rather than written
//! down here, so the same tool measures whatever key design the code has: the table's key
//! attributes, and each global secondary index's keys and projection, which decide which
//! writes reach an index and how large its entries are.

use std::collections::HashMap;

use dynoxide::types::{item_size, AttributeValue, Item};
use serde_json::Value;

use crate::rules::EntryImage;

/// What an index stores of an item besides the keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

/// One global secondary index.
#[derive(Debug, Clone)]
pub struct IndexSchema {
    pub name: String,
    pub hash: String,
    pub range: Option<String>,
    pub projection: Projection,
}

/// The table: its key attributes and its global secondary indexes.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub name: String,
    pub hash: String,
    pub range: Option<String>,
    pub indexes: Vec<IndexSchema>,
    /// Local secondary indexes the table has: named in the report, not modelled (this app has
    /// none).
    pub local_indexes: Vec<String>,
}

/// The `(HASH, RANGE)` attribute names of a `KeySchema` list.
fn key_schema(value: &Value) -> Result<(String, Option<String>), String> {
    let mut hash = None;
    let mut range = None;
    for element in value.as_array().ok_or("KeySchema is not a list")? {
        let name = element["AttributeName"]
            .as_str()
            .ok_or("KeySchema element without AttributeName")?
            .to_owned();
        match element["KeyType"].as_str() {
            Some("HASH") => hash = Some(name),
            Some("RANGE") => range = Some(name),
            other => return Err(format!("KeySchema element of type {other:?}")),
        }
    }
    Ok((hash.ok_or("KeySchema without a HASH key")?, range))
}

fn projection(value: &Value) -> Result<Projection, String> {
    match value["ProjectionType"].as_str() {
        Some("ALL") => Ok(Projection::All),
        Some("KEYS_ONLY") => Ok(Projection::KeysOnly),
        Some("INCLUDE") => Ok(Projection::Include(
            value["NonKeyAttributes"]
                .as_array()
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        )),
        other => Err(format!("unknown ProjectionType {other:?}")),
    }
}

impl TableSchema {
    /// The schema in a `DescribeTable` answer.
    pub fn from_describe(answer: &Value) -> Result<Self, String> {
        let table = &answer["Table"];
        let name = table["TableName"]
            .as_str()
            .ok_or("DescribeTable: no TableName")?
            .to_owned();
        let (hash, range) = key_schema(&table["KeySchema"])?;
        let mut indexes = Vec::new();
        for index in table["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (hash, range) = key_schema(&index["KeySchema"])?;
            indexes.push(IndexSchema {
                name: index["IndexName"]
                    .as_str()
                    .ok_or("an index without IndexName")?
                    .to_owned(),
                hash,
                range,
                projection: projection(&index["Projection"])?,
            });
        }
        let local_indexes = table["LocalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["IndexName"].as_str().map(str::to_owned))
            .collect();
        Ok(TableSchema {
            name,
            hash,
            range,
            indexes,
            local_indexes,
        })
    }

    /// The primary key of `item` (its key attributes alone), if it has them.
    pub fn key_of(&self, item: &Item) -> Option<Item> {
        let mut key = HashMap::new();
        key.insert(self.hash.clone(), item.get(&self.hash)?.clone());
        if let Some(range) = &self.range {
            key.insert(range.clone(), item.get(range)?.clone());
        }
        Some(key)
    }

    /// The partition key value of an item or key, as text.
    pub fn partition_of(&self, item: &Item) -> Option<String> {
        item.get(&self.hash).map(key_text)
    }

    /// An item's identity, for counting what touches one item: `pk` and `sk` as text.
    pub fn identity(&self, item: &Item) -> String {
        let part = |name: &str| item.get(name).map(key_text).unwrap_or_default();
        match &self.range {
            Some(range) => format!("{}|{}", part(&self.hash), part(range)),
            None => part(&self.hash),
        }
    }

    pub fn index(&self, name: &str) -> Option<&IndexSchema> {
        self.indexes.iter().find(|i| i.name == name)
    }
}

impl IndexSchema {
    /// The index's entry for `item` (what the index stores: its keys, the table's keys, the
    /// projected attributes), or `None` when the item lacks an index key attribute and so is
    /// not in this (sparse) index.
    pub fn entry(&self, table: &TableSchema, item: &Item) -> Option<(EntryImage, Item)> {
        let partition = item.get(&self.hash)?;
        let sort = match &self.range {
            Some(range) => Some(key_text(item.get(range)?)),
            None => None,
        };
        let mut keys: Vec<&str> = vec![&self.hash, &table.hash];
        keys.extend(self.range.as_deref());
        keys.extend(table.range.as_deref());
        let projected: Item = match &self.projection {
            Projection::All => item.clone(),
            Projection::KeysOnly => pick(item, keys),
            Projection::Include(extra) => pick(
                item,
                keys.into_iter().chain(extra.iter().map(String::as_str)),
            ),
        };
        let image = EntryImage {
            partition: key_text(partition),
            key: (key_text(partition), sort),
            size: item_size(&projected),
        };
        Some((image, projected))
    }
}

/// The attributes of `item` named in `names`.
fn pick<'a>(item: &Item, names: impl IntoIterator<Item = &'a str>) -> Item {
    names
        .into_iter()
        .filter_map(|name| item.get(name).map(|v| (name.to_owned(), v.clone())))
        .collect()
}

/// A key attribute's value as text: a string as it is, a number as written, binary in hex.
pub fn key_text(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        AttributeValue::B(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn described(projection: Value) -> TableSchema {
        TableSchema::from_describe(&json!({"Table": {
            "TableName": "social",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [{
                "IndexName": "gsi1",
                "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"}, {"AttributeName": "gsi1sk", "KeyType": "RANGE"}],
                "Projection": projection,
            }],
        }}))
        .expect("a schema")
    }

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned())))
            .collect()
    }

    #[test]
    fn an_index_entry_is_its_projection_of_the_item() {
        let post = item(&[
            ("pk", "POST#1"),
            ("sk", "POST"),
            ("gsi1pk", "FEED"),
            ("gsi1sk", "1"),
            ("caption", "hello"),
        ]);
        let all = described(json!({"ProjectionType": "ALL"}));
        let (entry, _) = all.indexes[0].entry(&all, &post).expect("in the index");
        assert_eq!(entry.partition, "FEED");
        assert_eq!(entry.size, item_size(&post));
        let keys = described(json!({"ProjectionType": "KEYS_ONLY"}));
        let (entry, projected) = keys.indexes[0].entry(&keys, &post).expect("in the index");
        assert_eq!(projected.len(), 4);
        assert_eq!(
            entry.size,
            item_size(&post) - "caption".len() - "hello".len()
        );
        let include =
            described(json!({"ProjectionType": "INCLUDE", "NonKeyAttributes": ["caption"]}));
        let (_, projected) = include.indexes[0]
            .entry(&include, &post)
            .expect("in the index");
        assert_eq!(projected.len(), 5);
        // A comment has no index key: not in the index.
        let comment = item(&[("pk", "POST#1"), ("sk", "COMMENT#2")]);
        assert!(all.indexes[0].entry(&all, &comment).is_none());
    }
}
