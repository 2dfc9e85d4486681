//! The metrics the functions emit, as CloudWatch reads them: Embedded Metric Format lines
//! (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html),
//! each metric with its unit and dimensions, and every metric the dashboard and alarms of
//! `template.yaml` use actually emitted.
//!
//! Each test runs the functions as Lambda does, in processes of their own (`lambda-app`, the
//! three API functions; `cache-sync-app`), and reads what those processes wrote: so every
//! count is this test's own, and is checked exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use integration_tests::emf::{self, Tally};
use integration_tests::lambda_process::LambdaProcess;
use integration_tests::{ApiRequest, TestEnv};
use serde_json::{json, Value};
use shared::metrics::METRICS;

fn lambda_app() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lambda-app"))
}

fn cache_sync_app() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cache-sync-app"))
}

fn upkeep_app() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_upkeep-app"))
}

/// `upkeep` in a process of its own, on `env`'s Redis and on the table at `dynamodb`.
async fn upkeep(env: &TestEnv, dynamodb: &str) -> LambdaProcess {
    LambdaProcess::ready(upkeep_app(), "upkeep", env, dynamodb, &[]).await
}

/// The three API functions in a process of their own, on `env`'s Redis and on DynamoDB at
/// `dynamodb`.
async fn api_functions(env: &TestEnv, dynamodb: &str) -> LambdaProcess {
    LambdaProcess::ready(lambda_app(), "users", env, dynamodb, &[]).await
}

/// `cache-sync` in a process of its own, on the Redis at `redis_url` and `env`'s table.
async fn cache_sync(env: &TestEnv, redis_url: &str) -> LambdaProcess {
    let vars = [("REDIS_URL", redis_url.to_owned())];
    LambdaProcess::ready(
        cache_sync_app(),
        "cache-sync",
        env,
        &env.dynamo.endpoint,
        &vars,
    )
    .await
}

/// A stream event holding `records`, as Lambda hands it to `cache-sync`.
fn stream_event(records: &[aws_lambda_events::event::dynamodb::EventRecord]) -> Value {
    let mut event = aws_lambda_events::event::dynamodb::Event::default();
    event.records = records.to_vec();
    serde_json::to_value(event).expect("a stream event")
}

