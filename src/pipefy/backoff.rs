//! When to ask Pipefy again after a failure: the arithmetic (pure functions, unit-tested
//! here) and the per-account state machine the scheduler drives.
//!
//! Pipefy bills 2xx, 3xx, 404, 408 and 422 answers and does not bill 401, 403 or 5xx
//! (its "Consumption Guide"). The rules follow from that:
//! - a 5xx, or a connection that could not be made, costs nothing: the client tries the
//!   request again within the refresh, at most `pipefy.max_tries` times, after a random
//!   wait of up to `retry_delay`·2^(try−1) ("full jitter", so that many exporters hit by
//!   the same outage do not come back in step);
//! - an account whose credential is rejected (401 after one new access token, or 403)
//!   skips its refreshes for `backoff_base`·2^(n−1), at most `backoff_max`;
//! - an account whose refreshes fail as a whole [`CIRCUIT_THRESHOLD`] times in a row
//!   (nothing answered: 5xx, timeouts, connection errors, unreadable bodies, unexpected
//!   statuses) opens its circuit: its refreshes are skipped for the same kind of wait,
//!   then one refresh probes (half-open); a success closes the circuit, a failure opens
//!   it again for twice as long. A timeout or an unreadable 2xx body may have been billed,
//!   so those are never retried within a refresh; the circuit is what stops paying for
//!   them.

use std::time::{Duration, Instant};

/// Refreshes of an account that must fail as a whole, in a row, before its circuit
/// opens. Three: one failure is a blip, two may be one bad minute, three is an outage.
pub(crate) const CIRCUIT_THRESHOLD: u32 = 3;

/// `base`·2^(n−1) for the n-th failure in a row (n ≥ 1), at most `max`; zero for n = 0.
/// Saturates instead of overflowing, whatever `n`.
pub(crate) fn exponential(base: Duration, n: u32, max: Duration) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(Duration::MAX).min(max)
}

/// The wait before try `next_try` (2 for the first retry): uniformly random between zero
/// and `base`·2^(next_try−2), at most `max` ("full jitter"). `unit` is a random number
/// in [0, 1); values outside are clamped.
pub(crate) fn full_jitter(base: Duration, next_try: u32, max: Duration, unit: f64) -> Duration {
    let ceiling = exponential(base, next_try.saturating_sub(1), max);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ceiling.mul_f64(unit)
}

/// A random number in [0, 1) for the jitter. Not cryptographic and needs not be: it only
/// spreads retries apart. `RandomState` is seeded randomly per process and per instance.
pub(crate) fn random_unit() -> f64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let bits = std::collections::hash_map::RandomState::new().hash_one(nanos);
    // 53 random bits, the precision of an f64 mantissa.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// How one request ended, as far as the account's health is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Pipefy answered with a readable GraphQL response (per-field errors included).
    Answered,
    /// The credential was refused (401 after a new access token, 403, or the token
    /// endpoint refused the client).
    Rejected,
    /// 429, or not sent because of an earlier `Retry-After`.
    Throttled,
    /// Nothing usable came back: 5xx, other statuses, timeouts, connection errors,
    /// unreadable or truncated bodies.
    Failed,
}

/// What one account's requests of one refresh came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub answered: u32,
    pub rejected: u32,
    pub throttled: u32,
    pub failed: u32,
}

impl Tally {
    pub(crate) fn count(&mut self, class: Class) {
        let n = match class {
            Class::Answered => &mut self.answered,
            Class::Rejected => &mut self.rejected,
            Class::Throttled => &mut self.throttled,
            Class::Failed => &mut self.failed,
        };
        *n = n.saturating_add(1);
    }

    /// One answer is enough to call the API up; otherwise a refused credential outweighs
    /// an outage (it needs a human, not patience), and an outage outweighs throttling
    /// (which `Retry-After` already handles).
    pub(crate) fn verdict(&self) -> AccountVerdict {
        if self.answered > 0 {
            AccountVerdict::Healthy
        } else if self.rejected > 0 {
            AccountVerdict::Rejected
        } else if self.failed > 0 {
            AccountVerdict::Outage
        } else {
            AccountVerdict::Inconclusive
        }
    }
}

