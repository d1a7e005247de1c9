//! The exporter's own metrics (`pipefy_exporter_*`): what refreshing cost and how it
//! went. Written by the scheduler and the Pipefy client, read by scrapes.
//!
//! They are prometheus-client metric types (counters, gauges, histograms) in a
//! prometheus-client [`Registry`], which writes them as OpenMetrics; the text format is
//! derived from that text (`encoding::from_openmetrics`), so both say the same. The
//! registry's families cannot be listed, so the label sets a reload may remove and the
//! reasons shown on the landing page are kept beside them. Within a family, series come
//! in no particular order (prometheus-client keeps them in a hash map).
//!
//! The prefix keeps them apart from Pipefy's own figures about the organizations
//! (`pipefy_api_calls_used` is what Pipefy bills; `pipefy_exporter_api_requests_total`
//! is what this process sent).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::encoding::openmetrics::{registry_help, write_registry};
use crate::encoding::{Buffer, Format};
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

/// A label set: names and values in the order they are shown.
type Labels<const N: usize> = [(&'static str, Cow<'static, str>); N];

/// A gauge of seconds (or any fraction).
type Seconds = Gauge<f64, AtomicU64>;

type Histograms = Family<Labels<1>, Histogram, fn() -> Histogram>;

/// Counters, gauges and histograms, each change counted by [`SelfMetrics::generation`]
/// so that a scrape can reuse the last rendering until then.
#[derive(Debug)]
pub struct SelfMetrics {
    registry: Registry,
    reload_successful: Gauge,
    reload_success: Seconds,
    refresh_duration: Histograms,
    refreshes: Family<Labels<2>, Counter>,
    api_requests: Family<Labels<2>, Counter>,
    api_duration: Histograms,
    backoff: Family<Labels<1>, Seconds>,
    query_valid: Family<Labels<2>, Gauge>,
    circuit_open: Family<Labels<1>, Gauge>,
    /// What changes with every scrape, in a registry of its own: rendered per scrape,
    /// outside the cached part (and outside [`SelfMetrics::generation`]).
    per_scrape: Registry,
    scrapes: Family<Labels<2>, Counter>,
    /// Moves after every change.
    generation: AtomicU64,
    /// What the registry cannot list.
    book: Mutex<Book>,
}

/// The label sets that come and go with the configuration, and what only the landing
/// page shows.
#[derive(Debug, Default)]
struct Book {
    /// Per account: the backoff wait in force (0: none) and whether its circuit is open.
    accounts: BTreeMap<String, (Duration, bool)>,
    /// Per account and collector: why its query is not sent, or `None` when it is.
    queries: BTreeMap<(String, &'static str), Option<String>>,
    /// Every `(operation, status)` counted, for [`SelfMetrics::requests`].
    requests: BTreeSet<(&'static str, String)>,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        let mut metrics = SelfMetrics {
            registry: Registry::default(),
            reload_successful: Gauge::default(),
            reload_success: Seconds::default(),
            refresh_duration: Family::new_with_constructor(refresh_histogram),
            refreshes: Family::default(),
            api_requests: Family::default(),
            api_duration: Family::new_with_constructor(request_histogram),
            backoff: Family::default(),
            query_valid: Family::default(),
            circuit_open: Family::default(),
            per_scrape: Registry::default(),
            scrapes: Family::default(),
            generation: AtomicU64::new(0),
            book: Mutex::default(),
        };
        metrics.register_reloads_and_refreshes();
        metrics.register_requests_and_accounts();
        metrics
    }
}

impl SelfMetrics {
    /// Registers what a reload or a refresh changes, in the order they are shown.
    fn register_reloads_and_refreshes(&mut self) {
        // Named as Prometheus and Alertmanager name theirs, so that existing alerts on
        // `*_config_last_reload_successful == 0` cover this exporter too.
        register(
            &mut self.registry,
            "pipefy_exporter_config_last_reload_successful",
            "Whether the last configuration reload attempt (or the load at start) succeeded.",
            None,
            self.reload_successful.clone(),
        );
        register(
            &mut self.registry,
            "pipefy_exporter_config_last_reload_success_timestamp",
            "Timestamp of the last successful configuration load (at start or by a reload).",
            Some(Unit::Seconds),
            self.reload_success.clone(),
        );
        register(
            &mut self.registry,
            "pipefy_exporter_refresh_duration",
            "Duration of background refreshes, per collector (all organizations).",
            Some(Unit::Seconds),
            self.refresh_duration.clone(),
        );
        register(
            &mut self.registry,
            "pipefy_exporter_refreshes",
            "Background refreshes per collector by result: success (every organization), partial, failure (none).",
            None,
            self.refreshes.clone(),
        );
    }

