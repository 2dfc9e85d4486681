//! Posts, as API.md describes them: create, the feed and its cursors, read, conditional
//! edits and deletes, and REST API (payload 1.0) events with a stage in the path.

use std::collections::HashSet;

use futures::stream::{self, StreamExt};
use integration_tests::{id_of, keys_of, ApiRequest, ApiResponse, TestEnv};
use serde_json::{json, Value};
use shared::domain::{new_id, now_rfc3339, Comment};

async fn create(env: &TestEnv, token: &str, body: Value) -> ApiResponse {
    env.send(ApiRequest::post("/posts").bearer(token).json(body))
        .await
}

#[tokio::test]
async fn create_returns_201_with_location_etag_and_every_field() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Author").await;
    let res = create(&env, &token, json!({"caption": "Hello"})).await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let post = &res.body;
    assert_eq!(
        keys_of(post),
        [
            "authorId",
            "authorName",
            "caption",
            "commentCount",
            "createdAt",
            "id",
            "imageUrl",
            "updatedAt",
            "version"
        ]
    );
    let id = id_of(post);
    assert_eq!(
        res.header("location"),
        Some(format!("/posts/{id}").as_str())
    );
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(post["authorId"], user["id"]);
    assert_eq!(post["authorName"], "Author");
    assert_eq!(post["caption"], "Hello");
    assert_eq!(post["imageUrl"], Value::Null);
    assert_eq!(post["commentCount"], 0);
    assert_eq!(post["version"], 1);
    assert_eq!(post["createdAt"], post["updatedAt"]);
    assert!(post["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    // GET sends the same post and ETag.
    let got = env
        .send(ApiRequest::get(&format!("/posts/{id}")).bearer(&token))
        .await;
    assert_eq!((got.status, &got.body), (200, post));
    assert_eq!(got.header("etag"), Some("\"1\""));

    // With an image, and with an explicit null one.
    let url = "https://img.example.com/a.png";
    let res = create(&env, &token, json!({"caption": "Pic", "imageUrl": url})).await;
    assert_eq!(
        (res.status, &res.body["imageUrl"]),
        (201, &json!(url)),
        "{}",
        res.raw_body
    );
    let res = create(&env, &token, json!({"caption": "No pic", "imageUrl": null})).await;
    assert_eq!(
        (res.status, &res.body["imageUrl"]),
        (201, &Value::Null),
        "{}",
        res.raw_body
    );
}

#[tokio::test]
async fn author_name_is_the_name_when_the_post_was_written() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Before").await;
    let post = env.new_post(&token, "snapshot").await;
    let res = env
        .send(
            ApiRequest::patch("/users/me")
                .bearer(&token)
                .json(json!({"name": "After"})),
        )
        .await;
    assert_eq!(res.status, 200);
    let got = env
        .send(ApiRequest::get(&format!("/posts/{}", id_of(&post))).bearer(&token))
        .await;
    assert_eq!(got.body["authorName"], "Before");
    let newer = env.new_post(&token, "renamed").await;
    assert_eq!(newer["authorName"], "After");
}

