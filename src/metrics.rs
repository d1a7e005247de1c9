//! Exposition of the snapshot and of the exporter's own health.
//!
//! Rendering reads the latest published [`Snapshot`] and never calls Pipefy. Only the
//! deadline countdown and the stale cut-off depend on the scrape time, which is why
//! rendering happens per scrape (well under a millisecond for 120 organizations; see
//! BENCHMARKS.md).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::exposition::{Encoder, Histogram, MetricType};
use crate::process;
use crate::snapshot::{OrgSnapshot, Snapshot};
use crate::timefmt::unix_seconds;

/// Appended to the HELP of every value that comes from Pipefy.
const FROM_REFRESH: &str = "As of the last background refresh, not fetched at scrape time.";

const REFRESH_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
const REQUEST_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 33.0];

/// How a whole refresh cycle went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshResult {
    /// Every collector of every organization succeeded.
    Success,
    /// Some succeeded, some failed.
    Partial,
    /// Nothing succeeded.
    Failure,
}

impl RefreshResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshResult::Success => "success",
            RefreshResult::Partial => "partial",
            RefreshResult::Failure => "failure",
        }
    }

    pub fn from_tally(succeeded: usize, failed: usize) -> Self {
        match (succeeded, failed) {
            (_, 0) => RefreshResult::Success,
            (0, _) => RefreshResult::Failure,
            _ => RefreshResult::Partial,
        }
    }
}

/// The exporter's own counters and histograms, written by the refresh loop and the
/// Pipefy client, read by scrapes. One short-lived lock: updates happen a few times
/// per cycle, so contention is not a concern.
#[derive(Debug)]
pub struct SelfMetrics {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    refresh_duration: Histogram,
    refreshes: [u64; 3],
    api_requests: BTreeMap<(&'static str, String), u64>,
    api_duration: BTreeMap<&'static str, Histogram>,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        SelfMetrics {
            inner: Mutex::new(Inner {
                refresh_duration: Histogram::new(REFRESH_BUCKETS),
                refreshes: [0; 3],
                api_requests: BTreeMap::new(),
                api_duration: BTreeMap::new(),
            }),
        }
    }
}

