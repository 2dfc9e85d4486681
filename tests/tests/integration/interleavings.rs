//! Random, seeded interleavings of every user operation on several instances, under random
//! cache faults, with the stream sync running; two invariants checked throughout.
//!
//! The world: one `redis-server`, one table, `INSTANCES` instances of the functions (each its
//! own `App`: own Redis connection, own DynamoDB client) and the `cache-sync` function fed by
//! the table's stream. Every one of them reaches Redis through its own [`RedisProxy`] ("link"),
//! so a fault can hit one instance's writes and not another's.
//!
//! Each instance runs random operations on a small pool of emails: register, login, logout,
//! rename, delete (and so re-register), authenticate (`GET /users/me`). Meanwhile a scheduler
//! injects random faults: writes delayed past the client's timeout (they land late), dropped
//! with their connection, refused `READONLY`, connections killed, Redis restarted (everything
//! lost), Redis refusing every write (`min-replicas-to-write`), writes paused (`CLIENT PAUSE
//! WRITE`: they queue, then land late). Every few rounds it pauses the operations, heals
//! everything, and checks convergence.
//!
//! Invariants:
//! 1. A request that starts after a revoking call (logout, delete) returned never accepts the
//!    revoked token, when that call ran with a healthy cache (no fault on its link or on Redis
//!    while it ran, and no Redis call of it could have timed out), or once a convergence
//!    check has passed since it returned.
//! 2. Within 5 s of healing (the stream draining meanwhile), every cache entry equals
//!    DynamoDB's item, with no request to help it.
//!
//! `COHERENCE_SEED` replays a run: the seed fixes every choice (operations, emails, tokens,
//! faults, their targets and lengths); only the OS's scheduling is not seeded.
//! `COHERENCE_SECONDS` sets the length (default 25 s).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::{
    cache_key, send_to, ApiRequest, RedisProxy, StreamSync, TestEnv, WriteFault,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::AsyncCommands;
use serde_json::json;
use shared::cache::{decode_entry, Cached};
use shared::domain::{new_id, now_rfc3339, Email, User};
use shared::store::NewUser;
use shared::App;
use tokio::sync::RwLock;

const INSTANCES: usize = 4;
const EMAILS: usize = 6;
/// Redis calls of the instances are bounded by this; generous, so that on a loaded machine a
/// healthy link never times out (a timeout would be a fault of its own).
const REDIS_TIMEOUT: Duration = Duration::from_millis(200);
/// Held writes are held longer than the timeout, so they land after their request answered.
const HOLD: std::ops::Range<u64> = 250..500;
const CONVERGENCE_BOUND: Duration = Duration::from_secs(5);
const DEFAULT_SECONDS: u64 = 25;
const DEFAULT_SEED: u64 = 0x5eed_c0de;

/// A fault's time span, on one link or (`link: None`) on Redis itself.
#[derive(Debug, Clone)]
struct Span {
    link: Option<usize>,
    start: Instant,
    end: Instant,
    what: String,
}

#[derive(Debug, Clone)]
struct Token {
    token: String,
    sub: String,
    jwt_version: u64,
}

/// A logout or delete that answered success: tokens of `sub` with a `jwtVersion` below
/// `below` are revoked from `end` on.
#[derive(Debug, Clone)]
struct Revocation {
    sub: String,
    below: u64,
    link: usize,
    start: Instant,
    end: Instant,
    what: &'static str,
}

#[derive(Debug, Clone)]
struct Auth {
    token: Token,
    link: usize,
    start: Instant,
    status: u16,
}

/// Everything the run records, checked at the end.
#[derive(Default)]
struct Log {
    spans: Vec<Span>,
    revocations: Vec<Revocation>,
    auths: Vec<Auth>,
    /// (start, end) of every convergence check that passed.
    checkpoints: Vec<(Instant, Instant)>,
    convergence: Vec<Duration>,
    errors: Vec<String>,
}

struct World {
    /// The table (and the env's own Redis, which the world does not use).
    env: TestEnv,
    /// The world's Redis, read directly by the convergence checks.
    redis_url: String,
    /// One link per instance, then the sync's.
    links: Vec<RedisProxy>,
    instances: Vec<App>,
    emails: Vec<String>,
    tokens: Mutex<Vec<Token>>,
    log: Mutex<Log>,
    /// Operations hold it shared; a convergence check holds it alone.
    barrier: RwLock<()>,
    done: AtomicBool,
    ops: AtomicU64,
}

