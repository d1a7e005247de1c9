//! What the exporter knows: the last good values per organization and collector,
//! and the pure rules that merge one refresh cycle into it.
//!
//! Nothing here does I/O, so the stale-value rules are unit-tested directly.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

/// The three things fetched per organization; each fails or succeeds on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Collector {
    SubscriptionLimits,
    AiCredits,
    TokenAttribution,
}

impl Collector {
    pub const ALL: [Collector; 3] = [
        Collector::SubscriptionLimits,
        Collector::AiCredits,
        Collector::TokenAttribution,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Collector::SubscriptionLimits => "subscription_limits",
            Collector::AiCredits => "ai_credits",
            Collector::TokenAttribution => "token_attribution",
        }
    }
}

impl fmt::Display for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an organization. `uuid` and `name` may be unknown when the first
/// request for it already failed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrgMeta {
    pub id: String,
    pub uuid: Option<String>,
    pub name: String,
    pub plan: Option<String>,
}

/// One plan limit. `limit` is `+Inf` when the plan has none.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    /// Lower case, e.g. `pipes`, `ai_credits`, or a value Pipefy added later.
    pub resource: String,
    pub limit: f64,
    pub used: f64,
}

/// AI-credit usage this month. `limit` is `+Inf` for an uncapped plan.
#[derive(Clone, Debug, PartialEq)]
pub struct AiCredits {
    pub used: f64,
    pub limit: f64,
    pub free_used: f64,
    pub free_limit: f64,
    pub addon_enabled: bool,
}

/// A personal access token and whether it names a billing organization.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub assigned: bool,
}

/// What one collector knows about one organization.
#[derive(Clone, Debug, PartialEq)]
pub struct Series<T> {
    /// Whether the last cycle succeeded.
    pub up: bool,
    /// The last good value and when it was fetched.
    pub value: Option<T>,
    pub last_success: Option<SystemTime>,
    /// Why the last cycle failed, for the landing page and logs.
    pub last_error: Option<String>,
}

impl<T> Default for Series<T> {
    fn default() -> Self {
        Series {
            up: false,
            value: None,
            last_success: None,
            last_error: None,
        }
    }
}

impl<T> Series<T> {
    /// The value if it is still young enough to export.
    pub fn fresh(&self, now: SystemTime, stale_after: Duration) -> Option<&T> {
        let last = self.last_success?;
        let age = now.duration_since(last).unwrap_or(Duration::ZERO);
        if age > stale_after {
            None
        } else {
            self.value.as_ref()
        }
    }

    /// Applies one cycle's outcome: a success replaces the value, a failure keeps the
    /// last good one until it is older than `stale_after`.
    fn merge(self, outcome: Result<T, String>, now: SystemTime, stale_after: Duration) -> Self {
        match outcome {
            Ok(value) => Series {
                up: true,
                value: Some(value),
                last_success: Some(now),
                last_error: None,
            },
            Err(error) => {
                let keep = self.fresh(now, stale_after).is_some();
                Series {
                    up: false,
                    value: if keep { self.value } else { None },
                    last_success: self.last_success,
                    last_error: Some(error),
                }
            }
        }
    }
}

/// Everything known about one organization.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrgSnapshot {
    pub meta: OrgMeta,
    /// Which account's credential watches it.
    pub account: String,
    /// `None` when the collector is disabled.
    pub limits: Option<Series<Vec<Limit>>>,
    /// The inner `None` means Pipefy returned no AI-credit statistics for it.
    pub ai_credits: Option<Series<Option<AiCredits>>>,
    pub tokens: Option<Series<Vec<Token>>>,
}

impl OrgSnapshot {
    /// `(collector, up, last_success)` for each enabled collector.
    pub fn health(&self) -> Vec<(Collector, bool, Option<SystemTime>)> {
        let mut out = Vec::with_capacity(3);
        if let Some(s) = &self.limits {
            out.push((Collector::SubscriptionLimits, s.up, s.last_success));
        }
        if let Some(s) = &self.ai_credits {
            out.push((Collector::AiCredits, s.up, s.last_success));
        }
        if let Some(s) = &self.tokens {
            out.push((Collector::TokenAttribution, s.up, s.last_success));
        }
        out
    }

    /// The subscription limits, if fresh (empty otherwise).
    pub fn fresh_limits(&self, now: SystemTime, stale_after: Duration) -> &[Limit] {
        self.limits
            .as_ref()
            .and_then(|s| s.fresh(now, stale_after))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The AI-credit statistics, if fresh and returned by Pipefy.
    pub fn fresh_ai_credits(&self, now: SystemTime, stale_after: Duration) -> Option<&AiCredits> {
        self.ai_credits
            .as_ref()
            .and_then(|s| s.fresh(now, stale_after))
            .and_then(Option::as_ref)
    }

    /// The personal access tokens, if fresh (`None` when unknown, unlike "no tokens").
    pub fn fresh_tokens(&self, now: SystemTime, stale_after: Duration) -> Option<&[Token]> {
        self.tokens
            .as_ref()
            .and_then(|s| s.fresh(now, stale_after))
            .map(Vec::as_slice)
    }

    /// The first error of the last cycle, if any collector failed.
    pub fn last_error(&self) -> Option<&str> {
        let errors = [
            self.limits.as_ref().and_then(|s| s.last_error.as_deref()),
            self.ai_credits
                .as_ref()
                .and_then(|s| s.last_error.as_deref()),
            self.tokens.as_ref().and_then(|s| s.last_error.as_deref()),
        ];
        errors.into_iter().flatten().next()
    }
}

/// The latest state, published to the HTTP side after every cycle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub orgs: BTreeMap<String, OrgSnapshot>,
    /// Cycles finished since start; 0 means not ready.
    pub cycles: u64,
    pub last_cycle: Option<SystemTime>,
}