/// How one account's refresh went as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AccountVerdict {
    Healthy,
    Rejected,
    Outage,
    /// Nothing was sent, or only throttled: no reason to change state.
    Inconclusive,
}

/// The settings of [`Health`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    pub base: Duration,
    pub max: Duration,
    pub threshold: u32,
}

/// A change of an account's state, each worth one log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The credential was refused: refreshes are skipped for `wait`.
    BackingOff { wait: Duration },
    /// Refused again after a wait: the wait grows (logged at debug level only).
    StillRejected { wait: Duration },
    /// `failures` whole refreshes failed in a row: the circuit opened for `wait`.
    CircuitOpened { failures: u32, wait: Duration },
    /// The wait is over: the next refresh is a probe.
    HalfOpen,
    /// The probe failed: open again, for longer.
    CircuitReopened { wait: Duration },
    /// Healthy again after backing off or with the circuit open.
    Recovered,
}

/// Whether an account's refresh may send requests now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Go,
    /// Skip this refresh: the account waits `remaining` more.
    Wait {
        remaining: Duration,
        why: Why,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    CredentialRejected,
    CircuitOpen,
}

impl Why {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Why::CredentialRejected => "credential rejected",
            Why::CircuitOpen => "circuit open after repeated failures",
        }
    }
}

/// One account's backoff and circuit-breaker state. Pure: the caller passes the time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Health {
    /// Refreshes in a row whose credential was refused.
    rejected: u32,
    /// Refreshes in a row that failed as a whole.
    failures: u32,
    /// Times in a row the circuit opened (0: closed).
    opened: u32,
    /// The circuit's wait is over and the next refresh is its probe.
    probing: bool,
    /// The wait in force (0: none), shown as `pipefy_exporter_backoff_seconds`.
    wait: Duration,
    until: Option<Instant>,
}

