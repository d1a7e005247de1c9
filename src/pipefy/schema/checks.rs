//! Per account: what is known of each enabled collector's query, and when Pipefy's
//! schema is checked next. A pure state machine: the scheduler tells it what happened
//! (a check, an answer, a rejection) and it says what changed, for the log and the
//! `pipefy_exporter_query_valid` gauge.
//!
//! The bound it keeps: a document Pipefy rejects is sent at most once per check period.
//! With the schema known, an invalid document is never sent; without it (introspection
//! refused), a document is sent until Pipefy rejects it as a whole, then not again until
//! the next check or reload. A new check period starts at each check and each reload.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Problem;

/// What is known of one collector's query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// No schema to check it against yet (before the first check, or introspection was
    /// refused), and Pipefy has not answered it in this check period.
    Unchecked,
    /// It validates against Pipefy's schema.
    Validated,
    /// Not checked against a schema, but Pipefy answered a request carrying it.
    Accepted,
    /// Not sent until the next check or reload.
    Invalid(Invalidity),
}

/// Why a query is not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invalidity {
    /// The schema coordinate at fault, when known (`Organization.personalAccessTokens`).
    pub(crate) coordinate: Option<String>,
    /// What the schema check found, or the rejection Pipefy sent.
    pub(crate) reason: String,
    /// Whether Pipefy rejected it (billed) rather than the schema check finding it.
    pub(crate) rejected: bool,
}

impl Status {
    /// Whether its requests may be sent.
    pub(crate) fn sendable(&self) -> bool {
        !matches!(self, Status::Invalid(_))
    }

    /// Whether it is known to work: no need to send it alone first.
    pub(crate) fn trusted(&self) -> bool {
        matches!(self, Status::Validated | Status::Accepted)
    }
}

/// One collector whose status changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) collector: &'static str,
    pub(crate) from: Status,
    pub(crate) to: Status,
}

/// One account's knowledge of its collectors' queries.
#[derive(Debug)]
pub(crate) struct QueryChecks {
    /// When the next check is due; `None`: at the next refresh.
    next: Option<Instant>,
    statuses: BTreeMap<&'static str, Status>,
}

impl QueryChecks {
    /// Nothing known yet; a check is due at once.
    pub(crate) fn new(collectors: &[&'static str]) -> Self {
        QueryChecks {
            next: None,
            statuses: collectors.iter().map(|c| (*c, Status::Unchecked)).collect(),
        }
    }

    /// Whether a check is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| next <= now)
    }

    /// The status of `collector` (a collector it does not know is unchecked).
    pub(crate) fn status(&self, collector: &str) -> &Status {
        self.statuses.get(collector).unwrap_or(&Status::Unchecked)
    }

