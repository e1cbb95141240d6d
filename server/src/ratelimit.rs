//! The Public API's rate limit: one budget per OAuth client (the token's `clientId`), shared by
//! all its users and all rate-limited operations, kept in this process's memory.
//!
//! governor's keyed GCRA: `N` per minute is a burst of up to `N` requests, then one more every
//! `60 s / N`. Replicas each keep their own budgets, so behind a load balancer a client gets up
//! to `N` per minute from each of them.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;

use crate::auth::Principal;

/// How often budgets that are full again are forgotten: governor keeps one entry per key it
/// has seen, so without this the map would grow with every client ever served. A budget is
/// full again at most a minute after its last request, so entries live at most about two
/// minutes past a client's last request.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Over the limit: whole seconds until a request of the client would be allowed (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

pub struct RateLimiter<C: Clock = MonotonicClock> {
    limiter: governor::RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    start: C::Instant,
    /// When the map was last purged, in nanoseconds since `start`.
    last_purge: AtomicU64,
}

impl RateLimiter {
    /// `per_minute` requests per minute and client; `None` when it is 0 (no limit).
    pub fn per_minute(per_minute: u32) -> Option<Self> {
        Self::with_clock(per_minute, MonotonicClock)
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// [`RateLimiter::per_minute`] on `clock` (tests step a fake one).
    pub fn with_clock(per_minute: u32, clock: C) -> Option<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        let start = clock.now();
        let limiter = governor::RateLimiter::dashmap_with_clock(quota, clock.clone());
        Some(Self { limiter, clock, start, last_purge: AtomicU64::new(0) })
    }

    /// Spends one request of the principal's client's budget.
    pub fn check(&self, principal: &Principal) -> Result<(), RetryAfter> {
        self.purge_if_due();
        self.limiter
            .check_key(&principal.client_id)
            .map_err(|not_until| RetryAfter(whole_seconds(not_until.wait_time_from(self.clock.now())).max(1)))
    }

    /// Clients whose budget is remembered (the size of the keyed state).
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }

    /// Once per [`PURGE_EVERY`], the request that notices drops the full budgets (governor's
    /// `retain_recent`: an entry indistinguishable from a fresh one) and returns the memory.
    /// On the request path rather than a timer task: nothing to start or stop, and an idle
    /// server has nothing to purge.
    fn purge_if_due(&self) {
        let now = u64::from(self.clock.now().duration_since(self.start));
        let last = self.last_purge.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PURGE_EVERY.as_nanos() as u64 {
            return;
        }
        // Whoever wins the exchange purges; concurrent requests go on without waiting.
        if self.last_purge.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

/// A wait rounded up to whole seconds (`Retry-After` has no fractions).
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn principal(client_id: &str, user_id: &str) -> Principal {
        Principal { client_id: client_id.to_owned(), user_id: user_id.to_owned() }
    }

    fn limiter(per_minute: u32) -> (RateLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (RateLimiter::with_clock(per_minute, clock.clone()).expect("a limit"), clock)
    }

    #[test]
    fn zero_is_no_limiter() {
        assert!(RateLimiter::per_minute(0).is_none());
        assert!(RateLimiter::per_minute(1).is_some());
    }

    #[test]
    fn a_burst_of_the_limit_then_one_per_interval_per_client() {
        let (limiter, clock) = limiter(100);
        let a = principal("client-a", "user-1");
        for n in 1..=100 {
            assert_eq!(limiter.check(&a), Ok(()), "request {n}");
        }
        // The 101st within the minute: refused; the next slot is 600 ms away, so 1 second.
        assert_eq!(limiter.check(&a), Err(RetryAfter(1)));
        // Another user of the same client shares the budget; another client has its own.
        assert_eq!(limiter.check(&principal("client-a", "user-2")), Err(RetryAfter(1)));
        assert_eq!(limiter.check(&principal("client-b", "user-1")), Ok(()));
        // A refused request spends nothing: one slot is back after 600 ms, not later.
        clock.advance(Duration::from_millis(600));
        assert_eq!(limiter.check(&a), Ok(()));
        assert_eq!(limiter.check(&a), Err(RetryAfter(1)));
        // After a minute the whole burst is back.
        clock.advance(Duration::from_secs(60));
        for n in 1..=100 {
            assert_eq!(limiter.check(&a), Ok(()), "request {n} of the second minute");
        }
        assert!(limiter.check(&a).is_err());
    }

    #[test]
    fn retry_after_is_the_wait_rounded_up_to_whole_seconds() {
        // 2 per minute: a slot every 30 s.
        let (limiter, clock) = limiter(2);
        let a = principal("client-a", "user-1");
        assert_eq!(limiter.check(&a), Ok(()));
        assert_eq!(limiter.check(&a), Ok(()));
        assert_eq!(limiter.check(&a), Err(RetryAfter(30)));
        clock.advance(Duration::from_millis(29_500));
        assert_eq!(limiter.check(&a), Err(RetryAfter(1)));
        clock.advance(Duration::from_millis(400));
        // 100 ms left: still at least 1.
        assert_eq!(limiter.check(&a), Err(RetryAfter(1)));
        clock.advance(Duration::from_millis(100));
        assert_eq!(limiter.check(&a), Ok(()));
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::from_nanos(3_000_000_001)), 4);
    }

    #[test]
    fn budgets_that_are_full_again_are_forgotten_once_a_minute() {
        let (limiter, clock) = limiter(100);
        for n in 0..1000 {
            assert_eq!(limiter.check(&principal(&format!("client-{n}"), "user")), Ok(()));
        }
        assert_eq!(limiter.clients(), 1000);
        // Not yet a minute: nothing is purged, even though these budgets are full again.
        clock.advance(Duration::from_secs(30));
        for _ in 0..100 {
            assert_eq!(limiter.check(&principal("busy", "user")), Ok(()));
        }
        assert_eq!(limiter.clients(), 1001);
        // A minute on, the next request purges every full budget; the busy client's, spent
        // 30 s ago and so still half empty, stays, besides the newcomer's.
        clock.advance(Duration::from_secs(30));
        assert_eq!(limiter.check(&principal("newcomer", "user")), Ok(()));
        assert_eq!(limiter.clients(), 2);
        // Kept, not reset: half a minute refilled half of it.
        for n in 1..=50 {
            assert_eq!(limiter.check(&principal("busy", "user")), Ok(()), "busy request {n}");
        }
        assert!(limiter.check(&principal("busy", "user")).is_err(), "the busy budget was kept");
        // A forgotten client starts with a full budget, as a new one would.
        for n in 1..=100 {
            assert_eq!(limiter.check(&principal("client-0", "user")), Ok(()), "request {n}");
        }
        assert!(limiter.check(&principal("client-0", "user")).is_err());
    }
}
