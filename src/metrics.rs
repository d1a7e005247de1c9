//! The `/metrics` body: every collector's families from the latest snapshot, the health
//! of each organization and collector, and the exporter's own metrics.
//!
//! Rendering reads the latest published [`Snapshot`] and never calls Pipefy. Only the
//! deadline countdown and the stale cut-off depend on the scrape time, which is why
//! rendering happens per scrape (see BENCHMARKS.md for what it costs).

use std::sync::Arc;
use std::time::SystemTime;

use crate::collectors::Collector;
use crate::exposition::{org_family, Encoder, MetricType};
use crate::process;
use crate::self_metrics::SelfMetrics;
use crate::snapshot::Snapshot;
use crate::timefmt::unix_seconds;

/// Static facts about this process that the exposition needs.
#[derive(Clone, Debug)]
pub struct ExpositionInfo {
    /// The enabled collectors, in registry order.
    pub collectors: Vec<Arc<dyn Collector>>,
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
    org_family(
        &mut enc,
        snapshot,
        "pipefy_organization_info",
        "Organization metadata; always 1.",
        |org, emit| {
            let uuid = org.meta.uuid.as_deref().unwrap_or("");
            let plan = org.meta.plan.as_deref().unwrap_or("");
            if !org.meta.name.is_empty() {
                emit(&[("organization_uuid", uuid), ("plan", plan)], 1.0);
            }
        },
    );
    for collector in &info.collectors {
        collector.encode(snapshot, now, &mut enc);
    }
    encode_health(&mut enc, snapshot);

    enc.family(
        "pipefy_exporter_collector_interval_seconds",
        "Configured interval between background refreshes of each collector.",
        MetricType::Gauge,
    );
    for collector in &info.collectors {
        enc.sample(
            "pipefy_exporter_collector_interval_seconds",
            &[("collector", collector.name())],
            collector.schedule().interval.as_secs_f64(),
        );
    }
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

/// `pipefy_up` and `pipefy_last_success_timestamp_seconds` per organization and
/// collector.
fn encode_health(enc: &mut Encoder, snapshot: &Snapshot) {
    org_family(
        enc,
        snapshot,
        "pipefy_up",
        "1 when the last refresh of this organization and collector succeeded, 0 when it failed (values are then stale or absent).",
        |org, emit| {
            for (collector, series) in &org.collectors {
                emit(&[("collector", collector)], if series.up { 1.0 } else { 0.0 });
            }
        },
    );
    org_family(
        enc,
        snapshot,
        "pipefy_last_success_timestamp_seconds",
        "Unix time of the last successful refresh of this organization and collector.",
        |org, emit| {
            for (collector, series) in &org.collectors {
                if let Some(last) = series.last_success {
                    emit(&[("collector", collector)], unix_seconds(last));
                }
            }
        },
    );
}