impl SelfMetrics {
    /// Starts `pipefy_api_requests_total{operation,status="200"}` at 0 for the
    /// operations this configuration will use, so that `increase()` sees the first calls.
    pub fn with_operations(operations: &[&'static str]) -> Self {
        let metrics = SelfMetrics::default();
        {
            let mut inner = metrics.lock();
            for operation in operations {
                inner.api_requests.insert((operation, "200".to_owned()), 0);
            }
        }
        metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain numbers behind: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn observe_refresh(&self, duration: Duration, result: RefreshResult) {
        let mut inner = self.lock();
        inner.refresh_duration.observe(duration.as_secs_f64());
        let i = match result {
            RefreshResult::Success => 0,
            RefreshResult::Partial => 1,
            RefreshResult::Failure => 2,
        };
        inner.refreshes[i] += 1;
    }

    /// Counts one paid API call. `status` is the HTTP status code, or `error` when no
    /// response arrived.
    pub fn observe_request(&self, operation: &'static str, status: &str, duration: Duration) {
        let mut inner = self.lock();
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

    fn encode(&self, enc: &mut Encoder) {
        let inner = self.lock();
        enc.family(
            "pipefy_refresh_duration_seconds",
            "Duration of background refresh cycles (all organizations, all collectors).",
            MetricType::Histogram,
        );
        enc.histogram(
            "pipefy_refresh_duration_seconds",
            &[],
            &inner.refresh_duration,
        );

        enc.family(
            "pipefy_refreshes_total",
            "Background refresh cycles by result: success (everything fetched), partial, failure (nothing fetched).",
            MetricType::Counter,
        );
        for (result, count) in ["success", "partial", "failure"]
            .iter()
            .zip(inner.refreshes)
        {
            enc.sample(
                "pipefy_refreshes_total",
                &[("result", result)],
                count as f64,
            );
        }

        enc.family(
            "pipefy_api_requests_total",
            "HTTP requests made to Pipefy by operation and status code (\"error\": no response). Every operation but oauth_token is a paid GraphQL API call.",
            MetricType::Counter,
        );
        for ((operation, status), count) in &inner.api_requests {
            enc.sample(
                "pipefy_api_requests_total",
                &[("operation", operation), ("status", status)],
                *count as f64,
            );
        }

        enc.family(
            "pipefy_api_request_duration_seconds",
            "Duration of HTTP requests to Pipefy by operation.",
            MetricType::Histogram,
        );
        for (operation, histogram) in &inner.api_duration {
            enc.histogram(
                "pipefy_api_request_duration_seconds",
                &[("operation", operation)],
                histogram,
            );
        }
    }
}

/// Static facts about this process that the exposition needs.
#[derive(Clone, Debug)]
pub struct ExpositionInfo {
    /// Unix time of the token-attribution deadline, if configured.
    pub deadline: Option<i64>,
    pub refresh_interval: Duration,
    pub stale_after: Duration,
    pub version: &'static str,
    pub revision: &'static str,
}

/// Renders the whole `/metrics` body.
pub fn render(
    snapshot: &Snapshot,
    self_metrics: &SelfMetrics,
    info: &ExpositionInfo,
    now: SystemTime,
) -> String {
    let mut out = String::with_capacity(4096 + snapshot.orgs.len() * 4096);
    let mut enc = Encoder::new(&mut out);
    encode_organizations(&mut enc, snapshot, info.stale_after, now);

    if let Some(deadline) = info.deadline {
        enc.family(
            "pipefy_token_attribution_deadline_timestamp_seconds",
            "Configured date (Unix time, UTC midnight) on which Pipefy assigns a billing organization to tokens that still have none.",
            MetricType::Gauge,
        );
        enc.sample(
            "pipefy_token_attribution_deadline_timestamp_seconds",
            &[],
            deadline as f64,
        );
        // Seconds, not days: Prometheus base units (promtool check metrics rejects a
        // `_days` name). The rules file records `pipefy:token_attribution_deadline:days`.
        enc.family(
            "pipefy_token_attribution_deadline_remaining_seconds",
            "Time left until the token-attribution deadline, computed at scrape time; negative once passed.",
            MetricType::Gauge,
        );
        enc.sample(
            "pipefy_token_attribution_deadline_remaining_seconds",
            &[],
            deadline as f64 - unix_seconds(now),
        );
    }

    enc.family(
        "pipefy_refresh_interval_seconds",
        "Configured interval between background refreshes.",
        MetricType::Gauge,
    );
    enc.sample(
        "pipefy_refresh_interval_seconds",
        &[],
        info.refresh_interval.as_secs_f64(),
    );
    self_metrics.encode(&mut enc);
    enc.family(
        "pipefy_exporter_build_info",
        "A metric with a constant '1' value labeled by version and revision of the exporter.",
        MetricType::Gauge,
    );
    enc.sample(
        "pipefy_exporter_build_info",
        &[("version", info.version), ("revision", info.revision)],
        1.0,
    );
    if let Some(stats) = process::read() {
        process::encode(&mut enc, &stats);
    }
    out
}

/// A family over organizations: writes HELP/TYPE once, then `samples` per org; a
/// family with no series writes nothing at all.
fn org_family(
    enc: &mut Encoder,
    snapshot: &Snapshot,
    name: &str,
    help: &str,
    mut samples: impl FnMut(&OrgSnapshot, &mut dyn FnMut(&[(&str, &str)], f64)),
) {
    let mut body = String::new();
    let mut inner = Encoder::new(&mut body);
    for org in snapshot.orgs.values() {
        samples(org, &mut |extra, value| {
            let mut labels: Vec<(&str, &str)> = Vec::with_capacity(2 + extra.len());
            labels.push(("organization_id", &org.meta.id));
            labels.push(("organization_name", &org.meta.name));
            labels.extend_from_slice(extra);
            inner.sample(name, &labels, value);
        });
    }
    if !body.is_empty() {
        enc.family(name, help, MetricType::Gauge);
        enc.raw(&body);
    }
}

fn encode_organizations(
    enc: &mut Encoder,
    snapshot: &Snapshot,
    stale_after: Duration,
    now: SystemTime,
) {
    let help = |text: &str| format!("{text} {FROM_REFRESH}");

    org_family(
        enc,
        snapshot,
        "pipefy_organization_info",
        &help("Organization metadata; always 1."),
        |org, emit| {
            let uuid = org.meta.uuid.as_deref().unwrap_or("");
            let plan = org.meta.plan.as_deref().unwrap_or("");
            if !org.meta.name.is_empty() {
                emit(&[("organization_uuid", uuid), ("plan", plan)], 1.0);
            }
        },
    );

    org_family(
        enc,
        snapshot,
        "pipefy_subscription_limit",
        &help("Plan limit per resource; +Inf when the plan has no limit."),
        |org, emit| {
            for l in org.fresh_limits(now, stale_after) {
                emit(&[("resource", &l.resource)], l.limit);
            }
        },
    );
    org_family(
        enc,
        snapshot,
        "pipefy_subscription_used",
        &help("Current use per resource (cards: created this month)."),
        |org, emit| {
            for l in org.fresh_limits(now, stale_after) {
                emit(&[("resource", &l.resource)], l.used);
            }
        },
    );

    type AiField = fn(&crate::snapshot::AiCredits) -> f64;
    let ai_families: [(&str, &str, AiField); 5] = [
        (
            "pipefy_ai_credits_used",
            "AI credits used this month.",
            |a| a.used,
        ),
        (
            "pipefy_ai_credits_limit",
            "AI credits included this month; +Inf when uncapped.",
            |a| a.limit,
        ),
        (
            "pipefy_ai_credits_free_used",
            "Free AI credits used this month.",
            |a| a.free_used,
        ),
        (
            "pipefy_ai_credits_free_limit",
            "Free AI credits this month.",
            |a| a.free_limit,
        ),
        (
            "pipefy_ai_credits_addon_enabled",
            "1 when AI-credit overage is billed (add-on) rather than blocked.",
            |a| if a.addon_enabled { 1.0 } else { 0.0 },
        ),
    ];
    for (name, text, field) in ai_families {
        org_family(enc, snapshot, name, &help(text), |org, emit| {
            if let Some(a) = org.fresh_ai_credits(now, stale_after) {
                emit(&[], field(a));
            }
        });
    }

    org_family(
        enc,
        snapshot,
        "pipefy_tokens",
        &help("Personal access tokens by billing attribution (assigned: names a billing organization)."),
        |org, emit| {
            if let Some(tokens) = org.fresh_tokens(now, stale_after) {
                let assigned = tokens.iter().filter(|t| t.assigned).count();
                emit(&[("billing", "assigned")], assigned as f64);
                emit(&[("billing", "unassigned")], (tokens.len() - assigned) as f64);
            }
        },
    );
    org_family(
        enc,
        snapshot,
        "pipefy_token_unassigned_info",
        &help("1 for each personal access token that has no billing organization yet."),
        |org, emit| {
            for t in org.fresh_tokens(now, stale_after).unwrap_or_default() {
                if !t.assigned {
                    emit(&[("token_id", &t.id), ("token_name", &t.name)], 1.0);
                }
            }
        },
    );

    org_family(
        enc,
        snapshot,
        "pipefy_up",
        "1 when the last refresh of this organization and collector succeeded, 0 when it failed (values are then stale or absent).",
        |org, emit| {
            for (collector, up, _) in org.health() {
                emit(&[("collector", collector.as_str())], if up { 1.0 } else { 0.0 });
            }
        },
    );
    org_family(
        enc,
        snapshot,
        "pipefy_last_success_timestamp_seconds",
        "Unix time of the last successful refresh of this organization and collector.",
        |org, emit| {
            for (collector, _, last) in org.health() {
                if let Some(last) = last {
                    emit(&[("collector", collector.as_str())], unix_seconds(last));
                }
            }
        },
    );
}
