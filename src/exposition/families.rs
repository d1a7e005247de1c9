//! Metric families that belong to no collector: organization identity, per-collector
//! health, collector intervals, build information and the shard.

use std::sync::Arc;

use timefmt::unix_seconds;

use crate::collectors::{org_family, Collector};
use crate::encoding::{Encoder, MetricType};
use crate::shard::Shard;
use crate::snapshot::Snapshot;

/// `pipefy_organization_info`: identity of every organization.
pub(crate) fn encode_organizations(enc: &mut Encoder, snapshot: &Snapshot) {
    org_family(
        enc,
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
}

/// `pipefy_up` and `pipefy_last_success_timestamp_seconds` per organization and
/// collector.
pub(crate) fn encode_health(enc: &mut Encoder, snapshot: &Snapshot) {
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

/// `pipefy_exporter_collector_interval_seconds`: each collector's configured interval.
pub(crate) fn encode_intervals(enc: &mut Encoder, collectors: &[Arc<dyn Collector>]) {
    enc.family(
        "pipefy_exporter_collector_interval_seconds",
        "Configured interval between background refreshes of each collector.",
        MetricType::Gauge,
    );
    for collector in collectors {
        enc.sample(
            "pipefy_exporter_collector_interval_seconds",
            &[("collector", collector.name())],
            collector.schedule().interval.as_secs_f64(),
        );
    }
}

/// `pipefy_exporter_build_info`.
pub(crate) fn encode_build_info(enc: &mut Encoder, version: &str, revision: &str) {
    enc.family(
        "pipefy_exporter_build_info",
        "A metric with a constant '1' value labeled by version and revision of the exporter.",
        MetricType::Gauge,
    );
    enc.sample(
        "pipefy_exporter_build_info",
        &[("version", version), ("revision", revision)],
        1.0,
    );
}

/// `pipefy_exporter_shard_ordinal` and `pipefy_exporter_total_shards`, named after
/// kube-state-metrics' `kube_state_metrics_shard_ordinal` and `_total_shards`: which part
/// of the organizations this instance exports (0 of 1 when not sharded).
pub(crate) fn encode_shard(enc: &mut Encoder, shard: Shard) {
    enc.family(
        "pipefy_exporter_shard_ordinal",
        "The shard of the organizations this instance fetches and exports (--shard), from 0.",
        MetricType::Gauge,
    );
    enc.sample(
        "pipefy_exporter_shard_ordinal",
        &[],
        f64::from(shard.index()),
    );
    enc.family(
        "pipefy_exporter_total_shards",
        "The number of shards that share the organizations (--total-shards); 1: not sharded.",
        MetricType::Gauge,
    );
    enc.sample(
        "pipefy_exporter_total_shards",
        &[],
        f64::from(shard.total()),
    );
}