#[tokio::test]
async fn requests_emit_their_route_status_cache_and_call_metrics_as_valid_emf() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Metered").await;
    let function = api_functions(&env, &env.dynamo.endpoint).await;

    // A miss (the entry is gone), then hits, a refusal, a 404 and a 405.
    let mut conn = env.redis.connection().await.expect("redis");
    let _: String = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");
    for _ in 0..3 {
        assert_eq!(
            function.send(ApiRequest::me().bearer(&token)).await.status,
            200
        );
    }
    let post = function
        .send(
            ApiRequest::post("/posts")
                .bearer(&token)
                .json(json!({"caption": "m"})),
        )
        .await;
    assert_eq!(post.status, 201, "{}", post.raw_body);
    let id = post.body["id"].as_str().expect("id").to_owned();
    let read = function
        .send(ApiRequest::get(&format!("/posts/{id}")).bearer(&token))
        .await;
    assert_eq!(read.status, 200, "{}", read.raw_body);
    function
        .send(ApiRequest::me().bearer("nope"))
        .await
        .assert_error(401, "unauthorized");
    function
        .send(ApiRequest::get("/nowhere/at/all/123").bearer(&token))
        .await
        .assert_error(404, "not_found");
    function
        .send(ApiRequest::put(&format!("/posts/{id}")).bearer(&token))
        .await
        .assert_error(405, "method_not_allowed");

    let emitted = emf::parse(&function.log());
    let declared: BTreeMap<&str, (&str, Vec<BTreeSet<&str>>)> = METRICS
        .iter()
        .map(|(name, unit, sets)| {
            (
                *name,
                (
                    emf_unit(*unit),
                    sets.iter().map(|d| d.iter().copied().collect()).collect(),
                ),
            )
        })
        .collect();
    for metric in &emitted {
        let (unit, sets) = declared
            .get(metric.name.as_str())
            .unwrap_or_else(|| panic!("undeclared {metric:?}"));
        assert_eq!(metric.unit, *unit, "{}", metric.name);
        let names: BTreeSet<&str> = metric.dimensions.keys().map(String::as_str).collect();
        assert!(
            sets.contains(&names),
            "{}: {names:?} is not one of its declared dimension sets",
            metric.name
        );
    }
    let count =
        |name: &str, function: &str, route: Option<&str>| emitted.sum(name, function, route);
    // Routes by their route key, a fixed set: never an id or a raw path.
    assert_eq!(count("Requests", "users", Some("GET /users/me")), 4.0);
    assert_eq!(count("Successes", "users", Some("GET /users/me")), 3.0);
    assert_eq!(count("ClientErrors", "users", Some("GET /users/me")), 1.0);
    assert_eq!(count("Requests", "posts", Some("POST /posts")), 1.0);
    assert_eq!(count("Requests", "posts", Some("GET /posts/{postId}")), 1.0);
    assert_eq!(count("Requests", "users", Some("$default")), 1.0);
    assert_eq!(count("ClientErrors", "users", Some("$default")), 1.0);
    assert_eq!(
        count("ClientErrors", "posts", Some("ANY /posts/{postId}")),
        1.0
    );
    assert_eq!(count("Requests", "users", None), 5.0, "by function too");
    assert_eq!(count("Requests", "posts", None), 3.0, "by function too");
    let routes: BTreeSet<&str> = emitted
        .iter()
        .filter_map(|m| m.dimensions.get("Route"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        routes,
        BTreeSet::from([
            "$default",
            "ANY /posts/{postId}",
            "GET /posts/{postId}",
            "GET /users/me",
            "POST /posts"
        ])
    );
    // The users function: a miss (a GET, its lease, then the write-back) and two hits (a GET
    // each), and the miss's one read. The posts function: its two users, both hits; the post
    // written (its entry leased, one PutItem, then its entry and its place in the feed through
    // the compare-and-set) and read back from the cache (a hit: no DynamoDB call), its GET
    // sent beside the user's.
    assert_eq!(count("CacheMisses", "users", None), 1.0, "one miss");
    assert_eq!(count("CacheHits", "users", None), 2.0, "then hits");
    assert_eq!(emitted.sum_by_kind("CacheHits", "users", "user"), 2.0);
    assert_eq!(count("CacheHits", "posts", None), 3.0);
    assert_eq!(emitted.sum_by_kind("CacheHits", "posts", "user"), 2.0);
    assert_eq!(emitted.sum_by_kind("CacheHits", "posts", "post"), 1.0);
    assert_eq!(count("CacheMisses", "posts", None), 0.0);
    assert_eq!(count("DynamoDbReadsAvoided", "users", None), 2.0);
    assert_eq!(count("DynamoDbReadsAvoided", "posts", None), 3.0);
    assert_eq!(count("RedisCalls", "users", None), 5.0);
    assert_eq!(count("RedisCalls", "posts", None), 6.0);
    assert_eq!(count("DynamoDbCalls", "users", None), 1.0);
    assert_eq!(
        count("DynamoDbCalls", "posts", None),
        1.0,
        "the post's PutItem only"
    );
    assert_eq!(
        emitted.samples("AuthTime", "users", None),
        4,
        "every authentication, the refused token's too"
    );
    let latencies: Vec<f64> = emitted
        .iter()
        .filter(|m| m.name == "Latency")
        .flat_map(|m| m.values.clone())
        .collect();
    assert_eq!(latencies.len(), 8, "one per request");
    assert!(
        latencies.iter().all(|ms| *ms > 0.0 && *ms < 60_000.0),
        "{latencies:?}"
    );
}

