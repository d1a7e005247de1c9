//! The schema check as the scheduler runs it, per account: introspect when a check is
//! due, validate every enabled collector's documents ([`crate::pipefy::schema`]), learn
//! from what Pipefy answers or rejects, and show each change once, in the log and in
//! `pipefy_exporter_query_valid`.

use std::time::Instant;

use super::accounts::{lock, AccountClient};
use super::Refresher;
use crate::collectors::{self, Collector};
use crate::pipefy::schema::checks::{Change, Status};
use crate::pipefy::schema::Introspection;
use crate::pipefy::PartVerdict;

impl Refresher {
    /// Checks the account's queries against Pipefy's schema if a check is due: at
    /// start, after a reload, then once per `pipefy.schema_check_interval`. One billed
    /// request (none with `pipefy.introspection: false`). A request that failed on the
    /// way (an HTTP error, no connection) leaves everything as it was, and the next
    /// refresh tries again.
    pub(super) async fn check_queries(&self, ac: &AccountClient) {
        let now = Instant::now();
        if !lock(&ac.checks).due(now) {
            return;
        }
        let account = ac.account.name.as_str();
        let period = self.config.schema_check.interval;
        let changes = if !self.config.schema_check.introspection {
            lock(&ac.checks).unavailable(now, period)
        } else {
            let introspection = match self.permits.acquire().await {
                Ok(_permit) => ac.client.introspect().await,
                Err(_) => return,
            };
            match introspection {
                Introspection::Schema(schema) => {
                    let results = self
                        .config
                        .collectors
                        .iter()
                        .map(|c| {
                            let problems = collectors::documents(c.as_ref())
                                .iter()
                                .flat_map(|document| schema.check(document))
                                .collect();
                            (c.name(), problems)
                        })
                        .collect();
                    tracing::info!(
                        account,
                        types = schema.type_count(),
                        next_check_in = %crate::duration::format_duration(period),
                        "checked every collector's query against Pipefy's schema"
                    );
                    lock(&ac.checks).checked(now, period, results)
                }
                Introspection::Refused(why) => {
                    tracing::warn!(
                        account,
                        error = %why,
                        "Pipefy refused to tell its schema (introspection); queries are sent unchecked, and one Pipefy rejects is not sent again until the next check"
                    );
                    lock(&ac.checks).unavailable(now, period)
                }
                Introspection::Failed(error) => {
                    tracing::warn!(
                        account,
                        %error,
                        "cannot check the queries against Pipefy's schema now; trying again at the next refresh"
                    );
                    return;
                }
            }
        };
        self.announce_queries(account, changes);
    }

    /// Whether one of `collector`'s fields goes alone first: its query rests on an
    /// undocumented name that neither the schema nor an answer has confirmed.
    pub(super) fn probe_first(&self, ac: &AccountClient, collector: &dyn Collector) -> bool {
        collector.assumed() && !lock(&ac.checks).status(collector.name()).trusted()
    }

    /// Why `collector`'s query is not sent for the account, if it is not.
    pub(super) fn held_back(
        &self,
        ac: &AccountClient,
        collector: &dyn Collector,
    ) -> Option<String> {
        match lock(&ac.checks).status(collector.name()) {
            Status::Invalid(why) => Some(format!(
                "not sent: {}; checked again at the next schema check or reload",
                why.reason
            )),
            _ => None,
        }
    }

    /// What a fetch taught about each collector's document.
    pub(super) fn learn(&self, ac: &AccountClient, verdicts: &[(&'static str, &PartVerdict)]) {
        let changes: Vec<Change> = {
            let mut checks = lock(&ac.checks);
            verdicts
                .iter()
                .filter_map(|(collector, verdict)| match verdict {
                    PartVerdict::Accepted => checks.accepted(collector),
                    PartVerdict::Rejected(why) => checks.rejected(collector, why.clone()),
                    PartVerdict::Unknown => None,
                })
                .collect()
        };
        self.announce_queries(&ac.account.name, changes);
    }

    /// One log line per change, and the gauge.
    fn announce_queries(&self, account: &str, changes: Vec<Change>) {
        for Change {
            collector,
            from,
            to,
        } in changes
        {
            match &to {
                Status::Invalid(why) if !why.rejected => {
                    let coordinate = why.coordinate.as_deref().unwrap_or("");
                    let (on, field) = coordinate.split_once('.').unwrap_or(("", ""));
                    tracing::warn!(
                        account,
                        collector,
                        r#type = on,
                        field,
                        error = %why.reason,
                        "this collector's query does not match Pipefy's schema; it is not sent until the next schema check (pipefy.schema_check_interval) or a reload"
                    );
                }
                Status::Invalid(why) => tracing::warn!(
                    account,
                    collector,
                    error = %why.reason,
                    "Pipefy rejected this collector's query as a whole (a billed request); it is not sent again until the next schema check (pipefy.schema_check_interval) or a reload"
                ),
                _ if matches!(from, Status::Invalid(_)) => tracing::info!(
                    account,
                    collector,
                    status = ?to,
                    "this collector's query is valid again; it is sent from now on"
                ),
                _ => tracing::debug!(account, collector, status = ?to, "query status"),
            }
            let invalid = match to {
                Status::Invalid(why) => Some(match why.coordinate {
                    Some(coordinate) if !why.rejected => {
                        format!("{coordinate}: {}", why.reason)
                    }
                    _ => why.reason,
                }),
                _ => None,
            };
            self.metrics.set_query(account, collector, invalid);
        }
    }
}
