//! The traffic: a fixture (users, an ordinary post, the viral post, a full feed), then each
//! request class alone, as one phase: a short warm-up (so the cache holds what the class reads,
//! as at any real rate), then K requests through the real handlers, then the stream consumers drained;
//! everything recorded in the phase, synchronous or not, is the class's ([`profile`]).

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::ApiRequest;
use serde_json::json;

use crate::profile::{profile, CrossCheck, Profile};
use crate::roles::Names;
use crate::world::World;

/// Which post a class's requests name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    None,
    /// An ordinary post (the model places it at Zipf's head).
    Ordinary,
    Viral,
}

/// What a class's requests are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    CreatePost,
    CreateComment,
    GetPost,
    FeedPage,
    CommentsPage,
}

/// A request class.
#[derive(Debug, Clone, Copy)]
pub struct Class {
    pub id: &'static str,
    pub label: &'static str,
    pub request: Request,
    pub target: Target,
}

/// Every class, in the order they run. Add a class here and give it a weight in
/// `model::axes`.
pub const CLASSES: &[Class] = &[
    Class {
        id: "post_create",
        label: "`POST /posts`",
        request: Request::CreatePost,
        target: Target::None,
    },
    Class {
        id: "comment_create",
        label: "`POST /posts/{postId}/comments`, an ordinary post",
        request: Request::CreateComment,
        target: Target::Ordinary,
    },
    Class {
        id: "comment_create_viral",
        label: "`POST /posts/{postId}/comments`, the viral post",
        request: Request::CreateComment,
        target: Target::Viral,
    },
    Class {
        id: "get_post",
        label: "`GET /posts/{postId}`, an ordinary post",
        request: Request::GetPost,
        target: Target::Ordinary,
    },
    Class {
        id: "get_post_viral",
        label: "`GET /posts/{postId}`, the viral post",
        request: Request::GetPost,
        target: Target::Viral,
    },
    Class {
        id: "feed_page",
        label: "`GET /posts` (first page)",
        request: Request::FeedPage,
        target: Target::None,
    },
    Class {
        id: "comments_page",
        label: "`GET /posts/{postId}/comments` (first page), an ordinary post",
        request: Request::CommentsPage,
        target: Target::Ordinary,
    },
    Class {
        id: "comments_page_viral",
        label: "`GET /posts/{postId}/comments` (first page), the viral post",
        request: Request::CommentsPage,
        target: Target::Viral,
    },
];

/// The payloads of the mix, stated in BENCHMARKS.md.
pub const CAPTION_CHARS: usize = 280;
pub const COMMENT_CHARS: usize = 140;
pub const IMAGE_URL: &str = "https://images.example.com/u/0123456789abcdef/photo-1080x1080.jpg";
/// Users the requests rotate among (their cache entries and items are the "user" roles).
const USERS: usize = 4;
/// Posts and comments made before the phases, so feed and comment pages are full pages.
const BACKGROUND_POSTS: usize = 25;
const BACKGROUND_COMMENTS: usize = 25;
/// Requests of each class before its measured ones.
const WARM_UP: usize = 3;

/// The users and posts the classes use.
pub struct Fixture {
    pub tokens: Vec<String>,
    pub ordinary: String,
    pub viral: String,
    pub names: Names,
}

/// Text of `chars` characters, varied by `seed`.
pub fn text(chars: usize, seed: usize) -> String {
    let words = [
        "light", "river", "stone", "autumn", "city", "morning", "coffee", "trail",
    ];
    let mut out = String::new();
    let mut i = seed;
    while out.len() < chars {
        out.push_str(words[i % words.len()]);
        out.push(' ');
        i += 1;
    }
    out.truncate(chars);
    out
}

