//! Many invocations at once through the real runtime loop: the functions' binary (`lambda-app`,
//! started as each function's `main.rs` starts it: `shared::runtime`'s runtime,
//! `lambda_http::run_concurrent`) in a process of its own, polling the harness's Runtime API,
//! against the test's Redis and DynamoDB. `concurrency.rs` drives the handlers in this process;
//! here the runtime's own loops take the events, attach each its own context, and post each
//! answer under its own request id.
//!
//! - With `AWS_LAMBDA_MAX_CONCURRENCY=32`, many distinct users and request ids are in flight at
//!   once (16 DynamoDB reads held at the same time), and every answer is its own: its user in
//!   the body, and in the log its request id beside its user.
//! - Without the variable (default Lambda), one invocation at a time: while one is held in its
//!   DynamoDB read, no other starts.
//! - The metrics of interleaved invocations of the three functions and four routes: every EMF
//!   line counts its own function's and route's requests, cache lookups, Redis and DynamoDB
//!   calls, to the unit.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use futures::future::join_all;
use integration_tests::emf::{self, Tally};
use integration_tests::lambda_process::LambdaProcess;
use integration_tests::{ApiRequest, ApiResponse, DynamoProxy, TestEnv};
use redis::AsyncCommands;
use serde_json::{json, Value};
use shared::domain::{new_id, now_rfc3339, Email, User};
use shared::store::NewUser;

fn lambda_app() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lambda-app"))
}

/// A user of the test: its token and what `GET /users/me` answers for it.
struct Person {
    token: String,
    id: String,
    email: String,
}

/// `n` users, registered as `POST /users` registers them (their entries cached) but without the
/// Argon2 hash, which nothing here checks, and a token for each.
async fn people(env: &TestEnv, n: usize) -> Vec<Person> {
    let mut people = Vec::with_capacity(n);
    for i in 0..n {
        let email = integration_tests::unique_email(&format!("Loop{i}"));
        let user = User {
            id: new_id(),
            email: Email::parse(&email).expect("email"),
            name: format!("Loop {i}"),
            jwt_version: 1,
            revision: 1,
            registration: 0,
            created_at: now_rfc3339(),
        };
        let user = env
            .app
            .users
            .register(NewUser {
                user,
                password_hash: "not-a-hash".into(),
            })
            .await
            .expect("user");
        let token = env.app.auth.keys().issue(&user).expect("token").token;
        people.push(Person {
            token,
            id: user.id,
            email,
        });
    }
    people
}

/// Removes every person's entry, so each invocation misses and reads DynamoDB.
async fn evict(env: &TestEnv, people: &[Person]) {
    let mut conn = env.redis.connection().await.expect("redis");
    for person in people {
        let _: i64 = conn
            .del(integration_tests::cache_key(&person.email))
            .await
            .expect("DEL");
    }
}

/// The functions' process on `env`'s Redis and on DynamoDB at `dynamodb`, configured as the
/// template configures a function, with `AWS_LAMBDA_MAX_CONCURRENCY` set to `concurrency`
/// (unset for `None`, as default Lambda leaves it); ready for events.
async fn function(env: &TestEnv, dynamodb: &str, concurrency: Option<usize>) -> LambdaProcess {
    let vars: Vec<(&str, String)> = concurrency
        .map(|n| ("AWS_LAMBDA_MAX_CONCURRENCY", n.to_string()))
        .into_iter()
        .collect();
    LambdaProcess::ready(lambda_app(), "users", env, dynamodb, &vars).await
}

/// The request id the harness's Runtime API gives the `n`th event it hands out (from 1), in the
/// order the invocations were started: `join_all` starts its futures in order, and each takes
/// its id when first polled.
fn request_id(n: usize) -> String {
    format!("request-{n:08}")
}

/// Every `request done` line of the log: its request id and the user its span names.
fn done_lines(log: &str) -> HashMap<String, String> {
    let mut done = HashMap::new();
    for line in log.lines().filter(|l| l.contains("\"request done\"")) {
        let line: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let span = &line["span"];
        let request_id = span["request_id"]
            .as_str()
            .expect("a request id")
            .to_owned();
        let user = span["user_id"].as_str().unwrap_or_default().to_owned();
        assert!(
            done.insert(request_id.clone(), user).is_none(),
            "{request_id} ended twice"
        );
    }
    done
}

