//! Argon2id password hashing, run off the async executor.

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

use crate::domain::Password;
use crate::error::AppError;

/// Argon2id at 12 MiB, 3 passes, 1 lane: one of the configurations OWASP's password storage
/// guidance lists as equally strong (beside the crate's default of 19 MiB and 2 passes, which
/// costs about the same CPU). The smaller working memory keeps the users function's peak
/// memory within its budget (BENCHMARKS.md, figure 6). Hashes made with other parameters (the
/// default, before) still verify: a hash carries its own parameters.
fn argon2() -> Argon2<'static> {
    let params = Params::new(12 * 1024, 3, 1, Some(32)).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with Argon2id ([`argon2`]'s parameters).
pub async fn hash(password: Password) -> Result<String, AppError> {
    return_large_buffers();
    let _turn = hashing_turn().await?;
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.expose().as_bytes())
            .map(|h: PasswordHash| h.to_string())
            .map_err(|e| AppError::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(format!("hashing task: {e}")))?
}

/// Checks `password` against `stored`, or against a dummy hash when there is no user, so an
/// unknown email costs the same time as a wrong password and the two cannot be told apart.
pub async fn verify(password: Password, stored: Option<String>) -> Result<bool, AppError> {
    return_large_buffers();
    let _turn = hashing_turn().await?;
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match stored {
            Some(hash) => (hash, true),
            None => (dummy_hash().to_owned(), false),
        };
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| AppError::Internal(format!("stored hash unreadable: {e}")))?;
        let matches = argon2()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        Ok(real && matches)
    })
    .await
    .map_err(|e| AppError::Internal(format!("verifying task: {e}")))?
}

/// A turn to run one Argon2id hash: at most one per vCPU at once.
///
/// On Lambda Managed Instances an environment serves many invocations at once, and a hash
/// takes 12 MiB and tens of ms of one core. Unbounded, 64 concurrent logins would take 768 MiB
/// and share the cores 64 ways, each finishing late; one per vCPU keeps the memory at
/// vCPUs × 12 MiB and each hash at full speed, the rest queueing for a turn. On demand there is
/// one invocation at a time, so this never waits.
async fn hashing_turn() -> Result<tokio::sync::SemaphorePermit<'static>, AppError> {
    static TURNS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    TURNS
        .get_or_init(|| tokio::sync::Semaphore::new(crate::runtime::vcpus()))
        .acquire()
        .await
        .map_err(|e| AppError::Internal(format!("hashing turn: {e}")))
}

/// Makes Argon2id's working memory (12 MiB a hash) go back to the OS when a hash ends.
///
/// glibc serves a large allocation with `mmap`, but once one is freed it raises its threshold
/// so the next of that size comes from the allocating thread's arena, which keeps it. Hashes
/// run on tokio's blocking threads, each with its own arena: an instance that hashed on N
/// threads kept N × the buffer. A fixed threshold keeps every buffer from 1 MiB up on `mmap`,
/// unmapped when freed. What it changed in the users function's peak RSS: BENCHMARKS.md
/// ("Latest run").
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: `mallopt` only sets a parameter of glibc's allocator; a fixed
        // M_MMAP_THRESHOLD is a documented setting that never invalidates live allocations.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        });
    }
}

/// What an unknown email's password is checked against: the Argon2id hash of a random
/// password nobody knows (it was thrown away), with the parameters of real hashes, so checking
/// it costs what checking a real one does.
///
/// A constant rather than a hash made on first use: a hash made then cost the first
/// unknown-email login of each instance a second Argon2 run, a timing signal; made at init, it
/// would cost every cold start of the users function that run. A test checks its parameters
/// are still the ones [`hash`] uses; another (`shared/tests/first_unknown_login.rs`) that the
/// first unknown-email check of a fresh process costs what later ones do.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=12288,t=3,p=1$eN0C+1QDLP5iwU0NQbBaAQ$1gqLwQARyUBVQu0gMRXM5fbHUI2TCyaGs2xvgmxEpH0";

fn dummy_hash() -> &'static str {
    DUMMY_HASH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s).expect("valid password")
    }

    #[tokio::test]
    async fn right_password_verifies_and_wrong_does_not() {
        let stored = hash(pw("correct horse")).await.expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify(pw("correct horse"), Some(stored.clone()))
            .await
            .expect("verify"));
        assert!(!verify(pw("wrong horse!"), Some(stored))
            .await
            .expect("verify"));
    }

    #[tokio::test]
    async fn the_dummy_hash_has_the_parameters_of_real_hashes() {
        let real = hash(pw("correct horse")).await.expect("hash");
        let (real, dummy) = (
            PasswordHash::new(&real).expect("real"),
            PasswordHash::new(DUMMY_HASH).expect("dummy"),
        );
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(
            dummy.params, real.params,
            "checking the dummy costs what checking a real hash does"
        );
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
    }

    #[tokio::test]
    async fn hashes_made_with_the_crate_defaults_still_verify() {
        let old = Argon2::default()
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        assert!(old.contains("m=19456,t=2,p=1"), "{old}");
        assert!(verify(pw("correct horse"), Some(old.clone()))
            .await
            .expect("verify"));
        assert!(!verify(pw("wrong horse!"), Some(old)).await.expect("verify"));
    }

    #[tokio::test]
    async fn no_user_never_verifies() {
        assert!(!verify(pw("anything at all"), None).await.expect("verify"));
    }
}
