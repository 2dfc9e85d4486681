//! `template.yaml` checked against the code: routes, environment, table and index, the cache
//! sync (the table's stream, its mapping to `CacheSyncFunction`, that function's environment
//! and permissions), the cache for every choice of its kind (`node`, `serverless`) and
//! authentication (`token`, `iam`), and both computes (`ComputeType`: on demand, Lambda Managed
//! Instances). Each choice is the template as CloudFormation would deploy it ([`deployed`]:
//! conditions decided, `Fn::If` resolved, `AWS::NoValue` dropped, resources of false conditions
//! gone, a Managed Instances twin under the name of the function it replaces), and what it gives
//! each function must configure the code as intended.
//!
//! This file holds the tests, and the facts about the code they hold the template to;
//! `eval.rs` decides the template for a choice of parameters, `read.rs` reads what it
//! declares, `iam.rs` what its roles allow and `network.rs` what its network lets through, and
//! `recorder.rs` records the requests the code really sends.

mod eval;
mod iam;
mod network;
mod read;
mod recorder;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use eval::*;
use iam::*;
use network::*;
use read::*;
use recorder::*;

/// The `--env-vars` file for `sam local invoke` / `start-api` against `scripts/dev`'s stack.
const SAM_LOCAL_ENV: &str = include_str!("../../../../events/sam-local-env.json");

/// `scripts/dev`, whose defaults (ports, dev JWT secret) the SAM env file must match.
const DEV_SCRIPT: &str = include_str!("../../../../scripts/dev");

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

/// The function applying the table's stream to the cache.
const CACHE_SYNC: &str = "CacheSyncFunction";

/// The function keeping the table from its stream (comment counts, removals, sweeps).
const UPKEEP: &str = "UpkeepFunction";

/// The functions fed by the table's stream, each through a mapping of its own.
const STREAM_CONSUMERS: [&str; 2] = [CACHE_SYNC, UPKEEP];

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
        // Every function is an API function or a stream consumer (cache-sync, upkeep), whose
        // environment is checked below.
        let mut expected = api.clone();
        expected.extend(STREAM_CONSUMERS.map(String::from));
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

/// `cache-sync` and `upkeep` read the table and the cache (`upkeep` writes a post's new count
/// to it), and nothing only the API reads: the same variables (`SYNC_DEPLOYMENT_VARIABLES`),
/// never the JWT key.
#[test]
fn stream_consumers_get_the_cache_and_table_variables_and_nothing_else() {
    use shared::config::{
        auth_variables, DEPLOYMENT_VARIABLES, OPTIONAL_VARIABLES, SYNC_DEPLOYMENT_VARIABLES,
    };
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        for function in STREAM_CONSUMERS {
            let vars = rendered_environment(&t, function);
            let auth_vars = auth_variables(auth);
            for var in SYNC_DEPLOYMENT_VARIABLES.iter().chain(auth_vars) {
                assert!(
                    vars.contains_key(*var),
                    "{kind}/{auth}: {function} lacks {var}"
                );
            }
            // Not the JWT key, in any form; nor anything else only the API reads.
            let api_only = DEPLOYMENT_VARIABLES
                .iter()
                .filter(|v| !SYNC_DEPLOYMENT_VARIABLES.contains(v));
            for var in ["JWT_SECRET_ARN", "JWT_SECRET"].iter().chain(api_only) {
                assert!(!vars.contains_key(*var), "{function} must not get {var}");
            }
            // Whatever else it gets is a variable it may read: config.rs's unit tests check
            // that its configuration reads exactly these lists.
            for var in vars.keys() {
                let var = var.as_str();
                let known = SYNC_DEPLOYMENT_VARIABLES.contains(&var)
                    || auth_vars.contains(&var)
                    || OPTIONAL_VARIABLES.contains(&var)
                    || shared::config::PROCESS_VARIABLES.contains(&var);
                assert!(
                    known,
                    "{kind}/{auth}: {function} gets {var}, which it does not read"
                );
            }
            let cache = cache_config_from(&vars);
            assert_eq!(
                (cache.mode, cache.iam.as_ref().map(|i| i.serverless)),
                expected_cache(kind, auth),
                "{kind}/{auth}: {function}"
            );
            shared::config::TableConfig::from_lookup(|n| vars.get(n).cloned())
                .unwrap_or_else(|e| panic!("{kind}/{auth}: {function}: {e}"));
        }
    }
}

/// `LEGACY_LAYOUT` comes from the parameter `LegacyLayout` on every function (each reads the
/// table, so each must agree on whether legacy items remain), defaults to `true` (the table may
/// hold legacy items until the migration has run), and each value the parameter allows is one
/// the code accepts, meaning what it says.
#[test]
fn every_function_reads_the_legacy_layout_from_its_parameter() {
    let raw = raw_template();
    let parameter = &raw["Parameters"]["LegacyLayout"];
    assert_eq!(parameter["Type"].as_str(), Some("String"), "LegacyLayout");
    let allowed: BTreeSet<&str> = one_or_many(&parameter["AllowedValues"])
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(allowed, ["false", "true"].into(), "LegacyLayout's values");
    assert_eq!(
        parameter["Default"].as_str(),
        Some("true"),
        "legacy items remain until the migration has run"
    );
    for id in functions(&raw) {
        assert_eq!(
            ref_name(&environment(&raw, &id)["LEGACY_LAYOUT"]),
            Some("LegacyLayout"),
            "{id}: LEGACY_LAYOUT from the parameter"
        );
    }
    for value in allowed {
        let table = shared::config::TableConfig::from_lookup(|n| {
            (n == "LEGACY_LAYOUT").then(|| value.into())
        })
        .unwrap_or_else(|e| panic!("LEGACY_LAYOUT={value}: {e}"));
        assert_eq!(
            table.legacy_layout,
            value == "true",
            "LEGACY_LAYOUT={value}"
        );
    }
    // As deployed, with the default.
    let t = template();
    for id in functions(&t) {
        let vars = rendered_environment(&t, &id);
        let table = shared::config::TableConfig::from_lookup(|n| vars.get(n).cloned())
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(table.legacy_layout, "{id}: reads legacy items by default");
    }
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

/// The table the code creates where it must create it itself (the local stack, the tests, the
/// benchmarks: `shared::store::schema::create_table`), as DynamoDB (dynoxide) describes it.
async fn table_the_code_creates() -> TableShape {
    let dynamo = integration_tests::Dynamo::start().await;
    let table = dynamo
        .client
        .describe_table()
        .table_name(integration_tests::TABLE_NAME)
        .send()
        .await
        .expect("DescribeTable")
        .table
        .expect("a table");
    let key = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        schema
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    TableShape {
        attributes: table
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect(),
        keys: key(table.key_schema()),
        indexes: table
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                (
                    i.index_name().unwrap_or_default().to_owned(),
                    (
                        key(i.key_schema()),
                        i.projection()
                            .and_then(|p| p.projection_type())
                            .map(|p| p.as_str().to_owned())
                            .unwrap_or_default(),
                    ),
                )
            })
            .collect(),
        stream: table
            .stream_specification()
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned()),
    }
}