impl World {
    fn pick_token(&self, rng: &mut StdRng) -> Option<Token> {
        let tokens = self.tokens.lock().expect("lock");
        (!tokens.is_empty()).then(|| tokens[rng.gen_range(0..tokens.len())].clone())
    }

    fn keep_token(&self, token: Token, rng: &mut StdRng) {
        let mut tokens = self.tokens.lock().expect("lock");
        if tokens.len() < 64 {
            tokens.push(token);
        } else {
            let at = rng.gen_range(0..tokens.len());
            tokens[at] = token;
        }
    }

    fn error(&self, message: String) {
        self.log.lock().expect("lock").errors.push(message);
    }

    /// One random operation on instance `i`.
    async fn operate(&self, i: usize, rng: &mut StdRng) {
        let app = &self.instances[i];
        let email = self.emails[rng.gen_range(0..self.emails.len())].clone();
        match rng.gen_range(0..100) {
            // Registration as POST /users does it, without the Argon2 hash (the cache never
            // sees it; hashing would only slow the run down).
            0..=11 => {
                let user = User {
                    id: new_id(),
                    email: shared::domain::Email::parse(&email).expect("email"),
                    name: "Fresh".into(),
                    jwt_version: 1,
                    revision: 1,
                    registration: 0,
                    created_at: now_rfc3339(),
                };
                match app
                    .users
                    .register(NewUser {
                        user,
                        password_hash: "not-a-hash".into(),
                    })
                    .await
                {
                    Ok(_) | Err(shared::AppError::EmailTaken) => {}
                    Err(e) => self.error(format!("register: {e}")),
                }
            }
            // Login as POST /auth/login does it (the user read from DynamoDB, a token issued
            // for it), without the password check.
            12..=23 => match app
                .store
                .get_user(&Email::parse(&email).expect("email"))
                .await
            {
                Ok(Some(user)) => {
                    let token = app.auth.keys().issue(&user).expect("token").token;
                    self.keep_token(
                        Token {
                            token,
                            sub: user.id,
                            jwt_version: user.jwt_version,
                        },
                        rng,
                    );
                }
                Ok(None) => {}
                Err(e) => self.error(format!("login read: {e}")),
            },
            24..=33 => self.revoke(i, rng, "logout").await,
            34..=39 => self.revoke(i, rng, "delete").await,
            40..=49 => {
                let Some(token) = self.pick_token(rng) else {
                    return;
                };
                let name = format!("Name{}", rng.gen_range(0..1000));
                let res = send_to(
                    app,
                    ApiRequest::patch("/users/me")
                        .bearer(&token.token)
                        .json(json!({"name": name})),
                )
                .await;
                if res.status != 200 && res.status != 401 {
                    self.error(format!("rename: {} {}", res.status, res.raw_body));
                }
            }
            _ => {
                let Some(token) = self.pick_token(rng) else {
                    return;
                };
                let start = Instant::now();
                let res = send_to(app, ApiRequest::me().bearer(&token.token)).await;
                if res.status == 200 && res.body["id"] != token.sub.as_str() {
                    self.error(format!(
                        "token of {} answered as {}",
                        token.sub, res.body["id"]
                    ));
                }
                if res.status != 200 && res.status != 401 {
                    self.error(format!("GET /users/me: {} {}", res.status, res.raw_body));
                }
                self.log.lock().expect("lock").auths.push(Auth {
                    token,
                    link: i,
                    start,
                    status: res.status,
                });
            }
        }
    }

    async fn revoke(&self, i: usize, rng: &mut StdRng, what: &'static str) {
        let Some(token) = self.pick_token(rng) else {
            return;
        };
        let request = match what {
            "logout" => ApiRequest::post("/auth/logout"),
            _ => ApiRequest::delete("/users/me"),
        };
        let start = Instant::now();
        let res = send_to(&self.instances[i], request.bearer(&token.token)).await;
        let end = Instant::now();
        match res.status {
            204 => {
                let below = if what == "logout" {
                    token.jwt_version + 1
                } else {
                    u64::MAX
                };
                let revocation = Revocation {
                    sub: token.sub,
                    below,
                    link: i,
                    start,
                    end,
                    what,
                };
                self.log.lock().expect("lock").revocations.push(revocation);
            }
            401 => {}
            other => self.error(format!("{what}: {other} {}", res.raw_body)),
        }
    }

