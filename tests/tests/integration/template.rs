//! `template.yaml` checked against the code: routes, environment, table and index, the cache
//! sync (the table's stream, its mapping to `CacheSyncFunction`, that function's environment
//! and permissions), the cache for every choice of its kind (`node`, `serverless`) and
//! authentication (`token`, `iam`), and both computes (`ComputeType`: on demand, Lambda Managed
//! Instances). Each choice is the template as CloudFormation would deploy it ([`deployed`]:
//! conditions decided, `Fn::If` resolved, `AWS::NoValue` dropped, resources of false conditions
//! gone, a Managed Instances twin under the name of the function it replaces), and what it gives
//! each function must configure the code as intended.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::{Mapping, Value};

const TEMPLATE: &str = include_str!("../../../template.yaml");

/// The `--env-vars` file for `sam local invoke` / `start-api` against `scripts/dev`'s stack.
const SAM_LOCAL_ENV: &str = include_str!("../../../events/sam-local-env.json");

/// `scripts/dev`, whose defaults (ports, dev JWT secret) the SAM env file must match.
const DEV_SCRIPT: &str = include_str!("../../../scripts/dev");

/// Every route of `API.md`, `(method, path)`.
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("POST", "/users"),
    ("POST", "/auth/login"),
    ("POST", "/auth/logout"),
    ("GET", "/users/me"),
    ("PATCH", "/users/me"),
    ("DELETE", "/users/me"),
    ("POST", "/posts"),
    ("GET", "/posts"),
    ("GET", "/posts/{postId}"),
    ("PATCH", "/posts/{postId}"),
    ("DELETE", "/posts/{postId}"),
    ("POST", "/posts/{postId}/comments"),
    ("GET", "/posts/{postId}/comments"),
    ("GET", "/posts/{postId}/comments/{commentId}"),
    ("PATCH", "/posts/{postId}/comments/{commentId}"),
    ("DELETE", "/posts/{postId}/comments/{commentId}"),
];

/// Where the API functions run (the `ComputeType` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compute {
    OnDemand,
    ManagedInstances,
}

thread_local! {
    /// The compute [`template`] resolves for, on this test's thread.
    static COMPUTE: Cell<Compute> = const { Cell::new(Compute::OnDemand) };
}

/// The template as written.
fn raw_template() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("template.yaml parses")
}

/// The template as deployed with its parameters' defaults, on this thread's [`COMPUTE`].
fn template() -> Value {
    let raw = raw_template();
    let kind = raw["Parameters"]["CacheKind"]["Default"]
        .as_str()
        .expect("CacheKind's default")
        .to_owned();
    let auth = raw["Parameters"]["CacheAuthMode"]["Default"]
        .as_str()
        .expect("CacheAuthMode's default")
        .to_owned();
    deployed(&kind, &auth)
}

/// Every choice of cache kind and authentication the template offers.
const COMBINATIONS: [(&str, &str); 4] = [
    ("node", "token"),
    ("node", "iam"),
    ("serverless", "token"),
    ("serverless", "iam"),
];

/// The template as CloudFormation would deploy it with `CacheKind` = `kind`, `CacheAuthMode` =
/// `auth`, `ComputeType` = this thread's [`COMPUTE`] and every other parameter at its default:
/// conditions evaluated, `Fn::If` resolved, `AWS::NoValue` dropped, `Ref`s to parameters
/// replaced by their values, resources and outputs of false conditions removed, and a Managed
/// Instances twin (`UsersManagedFunction`, `ManagedHttpApi`) under the name of the resource it
/// replaces, so every check reads both computes alike.
fn deployed(kind: &str, auth: &str) -> Value {
    let raw = raw_template();
    let declared: Vec<&str> = raw["Parameters"]
        .as_mapping()
        .expect("Parameters")
        .keys()
        .filter_map(Value::as_str)
        .collect();
    for name in ["CacheKind", "CacheAuthMode"] {
        assert!(
            declared.contains(&name),
            "the template has no {name} parameter"
        );
    }
    let allowed = |name: &str| -> Vec<String> {
        one_or_many(&raw["Parameters"][name]["AllowedValues"])
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::to_owned)
            .collect()
    };
    assert!(
        allowed("CacheKind").contains(&kind.to_owned())
            && allowed("CacheAuthMode").contains(&auth.to_owned())
    );
    let mut parameters: BTreeMap<String, Value> = raw["Parameters"]
        .as_mapping()
        .expect("Parameters")
        .iter()
        .map(|(name, p)| {
            (
                name.as_str().unwrap_or_default().to_owned(),
                p["Default"].clone(),
            )
        })
        .collect();
    parameters.insert("CacheKind".into(), Value::from(kind));
    parameters.insert("CacheAuthMode".into(), Value::from(auth));
    let compute = match COMPUTE.with(Cell::get) {
        Compute::OnDemand => "OnDemand",
        Compute::ManagedInstances => "ManagedInstances",
    };
    parameters.insert("ComputeType".into(), Value::from(compute));
    let resolver = Resolver {
        raw: &raw,
        parameters,
    };
    let mut t = raw.clone();
    for section in ["Globals", "Resources", "Outputs"] {
        let resolved = resolver.resolve(&raw[section]).unwrap_or(Value::Null);
        t[section] = resolved;
    }
    for section in ["Resources", "Outputs"] {
        if let Some(items) = t[section].as_mapping_mut() {
            items.retain(|_, item| {
                item["Condition"]
                    .as_str()
                    .is_none_or(|c| resolver.condition(c))
            });
        }
    }
    if let Some(resources) = t["Resources"].as_mapping_mut() {
        let twins: Vec<Value> = resources
            .keys()
            .filter(|k| k.as_str().and_then(twin_of).is_some())
            .cloned()
            .collect();
        for twin in twins {
            let resource = resources.remove(&twin).expect("the twin");
            resources.insert(
                Value::from(twin.as_str().and_then(twin_of).expect("a twin")),
                resource,
            );
        }
    }
    rename_refs(&mut t);
    t
}

/// Decides a template's conditions and intrinsic functions for given parameter values.
struct Resolver<'a> {
    raw: &'a Value,
    parameters: BTreeMap<String, Value>,
}

impl Resolver<'_> {
    fn condition(&self, name: &str) -> bool {
        let condition = &self.raw["Conditions"][name];
        assert!(!condition.is_null(), "no condition {name}");
        self.holds(condition)
    }

    /// The value of a condition expression (`Fn::Equals`, `Not`, `And`, `Or`, `Condition`).
    fn holds(&self, expression: &Value) -> bool {
        let (function, args) =
            intrinsic(expression).unwrap_or_else(|| panic!("not a condition: {expression:?}"));
        let args = one_or_many(args);
        match function.as_str() {
            "Equals" => self.scalar(args[0]) == self.scalar(args[1]),
            "Not" => !self.holds(args[0]),
            "And" => args.iter().all(|a| self.holds(a)),
            "Or" => args.iter().any(|a| self.holds(a)),
            "Condition" => self.condition(args[0].as_str().expect("a condition's name")),
            other => panic!("condition function {other} is not understood by this test"),
        }
    }

    fn scalar(&self, v: &Value) -> String {
        match self.resolve(v) {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            other => panic!("not a scalar: {other:?}"),
        }
    }

    /// `v` resolved; `None` for `AWS::NoValue`.
    fn resolve(&self, v: &Value) -> Option<Value> {
        if let Some((function, args)) = intrinsic(v) {
            match function.as_str() {
                "If" => {
                    let args = one_or_many(args);
                    let chosen = if self.condition(args[0].as_str().expect("Fn::If's condition")) {
                        args[1]
                    } else {
                        args[2]
                    };
                    return self.resolve(chosen);
                }
                "Ref" if args.as_str() == Some("AWS::NoValue") => return None,
                "Ref" => {
                    if let Some(value) = args.as_str().and_then(|name| self.parameters.get(name)) {
                        return Some(value.clone());
                    }
                }
                _ => {}
            }
        }
        Some(match v {
            Value::Tagged(tagged) => Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
                tag: tagged.tag.clone(),
                value: self.resolve(&tagged.value).unwrap_or(Value::Null),
            })),
            Value::Mapping(m) => Value::Mapping(
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), self.resolve(v)?)))
                    .collect(),
            ),
            Value::Sequence(items) => {
                Value::Sequence(items.iter().filter_map(|v| self.resolve(v)).collect())
            }
            other => other.clone(),
        })
    }
}

/// `(name, arguments)` of an intrinsic function, short (`!If`) or long (`Fn::If`, `Ref`,
/// `Condition`) form.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        Value::Mapping(m) if m.len() == 1 => {
            let (key, args) = m.iter().next()?;
            let key = key.as_str()?;
            let name = key
                .strip_prefix("Fn::")
                .or((key == "Ref" || key == "Condition").then_some(key))?;
            Some((name.to_owned(), args))
        }
        _ => None,
    }
}

/// The condition `ComputeType` sets, and the other one.
const ON_MANAGED: &str = "OnManagedInstances";
const ON_DEMAND: &str = "OnDemand";

/// `t` with `ComputeType` = `compute`: the other compute's resources dropped, each `!If
/// [OnManagedInstances, a, b]` replaced by its branch, `!Ref AWS::NoValue` values removed, and
/// the Managed Instances twins (`UsersManagedFunction`, `ManagedHttpApi`) under the names of the
/// resources they replace, so every check reads both computes alike.
fn resolved(t: &Value, compute: Compute) -> Value {
    let managed = compute == Compute::ManagedInstances;
    let dropped = if managed { ON_DEMAND } else { ON_MANAGED };
    let mut out = choose(t, managed).unwrap_or(Value::Null);
    let resources = out["Resources"].as_mapping_mut().expect("Resources");
    let names: Vec<Value> = resources.keys().cloned().collect();
    for name in names {
        let resource = resources.remove(&name).expect("resource");
        if resource["Condition"].as_str() == Some(dropped) {
            continue;
        }
        let name = name.as_str().expect("name");
        resources.insert(Value::from(twin_of(name).unwrap_or(name)), resource);
    }
    rename_refs(&mut out);
    out
}