/// The table `template.yaml` deploys is the one the code creates for itself (`schema.rs`):
/// the same keys, the same indexes with the same keys and projections (the feed index `feed`
/// keys only, the legacy `gsi1` every attribute), the same stream; and every key attribute the
/// code names (`KEY_ATTRIBUTES`), the indexes the store queries (`FEED_INDEX`,
/// `LEGACY_FEED_INDEX`), on-demand billing.
#[tokio::test]
async fn the_table_has_the_keys_and_index_the_code_uses() {
    let t = template();
    let tables = resources_of(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table (single-table design)");
    let props = &tables[0].1["Properties"];
    let declared = declared_table(&t);
    assert_eq!(
        declared
            .attributes
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        shared::store::schema::KEY_ATTRIBUTES.into_iter().collect(),
        "the key attributes the code names"
    );
    assert_eq!(
        declared.keys,
        vec![("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]
    );
    assert_eq!(
        declared
            .indexes
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        [shared::store::FEED_INDEX, shared::store::LEGACY_FEED_INDEX].into(),
        "the indexes the store queries, and no other"
    );
    assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    let created = table_the_code_creates().await;
    assert_eq!(
        declared, created,
        "template.yaml's table differs from shared::store::schema's"
    );
}

#[test]
fn functions_are_built_by_cargo_lambda_for_arm64() {
    let t = template();
    let builds = ["users", "posts", "comments"].map(|f| (f, function_id(f)));
    for (binary, id) in builds.into_iter().chain([
        ("cache-sync", CACHE_SYNC.to_owned()),
        ("upkeep", UPKEEP.to_owned()),
    ]) {
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

/// A batch may sweep for `SWEEP_BUDGET` and then still save its progress and count: the
/// function's timeout must leave room beyond it (or a timed-out batch would be retried whole,
/// sweeping again from its last save, forever), and a small memory does.
#[test]
fn upkeep_outlives_its_sweep_budget() {
    let t = template();
    let budget = upkeep_fn::SWEEP_BUDGET.as_secs();
    let timeout = function_setting(&t, UPKEEP, "Timeout").as_u64();
    assert!(
        timeout.is_some_and(|s| s >= 3 * budget && s <= 300),
        "{UPKEEP}: a timeout well above the sweep budget ({budget} s) and bounded, got {timeout:?}"
    );
    let memory = function_setting(&t, UPKEEP, "MemorySize").as_u64();
    assert!(
        memory.is_some_and(|m| m <= 256),
        "small memory, got {memory:?}"
    );
}

/// The table's stream carries keys only (issue 23): no IAM condition filters a stream record's
/// attributes, so whatever a record carries, every reader of the stream sees. Its keys are
/// `pk` and `sk` (a user's email and `PROFILE`), never a password hash; and every function
/// that reads the stream is one of the two consumers whose code needs no more.
#[test]
fn the_table_streams_keys_only_so_no_consumer_sees_a_hash() {
    let t = template();
    let table = only_resource_of(&t, "AWS::DynamoDB::Table");
    let properties = &resources(&t)[table.as_str()]["Properties"];
    assert_eq!(
        properties["StreamSpecification"]["StreamViewType"].as_str(),
        Some("KEYS_ONLY"),
        "no image in any record, so no password hash"
    );
    let keys: BTreeSet<&str> = properties["KeySchema"]
        .as_sequence()
        .expect("a key schema")
        .iter()
        .filter_map(|k| k["AttributeName"].as_str())
        .collect();
    assert_eq!(keys, BTreeSet::from(["pk", "sk"]), "what a record carries");
    let readers: BTreeSet<String> = functions(&t)
        .into_iter()
        .filter(|f| !stream_mappings(&t, f).is_empty())
        .collect();
    assert_eq!(
        readers,
        BTreeSet::from([CACHE_SYNC.to_owned(), UPKEEP.to_owned()]),
        "the stream's readers"
    );
}

/// What every stream consumer's mapping must do, whatever the consumer: read the table's
/// stream, take partial batch responses, bisect a failing batch, retry a bounded number of
/// times, and send what it gives up on to an encrypted SQS queue that keeps it 14 days.
/// Returns the mapping's properties and its failure queue's logical id.
fn checked_stream_mapping<'a>(t: &'a Value, function: &str) -> (&'a Value, String) {
    let table = only_resource_of(t, "AWS::DynamoDB::Table");
    let mappings = stream_mappings(t, function);
    assert_eq!(
        mappings.len(),
        1,
        "one mapping into {function}: {:?}",
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
    // Failures go to an encrypted SQS queue that keeps them as long as SQS can.
    let destination = &props["DestinationConfig"]["OnFailure"]["Destination"];
    let queue_id = get_att(destination)
        .and_then(|d| d.strip_suffix(".Arn").map(str::to_owned))
        .unwrap_or_else(|| panic!("{name}: a queue's Arn"));
    let queue = &resources(t)[queue_id.as_str()];
    assert_eq!(
        queue["Type"].as_str(),
        Some("AWS::SQS::Queue"),
        "{name}: failures go to SQS"
    );
    assert_eq!(
        queue["Properties"]["SqsManagedSseEnabled"].as_bool(),
        Some(true),
        "{queue_id}: the failure queue is encrypted"
    );
    assert_eq!(
        queue["Properties"]["MessageRetentionPeriod"].as_u64(),
        Some(14 * 24 * 3600),
        "{queue_id}: 14 days"
    );
    (props, queue_id)
}

#[test]
fn the_table_stream_reaches_cache_sync_with_bounded_retries_and_a_failure_queue() {
    let t = template();
    let (props, _) = checked_stream_mapping(&t, CACHE_SYNC);
    let name = CACHE_SYNC;
    assert_eq!(props["StartingPosition"].as_str(), Some("LATEST"), "{name}");
    assert_eq!(props["BatchSize"].as_u64(), Some(100), "{name}");

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
}

/// The upkeep's own mapping: the same guarantees as cache-sync's, its own failure queue (what
/// it gives up on is another kind of loss: a count, a removal, a sweep), a record age bound
/// that Lambda accepts and that gives up before DynamoDB trims the record (24 h: then it would
/// vanish instead of reaching the queue), and every record from the stream's oldest on, so
/// that comments written before the mapping existed are counted too.
#[test]
fn the_table_stream_reaches_upkeep_with_bounded_retries_and_its_own_failure_queue() {
    let t = template();
    let (props, queue) = checked_stream_mapping(&t, UPKEEP);
    let (_, sync_queue) = checked_stream_mapping(&t, CACHE_SYNC);
    assert_ne!(queue, sync_queue, "{UPKEEP} has a failure queue of its own");
    assert_eq!(
        props["StartingPosition"].as_str(),
        Some("TRIM_HORIZON"),
        "{UPKEEP}"
    );
    let age = props["MaximumRecordAgeInSeconds"].as_i64();
    assert!(
        age.is_some_and(|a| (60..24 * 3600).contains(&a)),
        "{UPKEEP}: a record age bound within Lambda's (60 s at least) and under the stream's \
         24 h, got {age:?}"
    );
    let batch = props["BatchSize"].as_u64();
    assert!(
        batch.is_some_and(|b| (1..=100).contains(&b)),
        "{UPKEEP}: batches of at most 100 (one BatchGetItem), got {batch:?}"
    );
    let window = props["MaximumBatchingWindowInSeconds"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        window, 0,
        "{UPKEEP}: no batching window: counts converge within a second (API.md)"
    );
}

/// "No more than two processes at most should be reading from the same stream's shard at the
/// same time. Having more than two readers per shard can result in throttling."
/// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html): each
/// mapping on the table's stream is one reader of every shard.
#[test]
fn at_most_two_mappings_read_the_table_stream() {
    let t = template();
    let table = only_resource_of(&t, "AWS::DynamoDB::Table");
    let readers: Vec<String> = all_stream_mappings(&t)
        .into_iter()
        .filter(|(_, m)| get_att(m.source) == Some(format!("{table}.StreamArn")))
        .map(|(function, m)| format!("{} -> {function}", m.name))
        .collect();
    assert!(
        readers.len() <= 2,
        "{} readers of the table's stream: {readers:?}",
        readers.len()
    );
}

/// A stream record of an item with these keys, as Lambda's filter sees it.
fn stream_record(keys: &shared::store::keys::Key) -> serde_json::Value {
    let text = |name: &str| match keys.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(value)) => value.clone(),
        other => panic!("{name}: a string key, got {other:?}"),
    };
    let keys = serde_json::json!({"pk": {"S": text("pk")}, "sk": {"S": text("sk")}});
    serde_json::json!({"eventName": "MODIFY", "dynamodb": {"Keys": keys}})
}

/// Whether a record passes the filters of the one mapping into `function` (filters are
/// alternatives; no filter passes everything).
fn passes(t: &Value, function: &str, record: &serde_json::Value) -> bool {
    let mappings = stream_mappings(t, function);
    let filters =
        one_or_many(&mappings.first().expect("a mapping").props["FilterCriteria"]["Filters"]);
    if filters.is_empty() {
        return true;
    }
    filters.iter().any(|filter| {
        let pattern: serde_json::Value =
            serde_json::from_str(filter["Pattern"].as_str().expect("a JSON pattern"))
                .expect("the pattern is JSON");
        filter_matches(&pattern, record)
    })
}

/// One item of every kind the table holds, by its keys as the code builds them
/// (`shared::store::keys`): `(what, keys)`.
fn items_of_every_kind() -> Vec<(&'static str, shared::store::keys::Key)> {
    use shared::store::keys;
    let (post, comment) = ("01JDX7Z6V3W6M0Q0VJ5R8ZK3QF", "01JDX80C9P2N7X4D5E6F7G8H9J");
    let email = shared::domain::Email::parse("ann@example.com").expect("an email");
    // A sweep's progress: the post's partition, sort key SWEEP (keys::SWEEP_SK, not public).
    let mut sweep = keys::post_key(post);
    sweep.insert(
        "sk".into(),
        aws_sdk_dynamodb::types::AttributeValue::S("SWEEP".into()),
    );
    vec![
        ("a user", keys::user_key(&email)),
        ("a post", keys::post_key(post)),
        ("a deleted post's sweep", sweep),
        ("a comment", keys::comment_key(post, comment)),
        ("a legacy comment", keys::legacy_comment_key(post, comment)),
        (
            "an idempotency record",
            keys::idempotency_key("01JDX7Z6V3W6M0Q0VJ5R8ZK3QA", "k-1"),
        ),
    ]
}

/// The keys `pk`, `sk` of `keys`.
fn pk_sk(keys: &shared::store::keys::Key) -> (String, String) {
    let text = |name: &str| match keys.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(value)) => value.clone(),
        _ => String::new(),
    };
    (text("pk"), text("sk"))
}

/// Each consumer's mapping passes the records of every item its code acts on, as the code
/// itself tells them apart, and no record of an item it only skips (each such record would be
/// an invocation for nothing):
/// - `cache-sync`: users (`is_user_key`), posts and comments (`comment_of_key`,
///   `post_of_key`; a sweep's record passes, its key is the post's partition, and the function
///   skips it itself, `is_sweep_key`); never an idempotency record;
/// - `upkeep`: comments, posts and sweeps (`comment_of_key`, `post_of_key`); never a user or an
///   idempotency record.
#[test]
fn each_stream_consumer_gets_the_records_its_code_reads_and_no_others() {
    use shared::store::keys::{comment_of_key, is_sweep_key, post_of_key};
    let t = template();
    for function in STREAM_CONSUMERS {
        let mappings = stream_mappings(&t, function);
        let filters =
            one_or_many(&mappings.first().expect("a mapping").props["FilterCriteria"]["Filters"]);
        assert!(
            !filters.is_empty(),
            "{function}: the mapping filters its records"
        );
    }
    for (what, keys) in items_of_every_kind() {
        let (pk, sk) = pk_sk(&keys);
        let record = stream_record(&keys);
        let item_keys: serde_dynamo::Item = serde_dynamo::Item::from(
            keys.iter()
                .map(|(k, v)| {
                    let v = match v {
                        aws_sdk_dynamodb::types::AttributeValue::S(s) => {
                            serde_dynamo::AttributeValue::S(s.clone())
                        }
                        other => panic!("{other:?}"),
                    };
                    (k.clone(), v)
                })
                .collect::<std::collections::HashMap<_, _>>(),
        );
        let post_or_comment = comment_of_key(&pk, &sk).is_some() || post_of_key(&pk, &sk).is_some();
        let sync_reads = shared::store::is_user_key(&item_keys) || post_or_comment;
        assert_eq!(
            passes(&t, CACHE_SYNC, &record),
            sync_reads,
            "{CACHE_SYNC}: {what} ({pk}, {sk}) {}",
            if sync_reads {
                "must pass"
            } else {
                "must not pass"
            }
        );
        if is_sweep_key(&sk) {
            // It passes (its partition is the post's) and cache-sync skips it on its keys.
            assert!(
                sync_reads,
                "{what}: filtered by cache-sync's code, not its mapping"
            );
        }
        assert_eq!(
            passes(&t, UPKEEP, &record),
            post_or_comment,
            "{UPKEEP}: {what} ({pk}, {sk}) {}",
            if post_or_comment {
                "must pass"
            } else {
                "must not pass"
            }
        );
    }
}

#[test]
fn stream_consumers_may_read_the_stream_their_items_and_the_cache_secret_and_nothing_else() {
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        for function in STREAM_CONSUMERS {
            stream_consumer_permissions(&t, auth, function);
        }
    }
}