#[tokio::test]
async fn create_enforces_caption_and_image_url_limits() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Limits").await;

    let res = create(&env, &token, json!({"caption": "c".repeat(2200)})).await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_eq!(
        res.body["caption"].as_str().map(|c| c.chars().count()),
        Some(2200)
    );
    let res = create(&env, &token, json!({"caption": "é".repeat(2200)})).await;
    assert_eq!(
        res.status, 201,
        "2200 characters, not bytes: {}",
        res.raw_body
    );

    let at_limit = format!("https://x.io/{}", "a".repeat(2048 - "https://x.io/".len()));
    assert_eq!(at_limit.len(), 2048);
    let res = create(&env, &token, json!({"caption": "c", "imageUrl": at_limit})).await;
    assert_eq!(res.status, 201, "{}", res.raw_body);

    let over_limit = format!("{at_limit}a");
    for (body, field) in [
        (json!({"caption": ""}), "caption"),
        (json!({"caption": "c".repeat(2201)}), "caption"),
        (json!({}), "caption"),
        (json!({"caption": null}), "caption"),
        (json!({"caption": 12}), "caption"),
        (json!({"caption": ["a"]}), "caption"),
        (
            json!({"caption": "c", "imageUrl": "http://x.io/a.png"}),
            "imageUrl",
        ),
        (json!({"caption": "c", "imageUrl": over_limit}), "imageUrl"),
        (json!({"caption": "c", "imageUrl": 5}), "imageUrl"),
        (
            json!({"caption": "c", "imageUrl": {"url": "https://x.io"}}),
            "imageUrl",
        ),
        (json!({"caption": "c", "imageUrl": ""}), "imageUrl"),
        (json!({"caption": "c", "imageUrl": "https://"}), "imageUrl"),
        (
            json!({"caption": "c", "imageUrl": "javascript:alert(1)"}),
            "imageUrl",
        ),
    ] {
        let res = create(&env, &token, body.clone()).await;
        assert_eq!(res.status, 400, "{body} → {}", res.raw_body);
        res.assert_validation(field);
    }

    env.send(
        ApiRequest::post("/posts")
            .bearer(&token)
            .raw_body("text/plain", "{\"caption\":\"x\"}"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    env.send(
        ApiRequest::post("/posts")
            .bearer(&token)
            .raw_body("application/json", "[]"),
    )
    .await
    .assert_error(400, "invalid_json");
    env.send(
        ApiRequest::post("/posts")
            .bearer(&token)
            .json(json!({"caption": "x".repeat(70 * 1024)})),
    )
    .await
    .assert_error(413, "payload_too_large");
    env.send(ApiRequest::post("/posts").json(json!({"caption": "no token"})))
        .await
        .assert_error(401, "unauthorized");

    // Nothing refused was written.
    let (ids, _) = env.walk(&token, "/posts", 100).await;
    assert_eq!(ids.len(), 3);
}

#[tokio::test]
async fn create_accepts_a_base64_encoded_body() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("B64").await;
    let res = env
        .send(
            ApiRequest::post("/posts")
                .bearer(&token)
                .json(json!({"caption": "from base64 ✓"}))
                .base64_encoded(),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_eq!(res.body["caption"], "from base64 ✓");
}

#[tokio::test]
async fn feed_pages_newest_first_and_visits_every_post_once() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Feeder").await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(id_of(&env.new_post(&token, &format!("post {i}")).await));
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let (ids, sizes) = env.walk(&token, "/posts", 10).await;
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(ids, newest_first);

    // The default page is 20; an exact fit ends with a null cursor, not an empty page.
    let res = env.send(ApiRequest::get("/posts").bearer(&token)).await;
    assert_eq!(res.body["items"].as_array().map(Vec::len), Some(20));
    assert!(res.body["nextCursor"].is_string());
    let (ids, sizes) = env.walk(&token, "/posts", 25).await;
    assert_eq!((sizes, ids), (vec![25], newest_first.clone()));
    let (_, sizes) = env.walk(&token, "/posts", 5).await;
    assert_eq!(sizes, [5, 5, 5, 5, 5]);
    let (ids, sizes) = env.walk(&token, "/posts", 1).await;
    assert_eq!((sizes.len(), ids), (25, newest_first));
}