/// The resource a Managed Instances twin replaces.
fn twin_of(name: &str) -> Option<&str> {
    match name {
        "UsersManagedFunction" => Some("UsersFunction"),
        "PostsManagedFunction" => Some("PostsFunction"),
        "CommentsManagedFunction" => Some("CommentsFunction"),
        "ManagedHttpApi" => Some("HttpApi"),
        _ => None,
    }
}

/// `v` with the compute's `!If` branches chosen; `None` for `!Ref AWS::NoValue`.
fn choose(v: &Value, managed: bool) -> Option<Value> {
    match v {
        Value::Tagged(tagged)
            if tagged.tag == "If" && tagged.value[0].as_str() == Some(ON_MANAGED) =>
        {
            choose(&tagged.value[if managed { 1 } else { 2 }], managed)
        }
        Value::Tagged(tagged)
            if tagged.tag == "Ref" && tagged.value.as_str() == Some("AWS::NoValue") =>
        {
            None
        }
        Value::Mapping(m) => Some(Value::Mapping(
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), choose(v, managed)?)))
                .collect(),
        )),
        Value::Sequence(items) => Some(Value::Sequence(
            items.iter().filter_map(|v| choose(v, managed)).collect(),
        )),
        Value::Tagged(tagged) => {
            let value = choose(&tagged.value, managed)?;
            Some(Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
                tag: tagged.tag.clone(),
                value,
            })))
        }
        other => Some(other.clone()),
    }
}

/// Every `!Ref` (and `${...}` in `!Sub`) of a twin, renamed to the resource it replaces.
fn rename_refs(v: &mut Value) {
    match v {
        Value::Tagged(tagged) if tagged.tag == "Ref" => {
            if let Some(name) = tagged.value.as_str().and_then(twin_of) {
                tagged.value = Value::from(name);
            }
        }
        Value::Tagged(tagged) if tagged.tag == "Sub" => {
            if let Some(text) = tagged.value.as_str() {
                tagged.value = Value::from(text.replace("${ManagedHttpApi}", "${HttpApi}"));
            }
        }
        Value::Tagged(tagged) => rename_refs(&mut tagged.value),
        Value::Mapping(m) => m.values_mut().for_each(rename_refs),
        Value::Sequence(items) => items.iter_mut().for_each(rename_refs),
        _ => {}
    }
}

fn resources(t: &Value) -> &Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

/// The function applying the table's stream to the cache.
const CACHE_SYNC: &str = "CacheSyncFunction";

/// The logical ids of every `AWS::Serverless::Function`.
fn functions(t: &Value) -> BTreeSet<String> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(name, _)| name.as_str().expect("name").to_owned())
        .collect()
}

/// The API functions: those behind at least one HttpApi route.
fn api_functions(t: &Value) -> BTreeSet<String> {
    wired_routes(t).into_values().collect()
}

/// A function property, or the `Globals` one when the function does not set it.
fn function_setting<'a>(t: &'a Value, function: &str, key: &str) -> &'a Value {
    let own = &resources(t)[function]["Properties"][key];
    if own.is_null() {
        &t["Globals"]["Function"][key]
    } else {
        own
    }
}

/// A function's environment as SAM deploys it: `Globals` merged with its own (its own wins).
fn environment(t: &Value, function: &str) -> Mapping {
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
fn ref_name(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

/// `"Resource.Attribute"` for `!GetAtt Resource.Attribute`, `!GetAtt [Resource, Attribute]` or
/// `{Fn::GetAtt: ...}`.
fn get_att(v: &Value) -> Option<String> {
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
fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Every logical id a value refers to (`Ref`, `GetAtt`, `Sub`), at any depth.
fn referenced_ids(v: &Value, out: &mut BTreeSet<String>) {
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
fn only_resource_of(t: &Value, kind: &str) -> String {
    let ids: Vec<&str> = resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .filter_map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(ids.len(), 1, "one {kind}: {ids:?}");
    ids[0].to_owned()
}

/// A stream mapping into `CacheSyncFunction`, whichever way it is declared: an
/// `AWS::Lambda::EventSourceMapping` resource or a SAM `DynamoDB` event on the function. Both
/// spell the settings the same way but the stream (`EventSourceArn` / `Stream`).
struct StreamMapping<'a> {
    name: String,
    source: &'a Value,
    props: &'a Value,
}

fn cache_sync_mappings(t: &Value) -> Vec<StreamMapping<'_>> {
    let mut mappings = Vec::new();
    for (name, resource) in resources(t) {
        let props = &resource["Properties"];
        if resource["Type"].as_str() == Some("AWS::Lambda::EventSourceMapping") {
            let target = &props["FunctionName"];
            let into_sync = ref_name(target) == Some(CACHE_SYNC)
                || get_att(target) == Some(format!("{CACHE_SYNC}.Arn"));
            if into_sync {
                mappings.push(StreamMapping {
                    name: name.as_str().unwrap_or_default().to_owned(),
                    source: &props["EventSourceArn"],
                    props,
                });
            }
        }
    }
    if let Some(events) = resources(t)[CACHE_SYNC]["Properties"]["Events"].as_mapping() {
        for (name, event) in events {
            if event["Type"].as_str() == Some("DynamoDB") {
                let props = &event["Properties"];
                let name = format!("{CACHE_SYNC}.Events.{}", name.as_str().unwrap_or_default());
                mappings.push(StreamMapping {
                    name,
                    source: &props["Stream"],
                    props,
                });
            }
        }
    }
    mappings
}

/// Whether a Lambda event filter pattern matches `event`, for the operators this template uses
/// (exact values and `prefix`); any other operator fails the test rather than guess.
fn filter_matches(pattern: &serde_json::Value, event: &serde_json::Value) -> bool {
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
fn policy_statements<'a>(t: &'a Value, function: &str) -> Vec<&'a Value> {
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

fn actions(statement: &Value) -> Vec<String> {
    one_or_many(&statement["Action"])
        .into_iter()
        .map(|a| a.as_str().expect("an action name").to_owned())
        .collect()
}

/// `(method, path) -> function logical id` for every HttpApi event.
fn wired_routes(t: &Value) -> BTreeMap<(String, String), String> {
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
fn ref_in_sub(v: &Value) -> Option<String> {
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

fn function_id(function: &str) -> String {
    let mut chars = function.chars();
    let first = chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or_default();
    format!("{first}{}Function", chars.as_str())
}

#[test]
fn every_contract_route_reaches_the_function_that_serves_it() {
    let wired = wired_routes(&template());
    for (method, path) in CONTRACT_ROUTES {
        let expected = function_id(integration_tests::function_for(path));
        let actual = wired.get(&(method.to_string(), path.to_string()));
        assert_eq!(actual, Some(&expected), "{method} {path}");
        // Other methods on the path reach the same function, which answers 405.
        assert_eq!(
            wired.get(&("ANY".to_owned(), path.to_string())),
            Some(&expected),
            "ANY {path}"
        );
    }
    assert_eq!(
        wired
            .get(&("ANY".to_owned(), "$default".to_owned()))
            .map(String::as_str),
        Some("UsersFunction")
    );
}

#[test]
fn contract_routes_match_api_md() {
    // The repository's own copy of the contract, read as contract.rs reads it.
    let ours: BTreeSet<(String, String)> = CONTRACT_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(integration_tests::contract::api_md_routes(), ours);
}

/// A function's environment as the code sees it: each value a string, as Lambda sets it, with
/// whatever CloudFormation fills in at deploy time (an endpoint, an ARN, a name) stood in for by a
/// placeholder of its kind (a port is a number).
fn rendered_environment(t: &Value, function: &str) -> BTreeMap<String, String> {
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

/// The cache settings the code reads from `vars`.
fn cache_config_from(vars: &BTreeMap<String, String>) -> shared::config::CacheConfig {
    shared::config::CacheConfig::from_lookup(|name| vars.get(name).cloned())
        .expect("the code accepts the environment")
}

/// What each combination must configure: the client's mode, and IAM's `(serverless)` or none.
fn expected_cache(kind: &str, auth: &str) -> (shared::config::CacheMode, Option<bool>) {
    use shared::config::CacheMode;
    let mode = if kind == "serverless" {
        CacheMode::Cluster
    } else {
        CacheMode::Standalone
    };
    (mode, (auth == "iam").then_some(kind == "serverless"))
}

#[test]
fn every_deployment_variable_is_set_for_every_function() {
    use shared::config::{auth_variables, DEPLOYMENT_VARIABLES};
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        let api = api_functions(&t);
        assert_eq!(
            api,
            ["CommentsFunction", "PostsFunction", "UsersFunction"]
                .map(String::from)
                .into()
        );
        // Every function is an API function or the cache sync, whose environment is checked below.
        let mut expected = api.clone();
        expected.insert(CACHE_SYNC.to_owned());
        assert_eq!(functions(&t), expected);
        for name in &api {
            let vars = rendered_environment(&t, name);
            for var in DEPLOYMENT_VARIABLES.iter().chain(auth_variables(auth)) {
                assert!(
                    vars.contains_key(*var),
                    "{kind}/{auth}: {name:?} lacks {var}"
                );
            }
            // The key itself is never in the deployed environment: declared empty (unset) only
            // so that `sam local --env-vars` may give a dev key.
            let secret = vars.get("JWT_SECRET").map(String::as_str);
            assert!(
                secret.is_none_or(str::is_empty),
                "{name}: the secret itself must not be in the environment"
            );
            let config = shared::config::Config::from_lookup(|n| vars.get(n).cloned())
                .expect("the code accepts it");
            assert!(matches!(
                config.jwt_secret,
                shared::config::SecretSource::SecretsManager { .. }
            ));
            let cache = config.cache;
            assert_eq!(
                (cache.mode, cache.iam.as_ref().map(|i| i.serverless)),
                expected_cache(kind, auth),
                "{kind}/{auth}"
            );
            assert_eq!(
                cache.redis_password_secret_arn.is_some(),
                auth == "token",
                "{kind}/{auth}: {name}"
            );
            assert!(cache.redis_url.tls(), "{kind}/{auth}: TLS always");
        }
    }
}

#[test]
fn cache_sync_gets_the_cache_and_table_variables_and_nothing_else() {
    use shared::config::{
        auth_variables, DEPLOYMENT_VARIABLES, OPTIONAL_VARIABLES, SYNC_DEPLOYMENT_VARIABLES,
    };
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        let vars = rendered_environment(&t, CACHE_SYNC);
        let auth_vars = auth_variables(auth);
        for var in SYNC_DEPLOYMENT_VARIABLES.iter().chain(auth_vars) {
            assert!(
                vars.contains_key(*var),
                "{kind}/{auth}: {CACHE_SYNC} lacks {var}"
            );
        }
        // Not the JWT key, in any form; nor anything else only the API reads.
        let api_only = DEPLOYMENT_VARIABLES
            .iter()
            .filter(|v| !SYNC_DEPLOYMENT_VARIABLES.contains(v));
        for var in ["JWT_SECRET_ARN", "JWT_SECRET"].iter().chain(api_only) {
            assert!(!vars.contains_key(*var), "{CACHE_SYNC} must not get {var}");
        }
        // Whatever else it gets is a variable cache-sync may read: config.rs's unit tests check
        // that its configuration reads exactly these lists.
        for var in vars.keys() {
            let var = var.as_str();
            let known = SYNC_DEPLOYMENT_VARIABLES.contains(&var)
                || auth_vars.contains(&var)
                || OPTIONAL_VARIABLES.contains(&var)
                || shared::config::PROCESS_VARIABLES.contains(&var);
            assert!(
                known,
                "{kind}/{auth}: {CACHE_SYNC} gets {var}, which the cache sync does not read"
            );
        }
        let cache = cache_config_from(&vars);
        assert_eq!(
            (cache.mode, cache.iam.as_ref().map(|i| i.serverless)),
            expected_cache(kind, auth),
            "{kind}/{auth}"
        );
    }
}

/// The resources of `kind` in `t`, by logical id.
fn resources_of<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .filter_map(|(n, r)| Some((n.as_str()?, r)))
        .collect()
}

#[test]
fn the_cache_is_the_kind_chosen_and_admits_the_functions_the_way_chosen() {
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        let what = format!("{kind}/{auth}");
        let node = resources_of(&t, "AWS::ElastiCache::ReplicationGroup");
        let serverless = resources_of(&t, "AWS::ElastiCache::ServerlessCache");
        let users = resources_of(&t, "AWS::ElastiCache::User");
        let groups = resources_of(&t, "AWS::ElastiCache::UserGroup");
        let secrets: Vec<&str> = resources_of(&t, "AWS::SecretsManager::Secret")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let (cache_id, cache) = match kind {
            "node" => {
                assert!(
                    serverless.is_empty() && node.len() == 1,
                    "{what}: one replication group"
                );
                node[0]
            }
            _ => {
                assert!(
                    node.is_empty() && serverless.len() == 1,
                    "{what}: one serverless cache"
                );
                serverless[0]
            }
        };
        let props = &cache["Properties"];
        assert_eq!(props["Engine"].as_str(), Some("valkey"), "{what}");
        let attached: Vec<&str> = match kind {
            "node" => {
                assert_eq!(
                    props["TransitEncryptionEnabled"].as_bool(),
                    Some(true),
                    "{what}: TLS"
                );
                one_or_many(&props["UserGroupIds"])
                    .into_iter()
                    .filter_map(ref_name)
                    .collect()
            }
            _ => {
                // The usage limits are the parameters (as written: `deployed` put their values in).
                let raw = raw_template();
                let limits = &raw["Resources"][cache_id]["Properties"]["CacheUsageLimits"];
                assert_eq!(
                    ref_name(&limits["DataStorage"]["Maximum"]),
                    Some("ServerlessCacheMaxDataStorageGB"),
                    "{what}"
                );
                assert_eq!(
                    ref_name(&limits["ECPUPerSecond"]["Maximum"]),
                    Some("ServerlessCacheMaxECPUPerSecond"),
                    "{what}"
                );
                ref_name(&props["UserGroupId"]).into_iter().collect()
            }
        };
        match auth {
            "iam" => {
                // No cache password anywhere: no secret for it, no AUTH token, one IAM user in
                // the group attached to the cache, its name its id.
                assert_eq!(
                    secrets,
                    ["JwtSecret"],
                    "{what}: the JWT key is the only secret"
                );
                assert!(props["AuthToken"].is_null(), "{what}");
                // The functions' IAM user, and the disabled user named default that every
                // group must have (every_user_group_has_a_default_user_…).
                let iam: Vec<_> = users
                    .iter()
                    .filter(|(_, u)| {
                        u["Properties"]["AuthenticationMode"]["Type"].as_str() == Some("iam")
                    })
                    .collect();
                assert_eq!(iam.len(), 1, "{what}: one IAM user");
                let (user_id, user) = *iam[0];
                assert_eq!(
                    user["Properties"]["UserName"], user["Properties"]["UserId"],
                    "{what}: an IAM user's name is its id"
                );
                assert_eq!(
                    users.len(),
                    2,
                    "{what}: the IAM user and a disabled default"
                );
                assert_eq!(groups.len(), 1, "{what}");
                let members: Vec<&str> = one_or_many(&groups[0].1["Properties"]["UserIds"])
                    .into_iter()
                    .filter_map(ref_name)
                    .collect();
                let mut expected: Vec<&str> = users.iter().map(|(id, _)| *id).collect();
                expected.sort_unstable();
                let mut sorted = members.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, expected, "{what}");
                assert!(members.contains(&user_id), "{what}");
                assert_eq!(attached, [groups[0].0], "{what}: the group is the cache's");
            }
            _ => {
                assert_eq!(secrets, ["JwtSecret", "CacheAuthSecret"], "{what}");
                let token = match kind {
                    "node" => props["AuthToken"].clone(),
                    _ => {
                        // A serverless cache admits user groups only: a password user named
                        // `default` (what AUTH <token> authenticates) with the token.
                        assert_eq!(users.len(), 1, "{what}");
                        let user = &users[0].1["Properties"];
                        assert_eq!(user["UserName"].as_str(), Some("default"), "{what}");
                        assert_eq!(
                            user["AuthenticationMode"]["Type"].as_str(),
                            Some("password"),
                            "{what}"
                        );
                        assert_eq!(attached, [groups[0].0], "{what}");
                        one_or_many(&user["AuthenticationMode"]["Passwords"])[0].clone()
                    }
                };
                let mut refs = BTreeSet::new();
                referenced_ids(&token, &mut refs);
                assert!(
                    refs.contains("CacheAuthSecret"),
                    "{what}: the token is the generated secret's"
                );
            }
        }
        assert!(
            !t["Outputs"].as_mapping().expect("Outputs").is_empty()
                && !t["Outputs"]["CacheEndpoint"].is_null(),
            "{what}: {cache_id}'s endpoint is an output"
        );
    }
}