/// A stream consumer's role in one combination: the stream, items of the table (which ones,
/// and what it may do to them, is `each_role_may_do_what_its_code_calls_and_nothing_more`'s), its
/// failure queue, and the cache (its AUTH token's secret, or with IAM `elasticache:Connect` as
/// the cache's user); never the JWT key.
fn stream_consumer_permissions(t: &Value, auth: &str, function: &str) {
    let table = only_resource_of(t, "AWS::DynamoDB::Table");
    let props = &resources(t)[function]["Properties"];
    // SAM's own DynamoDB/Kinesis events attach a managed policy that reads every stream in the
    // account (Resource "*"); the mapping is a resource of its own and the policy explicit.
    for event in props["Events"]
        .as_mapping()
        .map(|e| e.values().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let kind = event["Type"].as_str().unwrap_or_default();
        assert!(
            !["DynamoDB", "Kinesis"].contains(&kind),
            "a SAM {kind} event widens {function}'s role"
        );
    }
    for key in ["Role", "ManagedPolicyArns", "PermissionsBoundary"] {
        assert!(
            props[key].is_null(),
            "{function}: {key} would replace or widen the role checked here"
        );
    }

    let statements = policy_statements(t, function);
    let mut secrets = BTreeSet::new();
    let mut stream_actions = BTreeSet::new();
    let mut queues = BTreeSet::new();
    let mut item_reads = false;
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
            "{function} must not reach the JWT key: {statement:?}"
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
                "dynamodb" if STREAM_ACTIONS.contains(&name) => {
                    for resource in &resources {
                        assert_eq!(
                            get_att(resource),
                            Some(format!("{table}.StreamArn")),
                            "{function}: {action} on the stream only"
                        );
                    }
                    stream_actions.insert(name.to_owned());
                }
                "dynamodb" => {
                    // Items of the table, never an index, each statement naming its keys.
                    for resource in &resources {
                        assert_eq!(
                            get_att(resource),
                            Some(format!("{table}.Arn")),
                            "{function}: {action} on the table's items"
                        );
                    }
                    assert!(
                        !statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                            .is_null(),
                        "{function}: {action} limited by key: {statement:?}"
                    );
                    item_reads |= name == "GetItem";
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
                    assert_eq!((auth, name), ("iam", "Connect"), "{function}: {action}")
                }
                "logs" => {}
                other => panic!("{function} has no business with {other}: {action}"),
            }
        }
    }
    assert!(
        item_reads,
        "{function} reads each changed item as it is now"
    );
    let expected: BTreeSet<String> = if auth == "iam" {
        BTreeSet::new()
    } else {
        ["CacheAuthSecret".to_owned()].into()
    };
    assert_eq!(
        secrets, expected,
        "{function}: the only secret it reads is the cache's AUTH token, and none with IAM"
    );
    assert_eq!(
        stream_actions,
        STREAM_ACTIONS.map(String::from).into(),
        "{function}: the mapping polls the stream with this role"
    );
    let mapping = stream_mappings(t, function);
    let destination = get_att(&mapping[0].props["DestinationConfig"]["OnFailure"]["Destination"])
        .expect("destination");
    assert_eq!(
        queues,
        [destination].into(),
        "{function} may send to its failure queue, and only to it"
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
fn outputs_name_each_stream_consumer_and_its_failure_queue() {
    let t = template();
    let outputs: Vec<&Value> = t["Outputs"]
        .as_mapping()
        .expect("Outputs")
        .values()
        .map(|o| &o["Value"])
        .collect();
    for function in STREAM_CONSUMERS {
        let mapping = stream_mappings(&t, function);
        let queue = get_att(&mapping[0].props["DestinationConfig"]["OnFailure"]["Destination"])
            .and_then(|d| d.strip_suffix(".Arn").map(str::to_owned))
            .expect("a failure queue");
        assert!(
            outputs.iter().any(|v| ref_name(v) == Some(function)),
            "{function}'s name"
        );
        assert!(
            outputs.iter().any(|v| ref_name(v) == Some(queue.as_str())),
            "{function}: the URL of {queue}"
        );
        assert!(
            outputs
                .iter()
                .any(|v| get_att(v) == Some(format!("{queue}.Arn"))),
            "{function}: the ARN of {queue}"
        );
    }
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
        let sync = STREAM_CONSUMERS.contains(&id.as_str());
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

/// Ids whose shards (`keys::shard_of`) are every one of `0..shards`: a ULID's last character
/// picks its shard.
fn ids_in_every_shard(shards: u32) -> Vec<String> {
    let ids: Vec<String> = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
        .chars()
        .map(|c| format!("01JDX7Z6V3W6M0Q0VJ5R8ZK3Q{c}"))
        .collect();
    let covered: BTreeSet<u32> = ids
        .iter()
        .map(|id| shared::store::keys::shard_of(id, shards))
        .collect();
    assert_eq!(covered, (0..shards).collect(), "ids in every shard");
    ids
}

/// Every request each function's code makes to the table, with the keys it names, built by
/// the code's own key functions (`shared::store::keys`). Read from the code (`shared::store`,
/// and what each function calls of it): a request added there must be added here, and the
/// role checked against it (`each_role_may_do_what_its_code_calls_and_nothing_more`).
fn code_calls(function: &str) -> Vec<Call> {
    use shared::store::keys::{self, COMMENT_SHARDS, FEED_SHARDS};
    use shared::store::{FEED_INDEX, LEGACY_FEED_INDEX};
    let email = shared::domain::Email::parse("ann@example.com").expect("an email");
    let user = keys::user_pk(&email);
    let post_id = "01JDX7Z6V3W6M0Q0VJ5R8ZK3QF";
    let post = keys::post_pk(post_id);
    let pk = |key: keys::Key| pk_sk(&key).0;
    let idempotency = pk(keys::idempotency_key(post_id, "k-1"));
    // A post's comment shards, and its legacy partition (the post's own).
    let comment_shards: Vec<String> = ids_in_every_shard(COMMENT_SHARDS)
        .iter()
        .map(|id| keys::comment_pk(post_id, id))
        .collect();
    let legacy_comments = pk(keys::legacy_comment_key(post_id, post_id));
    let all_comments: Vec<String> = comment_shards
        .iter()
        .cloned()
        .chain([legacy_comments.clone()])
        .collect();
    let feed_shards: Vec<String> = ids_in_every_shard(FEED_SHARDS)
        .iter()
        .map(|id| keys::feed_pk(id))
        .collect();
    // gsi1's one partition (keys::LEGACY_FEED_PK_VALUE, not public).
    let legacy_feed = "FEED".to_owned();
    let call = |action, on: On, keys: &[String], why| Call {
        action,
        on,
        keys: keys.to_vec(),
        attributes: None,
        why,
    };
    // A user read that is not the login's: what the cache needs, never the hash.
    let user_read = |why| Call {
        attributes: Some(user_attributes()),
        ..call("GetItem", On::Table, std::slice::from_ref(&user), why)
    };
    let table = || On::Table;
    let one = |k: &String| vec![k.clone()];
    // The idempotency records of the routes that create (shared::store::idempotency).
    let idempotency_records = || {
        vec![
            call(
                "PutItem",
                table(),
                &one(&idempotency),
                "claim_idempotency_key",
            ),
            call(
                "UpdateItem",
                table(),
                &one(&idempotency),
                "complete_idempotency_key",
            ),
            call(
                "DeleteItem",
                table(),
                &one(&idempotency),
                "release_idempotency_key",
            ),
        ]
    };
    let authentication = || user_read("get_user (a cache miss)");
    match function {
        "UsersFunction" => vec![
            call(
                "GetItem",
                table(),
                &one(&user),
                "get_user, get_user_with_hash",
            ),
            call(
                "PutItem",
                table(),
                &one(&user),
                "create_user (a transaction)",
            ),
            call(
                "ConditionCheckItem",
                table(),
                &one(&user),
                "create_user (a transaction: the email's tombstone)",
            ),
            call(
                "UpdateItem",
                table(),
                &one(&user),
                "bump_jwt_version, rename_user",
            ),
            call("DeleteItem", table(), &one(&user), "delete_user"),
        ],
        "PostsFunction" => {
            let mut calls = vec![
                authentication(),
                call("GetItem", table(), &one(&post), "get_post"),
                call("PutItem", table(), &one(&post), "create_post"),
                call("UpdateItem", table(), &one(&post), "update_post"),
                call("DeleteItem", table(), &one(&post), "delete_post"),
                call("BatchGetItem", table(), &one(&post), "posts_by_id"),
                call(
                    "Query",
                    On::Index(FEED_INDEX.into()),
                    &feed_shards,
                    "feed_ids",
                ),
                call(
                    "Query",
                    On::Index(LEGACY_FEED_INDEX.into()),
                    &one(&legacy_feed),
                    "feed_ids (legacy)",
                ),
            ];
            calls.extend(idempotency_records());
            calls
        }
        "CommentsFunction" => {
            let mut calls = vec![
                authentication(),
                call("GetItem", table(), &one(&post), "get_post (Posts::get)"),
                call(
                    "GetItem",
                    table(),
                    &all_comments,
                    "get_comment (shard, then legacy)",
                ),
                call("Query", table(), &all_comments, "list_comments"),
                call("PutItem", table(), &comment_shards, "add_comment"),
                call(
                    "UpdateItem",
                    table(),
                    &all_comments,
                    "update_comment, remove_comment",
                ),
            ];
            calls.extend(idempotency_records());
            calls
        }
        "CacheSyncFunction" => vec![
            user_read("get_user"),
            // A user gone: which user its email's tombstone names (the stream is keys only).
            Call {
                attributes: Some(
                    shared::store::TOMBSTONE_ATTRIBUTES
                        .split(',')
                        .map(|a| a.trim().to_owned())
                        .collect(),
                ),
                ..call(
                    "GetItem",
                    On::Table,
                    std::slice::from_ref(&user),
                    "get_tombstone",
                )
            },
            call("GetItem", table(), &one(&post), "get_post"),
            call("GetItem", table(), &all_comments, "get_comment"),
        ],
        "UpkeepFunction" => {
            let comments_and_post: Vec<String> =
                all_comments.iter().cloned().chain([post.clone()]).collect();
            vec![
                call("GetItem", table(), &one(&post), "get_post, sweep_progress"),
                call("BatchGetItem", table(), &all_comments, "comment_states"),
                call("BatchGetItem", table(), &one(&post), "existing_posts"),
                // TransactWriteItems: its items are authorised as their own actions.
                call(
                    "UpdateItem",
                    table(),
                    &comments_and_post,
                    "settle_counts (a transaction)",
                ),
                call(
                    "DeleteItem",
                    table(),
                    &all_comments,
                    "settle_counts (a transaction)",
                ),
                call("UpdateItem", table(), &one(&post), "save_sweep_progress"),
                call(
                    "DeleteItem",
                    table(),
                    &one(&post),
                    "sweep_comments (its progress)",
                ),
                call("Query", table(), &all_comments, "sweep_comments"),
                call("BatchWriteItem", table(), &all_comments, "delete_items"),
            ]
        }
        other => panic!("no calls known for {other}: add them from its code"),
    }
}

/// Each function's role allows every request its code makes (`code_calls`), on the items
/// those requests name, and nothing more: every action, on every resource, for every key
/// pattern it grants, is used by some request of the code. So posts and comments can read a
/// user but never write one; no API function touches an index it does not query or a kind
/// of item it does not use; the comments function neither deletes nor transacts any more, the
/// posts function no longer sweeps; cache-sync only reads; upkeep keeps to posts and comments.
#[test]
fn each_role_may_do_what_its_code_calls_and_nothing_more() {
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        for function in functions(&t) {
            let what = format!("{kind}/{auth}: {function}");
            let grants = table_grants(&t, &function);
            let calls = code_calls(&function);
            for call in &calls {
                assert!(
                    grants.iter().any(|g| g.allows(call)),
                    "{what} may not {} on {:?} the keys {:?} ({}): {grants:#?}",
                    call.action,
                    call.on,
                    call.keys,
                    call.why
                );
            }
            for grant in &grants {
                for on in &grant.on {
                    for pattern in &grant.patterns {
                        let used = calls.iter().any(|c| {
                            c.action == grant.action
                                && &c.on == on
                                && c.keys.iter().any(|k| {
                                    if grant.like {
                                        string_like(pattern, k)
                                    } else {
                                        pattern == k
                                    }
                                })
                        });
                        assert!(
                            used,
                            "{what}: {} grants {} on {on:?} for {pattern}, which its code never \
                             asks",
                            grant.sid, grant.action
                        );
                    }
                }
            }
        }
    }
}

/// The attributes a user read of the cache's names (`shared::store::USER_ATTRIBUTES`; `#name`
/// stands for `name`, a reserved word).
fn user_attributes() -> Vec<String> {
    shared::store::USER_ATTRIBUTES
        .split(',')
        .map(|a| a.trim().trim_start_matches('#').to_owned())
        .collect()
}

/// Only the users function reads a password hash (issue 23): every other role that may read a
/// user (`USER#...`) may read exactly the attributes the code's projection names
/// (`USER_ATTRIBUTES`) and the item's key, with `dynamodb:Select` held to them, so a read
/// without a projection, or one naming `passwordHash`, is refused. That the code's requests
/// carry the projection is `every_request_the_code_sends_is_one_its_role_allows`'s.
#[test]
fn no_role_but_users_may_read_a_password_hash() {
    let user = shared::store::keys::user_pk(
        &shared::domain::Email::parse("ann@example.com").expect("an email"),
    );
    let mut expected: Vec<String> = ["pk", "sk"].map(String::from).into();
    expected.extend(user_attributes());
    expected.sort();
    assert!(!expected.contains(&"passwordHash".to_owned()));
    let mut readers = 0;
    for (kind, auth) in COMBINATIONS {
        let t = deployed(kind, auth);
        for function in functions(&t) {
            if function == "UsersFunction" {
                continue;
            }
            for grant in table_grants(&t, &function) {
                if !grant.admits(&user) {
                    continue;
                }
                readers += 1;
                let what = format!("{kind}/{auth}: {function}: {}", grant.sid);
                let mut allowed = grant
                    .attributes
                    .clone()
                    .unwrap_or_else(|| panic!("{what} may read every attribute of a user"));
                allowed.sort();
                assert_eq!(
                    allowed, expected,
                    "{what}: the code's projection and the key"
                );
                let key = [user.clone()];
                assert!(
                    !grant.permits("GetItem", &On::Table, &key, None),
                    "{what}: a read of the whole item"
                );
                let with_hash = [user_attributes(), vec!["passwordHash".into()]].concat();
                assert!(
                    !grant.permits("GetItem", &On::Table, &key, Some(&with_hash)),
                    "{what}: a read of the hash"
                );
            }
        }
    }
    // posts and comments (on demand and on Managed Instances) and cache-sync, in four templates
    assert!(readers >= 12, "{readers} grants read users");
}

/// The API function calls as the template of this thread's compute deploys them, on demand
/// and on Managed Instances (the twins) alike.
#[test]
fn no_function_but_users_writes_a_user() {
    let t = template();
    let user = shared::store::keys::user_pk(
        &shared::domain::Email::parse("ann@example.com").expect("an email"),
    );
    for function in functions(&t) {
        if function == "UsersFunction" {
            continue;
        }
        for grant in table_grants(&t, &function) {
            assert!(
                grant.action == "GetItem" || !grant.admits(&user),
                "{function}: {} may {} a user ({})",
                grant.sid,
                grant.action,
                user
            );
        }
    }
}

/// The gateway endpoint's policy admits requests for this table and its indexes only, and
/// exactly the actions the functions' roles grant on them: an action its policy lacks is
/// refused on this path (the only one from the VPC) whatever a role allows, so every action
/// the code calls must be here, and nothing else need be.
#[test]
fn the_dynamodb_endpoint_reaches_this_table_only() {
    let t = template();
    let endpoint = &resources(&t)["DynamoDbGatewayEndpoint"]["Properties"];
    let statements = one_or_many(&endpoint["PolicyDocument"]["Statement"]);
    assert!(!statements.is_empty(), "the endpoint has a policy");
    let table = only_resource_of(&t, "AWS::DynamoDB::Table");
    let mut admitted = BTreeSet::new();
    for statement in statements {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"));
        for action in actions(statement) {
            assert!(
                action.starts_with("dynamodb:") && !action.contains('*'),
                "{action}"
            );
            admitted.insert(action.trim_start_matches("dynamodb:").to_owned());
        }
        let mut on = BTreeSet::new();
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
            on.insert(named);
        }
        assert!(
            on.contains(&format!("{table}.Arn"))
                && on.contains(&format!("${{{table}.Arn}}/index/*")),
            "the endpoint admits the table and its indexes: {on:?}"
        );
    }
    let granted: BTreeSet<String> = functions(&t)
        .iter()
        .flat_map(|f| table_grants(&t, f))
        .map(|g| g.action)
        .collect();
    assert_eq!(
        admitted, granted,
        "the endpoint's actions are the roles' actions on the table"
    );
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
    let config = shared::config::Config::from_lookup(|_| None).expect("defaults");
    let (defaults, registration) = (config.login_limits, config.registration_limits);
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
        (
            "REGISTRATION_MAX_REFUSALS_PER_IP",
            "RegistrationMaxRefusalsPerIp",
            u64::from(registration.per_ip),
        ),
        (
            "REGISTRATION_REFUSAL_WINDOW_SECONDS",
            "RegistrationRefusalWindowSeconds",
            registration.window.as_secs(),
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
    stream_consumers_get_the_cache_and_table_variables_and_nothing_else();
    every_function_reads_the_legacy_layout_from_its_parameter();
    functions_are_built_by_cargo_lambda_for_arm64();
    every_function_runs_in_the_private_subnets();
    every_function_logs_json_to_its_own_log_group_with_retention();
    cache_sync_is_small_and_short_lived();
    upkeep_outlives_its_sweep_budget();
    the_table_stream_reaches_cache_sync_with_bounded_retries_and_a_failure_queue();
    the_table_stream_reaches_upkeep_with_bounded_retries_and_its_own_failure_queue();
    at_most_two_mappings_read_the_table_stream();
    each_stream_consumer_gets_the_records_its_code_reads_and_no_others();
    stream_consumers_may_read_the_stream_their_items_and_the_cache_secret_and_nothing_else();
    outputs_name_each_stream_consumer_and_its_failure_queue();
    the_sam_local_env_file_points_every_function_at_the_local_stack();
    each_role_may_do_what_its_code_calls_and_nothing_more();
    no_function_but_users_writes_a_user();
    the_dynamodb_endpoint_reaches_this_table_only();
    idempotency_records_expire_by_ttl_and_outlive_any_request();
    operators_set_log_levels_see_traces_and_metrics_and_get_paged();
    every_alarm_is_within_cloudwatchs_metric_math_limits();
    the_table_and_each_index_have_a_throttle_alarm();
    the_upkeep_and_every_functions_throttles_are_alarmed();
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
    for consumer in STREAM_CONSUMERS {
        assert!(
            resources(&t)[consumer]["Properties"]["CapacityProviderConfig"].is_null()
                && resources(&t)[consumer]["Condition"].is_null(),
            "{consumer} stays on demand, on both computes"
        );
    }
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

/// DynamoDB throttles the table and each of its indexes apart (an index's partitions, a hot
/// `FEED#<k>` or gsi1's one `FEED`, throttle on their own), so each has an alarm on its read
/// and its write throttle events, by `TableName` (and `GlobalSecondaryIndexName`), as
/// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/metrics-dimensions.html
/// names them. Every index of the table, whatever its name: one added later needs its alarm.
#[test]
fn the_table_and_each_index_have_a_throttle_alarm() {
    let t = template();
    let table = only_resource_of(&t, "AWS::DynamoDB::Table");
    let alarms = alarm_metrics(&t);
    let targets: Vec<Option<String>> = std::iter::once(None)
        .chain(declared_table(&t).indexes.into_keys().map(Some))
        .collect();
    assert!(targets.len() >= 3, "the table, feed and gsi1: {targets:?}");
    for target in targets {
        let dims = |_: &str| {
            let mut d = BTreeMap::from([("TableName".to_owned(), format!("ref:{table}"))]);
            if let Some(index) = &target {
                d.insert("GlobalSecondaryIndexName".into(), index.clone());
            }
            d
        };
        let wanted = |name: &str| AlarmMetric {
            namespace: "AWS/DynamoDB".into(),
            name: name.into(),
            dimensions: dims(name),
        };
        let found = alarms.iter().find(|(_, metrics)| {
            metrics.contains(&wanted("ReadThrottleEvents"))
                && metrics.contains(&wanted("WriteThrottleEvents"))
        });
        assert!(
            found.is_some(),
            "no alarm reads ReadThrottleEvents and WriteThrottleEvents of {}",
            target
                .as_deref()
                .map_or("the table".to_owned(), |i| format!("the index {i}"))
        );
    }
}

/// The upkeep is what keeps API.md's promise that counts converge within a second: an alarm
/// when its stream falls behind (Lambda's `IteratorAge`, within seconds), when its batches keep
/// failing (`UpkeepBatchesFailed`, as the function emits it), and when its failure queue holds
/// anything; the same stream and queue alarms for cache-sync. And the throttles alarm watches
/// every function of the stack, the upkeep included.
#[test]
fn the_upkeep_and_every_functions_throttles_are_alarmed() {
    let t = template();
    let alarms = alarm_metrics(&t);
    let metrics: BTreeSet<&AlarmMetric> = alarms.values().flatten().collect();
    let has = |namespace: &str, name: &str, dims: &[(&str, &str)]| {
        metrics.contains(&AlarmMetric {
            namespace: namespace.into(),
            name: name.into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    };
    for function in STREAM_CONSUMERS {
        let mapping = stream_mappings(&t, function);
        let queue = get_att(&mapping[0].props["DestinationConfig"]["OnFailure"]["Destination"])
            .and_then(|d| d.strip_suffix(".Arn").map(str::to_owned))
            .expect("a failure queue");
        assert!(
            has(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                &[("QueueName", &format!("{queue}.QueueName"))]
            ),
            "{function}: no alarm on its failure queue {queue}"
        );
        assert!(
            has(
                "AWS/Lambda",
                "IteratorAge",
                &[("FunctionName", &format!("ref:{function}"))]
            ),
            "{function}: no alarm on its iterator age"
        );
    }
    let upkeep_age = resources_of(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(_, a)| &a["Properties"])
        .find(|p| {
            p["MetricName"].as_str() == Some("IteratorAge")
                && ref_name(&p["Dimensions"][0]["Value"]) == Some(UPKEEP)
        })
        .expect("the upkeep's iterator age alarm");
    let threshold = upkeep_age["Threshold"].as_f64();
    assert!(
        threshold.is_some_and(|ms| ms <= 10_000.0),
        "{UPKEEP}: counts converge within a second; an iterator age alarm at {threshold:?} ms \
         waits too long"
    );
    assert!(
        has(
            "ours",
            shared::metrics::UPKEEP_BATCHES_FAILED,
            &[(shared::metrics::FUNCTION, upkeep_fn::FUNCTION)]
        ),
        "no alarm on {} of {}",
        shared::metrics::UPKEEP_BATCHES_FAILED,
        upkeep_fn::FUNCTION
    );
    let throttled: BTreeSet<String> = metrics
        .iter()
        .filter(|m| m.namespace == "AWS/Lambda" && m.name == "Throttles")
        .filter_map(|m| {
            m.dimensions
                .get("FunctionName")?
                .strip_prefix("ref:")
                .map(str::to_owned)
        })
        .map(|id| twin_of(&id).unwrap_or(&id).to_owned())
        .collect();
    assert_eq!(
        throttled,
        functions(&t),
        "the throttles alarm watches every function"
    );
}

/// The dashboard shows the cache's hit ratio for each kind of entry (`shared::cache::Kind`, the
/// metrics' `Kind` dimension: hits / (hits + misses), from `CacheHits` and `CacheMisses` by
/// `Function` and `Kind`), what the upkeep does (its metrics, as the function emits them),
/// and throttling of the table and of each index.
#[test]
fn the_dashboard_shows_hit_ratios_by_kind_the_upkeep_and_table_throttles() {
    use shared::cache::Kind;
    use shared::metrics as m;
    let t = template();
    let widgets = dashboard_widgets(&t);
    let rows: Vec<&Vec<serde_json::Value>> = widgets.iter().flat_map(|(_, rows)| rows).collect();
    let options = |row: &Vec<serde_json::Value>| {
        row.iter()
            .find(|c| c.is_object())
            .cloned()
            .unwrap_or_default()
    };
    let kinds = [Kind::User, Kind::Post, Kind::Feed, Kind::Comments];
    for kind in kinds {
        // A new kind fails to compile here: add it to the dashboard and to `kinds`.
        match kind {
            Kind::User | Kind::Post | Kind::Feed | Kind::Comments => {}
        }
        let series = |metric: &str| -> String {
            let row = rows
                .iter()
                .find(|row| {
                    let e = options(row)["expression"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    e.contains(&format!(",{},{}}}", m::FUNCTION, m::KIND))
                        && e.contains(&format!("MetricName=\"{metric}\""))
                        && e.contains(&format!("{}=\"{}\"", m::KIND, kind.as_str()))
                })
                .unwrap_or_else(|| {
                    panic!("no {metric} of kind {} on the dashboard", kind.as_str())
                });
            options(row)["id"].as_str().expect("an id").to_owned()
        };
        let (hits, misses) = (series(m::CACHE_HITS), series(m::CACHE_MISSES));
        let drawn = rows.iter().any(|row| {
            let o = options(row);
            let words: BTreeSet<&str> = o["expression"]
                .as_str()
                .unwrap_or_default()
                .split(|c: char| !c.is_alphanumeric())
                .collect();
            o["visible"] != serde_json::Value::Bool(false)
                && words.contains(hits.as_str())
                && words.contains(misses.as_str())
        });
        assert!(drawn, "no hit ratio of kind {} is drawn", kind.as_str());
    }
    let cells = |row: &Vec<serde_json::Value>| -> Vec<String> {
        row.iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect()
    };
    for metric in [
        m::COMMENTS_COUNTED,
        m::COMMENTS_REMOVED,
        m::COMMENTS_SWEPT,
        m::UPKEEP_LAG,
        m::UPKEEP_BATCHES_FAILED,
    ] {
        let wanted = [
            "${AWS::StackName}",
            metric,
            m::FUNCTION,
            upkeep_fn::FUNCTION,
        ];
        assert!(
            rows.iter().any(|row| cells(row) == wanted),
            "{metric} of {} is not on the dashboard",
            upkeep_fn::FUNCTION
        );
    }
    let table = only_resource_of(&t, "AWS::DynamoDB::Table");
    for index in std::iter::once(None).chain(declared_table(&t).indexes.into_keys().map(Some)) {
        for metric in ["ReadThrottleEvents", "WriteThrottleEvents"] {
            let mut wanted = vec![
                "AWS/DynamoDB".to_owned(),
                metric.to_owned(),
                "TableName".to_owned(),
                format!("${{{table}}}"),
            ];
            if let Some(index) = &index {
                wanted.extend(["GlobalSecondaryIndexName".to_owned(), index.clone()]);
            }
            assert!(
                rows.iter().any(|row| cells(row) == wanted),
                "{metric} of {index:?} is not on the dashboard"
            );
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

// ---------------------------------------------------------------------------------------
// The roles against the requests the code really sends.
// ---------------------------------------------------------------------------------------

/// Every request each function's code sends to DynamoDB, in a run of all it does (each route,
/// from the cache and, with Redis down, from the table; idempotent creates and their repeats;
/// pages after a cursor; a comment deleted by its author and by the post's; cache-sync applying
/// the stream; upkeep counting, removing and sweeping a deleted post's comments), is one its
/// role in `template.yaml` allows, on the keys it names, and one `code_calls` lists: so the
/// role (and the gateway endpoint, which admits the roles' actions) never refuses the code,
/// whatever the static list says.
#[tokio::test]
async fn every_request_the_code_sends_is_one_its_role_allows() {
    use integration_tests::ApiRequest;
    use serde_json::json;
    let t = template();
    let recorder = Recorder::new(&t);
    let env = integration_tests::TestEnv::builder()
        .interceptor(recorder.clone())
        .build()
        .await;
    let mut sent: BTreeMap<String, Vec<Sent>> = BTreeMap::new();
    let s = &mut sent;
    let r = &recorder;

    // Users: register, log in, read, rename, log out.
    let email = integration_tests::unique_email("roles");
    let path = "/users";
    let res = api_call(
        &env,
        r,
        s,
        ApiRequest::post(path).json(
            json!({"email": email, "name": "Roles", "password": integration_tests::PASSWORD}),
        ),
        path,
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let path = "/auth/login";
    let res = api_call(
        &env,
        r,
        s,
        ApiRequest::post(path)
            .json(json!({"email": email, "password": integration_tests::PASSWORD})),
        path,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    let token = res.body["token"].as_str().expect("a token").to_owned();
    let (other, _) = env.new_user("Commenter").await;
    let path = "/users/me";
    env.redis.evict(&email).await;
    api_call(&env, r, s, ApiRequest::get(path).bearer(&token), path).await;
    api_call(
        &env,
        r,
        s,
        ApiRequest::patch(path)
            .bearer(&token)
            .json(json!({"name": "Roles 2"})),
        path,
    )
    .await;

    // Posts: create (idempotent, and its repeat), read, list, edit.
    let path = "/posts";
    let create = || {
        ApiRequest::post("/posts")
            .bearer(&token)
            .header("idempotency-key", "roles-1")
            .json(json!({"caption": "roles"}))
    };
    let res = api_call(&env, r, s, create(), path).await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    api_call(&env, r, s, create(), path).await;
    let post_id = res.body["id"].as_str().expect("an id").to_owned();
    let second = env.new_post(&token, "second").await;
    let second_id = second["id"].as_str().expect("an id").to_owned();
    // Comments: create (idempotent), on both posts, from two users.
    let comments = format!("/posts/{post_id}/comments");
    let mut comment_ids = Vec::new();
    for (who, key) in [(&token, "c-1"), (&other, "c-2"), (&other, "c-3")] {
        let res = api_call(
            &env,
            r,
            s,
            ApiRequest::post(&comments)
                .bearer(who)
                .header("idempotency-key", key)
                .json(json!({"text": "hi"})),
            &comments,
        )
        .await;
        assert_eq!(res.status, 201, "{}", res.raw_body);
        comment_ids.push(res.body["id"].as_str().expect("an id").to_owned());
    }
    let second_comments = format!("/posts/{second_id}/comments");
    for _ in 0..3 {
        let res = api_call(
            &env,
            r,
            s,
            ApiRequest::post(&second_comments)
                .bearer(&other)
                .json(json!({"text": "swept"})),
            &second_comments,
        )
        .await;
        assert_eq!(res.status, 201, "{}", res.raw_body);
    }
    // Every read twice: from the cache, then (Redis down) from the table; pages after a cursor.
    for redis_up in [true, false] {
        if !redis_up {
            env.redis.stop();
        }
        let reads = [
            ("/users/me".to_owned(), "/users/me".to_owned()),
            ("/posts?limit=1".to_owned(), "/posts".to_owned()),
            (format!("/posts/{post_id}"), format!("/posts/{post_id}")),
            (format!("{comments}?limit=1"), comments.clone()),
            (format!("{comments}/{}", comment_ids[0]), comments.clone()),
        ];
        for (read, path) in reads {
            let res = api_call(&env, r, s, ApiRequest::get(&read).bearer(&token), &path).await;
            assert_eq!(res.status, 200, "{read}: {}", res.raw_body);
            if let Some(cursor) = res.body["nextCursor"].as_str() {
                let next = format!("{path}?limit=1&cursor={cursor}");
                let res = api_call(&env, r, s, ApiRequest::get(&next).bearer(&token), &path).await;
                assert_eq!(res.status, 200, "{next}: {}", res.raw_body);
            }
        }
        if !redis_up {
            env.redis.restart().await;
        }
    }
    // Changes: edit the post and a comment, delete a comment as its author and one as the
    // post's author, delete the second post (its comments are swept), log out.
    let post = format!("/posts/{post_id}");
    api_call(
        &env,
        r,
        s,
        ApiRequest::patch(&post)
            .bearer(&token)
            .json(json!({"caption": "edited"})),
        &post,
    )
    .await;
    let first = format!("{comments}/{}", comment_ids[0]);
    api_call(
        &env,
        r,
        s,
        ApiRequest::patch(&first)
            .bearer(&token)
            .json(json!({"text": "edited"})),
        &comments,
    )
    .await;
    let by_author = format!("{comments}/{}", comment_ids[1]);
    let res = api_call(
        &env,
        r,
        s,
        ApiRequest::delete(&by_author).bearer(&other),
        &comments,
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    let by_post_author = format!("{comments}/{}", comment_ids[2]);
    let res = api_call(
        &env,
        r,
        s,
        ApiRequest::delete(&by_post_author).bearer(&token),
        &comments,
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    let second_post = format!("/posts/{second_id}");
    let res = api_call(
        &env,
        r,
        s,
        ApiRequest::delete(&second_post).bearer(&token),
        &second_post,
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    let path = "/auth/logout";
    api_call(&env, r, s, ApiRequest::post(path).bearer(&token), path).await;
    // The user's delete (logged in again), before the stream is read: cache-sync then finds
    // the user gone and reads its email's tombstone.
    let login = env.login(&email).await;
    assert_eq!(login.status, 200, "{}", login.raw_body);
    let token = login.body["token"].as_str().expect("a token");
    let path = "/users/me";
    let res = api_call(&env, r, s, ApiRequest::delete(path).bearer(token), path).await;
    assert_eq!(res.status, 204, "{}", res.raw_body);

    // The stream, through each consumer as its mapping feeds it: upkeep until the stream is
    // quiet (its own writes are records too), then cache-sync over all of it.
    let config = env.config_for(&env.redis.url());
    let endpoint = env.dynamo.endpoint.clone();
    let table = config.table.table_name.clone();
    let store = |recorder: &Recorder| {
        shared::store::Store::new(recorded_client(&endpoint, recorder), table.clone())
    };
    let cache = || shared::cache::RedisCache::new(&config.cache, None).expect("a cache");
    let upkeep_store = store(r);
    let upkeep = Consumer::Upkeep(upkeep_fn::Upkeep {
        posts: shared::cache::Posts::new(upkeep_store.clone(), cache()),
        store: upkeep_store,
    });
    recorder.take();
    integration_tests::sync::poller(&endpoint)
        .await
        .drain(
            &upkeep,
            std::time::Duration::from_millis(30),
            std::time::Duration::from_secs(60),
        )
        .await
        .expect("the stream drained through upkeep");
    sent.entry(UPKEEP.to_owned())
        .or_default()
        .extend(recorder.take());
    let sync = Consumer::Sync(cache_sync_fn::CacheSync::new(cache(), store(r)));
    integration_tests::sync::poller(&endpoint)
        .await
        .drain(
            &sync,
            std::time::Duration::from_millis(30),
            std::time::Duration::from_secs(60),
        )
        .await
        .expect("the stream drained through cache-sync");
    sent.entry(CACHE_SYNC.to_owned())
        .or_default()
        .extend(recorder.take());
    assert_eq!(
        env.comment_count(&other, &post_id).await,
        1,
        "upkeep counted and removed"
    );

    for (function, requests) in &sent {
        let grants = table_grants(&t, function);
        let listed = code_calls(function);
        let mut actions = BTreeSet::new();
        for request in requests {
            assert!(
                !request.keys.is_empty() && request.keys.iter().all(|k| !k.is_empty()),
                "{function}: a request whose keys were not read: {request:?}"
            );
            assert!(
                grants.iter().any(|g| g.permits(
                    &request.action,
                    &request.on,
                    &request.keys,
                    request.attributes.as_deref()
                )),
                "{function} sent {request:?}, which its role refuses: {grants:#?}"
            );
            assert!(
                listed
                    .iter()
                    .any(|c| c.action == request.action && c.on == request.on),
                "{function} sent {request:?}, which code_calls does not list"
            );
            actions.insert((request.action.clone(), request.on.clone()));
        }
        // The run reaches every kind of request the list names, but the release of an
        // idempotency record (only after a failed create).
        let unreached: Vec<_> = listed
            .iter()
            .filter(|c| !actions.contains(&(c.action.to_owned(), c.on.clone())))
            .filter(|c| c.why != "release_idempotency_key")
            .map(|c| (c.action, &c.on, c.why))
            .collect();
        assert!(
            unreached.is_empty(),
            "{function}: the run never sent {unreached:?}"
        );
    }
    assert_eq!(
        sent.keys().cloned().collect::<BTreeSet<_>>(),
        functions(&t),
        "every function sent something"
    );
}
