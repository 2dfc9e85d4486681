//! The metrics the functions emit, as CloudWatch reads them: Embedded Metric Format lines
//! (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html),
//! each metric with its unit and dimensions, and every metric the dashboard and alarms of
//! `template.yaml` use actually emitted.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::{emitted_metrics, ApiRequest, TestEnv};
use serde_json::{json, Value};
use shared::metrics::{DEFAULT_NAMESPACE, METRICS};

/// The units CloudWatch accepts (`MetricDatum.Unit`).
const CLOUDWATCH_UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One metric as a line declared it: name, unit, dimension names, dimension values, values.
#[derive(Debug, Clone)]
struct Emitted {
    name: String,
    unit: String,
    dimensions: BTreeMap<String, String>,
    values: Vec<f64>,
}

/// Every metric of every EMF line in `text`, each line checked against the specification:
/// the `_aws` block (a millisecond timestamp, one namespace, dimension sets naming top-level
/// string members, metric definitions naming top-level numbers or arrays of up to 100
/// numbers), and CloudWatch's units.
fn parse_emf(text: &str) -> Vec<Emitted> {
    let mut emitted = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let doc: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let aws = &doc["_aws"];
        let timestamp = aws["Timestamp"]
            .as_u64()
            .unwrap_or_else(|| panic!("no Timestamp: {line}"));
        assert!(
            timestamp > 1_700_000_000_000,
            "milliseconds since the epoch: {timestamp}"
        );
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics");
        assert!(!directives.is_empty(), "{line}");
        for directive in directives {
            assert_eq!(
                directive["Namespace"].as_str(),
                Some(DEFAULT_NAMESPACE),
                "{line}"
            );
            let sets = directive["Dimensions"].as_array().expect("Dimensions");
            assert!(!sets.is_empty(), "every metric has its dimensions: {line}");
            for set in sets {
                let names: Vec<&str> = set
                    .as_array()
                    .expect("a set")
                    .iter()
                    .map(|n| n.as_str().expect("a name"))
                    .collect();
                assert!(names.len() <= 30, "{line}");
                for definition in directive["Metrics"].as_array().expect("Metrics") {
                    let name = definition["Name"].as_str().expect("Name");
                    let unit = definition["Unit"]
                        .as_str()
                        .expect("every metric says its unit");
                    assert!(CLOUDWATCH_UNITS.contains(&unit), "{unit}");
                    let values = match &doc[name] {
                        Value::Number(n) => vec![n.as_f64().expect("a number")],
                        Value::Array(values) => {
                            assert!(
                                !values.is_empty() && values.len() <= 100,
                                "{name}: 1 to 100 values"
                            );
                            values
                                .iter()
                                .map(|v| v.as_f64().expect("numbers"))
                                .collect()
                        }
                        other => panic!("{name} has no value: {other} in {line}"),
                    };
                    let dimensions = names
                        .iter()
                        .map(|n| {
                            let value = doc[*n]
                                .as_str()
                                .unwrap_or_else(|| panic!("dimension {n} has no value: {line}"));
                            ((*n).to_owned(), value.to_owned())
                        })
                        .collect();
                    emitted.push(Emitted {
                        name: name.to_owned(),
                        unit: unit.to_owned(),
                        dimensions,
                        values,
                    });
                }
            }
        }
    }
    emitted
}

/// Lines emitted since `before` bytes of the process's metrics output.
fn since(before: usize) -> Vec<Emitted> {
    parse_emf(&emitted_metrics()[before..])
}