/// `elasticache:Connect` statements of `function`, with their resources.
fn connect_statements<'a>(t: &'a Value, function: &str) -> Vec<Vec<&'a Value>> {
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

#[test]
fn with_iam_every_function_may_connect_as_the_cache_user_to_the_cache_and_nothing_else() {
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        for function in functions(&t) {
            let statements = connect_statements(&t, &function);
            if auth == "token" {
                assert!(
                    statements.is_empty(),
                    "{kind}/{auth}: {function} needs no elasticache:Connect"
                );
                continue;
            }
            assert_eq!(
                statements.len(),
                1,
                "{kind}/{auth}: {function}: one Connect statement"
            );
            let mut targets: Vec<String> = statements[0]
                .iter()
                .map(|r| {
                    get_att(r)
                        .or_else(|| {
                            let mut ids = BTreeSet::new();
                            referenced_ids(r, &mut ids);
                            ids.into_iter()
                                .find(|id| id == "Cache")
                                .map(|id| format!("{id} (replication group ARN)"))
                        })
                        .unwrap_or_else(|| panic!("{function}: an unexpected resource {r:?}"))
                })
                .collect();
            targets.sort();
            let cache = if kind == "serverless" {
                "ServerlessCache.ARN"
            } else {
                "Cache (replication group ARN)"
            };
            let mut expected = vec![cache.to_owned(), "CacheIamUser.Arn".to_owned()];
            expected.sort();
            assert_eq!(
                targets, expected,
                "{kind}/{auth}: {function} connects to the cache as its user only"
            );
        }
    }
}

