//! `template.yaml` checked against the code: routes, environment, table and index.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

const TEMPLATE: &str = include_str!("../../../template.yaml");

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

fn template() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("template.yaml parses")
}

fn resources(t: &Value) -> &serde_yaml::Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

/// `(method, path) -> function logical id` for every HttpApi event.
fn wired_routes(t: &Value) -> BTreeMap<(String, String), String> {
    let mut routes = BTreeMap::new();
    for (name, resource) in resources(t) {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(events) = resource["Properties"]["Events"].as_mapping() else { continue };
        for event in events.values() {
            if event["Type"].as_str() == Some("HttpApi") {
                let method = event["Properties"]["Method"].as_str().expect("Method").to_uppercase();
                let path = event["Properties"]["Path"].as_str().expect("Path").to_owned();
                let previous = routes.insert((method.clone(), path.clone()), name.as_str().expect("name").to_owned());
                assert!(previous.is_none(), "{method} {path} is wired twice");
            }
        }
    }
    routes
}

fn function_id(function: &str) -> String {
    let mut chars = function.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or_default();
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
        assert_eq!(wired.get(&("ANY".to_owned(), path.to_string())), Some(&expected), "ANY {path}");
    }
    assert_eq!(wired.get(&("ANY".to_owned(), "$default".to_owned())).map(String::as_str), Some("UsersFunction"));
}

#[test]
fn contract_routes_match_api_md() {
    // The contract lives beside the repository; check our copy of its routes when it is there.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/API.md");
    let Ok(api) = std::fs::read_to_string(path) else { return };
    let mut documented = BTreeSet::new();
    for line in api.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('`').nth(1).unwrap_or_default();
        let Some((methods, route)) = cell.split_once(' ') else { continue };
        if !route.starts_with('/') {
            continue;
        }
        let route = route.split('?').next().unwrap_or(route);
        for method in methods.split('|') {
            documented.insert((method.to_owned(), route.to_owned()));
        }
    }
    let ours: BTreeSet<(String, String)> =
        CONTRACT_ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, ours);
}

#[test]
fn every_deployment_variable_is_set_for_every_function() {
    let t = template();
    let globals = t["Globals"]["Function"]["Environment"]["Variables"].as_mapping().cloned().unwrap_or_default();
    for (name, resource) in resources(&t) {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let mut vars = globals.clone();
        if let Some(own) = resource["Properties"]["Environment"]["Variables"].as_mapping() {
            vars.extend(own.clone());
        }
        for var in shared::config::DEPLOYMENT_VARIABLES {
            assert!(vars.contains_key(*var), "{name:?} lacks {var}");
        }
        assert!(!vars.contains_key("JWT_SECRET"), "the secret itself must not be in the environment");
    }
}

#[test]
fn the_table_has_the_keys_and_index_the_code_uses() {
    let t = template();
    let tables: Vec<&Value> =
        resources(&t).values().filter(|r| r["Type"].as_str() == Some("AWS::DynamoDB::Table")).collect();
    assert_eq!(tables.len(), 1, "one table (single-table design)");
    let props = &tables[0]["Properties"];
    let attr_names: BTreeSet<&str> = props["AttributeDefinitions"]
        .as_sequence()
        .expect("AttributeDefinitions")
        .iter()
        .filter_map(|a| a["AttributeName"].as_str())
        .collect();
    assert_eq!(attr_names, shared::store::schema::KEY_ATTRIBUTES.into_iter().collect());
    let key = |schema: &Value| -> Vec<(String, String)> {
        schema
            .as_sequence()
            .expect("KeySchema")
            .iter()
            .map(|k| {
                (k["AttributeName"].as_str().unwrap_or("").to_owned(), k["KeyType"].as_str().unwrap_or("").to_owned())
            })
            .collect()
    };
    assert_eq!(key(&props["KeySchema"]), vec![("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]);
    let index = props["GlobalSecondaryIndexes"]
        .as_sequence()
        .expect("GlobalSecondaryIndexes")
        .iter()
        .find(|i| i["IndexName"].as_str() == Some(shared::store::FEED_INDEX))
        .expect("the feed index");
    assert_eq!(key(&index["KeySchema"]), vec![("gsi1pk".into(), "HASH".into()), ("gsi1sk".into(), "RANGE".into())]);
    assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
}

#[test]
fn functions_are_built_by_cargo_lambda_for_arm64() {
    let t = template();
    for function in ["users", "posts", "comments"] {
        let resource = &resources(&t)[function_id(function).as_str()];
        assert_eq!(resource["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"));
        assert_eq!(resource["Metadata"]["BuildProperties"]["Binary"].as_str(), Some(function));
        let arch = resource["Properties"]["Architectures"]
            .as_sequence()
            .cloned()
            .unwrap_or_else(|| t["Globals"]["Function"]["Architectures"].as_sequence().cloned().unwrap_or_default());
        assert_eq!(arch, vec![Value::from("arm64")], "{function}");
    }
}