/// Each answer is its own person's, and in the log each request id names its own person.
fn assert_own_answers(people: &[&Person], answers: &[ApiResponse], first_id: usize, log: &str) {
    let done = done_lines(log);
    for (i, (person, res)) in people.iter().zip(answers).enumerate() {
        assert_eq!(res.status, 200, "invocation {i}: {}", res.raw_body);
        assert_eq!(
            (&res.body["id"], &res.body["email"]),
            (&json!(person.id), &json!(person.email)),
            "crossed answer"
        );
        let id = request_id(first_id + i);
        let logged = done
            .get(&id)
            .unwrap_or_else(|| panic!("no `request done` line for {id}:\n{log}"));
        assert_eq!(
            logged, &person.id,
            "{id} was invocation {i}'s, for {}",
            person.id
        );
    }
}

#[tokio::test]
async fn with_max_concurrency_many_users_and_request_ids_are_in_flight_at_once_each_answered_its_own(
) {
    const USERS: usize = 64;
    const HELD: usize = 16;
    let env = TestEnv::new().await;
    let proxy = DynamoProxy::start(&env.dynamo.endpoint).await;
    let people = people(&env, USERS).await;
    evict(&env, &people).await;
    let function = function(&env, &proxy.endpoint, Some(32)).await;

    // Every invocation misses and reads its user; the first 16 reads are answered by DynamoDB
    // and held: they are all in flight in the function at once, then let go together.
    proxy.hold_answers("GetItem", HELD);
    let invocations = join_all(
        people
            .iter()
            .map(|p| function.send(ApiRequest::get("/users/me").bearer(&p.token))),
    );
    let held = async {
        proxy.answers_held(HELD).await;
        proxy.release_answers();
    };
    let (answers, ()) = tokio::join!(invocations, held);
    assert_own_answers(
        &people.iter().collect::<Vec<_>>(),
        &answers,
        1,
        &function.log(),
    );

    // Hits now, as many at once, each its own again.
    let order: Vec<&Person> = people.iter().rev().chain(people.iter()).collect();
    let answers = join_all(
        order
            .iter()
            .map(|p| function.send(ApiRequest::get("/users/me").bearer(&p.token))),
    )
    .await;
    assert_own_answers(&order, &answers, USERS + 1, &function.log());
    println!(
        "{USERS} users, {} invocations, {HELD} held in the function at once",
        USERS + order.len()
    );
}

#[tokio::test]
async fn without_max_concurrency_invocations_are_served_one_at_a_time() {
    const USERS: usize = 8;
    let env = TestEnv::new().await;
    let proxy = DynamoProxy::start(&env.dynamo.endpoint).await;
    let people = people(&env, USERS).await;
    evict(&env, &people).await;
    let function = function(&env, &proxy.endpoint, None).await;

    // The first invocation's read is held; for as long as it is, no other invocation starts
    // (its read would be held too), though seven more events wait.
    proxy.hold_answers("GetItem", 2);
    let invocations = join_all(
        people
            .iter()
            .map(|p| function.send(ApiRequest::get("/users/me").bearer(&p.token))),
    );
    let held = async {
        proxy.answers_held(1).await;
        let second = tokio::time::timeout(Duration::from_millis(700), proxy.answers_held(2)).await;
        assert!(
            second.is_err(),
            "a second invocation ran while the first was held"
        );
        proxy.hold_answers("GetItem", 0);
        proxy.release_answers();
    };
    let (answers, ()) = tokio::join!(invocations, held);
    assert_own_answers(
        &people.iter().collect::<Vec<_>>(),
        &answers,
        1,
        &function.log(),
    );
}

/// The request of one kind of invocation, for a person, their post, and the invocation's number.
type MakeRequest = Box<dyn Fn(&Person, &str, usize) -> ApiRequest>;

/// What one kind of invocation is: its function, its route key, and its request.
struct Kind {
    function: &'static str,
    route: &'static str,
    request: MakeRequest,
}