#[test]
fn the_table_has_the_keys_and_index_the_code_uses() {
    let t = template();
    let tables: Vec<&Value> = resources(&t)
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
        .collect();
    assert_eq!(tables.len(), 1, "one table (single-table design)");
    let props = &tables[0]["Properties"];
    let attr_names: BTreeSet<&str> = props["AttributeDefinitions"]
        .as_sequence()
        .expect("AttributeDefinitions")
        .iter()
        .filter_map(|a| a["AttributeName"].as_str())
        .collect();
    assert_eq!(
        attr_names,
        shared::store::schema::KEY_ATTRIBUTES.into_iter().collect()
    );
    let key = |schema: &Value| -> Vec<(String, String)> {
        schema
            .as_sequence()
            .expect("KeySchema")
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap_or("").to_owned(),
                    k["KeyType"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        key(&props["KeySchema"]),
        vec![("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]
    );
    let index = props["GlobalSecondaryIndexes"]
        .as_sequence()
        .expect("GlobalSecondaryIndexes")
        .iter()
        .find(|i| i["IndexName"].as_str() == Some(shared::store::FEED_INDEX))
        .expect("the feed index");
    assert_eq!(
        key(&index["KeySchema"]),
        vec![
            ("gsi1pk".into(), "HASH".into()),
            ("gsi1sk".into(), "RANGE".into())
        ]
    );
    assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
}

#[test]
fn functions_are_built_by_cargo_lambda_for_arm64() {
    let t = template();
    let builds = ["users", "posts", "comments"].map(|f| (f, function_id(f)));
    for (binary, id) in builds
        .into_iter()
        .chain([("cache-sync", CACHE_SYNC.to_owned())])
    {
        let resource = &resources(&t)[id.as_str()];
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
        assert_eq!(
            resource["Metadata"]["BuildProperties"]["Binary"].as_str(),
            Some(binary),
            "{id}"
        );
        assert_eq!(
            function_setting(&t, &id, "Architectures"),
            &Value::from(vec!["arm64"]),
            "{id}"
        );
        assert_eq!(
            function_setting(&t, &id, "Runtime").as_str(),
            Some("provided.al2023"),
            "{id}"
        );
        assert_eq!(
            function_setting(&t, &id, "Handler").as_str(),
            Some("bootstrap"),
            "{id}"
        );
    }
}

#[test]
fn every_function_runs_in_the_private_subnets() {
    // The cache is reachable only inside the VPC, from the function security group; so is the
    // Secrets Manager endpoint.
    let t = template();
    for id in functions(&t) {
        // On Managed Instances, the capacity provider's network is the function's.
        let vpc = match ref_in_sub(
            &resources(&t)[id.as_str()]["Properties"]["CapacityProviderConfig"]["Arn"],
        ) {
            Some(provider) => &resources(&t)[provider.as_str()]["Properties"]["VpcConfig"],
            None => function_setting(&t, &id, "VpcConfig"),
        };
        let names = |key: &str| -> BTreeSet<&str> {
            one_or_many(&vpc[key])
                .into_iter()
                .map(|v| ref_name(v).expect("a !Ref"))
                .collect()
        };
        assert_eq!(
            names("SubnetIds"),
            ["PrivateSubnetA", "PrivateSubnetB"].into(),
            "{id}"
        );
        assert_eq!(
            names("SecurityGroupIds"),
            ["FunctionSecurityGroup"].into(),
            "{id}"
        );
    }
}

#[test]
fn every_function_logs_json_to_its_own_log_group_with_retention() {
    let t = template();
    let mut groups = BTreeSet::new();
    for id in functions(&t) {
        let logging = function_setting(&t, &id, "LoggingConfig");
        assert_eq!(logging["LogFormat"].as_str(), Some("JSON"), "{id}");
        let group = ref_name(&logging["LogGroup"]).expect("a log group of the template");
        let resource = &resources(&t)[group];
        assert_eq!(
            resource["Type"].as_str(),
            Some("AWS::Logs::LogGroup"),
            "{id}"
        );
        assert!(
            !resource["Properties"]["RetentionInDays"].is_null(),
            "{id}: {group} keeps logs forever"
        );
        assert!(groups.insert(group.to_owned()), "{id} shares {group}");
    }
}

#[test]
fn cache_sync_is_small_and_short_lived() {
    // A batch is at most 100 Redis scripts: a short timeout bounds a stuck batch, and so little
    // work needs little memory.
    let t = template();
    let timeout = function_setting(&t, CACHE_SYNC, "Timeout").as_u64();
    assert!(
        timeout.is_some_and(|s| s <= 60),
        "a short timeout, got {timeout:?}"
    );
    let memory = function_setting(&t, CACHE_SYNC, "MemorySize").as_u64();
    assert!(
        memory.is_some_and(|m| m <= 256),
        "small memory, got {memory:?}"
    );
}

#[test]
fn the_table_streams_old_and_new_images() {
    let t = template();
    let table = only_resource_of(&t, "AWS::DynamoDB::Table");
    let stream = &resources(&t)[table.as_str()]["Properties"]["StreamSpecification"];
    assert_eq!(
        stream["StreamViewType"].as_str(),
        Some("NEW_AND_OLD_IMAGES")
    );
}

#[test]
fn the_table_stream_reaches_cache_sync_with_bounded_retries_and_a_failure_queue() {
    let t = template();
    let table = only_resource_of(&t, "AWS::DynamoDB::Table");
    let mappings = cache_sync_mappings(&t);
    assert_eq!(
        mappings.len(),
        1,
        "one mapping into {CACHE_SYNC}: {:?}",
        mappings.iter().map(|m| &m.name).collect::<Vec<_>>()
    );
    let StreamMapping {
        name,
        source,
        props,
    } = &mappings[0];
    assert_eq!(
        get_att(source),
        Some(format!("{table}.StreamArn")),
        "{name}: the table's stream"
    );
    assert_eq!(props["StartingPosition"].as_str(), Some("LATEST"), "{name}");
    assert_eq!(props["BatchSize"].as_u64(), Some(100), "{name}");
    let responses: Vec<&str> = one_or_many(&props["FunctionResponseTypes"])
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        responses.contains(&"ReportBatchItemFailures"),
        "{name}: partial batch responses"
    );
    assert_eq!(
        props["BisectBatchOnFunctionError"].as_bool(),
        Some(true),
        "{name}"
    );
    let retries = props["MaximumRetryAttempts"].as_i64();
    assert!(
        retries.is_some_and(|r| (0..=10_000).contains(&r)),
        "{name}: bounded retries, got {retries:?}"
    );

    // The record age bound, a number or a parameter, must outlive the longest cache entry
    // (1.1 x the TTL, jitter included), or a record could be dropped while a stale entry lives.
    let parameter = |name: &str, key: &str| t["Parameters"][name][key].as_f64();
    let cache_ttl = parameter("CacheTtlSeconds", "Default").expect("CacheTtlSeconds has a default");
    let age = &props["MaximumRecordAgeInSeconds"];
    let (age, min_age) = match ref_name(age) {
        Some(p) => (
            parameter(p, "Default").expect("the age parameter's default"),
            parameter(p, "MinValue"),
        ),
        None => (
            age.as_f64().expect("MaximumRecordAgeInSeconds is set"),
            None,
        ),
    };
    assert!(
        age > 1.1 * cache_ttl,
        "{name}: record age bound {age} s must exceed 1.1 x CacheTtlSeconds ({cache_ttl} s)"
    );
    assert!(
        min_age.unwrap_or(age) >= 60.0,
        "{name}: Lambda's smallest record age bound is 60 s"
    );

    // Failures go to an encrypted SQS queue that keeps them as long as SQS can.
    let destination = &props["DestinationConfig"]["OnFailure"]["Destination"];
    let queue = get_att(destination)
        .and_then(|d| d.strip_suffix(".Arn").map(str::to_owned))
        .expect("a queue's Arn");
    let queue = &resources(&t)[queue.as_str()];
    assert_eq!(
        queue["Type"].as_str(),
        Some("AWS::SQS::Queue"),
        "{name}: failures go to SQS"
    );
    assert_eq!(
        queue["Properties"]["SqsManagedSseEnabled"].as_bool(),
        Some(true),
        "the failure queue is encrypted"
    );
    assert_eq!(
        queue["Properties"]["MessageRetentionPeriod"].as_u64(),
        Some(14 * 24 * 3600),
        "14 days"
    );
}

#[test]
fn only_user_items_invoke_cache_sync() {
    let t = template();
    let mappings = cache_sync_mappings(&t);
    let filters =
        one_or_many(&mappings.first().expect("a mapping").props["FilterCriteria"]["Filters"]);
    assert!(!filters.is_empty(), "the mapping filters its records");
    // Stream records' keys as Lambda sees them, per the data model (README).
    let record = |pk: &str, sk: &str| {
        let keys = serde_json::json!({"pk": {"S": pk}, "sk": {"S": sk}});
        serde_json::json!({"eventName": "MODIFY", "dynamodb": {"Keys": keys}})
    };
    let user = record("USER#ann@example.com", "PROFILE");
    let post = record("POST#01JDX7Z6V3W6M0Q0VJ5R8ZK3QF", "POST");
    let comment = record(
        "POST#01JDX7Z6V3W6M0Q0VJ5R8ZK3QF",
        "COMMENT#01JDX80C9P2N7X4D5E6F7G8H9J",
    );
    // Filters are alternatives: each must require the USER# prefix of pk, and a user passes.
    for filter in &filters {
        let pattern: serde_json::Value =
            serde_json::from_str(filter["Pattern"].as_str().expect("a JSON pattern"))
                .expect("the pattern is JSON");
        assert_eq!(
            pattern["dynamodb"]["Keys"]["pk"]["S"],
            serde_json::json!([{"prefix": "USER#"}]),
            "{pattern}"
        );
        assert!(
            !filter_matches(&pattern, &post) && !filter_matches(&pattern, &comment),
            "{pattern} lets posts in"
        );
    }
    let pattern = |f: &&Value| {
        serde_json::from_str::<serde_json::Value>(f["Pattern"].as_str().unwrap_or("{}")).ok()
    };
    assert!(
        filters
            .iter()
            .filter_map(pattern)
            .any(|p| filter_matches(&p, &user)),
        "a user's change must pass"
    );
}

#[test]
fn cache_sync_may_read_the_stream_user_items_and_the_cache_secret_and_nothing_else() {
    for (kind, auth) in COMBINATIONS {
        cache_sync_permissions(&deployed(kind, auth), auth);
    }
}

/// `cache-sync`'s role in one combination: the stream, user items, the failure queue, and the
/// cache (its AUTH token's secret, or with IAM `elasticache:Connect` as the cache's user).
fn cache_sync_permissions(t: &Value, auth: &str) {
    let t = t.clone();
    let table = only_resource_of(&t, "AWS::DynamoDB::Table");
    let sync = &resources(&t)[CACHE_SYNC]["Properties"];
    // SAM's own DynamoDB/Kinesis events attach a managed policy that reads every stream in the
    // account (Resource "*"); the mapping is a resource of its own and the policy explicit.
    for event in sync["Events"]
        .as_mapping()
        .map(|e| e.values().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let kind = event["Type"].as_str().unwrap_or_default();
        assert!(
            !["DynamoDB", "Kinesis"].contains(&kind),
            "a SAM {kind} event widens {CACHE_SYNC}'s role"
        );
    }
    for key in ["Role", "ManagedPolicyArns", "PermissionsBoundary"] {
        assert!(
            sync[key].is_null(),
            "{CACHE_SYNC}: {key} would replace or widen the role checked here"
        );
    }

    let statements = policy_statements(&t, CACHE_SYNC);
    let mut secrets = BTreeSet::new();
    let mut stream_actions = BTreeSet::new();
    let mut queues = BTreeSet::new();
    let mut user_reads = false;
    for statement in &statements {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"));
        assert!(
            statement["NotAction"].is_null() && statement["NotResource"].is_null(),
            "{statement:?}"
        );
        let mut refs = BTreeSet::new();
        referenced_ids(statement, &mut refs);
        assert!(
            !refs.contains("JwtSecret"),
            "{CACHE_SYNC} must not reach the JWT key: {statement:?}"
        );
        let resources: Vec<&Value> = one_or_many(&statement["Resource"]);
        assert!(
            resources.iter().all(|r| r.as_str() != Some("*")),
            "no * resource: {statement:?}"
        );
        for action in actions(statement) {
            let (service, name) = action.split_once(':').unwrap_or(("*", "*"));
            assert!(!name.contains('*'), "no wildcard actions: {action}");
            match service {
                "dynamodb" if name == "GetItem" => {
                    // The current state of a changed user: user items only, by their key.
                    for resource in &resources {
                        assert_eq!(
                            get_att(resource),
                            Some(format!("{table}.Arn")),
                            "{action} on the table, no index"
                        );
                    }
                    let leading =
                        &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                    let prefixes: Vec<&str> = one_or_many(leading)
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect();
                    assert_eq!(
                        prefixes,
                        ["USER#*"],
                        "{action} limited to user items: {statement:?}"
                    );
                    user_reads = true;
                }
                "dynamodb" => {
                    let item_access = name.ends_with("Item")
                        || name.starts_with("PartiQL")
                        || ["Query", "Scan"].contains(&name);
                    assert!(
                        !item_access,
                        "{CACHE_SYNC} reads one user at a time by its key, nothing else: {action}"
                    );
                    for resource in &resources {
                        assert_eq!(
                            get_att(resource),
                            Some(format!("{table}.StreamArn")),
                            "{action} on the stream only"
                        );
                    }
                    stream_actions.insert(name.to_owned());
                }
                "secretsmanager" => {
                    assert_eq!(name, "GetSecretValue");
                    secrets.extend(
                        resources
                            .iter()
                            .map(|r| ref_name(r).expect("a secret by !Ref").to_owned()),
                    );
                }
                "sqs" => {
                    assert_eq!(name, "SendMessage");
                    queues.extend(resources.iter().map(|r| get_att(r).expect("a queue's Arn")));
                }
                "elasticache" => {
                    assert_eq!((auth, name), ("iam", "Connect"), "{CACHE_SYNC}: {action}")
                }
                "logs" => {}
                other => panic!("{CACHE_SYNC} has no business with {other}: {action}"),
            }
        }
    }
    assert!(user_reads, "{CACHE_SYNC} reads each changed user's item");
    let expected: BTreeSet<String> = if auth == "iam" {
        BTreeSet::new()
    } else {
        ["CacheAuthSecret".to_owned()].into()
    };
    assert_eq!(
        secrets, expected,
        "the only secret it reads is the cache's AUTH token, and none with IAM"
    );
    let needed = [
        "DescribeStream",
        "GetRecords",
        "GetShardIterator",
        "ListStreams",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        stream_actions, needed,
        "the mapping polls the stream with this role"
    );
    let mapping = cache_sync_mappings(&t);
    let destination = get_att(&mapping[0].props["DestinationConfig"]["OnFailure"]["Destination"])
        .expect("destination");
    assert_eq!(
        queues,
        [destination].into(),
        "it may send to the failure queue, and only to it"
    );
}

#[test]
fn every_parameter_is_in_exactly_one_console_group() {
    let t = template();
    let mut grouped = BTreeMap::<String, usize>::new();
    let groups = &t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"];
    for group in one_or_many(groups) {
        for p in one_or_many(&group["Parameters"]) {
            *grouped
                .entry(p.as_str().expect("a parameter").to_owned())
                .or_default() += 1;
        }
    }
    let declared: BTreeSet<String> = t["Parameters"]
        .as_mapping()
        .expect("Parameters")
        .keys()
        .map(|k| k.as_str().expect("name").to_owned())
        .collect();
    assert_eq!(grouped.keys().cloned().collect::<BTreeSet<_>>(), declared);
    assert!(grouped.values().all(|n| *n == 1), "{grouped:?}");
}

#[test]
fn outputs_name_the_cache_sync_function_and_its_failure_queue() {
    let t = template();
    let queue = only_resource_of(&t, "AWS::SQS::Queue");
    let outputs: Vec<&Value> = t["Outputs"]
        .as_mapping()
        .expect("Outputs")
        .values()
        .map(|o| &o["Value"])
        .collect();
    assert!(
        outputs.iter().any(|v| ref_name(v) == Some(CACHE_SYNC)),
        "the function's name"
    );
    assert!(
        outputs.iter().any(|v| ref_name(v) == Some(queue.as_str())),
        "the queue's URL"
    );
    assert!(
        outputs
            .iter()
            .any(|v| get_att(v) == Some(format!("{queue}.Arn"))),
        "the queue's ARN"
    );
}

/// `scripts/dev`'s default for a variable it reads as `NAME=${NAME:-default}`.
fn dev_default(name: &str) -> String {
    let prefix = format!("{name}=${{{name}:-");
    let default = DEV_SCRIPT
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str())?.strip_suffix('}'));
    default
        .unwrap_or_else(|| panic!("scripts/dev has no `{prefix}...}}` line"))
        .to_owned()
}

