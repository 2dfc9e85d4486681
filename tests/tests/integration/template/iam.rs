//! What a function's role lets it do to the table, as IAM decides it: each permission's
//! actions, the table or index it names, and the partition keys its `dynamodb:LeadingKeys`
//! condition admits (`StringLike` or `StringEquals`, for all values); and the requests the code
//! makes ([`Call`]), to hold the one against the other.

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
/// values it names (all of them in one request: `ForAllValues`), and where in the code.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) action: &'static str,
    pub(super) on: On,
    pub(super) keys: Vec<String>,
    pub(super) why: &'static str,
}

/// One permission of a role on the table: an action, where, and the partition key values it
/// admits (`dynamodb:LeadingKeys`, `ForAllValues:StringLike` patterns or `StringEquals`
/// values).
#[derive(Debug)]
pub(super) struct Grant {
    pub(super) action: String,
    pub(super) on: Vec<On>,
    pub(super) patterns: Vec<String>,
    pub(super) like: bool,
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
        let mut found = None;
        for (operator, keys) in condition {
            let operator = operator.as_str().unwrap_or_default();
            let like = match operator {
                "ForAllValues:StringLike" => true,
                "ForAllValues:StringEquals" => false,
                other => panic!("{function}: {sid}: condition {other} is not understood here"),
            };
            let keys = keys.as_mapping().expect("condition keys");
            assert_eq!(keys.len(), 1, "{function}: {sid}: LeadingKeys only");
            let patterns: Vec<String> = one_or_many(&keys["dynamodb:LeadingKeys"])
                .into_iter()
                .map(|p| p.as_str().expect("a key pattern").to_owned())
                .collect();
            assert!(found.is_none(), "{function}: {sid}: one condition");
            found = Some((patterns, like));
        }
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
        self.permits(call.action, &call.on, &call.keys)
    }

    /// Whether this permission alone allows `action` on `on` for all of `keys`.
    pub(super) fn permits(&self, action: &str, on: &On, keys: &[String]) -> bool {
        self.action == action && self.on.contains(on) && keys.iter().all(|k| self.admits(k))
    }
}
