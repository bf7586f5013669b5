//! What stands between a login form and a password guesser: a bounded pool of password checks
//! (each argon2 verification takes ~19 MiB and a CPU for a fraction of a second, so an
//! unbounded number of them is a memory exhaustion attack) and per-client and per-user
//! failure limits that answer `429 Too Many Requests` with `Retry-After` before any work is
//! done.
//!
//! Every attempt counts as a failure when it starts and is forgiven when it succeeds, so a
//! burst of concurrent guesses from one client is limited as well as a sequential one. Each
//! failure beyond a free allowance doubles the wait, up to a cap. The per-client limit is the
//! strict one; the per-user limit is looser and shorter, so that guesses from one address do
//! not lock the real user out (the address is throttled first), while guesses spread over many
//! addresses still slow down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// How one kind of key (client address, user name) is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Failures allowed without waiting.
    pub free: u32,
    /// The wait after the first failure beyond `free`; doubled for each one after.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A key without failures for this long is forgotten.
    pub forget_after: Duration,
}

/// Per client address: 5 free failures, then 1 s, 2 s, 4 s … up to 15 minutes.
pub const PER_CLIENT: Limit = Limit {
    free: 5,
    base: Duration::from_secs(1),
    max: Duration::from_secs(15 * 60),
    forget_after: Duration::from_secs(3600),
};

/// Per user name: 20 free failures, then up to a minute (see the module docs).
pub const PER_USER: Limit = Limit {
    free: 20,
    base: Duration::from_secs(1),
    max: Duration::from_secs(60),
    forget_after: Duration::from_secs(3600),
};

/// Most keys remembered per kind; beyond it the stalest are dropped (an attacker with many
/// addresses cannot grow this without bound).
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    blocked_until: Instant,
}

#[derive(Debug)]
struct Failures<K> {
    limit: Limit,
    keys: HashMap<K, Record>,
}

impl<K: std::hash::Hash + Eq + Clone> Failures<K> {
    fn new(limit: Limit) -> Self {
        Failures {
            limit,
            keys: HashMap::new(),
        }
    }

    /// How long `key` must still wait.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let r = self.keys.get(key)?;
        (r.blocked_until > now).then(|| r.blocked_until - now)
    }

    fn fail(&mut self, key: &K, now: Instant) {
        if self.keys.len() >= MAX_KEYS && !self.keys.contains_key(key) {
            let forget = self.limit.forget_after;
            self.keys
                .retain(|_, r| now.saturating_duration_since(r.last) < forget);
            if self.keys.len() >= MAX_KEYS {
                if let Some(stalest) = self
                    .keys
                    .iter()
                    .min_by_key(|(_, r)| r.last)
                    .map(|(k, _)| k.clone())
                {
                    self.keys.remove(&stalest);
                }
            }
        }
        let limit = self.limit;
        let r = self.keys.entry(key.clone()).or_insert(Record {
            failures: 0,
            last: now,
            blocked_until: now,
        });
        if now.saturating_duration_since(r.last) >= limit.forget_after {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        if r.failures > limit.free {
            let doublings = (r.failures - limit.free - 1).min(20);
            let wait = limit.base.saturating_mul(1 << doublings).min(limit.max);
            r.blocked_until = now + wait;
        }
    }

    fn forgive(&mut self, key: &K) {
        self.keys.remove(key);
    }
}

/// Why a login attempt is not even tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many failures: try again after this long.
    Throttled(Duration),
    /// Every password check slot stayed busy: the server is overloaded.
    Busy,
}

/// The login guard: see the module docs.
#[derive(Debug)]
pub struct LoginGuard {
    checks: Semaphore,
    queue_wait: Duration,
    state: Mutex<(Failures<IpAddr>, Failures<String>)>,
}

/// An attempt under way: holds a password-check slot. Call [`Attempt::succeeded`] on success;
/// dropped otherwise, it stays counted as a failure.
#[derive(Debug)]
pub struct Attempt<'a> {
    guard: &'a LoginGuard,
    client: IpAddr,
    user: String,
    _permit: SemaphorePermit<'a>,
}

impl Attempt<'_> {
    /// The password was right: the client's and the user's failures are forgiven.
    pub fn succeeded(self) {
        let mut st = self.guard.lock();
        st.0.forgive(&self.client);
        st.1.forgive(&self.user);
    }
}