/// `sam local` gives a function only the variables its template environment declares, the
/// `--env-vars` file overriding their values; any other name in the file is ignored. So the
/// file names every function (the Managed Instances twins too, by their own ids) and exactly
/// its declared variables, and the values point the function at `scripts/dev`'s Redis and
/// DynamoDB (as a Docker container reaches the host) and give the API functions
/// `scripts/dev`'s JWT key, so its tokens pass. Each entry is checked against the function as
/// this thread's compute deploys it, so the twins' entries are checked on Managed Instances.
#[test]
fn the_sam_local_env_file_points_every_function_at_the_local_stack() {
    use shared::config::{
        CacheConfig, Config, SecretSource, TableConfig, DEPLOYMENT_VARIABLES, OPTIONAL_VARIABLES,
        SYNC_DEPLOYMENT_VARIABLES,
    };
    let (raw, t) = (raw_template(), template());
    let file: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(SAM_LOCAL_ENV).expect("events/sam-local-env.json is a JSON object");
    let named: BTreeSet<String> = file.keys().cloned().collect();
    assert_eq!(
        named,
        functions(&raw),
        "events/sam-local-env.json names each function of template.yaml by its id"
    );
    let this_compute = match COMPUTE.with(Cell::get) {
        Compute::OnDemand => ON_DEMAND,
        Compute::ManagedInstances => ON_MANAGED,
    };

    let host = "host.docker.internal";
    let redis_url = format!("redis://{host}:{}", dev_default("REDIS_PORT"));
    let dynamodb = format!("http://{host}:{}", dev_default("DYNAMODB_PORT"));
    let dev_secret = dev_default("JWT_SECRET");
    for id in functions(&raw) {
        if resources(&raw)[id.as_str()]["Condition"]
            .as_str()
            .is_some_and(|c| c != this_compute)
        {
            continue; // the other compute's function: checked when that compute is
        }
        // Its name in `t`, where a twin stands under the name of the function it replaces.
        let deployed = twin_of(&id).unwrap_or(&id);
        let declared: BTreeSet<String> = environment(&t, deployed)
            .keys()
            .map(|k| k.as_str().expect("a variable name").to_owned())
            .collect();
        let given = file[&id]
            .as_object()
            .unwrap_or_else(|| panic!("{id}: an object of variables"));
        let given: BTreeMap<&str, &str> = given
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    v.as_str().unwrap_or_else(|| panic!("{id}.{k}: a string")),
                )
            })
            .collect();
        let names: BTreeSet<String> = given.keys().map(|k| k.to_string()).collect();
        let undeclared: Vec<_> = names.difference(&declared).collect();
        assert!(
            undeclared.is_empty(),
            "{id}: sam local ignores variables template.yaml does not declare: {undeclared:?}"
        );
        let unset: Vec<_> = declared.difference(&names).collect();
        assert!(
            unset.is_empty(),
            "{id}: the template's own value would reach the function: {unset:?}"
        );

        // What the code reads, and the local stack needs, is declared (so it reaches the function).
        let sync = id == CACHE_SYNC;
        let required = if sync {
            SYNC_DEPLOYMENT_VARIABLES
        } else {
            DEPLOYMENT_VARIABLES
        };
        let local: &[&str] = if sync {
            &["DYNAMODB_ENDPOINT"]
        } else {
            &["DYNAMODB_ENDPOINT", "JWT_SECRET"]
        };
        for var in required.iter().chain(local) {
            assert!(given.contains_key(var), "{id}: {var} is not given");
        }
        for var in given.keys() {
            let read = DEPLOYMENT_VARIABLES.contains(var)
                || OPTIONAL_VARIABLES.contains(var)
                || shared::config::TOKEN_AUTH_VARIABLES.contains(var)
                || shared::config::PROCESS_VARIABLES.contains(var);
            assert!(
                read || SYNC_DEPLOYMENT_VARIABLES.contains(var),
                "{id}: {var} is read by no code"
            );
        }

        // The values are what the configuration accepts, and lead to the local stack.
        let lookup = |name: &str| given.get(name).map(|v| v.to_string());
        let (table, cache) = if sync {
            let table = TableConfig::from_lookup(lookup).unwrap_or_else(|e| panic!("{id}: {e}"));
            (
                table,
                CacheConfig::from_lookup(lookup).unwrap_or_else(|e| panic!("{id}: {e}")),
            )
        } else {
            let config = Config::from_lookup(lookup).unwrap_or_else(|e| panic!("{id}: {e}"));
            match &config.jwt_secret {
                SecretSource::Value(secret) => {
                    assert_eq!(secret.expose(), dev_secret, "{id}: scripts/dev's key")
                }
                other => panic!("{id}: a JWT key given directly, not {other:?}"),
            }
            (config.table, config.cache)
        };
        assert_eq!(
            table.table_name, "social",
            "{id}: the table scripts/dev creates"
        );
        assert_eq!(
            table.dynamodb_endpoint.as_deref(),
            Some(dynamodb.as_str()),
            "{id}"
        );
        assert_eq!(cache.redis_url.as_str(), redis_url, "{id}");
        assert_eq!(
            cache.redis_password_secret_arn, None,
            "{id}: no Secrets Manager locally"
        );
    }
}

