//! Fair shares of the worker between destinations (a URL's host and port): at most `cap`
//! deliveries in flight to one destination, so receivers that accept and never answer hold at
//! most their share of the worker's slots, never all of them.
//!
//! A claimed delivery whose destination is at its cap does not take a slot. It waits here for
//! one of its destination's slots only if that destination answers fast enough to take it
//! soon (within `hold_limit`, far shorter than a claim's lease); otherwise it goes back to the
//! store, due again a little later ([`Admission::Defer`]). That delay is what the destination's
//! attempts take (their moving average, or how long even its latest attempt in flight has
//! been going, whichever is longer), kept within `min_defer..=max_defer`: the backlog of a
//! destination that hangs is claimed again about once per delivery timeout, not on every poll.
//!
//! Per-destination caps alone let enough distinct tarpits fill the worker. So destinations not
//! known to be fast (none of their attempts has ended yet, or they typically take a hold limit
//! or more, as a tarpit's take a whole timeout) share at most `unproven_share` slots between
//! them, however many they are: the other slots stay for receivers that answer. A new
//! receiver's first attempts compete with the tarpits' for that share; once one has ended
//! quickly, it is out of it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// `host:port` of an absolute URL, lower-case (the scheme's port when none is given); `None`
/// for a URL that does not parse or has no host.
pub fn destination(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    Some(format!("{host}:{port}"))
}

/// The longest a destination not yet tried is kept waiting for room in the share: a new
/// receiver competes with the tarpits not yet tried (a known tarpit waits a timeout).
const MAX_SHUT_OUT_DELAY: Duration = Duration::from_secs(4);
/// Idle destinations are remembered (for how long their attempts take) this long…
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// …and at most this many of them.
const MAX_IDLE: usize = 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deliveries in flight at once to one destination.
    pub cap: usize,
    /// The longest a claimed delivery waits here for a slot.
    pub hold_limit: Duration,
    /// Bounds of the delay a deferred delivery gets.
    pub min_defer: Duration,
    pub max_defer: Duration,
    /// Deliveries in flight at once to destinations not known to be fast, together.
    pub unproven_share: usize,
}

/// What to do with a claimed delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<T> {
    /// Send it now (its slot is counted from now).
    Start(T),
    /// Kept here until a slot of its destination frees (see [`Destinations::finished`]).
    Held,
    /// Give it back to the store, due again after this delay.
    Defer(T, Duration),
}

struct Destination<T> {
    /// When each of its deliveries in flight started.
    started: Vec<Instant>,
    /// Moving average of how long its attempts took.
    typical: Option<Duration>,
    /// Claimed deliveries waiting for a slot, oldest first, with when they began to wait.
    waiting: VecDeque<(Instant, T)>,
    last_active: Instant,
    /// Since when its deliveries have been turned away for want of a place in the share: they
    /// then come back after as long as that has lasted (1, 2, 4 s, not every second), or as
    /// its attempts take if longer (a known tarpit's, a timeout).
    shut_out_since: Option<Instant>,
}

impl<T> Destination<T> {
    fn new(now: Instant) -> Self {
        Self {
            started: Vec::new(),
            typical: None,
            waiting: VecDeque::new(),
            last_active: now,
            shut_out_since: None,
        }
    }

    /// Whether its attempts are known to end within a hold limit.
    fn proven(&self, limits: &Limits) -> bool {
        self.typical.is_some_and(|t| t < limits.hold_limit)
    }

    fn idle(&self) -> bool {
        self.started.is_empty() && self.waiting.is_empty()
    }

    /// How long its next slot will likely take to free: what its attempts take, at least as
    /// long as its latest attempt in flight has been going (all of them are stuck that long; a
    /// few stuck beside fast ones do not make a destination slow). Never seen one finish:
    /// assumed slow (a hold limit), so only a destination known to be fast gets a queue here.
    fn expected(&self, limits: &Limits, now: Instant) -> Duration {
        let latest = self.started.iter().map(|s| now.saturating_duration_since(*s)).min().unwrap_or_default();
        self.typical.unwrap_or(limits.hold_limit).max(latest).max(Duration::from_millis(1))
    }