impl Default for LoginGuard {
    fn default() -> Self {
        // Argon2 is CPU-bound: more parallel checks than cores only add memory.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        LoginGuard::new(
            cores.clamp(1, 4),
            Duration::from_secs(5),
            PER_CLIENT,
            PER_USER,
        )
    }
}

impl LoginGuard {
    /// A guard running at most `checks` password checks at once; an attempt waits at most
    /// `queue_wait` for a slot.
    pub fn new(checks: usize, queue_wait: Duration, per_client: Limit, per_user: Limit) -> Self {
        LoginGuard {
            checks: Semaphore::new(checks.max(1)),
            queue_wait,
            state: Mutex::new((Failures::new(per_client), Failures::new(per_user))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Failures<IpAddr>, Failures<String>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an attempt by `client` for `user`: refused at once while either is throttled,
    /// else counted as a failure and given a password-check slot (waiting for one if needed).
    pub async fn attempt(&self, client: IpAddr, user: &str) -> Result<Attempt<'_>, Refused> {
        // User names are case-sensitive, but a guesser should not get 20 more tries per case.
        let user = user.to_ascii_lowercase();
        {
            let now = Instant::now();
            let mut st = self.lock();
            let wait = st.0.wait(&client, now).max(st.1.wait(&user, now));
            if let Some(w) = wait {
                return Err(Refused::Throttled(w));
            }
            st.0.fail(&client, now);
            st.1.fail(&user, now);
        }
        match tokio::time::timeout(self.queue_wait, self.checks.acquire()).await {
            Ok(Ok(permit)) => Ok(Attempt {
                guard: self,
                client,
                user,
                _permit: permit,
            }),
            _ => Err(Refused::Busy),
        }
    }

    /// A slot for hashing a new password (user management), waiting as a login does.
    pub async fn hashing_slot(&self) -> Result<SemaphorePermit<'_>, Refused> {
        match tokio::time::timeout(self.queue_wait, self.checks.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Refused::Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn failures_double_the_wait_up_to_the_cap() {
        let mut f = Failures::new(PER_CLIENT);
        let t0 = Instant::now();
        for _ in 0..5 {
            f.fail(&A, t0);
        }
        assert_eq!(f.wait(&A, t0), None, "the free allowance");
        f.fail(&A, t0);
        assert_eq!(f.wait(&A, t0), Some(Duration::from_secs(1)));
        f.fail(&A, t0);
        assert_eq!(f.wait(&A, t0), Some(Duration::from_secs(2)));
        for _ in 0..30 {
            f.fail(&A, t0);
        }
        assert_eq!(f.wait(&A, t0), Some(PER_CLIENT.max));
        assert_eq!(f.wait(&B, t0), None, "another client is not affected");
        // Forgotten after a quiet hour: the allowance is back.
        let later = t0 + PER_CLIENT.max + PER_CLIENT.forget_after;
        f.fail(&A, later);
        assert_eq!(f.wait(&A, later), None);
        f.forgive(&A);
        assert!(f.keys.is_empty());
    }

    #[test]
    fn keys_stay_bounded() {
        let mut f = Failures::new(PER_USER);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 50) {
            f.fail(&i, t0 + Duration::from_millis(i as u64));
        }
        assert!(f.keys.len() <= MAX_KEYS);
        assert!(f.keys.contains_key(&(MAX_KEYS + 49)), "the newest is kept");
    }

    #[tokio::test]
    async fn concurrent_guesses_are_limited_and_success_forgives() {
        let g = LoginGuard::new(2, Duration::from_millis(50), PER_CLIENT, PER_USER);
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(g.attempt(A, "op").await.unwrap());
        }
        // No free slot: the third waits, then is turned away as busy.
        assert_eq!(g.attempt(A, "op").await.unwrap_err(), Refused::Busy);
        drop(held);
        // Every attempt counts until it succeeds (the busy one too): the sixth may still
        // try, and its failure makes the seventh wait.
        for _ in 0..3 {
            drop(g.attempt(A, "Op").await.unwrap());
        }
        assert!(matches!(
            g.attempt(A, "op").await.unwrap_err(),
            Refused::Throttled(_)
        ));
        // The user is not locked out for another client, and a success forgives the user.
        g.attempt(B, "op").await.unwrap().succeeded();
        assert!(g.lock().1.keys.is_empty());
        assert!(g.lock().0.wait(&A, Instant::now()).is_some());
    }
}