    /// Every email's entry equals DynamoDB's item (or there is none), read directly.
    async fn converged(&self) -> Result<(), String> {
        let client = redis::Client::open(self.redis_url.as_str()).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        for email in &self.emails {
            let parsed = Email::parse(email).expect("email");
            let truth = self
                .env
                .app
                .store
                .get_user(&parsed)
                .await
                .map_err(|e| e.to_string())?;
            let raw: Option<Vec<u8>> = conn
                .get(cache_key(email))
                .await
                .map_err(|e| e.to_string())?;
            let cached = raw.as_deref().and_then(|raw| decode_entry(raw, &parsed));
            let agrees = match (&truth, &cached) {
                (Some(user), Some(Cached::User(cached))) => cached == user,
                (Some(_), None) | (None, None | Some(Cached::Absent { .. })) => true,
                _ => false,
            };
            if !agrees {
                return Err(format!("{email}: cache {cached:?}, DynamoDB {truth:?}"));
            }
        }
        Ok(())
    }
}

/// Heals every fault now.
async fn heal(world: &World, admin: &mut redis::aio::MultiplexedConnection) {
    for link in &world.links {
        link.set_write_fault(WriteFault::None);
    }
    let _: redis::RedisResult<()> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("min-replicas-to-write")
        .arg(0)
        .query_async(admin)
        .await;
    let _: redis::RedisResult<()> = redis::cmd("CLIENT").arg("UNPAUSE").query_async(admin).await;
}

/// A fault the scheduler can start and end.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Hold(usize, Duration),
    Drop(usize),
    Refuse(usize),
    Kill(usize),
    Restart,
    RefuseAll,
    PauseWrites(Duration),
}

impl Fault {
    fn random(rng: &mut StdRng, links: usize, length: Duration) -> Fault {
        let link = rng.gen_range(0..links);
        match rng.gen_range(0..8) {
            0 | 1 => Fault::Hold(link, Duration::from_millis(rng.gen_range(HOLD))),
            2 => Fault::Drop(link),
            3 => Fault::Refuse(link),
            4 => Fault::Kill(link),
            5 => Fault::Restart,
            6 => Fault::RefuseAll,
            _ => Fault::PauseWrites(length),
        }
    }

    fn link(self) -> Option<usize> {
        match self {
            Fault::Hold(link, _) | Fault::Drop(link) | Fault::Refuse(link) | Fault::Kill(link) => {
                Some(link)
            }
            Fault::Restart | Fault::RefuseAll | Fault::PauseWrites(_) => None,
        }
    }

    /// How long after it ends its effects may still land (held or queued writes).
    fn tail(self) -> Duration {
        match self {
            Fault::Hold(_, hold) => hold,
            Fault::Kill(_) | Fault::PauseWrites(_) => Duration::from_millis(50),
            _ => Duration::ZERO,
        }
    }

    async fn start(
        self,
        world: &World,
        redis: &mut integration_tests::RedisServer,
        admin: &mut redis::aio::MultiplexedConnection,
    ) {
        match self {
            Fault::Hold(link, hold) => world.links[link].set_write_fault(WriteFault::Delay(hold)),
            Fault::Drop(link) => world.links[link].set_write_fault(WriteFault::Drop),
            Fault::Refuse(link) => world.links[link].set_write_fault(WriteFault::Refuse),
            Fault::Kill(link) => world.links[link].kill_connections(),
            Fault::Restart => {
                redis.stop();
                tokio::time::sleep(Duration::from_millis(30)).await;
                redis.restart().await;
                *admin = redis.connection().await.expect("admin connection");
            }
            Fault::RefuseAll => {
                let _: redis::RedisResult<()> = redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("min-replicas-to-write")
                    .arg(1)
                    .query_async(admin)
                    .await;
            }
            Fault::PauseWrites(length) => {
                let _: redis::RedisResult<()> = redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(length.as_millis() as u64)
                    .arg("WRITE")
                    .query_async(admin)
                    .await;
            }
        }
    }
}