fn emf_unit(unit: metrics::Unit) -> &'static str {
    match unit {
        metrics::Unit::Count => "Count",
        metrics::Unit::Milliseconds => "Milliseconds",
        other => panic!("a unit the code does not use: {other:?}"),
    }
}

#[tokio::test]
async fn the_stream_sync_emits_what_it_applied_and_its_lag() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Synced").await;
    let email = user["email"].as_str().expect("email");
    assert_eq!(
        env.send(ApiRequest::post("/auth/logout").bearer(&token))
            .await
            .status,
        204
    );
    let records = integration_tests::sync::stream_records(&env.dynamo.endpoint).await;
    let mine = integration_tests::sync::user_records(&records, email);
    assert_eq!(mine.len(), 2, "the registration and the logout");
    // The entry is gone: the batch's one user is read and written.
    env.redis.evict(email).await;
    let sync = cache_sync(&env, &env.redis.url()).await;
    let answer = sync.invoke(&stream_event(&mine)).await;
    assert!(answer.ok, "{}", String::from_utf8_lossy(&answer.body));

    let emitted = emf::parse(&sync.log());
    let count = |name: &str| emitted.sum(name, "cache-sync", None);
    assert_eq!(
        count("SyncRecordsApplied"),
        1.0,
        "one user, one entry written"
    );
    assert_eq!(count("SyncRecordsStale"), 0.0);
    assert_eq!(count("SyncRecordsFailed"), 0.0);
    assert_eq!(count("SyncBatchesFailed"), 0.0);
    assert_eq!(
        emitted.samples("SyncLag", "cache-sync", None),
        1,
        "one lag per batch"
    );
    assert_eq!(count("ColdStarts"), 1.0);
    assert!(
        emitted
            .iter()
            .all(|m| m.dimensions.get("Function").map(String::as_str) == Some("cache-sync")),
        "{emitted:?}"
    );
}

/// A metric our namespace holds, as the template names it: its name and dimension names.
type Named = (String, BTreeSet<String>);

/// A metric as the template names it, with the dimension values it spells out: its name, its
/// dimension names, and the literal values among them (`Function: users` in an alarm,
/// `Function: cache-sync` in a dashboard row; none where a search matches any value).
type Spelled = (String, BTreeSet<String>, BTreeMap<String, String>);

/// Every metric of the stack's own namespace that `template.yaml`'s dashboard and alarms
/// name, with the dimensions they name it by.
fn metrics_named_by_the_template() -> BTreeSet<Named> {
    metrics_spelled_by_the_template()
        .into_iter()
        .map(|(name, dims, _)| (name, dims))
        .collect()
}