    /// Whether its speed is known (an attempt of it has finished, or even its latest attempt
    /// in flight has been going for a hold limit), or will not be soon (none in flight).
    fn judged(&self, limits: &Limits, now: Instant) -> bool {
        let latest = self.started.iter().map(|s| now.saturating_duration_since(*s)).min();
        self.typical.is_some() || latest.is_none_or(|age| age >= limits.hold_limit)
    }

    /// How many may wait here: as many as its slots are expected to take within the hold limit.
    fn hold_bound(&self, limits: &Limits, now: Instant) -> usize {
        let per_slot = limits.hold_limit.as_micros() / self.expected(limits, now).as_micros().max(1);
        usize::try_from(per_slot.saturating_mul(limits.cap as u128)).unwrap_or(usize::MAX)
    }

    fn defer_delay(&self, limits: &Limits, now: Instant) -> Duration {
        let max = limits.max_defer.max(limits.min_defer);
        self.expected(limits, now).clamp(limits.min_defer, max)
    }
}

/// The worker's deliveries by destination: those in flight, and those waiting for a slot.
pub struct Destinations<T> {
    limits: Limits,
    by_key: HashMap<String, Destination<T>>,
    held: usize,
    /// Attempts in flight to destinations not known to be fast; new ones start only below
    /// `limits.unproven_share`.
    unproven_in_flight: usize,
}

impl<T> Destinations<T> {
    pub fn new(limits: Limits) -> Self {
        Self { limits, by_key: HashMap::new(), held: 0, unproven_in_flight: 0 }
    }

    pub fn hold_limit(&self) -> Duration {
        self.limits.hold_limit
    }

    /// How many claimed deliveries wait here.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Starts `item` if `key` has a free slot (and, if not known to be fast, the unproven
    /// share has one), else holds (for one of its own slots) or defers it.
    pub fn admit(&mut self, key: &str, item: T, now: Instant) -> Admission<T> {
        let limits = self.limits;
        let dest = self.by_key.entry(key.to_owned()).or_insert_with(|| Destination::new(now));
        dest.last_active = now;
        let unproven = !dest.proven(&limits);
        let share_full = unproven && self.unproven_in_flight >= limits.unproven_share;
        if dest.started.len() < limits.cap && !share_full {
            dest.started.push(now);
            dest.shut_out_since = None;
            self.unproven_in_flight += usize::from(unproven);
            Admission::Start(item)
        } else if !share_full && dest.waiting.len() < dest.hold_bound(&limits, now) {
            dest.waiting.push_back((now, item));
            self.held += 1;
            Admission::Held
        } else if share_full {
            let since = *dest.shut_out_since.get_or_insert(now);
            let shut_out = now.saturating_duration_since(since).min(MAX_SHUT_OUT_DELAY);
            Admission::Defer(item, dest.defer_delay(&limits, now).max(shut_out))
        } else {
            Admission::Defer(item, dest.defer_delay(&limits, now))
        }
    }

    /// Whether `key`'s speed is known or will not be soon (see `Destination::judged`): until
    /// then, what is deferred for it says nothing about the deliveries claimed after it.
    pub fn judged(&self, key: &str, now: Instant) -> bool {
        self.by_key.get(key).is_some_and(|d| d.judged(&self.limits, now))
    }

    /// The attempt that started at `started` took `took`: its slot is free. Returns the
    /// delivery to start in it now, if one waits.
    pub fn finished(&mut self, key: &str, started: Instant, took: Duration, now: Instant) -> Option<T> {
        let limits = self.limits;
        let dest = self.by_key.get_mut(key)?;
        let was_unproven = !dest.proven(&limits);
        if let Some(i) = dest.started.iter().position(|s| *s == started) {
            dest.started.swap_remove(i);
            self.unproven_in_flight -= usize::from(was_unproven);
        }
        dest.typical = Some(match dest.typical {
            None => took,
            Some(avg) => (avg * 3 + took) / 4,
        });
        dest.last_active = now;
        // The attempts still in flight change sides with their destination.
        let unproven = !dest.proven(&limits);
        match (was_unproven, unproven) {
            (false, true) => self.unproven_in_flight += dest.started.len(),
            (true, false) => self.unproven_in_flight -= dest.started.len(),
            _ => {}
        }
        if unproven && self.unproven_in_flight >= limits.unproven_share {
            // What waits goes back when it expires.
            return None;
        }
        let (_, next) = dest.waiting.pop_front()?;
        self.held -= 1;
        dest.started.push(now);
        self.unproven_in_flight += usize::from(unproven);
        Some(next)
    }