/// The item key prefixes each API function's table permissions name (`dynamodb:LeadingKeys`),
/// by action: `(action, prefixes)` for every allowed DynamoDB action on the table or its index.
fn item_access(t: &Value, function: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut access: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for statement in policy_statements(t, function) {
        let dynamo: Vec<String> = actions(statement)
            .into_iter()
            .filter(|a| a.starts_with("dynamodb:"))
            .collect();
        if dynamo.is_empty() {
            continue;
        }
        let condition = &statement["Condition"];
        let leading = [
            &condition["ForAllValues:StringLike"],
            &condition["ForAllValues:StringEquals"],
        ]
        .into_iter()
        .map(|c| &c["dynamodb:LeadingKeys"])
        .find(|v| !v.is_null())
        .unwrap_or_else(|| {
            panic!("{function}: every table permission names its key prefixes: {statement:?}")
        });
        let prefixes: BTreeSet<String> = one_or_many(leading)
            .iter()
            .map(|p| p.as_str().expect("a prefix").to_owned())
            .collect();
        assert!(
            !prefixes.is_empty() && !prefixes.contains("*"),
            "{function}: {prefixes:?}"
        );
        for action in dynamo {
            access
                .entry(action)
                .or_default()
                .extend(prefixes.iter().cloned());
        }
    }
    access
}

#[test]
fn each_api_function_reaches_only_the_items_it_uses() {
    let t = template();
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let users = item_access(&t, "UsersFunction");
    for action in ["GetItem", "PutItem", "UpdateItem", "DeleteItem"] {
        assert_eq!(
            users[&format!("dynamodb:{action}")],
            set(&["USER#*"]),
            "users: {action}"
        );
    }
    assert_eq!(users.len(), 4, "users: {users:?}");
    for function in ["PostsFunction", "CommentsFunction"] {
        let access = item_access(&t, function);
        // Authentication reads users; nothing but the users function changes one (or its
        // `jwtVersion`).
        assert_eq!(
            access["dynamodb:GetItem"],
            set(&["USER#*", "POST#*", "IDEMPOTENCY#*"]),
            "{function}"
        );
        for (action, prefixes) in &access {
            if action != "dynamodb:GetItem" && action != "dynamodb:Query" {
                assert!(
                    !prefixes.contains("USER#*"),
                    "{function} may not {action} users"
                );
            }
            assert!(prefixes
                .iter()
                .all(|p| ["USER#*", "POST#*", "IDEMPOTENCY#*", "FEED"].contains(&p.as_str())));
        }
        for write in ["PutItem", "UpdateItem", "DeleteItem"] {
            assert_eq!(
                access[&format!("dynamodb:{write}")],
                set(&["POST#*", "IDEMPOTENCY#*"]),
                "{function}: {write}"
            );
        }
    }
    assert!(
        item_access(&t, "PostsFunction")["dynamodb:Query"].contains("FEED"),
        "the feed's partition"
    );
}

#[test]
fn the_dynamodb_endpoint_reaches_this_table_only() {
    let t = template();
    let endpoint = &resources(&t)["DynamoDbGatewayEndpoint"]["Properties"];
    let statements = one_or_many(&endpoint["PolicyDocument"]["Statement"]);
    assert!(!statements.is_empty(), "the endpoint has a policy");
    let table = only_resource_of(&t, "AWS::DynamoDB::Table");
    for statement in statements {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"));
        for action in actions(statement) {
            assert!(
                action.starts_with("dynamodb:") && !action.contains('*'),
                "{action}"
            );
        }
        for resource in one_or_many(&statement["Resource"]) {
            let sub = match resource {
                Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
                _ => resource["Fn::Sub"].as_str(),
            };
            let named = get_att(resource).or_else(|| sub.map(str::to_owned));
            let named =
                named.unwrap_or_else(|| panic!("a resource of this template: {resource:?}"));
            assert!(
                named == format!("{table}.Arn")
                    || named.starts_with(&format!("${{{table}.Arn}}/index/")),
                "{named}"
            );
        }
    }
}

#[test]
fn idempotency_records_expire_by_ttl_and_outlive_any_request() {
    let t = template();
    let table = &resources(&t)[only_resource_of(&t, "AWS::DynamoDB::Table").as_str()]["Properties"];
    let ttl = &table["TimeToLiveSpecification"];
    assert_eq!(
        ttl["AttributeName"].as_str(),
        Some(shared::store::schema::TTL_ATTRIBUTE)
    );
    assert_eq!(ttl["Enabled"].as_bool(), Some(true));
    // A claim must outlast the longest request, or a slow first request could be run again
    // by a repeat while it still runs.
    for function in api_functions(&t) {
        let timeout = function_setting(&t, &function, "Timeout")
            .as_u64()
            .expect("a Timeout");
        assert!(
            timeout < shared::store::CLAIM_LEASE.as_secs(),
            "{function} runs up to {timeout} s"
        );
    }
    assert!(
        30 < shared::store::CLAIM_LEASE.as_secs(),
        "API Gateway's integration limit is 30 s"
    );
}