/// The request number `i` of `class`.
pub fn request(class: &Class, fixture: &Fixture, i: usize) -> ApiRequest {
    let token = &fixture.tokens[i % fixture.tokens.len()];
    let post = match class.target {
        Target::Viral => fixture.viral.as_str(),
        _ => fixture.ordinary.as_str(),
    };
    let key = ulid::Ulid::new().to_string();
    match class.request {
        Request::CreatePost => ApiRequest::post("/posts")
            .json(json!({"caption": text(CAPTION_CHARS, i), "imageUrl": IMAGE_URL}))
            .header("idempotency-key", &key),
        Request::CreateComment => ApiRequest::post(&format!("/posts/{post}/comments"))
            .json(json!({"text": text(COMMENT_CHARS, i)}))
            .header("idempotency-key", &key),
        Request::GetPost => ApiRequest::get(&format!("/posts/{post}")),
        Request::FeedPage => ApiRequest::get("/posts"),
        Request::CommentsPage => ApiRequest::get(&format!("/posts/{post}/comments")),
    }
    .bearer(token)
}

/// The status a class's requests should get.
fn expected(class: &Class) -> u16 {
    match class.request {
        Request::CreatePost | Request::CreateComment => 201,
        _ => 200,
    }
}

/// A fixture of users alone, for making the posts of the real one.
fn partial(tokens: &[String]) -> Fixture {
    Fixture {
        tokens: tokens.to_vec(),
        ordinary: String::new(),
        viral: String::new(),
        names: Names::default(),
    }
}

/// Users, posts, comments: the fixture, its setup traffic recorded and thrown away.
pub async fn fixture(world: &World) -> Result<Fixture, String> {
    let mut names = Names::default();
    let mut tokens = Vec::new();
    for u in 0..USERS {
        let (token, user) = world.new_user(&format!("capacity{u}")).await?;
        names.add(user["id"].as_str().unwrap_or_default(), "user");
        names.add(user["email"].as_str().unwrap_or_default(), "email");
        tokens.push(token);
    }
    // Posts as the mix makes them, so a first feed page weighs the same in a short run.
    let mut posts = Vec::new();
    for i in 0..BACKGROUND_POSTS + 2 {
        let res = world.send(request(&CLASSES[0], &partial(&tokens), i)).await;
        match res.body["id"].as_str() {
            Some(id) if res.status == 201 => posts.push(id.to_owned()),
            _ => return Err(format!("setup post: {} {}", res.status, res.raw_body)),
        }
    }
    let viral = posts.pop().ok_or("no post created")?;
    let ordinary = posts.pop().ok_or("no post created")?;
    names.add(&viral, "viral");
    names.add(&ordinary, "post");
    for post in [&ordinary, &viral] {
        for i in 0..BACKGROUND_COMMENTS {
            let res = world
                .send(
                    ApiRequest::post(&format!("/posts/{post}/comments"))
                        .json(json!({"text": text(COMMENT_CHARS, i)}))
                        .bearer(&tokens[i % USERS]),
                )
                .await;
            if res.status != 201 {
                return Err(format!("setup comment: {} {}", res.status, res.raw_body));
            }
        }
    }
    world.consumers.drain().await?;
    world.recorder.take();
    world.monitor.take().await?;
    Ok(Fixture {
        tokens,
        ordinary,
        viral,
        names,
    })
}

/// Runs `class` alone: warm-up, `count` measured requests, the consumers drained; its profile.
pub async fn run(
    world: &World,
    fixture: &Fixture,
    class: &Class,
    count: usize,
    cross_check: &mut CrossCheck,
) -> Result<Profile, String> {
    for i in 0..WARM_UP {
        world.send(request(class, fixture, i)).await;
    }
    world.consumers.drain().await?;
    world.recorder.take();
    world.monitor.take().await?;
    let mut failures: BTreeMap<u16, usize> = BTreeMap::new();
    for i in 0..count {
        let res = world.send(request(class, fixture, WARM_UP + i)).await;
        if res.status != expected(class) {
            *failures.entry(res.status).or_default() += 1;
        }
    }
    world.consumers.drain().await?;
    let calls = world.recorder.take();
    let commands = world.monitor.take().await?;
    let read_keys: BTreeSet<String> = commands
        .iter()
        .filter(|c| c.reads)
        .flat_map(|c| c.keys.iter().cloned())
        .collect();
    let sizes = world.monitor.sizes(&read_keys).await?;
    cross_check.add(&calls);
    Ok(profile(
        class.id,
        count,
        failures,
        &calls,
        &commands,
        &sizes,
        &fixture.names,
    ))
}