/// The same, with the dimension values the template spells out.
fn metrics_spelled_by_the_template() -> BTreeSet<Spelled> {
    use serde_yaml::Value as Yaml;
    let template: Yaml =
        serde_yaml::from_str(include_str!("../../../template.yaml")).expect("template parses");
    let resources = template["Resources"].as_mapping().expect("Resources");
    let ours = "${AWS::StackName}";
    let mut named = BTreeSet::new();
    let dims = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    for resource in resources.values() {
        match resource["Type"].as_str() {
            Some("AWS::CloudWatch::Dashboard") => {
                // `!Sub body` or `!Sub [body, {variables}]`; the variables hold the functions' names
                // (by compute) and other namespaces' metrics (the cache's own), read here as `[]`.
                let body = match &resource["Properties"]["DashboardBody"] {
                    Yaml::Tagged(sub) if sub.tag == "Sub" => {
                        let text = sub
                            .value
                            .as_str()
                            .or_else(|| sub.value[0].as_str())
                            .expect("a body");
                        let mut text = text.to_owned();
                        for name in sub.value[1].as_mapping().into_iter().flat_map(|m| m.keys()) {
                            text = text
                                .replace(&format!("${{{}}}", name.as_str().expect("a name")), "[]");
                        }
                        text
                    }
                    other => panic!("the dashboard body is a !Sub string: {other:?}"),
                };
                let body: Value = serde_json::from_str(&body).expect("the dashboard body is JSON");
                for widget in body["widgets"].as_array().expect("widgets") {
                    let mut previous: Vec<Value> = Vec::new();
                    for row in widget["properties"]["metrics"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let row = row.as_array().expect("a metric row");
                        if let Some(expression) = row.first().and_then(|r| r["expression"].as_str())
                        {
                            named.extend(searched(expression, ours));
                            continue;
                        }
                        // `"."` repeats the row above; `"..."` repeats all of it but what follows.
                        let mut full: Vec<Value> = Vec::new();
                        for (i, cell) in row.iter().enumerate() {
                            match cell.as_str() {
                                Some(".") => {
                                    full.push(previous.get(i).cloned().unwrap_or(Value::Null))
                                }
                                Some("...") => {
                                    let rest = row.len() - i - 1;
                                    let keep = previous
                                        .iter()
                                        .filter(|v| !v.is_object())
                                        .count()
                                        .saturating_sub(rest);
                                    full.extend(previous.iter().take(keep).cloned());
                                }
                                _ => full.push(cell.clone()),
                            }
                        }
                        let strings: Vec<&str> = full.iter().filter_map(Value::as_str).collect();
                        if strings.first() == Some(&ours) {
                            let names: Vec<&str> =
                                strings[2..].iter().step_by(2).copied().collect();
                            // A value the template fills in (`${...}`, or a variable read as
                            // `[]`) is not spelled out.
                            let values: BTreeMap<String, String> = strings[2..]
                                .chunks(2)
                                .filter_map(|pair| match pair {
                                    [name, value] if !value.contains("${") && *value != "[]" => {
                                        Some((name.to_string(), value.to_string()))
                                    }
                                    _ => None,
                                })
                                .collect();
                            named.insert((strings[1].to_owned(), dims(&names), values));
                        }
                        previous = full;
                    }
                }
            }
            Some("AWS::CloudWatch::Alarm") => {
                let properties = &resource["Properties"];
                for metric in properties["Metrics"].as_sequence().into_iter().flatten() {
                    let metric = &metric["MetricStat"]["Metric"];
                    let is_ours = matches!(&metric["Namespace"], Yaml::Tagged(r) if r.tag == "Ref" && r.value.as_str() == Some("AWS::StackName"));
                    if is_ours {
                        let dimensions = metric["Dimensions"].as_sequence().into_iter().flatten();
                        let names: Vec<&str> = dimensions
                            .clone()
                            .map(|d| d["Name"].as_str().expect("a dimension name"))
                            .collect();
                        // A plain string is spelled out; a `!Ref` or `!If` is filled in.
                        let values: BTreeMap<String, String> = dimensions
                            .filter_map(|d| {
                                Some((
                                    d["Name"].as_str()?.to_owned(),
                                    d["Value"].as_str()?.to_owned(),
                                ))
                            })
                            .collect();
                        let name = metric["MetricName"].as_str().expect("a name").to_owned();
                        named.insert((name, dims(&names), values));
                    }
                }
            }
            _ => {}
        }
    }
    named
}

/// The metrics a `SEARCH('{"ns",Dim,...} MetricName="X" Dim="v"', ...)` of namespace `ours`
/// names, with the values its search term spells out.
fn searched(expression: &str, ours: &str) -> Vec<Spelled> {
    let mut found = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("SEARCH('{") {
        let after = &rest[start + "SEARCH('{".len()..];
        let (schema, tail) = after.split_once("} ").expect("a schema");
        let mut parts = schema.split(',').map(|p| p.trim().trim_matches('"'));
        let namespace = parts.next().unwrap_or_default();
        let dims: BTreeSet<String> = parts.map(str::to_owned).collect();
        let name = tail
            .split("MetricName=\"")
            .nth(1)
            .and_then(|n| n.split('"').next())
            .expect("a MetricName");
        let term = tail.split('\'').next().unwrap_or_default();
        let values: BTreeMap<String, String> = term
            .split_whitespace()
            .filter_map(|token| token.split_once('='))
            .filter(|(dim, _)| *dim != "MetricName" && dims.contains(*dim))
            .map(|(dim, value)| (dim.to_owned(), value.trim_matches('"').to_owned()))
            .collect();
        if namespace == ours {
            found.push((name.to_owned(), dims, values));
        }
        rest = tail;
    }
    found
}