    /// A reload: the collectors now enabled (new ones unchecked, removed ones gone), and
    /// a check at the next refresh, which starts a new check period.
    pub(crate) fn reload(&mut self, collectors: &[&'static str]) {
        self.statuses.retain(|name, _| collectors.contains(name));
        for collector in collectors {
            self.statuses.entry(collector).or_insert(Status::Unchecked);
        }
        self.next = None;
    }

    /// The schema was introspected at `now` and each collector's documents checked:
    /// `results` holds the problems of each (none: it validates). The next check is one
    /// `period` later.
    pub(crate) fn checked(
        &mut self,
        now: Instant,
        period: Duration,
        results: Vec<(&'static str, Vec<Problem>)>,
    ) -> Vec<Change> {
        self.next = now.checked_add(period);
        let mut changes = Vec::new();
        for (collector, problems) in results {
            let status = match problems.into_iter().next() {
                None => Status::Validated,
                Some(problem) => Status::Invalid(Invalidity {
                    coordinate: problem.coordinate,
                    reason: problem.message,
                    rejected: false,
                }),
            };
            changes.extend(self.set(collector, status));
        }
        changes
    }

    /// No schema this period: Pipefy refused the introspection request at `now`
    /// (billed), or the configuration turned introspection off. Documents are sent as before, and what Pipefy rejects is learnt; what
    /// was learnt in the previous period is forgotten, since the schema may have changed.
    pub(crate) fn unavailable(&mut self, now: Instant, period: Duration) -> Vec<Change> {
        self.next = now.checked_add(period);
        let collectors: Vec<&'static str> = self.statuses.keys().copied().collect();
        collectors
            .into_iter()
            .filter_map(|c| self.set(c, Status::Unchecked))
            .collect()
    }

    /// Pipefy answered a request that carried `collector`'s document.
    pub(crate) fn accepted(&mut self, collector: &'static str) -> Option<Change> {
        match self.status(collector) {
            Status::Unchecked => self.set(collector, Status::Accepted),
            _ => None,
        }
    }

    /// Pipefy rejected `collector`'s document as a whole (billed): not sent again until
    /// the next check or reload.
    pub(crate) fn rejected(&mut self, collector: &'static str, reason: String) -> Option<Change> {
        self.set(
            collector,
            Status::Invalid(Invalidity {
                coordinate: None,
                reason,
                rejected: true,
            }),
        )
    }

    fn set(&mut self, collector: &'static str, status: Status) -> Option<Change> {
        let slot = self.statuses.entry(collector).or_insert(Status::Unchecked);
        if *slot == status {
            return None;
        }
        let from = std::mem::replace(slot, status.clone());
        Some(Change {
            collector,
            from,
            to: status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn missing(coordinate: &str) -> Problem {
        Problem {
            coordinate: Some(coordinate.into()),
            message: format!("no {coordinate}"),
        }
    }

    #[test]
    fn a_check_validates_or_invalidates_until_the_next_one() {
        let t0 = Instant::now();
        let mut checks = QueryChecks::new(&["limits", "tokens"]);
        assert!(checks.due(t0));
        let changes = checks.checked(
            t0,
            DAY,
            vec![
                ("limits", vec![]),
                ("tokens", vec![missing("Organization.tokens")]),
            ],
        );
        assert_eq!(changes.len(), 2);
        assert_eq!(checks.status("limits"), &Status::Validated);
        let Status::Invalid(why) = checks.status("tokens") else {
            panic!("tokens should be invalid");
        };
        assert_eq!(why.coordinate.as_deref(), Some("Organization.tokens"));
        assert!(!why.rejected);
        assert!(!checks.status("tokens").sendable());
        assert!(!checks.due(t0 + DAY - Duration::from_secs(1)));
        assert!(checks.due(t0 + DAY));
        // The same result again changes nothing, so nothing is logged twice.
        let again = checks.checked(
            t0 + DAY,
            DAY,
            vec![
                ("limits", vec![]),
                ("tokens", vec![missing("Organization.tokens")]),
            ],
        );
        assert!(again.is_empty());
    }

    #[test]
    fn without_a_schema_a_rejection_holds_until_the_next_period() {
        let t0 = Instant::now();
        let mut checks = QueryChecks::new(&["limits", "tokens"]);
        checks.unavailable(t0, DAY);
        assert_eq!(checks.status("tokens"), &Status::Unchecked);
        assert!(!checks.status("tokens").trusted());
        let change = checks.rejected("tokens", "Field 'x' doesn't exist".into());
        assert_eq!(change.unwrap().from, Status::Unchecked);
        assert!(checks.accepted("tokens").is_none(), "a rejection stands");
        assert_eq!(
            checks.accepted("limits").map(|c| c.to),
            Some(Status::Accepted)
        );
        assert!(checks.status("limits").trusted());
        // The next period forgets what was learnt.
        let changes = checks.unavailable(t0 + DAY, DAY);
        assert_eq!(changes.len(), 2);
        assert_eq!(checks.status("tokens"), &Status::Unchecked);
    }

    #[test]
    fn a_reload_checks_again_and_follows_the_collectors() {
        let t0 = Instant::now();
        let mut checks = QueryChecks::new(&["limits", "tokens"]);
        checks.checked(t0, DAY, vec![("limits", vec![]), ("tokens", vec![])]);
        assert!(!checks.due(t0));
        checks.reload(&["limits", "integrations"]);
        assert!(checks.due(t0));
        let names: Vec<&str> = checks.statuses.keys().copied().collect();
        assert_eq!(names, ["integrations", "limits"]);
        // Kept until the check runs: a reload does not flap the gauges.
        assert_eq!(checks.status("limits"), &Status::Validated);
        assert_eq!(checks.status("integrations"), &Status::Unchecked);
    }
}