    /// The held deliveries to give back now, with their delays: those waiting longer than the
    /// hold limit, and those beyond what their destination is now expected to take in time
    /// (its attempts in flight grew old).
    pub fn expire(&mut self, now: Instant) -> Vec<(T, Duration)> {
        let limits = self.limits;
        let mut expired = Vec::new();
        for dest in self.by_key.values_mut().filter(|d| !d.waiting.is_empty()) {
            let delay = dest.defer_delay(&limits, now);
            let bound = dest.hold_bound(&limits, now);
            while dest.waiting.len() > bound {
                expired.extend(dest.waiting.pop_back().map(|(_, item)| (item, delay)));
            }
            while dest
                .waiting
                .front()
                .is_some_and(|(since, _)| now.saturating_duration_since(*since) >= limits.hold_limit)
            {
                expired.extend(dest.waiting.pop_front().map(|(_, item)| (item, delay)));
            }
        }
        self.held -= expired.len();
        expired
    }

    /// Forgets destinations idle for long (or all idle ones, when too many are remembered).
    pub fn prune(&mut self, now: Instant) {
        let idle = self.by_key.values().filter(|d| d.idle()).count();
        let forget_all = idle > MAX_IDLE;
        self.by_key.retain(|_, d| {
            !d.idle() || !(forget_all || now.saturating_duration_since(d.last_active) >= FORGET_AFTER)
        });
    }

