//! The exporter's own counters and histograms (`pipefy_exporter_*`): what refreshing
//! cost and how it went. Written by the scheduler and the Pipefy client, read by scrapes.
//!
//! The prefix keeps them apart from Pipefy's own figures about the organizations
//! (`pipefy_api_calls_used` is what Pipefy bills; `pipefy_exporter_api_requests_total`
//! is what this process sent).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::encoding::{Encoder, Histogram, MetricType};

const REFRESH_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Up to Pipefy's documented 33 s per query.
const REQUEST_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 33.0];

/// How one collector's refresh went over all its organizations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshResult {
    /// Every organization succeeded.
    Success,
    /// Some succeeded, some failed.
    Partial,
    /// Nothing succeeded.
    Failure,
}

impl RefreshResult {
    pub(crate) const ALL: [RefreshResult; 3] = [
        RefreshResult::Success,
        RefreshResult::Partial,
        RefreshResult::Failure,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RefreshResult::Success => "success",
            RefreshResult::Partial => "partial",
            RefreshResult::Failure => "failure",
        }
    }

    pub(crate) fn from_tally(succeeded: usize, failed: usize) -> Self {
        match (succeeded, failed) {
            (_, 0) => RefreshResult::Success,
            (0, _) => RefreshResult::Failure,
            _ => RefreshResult::Partial,
        }
    }
}