/// Injects random faults until the run ends. Every few rounds the operations are paused while
/// the fault is still on, and the fault is healed with nothing else running: then only the
/// stream sync can bring the cache to DynamoDB's state, and the check says whether it did.
async fn schedule_faults(
    world: Arc<World>,
    mut redis: integration_tests::RedisServer,
    seed: u64,
    until: Instant,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa17);
    let mut admin = redis.connection().await.expect("admin connection");
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(30..200))).await;
        let length = Duration::from_millis(rng.gen_range(50..400));
        let fault = Fault::random(&mut rng, world.links.len(), length);
        let start = Instant::now();
        fault.start(&world, &mut redis, &mut admin).await;
        tokio::time::sleep(length).await;
        let alone = if round.is_multiple_of(4) {
            Some(world.barrier.write().await)
        } else {
            None
        };
        heal(&world, &mut admin).await;
        let end = Instant::now() + fault.tail();
        let what = format!("{fault:?}");
        world.log.lock().expect("lock").spans.push(Span {
            link: fault.link(),
            start,
            end,
            what,
        });
        if alone.is_some() {
            check_convergence(&world).await;
        }
    }
    world.done.store(true, Ordering::SeqCst);
    let _alone = world.barrier.write().await;
    heal(&world, &mut admin).await;
    check_convergence(&world).await;
    drop(redis);
}

