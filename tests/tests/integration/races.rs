//! Races: many requests on one thing at once, each in its own task on a multi-threaded
//! runtime. Nothing is lost, nothing is counted twice, exactly one of a conflicting set wins.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use integration_tests::{id_of, unique_email, ApiRequest, ApiResponse, TestEnv};
use serde_json::json;

/// A test world sized for hundreds of requests at once in one process. The production
/// timeouts are meant for one request per Lambda instance, not for 200 sharing two cores with
/// the emulator (under that load a `GetItem` can wait past its 3 s budget and answer `503`,
/// as it should); here they are long, since what is under test is atomicity, not latency.
async fn patient_env() -> Arc<TestEnv> {
    Arc::new(TestEnv::patient().await)
}

/// Sends every request in its own task, all at once; responses in the order given.
async fn all_at_once(env: &Arc<TestEnv>, requests: Vec<ApiRequest>) -> Vec<ApiResponse> {
    let tasks = requests.into_iter().map(|request| {
        let env = Arc::clone(env);
        tokio::spawn(async move { env.send(request).await })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("request task"))
        .collect()
}

fn statuses(responses: &[ApiResponse]) -> Vec<u16> {
    responses.iter().map(|r| r.status).collect()
}

fn add_comment(token: &str, post_id: &str, text: &str) -> ApiRequest {
    ApiRequest::post(&format!("/posts/{post_id}/comments"))
        .bearer(token)
        .json(json!({"text": text}))
}

async fn post(env: &TestEnv, token: &str, post_id: &str) -> ApiResponse {
    env.send(ApiRequest::get(&format!("/posts/{post_id}")).bearer(token))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_comments_on_one_post_are_all_counted_and_listed_once() {
    let env = patient_env().await;
    let (author, _) = env.new_user("Viral").await;
    let (crowd, _) = env.new_user("Crowd").await;
    let post_id = id_of(&env.new_post(&author, "viral").await);

    let requests = (0..200).map(|i| {
        add_comment(
            if i % 2 == 0 { &crowd } else { &author },
            &post_id,
            &format!("c{i}"),
        )
    });
    let responses = all_at_once(&env, requests.collect()).await;
    for res in &responses {
        assert_eq!(res.status, 201, "{}", res.raw_body);
    }
    let created: HashSet<String> = responses.iter().map(|r| id_of(&r.body)).collect();
    assert_eq!(created.len(), 200, "200 distinct ids");

    assert_eq!(env.comment_count(&author, &post_id).await, 200);
    let ids = env
        .walk(&crowd, &format!("/posts/{post_id}/comments"), 30)
        .await
        .0;
    assert_eq!(ids.len(), 200, "each listed once");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), created);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "oldest first");
    let texts: HashSet<String> = responses
        .iter()
        .map(|r| r.body["text"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(texts.len(), 200, "every comment kept its own text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_and_deletes_of_comments_keep_the_count_equal_to_the_list() {
    let env = patient_env().await;
    let (author, _) = env.new_user("Author").await;
    let (crowd, _) = env.new_user("Crowd").await;
    let post_id = id_of(&env.new_post(&author, "busy").await);
    let first = all_at_once(
        &env,
        (0..60)
            .map(|i| add_comment(&crowd, &post_id, &format!("a{i}")))
            .collect(),
    )
    .await;
    assert!(
        first.iter().all(|r| r.status == 201),
        "{:?}",
        statuses(&first)
    );

    // 40 deletes (each comment twice: by its author and by the post's author) race 40 adds.
    let mut requests = Vec::new();
    for (i, res) in first.iter().take(20).enumerate() {
        let path = format!("/posts/{post_id}/comments/{}", id_of(&res.body));
        requests.push(ApiRequest::delete(&path).bearer(&crowd));
        requests.push(ApiRequest::delete(&path).bearer(&author));
        requests.push(add_comment(&crowd, &post_id, &format!("b{i}")));
        requests.push(add_comment(&author, &post_id, &format!("c{i}")));
    }
    let responses = all_at_once(&env, requests).await;
    for pair in responses.chunks(4) {
        let mut deletes = [pair[0].status, pair[1].status];
        deletes.sort_unstable();
        assert_eq!(
            deletes,
            [204, 404],
            "one delete of a comment wins, the other finds it gone"
        );
        assert_eq!((pair[2].status, pair[3].status), (201, 201));
    }

    let ids = env
        .walk(&author, &format!("/posts/{post_id}/comments"), 100)
        .await
        .0;
    assert_eq!(ids.len(), 60 - 20 + 40);
    assert_eq!(
        env.comment_count(&author, &post_id).await,
        ids.len() as u64,
        "the count is the list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_patches_with_the_same_if_match_let_exactly_one_through() {
    let env = patient_env().await;
    let (token, _) = env.new_user("Editor").await;
    let post_id = id_of(&env.new_post(&token, "v1").await);
    let path = format!("/posts/{post_id}");

    let edits = (0..50).map(|i| {
        ApiRequest::patch(&path)
            .bearer(&token)
            .header("if-match", "\"1\"")
            .json(json!({"caption": format!("edit {i}")}))
    });
    let responses = all_at_once(&env, edits.collect()).await;
    let winners: Vec<&ApiResponse> = responses.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", statuses(&responses));
    for res in responses.iter().filter(|r| r.status != 200) {
        res.assert_error(412, "precondition_failed");
    }
    assert_eq!(winners[0].body["version"], 2);
    assert_eq!(winners[0].header("etag"), Some("\"2\""));

    let got = post(&env, &token, &post_id).await;
    assert_eq!(got.body["version"], 2, "one edit, one version");
    assert_eq!(
        got.body["caption"], winners[0].body["caption"],
        "the winner's edit is the one kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_registrations_of_one_email_make_exactly_one_user() {
    let env = patient_env().await;
    let email = unique_email("Contested");
    let password = |i: usize| format!("password number {i}");
    let registrations = (0..20).map(|i| {
        // Spelled differently, one user all the same.
        let spelled = if i % 2 == 0 {
            email.clone()
        } else {
            format!("  {}  ", email.to_uppercase())
        };
        ApiRequest::post("/users")
            .json(json!({"email": spelled, "name": format!("Racer {i}"), "password": password(i)}))
    });
    let responses = all_at_once(&env, registrations.collect()).await;
    let winners: Vec<usize> = (0..20).filter(|i| responses[*i].status == 201).collect();
    assert_eq!(winners.len(), 1, "{:?}", statuses(&responses));
    for res in responses.iter().filter(|r| r.status != 201) {
        res.assert_error(409, "email_taken");
    }
    let (winner, user) = (winners[0], &responses[winners[0]].body);
    assert_eq!(user["name"], format!("Racer {winner}"));

    // The stored user, its password and its cache entry are all the winner's.
    let login = env
        .send(
            ApiRequest::post("/auth/login")
                .json(json!({"email": email, "password": password(winner)})),
        )
        .await;
    assert_eq!(
        (login.status, &login.body["user"]),
        (200, user),
        "{}",
        login.raw_body
    );
    let loser = (winner + 1) % 20;
    env.send(
        ApiRequest::post("/auth/login").json(json!({"email": email, "password": password(loser)})),
    )
    .await
    .assert_error(401, "invalid_credentials");
    let cached = env.redis.entry(&email).await.expect("an entry");
    assert_eq!(
        cached["user"]["id"], user["id"],
        "the cache holds the winner"
    );
    let token = login.body["token"].as_str().expect("token");
    let me = env.me(token).await;
    assert_eq!((me.status, &me.body), (200, user));
}

/// One round: comments pour onto a post; after `before` of them are in, the author deletes
/// it; more keep coming during and after the delete.
async fn delete_while_commenting(env: &Arc<TestEnv>, author: &str, crowd: &str, before: usize) {
    let post_id = id_of(&env.new_post(author, "going away").await);
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..80)
        .map(|i| {
            let (env, done) = (Arc::clone(env), Arc::clone(&done));
            let request = add_comment(crowd, &post_id, &format!("c{i}"));
            tokio::spawn(async move {
                let res = env.send(request).await;
                done.fetch_add(1, Ordering::SeqCst);
                res
            })
        })
        .collect();
    while done.load(Ordering::SeqCst) < before {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let deleted = env
        .send(ApiRequest::delete(&format!("/posts/{post_id}")).bearer(author))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.raw_body);
    let after = all_at_once(
        env,
        (0..10)
            .map(|i| add_comment(crowd, &post_id, &format!("late {i}")))
            .collect(),
    )
    .await;
    let mut responses: Vec<ApiResponse> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    for res in &after {
        res.assert_error(404, "not_found");
    }
    responses.extend(after);

    let created: Vec<String> = responses
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| id_of(&r.body))
        .collect();
    for res in responses.iter().filter(|r| r.status != 201) {
        res.assert_error(404, "not_found");
    }
    assert!(
        created.len() >= before,
        "{} created, {before} were in before the delete",
        created.len()
    );
    println!(
        "delete after {before} comments: {} of {} comments were 201 (all gone with the post), {} were 404",
        created.len(),
        responses.len(),
        responses.len() - created.len()
    );
    // None is readable from the delete's answer on, swept or not yet ...
    for id in &created {
        let res = env
            .send(ApiRequest::get(&format!("/posts/{post_id}/comments/{id}")).bearer(crowd))
            .await;
        res.assert_error(404, "not_found");
    }
    env.send(ApiRequest::get(&format!("/posts/{post_id}/comments")).bearer(crowd))
        .await
        .assert_error(404, "not_found");
    // ... and once the upkeep has had the stream, none is left: the sweep took those written
    // before it, the upkeep removed those that landed after (orphans).
    env.settle().await;
    assert_eq!(
        env.post_partition(&post_id).await,
        Vec::<String>::new(),
        "nothing survives the post"
    );
    post(env, crowd, &post_id)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_post_while_comments_pour_in_leaves_no_comment_behind() {
    let env = patient_env().await;
    let (author, _) = env.new_user("Leaver").await;
    let (crowd, _) = env.new_user("Crowd").await;
    for before in [0, 3, 10, 25] {
        delete_while_commenting(&env, &author, &crowd, before).await;
    }
    // Nothing of it reached the feed or another post.
    let feed = env.send(ApiRequest::get("/posts").bearer(&author)).await;
    assert_eq!(feed.body["items"], json!([]), "{}", feed.raw_body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_deletes_of_one_comment_by_both_who_may_count_once() {
    let env = patient_env().await;
    let (author, _) = env.new_user("PostAuthor").await;
    let (token, _) = env.new_user("CommentAuthor").await;
    let post_id = id_of(&env.new_post(&author, "post").await);
    let victim =
        id_of(&all_at_once(&env, vec![add_comment(&token, &post_id, "doomed")]).await[0].body);
    all_at_once(&env, vec![add_comment(&token, &post_id, "stays")]).await;
    let path = format!("/posts/{post_id}/comments/{victim}");

    let requests = (0..10)
        .map(|i| ApiRequest::delete(&path).bearer(if i % 2 == 0 { &token } else { &author }));
    let statuses: Vec<u16> = all_at_once(&env, requests.collect())
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 204 || *s == 404),
        "{statuses:?}"
    );
    assert_eq!(env.comment_count(&author, &post_id).await, 1);
}

/// A registration racing the delete of its email's user takes the registration after the
/// deleted user's: its read of the email's last registration is held until the delete has left
/// its tombstone and removed the user, so the write made with what it read is refused (the
/// tombstone is no longer of an earlier registration) and made again with the next one. With
/// the deleted user's registration, the new user would be hidden behind the deleted user's
/// tombstone in the cache, which cache-sync writes past every revision of that registration.
#[tokio::test]
async fn a_registration_racing_a_delete_of_its_email_takes_the_next_registration() {
    let (env, proxy) = TestEnv::builder().behind_dynamo_proxy().await;
    let email = unique_email("Raced");
    let parsed = shared::domain::Email::parse(&email).expect("an email");
    let first = env.register(&email, "First").await;
    assert_eq!(first.status, 201, "{}", first.raw_body);
    let login = env.login(&email).await;
    let token = login.body["token"].as_str().expect("a token").to_owned();
    let stored = || async {
        env.app
            .store
            .get_user(&parsed)
            .await
            .expect("a read")
            .expect("a user")
    };
    let deleted = stored().await;

    proxy.hold_answers("GetItem", 1);
    let second = env.register(&email, "Second");
    let delete = async {
        // The registration has read the email's last registration; its answer waits.
        proxy.answers_held(1).await;
        let res = env
            .send(ApiRequest::delete("/users/me").bearer(&token))
            .await;
        assert_eq!(res.status, 204, "{}", res.raw_body);
        proxy.release_answers();
    };
    let (second, ()) = tokio::join!(second, delete);
    assert_eq!(second.status, 201, "{}", second.raw_body);

    let registered = stored().await;
    assert_eq!(registered.id, id_of(&second.body));
    assert_eq!(
        registered.registration,
        deleted.registration + 1,
        "the registration after the deleted user's"
    );
    let login = env.login(&email).await;
    let token = login.body["token"].as_str().expect("a token");
    assert_eq!(env.me(token).await.status, 200);
}