/// One short-lived lock: updates happen a few times per refresh, so contention is not
/// a concern.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Moves on every change, so that a scrape can reuse the last rendering until then.
    generation: u64,
    /// Per collector: duration histogram and counts by result.
    refreshes: BTreeMap<&'static str, (Histogram, [u64; 3])>,
    api_requests: BTreeMap<(&'static str, String), u64>,
    api_duration: BTreeMap<&'static str, Histogram>,
    /// Per account: the backoff wait in force (0: none) and whether its circuit is open.
    accounts: BTreeMap<String, (Duration, bool)>,
    /// Per account and collector: why its query is not sent, or `None` when it is.
    queries: BTreeMap<(String, &'static str), Option<String>>,
    /// Whether the last (re)load of the configuration succeeded, and when one last did.
    reload: Reload,
}

#[derive(Debug, Default)]
struct Reload {
    successful: bool,
    last_success: Option<SystemTime>,
}

impl SelfMetrics {
    /// Starts the counters at 0 for the collectors and operations this configuration
    /// uses, so that `increase()` sees the first refresh and the first calls.
    pub fn new(collectors: &[&'static str], operations: &[&'static str]) -> Self {
        let metrics = SelfMetrics::default();
        metrics.add(collectors, operations);
        metrics
    }

    /// Starts at 0 the counters of collectors and operations not seen before (after a
    /// reload enabled them); counters already running keep counting.
    pub(crate) fn add(&self, collectors: &[&'static str], operations: &[&'static str]) {
        let mut inner = self.change();
        for collector in collectors {
            inner
                .refreshes
                .entry(collector)
                .or_insert_with(refresh_entry);
        }
        for operation in operations {
            inner
                .api_requests
                .entry((operation, "200".to_owned()))
                .or_insert(0);
            inner
                .api_duration
                .entry(operation)
                .or_insert_with(|| Histogram::new(REQUEST_BUCKETS));
        }
    }

    /// Forgets the gauges of accounts and collectors a reload removed: a gauge of an
    /// account that is no longer watched would claim a wait that nobody is doing.
    pub(crate) fn retain_accounts(&self, keep: &[&str], collectors: &[&'static str]) {
        let mut inner = self.change();
        inner
            .accounts
            .retain(|account, _| keep.contains(&account.as_str()));
        inner.queries.retain(|(account, collector), _| {
            keep.contains(&account.as_str()) && collectors.contains(collector)
        });
    }

    /// Shows whether `collector`'s query is sent for `account`: `None` when it is, else
    /// why not (the schema check's finding, or Pipefy's rejection).
    pub(crate) fn set_query(
        &self,
        account: &str,
        collector: &'static str,
        invalid: Option<String>,
    ) {
        let key = (account.to_owned(), collector);
        if self.lock().queries.get(&key) == Some(&invalid) {
            return;
        }
        self.change().queries.insert(key, invalid);
    }

    /// Requests counted so far: `(operation, status, count)`.
    pub(crate) fn requests(&self) -> Vec<(&'static str, String, u64)> {
        self.lock()
            .api_requests
            .iter()
            .map(|((operation, status), count)| (*operation, status.clone(), *count))
            .collect()
    }

    /// `(account, collector, why)` of every query not sent, for the landing page.
    pub(crate) fn invalid_queries(&self) -> Vec<(String, &'static str, String)> {
        self.lock()
            .queries
            .iter()
            .filter_map(|((account, collector), why)| {
                Some((account.clone(), *collector, why.clone()?))
            })
            .collect()
    }

    /// Records how the last load of the configuration went (the one at start counts).
    pub(crate) fn observe_reload(&self, successful: bool, now: SystemTime) {
        let mut inner = self.change();
        inner.reload.successful = successful;
        if successful {
            inner.reload.last_success = Some(now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain numbers behind: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock, for a change: every write goes through here.
    fn change(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        inner.generation += 1;
        inner
    }

    /// A number that changes whenever anything [`SelfMetrics::encode`] writes does.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub(crate) fn observe_refresh(
        &self,
        collector: &'static str,
        duration: Duration,
        result: RefreshResult,
    ) {
        let mut inner = self.change();
        let (histogram, counts) = inner
            .refreshes
            .entry(collector)
            .or_insert_with(refresh_entry);
        histogram.observe(duration.as_secs_f64());
        let i = RefreshResult::ALL
            .iter()
            .position(|r| *r == result)
            .unwrap_or(2);
        counts[i] += 1;
    }

    /// Counts one request to Pipefy. `status` is the HTTP status code, or `error` when
    /// no response arrived.
    pub(crate) fn observe_request(
        &self,
        operation: &'static str,
        status: &str,
        duration: Duration,
    ) {
        let mut inner = self.change();
        *inner
            .api_requests
            .entry((operation, status.to_owned()))
            .or_insert(0) += 1;
        inner
            .api_duration
            .entry(operation)
            .or_insert_with(|| Histogram::new(REQUEST_BUCKETS))
            .observe(duration.as_secs_f64());
    }

    /// Shows an account's backoff: the wait in force after its last failure (zero when
    /// none) and whether its circuit breaker is open (half-open included).
    pub(crate) fn set_account_health(&self, account: &str, wait: Duration, circuit_open: bool) {
        // Set after every refresh: a value that did not change must not make the next
        // scrape render the self-metrics again.
        if self.lock().accounts.get(account) == Some(&(wait, circuit_open)) {
            return;
        }
        self.change()
            .accounts
            .insert(account.to_owned(), (wait, circuit_open));
    }

    pub(crate) fn encode(&self, enc: &mut Encoder) {
        let inner = self.lock();
        // Named as Prometheus and Alertmanager name theirs, so that existing alerts on
        // `*_config_last_reload_successful == 0` cover this exporter too.
        enc.family(
            "pipefy_exporter_config_last_reload_successful",
            "Whether the last configuration reload attempt (or the load at start) succeeded.",
            MetricType::Gauge,
        );
        enc.sample(
            "pipefy_exporter_config_last_reload_successful",
            &[],
            if inner.reload.successful { 1.0 } else { 0.0 },
        );
        enc.family(
            "pipefy_exporter_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration load (at start or by a reload).",
            MetricType::Gauge,
        );
        if let Some(at) = inner.reload.last_success {
            enc.sample(
                "pipefy_exporter_config_last_reload_success_timestamp_seconds",
                &[],
                timefmt::unix_seconds(at),
            );
        }
        enc.family(
            "pipefy_exporter_refresh_duration_seconds",
            "Duration of background refreshes, per collector (all organizations).",
            MetricType::Histogram,
        );
        for (collector, (histogram, _)) in &inner.refreshes {
            enc.histogram(
                "pipefy_exporter_refresh_duration_seconds",
                &[("collector", collector)],
                histogram,
            );
        }

        enc.family(
            "pipefy_exporter_refreshes_total",
            "Background refreshes per collector by result: success (every organization), partial, failure (none).",
            MetricType::Counter,
        );
        for (collector, (_, counts)) in &inner.refreshes {
            for (result, count) in RefreshResult::ALL.iter().zip(counts) {
                enc.sample(
                    "pipefy_exporter_refreshes_total",
                    &[("collector", collector), ("result", result.as_str())],
                    *count as f64,
                );
            }
        }

        enc.family(
            "pipefy_exporter_api_requests_total",
            "HTTP requests this exporter sent to Pipefy, by GraphQL operation name and status code (\"error\": no response). Every operation but oauth_token is a GraphQL API call; Pipefy bills 2xx, 3xx, 404, 408 and 422.",
            MetricType::Counter,
        );
        for ((operation, status), count) in &inner.api_requests {
            enc.sample(
                "pipefy_exporter_api_requests_total",
                &[("operation", operation), ("status", status)],
                *count as f64,
            );
        }

        enc.family(
            "pipefy_exporter_api_request_duration_seconds",
            "Duration of HTTP requests to Pipefy by operation, to the end of the body.",
            MetricType::Histogram,
        );
        for (operation, histogram) in &inner.api_duration {
            enc.histogram(
                "pipefy_exporter_api_request_duration_seconds",
                &[("operation", operation)],
                histogram,
            );
        }

        enc.family(
            "pipefy_exporter_backoff_seconds",
            "Wait imposed on an account's refreshes after its credential was refused (401/403) or its circuit opened; 0 when none.",
            MetricType::Gauge,
        );
        for (account, (wait, _)) in &inner.accounts {
            enc.sample(
                "pipefy_exporter_backoff_seconds",
                &[("account", account)],
                wait.as_secs_f64(),
            );
        }

        enc.family(
            "pipefy_exporter_query_valid",
            "1 while a collector's query is sent for an account; 0 when the schema check found it invalid or Pipefy rejected it as a whole, until the next check (pipefy.schema_check_interval) or reload.",
            MetricType::Gauge,
        );
        for ((account, collector), invalid) in &inner.queries {
            enc.sample(
                "pipefy_exporter_query_valid",
                &[("account", account), ("collector", collector)],
                if invalid.is_none() { 1.0 } else { 0.0 },
            );
        }

        enc.family(
            "pipefy_exporter_circuit_open",
            "1 while an account's circuit breaker is open or half-open after repeated whole-refresh failures, else 0.",
            MetricType::Gauge,
        );
        for (account, (_, open)) in &inner.accounts {
            enc.sample(
                "pipefy_exporter_circuit_open",
                &[("account", account)],
                if *open { 1.0 } else { 0.0 },
            );
        }
    }
}

fn refresh_entry() -> (Histogram, [u64; 3]) {
    (Histogram::new(REFRESH_BUCKETS), [0; 3])
}