#[tokio::test]
async fn metrics_of_interleaved_invocations_count_for_their_own_function_and_route() {
    const EACH: usize = 30;
    let env = TestEnv::new().await;
    let people = people(&env, 6).await;
    let mut posts = Vec::new();
    for person in &people {
        let post = env.new_post(&person.token, "metered").await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        // Each post's first comments read once here, so every read below is a hit.
        let comments = env
            .send(ApiRequest::get(&format!("/posts/{post}/comments")).bearer(&person.token))
            .await;
        assert_eq!(comments.status, 200, "{}", comments.raw_body);
        posts.push(post);
    }
    let function = function(&env, &env.dynamo.endpoint, Some(32)).await;

    let kinds = [
        Kind {
            function: "users",
            route: "GET /users/me",
            request: Box::new(|p, _, _| ApiRequest::get("/users/me").bearer(&p.token)),
        },
        Kind {
            function: "posts",
            route: "GET /posts/{postId}",
            request: Box::new(|p, post, _| {
                ApiRequest::get(&format!("/posts/{post}")).bearer(&p.token)
            }),
        },
        Kind {
            function: "comments",
            route: "GET /posts/{postId}/comments",
            request: Box::new(|p, post, _| {
                ApiRequest::get(&format!("/posts/{post}/comments")).bearer(&p.token)
            }),
        },
        Kind {
            function: "posts",
            route: "POST /posts",
            request: Box::new(|p, _, n| {
                ApiRequest::post("/posts")
                    .bearer(&p.token)
                    .json(json!({"caption": format!("n{n}")}))
            }),
        },
    ];
    // The four kinds interleaved, 32 at a time in the process.
    let invocations: Vec<(usize, ApiRequest)> = (0..EACH * kinds.len())
        .map(|n| {
            let (kind, who) = (n % kinds.len(), n % people.len());
            (kind, (kinds[kind].request)(&people[who], &posts[who], n))
        })
        .collect();
    let answers = join_all(
        invocations
            .iter()
            .map(|(_, request)| function.send(request.clone())),
    )
    .await;
    for ((kind, _), res) in invocations.iter().zip(&answers) {
        assert!(
            res.status == 200 || res.status == 201,
            "{}: {} {}",
            kinds[*kind].route,
            res.status,
            res.raw_body
        );
    }

    let emitted = emf::parse(&function.log());
    let sum = |name: &str, function: &str, route: Option<&str>| emitted.sum(name, function, route);
    let samples =
        |name: &str, function: &str, route: Option<&str>| emitted.samples(name, function, route);
    let each = EACH as f64;
    // Requests and latency samples by route: each route's own count, under its own function.
    for kind in &kinds {
        assert_eq!(
            sum("Requests", kind.function, Some(kind.route)),
            each,
            "{}",
            kind.route
        );
        assert_eq!(
            samples("Latency", kind.function, Some(kind.route)),
            EACH,
            "{}",
            kind.route
        );
    }
    let routes: Vec<(&str, &str)> = emitted
        .iter()
        .filter_map(|m| {
            Some((
                m.dimensions.get("Function")?.as_str(),
                m.dimensions.get("Route")?.as_str(),
            ))
        })
        .collect();
    for (function, route) in routes {
        assert!(
            kinds
                .iter()
                .any(|k| (k.function, k.route) == (function, route)),
            "{route} counted under {function}"
        );
    }
    // By function: its requests, each a hit of every entry it looks up (a `GET` each, sent
    // together), and DynamoDB calls only where the route writes:
    // - users, `GET /users/me`: the user;
    // - posts, `GET /posts/{postId}`: the user and the post; `POST /posts`: the user, the new
    //   post's lease, then its `PutItem` and two compare-and-sets (the post, the feed);
    // - comments, `GET /posts/{postId}/comments`: the user, the post, the first comments.
    let expected = [
        ("users", each, each, each, 0.0),
        ("posts", 2.0 * each, 3.0 * each, 6.0 * each, each),
        ("comments", each, 3.0 * each, 3.0 * each, 0.0),
    ];
    for (function, requests, hits, redis_calls, dynamodb_calls) in expected {
        assert_eq!(sum("Requests", function, None), requests, "{function}");
        assert_eq!(
            sum("CacheHits", function, None),
            hits,
            "{function}: cache hits"
        );
        assert_eq!(
            sum("DynamoDbReadsAvoided", function, None),
            hits,
            "{function}"
        );
        assert_eq!(
            samples("AuthTime", function, None),
            requests as usize,
            "{function}: authentications"
        );
        assert_eq!(
            sum("RedisCalls", function, None),
            redis_calls,
            "{function}: Redis calls"
        );
        assert_eq!(
            samples("RedisLatency", function, None),
            redis_calls as usize,
            "{function}"
        );
        assert_eq!(
            sum("DynamoDbCalls", function, None),
            dynamodb_calls,
            "{function}: DynamoDB calls"
        );
        for none in ["CacheMisses", "CacheErrors", "ClientErrors", "ServerErrors"] {
            assert_eq!(sum(none, function, None), 0.0, "{function}: {none}");
        }
    }
    assert_eq!(
        emitted.sum_by_kind("CacheHits", "comments", "comments"),
        each,
        "the first comments, from the cache"
    );
    assert_eq!(samples("DynamoDbLatency", "posts", None), EACH);
    let cold: f64 = ["users", "posts", "comments"]
        .iter()
        .map(|f| sum("ColdStarts", f, None))
        .sum();
    assert_eq!(
        cold, 1.0,
        "one cold start, on the first invocation's function"
    );
}