#[tokio::test]
async fn feed_paging_stays_exact_while_posts_are_added() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Busy").await;
    let mut created = Vec::new();
    for i in 0..12 {
        created.push(id_of(&env.new_post(&token, &format!("old {i}")).await));
    }
    let expected: Vec<String> = created.iter().rev().cloned().collect();

    let mut seen = Vec::new();
    let mut path = "/posts?limit=5".to_owned();
    let mut added = 0;
    loop {
        let res = env.send(ApiRequest::get(&path).bearer(&token)).await;
        assert_eq!(res.status, 200, "{}", res.raw_body);
        seen.extend(
            res.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(id_of),
        );
        // Others keep posting between pages.
        for _ in 0..3 {
            env.new_post(&token, &format!("new {added}")).await;
            added += 1;
        }
        match res.body["nextCursor"].as_str() {
            Some(c) => path = format!("/posts?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn feed_refuses_bad_limits_and_cursors() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Cursor").await;
    let mut post = Value::Null;
    for i in 0..3 {
        post = env.new_post(&token, &format!("p{i}")).await;
    }
    for limit in [
        "0",
        "101",
        "abc",
        "-1",
        "1.5",
        "",
        "99999999999999999999999",
    ] {
        let res = env
            .send(ApiRequest::get(&format!("/posts?limit={limit}")).bearer(&token))
            .await;
        res.assert_validation("limit");
    }
    for limit in ["1", "100"] {
        let res = env
            .send(ApiRequest::get(&format!("/posts?limit={limit}")).bearer(&token))
            .await;
        assert_eq!(res.status, 200, "limit={limit}: {}", res.raw_body);
    }

    let res = env
        .send(ApiRequest::get("/posts?limit=1").bearer(&token))
        .await;
    let cursor = res.body["nextCursor"].as_str().expect("cursor").to_owned();
    // Flip one character of a real cursor, in the id and in the tag.
    for at in [3, cursor.len() - 2] {
        let mut bytes = cursor.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        let res = env
            .send(ApiRequest::get(&format!("/posts?cursor={tampered}")).bearer(&token))
            .await;
        res.assert_error(400, "invalid_cursor");
    }
    let long = "A".repeat(500);
    for garbage in [
        "garbage",
        "AAAA",
        "eyJwayI6IlBPU1QjMSJ9",
        "%25%25%25",
        long.as_str(),
        &id_of(&post),
    ] {
        let res = env
            .send(ApiRequest::get(&format!("/posts?cursor={garbage}")).bearer(&token))
            .await;
        res.assert_error(400, "invalid_cursor");
    }

    // A cursor of a post's comments is not a feed cursor.
    let post_id = id_of(&post);
    for i in 0..2 {
        let res = env
            .send(
                ApiRequest::post(&format!("/posts/{post_id}/comments"))
                    .bearer(&token)
                    .json(json!({"text": format!("c{i}")})),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.raw_body);
    }
    let res = env
        .send(ApiRequest::get(&format!("/posts/{post_id}/comments?limit=1")).bearer(&token))
        .await;
    let comments_cursor = res.body["nextCursor"]
        .as_str()
        .expect("comments cursor")
        .to_owned();
    env.send(ApiRequest::get(&format!("/posts?cursor={comments_cursor}")).bearer(&token))
        .await
        .assert_error(400, "invalid_cursor");

    // The list needs a token too.
    env.send(ApiRequest::get("/posts"))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn unknown_post_ids_are_404() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Lost").await;
    let missing = new_id();
    for id in [
        missing.as_str(),
        "garbage",
        "..",
        "POST%23x",
        &"Z".repeat(26),
    ] {
        let path = format!("/posts/{id}");
        env.send(ApiRequest::get(&path).bearer(&token))
            .await
            .assert_error(404, "not_found");
        env.send(
            ApiRequest::patch(&path)
                .bearer(&token)
                .json(json!({"caption": "x"})),
        )
        .await
        .assert_error(404, "not_found");
        env.send(ApiRequest::delete(&path).bearer(&token))
            .await
            .assert_error(404, "not_found");
    }
    env.send(ApiRequest::get(&format!("/posts/{missing}/nope")).bearer(&token))
        .await
        .assert_error(404, "not_found");
    for (method, path) in [
        ("PUT", "/posts"),
        ("DELETE", "/posts"),
        ("PUT", &format!("/posts/{missing}") as &str),
    ] {
        env.send(ApiRequest::new(method, path).bearer(&token))
            .await
            .assert_error(405, "method_not_allowed");
    }
}

#[tokio::test]
async fn patch_by_author_bumps_version_and_honours_if_match() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Editor").await;
    let (other, _) = env.new_user("Other").await;
    let post = create(
        &env,
        &token,
        json!({"caption": "v1", "imageUrl": "https://x.io/1.png"}),
    )
    .await
    .body;
    let path = format!("/posts/{}", id_of(&post));

    let res = env
        .send(
            ApiRequest::patch(&path)
                .bearer(&token)
                .json(json!({"caption": "v2"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(res.header("etag"), Some("\"2\""));
    assert_eq!(res.body["version"], 2);
    assert_eq!(res.body["caption"], "v2");
    assert_eq!(
        res.body["imageUrl"], "https://x.io/1.png",
        "untouched fields stay"
    );
    assert_eq!(res.body["createdAt"], post["createdAt"]);
    assert!(res.body["updatedAt"].as_str() >= post["updatedAt"].as_str());
    for field in ["id", "authorId", "authorName", "commentCount"] {
        assert_eq!(res.body[field], post[field], "{field}");
    }

    // If-Match on the current version succeeds; a stale one is 412 and changes nothing.
    let res = env
        .send(
            ApiRequest::patch(&path)
                .bearer(&token)
                .header("if-match", "\"2\"")
                .json(json!({"caption": "v3"})),
        )
        .await;
    assert_eq!(
        (res.status, res.header("etag")),
        (200, Some("\"3\"")),
        "{}",
        res.raw_body
    );
    for stale in ["\"2\"", "\"1\"", "\"99\"", "W/\"3\"", "3", "garbage"] {
        env.send(
            ApiRequest::patch(&path)
                .bearer(&token)
                .header("if-match", stale)
                .json(json!({"caption": "no"})),
        )
        .await
        .assert_error(412, "precondition_failed");
    }
    let got = env.send(ApiRequest::get(&path).bearer(&token)).await;
    assert_eq!(
        (got.body["caption"].as_str(), got.header("etag")),
        (Some("v3"), Some("\"3\""))
    );

    // `If-Match: *` is no precondition.
    let res = env
        .send(
            ApiRequest::patch(&path)
                .bearer(&token)
                .header("if-match", "*")
                .json(json!({"caption": "v4"})),
        )
        .await;
    assert_eq!(res.body["version"], 4, "{}", res.raw_body);

    // Someone else: 403, whatever their If-Match says, and nothing changes.
    env.send(
        ApiRequest::patch(&path)
            .bearer(&other)
            .json(json!({"caption": "mine"})),
    )
    .await
    .assert_error(403, "forbidden");
    for if_match in ["\"4\"", "\"1\"", "junk"] {
        env.send(
            ApiRequest::patch(&path)
                .bearer(&other)
                .header("if-match", if_match)
                .json(json!({"caption": "mine"})),
        )
        .await
        .assert_error(403, "forbidden");
    }

    // Empty or unknown-only edits are refused.
    for body in [
        json!({}),
        json!({"foo": "bar", "version": 9}),
        json!({"caption": null}),
    ] {
        let res = env
            .send(ApiRequest::patch(&path).bearer(&token).json(body.clone()))
            .await;
        assert_eq!(res.status, 400, "{body} → {}", res.raw_body);
        res.assert_error(400, "validation_failed");
    }
    for (body, field) in [
        (json!({"caption": ""}), "caption"),
        (json!({"caption": "c".repeat(2201)}), "caption"),
        (json!({"imageUrl": "http://x.io/a.png"}), "imageUrl"),
        (json!({"imageUrl": 3}), "imageUrl"),
    ] {
        env.send(ApiRequest::patch(&path).bearer(&token).json(body))
            .await
            .assert_validation(field);
    }

    // `imageUrl: null` clears the image.
    let res = env
        .send(
            ApiRequest::patch(&path)
                .bearer(&token)
                .json(json!({"imageUrl": null})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(
        (res.body["imageUrl"].clone(), res.body["version"].clone()),
        (Value::Null, json!(5))
    );
    let got = env.send(ApiRequest::get(&path).bearer(&token)).await;
    assert_eq!(got.body["imageUrl"], Value::Null);
    assert_eq!(got.body["caption"], "v4");
    assert_eq!(got.header("etag"), Some("\"5\""));

    // And can set it again.
    let res = env
        .send(
            ApiRequest::patch(&path)
                .bearer(&token)
                .json(json!({"imageUrl": "https://x.io/2.png"})),
        )
        .await;
    assert_eq!(
        res.body["imageUrl"], "https://x.io/2.png",
        "{}",
        res.raw_body
    );
}

#[tokio::test]
async fn delete_is_author_only_conditional_and_final() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Owner").await;
    let (other, _) = env.new_user("Stranger").await;
    let post = env.new_post(&token, "to delete").await;
    let path = format!("/posts/{}", id_of(&post));

    env.send(ApiRequest::delete(&path).bearer(&other))
        .await
        .assert_error(403, "forbidden");
    env.send(
        ApiRequest::delete(&path)
            .bearer(&other)
            .header("if-match", "\"7\""),
    )
    .await
    .assert_error(403, "forbidden");
    env.send(
        ApiRequest::delete(&path)
            .bearer(&token)
            .header("if-match", "\"2\""),
    )
    .await
    .assert_error(412, "precondition_failed");
    env.send(ApiRequest::delete(&path))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        env.send(ApiRequest::get(&path).bearer(&token)).await.status,
        200,
        "refused deletes delete nothing"
    );

    let res = env
        .send(
            ApiRequest::delete(&path)
                .bearer(&token)
                .header("if-match", "\"1\""),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    assert!(res.raw_body.is_empty());
    env.send(ApiRequest::get(&path).bearer(&token))
        .await
        .assert_error(404, "not_found");
    env.send(ApiRequest::delete(&path).bearer(&token))
        .await
        .assert_error(404, "not_found");
    env.send(ApiRequest::delete(&path).bearer(&other))
        .await
        .assert_error(404, "not_found");
    env.send(
        ApiRequest::patch(&path)
            .bearer(&token)
            .json(json!({"caption": "back?"})),
    )
    .await
    .assert_error(404, "not_found");
    let (ids, _) = env.walk(&token, "/posts", 100).await;
    assert!(ids.is_empty(), "gone from the feed: {ids:?}");

    // Without If-Match, the author's delete is unconditional.
    let second = env.new_post(&token, "second").await;
    let path = format!("/posts/{}", id_of(&second));
    assert_eq!(
        env.send(
            ApiRequest::patch(&path)
                .bearer(&token)
                .json(json!({"caption": "edited"}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        env.send(ApiRequest::delete(&path).bearer(&token))
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn deleting_a_post_deletes_all_its_comments() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Popular").await;
    let post = env.new_post(&token, "1,000 comments").await;
    let post_id = id_of(&post);
    let keep = env.new_post(&token, "keeps its comments").await;
    let keep_id = id_of(&keep);

    let comment = |post_id: &str, i: usize| Comment {
        id: new_id(),
        post_id: post_id.to_owned(),
        author_id: user["id"].as_str().expect("id").to_owned(),
        author_name: "Popular".to_owned(),
        text: format!("comment {i}"),
        created_at: now_rfc3339(),
        updated_at: now_rfc3339(),
    };
    let comments: Vec<Comment> = (0..1000).map(|i| comment(&post_id, i)).collect();
    let results: Vec<_> = stream::iter(comments.iter())
        .map(|c| env.app.store.add_comment(c))
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    for i in 0..3 {
        env.app
            .store
            .add_comment(&comment(&keep_id, i))
            .await
            .expect("comment on the other post");
    }

    assert_eq!(env.comment_count(&token, &post_id).await, 1000);
    assert_eq!(env.post_partition(&post_id).await.len(), 1001);

    // The delete answers at once; from then on none of the comments is served ...
    let res = env
        .send(ApiRequest::delete(&format!("/posts/{post_id}")).bearer(&token))
        .await;
    assert_eq!(res.status, 204, "{}", res.raw_body);
    for comment in [&comments[0], &comments[999]] {
        env.send(
            ApiRequest::get(&format!("/posts/{post_id}/comments/{}", comment.id)).bearer(&token),
        )
        .await
        .assert_error(404, "not_found");
    }
    // ... and the upkeep sweeps them from the stream.
    env.settle().await;
    assert_eq!(
        env.post_partition(&post_id).await.len(),
        0,
        "no post item and no comment left behind"
    );
    assert_eq!(
        env.post_partition(&keep_id).await.len(),
        4,
        "another post's comments stay"
    );

    let res = env
        .send(
            ApiRequest::get(&format!("/posts/{post_id}/comments/{}", comments[0].id))
                .bearer(&token),
        )
        .await;
    res.assert_error(404, "not_found");
    env.send(ApiRequest::get(&format!("/posts/{post_id}/comments")).bearer(&token))
        .await
        .assert_error(404, "not_found");
}

/// A REST API (payload format 1.0) event, as API Gateway sends it for stage `Prod`.
fn v1_event(
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    query: Option<Value>,
) -> String {
    let multi = query.as_ref().map(|q| {
        let map: serde_json::Map<String, Value> = q
            .as_object()
            .expect("query")
            .iter()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect();
        Value::Object(map)
    });
    let resource_path = path.strip_prefix("/Prod").unwrap_or(path);
    json!({
        "resource": resource_path,
        "path": path,
        "httpMethod": method,
        "headers": {
            "Accept": "application/json",
            "Authorization": format!("Bearer {token}"),
            "Content-Type": "application/json",
            "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "X-Forwarded-Proto": "https"
        },
        "multiValueHeaders": {
            "Accept": ["application/json"],
            "Authorization": [format!("Bearer {token}")],
            "Content-Type": ["application/json"],
            "Host": ["abcdef1234.execute-api.us-east-1.amazonaws.com"],
            "X-Forwarded-Proto": ["https"]
        },
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "tests"},
            "path": format!("/Prod{resource_path}"),
            "protocol": "HTTP/1.1",
            "requestId": "v1-request",
            "requestTimeEpoch": 1714566896018u64,
            "resourceId": "a1b2c3",
            "resourcePath": resource_path,
            "stage": "Prod"
        },
        "body": body.map(Value::to_string),
        "isBase64Encoded": false
    })
    .to_string()
}

#[tokio::test]
async fn rest_api_v1_events_with_a_stage_prefix_route_correctly() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Rest").await;

    // `path` with the stage in it (a custom domain's base path, or `cargo lambda` / SAM).
    let body = json!({"caption": "via REST API"});
    let res = env
        .invoke_event(
            &v1_event("POST", "/Prod/posts", &token, Some(&body), None),
            "/posts",
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    assert_eq!(res.body["authorId"], user["id"]);
    let id = id_of(&res.body);
    assert_eq!(
        res.header("location"),
        Some(format!("/posts/{id}").as_str())
    );

    let res = env
        .invoke_event(
            &v1_event("GET", &format!("/Prod/posts/{id}"), &token, None, None),
            "/posts",
        )
        .await;
    assert_eq!(
        (res.status, res.body["caption"].as_str()),
        (200, Some("via REST API")),
        "{}",
        res.raw_body
    );

    let res = env
        .invoke_event(
            &v1_event(
                "GET",
                "/Prod/posts",
                &token,
                None,
                Some(json!({"limit": "1"})),
            ),
            "/posts",
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);
    assert_eq!(res.body["items"][0]["id"], id.as_str());

    // `path` without the stage, as the default execute-api domain sends it.
    let body = json!({"caption": "no stage in path"});
    let res = env
        .invoke_event(
            &v1_event("POST", "/posts", &token, Some(&body), None),
            "/posts",
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let res = env
        .invoke_event(
            &v1_event("GET", &format!("/posts/{id}"), &token, None, None),
            "/posts",
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.raw_body);

    // The other functions too.
    let res = env
        .invoke_event(
            &v1_event("GET", "/Prod/users/me", &token, None, None),
            "/users/me",
        )
        .await;
    assert_eq!((res.status, &res.body), (200, &user), "{}", res.raw_body);
    let comments = format!("/posts/{id}/comments");
    let body = json!({"text": "staged comment"});
    let res = env
        .invoke_event(
            &v1_event(
                "POST",
                &format!("/Prod{comments}"),
                &token,
                Some(&body),
                None,
            ),
            &comments,
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let res = env
        .invoke_event(
            &v1_event(
                "GET",
                &format!("/Prod{comments}"),
                &token,
                None,
                Some(json!({"limit": "5"})),
            ),
            &comments,
        )
        .await;
    assert_eq!(
        res.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        res.raw_body
    );

    // Errors keep their codes through a stage too.
    let res = env
        .invoke_event(
            &v1_event("PUT", "/Prod/posts", &token, None, None),
            "/posts",
        )
        .await;
    res.assert_error(405, "method_not_allowed");
    let res = env
        .invoke_event(&v1_event("GET", "/Prod/nope", &token, None, None), "/posts")
        .await;
    res.assert_error(404, "not_found");

    let ids: HashSet<String> = env.walk(&token, "/posts", 10).await.0.into_iter().collect();
    assert_eq!(ids.len(), 2);
}

#[tokio::test]
async fn http_api_events_with_a_named_stage_route_correctly() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Staged").await;
    let staged = |request: ApiRequest| {
        let mut event = request.to_v2_event();
        let path = format!("/prod{}", event["rawPath"].as_str().expect("rawPath"));
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["path"] = json!(path);
        event["requestContext"]["stage"] = json!("prod");
        (event.to_string(), request.path)
    };
    let (event, path) = staged(
        ApiRequest::post("/posts")
            .bearer(&token)
            .json(json!({"caption": "staged"})),
    );
    let res = env.invoke_event(&event, &path).await;
    assert_eq!(res.status, 201, "{}", res.raw_body);
    let id = id_of(&res.body);
    let (event, path) = staged(ApiRequest::get(&format!("/posts/{id}")).bearer(&token));
    let res = env.invoke_event(&event, &path).await;
    assert_eq!(
        (res.status, res.body["caption"].as_str()),
        (200, Some("staged")),
        "{}",
        res.raw_body
    );
    let (event, path) = staged(ApiRequest::get("/posts?limit=5").bearer(&token));
    let res = env.invoke_event(&event, &path).await;
    assert_eq!(res.body["items"][0]["id"], id.as_str(), "{}", res.raw_body);
    let (event, path) = staged(ApiRequest::me().bearer(&token));
    assert_eq!(env.invoke_event(&event, &path).await.status, 200);
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_is_304_without_a_body() {
    let env = TestEnv::new().await;
    let (token, _) = env.new_user("Cond").await;
    let id = id_of(&env.new_post(&token, "v1").await);
    let get = |tags: &str| {
        ApiRequest::get(&format!("/posts/{id}"))
            .bearer(&token)
            .header("if-none-match", tags)
    };

    for current in ["\"1\"", "W/\"1\"", "*", "\"7\", \"1\"", " \"1\" "] {
        let res = env.send(get(current)).await;
        assert_eq!(res.status, 304, "{current}: {}", res.raw_body);
        assert!(res.raw_body.is_empty(), "no body");
        assert_eq!(res.header("etag"), Some("\"1\""));
    }
    for other in ["\"2\"", "\"01\"", "1", "\"x\""] {
        let res = env.send(get(other)).await;
        assert_eq!(
            (res.status, res.header("etag")),
            (200, Some("\"1\"")),
            "{other}"
        );
        assert_eq!(res.body["caption"], "v1");
    }

    // An edit makes the client's copy stale: the full post again.
    let edit = ApiRequest::patch(&format!("/posts/{id}"))
        .bearer(&token)
        .json(json!({"caption": "v2"}));
    assert_eq!(env.send(edit).await.status, 200);
    let res = env.send(get("\"1\"")).await;
    assert_eq!((res.status, res.header("etag")), (200, Some("\"2\"")));
    assert_eq!(env.send(get("\"2\"")).await.status, 304);

    // Conditions do not hide errors: a missing post is 404, a missing token 401.
    let missing = new_id();
    let res = env
        .send(
            ApiRequest::get(&format!("/posts/{missing}"))
                .bearer(&token)
                .header("if-none-match", "*"),
        )
        .await;
    res.assert_error(404, "not_found");
    let res = env
        .send(ApiRequest::get(&format!("/posts/{id}")).header("if-none-match", "*"))
        .await;
    res.assert_error(401, "unauthorized");
}