    /// Every held delivery (the worker is stopping).
    pub fn take_held(&mut self) -> Vec<T> {
        self.held = 0;
        self.by_key.values_mut().flat_map(|d| d.waiting.drain(..).map(|(_, item)| item)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn limits(cap: usize) -> Limits {
        Limits {
            cap,
            hold_limit: SECOND,
            min_defer: SECOND,
            max_defer: Duration::from_secs(60),
            unproven_share: 100,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn destinations_are_host_and_port_lower_cased() {
        assert_eq!(destination("https://Example.COM/hook").as_deref(), Some("example.com:443"));
        assert_eq!(destination("https://example.com:443/a?b").as_deref(), Some("example.com:443"));
        assert_eq!(destination("https://example.com.:8443/").as_deref(), Some("example.com:8443"));
        assert_eq!(destination("https://[::1]:9/x").as_deref(), Some("[::1]:9"));
        assert_ne!(destination("https://a.example/"), destination("https://b.example/"));
        assert_ne!(destination("https://a.example:1/"), destination("https://a.example:2/"));
        assert_eq!(destination("not a url"), None);
    }

    #[test]
    fn a_destination_gets_at_most_its_cap_and_the_others_are_not_held_back() {
        let now = Instant::now();
        let mut d = Destinations::new(limits(2));
        assert_eq!(d.admit("tarpit:443", 1, now), Admission::Start(1));
        assert_eq!(d.admit("tarpit:443", 2, now), Admission::Start(2));
        // Never seen to answer: the third may wait for a slot only as long as the hold limit…
        assert_eq!(d.admit("tarpit:443", 3, now), Admission::Held);
        assert_eq!(d.admit("tarpit:443", 4, now), Admission::Held);
        // …and no more than its slots are expected to take in that time.
        assert_eq!(d.admit("tarpit:443", 5, now), Admission::Defer(5, SECOND));
        assert_eq!(d.admit("healthy:443", 6, now), Admission::Start(6));
        assert_eq!(d.held(), 2);
        assert!(!d.judged("tarpit:443", now), "too early to tell a tarpit from a fast receiver");
        assert!(d.judged("tarpit:443", now + SECOND));

        // Its attempts in flight grow old: the held ones go back, with a delay as long as
        // they have been going; a tarpit's backlog comes back rarely, not every poll.
        let later = now + Duration::from_secs(7);
        let expired = d.expire(later);
        assert_eq!(expired, [(4, Duration::from_secs(7)), (3, Duration::from_secs(7))]);
        assert_eq!(d.held(), 0);
        assert_eq!(d.admit("tarpit:443", 7, later), Admission::Defer(7, Duration::from_secs(7)));
        // Bounded by the longest an attempt may take.
        let much_later = now + Duration::from_secs(600);
        assert_eq!(d.admit("tarpit:443", 8, much_later), Admission::Defer(8, Duration::from_secs(60)));
    }

    #[test]
    fn a_fast_destination_at_its_cap_keeps_a_queue_that_its_freed_slots_take() {
        let now = Instant::now();
        let mut d = Destinations::new(limits(2));
        assert_eq!(d.admit("fast:443", 1, now), Admission::Start(1));
        assert_eq!(d.admit("fast:443", 2, now), Admission::Start(2));
        // Answers in 10 ms: two slots take 200 in a second.
        assert_eq!(d.finished("fast:443", now, ms(10), now + ms(10)), None);
        assert!(d.judged("fast:443", now + ms(10)));
        assert_eq!(d.admit("fast:443", 3, now + ms(10)), Admission::Start(3));
        for i in 4..100 {
            assert_eq!(d.admit("fast:443", i, now + ms(10)), Admission::Held, "{i}");
        }
        assert_eq!(d.held(), 96);
        // A freed slot takes the oldest waiting one at once.
        assert_eq!(d.finished("fast:443", now, ms(10), now + ms(11)), Some(4));
        assert_eq!(d.finished("fast:443", now + ms(10), ms(10), now + ms(20)), Some(5));
        assert_eq!(d.held(), 94);
        assert!(d.expire(now + ms(30)).is_empty());
        // Nothing waits past the hold limit (a claim's lease runs meanwhile).
        let expired = d.expire(now + ms(10) + SECOND);
        assert_eq!(expired.len(), 94);
        assert_eq!(d.held(), 0);
    }

    #[test]
    fn a_few_stuck_attempts_do_not_make_a_fast_destination_slow() {
        let now = Instant::now();
        let mut d = Destinations::new(limits(3));
        assert_eq!(d.admit("mixed:443", 1, now), Admission::Start(1));
        assert_eq!(d.admit("mixed:443", 2, now), Admission::Start(2));
        // The third answers in 10 ms, again and again; the first two hang.
        let mut t = now;
        for i in 3..10 {
            assert_eq!(d.admit("mixed:443", i, t), Admission::Start(i));
            t += ms(10);
            assert_eq!(d.finished("mixed:443", t - ms(10), ms(10), t), None);
        }
        let t = now + Duration::from_secs(5);
        assert_eq!(d.admit("mixed:443", 10, t), Admission::Start(10));
        for i in 11..50 {
            assert_eq!(d.admit("mixed:443", i, t), Admission::Held, "{i}");
        }
        assert!(d.expire(t + ms(20)).is_empty());
    }

    #[test]
    fn a_slot_freed_by_a_timeout_teaches_how_long_the_destination_takes() {
        let now = Instant::now();
        let mut d = Destinations::new(limits(1));
        assert_eq!(d.admit("slow:443", 1, now), Admission::Start(1));
        let after = now + Duration::from_secs(15);
        assert_eq!(d.finished("slow:443", now, Duration::from_secs(15), after), None);
        assert_eq!(d.admit("slow:443", 2, after), Admission::Start(2));
        // Nothing is held for a destination that takes longer than the hold limit.
        assert_eq!(d.admit("slow:443", 3, after), Admission::Defer(3, Duration::from_secs(15)));
        assert_eq!(d.held(), 0);
    }

    #[test]
    fn destinations_not_known_to_be_fast_together_hold_at_most_their_share() {
        let now = Instant::now();
        let mut d = Destinations::new(Limits { unproven_share: 3, ..limits(2) });
        assert_eq!(d.admit("fast:443", 0, now), Admission::Start(0));
        assert_eq!(d.finished("fast:443", now, ms(10), now), None);
        // Four tarpits, never seen to answer, want eight slots: they get the share.
        let mut started = 0;
        for t in 0..4 {
            for i in 0..2 {
                let admitted = d.admit(&format!("tarpit-{t}:443"), 10 * t + i, now);
                started += usize::from(matches!(admitted, Admission::Start(_)));
            }
        }
        assert_eq!(started, 3);
        // A receiver known to answer is not held back by them.
        assert_eq!(d.admit("fast:443", 98, now), Admission::Start(98));
        assert_eq!(d.admit("fast:443", 99, now), Admission::Start(99));
        // A tarpit's attempt timing out frees its place in the share (for the tarpits).
        let later = now + Duration::from_secs(15);
        assert_eq!(d.finished("tarpit-0:443", now, Duration::from_secs(15), later), None);
        assert_eq!(d.admit("tarpit-3:443", 100, later), Admission::Start(100));
        assert!(matches!(d.admit("tarpit-3:443", 101, later), Admission::Defer(101, _)));
        // Turned away again and again, a destination comes back less and less often.
        let delays: Vec<Duration> = [0, 1, 3, 7, 15, 31, 600]
            .into_iter()
            .map(|s| match d.admit("tarpit-0:443", 200, later + Duration::from_secs(s)) {
                Admission::Defer(_, delay) => delay,
                other => panic!("{other:?}"),
            })
            .collect();
        let secs = |s: &[u64]| s.iter().map(|s| Duration::from_secs(*s)).collect::<Vec<_>>();
        assert_eq!(delays, secs(&[15, 16, 18, 22, 30, 46, 60]), "a known tarpit: as long as its attempts");
        let delays: Vec<Duration> = [0, 1, 2, 3, 7, 600]
            .into_iter()
            .map(|s| match d.admit("new:443", 300, later + Duration::from_secs(s)) {
                Admission::Defer(_, delay) => delay,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, secs(&[1, 1, 2, 3, 4, 4]), "not yet tried: as long as it has waited");
    }

    #[test]
    fn attempts_in_flight_change_sides_with_their_destination() {
        let now = Instant::now();
        let mut d = Destinations::new(Limits { unproven_share: 2, ..limits(3) });
        assert_eq!(d.admit("a:443", 1, now), Admission::Start(1));
        assert_eq!(d.admit("a:443", 2, now), Admission::Start(2));
        assert!(matches!(d.admit("b:443", 3, now), Admission::Defer(3, _)), "the share is full");
        // a answers fast: its other attempt in flight leaves the share, b gets in.
        assert_eq!(d.finished("a:443", now, ms(5), now + ms(5)), None);
        assert_eq!(d.admit("b:443", 4, now + ms(5)), Admission::Start(4));
        assert_eq!(d.admit("a:443", 5, now + ms(5)), Admission::Start(5), "proven: outside the share");
        // Then a's attempt times out: a is slow, its attempt in flight (5) is back in the share.
        let later = now + Duration::from_secs(15);
        assert_eq!(d.finished("a:443", now, Duration::from_secs(15), later), None);
        assert!(matches!(d.admit("c:443", 6, later), Admission::Defer(6, _)), "the share is full");
    }

    #[test]
    fn idle_destinations_are_forgotten_and_held_ones_can_be_taken_back() {
        let now = Instant::now();
        let mut d = Destinations::new(limits(1));
        assert_eq!(d.admit("a:443", 1, now), Admission::Start(1));
        assert_eq!(d.admit("a:443", 2, now), Admission::Held);
        assert_eq!(d.take_held(), [2]);
        assert_eq!(d.held(), 0);
        assert_eq!(d.finished("a:443", now, ms(5), now), None);
        d.prune(now + FORGET_AFTER);
        assert!(d.by_key.is_empty());
        assert_eq!(d.finished("a:443", now, ms(5), now), None, "an unknown destination");
    }
}
