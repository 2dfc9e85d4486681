//! What a template declares, read the way CloudFormation and SAM read it: resources by type,
//! a function's settings and environment (`Globals` merged in), `Ref`, `GetAtt` and `Sub`
//! references, stream mappings and their filters, inline policies, HTTP API routes, the table,
//! the dashboard's metric rows and the alarms' metrics.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::{Mapping, Value};

use super::eval::{intrinsic, twin_of};

pub(super) fn resources(t: &Value) -> &Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

/// The logical ids of every `AWS::Serverless::Function`.
pub(super) fn functions(t: &Value) -> BTreeSet<String> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(name, _)| name.as_str().expect("name").to_owned())
        .collect()
}

/// The API functions: those behind at least one HttpApi route.
pub(super) fn api_functions(t: &Value) -> BTreeSet<String> {
    wired_routes(t).into_values().collect()
}

/// A function property, or the `Globals` one when the function does not set it.
pub(super) fn function_setting<'a>(t: &'a Value, function: &str, key: &str) -> &'a Value {
    let own = &resources(t)
        .get(function)
        .unwrap_or_else(|| panic!("template.yaml has no {function}"))["Properties"][key];
    if own.is_null() {
        &t["Globals"]["Function"][key]
    } else {
        own
    }
}

/// A function's environment as SAM deploys it: `Globals` merged with its own (its own wins).
pub(super) fn environment(t: &Value, function: &str) -> Mapping {
    let mut vars = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .cloned()
        .unwrap_or_default();
    if let Some(own) = resources(t)[function]["Properties"]["Environment"]["Variables"].as_mapping()
    {
        vars.extend(own.clone());
    }
    vars
}

/// The logical id named by `!Ref X` or `{Ref: X}`.
pub(super) fn ref_name(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

/// `"Resource.Attribute"` for `!GetAtt Resource.Attribute`, `!GetAtt [Resource, Attribute]` or
/// `{Fn::GetAtt: ...}`.
pub(super) fn get_att(v: &Value) -> Option<String> {
    let target = match v {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => &tagged.value,
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::GetAtt")?,
        _ => return None,
    };
    match target {
        Value::String(s) => Some(s.clone()),
        Value::Sequence(parts) => {
            let parts: Option<Vec<&str>> = parts.iter().map(Value::as_str).collect();
            Some(parts?.join("."))
        }
        _ => None,
    }
}

/// One value or a list of them (IAM's `Action` and `Resource`), as a list.
pub(super) fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Every logical id a value refers to (`Ref`, `GetAtt`, `Sub`), at any depth.
pub(super) fn referenced_ids(v: &Value, out: &mut BTreeSet<String>) {
    if let Some(name) = ref_name(v) {
        out.insert(name.to_owned());
    }
    if let Some(att) = get_att(v) {
        out.insert(att.split('.').next().unwrap_or_default().to_owned());
    }
    match v {
        Value::Tagged(tagged) => {
            if tagged.tag == "Sub" {
                let text = tagged
                    .value
                    .as_str()
                    .or_else(|| tagged.value[0].as_str())
                    .unwrap_or_default();
                for piece in text.split("${").skip(1) {
                    let name = piece.split(['}', '.']).next().unwrap_or_default();
                    out.insert(name.to_owned());
                }
            }
            referenced_ids(&tagged.value, out);
        }
        Value::Mapping(m) => m.values().for_each(|v| referenced_ids(v, out)),
        Value::Sequence(s) => s.iter().for_each(|v| referenced_ids(v, out)),
        _ => {}
    }
}

/// The logical id of the only resource of `kind`.
pub(super) fn only_resource_of(t: &Value, kind: &str) -> String {
    let ids: Vec<&str> = resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .filter_map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(ids.len(), 1, "one {kind}: {ids:?}");
    ids[0].to_owned()
}

/// A stream mapping into a function, whichever way it is declared: an
/// `AWS::Lambda::EventSourceMapping` resource or a SAM `DynamoDB` event on the function. Both
/// spell the settings the same way but the stream (`EventSourceArn` / `Stream`).
pub(super) struct StreamMapping<'a> {
    pub(super) name: String,
    pub(super) source: &'a Value,
    pub(super) props: &'a Value,
}