#[test]
fn the_login_limits_are_parameters_with_the_contracts_defaults() {
    let t = raw_template();
    let defaults = shared::config::Config::from_lookup(|_| None)
        .expect("defaults")
        .login_limits;
    let env = environment(&t, "UsersFunction");
    for (variable, parameter, default) in [
        (
            "LOGIN_MAX_FAILURES_PER_PAIR",
            "LoginMaxFailuresPerPair",
            u64::from(defaults.per_pair),
        ),
        (
            "LOGIN_MAX_FAILURES_PER_IP",
            "LoginMaxFailuresPerIp",
            u64::from(defaults.per_ip),
        ),
        (
            "LOGIN_FAILURE_WINDOW_SECONDS",
            "LoginFailureWindowSeconds",
            defaults.window.as_secs(),
        ),
    ] {
        assert_eq!(ref_name(&env[variable]), Some(parameter), "{variable}");
        assert_eq!(
            t["Parameters"][parameter]["Default"].as_u64(),
            Some(default),
            "{parameter}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Compute: on demand or Lambda Managed Instances.
// ---------------------------------------------------------------------------------------

/// The API functions as `template.yaml` names them, with their Managed Instances twins.
const TWINS: [(&str, &str); 4] = [
    ("UsersFunction", "UsersManagedFunction"),
    ("PostsFunction", "PostsManagedFunction"),
    ("CommentsFunction", "CommentsManagedFunction"),
    ("HttpApi", "ManagedHttpApi"),
];

/// The settings in which a function's twin may differ from it: the compute, nothing else.
const COMPUTE_SETTINGS: [&str; 4] = [
    "VpcConfig",
    "CapacityProviderConfig",
    "MemorySize",
    "AutoPublishAlias",
];

#[test]
fn every_check_holds_on_managed_instances_too() {
    COMPUTE.with(|c| c.set(Compute::ManagedInstances));
    every_contract_route_reaches_the_function_that_serves_it();
    every_deployment_variable_is_set_for_every_function();
    cache_sync_gets_the_cache_and_table_variables_and_nothing_else();
    functions_are_built_by_cargo_lambda_for_arm64();
    every_function_runs_in_the_private_subnets();
    every_function_logs_json_to_its_own_log_group_with_retention();
    cache_sync_is_small_and_short_lived();
    the_table_stream_reaches_cache_sync_with_bounded_retries_and_a_failure_queue();
    cache_sync_may_read_the_stream_user_items_and_the_cache_secret_and_nothing_else();
    outputs_name_the_cache_sync_function_and_its_failure_queue();
    the_sam_local_env_file_points_every_function_at_the_local_stack();
    each_api_function_reaches_only_the_items_it_uses();
    the_dynamodb_endpoint_reaches_this_table_only();
    idempotency_records_expire_by_ttl_and_outlive_any_request();
    operators_set_log_levels_see_traces_and_metrics_and_get_paged();
    every_alarm_is_within_cloudwatchs_metric_math_limits();
    every_user_group_has_a_default_user_and_with_iam_it_can_do_nothing();
    let t = template();
    assert!(
        resources(&t)
            .keys()
            .all(|k| k.as_str().is_none_or(|k| twin_of(k).is_none())),
        "twins renamed"
    );
}

#[test]
fn each_managed_instances_twin_is_its_function_but_for_the_compute() {
    let t = raw_template();
    for (function, twin) in TWINS {
        let (a, b) = (&resources(&t)[function], &resources(&t)[twin]);
        assert_eq!(a["Condition"].as_str(), Some(ON_DEMAND), "{function}");
        assert_eq!(b["Condition"].as_str(), Some(ON_MANAGED), "{twin}");
        assert_eq!(a["Type"], b["Type"], "{twin}");
        assert_eq!(
            a["Metadata"], b["Metadata"],
            "{twin} builds the same binary"
        );
        let without_compute = |r: &Value| {
            let mut props = r["Properties"].as_mapping().cloned().unwrap_or_default();
            COMPUTE_SETTINGS.iter().for_each(|k| drop(props.remove(*k)));
            let mut props = Value::Mapping(props);
            rename_refs(&mut props);
            props
        };
        assert_eq!(
            without_compute(a),
            without_compute(b),
            "{twin} differs from {function} beyond its compute"
        );
    }
}

#[test]
fn managed_instances_run_on_graviton_in_the_private_subnets_within_the_scaling_limits() {
    // As written, with the compute chosen: which parameter each setting names.
    let t = resolved(&raw_template(), Compute::ManagedInstances);
    let provider = only_resource_of(&t, "AWS::Serverless::CapacityProvider");
    let props = &resources(&t)[provider.as_str()]["Properties"];
    assert_eq!(
        props["InstanceRequirements"]["Architectures"],
        Value::from(vec!["arm64"]),
        "Graviton"
    );
    assert_eq!(
        ref_name(&props["ScalingConfig"]["MaxVCpuCount"]),
        Some("ManagedInstancesMaxVCpus")
    );
    assert_eq!(
        ref_name(&props["ScalingConfig"]["AverageCPUUtilization"]),
        Some("ManagedInstancesTargetCpuUtilization")
    );
    for id in api_functions(&t) {
        let function = &resources(&t)[id.as_str()]["Properties"];
        let config = &function["CapacityProviderConfig"];
        assert_eq!(
            ref_in_sub(&config["Arn"]).as_deref(),
            Some(provider.as_str()),
            "{id}"
        );
        assert_eq!(
            ref_name(&config["PerExecutionEnvironmentMaxConcurrency"]),
            Some("PerEnvironmentConcurrency"),
            "{id}"
        );
        assert_eq!(
            ref_name(&config["ExecutionEnvironmentMemoryGiBPerVCpu"]),
            Some("ManagedInstancesMemoryGiBPerVCpu")
        );
        assert_eq!(
            ref_name(&function["MemorySize"]),
            Some("ManagedInstancesMemorySize"),
            "{id}"
        );
        assert!(
            function["VpcConfig"].is_null(),
            "{id}: the network is the capacity provider's"
        );
        assert_eq!(
            function["AutoPublishAlias"].as_str(),
            Some("live"),
            "{id}: Managed Instances run versions"
        );
    }
    assert!(
        resources(&t)[CACHE_SYNC]["Properties"]["CapacityProviderConfig"].is_null(),
        "cache-sync stays on demand"
    );
    let parameters = &t["Parameters"];
    assert_eq!(
        parameters["ComputeType"]["Default"].as_str(),
        Some("OnDemand")
    );
    assert_eq!(
        parameters["ManagedInstancesMemorySize"]["MinValue"].as_u64(),
        Some(2048)
    );
    let concurrency = &parameters["PerEnvironmentConcurrency"];
    assert!(
        concurrency["MaxValue"].as_u64().is_some_and(|m| m <= 1600),
        "Lambda's limit"
    );

    // On demand: no capacity provider, and each function in the private subnets itself.
    let t = resolved(&raw_template(), Compute::OnDemand);
    assert!(resources(&t)
        .values()
        .all(|r| r["Type"].as_str() != Some("AWS::Serverless::CapacityProvider")));
    for id in api_functions(&t) {
        assert!(
            resources(&t)[id.as_str()]["Properties"]["CapacityProviderConfig"].is_null(),
            "{id}"
        );
    }
}

#[test]
fn operators_set_log_levels_see_traces_and_metrics_and_get_paged() {
    // As written: which parameter each setting names.
    let t = raw_template();
    for id in functions(&t) {
        let logging = function_setting(&t, &id, "LoggingConfig");
        assert_eq!(
            ref_name(&logging["ApplicationLogLevel"]),
            Some("ApplicationLogLevel"),
            "{id}"
        );
        assert_eq!(
            ref_name(&logging["SystemLogLevel"]),
            Some("SystemLogLevel"),
            "{id}"
        );
        assert_eq!(
            function_setting(&t, &id, "Tracing").as_str(),
            Some("Active"),
            "{id}: X-Ray"
        );
        let namespace = &environment(&t, &id)[shared::config::METRICS_NAMESPACE_VARIABLE];
        assert_eq!(
            ref_name(namespace),
            Some("AWS::StackName"),
            "{id}: metrics in the stack's namespace"
        );
        assert!(
            environment(&t, &id).get("RUST_LOG").is_none(),
            "{id}: RUST_LOG would override the logging controls"
        );
    }
    // No application level above INFO: Lambda reads the level-less metric lines as INFO.
    let levels: Vec<&str> = one_or_many(&t["Parameters"]["ApplicationLogLevel"]["AllowedValues"])
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(levels, ["TRACE", "DEBUG", "INFO"]);

    let of_type = |kind: &str| -> Vec<&Value> {
        resources(&t)
            .values()
            .filter(|r| r["Type"].as_str() == Some(kind))
            .collect()
    };
    assert_eq!(
        of_type("AWS::CloudWatch::Dashboard").len(),
        1,
        "one dashboard"
    );
    let alarms = of_type("AWS::CloudWatch::Alarm");
    assert!(
        alarms.len() >= 6,
        "5xx, cache errors, hit ratio, iterator age, failure queue, throttles"
    );
    for alarm in alarms {
        for actions in ["AlarmActions", "OKActions"] {
            let action = &alarm["Properties"][actions];
            let chosen = match action {
                Value::Tagged(t) if t.tag == "If" => t.value[0].as_str(),
                _ => None,
            };
            assert_eq!(
                chosen,
                Some("HasAlarmTopic"),
                "{actions} go to the optional topic: {action:?}"
            );
        }
    }
}

/// The dashboard's metric rows, widget by widget, as CloudWatch reads them (`"."` repeats the
/// cell above, `"..."` every value of the row above but those the row gives itself), with its
/// `!Sub` variables filled in: a variable that is a `!Ref` becomes the resource's logical id,
/// `${LogicalId}` the id itself, anything else `[]`.
fn dashboard_widgets(t: &Value) -> Vec<(String, Vec<Vec<serde_json::Value>>)> {
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

/// The dashboard shows what its panels' titles say: every series is drawn unless another one
/// of its panel computes from it (the hit ratio's parts), and every function's Lambda
/// `Duration` is there at p50 and p99, cache-sync's included, on both computes.
#[test]
fn the_dashboard_draws_every_series_it_names_and_every_functions_duration() {
    for compute in [Compute::OnDemand, Compute::ManagedInstances] {
        let t = resolved(&raw_template(), compute);
        let widgets = dashboard_widgets(&t);
        let mut durations: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (title, rows) in &widgets {
            let expressions: Vec<&str> = rows
                .iter()
                .filter_map(|r| r.first()?.get("expression")?.as_str())
                .collect();
            for row in rows {
                let options = row
                    .iter()
                    .find(|c| c.is_object())
                    .cloned()
                    .unwrap_or_default();
                if options["visible"] == serde_json::Value::Bool(false) {
                    let id = options["id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{title}: a hidden series with no id: {row:?}"));
                    let used = expressions.iter().any(|e| {
                        e.split(|c: char| !c.is_alphanumeric())
                            .any(|word| word == id)
                    });
                    assert!(used, "{title}: series {id} is hidden and nothing in its panel uses it ({compute:?})");
                }
                let cells: Vec<&str> = row.iter().filter_map(serde_json::Value::as_str).collect();
                if let ["AWS/Lambda", "Duration", "FunctionName", function] = cells.as_slice() {
                    let stat = options["stat"].as_str().unwrap_or_default().to_owned();
                    durations
                        .entry(function.to_string())
                        .or_default()
                        .insert(stat);
                }
            }
        }
        for function in functions(&t) {
            let stats = durations.get(&function).cloned().unwrap_or_default();
            assert!(
                stats.contains("p50") && stats.contains("p99"),
                "{function}'s Lambda Duration at p50 and p99 on the dashboard ({compute:?}): {stats:?} of {durations:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Deploy-time rules: what AWS refuses on `sam deploy`, or lets deploy blind, and no linter
// checks. Each test cites the rule's page (template.yaml cites it beside the resource too).
// ---------------------------------------------------------------------------------------

/// The security groups an ingress rule of `group` admits `port` (TCP) from: its own
/// `SecurityGroupIngress` and every `AWS::EC2::SecurityGroupIngress` resource on it, by the
/// logical id of the source group.
fn ingress_sources(t: &Value, group: &str, port: u64) -> BTreeSet<String> {
    let covers = |rule: &Value| {
        let protocol = rule["IpProtocol"].as_str().unwrap_or_default();
        let (from, to) = (rule["FromPort"].as_u64(), rule["ToPort"].as_u64());
        protocol == "-1"
            || (protocol == "tcp"
                && from.is_some_and(|f| f <= port)
                && to.is_some_and(|t| port <= t))
    };
    let source = |rule: &Value| {
        let v = &rule["SourceSecurityGroupId"];
        ref_name(v)
            .map(str::to_owned)
            .or_else(|| get_att(v).map(|a| a.split('.').next().unwrap_or_default().to_owned()))
    };
    let own = one_or_many(&resources(t)[group]["Properties"]["SecurityGroupIngress"]);
    let separate = resources(t)
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::EC2::SecurityGroupIngress"))
        .map(|r| &r["Properties"])
        .filter(|p| {
            let g = &p["GroupId"];
            ref_name(g) == Some(group) || get_att(g) == Some(format!("{group}.GroupId"))
        });
    own.into_iter()
        .chain(separate)
        .filter(|rule| covers(rule))
        .filter_map(source)
        .collect()
}

/// Whether `group` lets TCP `port` out to anywhere (`0.0.0.0/0`) or to one of `to`.
fn egress_allows(t: &Value, group: &str, port: u64, to: &BTreeSet<String>) -> bool {
    let props = &resources(t)[group]["Properties"];
    // A group that declares no egress keeps the default allow-all rule.
    if props["SecurityGroupEgress"].is_null() {
        return true;
    }
    let separate = resources(t)
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::EC2::SecurityGroupEgress"))
        .map(|r| &r["Properties"])
        .filter(|p| get_att(&p["GroupId"]) == Some(format!("{group}.GroupId")));
    one_or_many(&props["SecurityGroupEgress"])
        .into_iter()
        .chain(separate)
        .any(|rule| {
            let protocol = rule["IpProtocol"].as_str().unwrap_or_default();
            let port_ok = protocol == "-1"
                || (protocol == "tcp"
                    && rule["FromPort"].as_u64().is_some_and(|f| f <= port)
                    && rule["ToPort"].as_u64().is_some_and(|t| port <= t));
            let dest = &rule["DestinationSecurityGroupId"];
            let dest = get_att(dest)
                .map(|a| a.split('.').next().unwrap_or_default().to_owned())
                .or_else(|| ref_name(dest).map(str::to_owned));
            port_ok
                && (rule["CidrIp"].as_str() == Some("0.0.0.0/0")
                    || dest.is_some_and(|d| to.contains(&d)))
        })
}

/// The interface endpoints for AWS service `service` (`com.amazonaws.${AWS::Region}.<service>`)
/// that a machine in every one of `subnets`, with `groups`, reaches: private DNS on (so the
/// SDK's default endpoint resolves to it), an interface in each subnet, and a security group
/// that admits 443 from one of `groups`, which let 443 out.
fn reachable_endpoints(
    t: &Value,
    service: &str,
    subnets: &BTreeSet<String>,
    groups: &BTreeSet<String>,
) -> Vec<String> {
    let wanted = format!("com.amazonaws.${{AWS::Region}}.{service}");
    resources_of(t, "AWS::EC2::VPCEndpoint")
        .into_iter()
        .filter(|(_, r)| {
            let p = &r["Properties"];
            let name = match &p["ServiceName"] {
                Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
                other => other.as_str(),
            };
            if name != Some(wanted.as_str()) || p["VpcEndpointType"].as_str() != Some("Interface") {
                return false;
            }
            let in_subnets: BTreeSet<String> = one_or_many(&p["SubnetIds"])
                .into_iter()
                .filter_map(ref_name)
                .map(str::to_owned)
                .collect();
            let endpoint_groups: BTreeSet<String> = one_or_many(&p["SecurityGroupIds"])
                .into_iter()
                .filter_map(|g| {
                    ref_name(g).map(str::to_owned).or_else(|| {
                        get_att(g).map(|a| a.split('.').next().unwrap_or_default().to_owned())
                    })
                })
                .collect();
            let admitted = endpoint_groups.iter().any(|eg| {
                !ingress_sources(t, eg, 443).is_disjoint(groups)
                    && groups
                        .iter()
                        .all(|g| egress_allows(t, g, 443, &endpoint_groups))
            });
            p["PrivateDnsEnabled"].as_bool() == Some(true)
                && subnets.is_subset(&in_subnets)
                && admitted
        })
        .map(|(id, _)| id.to_owned())
        .collect()
}

/// Whether every one of `subnets` routes `0.0.0.0/0` to a NAT gateway (the other way out
/// of a private subnet).
fn nat_route_for(t: &Value, subnets: &BTreeSet<String>) -> bool {
    let nat_tables: BTreeSet<&str> = resources_of(t, "AWS::EC2::Route")
        .into_iter()
        .filter(|(_, r)| {
            r["Properties"]["DestinationCidrBlock"].as_str() == Some("0.0.0.0/0")
                && !r["Properties"]["NatGatewayId"].is_null()
        })
        .filter_map(|(_, r)| ref_name(&r["Properties"]["RouteTableId"]))
        .collect();
    subnets.iter().all(|subnet| {
        resources_of(t, "AWS::EC2::SubnetRouteTableAssociation")
            .into_iter()
            .any(|(_, a)| {
                ref_name(&a["Properties"]["SubnetId"]) == Some(subnet.as_str())
                    && ref_name(&a["Properties"]["RouteTableId"])
                        .is_some_and(|rt| nat_tables.contains(rt))
            })
    })
}

/// Where the functions' code runs, as `(subnets, security groups)` by logical id: each
/// function's own `VpcConfig` on demand, the capacity provider's on Managed Instances.
fn function_networks(t: &Value) -> Vec<(String, BTreeSet<String>, BTreeSet<String>)> {
    functions(t)
        .into_iter()
        .map(|id| {
            let provider = ref_in_sub(
                &resources(t)[id.as_str()]["Properties"]["CapacityProviderConfig"]["Arn"],
            );
            let vpc = match &provider {
                Some(p) => &resources(t)[p.as_str()]["Properties"]["VpcConfig"],
                None => function_setting(t, &id, "VpcConfig"),
            };
            let ids = |key: &str| -> BTreeSet<String> {
                one_or_many(&vpc[key])
                    .into_iter()
                    .filter_map(ref_name)
                    .map(str::to_owned)
                    .collect()
            };
            (id, ids("SubnetIds"), ids("SecurityGroupIds"))
        })
        .collect()
}

/// On Managed Instances the functions run on EC2 instances in the private subnets, and their
/// logs (and the EMF metrics in them, which the dashboard and the alarms read) and X-Ray traces
/// leave through the VPC, which has no internet gateway: CloudWatch Logs and X-Ray need an
/// interface endpoint each (or a NAT route), reachable from the instances' security group. On
/// demand Lambda carries both outside the VPC, so neither endpoint is paid for there. Secrets
/// Manager, read at init, needs its endpoint on both computes.
#[test]
fn the_functions_reach_logs_traces_and_secrets_from_the_vpc_on_both_computes() {
    for compute in [Compute::OnDemand, Compute::ManagedInstances] {
        COMPUTE.with(|c| c.set(compute));
        for (kind, auth) in COMBINATIONS {
            let t = deployed(kind, auth);
            let what = format!("{compute:?} {kind}/{auth}");
            for (id, subnets, groups) in function_networks(&t) {
                assert!(!subnets.is_empty(), "{what}: {id} runs in the VPC");
                let managed =
                    !resources(&t)[id.as_str()]["Properties"]["CapacityProviderConfig"].is_null();
                let traced = function_setting(&t, &id, "Tracing").as_str() == Some("Active");
                let mut services = vec!["secretsmanager"];
                if managed {
                    services.push("logs");
                    if traced {
                        services.push("xray");
                    }
                }
                for service in services {
                    let found = reachable_endpoints(&t, service, &subnets, &groups);
                    assert!(
                        !found.is_empty()
                            || (service != "secretsmanager" && nat_route_for(&t, &subnets)),
                        "{what}: {id} runs in {subnets:?} with {groups:?} and has no way to \
                         {service}: no interface endpoint with private DNS in those subnets that \
                         admits 443 from those groups, and no NAT route"
                    );
                }
            }
            if compute == Compute::OnDemand {
                for service in ["logs", "xray"] {
                    let paid: Vec<&str> = resources_of(&t, "AWS::EC2::VPCEndpoint")
                        .into_iter()
                        .filter(|(_, r)| {
                            let name = match &r["Properties"]["ServiceName"] {
                                Value::Tagged(tagged) => tagged.value.as_str(),
                                other => other.as_str(),
                            };
                            name.is_some_and(|n| n.ends_with(&format!(".{service}")))
                        })
                        .map(|(id, _)| id)
                        .collect();
                    assert!(
                        paid.is_empty(),
                        "{what}: on demand Lambda delivers {service} itself; {paid:?} would \
                         cost ~$15 a month for nothing"
                    );
                }
            }
        }
    }
}

/// "Alarms based on metric math expressions can reference a maximum of 10 metrics. This is a
/// hard limit" (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-limits.html),
/// and PutMetricAlarm takes at most 10 `MetricStat` and 10 `Expression` entries, exactly one of
/// them returning data: an alarm past that fails `sam deploy`.
#[test]
fn every_alarm_is_within_cloudwatchs_metric_math_limits() {
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        for (id, alarm) in resources_of(&t, "AWS::CloudWatch::Alarm") {
            let entries = one_or_many(&alarm["Properties"]["Metrics"]);
            if entries.is_empty() {
                continue;
            }
            let stats = entries
                .iter()
                .filter(|e| !e["MetricStat"].is_null())
                .count();
            let expressions = entries
                .iter()
                .filter(|e| !e["Expression"].is_null())
                .count();
            assert!(
                stats <= 10,
                "{kind}/{auth}: {id} reads {stats} metrics; CloudWatch takes at most 10"
            );
            assert!(
                expressions <= 10,
                "{kind}/{auth}: {id} has {expressions} expressions; CloudWatch takes at most 10"
            );
            assert_eq!(
                stats + expressions,
                entries.len(),
                "{id}: each entry is one or the other"
            );
            let returned = entries
                .iter()
                .filter(|e| e["ReturnData"].as_bool() == Some(true))
                .count();
            assert_eq!(
                returned, 1,
                "{kind}/{auth}: {id}: one entry is the alarm's value"
            );
            // Every id an expression names is an entry of the alarm.
            let ids: BTreeSet<&str> = entries.iter().filter_map(|e| e["Id"].as_str()).collect();
            for entry in &entries {
                if let Some(expression) = entry["Expression"].as_str() {
                    for word in expression
                        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                        .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase()))
                    {
                        assert!(
                            ids.contains(word),
                            "{id}: `{expression}` names {word}, which is no entry"
                        );
                    }
                }
            }
        }
    }
}

/// "UserIds: The list of user IDs that belong to the user group. A user named default must be
/// included." (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-elasticache-usergroup.html;
/// CreateUserGroup answers DefaultUserRequired). A Valkey user group admits only users that
/// authenticate with a password or IAM (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/Clusters.RBAC.html).
/// With a token, `default` is the token's user; with IAM, one that can do nothing, so the
/// functions' IAM user stays the only way in.
#[test]
fn every_user_group_has_a_default_user_and_with_iam_it_can_do_nothing() {
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        let what = format!("{kind}/{auth}");
        for (group, resource) in resources_of(&t, "AWS::ElastiCache::UserGroup") {
            let engine = resource["Properties"]["Engine"].as_str();
            let members: Vec<&str> = one_or_many(&resource["Properties"]["UserIds"])
                .into_iter()
                .map(|m| ref_name(m).expect("a user of this template"))
                .collect();
            let user = |id: &str| &resources(&t)[id]["Properties"];
            if engine == Some("valkey") {
                for id in &members {
                    let mode = user(id)["AuthenticationMode"]["Type"].as_str();
                    assert!(
                        matches!(mode, Some("password" | "iam")),
                        "{what}: {id} ({mode:?}) cannot be in the Valkey group {group}"
                    );
                }
            }
            let defaults: Vec<&str> = members
                .iter()
                .copied()
                .filter(|id| user(id)["UserName"].as_str() == Some("default"))
                .collect();
            assert_eq!(
                defaults.len(),
                1,
                "{what}: {group} needs exactly one user named default (DefaultUserRequired); \
                 it has {members:?}"
            );
            if auth == "iam" {
                let access = user(defaults[0])["AccessString"]
                    .as_str()
                    .expect("an access string");
                let rules: Vec<&str> = access.split_whitespace().collect();
                assert!(
                    rules.contains(&"off") && !rules.contains(&"on"),
                    "{what}: the default user must be off: {access}"
                );
                assert!(
                    rules.contains(&"-@all")
                        && rules
                            .iter()
                            .all(|r| !r.starts_with(['+', '~', '%', '&']) && !r.starts_with("all")),
                    "{what}: the default user may run no command on no key: {access}"
                );
                assert!(
                    one_or_many(&user(defaults[0])["AuthenticationMode"]["Passwords"])
                        .iter()
                        .all(|p| {
                            let mut ids = BTreeSet::new();
                            referenced_ids(p, &mut ids);
                            !ids.contains("CacheAuthSecret")
                        }),
                    "{what}: no cache secret with IAM"
                );
            }
        }
    }
}