impl Health {
    /// The wait imposed by the last failure; zero when healthy.
    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }

    /// Whether the circuit is open (half-open included).
    pub(crate) fn circuit_open(&self) -> bool {
        self.opened > 0
    }

    /// Called when a refresh starts: go, or wait. The first call after an open circuit's
    /// wait turns it half-open and returns that change.
    pub(crate) fn admit(&mut self, now: Instant) -> (Admission, Option<Change>) {
        if let Some(until) = self.until {
            if now < until {
                let why = if self.opened > 0 {
                    Why::CircuitOpen
                } else {
                    Why::CredentialRejected
                };
                let remaining = until - now;
                return (Admission::Wait { remaining, why }, None);
            }
            self.until = None;
            if self.opened > 0 {
                self.probing = true;
                return (Admission::Go, Some(Change::HalfOpen));
            }
        }
        (Admission::Go, None)
    }

    /// Called when a refresh that was admitted ends.
    pub(crate) fn record(
        &mut self,
        verdict: AccountVerdict,
        now: Instant,
        policy: &Policy,
    ) -> Option<Change> {
        match verdict {
            AccountVerdict::Inconclusive => None,
            AccountVerdict::Healthy => {
                let was_unwell = self.wait > Duration::ZERO || self.opened > 0;
                *self = Health::default();
                was_unwell.then_some(Change::Recovered)
            }
            AccountVerdict::Rejected => {
                // The API answered, so this is no outage: the circuit closes and the
                // credential's own backoff takes over.
                self.failures = 0;
                self.opened = 0;
                self.probing = false;
                self.rejected = self.rejected.saturating_add(1);
                self.set_wait(exponential(policy.base, self.rejected, policy.max), now);
                Some(if self.rejected == 1 {
                    Change::BackingOff { wait: self.wait }
                } else {
                    Change::StillRejected { wait: self.wait }
                })
            }
            AccountVerdict::Outage => {
                self.rejected = 0;
                self.failures = self.failures.saturating_add(1);
                if self.probing {
                    self.probing = false;
                    self.opened = self.opened.saturating_add(1);
                    self.set_wait(exponential(policy.base, self.opened, policy.max), now);
                    Some(Change::CircuitReopened { wait: self.wait })
                } else if self.opened == 0 && self.failures >= policy.threshold {
                    self.opened = 1;
                    self.set_wait(exponential(policy.base, 1, policy.max), now);
                    Some(Change::CircuitOpened {
                        failures: self.failures,
                        wait: self.wait,
                    })
                } else {
                    None
                }
            }
        }
    }

    fn set_wait(&mut self, wait: Duration, now: Instant) {
        self.wait = wait;
        // An unrepresentable instant (a wait of centuries) waits as long as it can.
        self.until = Some(
            now.checked_add(wait)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn exponential_doubles_from_the_base_and_stops_at_the_cap() {
        assert_eq!(exponential(S, 0, HOUR), Duration::ZERO);
        assert_eq!(exponential(S, 1, HOUR), S);
        assert_eq!(exponential(S, 2, HOUR), 2 * S);
        assert_eq!(exponential(S, 5, HOUR), 16 * S);
        assert_eq!(exponential(S, 13, HOUR), HOUR);
        // No overflow, however many failures.
        assert_eq!(exponential(S, 40, HOUR), HOUR);
        assert_eq!(exponential(S, u32::MAX, HOUR), HOUR);
        assert_eq!(exponential(Duration::MAX, 3, HOUR), HOUR);
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_doubled_base() {
        let base = Duration::from_millis(500);
        assert_eq!(full_jitter(base, 2, HOUR, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(base, 2, HOUR, 0.5), Duration::from_millis(250));
        assert_eq!(full_jitter(base, 3, HOUR, 0.5), Duration::from_millis(500));
        assert_eq!(full_jitter(base, 4, HOUR, 1.0), Duration::from_millis(2000));
        assert_eq!(full_jitter(base, 30, 10 * S, 1.0), 10 * S);
        // Nonsense randomness is clamped, never a panic.
        assert_eq!(full_jitter(base, 2, HOUR, f64::NAN), Duration::ZERO);
        assert_eq!(full_jitter(base, 2, HOUR, -3.0), Duration::ZERO);
        assert_eq!(full_jitter(base, 2, HOUR, 7.0), base);
        for _ in 0..1000 {
            let unit = random_unit();
            assert!((0.0..1.0).contains(&unit), "{unit}");
        }
    }

    #[test]
    fn verdicts() {
        let t = |answered, rejected, throttled, failed| Tally {
            answered,
            rejected,
            throttled,
            failed,
        };
        assert_eq!(t(1, 3, 3, 3).verdict(), AccountVerdict::Healthy);
        assert_eq!(t(0, 1, 3, 3).verdict(), AccountVerdict::Rejected);
        assert_eq!(t(0, 0, 3, 1).verdict(), AccountVerdict::Outage);
        assert_eq!(t(0, 0, 3, 0).verdict(), AccountVerdict::Inconclusive);
        assert_eq!(Tally::default().verdict(), AccountVerdict::Inconclusive);
    }

    const POLICY: Policy = Policy {
        base: Duration::from_secs(10),
        max: Duration::from_secs(60),
        threshold: 3,
    };

    #[test]
    fn a_rejected_credential_backs_off_exponentially_then_recovers() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert_eq!(h.admit(t0), (Admission::Go, None));
        assert_eq!(
            h.record(AccountVerdict::Rejected, t0, &POLICY),
            Some(Change::BackingOff { wait: 10 * S })
        );
        assert_eq!(h.wait(), 10 * S);
        assert!(!h.circuit_open());
        assert_eq!(
            h.admit(t0 + 4 * S).0,
            Admission::Wait {
                remaining: 6 * S,
                why: Why::CredentialRejected
            }
        );
        let t1 = t0 + 10 * S;
        assert_eq!(h.admit(t1), (Admission::Go, None));
        assert_eq!(
            h.record(AccountVerdict::Rejected, t1, &POLICY),
            Some(Change::StillRejected { wait: 20 * S })
        );
        let mut t = t1;
        for _ in 0..5 {
            t += h.wait();
            assert_eq!(h.admit(t).0, Admission::Go);
            h.record(AccountVerdict::Rejected, t, &POLICY);
        }
        assert_eq!(h.wait(), POLICY.max, "capped");
        t += h.wait();
        assert_eq!(h.admit(t).0, Admission::Go);
        assert_eq!(
            h.record(AccountVerdict::Healthy, t, &POLICY),
            Some(Change::Recovered)
        );
        assert_eq!(h, Health::default());
        // Healthy when healthy is no change worth a log line.
        assert_eq!(h.record(AccountVerdict::Healthy, t, &POLICY), None);
    }

    #[test]
    fn the_circuit_opens_after_the_threshold_probes_and_closes() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert_eq!(h.record(AccountVerdict::Outage, t0, &POLICY), None);
        assert_eq!(h.record(AccountVerdict::Outage, t0, &POLICY), None);
        // Throttling in between neither counts nor resets.
        assert_eq!(h.record(AccountVerdict::Inconclusive, t0, &POLICY), None);
        assert_eq!(h.admit(t0), (Admission::Go, None));
        assert_eq!(
            h.record(AccountVerdict::Outage, t0, &POLICY),
            Some(Change::CircuitOpened {
                failures: 3,
                wait: 10 * S
            })
        );
        assert!(h.circuit_open());
        assert_eq!(
            h.admit(t0 + S).0,
            Admission::Wait {
                remaining: 9 * S,
                why: Why::CircuitOpen
            }
        );
        let t1 = t0 + 10 * S;
        assert_eq!(h.admit(t1), (Admission::Go, Some(Change::HalfOpen)));
        assert_eq!(
            h.record(AccountVerdict::Outage, t1, &POLICY),
            Some(Change::CircuitReopened { wait: 20 * S })
        );
        assert!(h.circuit_open());
        let t2 = t1 + 20 * S;
        assert_eq!(h.admit(t2), (Admission::Go, Some(Change::HalfOpen)));
        assert_eq!(
            h.record(AccountVerdict::Healthy, t2, &POLICY),
            Some(Change::Recovered)
        );
        assert!(!h.circuit_open());
        assert_eq!(h.wait(), Duration::ZERO);
    }

    #[test]
    fn a_success_between_failures_resets_the_count() {
        let t0 = Instant::now();
        let mut h = Health::default();
        h.record(AccountVerdict::Outage, t0, &POLICY);
        h.record(AccountVerdict::Outage, t0, &POLICY);
        assert_eq!(h.record(AccountVerdict::Healthy, t0, &POLICY), None);
        h.record(AccountVerdict::Outage, t0, &POLICY);
        assert_eq!(h.record(AccountVerdict::Outage, t0, &POLICY), None);
        assert!(!h.circuit_open());
    }

    #[test]
    fn a_rejection_while_open_hands_over_to_the_credential_backoff() {
        let t0 = Instant::now();
        let mut h = Health::default();
        for _ in 0..3 {
            h.record(AccountVerdict::Outage, t0, &POLICY);
        }
        let t1 = t0 + 10 * S;
        assert_eq!(h.admit(t1).1, Some(Change::HalfOpen));
        assert_eq!(
            h.record(AccountVerdict::Rejected, t1, &POLICY),
            Some(Change::BackingOff { wait: 10 * S })
        );
        assert!(!h.circuit_open());
    }

    #[test]
    fn an_absurd_wait_does_not_overflow() {
        let policy = Policy {
            base: Duration::MAX,
            max: Duration::MAX,
            threshold: 1,
        };
        let t0 = Instant::now();
        let mut h = Health::default();
        h.record(AccountVerdict::Outage, t0, &policy);
        assert!(matches!(h.admit(t0).0, Admission::Wait { .. }));
    }
}