#[test]
fn the_template_names_only_metrics_the_code_declares() {
    let named = metrics_named_by_the_template();
    assert!(
        named.len() >= 15,
        "the dashboard and alarms name the code's metrics: {named:?}"
    );
    for (name, dims) in &named {
        let (_, _, sets) = METRICS
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is not emitted"));
        let declared: Vec<BTreeSet<String>> = sets
            .iter()
            .map(|set| set.iter().map(|d| d.to_string()).collect())
            .collect();
        assert!(
            declared.contains(dims),
            "{name} by {dims:?}: emitted by {declared:?}"
        );
    }
}

/// Every metric the dashboard and alarms name comes out of the code, by the dimension values
/// they spell out (the alarms' `Function: users|posts|comments`, the dashboard's
/// `Function: cache-sync`, any `Route`), in what this test's own processes emitted: hits,
/// misses, negatives, Redis and DynamoDB outages in each API function, the stream sync
/// applying, skipping a stale state, refusing a bad record and failing a batch.
#[tokio::test]
async fn every_metric_the_template_names_is_emitted() {
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
    let function = api_functions(&env, &proxy.endpoint).await;
    let (token, user) = env.new_user("Everything").await;
    let email = user["email"].as_str().expect("email").to_owned();
    let post = env.new_post(&token, "everything").await;
    let post_id = post["id"].as_str().expect("id");
    // One authenticated route of each API function, as the alarms name them.
    let routes = [
        ("users", "/users/me".to_owned()),
        ("posts", "/posts".to_owned()),
        ("comments", format!("/posts/{post_id}/comments")),
    ];
    for (name, path) in &routes {
        assert_eq!(integration_tests::function_for(path), *name, "{path}");
        // A miss, then a hit.
        env.redis.evict(&email).await;
        for _ in 0..2 {
            let res = function.send(ApiRequest::get(path).bearer(&token)).await;
            assert_eq!(res.status, 200, "{path}: {}", res.raw_body);
        }
        // A user that does not exist: a miss that leaves a negative entry, then a negative.
        let nobody = integration_tests::unique_email("nobody");
        let signed =
            integration_tests::tokens::token_for(&ulid::Ulid::new().to_string(), &nobody, 1);
        for _ in 0..2 {
            function
                .send(ApiRequest::get(path).bearer(&signed))
                .await
                .assert_error(401, "unauthorized");
        }
        // DynamoDB refusing connections: a miss has nowhere to read from, 503.
        env.redis.evict(&email).await;
        proxy.set(integration_tests::dynamo_proxy::Mode::Refuse);
        function
            .send(ApiRequest::get(path).bearer(&token))
            .await
            .assert_error(503, "service_unavailable");
        proxy.set(integration_tests::dynamo_proxy::Mode::Open);
    }

    // The sync: applied, stale (the cache holds a newer state than the table), a bad record,
    // and a batch that fails as a whole (Redis down).
    let records = integration_tests::sync::stream_records(&env.dynamo.endpoint).await;
    let mine = integration_tests::sync::user_records(&records, &email);
    let sync = cache_sync(&env, &env.redis.url()).await;
    assert!(sync.invoke(&stream_event(&mine)).await.ok, "applied");
    let mut newer = env.redis.entry(&email).await.expect("an entry");
    newer["rev"] = json!(1000);
    newer["user"]["revision"] = json!(1000);
    env.redis.set_user_entry(&email, &newer).await;
    let mut bad = mine[0].clone();
    bad.change.keys.insert(
        "pk".into(),
        serde_dynamo::AttributeValue::S("USER#not an email".into()),
    );
    let answer = sync.invoke(&stream_event(&[mine[0].clone(), bad])).await;
    assert!(answer.ok, "applied, one record refused");
    let refused: Value = serde_json::from_slice(&answer.body).expect("a batch response");
    assert_eq!(
        refused["batchItemFailures"].as_array().map(Vec::len),
        Some(1),
        "{refused}"
    );
    let unreachable = format!("redis://127.0.0.1:{}", integration_tests::closed_port());
    let down = cache_sync(&env, &unreachable).await;
    assert!(
        !down.invoke(&stream_event(&mine)).await.ok,
        "the batch fails"
    );

    // A post's entry gone: a miss of kind post.
    env.redis
        .evict_key(&shared::cache::kinds::post_key(post_id))
        .await;
    let res = function
        .send(ApiRequest::get(&format!("/posts/{post_id}")).bearer(&token))
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);

    // The upkeep: a comment counted, then removed; and a batch that fails as a whole (the table
    // unreachable).
    let comment = function
        .send(
            ApiRequest::post(&format!("/posts/{post_id}/comments"))
                .bearer(&token)
                .json(json!({"text": "counted"})),
        )
        .await;
    assert_eq!(comment.status, 201, "{}", comment.raw_body);
    let upkept = upkeep(&env, &env.dynamo.endpoint).await;
    let records = integration_tests::sync::stream_records(&env.dynamo.endpoint).await;
    assert!(upkept.invoke(&stream_event(&records)).await.ok, "counted");
    let removed = function
        .send(
            ApiRequest::delete(&format!(
                "/posts/{post_id}/comments/{}",
                comment.body["id"].as_str().expect("id")
            ))
            .bearer(&token),
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.raw_body);
    // And a post deleted with its comment: swept.
    let doomed = env.new_post(&token, "doomed").await;
    let doomed = doomed["id"].as_str().expect("id");
    let res = function
        .send(
            ApiRequest::post(&format!("/posts/{doomed}/comments"))
                .bearer(&token)
                .json(json!({"text": "swept"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let res = function
        .send(ApiRequest::delete(&format!("/posts/{doomed}")).bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    let records = integration_tests::sync::stream_records(&env.dynamo.endpoint).await;
    assert!(
        upkept.invoke(&stream_event(&records)).await.ok,
        "removed, swept"
    );
    let unreachable = format!("http://127.0.0.1:{}", integration_tests::closed_port());
    let stranded = upkeep(&env, &unreachable).await;
    assert!(
        !stranded.invoke(&stream_event(&records)).await.ok,
        "the batch fails"
    );

    // A Redis outage: every function's lookups fall back to DynamoDB.
    env.redis.stop();
    for (_, path) in &routes {
        let res = function.send(ApiRequest::get(path).bearer(&token)).await;
        assert_eq!(res.status, 200, "{path}: {}", res.raw_body);
    }

    let mut emitted = emf::parse(&function.log());
    emitted.extend(emf::parse(&sync.log()));
    emitted.extend(emf::parse(&down.log()));
    emitted.extend(emf::parse(&upkept.log()));
    emitted.extend(emf::parse(&stranded.log()));
    let named: BTreeSet<Named> = emitted
        .iter()
        .map(|m| (m.name.clone(), m.dimensions.keys().cloned().collect()))
        .collect();
    let spelled = metrics_spelled_by_the_template();
    let functions: BTreeSet<&str> = spelled
        .iter()
        .filter_map(|(_, _, values)| values.get("Function"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        functions,
        BTreeSet::from(["cache-sync", "comments", "posts", "upkeep", "users"]),
        "the values the template spells"
    );
    for (name, dims, values) in spelled {
        assert!(
            named.contains(&(name.clone(), dims.clone())),
            "{name} by {dims:?} is named by the template and never emitted"
        );
        let found = emitted.iter().any(|m| {
            m.name == name
                && m.dimensions.keys().eq(dims.iter())
                && values
                    .iter()
                    .all(|(dim, value)| m.dimensions.get(dim) == Some(value))
        });
        assert!(
            found,
            "{name} with {values:?} is named by the template and never emitted with those values"
        );
    }
    // And exactly what happened, for the counts the alarms divide.
    // In the Redis outage each lookup fails: the user's, and the feed's (posts), the post's and
    // its first comments' (comments).
    for (name, lookups) in [("users", 1.0), ("posts", 2.0), ("comments", 3.0)] {
        let count = |metric: &str| emitted.sum(metric, name, None);
        assert_eq!(count("ServerErrors"), 1.0, "{name}: the one 503");
        assert_eq!(count("CacheNegatives"), 1.0, "{name}");
        assert_eq!(count("CacheErrors"), lookups, "{name}: the Redis outage");
        assert_eq!(
            emitted.sum_by_kind("CacheErrors", name, "user"),
            1.0,
            "{name}"
        );
    }
    assert_eq!(emitted.sum("CommentsCounted", "upkeep", None), 1.0);
    assert_eq!(emitted.sum("CommentsRemoved", "upkeep", None), 1.0);
    assert_eq!(emitted.sum("CommentsSwept", "upkeep", None), 1.0);
    assert_eq!(emitted.sum("UpkeepBatchesFailed", "upkeep", None), 1.0);
    assert_eq!(emitted.sum_by_kind("CacheMisses", "posts", "post"), 1.0);
    assert_eq!(emitted.sum("SyncRecordsStale", "cache-sync", None), 1.0);
    assert_eq!(emitted.sum("SyncRecordsFailed", "cache-sync", None), 1.0);
    assert_eq!(emitted.sum("SyncBatchesFailed", "cache-sync", None), 1.0);
    assert_eq!(
        emitted.sum("ColdStarts", "cache-sync", None),
        2.0,
        "two processes"
    );
}

/// Every answer is counted in its status class, by route and by function: `201` and `204` as
/// `Successes`, a `304` as `Redirections`, a `404` as `ClientErrors` (and a `503` as
/// `ServerErrors`, which the test above sees).
#[tokio::test]
async fn every_answer_is_counted_in_its_status_class() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Classes").await;
    let function = api_functions(&env, &env.dynamo.endpoint).await;
    let created = function
        .send(
            ApiRequest::post("/posts")
                .bearer(&token)
                .json(json!({"caption": "c"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let path = format!("/posts/{}", created.body["id"].as_str().expect("id"));
    let etag = created.header("etag").expect("an ETag").to_owned();
    let unchanged = function
        .send(
            ApiRequest::get(&path)
                .bearer(&token)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(unchanged.status, 304, "{}", unchanged.raw_body);
    assert_eq!(
        function
            .send(ApiRequest::delete(&path).bearer(&token))
            .await
            .status,
        204
    );
    function
        .send(ApiRequest::get(&path).bearer(&token))
        .await
        .assert_error(404, "not_found");

    let emitted = emf::parse(&function.log());
    let count = |name: &str, route: Option<&str>| emitted.sum(name, "posts", route);
    assert_eq!(count("Successes", Some("POST /posts")), 1.0);
    assert_eq!(count("Successes", Some("DELETE /posts/{postId}")), 1.0);
    assert_eq!(count("Redirections", Some("GET /posts/{postId}")), 1.0);
    assert_eq!(count("ClientErrors", Some("GET /posts/{postId}")), 1.0);
    assert_eq!(count("Successes", Some("GET /posts/{postId}")), 0.0);
    assert_eq!(count("Successes", None), 2.0, "by function too");
    assert_eq!(count("Redirections", None), 1.0);
    assert_eq!(count("ClientErrors", None), 1.0);
    assert_eq!(count("ServerErrors", None), 0.0);
    assert_eq!(count("Requests", None), 4.0);
}
