//! What a function's role lets it do to the table, as IAM decides it: each permission's
//! actions, the table or index it names, the partition keys its `dynamodb:LeadingKeys`
//! condition admits (`StringLike` or `StringEquals`, for all values) and the attributes its
//! `dynamodb:Attributes` condition admits; and the requests the code makes ([`Call`]), to hold
//! the one against the other.

use serde_yaml::Value;

use super::read::{actions, get_att, one_or_many, only_resource_of, policy_statements};

/// `elasticache:Connect` statements of `function`, with their resources.
pub(super) fn connect_statements<'a>(t: &'a Value, function: &str) -> Vec<Vec<&'a Value>> {
    policy_statements(t, function)
        .into_iter()
        .filter(|s| actions(s).iter().any(|a| a.starts_with("elasticache:")))
        .map(|s| {
            assert_eq!(
                actions(s),
                ["elasticache:Connect"],
                "{function}: only Connect"
            );
            one_or_many(&s["Resource"])
        })
        .collect()
}

/// What an event source mapping needs of the stream, with the function's role.
pub(super) const STREAM_ACTIONS: [&str; 4] = [
    "DescribeStream",
    "GetRecords",
    "GetShardIterator",
    "ListStreams",
];

/// Where a call to the table lands: its items, or an index by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum On {
    Table,
    Index(String),
}

/// One request the code makes: the IAM action that authorises it (a transaction's items are
/// authorised one by one, as `UpdateItem`, `DeleteItem`...), where it lands, the partition key
/// values it names (all of them in one request: `ForAllValues`), the attributes it reads
/// (`None`: the whole item, no projection), and where in the code.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) action: &'static str,
    pub(super) on: On,
    pub(super) keys: Vec<String>,
    pub(super) attributes: Option<Vec<String>>,
    pub(super) why: &'static str,
}

/// One permission of a role on the table: an action, where, the partition key values it
/// admits (`dynamodb:LeadingKeys`, `ForAllValues:StringLike` patterns or `StringEquals`
/// values), and the attributes a request may read (`dynamodb:Attributes`, `None`: any).
#[derive(Debug)]
pub(super) struct Grant {
    pub(super) action: String,
    pub(super) on: Vec<On>,
    pub(super) patterns: Vec<String>,
    pub(super) like: bool,
    pub(super) attributes: Option<Vec<String>>,
    pub(super) sid: String,
}

/// Every DynamoDB permission of `function`'s role on the table or its indexes (the stream's
/// are `stream_consumer_permissions`'s).
pub(super) fn table_grants(t: &Value, function: &str) -> Vec<Grant> {
    let table = only_resource_of(t, "AWS::DynamoDB::Table");
    let mut grants = Vec::new();
    for statement in policy_statements(t, function) {
        let sid = statement["Sid"].as_str().unwrap_or("(no Sid)").to_owned();
        let dynamo: Vec<String> = actions(statement)
            .into_iter()
            .filter_map(|a| a.strip_prefix("dynamodb:").map(str::to_owned))
            .filter(|a| !STREAM_ACTIONS.contains(&a.as_str()))
            .collect();
        if dynamo.is_empty() {
            continue;
        }
        assert_eq!(
            statement["Effect"].as_str(),
            Some("Allow"),
            "{function}: {sid}"
        );
        let on: Vec<On> = one_or_many(&statement["Resource"])
            .into_iter()
            .map(|r| {
                if get_att(r) == Some(format!("{table}.Arn")) {
                    return On::Table;
                }
                let sub = match r {
                    Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
                    _ => None,
                };
                let index = sub.and_then(|s| s.strip_prefix(&format!("${{{table}.Arn}}/index/")));
                match index {
                    Some(name) if !name.contains('*') => On::Index(name.to_owned()),
                    _ => panic!("{function}: {sid}: the table or one index by name, not {r:?}"),
                }
            })
            .collect();
        let condition = statement["Condition"].as_mapping().unwrap_or_else(|| {
            panic!("{function}: {sid} names no keys: every table permission does")
        });
        let (mut found, mut attributes, mut specific) = (None, None, false);
        for (operator, keys) in condition {
            let operator = operator.as_str().unwrap_or_default();
            let keys = keys.as_mapping().expect("condition keys");
            for (key, values) in keys {
                let values: Vec<String> = one_or_many(values)
                    .into_iter()
                    .map(|p| p.as_str().expect("a condition value").to_owned())
                    .collect();
                match (operator, key.as_str().unwrap_or_default()) {
                    (
                        "ForAllValues:StringLike" | "ForAllValues:StringEquals",
                        "dynamodb:LeadingKeys",
                    ) => {
                        assert!(found.is_none(), "{function}: {sid}: one LeadingKeys");
                        found = Some((values, operator == "ForAllValues:StringLike"));
                    }
                    ("ForAllValues:StringEquals", "dynamodb:Attributes") => {
                        attributes = Some(values);
                    }
                    // Without it, a query could return an index's projected attributes, or
                    // all of them (AWS's "Allows access to specific attributes" example).
                    ("StringEqualsIfExists", "dynamodb:Select") => {
                        assert_eq!(values, ["SPECIFIC_ATTRIBUTES"], "{function}: {sid}");
                        specific = true;
                    }
                    (operator, key) => {
                        panic!("{function}: {sid}: condition {operator} {key:?} is not understood here")
                    }
                }
            }
        }
        assert!(
            attributes.is_none() || specific,
            "{function}: {sid}: dynamodb:Attributes without dynamodb:Select"
        );
        let (patterns, like) = found.expect("LeadingKeys");
        assert!(
            !patterns.is_empty() && patterns.iter().all(|p| p != "*" && !p.is_empty()),
            "{function}: {sid}: {patterns:?}"
        );
        for action in dynamo {
            grants.push(Grant {
                action,
                on: on.clone(),
                patterns: patterns.clone(),
                like,
                attributes: attributes.clone(),
                sid: sid.clone(),
            });
        }
    }
    grants
}

/// Whether IAM's `StringLike` `pattern` (`*` any run, `?` one character) matches `value`.
pub(super) fn string_like(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    go(&p, &v)
}

impl Grant {
    pub(super) fn admits(&self, key: &str) -> bool {
        self.patterns.iter().any(|p| {
            if self.like {
                string_like(p, key)
            } else {
                p == key
            }
        })
    }

    /// Whether this permission alone allows `call` (every key it names: `ForAllValues`).
    pub(super) fn allows(&self, call: &Call) -> bool {
        self.permits(
            call.action,
            &call.on,
            &call.keys,
            call.attributes.as_deref(),
        )
    }

    /// Whether this permission alone allows `action` on `on` for all of `keys`, reading
    /// `attributes` (`None`: the whole item, which an attribute condition refuses).
    pub(super) fn permits(
        &self,
        action: &str,
        on: &On,
        keys: &[String],
        attributes: Option<&[String]>,
    ) -> bool {
        let readable = match (&self.attributes, attributes) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(allowed), Some(read)) => read.iter().all(|a| allowed.contains(a)),
        };
        self.action == action
            && self.on.contains(on)
            && keys.iter().all(|k| self.admits(k))
            && readable
    }
}