    /// Registers what a request to Pipefy or an account's health changes, then the
    /// scrape counts (in the registry rendered per scrape).
    fn register_requests_and_accounts(&mut self) {
        register(
            &mut self.registry,
            "pipefy_exporter_api_requests",
            "HTTP requests this exporter sent to Pipefy, by GraphQL operation name and status code (\"error\": no response). Every operation but oauth_token is a GraphQL API call; Pipefy bills 2xx, 3xx, 404, 408 and 422.",
            None,
            self.api_requests.clone(),
        );
        register(
            &mut self.registry,
            "pipefy_exporter_api_request_duration",
            "Duration of HTTP requests to Pipefy by operation, to the end of the body.",
            Some(Unit::Seconds),
            self.api_duration.clone(),
        );
        register(
            &mut self.registry,
            "pipefy_exporter_backoff",
            "Wait imposed on an account's refreshes after its credential was refused (401/403) or its circuit opened; 0 when none.",
            Some(Unit::Seconds),
            self.backoff.clone(),
        );
        register(
            &mut self.registry,
            "pipefy_exporter_query_valid",
            "1 while a collector's query is sent for an account; 0 when the schema check found it invalid or Pipefy rejected it as a whole, until the next check (pipefy.schema_check_interval) or reload.",
            None,
            self.query_valid.clone(),
        );
        register(
            &mut self.registry,
            "pipefy_exporter_circuit_open",
            "1 while an account's circuit breaker is open or half-open after repeated whole-refresh failures, else 0.",
            None,
            self.circuit_open.clone(),
        );
        register(
            &mut self.per_scrape,
            "pipefy_exporter_scrapes",
            "Scrapes of the metrics endpoint by format (openmetrics, text) and content encoding (gzip, identity).",
            None,
            self.scrapes.clone(),
        );
    }
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
        // `get_or_create` starts a series at 0; the guard it returns is let go at once.
        for collector in collectors {
            drop(
                self.refresh_duration
                    .get_or_create(&[collector_label(collector)]),
            );
            for result in RefreshResult::ALL {
                drop(
                    self.refreshes
                        .get_or_create(&refresh_labels(collector, result)),
                );
            }
        }
        let mut book = self.lock();
        for operation in operations {
            drop(
                self.api_requests
                    .get_or_create(&request_labels(operation, "200")),
            );
            book.requests.insert((operation, "200".to_owned()));
            drop(
                self.api_duration
                    .get_or_create(&[operation_label(operation)]),
            );
        }
        drop(book);
        self.changed();
    }

    /// Forgets the gauges of accounts and collectors a reload removed: a gauge of an
    /// account that is no longer watched would claim a wait that nobody is doing.
    pub(crate) fn retain_accounts(&self, keep: &[&str], collectors: &[&'static str]) {
        let mut book = self.lock();
        book.accounts.retain(|account, _| {
            let kept = keep.contains(&account.as_str());
            if !kept {
                self.backoff.remove(&account_labels(account));
                self.circuit_open.remove(&account_labels(account));
            }
            kept
        });
        book.queries.retain(|(account, collector), _| {
            let kept = keep.contains(&account.as_str()) && collectors.contains(collector);
            if !kept {
                self.query_valid.remove(&query_labels(account, collector));
            }
            kept
        });
        drop(book);
        self.changed();
    }

    /// Shows whether `collector`'s query is sent for `account`: `None` when it is, else
    /// why not (the schema check's finding, or Pipefy's rejection).
    pub(crate) fn set_query(
        &self,
        account: &str,
        collector: &'static str,
        invalid: Option<String>,
    ) {
        let mut book = self.lock();
        let key = (account.to_owned(), collector);
        if book.queries.get(&key) == Some(&invalid) {
            return;
        }
        let valid = i64::from(invalid.is_none());
        self.query_valid
            .get_or_create(&query_labels(account, collector))
            .set(valid);
        book.queries.insert(key, invalid);
        drop(book);
        self.changed();
    }

    /// Requests counted so far: `(operation, status, count)`.
    pub(crate) fn requests(&self) -> Vec<(&'static str, String, u64)> {
        let book = self.lock();
        book.requests
            .iter()
            .map(|(operation, status)| {
                let count = self
                    .api_requests
                    .get(&request_labels(operation, status))
                    .map_or(0, |c| c.get());
                (*operation, status.clone(), count)
            })
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
        self.reload_successful.set(i64::from(successful));
        if successful {
            self.reload_success.set(timefmt::unix_seconds(now));
        }
        self.changed();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding this lock leaves plain maps behind: still usable.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called after every change, once the new value is in place: a scrape that read
    /// the generation before rendering renders again at the next scrape.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A number that changes whenever anything [`SelfMetrics::write`] writes does.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn observe_refresh(
        &self,
        collector: &'static str,
        duration: Duration,
        result: RefreshResult,
    ) {
        self.refresh_duration
            .get_or_create(&[collector_label(collector)])
            .observe(duration.as_secs_f64());
        self.refreshes
            .get_or_create(&refresh_labels(collector, result))
            .inc();
        self.changed();
    }

    /// Counts one request to Pipefy. `status` is the HTTP status code, or `error` when
    /// no response arrived.
    pub(crate) fn observe_request(
        &self,
        operation: &'static str,
        status: &str,
        duration: Duration,
    ) {
        self.lock().requests.insert((operation, status.to_owned()));
        self.api_requests
            .get_or_create(&request_labels(operation, status))
            .inc();
        self.api_duration
            .get_or_create(&[operation_label(operation)])
            .observe(duration.as_secs_f64());
        self.changed();
    }

    /// Shows an account's backoff: the wait in force after its last failure (zero when
    /// none) and whether its circuit breaker is open (half-open included).
    pub(crate) fn set_account_health(&self, account: &str, wait: Duration, circuit_open: bool) {
        let mut book = self.lock();
        // Set after every refresh: a value that did not change must not make the next
        // scrape render the self-metrics again.
        if book.accounts.get(account) == Some(&(wait, circuit_open)) {
            return;
        }
        let labels = account_labels(account);
        self.backoff.get_or_create(&labels).set(wait.as_secs_f64());
        self.circuit_open
            .get_or_create(&labels)
            .set(i64::from(circuit_open));
        book.accounts
            .insert(account.to_owned(), (wait, circuit_open));
        drop(book);
        self.changed();
    }

    /// Counts a scrape of the metrics endpoint.
    pub(crate) fn observe_scrape(&self, format: Format, gzip: bool) {
        let format = match format {
            Format::OpenMetrics => "openmetrics",
            Format::Text => "text",
        };
        let encoding = if gzip { "gzip" } else { "identity" };
        self.scrapes
            .get_or_create(&[
                ("format", Cow::Borrowed(format)),
                ("encoding", Cow::Borrowed(encoding)),
            ])
            .inc();
    }

    /// Writes every family that changes only with refreshes and reloads as OpenMetrics
    /// (without `# EOF`), through prometheus-client.
    pub(crate) fn write(&self, buffer: &mut Buffer) {
        write_registry(buffer, &self.registry);
    }

    /// Writes the families that change with every scrape, likewise.
    pub(crate) fn write_per_scrape(&self, buffer: &mut Buffer) {
        write_registry(buffer, &self.per_scrape);
    }
}