/// Every mapping into `function`.
pub(super) fn stream_mappings<'a>(t: &'a Value, function: &str) -> Vec<StreamMapping<'a>> {
    all_stream_mappings(t)
        .into_iter()
        .filter(|(into, _)| into == function)
        .map(|(_, m)| m)
        .collect()
}

/// Every mapping of the template, with the function it feeds (its logical id).
pub(super) fn all_stream_mappings(t: &Value) -> Vec<(String, StreamMapping<'_>)> {
    let mut mappings = Vec::new();
    for (name, resource) in resources(t) {
        let props = &resource["Properties"];
        if resource["Type"].as_str() == Some("AWS::Lambda::EventSourceMapping") {
            let target = &props["FunctionName"];
            let into = ref_name(target)
                .map(str::to_owned)
                .or_else(|| get_att(target).and_then(|a| a.strip_suffix(".Arn").map(str::to_owned)))
                .unwrap_or_else(|| panic!("{name:?}: a function of this template"));
            mappings.push((
                into,
                StreamMapping {
                    name: name.as_str().unwrap_or_default().to_owned(),
                    source: &props["EventSourceArn"],
                    props,
                },
            ));
        }
    }
    for function in functions(t) {
        let Some(events) = resources(t)[function.as_str()]["Properties"]["Events"].as_mapping()
        else {
            continue;
        };
        for (name, event) in events {
            if event["Type"].as_str() == Some("DynamoDB") {
                let props = &event["Properties"];
                let name = format!("{function}.Events.{}", name.as_str().unwrap_or_default());
                mappings.push((
                    function.clone(),
                    StreamMapping {
                        name,
                        source: &props["Stream"],
                        props,
                    },
                ));
            }
        }
    }
    mappings
}

/// Whether a Lambda event filter pattern matches `event`, for the operators this template uses
/// (exact values and `prefix`); any other operator fails the test rather than guess.
pub(super) fn filter_matches(pattern: &serde_json::Value, event: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match pattern {
        J::Object(fields) => fields
            .iter()
            .all(|(key, sub)| event.get(key).is_some_and(|e| filter_matches(sub, e))),
        J::Array(alternatives) => alternatives.iter().any(|alt| match alt {
            J::Object(op) if op.len() == 1 && op.contains_key("prefix") => {
                let prefix = op["prefix"].as_str().expect("prefix is a string");
                event.as_str().is_some_and(|e| e.starts_with(prefix))
            }
            J::Object(op) => panic!("filter operator {op:?} is not understood by this test"),
            value => value == event,
        }),
        other => panic!("a filter pattern's leaves are lists, got {other}"),
    }
}

/// The statements of a function's inline `Policies` (each must be a `Statement` document).
pub(super) fn policy_statements<'a>(t: &'a Value, function: &str) -> Vec<&'a Value> {
    let policies = &resources(t)[function]["Properties"]["Policies"];
    let mut statements = Vec::new();
    for policy in one_or_many(policies) {
        let document = policy
            .as_mapping()
            .expect("an inline policy document, not a managed policy or SAM template");
        let only_statements = document.len() == 1 && document.contains_key("Statement");
        assert!(
            only_statements,
            "{function}: a policy is one `Statement` list, no SAM policy template: {policy:?}"
        );
        statements.extend(one_or_many(&policy["Statement"]));
    }
    statements
}

pub(super) fn actions(statement: &Value) -> Vec<String> {
    one_or_many(&statement["Action"])
        .into_iter()
        .map(|a| a.as_str().expect("an action name").to_owned())
        .collect()
}

/// `(method, path) -> function logical id` for every HttpApi event.
pub(super) fn wired_routes(t: &Value) -> BTreeMap<(String, String), String> {
    let mut routes = BTreeMap::new();
    for (name, resource) in resources(t) {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"].as_str() == Some("HttpApi") {
                let method = event["Properties"]["Method"]
                    .as_str()
                    .expect("Method")
                    .to_uppercase();
                let path = event["Properties"]["Path"]
                    .as_str()
                    .expect("Path")
                    .to_owned();
                let previous = routes.insert(
                    (method.clone(), path.clone()),
                    name.as_str().expect("name").to_owned(),
                );
                assert!(previous.is_none(), "{method} {path} is wired twice");
            }
        }
    }
    routes
}