/// With the operations paused and every fault healed: waits for held writes to land, then for
/// the cache to equal DynamoDB (the stream sync doing the work), at most `CONVERGENCE_BOUND`
/// from the healing.
async fn check_convergence(world: &World) {
    let healed = Instant::now();
    tokio::time::sleep(Duration::from_millis(HOLD.end + 100)).await;
    loop {
        match world.converged().await {
            Ok(()) => break,
            Err(why) if healed.elapsed() > CONVERGENCE_BOUND => {
                world.error(format!(
                    "not converged {:?} after healing: {why}",
                    healed.elapsed()
                ));
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let mut log = world.log.lock().expect("lock");
    log.convergence.push(healed.elapsed());
    log.checkpoints.push((healed, Instant::now()));
}

async fn run_instance(world: Arc<World>, i: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64 + 1));
    while !world.done.load(Ordering::SeqCst) {
        let _shared = world.barrier.read().await;
        world.operate(i, &mut rng).await;
        world.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// How long after a fault on a link its effect may still hit the link's next command.
const LINGER: Duration = Duration::from_millis(100);

/// `t - reference` in milliseconds, negative when `t` is earlier.
fn signed(t: Instant, reference: Instant) -> i128 {
    if t >= reference {
        t.duration_since(reference).as_millis() as i128
    } else {
        -(reference.duration_since(t).as_millis() as i128)
    }
}

/// Whether no fault touched `r`'s link or Redis from shortly before it started (a killed or
/// dropped connection fails the link's next command, whenever that is) to its end.
fn ran_healthy(log: &Log, r: &Revocation) -> bool {
    !log.spans.iter().any(|s| {
        (s.link.is_none() || s.link == Some(r.link))
            && s.start <= r.end
            && s.end + LINGER >= r.start
    })
}

/// Invariant 1 over the whole log: how many requests with a revoked token it covered, and the
/// violations found.
fn violations(log: &Log) -> (usize, Vec<String>) {
    // Healthy: no fault on the call's link or on Redis from shortly before it started (a killed
    // or dropped connection fails the next command, whenever that is) to its end.
    let clean = |r: &Revocation| {
        r.end.duration_since(r.start) < REDIS_TIMEOUT / 2
            && !log.spans.iter().any(|s| {
                (s.link.is_none() || s.link == Some(r.link))
                    && s.start <= r.end
                    && s.end + LINGER >= r.start
            })
    };
    let settled_before =
        |r: &Revocation, t: Instant| log.checkpoints.iter().any(|(s, e)| *s > r.end && *e < t);
    let mut found = Vec::new();
    let mut covered = 0;
    for auth in &log.auths {
        let binding = log.revocations.iter().find(|r| {
            r.sub == auth.token.sub
                && auth.token.jwt_version < r.below
                && r.end < auth.start
                && (clean(r) || settled_before(r, auth.start))
        });
        covered += usize::from(binding.is_some());
        if auth.status != 200 {
            continue;
        }
        if let Some(r) = binding {
            {
                let around: Vec<String> = log
                    .spans
                    .iter()
                    .filter(|s| s.end + Duration::from_secs(1) >= r.start && s.start <= auth.start)
                    .map(|s| {
                        format!(
                            "{} on {:?} from {:?} after the call",
                            s.what,
                            s.link,
                            signed(s.start, r.end)
                        )
                    })
                    .collect();
                found.push(format!(
                    "a token of {} (jwtVersion {}) was accepted through instance {} {:?} after a {} on instance {} \
                     returned (clean: {}); faults around it: {around:?}",
                    auth.token.sub,
                    auth.token.jwt_version,
                    auth.link,
                    auth.start.duration_since(r.end),
                    r.what,
                    r.link,
                    clean(r)
                ));
            }
        }
    }
    (covered, found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_under_random_faults_never_accept_a_revoked_token_and_converge() {
    let seed = std::env::var("COHERENCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let seconds = std::env::var("COHERENCE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    println!("interleavings: seed {seed} ({seconds} s); replay with COHERENCE_SEED={seed}");

    let env = TestEnv::new().await;
    let redis = integration_tests::RedisServer::start().await;
    let mut links = Vec::new();
    for _ in 0..=INSTANCES {
        links.push(RedisProxy::start(redis.port).await);
    }
    let patient = |c: &mut shared::config::Config| {
        c.cache.redis_timeout = REDIS_TIMEOUT;
        c.cache.redis_connect_timeout = REDIS_TIMEOUT;
    };
    let instances = links[..INSTANCES]
        .iter()
        .map(|link| env.instance_with(&link.url(), patient))
        .collect();
    let mut sync_config =
        integration_tests::test_config(&links[INSTANCES].url(), &env.dynamo.endpoint);
    sync_config.cache.redis_timeout = REDIS_TIMEOUT;
    let _sync = StreamSync::start(&sync_config).await;
    let prefix = ulid::Ulid::new().to_string().to_lowercase();
    let emails = (0..EMAILS)
        .map(|n| format!("u{n}.{prefix}@example.com"))
        .collect();
    let world = Arc::new(World {
        env,
        redis_url: redis.url(),
        links,
        instances,
        emails,
        tokens: Mutex::new(Vec::new()),
        log: Mutex::new(Log::default()),
        barrier: RwLock::new(()),
        done: AtomicBool::new(false),
        ops: AtomicU64::new(0),
    });

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let scheduler = tokio::spawn(schedule_faults(world.clone(), redis, seed, until));
    let workers: Vec<_> = (0..INSTANCES)
        .map(|i| tokio::spawn(run_instance(world.clone(), i, seed)))
        .collect();
    scheduler.await.expect("fault scheduler");
    for worker in workers {
        worker.await.expect("instance");
    }

    let log = world.log.lock().expect("lock");
    let ops = world.ops.load(Ordering::Relaxed);
    let checked: HashSet<&str> = log.revocations.iter().map(|r| r.sub.as_str()).collect();
    let max_convergence = log.convergence.iter().max().copied().unwrap_or_default();
    println!(
        "interleavings: {ops} operations on {INSTANCES} instances in {:?}; {} faults; {} revocations of {} users; \
         {} authentications ({} accepted); {} convergence checks, slowest {max_convergence:?}",
        started.elapsed(),
        log.spans.len(),
        log.revocations.len(),
        checked.len(),
        log.auths.len(),
        log.auths.iter().filter(|a| a.status == 200).count(),
        log.checkpoints.len(),
    );
    assert!(log.errors.is_empty(), "seed {seed}: {:#?}", log.errors);
    let (covered, found) = violations(&log);
    let clean = log
        .revocations
        .iter()
        .filter(|r| ran_healthy(&log, r))
        .count();
    println!("interleavings: {covered} requests with a revoked token checked ({clean} revocations ran on a healthy link), {} refused as they must be", covered - found.len());
    for span in log.spans.iter().take(3) {
        println!(
            "  e.g. fault {} on {:?} for {:?}",
            span.what,
            span.link,
            span.end.duration_since(span.start)
        );
    }
    assert!(
        found.is_empty(),
        "seed {seed}: {} revoked tokens accepted: {:#?}",
        found.len(),
        &found[..found.len().min(10)]
    );
    assert!(ops > 1_000, "seed {seed}: only {ops} operations ran");
    assert!(
        log.checkpoints.len() >= 3,
        "seed {seed}: only {} convergence checks",
        log.checkpoints.len()
    );
}