#[tokio::test]
async fn requests_emit_their_route_status_cache_and_call_metrics_as_valid_emf() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Metered").await;
    let before = emitted_metrics().len();

    // A miss (the entry is gone), then hits, a refusal, a 404 and a failed login.
    let mut conn = env.redis.connection().await.expect("redis");
    let _: i64 = redis::cmd("FLUSHALL")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| 0)
        .expect("FLUSHALL");
    for _ in 0..3 {
        assert_eq!(env.me(&token).await.status, 200);
    }
    let post = env
        .send(
            ApiRequest::post("/posts")
                .bearer(&token)
                .json(json!({"caption": "m"})),
        )
        .await;
    assert_eq!(post.status, 201);
    let id = post.body["id"].as_str().expect("id").to_owned();
    env.send(ApiRequest::get(&format!("/posts/{id}")).bearer(&token))
        .await;
    env.me("nope").await.assert_error(401, "unauthorized");
    env.send(ApiRequest::get("/nowhere/at/all/123").bearer(&token))
        .await
        .assert_error(404, "not_found");
    env.send(ApiRequest::put(&format!("/posts/{id}")).bearer(&token))
        .await
        .assert_error(405, "method_not_allowed");

    let emitted = since(before);
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
    let by_route = |name: &str, route: &str| -> f64 {
        emitted
            .iter()
            .filter(|m| {
                m.name == name && m.dimensions.get("Route").map(String::as_str) == Some(route)
            })
            .flat_map(|m| m.values.iter())
            .sum()
    };
    let sum = |name: &str, route: Option<&str>| -> f64 {
        match route {
            Some(route) => by_route(name, route),
            None => emitted
                .iter()
                .filter(|m| m.name == name && !m.dimensions.contains_key("Route"))
                .flat_map(|m| m.values.iter())
                .sum(),
        }
    };
    // Routes by their route key, a fixed set: never an id or a raw path. Other tests run at the
    // same time and write to the same output, so counts are at least ours.
    assert!(sum("Requests", Some("GET /users/me")) >= 4.0);
    assert!(sum("ClientErrors", Some("GET /users/me")) >= 1.0);
    assert!(sum("Requests", Some("GET /posts/{postId}")) >= 1.0);
    assert!(sum("Requests", Some("$default")) >= 1.0);
    assert!(sum("ClientErrors", Some("ANY /posts/{postId}")) >= 1.0);
    assert!(
        sum("Requests", None) >= sum("Requests", Some("GET /users/me")),
        "by function too"
    );
    let routes: BTreeSet<&str> = emitted
        .iter()
        .filter_map(|m| m.dimensions.get("Route"))
        .map(String::as_str)
        .collect();
    assert!(
        routes
            .iter()
            .all(|r| !r.contains(&id) && !r.contains("nowhere")),
        "{routes:?}"
    );
    assert!(
        sum("CacheMisses", None) >= 1.0 && sum("CacheHits", None) >= 3.0,
        "miss then hits"
    );
    assert!(sum("DynamoDbReadsAvoided", None) >= 3.0);
    assert!(sum("RedisCalls", None) >= 4.0 && sum("DynamoDbCalls", None) >= 2.0);
    let latencies: Vec<f64> = emitted
        .iter()
        .filter(|m| m.name == "Latency")
        .flat_map(|m| m.values.clone())
        .collect();
    assert!(
        latencies.len() >= 8 && latencies.iter().all(|ms| *ms > 0.0 && *ms < 60_000.0),
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
    let before = emitted_metrics().len();
    let _sync = env.stream_sync().await;
    let (token, _) = env.new_user("Synced").await;
    assert_eq!(
        env.send(ApiRequest::post("/auth/logout").bearer(&token))
            .await
            .status,
        204
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let emitted = since(before);
        let applied: f64 = emitted
            .iter()
            .filter(|m| m.name == "SyncRecordsApplied")
            .flat_map(|m| m.values.iter())
            .sum();
        let lag = emitted.iter().any(|m| m.name == "SyncLag");
        let function = emitted
            .iter()
            .filter(|m| m.name == "SyncRecordsApplied")
            .all(|m| m.dimensions.get("Function").map(String::as_str) == Some("cache-sync"));
        if applied >= 1.0 && lag && function {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sync metrics: {emitted:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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
/// `Function: cache-sync`, any `Route`), in what this test's own world emitted since it
/// started: hits, misses, negatives, Redis and DynamoDB outages in each API function, the
/// stream sync applying, skipping a stale state, refusing a bad record and failing a batch.
#[tokio::test]
async fn every_metric_the_template_names_is_emitted() {
    let before = emitted_metrics().len();
    let (env, proxy) = TestEnv::behind_dynamo_proxy().await;
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
    for (function, path) in &routes {
        assert_eq!(integration_tests::function_for(path), *function, "{path}");
        // A miss, then a hit.
        del(&env, &email).await;
        for _ in 0..2 {
            assert_eq!(
                env.send(ApiRequest::get(path).bearer(&token)).await.status,
                200,
                "{path}"
            );
        }
        // A user that does not exist: a miss that leaves a negative entry, then a negative.
        let nobody = integration_tests::unique_email("nobody");
        let signed =
            integration_tests::tokens::token_for(&ulid::Ulid::new().to_string(), &nobody, 1);
        for _ in 0..2 {
            env.send(ApiRequest::get(path).bearer(&signed))
                .await
                .assert_error(401, "unauthorized");
        }
        // DynamoDB refusing connections: a miss has nowhere to read from, 503.
        del(&env, &email).await;
        proxy.set(integration_tests::dynamo_proxy::Mode::Refuse);
        env.send(ApiRequest::get(path).bearer(&token))
            .await
            .assert_error(503, "service_unavailable");
        proxy.set(integration_tests::dynamo_proxy::Mode::Open);
    }

    // The sync: applied, stale (the cache holds a newer state than the table), a bad record,
    // and a batch that fails as a whole (Redis down).
    let records = integration_tests::sync::stream_records(&env.dynamo.endpoint).await;
    let mine = integration_tests::sync::user_records(&records, &email);
    let sync = integration_tests::sync::InProcess::new(&env.redis.url(), &env.dynamo.endpoint);
    let mut event = aws_lambda_events::event::dynamodb::Event::default();
    event.records = mine.clone();
    stream_poller::Invoke::invoke(&sync, event.clone())
        .await
        .expect("applied");
    let mut newer = env.redis.entry(&email).await.expect("an entry");
    newer["rev"] = json!(1000);
    newer["user"]["revision"] = json!(1000);
    env.redis.set_entry(&email, newer.to_string()).await;
    let mut bad = mine[0].clone();
    bad.change.new_image.insert(
        "jwtVersion".into(),
        serde_dynamo::AttributeValue::S("not a number".into()),
    );
    event.records = vec![mine[0].clone(), bad];
    stream_poller::Invoke::invoke(&sync, event.clone())
        .await
        .expect("applied, one record refused");
    let down = integration_tests::sync::InProcess::new(
        &format!("redis://127.0.0.1:{}", integration_tests::closed_port()),
        &env.dynamo.endpoint,
    );
    assert!(
        stream_poller::Invoke::invoke(&down, event).await.is_err(),
        "the batch fails"
    );

    // A Redis outage: every function's lookups fall back to DynamoDB.
    env.redis.stop();
    for (_, path) in &routes {
        assert_eq!(
            env.send(ApiRequest::get(path).bearer(&token)).await.status,
            200,
            "{path}"
        );
    }

    // Only what was emitted since this test started; other tests write to the same output at
    // the same time, so this is at least this test's own. The metrics an instance emits once,
    // on its first invocation, are the process's first invocation's, whenever that was.
    let once_per_instance = [shared::metrics::COLD_STARTS, shared::metrics::INIT_DURATION];
    let mut emitted = since(before);
    emitted.extend(
        parse_emf(&emitted_metrics())
            .into_iter()
            .filter(|m| once_per_instance.contains(&m.name.as_str())),
    );
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
        BTreeSet::from(["cache-sync", "comments", "posts", "users"]),
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
}

async fn del(env: &TestEnv, email: &str) {
    env.redis.evict(email).await;
}

/// Every answer is counted in its status class, by route and by function: `201` and `204` as
/// `Successes`, a `304` as `Redirections`, a `404` as `ClientErrors` (and a `503` as
/// `ServerErrors`, which the test above sees).
#[tokio::test]
async fn every_answer_is_counted_in_its_status_class() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Classes").await;
    let before = emitted_metrics().len();
    let created = env
        .send(
            ApiRequest::post("/posts")
                .bearer(&token)
                .json(json!({"caption": "c"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let path = format!("/posts/{}", created.body["id"].as_str().expect("id"));
    let etag = created.header("etag").expect("an ETag").to_owned();
    let unchanged = env
        .send(
            ApiRequest::get(&path)
                .bearer(&token)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(unchanged.status, 304, "{}", unchanged.raw_body);
    assert_eq!(
        env.send(ApiRequest::delete(&path).bearer(&token))
            .await
            .status,
        204
    );
    env.send(ApiRequest::get(&path).bearer(&token))
        .await
        .assert_error(404, "not_found");

    let emitted = since(before);
    let sum = |name: &str, route: Option<&str>| -> f64 {
        emitted
            .iter()
            .filter(|m| {
                m.name == name && m.dimensions.get("Function").map(String::as_str) == Some("posts")
            })
            .filter(|m| m.dimensions.get("Route").map(String::as_str) == route)
            .flat_map(|m| m.values.iter())
            .sum()
    };
    // Other tests write to the same output at the same time: at least ours.
    assert!(sum("Successes", Some("POST /posts")) >= 1.0);
    assert!(sum("Successes", Some("DELETE /posts/{postId}")) >= 1.0);
    assert!(sum("Redirections", Some("GET /posts/{postId}")) >= 1.0);
    assert!(sum("ClientErrors", Some("GET /posts/{postId}")) >= 1.0);
    assert!(
        sum("Successes", None) >= 2.0 && sum("Redirections", None) >= 1.0,
        "by function too"
    );
}
