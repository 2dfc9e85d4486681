//! `template.yaml` decided for one choice of its parameters, as CloudFormation would deploy it:
//! conditions evaluated (`Fn::Equals`, `Not`, `And`, `Or`, `Condition`), `Fn::If` resolved,
//! `Ref`s to parameters replaced by their values, `AWS::NoValue` dropped, resources and outputs
//! of false conditions gone, and each Managed Instances twin under the name of the resource it
//! replaces ([`deployed`]); or, with only the compute chosen, as written ([`resolved`]).

use std::cell::Cell;
use std::collections::BTreeMap;

use serde_yaml::Value;

use super::read::one_or_many;

const TEMPLATE: &str = include_str!("../../../../template.yaml");

/// Where the API functions run (the `ComputeType` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Compute {
    OnDemand,
    ManagedInstances,
}

thread_local! {
    /// The compute [`template`] resolves for, on this test's thread.
    pub(super) static COMPUTE: Cell<Compute> = const { Cell::new(Compute::OnDemand) };
}

/// The template as written.
pub(super) fn raw_template() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("template.yaml parses")
}

/// The template as deployed with its parameters' defaults, on this thread's [`COMPUTE`].
pub(super) fn template() -> Value {
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
pub(super) const COMBINATIONS: [(&str, &str); 4] = [
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
pub(super) fn deployed(kind: &str, auth: &str) -> Value {
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
pub(super) fn intrinsic(v: &Value) -> Option<(String, &Value)> {
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
pub(super) const ON_MANAGED: &str = "OnManagedInstances";

pub(super) const ON_DEMAND: &str = "OnDemand";

/// `t` with `ComputeType` = `compute`: the other compute's resources dropped, each `!If
/// [OnManagedInstances, a, b]` replaced by its branch, `!Ref AWS::NoValue` values removed, and
/// the Managed Instances twins (`UsersManagedFunction`, `ManagedHttpApi`) under the names of the
/// resources they replace, so every check reads both computes alike.
pub(super) fn resolved(t: &Value, compute: Compute) -> Value {
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
pub(super) fn twin_of(name: &str) -> Option<&str> {
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
pub(super) fn rename_refs(v: &mut Value) {
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