/// One cycle's outcome for one organization. A `None` collector field means the
/// collector is disabled; `Some(Err)` that it failed this cycle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrgResult {
    pub id: String,
    pub account: String,
    /// What this cycle learned of the organization's identity, if anything.
    pub meta: Option<OrgMeta>,
    pub limits: Option<Result<Vec<Limit>, String>>,
    pub ai_credits: Option<Result<Option<AiCredits>, String>>,
    pub tokens: Option<Result<Vec<Token>, String>>,
}

impl OrgResult {
    /// (succeeded, failed) collector counts.
    pub fn tally(&self) -> (usize, usize) {
        let outcomes = [
            self.limits.as_ref().map(Result::is_ok),
            self.ai_credits.as_ref().map(Result::is_ok),
            self.tokens.as_ref().map(Result::is_ok),
        ];
        outcomes
            .into_iter()
            .flatten()
            .fold((0, 0), |(ok, err), success| {
                if success {
                    (ok + 1, err)
                } else {
                    (ok, err + 1)
                }
            })
    }
}

/// Merges one cycle into the previous snapshot. Organizations absent from `results`
/// (no longer configured or discovered) are dropped; the others keep their last good
/// values through failures until `stale_after`.
pub fn merge(
    previous: &Snapshot,
    results: Vec<OrgResult>,
    now: SystemTime,
    stale_after: Duration,
) -> Snapshot {
    let mut orgs = BTreeMap::new();
    for result in results {
        let prev = previous.orgs.get(&result.id).cloned().unwrap_or_default();
        let meta = match result.meta {
            Some(meta) => meta,
            // Keep the identity learned earlier so labels do not flap on failures.
            None if !prev.meta.id.is_empty() => prev.meta,
            None => OrgMeta {
                id: result.id.clone(),
                ..OrgMeta::default()
            },
        };
        let org = OrgSnapshot {
            meta,
            account: result.account,
            limits: result
                .limits
                .map(|r| prev.limits.unwrap_or_default().merge(r, now, stale_after)),
            ai_credits: result.ai_credits.map(|r| {
                prev.ai_credits
                    .unwrap_or_default()
                    .merge(r, now, stale_after)
            }),
            tokens: result
                .tokens
                .map(|r| prev.tokens.unwrap_or_default().merge(r, now, stale_after)),
        };
        orgs.insert(result.id, org);
    }
    Snapshot {
        orgs,
        cycles: previous.cycles + 1,
        last_cycle: Some(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn limits(used: f64) -> Vec<Limit> {
        vec![Limit {
            resource: "pipes".into(),
            limit: 5.0,
            used,
        }]
    }

    fn result(limits: Result<Vec<Limit>, String>) -> OrgResult {
        OrgResult {
            id: "2".into(),
            account: "default".into(),
            meta: None,
            limits: Some(limits),
            ai_credits: None,
            tokens: None,
        }
    }

    const STALE: Duration = Duration::from_secs(900);

    #[test]
    fn failure_keeps_last_good_value_until_stale_after() {
        let mut meta_result = result(Ok(limits(3.0)));
        meta_result.meta = Some(OrgMeta {
            id: "2".into(),
            uuid: Some("u".into()),
            name: "Vandeley Industries".into(),
            plan: None,
        });
        let s1 = merge(&Snapshot::default(), vec![meta_result], at(1000), STALE);
        assert_eq!(s1.cycles, 1);

        let s2 = merge(&s1, vec![result(Err("boom".into()))], at(1300), STALE);
        let org = &s2.orgs["2"];
        assert_eq!(
            org.meta.name, "Vandeley Industries",
            "identity survives the failure"
        );
        let series = org.limits.as_ref().unwrap();
        assert!(!series.up);
        assert_eq!(series.last_success, Some(at(1000)));
        assert_eq!(series.fresh(at(1300), STALE), Some(&limits(3.0)));
        assert_eq!(series.fresh(at(1901), STALE), None, "stale at scrape time");
        assert_eq!(org.last_error(), Some("boom"));

        // A cycle after stale_after drops the value itself.
        let s3 = merge(&s2, vec![result(Err("boom".into()))], at(1901), STALE);
        let series = s3.orgs["2"].limits.as_ref().unwrap();
        assert_eq!(series.value, None);
        assert_eq!(series.last_success, Some(at(1000)));

        // Recovery replaces everything.
        let s4 = merge(&s3, vec![result(Ok(limits(4.0)))], at(2000), STALE);
        let series = s4.orgs["2"].limits.as_ref().unwrap();
        assert!(series.up);
        assert_eq!(series.fresh(at(2000), STALE), Some(&limits(4.0)));
        assert_eq!(s4.cycles, 4);
    }

    #[test]
    fn organizations_no_longer_listed_are_dropped() {
        let s1 = merge(
            &Snapshot::default(),
            vec![result(Ok(limits(1.0)))],
            at(0),
            STALE,
        );
        let s2 = merge(&s1, vec![], at(10), STALE);
        assert!(s2.orgs.is_empty());
    }

    #[test]
    fn tally_counts_enabled_collectors_only() {
        let mut r = result(Ok(limits(1.0)));
        r.tokens = Some(Err("denied".into()));
        assert_eq!(r.tally(), (1, 1));
    }
}