/// The one `${Resource}` a `!Sub` names (pseudo parameters aside).
pub(super) fn ref_in_sub(v: &Value) -> Option<String> {
    let Value::Tagged(tagged) = v else {
        return None;
    };
    let text = tagged.value.as_str().filter(|_| tagged.tag == "Sub")?;
    let mut names = text
        .split("${")
        .skip(1)
        .filter_map(|part| part.split_once('}'))
        .map(|(name, _)| name);
    names
        .find(|name| !name.starts_with("AWS::"))
        .map(str::to_owned)
}

pub(super) fn function_id(function: &str) -> String {
    let mut chars = function.chars();
    let first = chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or_default();
    format!("{first}{}Function", chars.as_str())
}

/// A function's environment as the code sees it: each value a string, as Lambda sets it, with
/// whatever CloudFormation fills in at deploy time (an endpoint, an ARN, a name) stood in for by a
/// placeholder of its kind (a port is a number).
pub(super) fn rendered_environment(t: &Value, function: &str) -> BTreeMap<String, String> {
    fn render(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Tagged(tagged) if tagged.tag == "Sub" => {
                let text = tagged
                    .value
                    .as_str()
                    .or_else(|| tagged.value[0].as_str())
                    .unwrap_or_default();
                let mut out = String::new();
                let mut rest = text;
                while let Some((before, after)) = rest.split_once("${") {
                    let (name, tail) = after.split_once('}').expect("a closed ${...}");
                    out.push_str(before);
                    out.push_str(if name.ends_with(".Port") {
                        "6379"
                    } else {
                        "deployed-value"
                    });
                    rest = tail;
                }
                out + rest
            }
            other => ref_name(other)
                .map(|r| format!("{}-value", r.to_lowercase()))
                .unwrap_or_else(|| "deployed-value".into()),
        }
    }
    environment(t, function)
        .iter()
        .map(|(k, v)| (k.as_str().expect("a name").to_owned(), render(v)))
        .collect()
}

/// The resources of `kind` in `t`, by logical id.
pub(super) fn resources_of<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .filter_map(|(n, r)| Some((n.as_str()?, r)))
        .collect()
}

/// A table's shape, as CloudFormation declares it and as DynamoDB describes it: attribute
/// definitions, key schema, and each global secondary index's key schema and projection.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TableShape {
    pub(super) attributes: BTreeMap<String, String>,
    pub(super) keys: Vec<(String, String)>,
    pub(super) indexes: BTreeMap<String, (Vec<(String, String)>, String)>,
    pub(super) stream: Option<String>,
}