/// Registers `metric` under `name` (without its unit, which prometheus-client appends).
fn register(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: impl prometheus_client::registry::Metric,
) {
    match unit {
        Some(unit) => registry.register_with_unit(name, registry_help(help), unit, metric),
        None => registry.register(name, registry_help(help), metric),
    }
}

fn collector_label(collector: &'static str) -> (&'static str, Cow<'static, str>) {
    ("collector", Cow::Borrowed(collector))
}

fn operation_label(operation: &'static str) -> (&'static str, Cow<'static, str>) {
    ("operation", Cow::Borrowed(operation))
}

fn refresh_labels(collector: &'static str, result: RefreshResult) -> Labels<2> {
    [
        collector_label(collector),
        ("result", Cow::Borrowed(result.as_str())),
    ]
}

fn request_labels(operation: &'static str, status: &str) -> Labels<2> {
    [
        operation_label(operation),
        ("status", Cow::Owned(status.to_owned())),
    ]
}

fn account_labels(account: &str) -> Labels<1> {
    [("account", Cow::Owned(account.to_owned()))]
}

fn query_labels(account: &str, collector: &'static str) -> Labels<2> {
    [
        ("account", Cow::Owned(account.to_owned())),
        collector_label(collector),
    ]
}

fn refresh_histogram() -> Histogram {
    Histogram::new(REFRESH_BUCKETS.iter().copied())
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS.iter().copied())
}