/// The table as `template.yaml` declares it.
pub(super) fn declared_table(t: &Value) -> TableShape {
    let table = only_resource_of(t, "AWS::DynamoDB::Table");
    let props = &resources(t)[table.as_str()]["Properties"];
    let key = |schema: &Value| -> Vec<(String, String)> {
        one_or_many(schema)
            .into_iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap_or("").to_owned(),
                    k["KeyType"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    TableShape {
        attributes: one_or_many(&props["AttributeDefinitions"])
            .into_iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap_or("").to_owned(),
                    a["AttributeType"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        keys: key(&props["KeySchema"]),
        indexes: one_or_many(&props["GlobalSecondaryIndexes"])
            .into_iter()
            .map(|i| {
                (
                    i["IndexName"].as_str().unwrap_or("").to_owned(),
                    (
                        key(&i["KeySchema"]),
                        i["Projection"]["ProjectionType"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                    ),
                )
            })
            .collect(),
        stream: props["StreamSpecification"]["StreamViewType"]
            .as_str()
            .map(str::to_owned),
    }
}

/// The dashboard's metric rows, widget by widget, as CloudWatch reads them (`"."` repeats the
/// cell above, `"..."` every value of the row above but those the row gives itself), with its
/// `!Sub` variables filled in: a variable that is a `!Ref` becomes the resource's logical id,
/// `${LogicalId}` the id itself, anything else `[]`.
pub(super) fn dashboard_widgets(t: &Value) -> Vec<(String, Vec<Vec<serde_json::Value>>)> {
    let dashboard = only_resource_of(t, "AWS::CloudWatch::Dashboard");
    let body = &resources(t)[dashboard.as_str()]["Properties"]["DashboardBody"];
    let Some(("Sub", sub)) =
        intrinsic(body).map(|(name, args)| (if name == "Sub" { "Sub" } else { "" }, args))
    else {
        panic!("the dashboard body is a !Sub: {body:?}")
    };
    let mut text = sub
        .as_str()
        .or_else(|| sub[0].as_str())
        .expect("a body")
        .to_owned();
    for (name, value) in sub[1].as_mapping().into_iter().flatten() {
        let name = name.as_str().expect("a variable");
        // A twin under the name of the function it replaces, as `resolved` names resources
        // (it leaves a `!Sub`'s variables as written).
        let filled = ref_name(value).map_or_else(
            || "[]".to_owned(),
            |id| format!("\"{}\"", twin_of(id).unwrap_or(id)),
        );
        text = text
            .replace(&format!("\"${{{name}}}\""), &filled)
            .replace(&format!("${{{name}}}"), "[]");
    }
    for id in functions(t) {
        text = text.replace(&format!("${{{id}}}"), &id);
    }
    let body: serde_json::Value = serde_json::from_str(&text).expect("the dashboard body is JSON");
    let mut widgets = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        let title = widget["properties"]["title"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut rows: Vec<Vec<serde_json::Value>> = Vec::new();
        for row in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let row = row.as_array().expect("a metric row");
            let previous: Vec<serde_json::Value> = rows
                .last()
                .map(|r| r.iter().filter(|c| !c.is_object()).cloned().collect())
                .unwrap_or_default();
            let mut full = Vec::new();
            for (i, cell) in row.iter().enumerate() {
                match cell.as_str() {
                    Some(".") => full.push(previous.get(i).cloned().unwrap_or_default()),
                    Some("...") => {
                        let given = row[i + 1..].iter().filter(|c| !c.is_object()).count();
                        full.extend(
                            previous
                                .iter()
                                .take(previous.len().saturating_sub(given))
                                .cloned(),
                        );
                    }
                    _ => full.push(cell.clone()),
                }
            }
            rows.push(full);
        }
        widgets.push((title, rows));
    }
    widgets
}

/// A metric an alarm reads: its namespace (`ours` for the stack's own), name and dimensions,
/// each value as written (`ref:X` for `!Ref X`, `X.Y` for `!GetAtt X.Y`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct AlarmMetric {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) dimensions: BTreeMap<String, String>,
}

/// Every alarm's metrics, by alarm: a single-metric alarm's, or each `MetricStat` of a metric
/// math alarm.
pub(super) fn alarm_metrics(t: &Value) -> BTreeMap<String, Vec<AlarmMetric>> {
    let text = |v: &Value| -> String {
        if let Some(name) = ref_name(v) {
            return if name == "AWS::StackName" {
                "ours".to_owned()
            } else {
                format!("ref:{name}")
            };
        }
        get_att(v).unwrap_or_else(|| v.as_str().unwrap_or_default().to_owned())
    };
    let metric = |m: &Value, name: &Value, dims: &Value| AlarmMetric {
        namespace: text(m),
        name: name.as_str().unwrap_or_default().to_owned(),
        dimensions: one_or_many(dims)
            .into_iter()
            .map(|d| {
                (
                    d["Name"].as_str().unwrap_or_default().to_owned(),
                    text(&d["Value"]),
                )
            })
            .collect(),
    };
    resources_of(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, alarm)| {
            let p = &alarm["Properties"];
            let mut metrics: Vec<AlarmMetric> = one_or_many(&p["Metrics"])
                .into_iter()
                .filter(|e| !e["MetricStat"].is_null())
                .map(|e| {
                    let m = &e["MetricStat"]["Metric"];
                    metric(&m["Namespace"], &m["MetricName"], &m["Dimensions"])
                })
                .collect();
            if !p["MetricName"].is_null() {
                metrics.push(metric(&p["Namespace"], &p["MetricName"], &p["Dimensions"]));
            }
            (id.to_owned(), metrics)
        })
        .collect()
}
