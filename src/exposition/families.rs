//! Metric families that belong to no collector: organization identity, per-collector
//! health, collector intervals, build information and the shard.

use std::sync::Arc;

use timefmt::unix_seconds;

use crate::collectors::{org_family, Collector};
use crate::encoding::{Family, Sink, Unit};
use crate::shard::Shard;
use crate::snapshot::Snapshot;

/// `pipefy_organization_info`: identity of every organization.
pub(crate) fn encode_organizations(sink: &mut dyn Sink, snapshot: &Snapshot) {
    org_family(
        sink,
        snapshot,
        Family::info("pipefy_organization", "Organization metadata; always 1."),
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
pub(crate) fn encode_health(sink: &mut dyn Sink, snapshot: &Snapshot) {
    org_family(
        sink,
        snapshot,
        Family::gauge(
            "pipefy_up",
            "1 when the last refresh of this organization and collector succeeded, 0 when it failed (values are then stale or absent).",
        ),
        |org, emit| {
            for (collector, series) in &org.collectors {
                emit(&[("collector", collector)], if series.up { 1.0 } else { 0.0 });
            }
        },
    );
    org_family(
        sink,
        snapshot,
        Family::gauge(
            "pipefy_last_success_timestamp",
            "Unix time of the last successful refresh of this organization and collector.",
        )
        .in_unit(Unit::Seconds),
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
pub(crate) fn encode_intervals(sink: &mut dyn Sink, collectors: &[Arc<dyn Collector>]) {
    let family = Family::gauge(
        "pipefy_exporter_collector_interval",
        "Configured interval between background refreshes of each collector.",
    )
    .in_unit(Unit::Seconds);
    sink.family(&family, &mut |s| {
        for collector in collectors {
            s.sample(
                &[("collector", collector.name())],
                collector.schedule().interval.as_secs_f64(),
            );
        }
    });
}

/// `pipefy_exporter_build_info`.
pub(crate) fn encode_build_info(sink: &mut dyn Sink, version: &str, revision: &str) {
    let family = Family::info(
        "pipefy_exporter_build",
        "A metric with a constant '1' value labeled by version and revision of the exporter.",
    );
    sink.family(&family, &mut |s| {
        s.sample(&[("version", version), ("revision", revision)], 1.0);
    });
}

/// `pipefy_exporter_shard_ordinal` and `pipefy_exporter_total_shards`, named after
/// kube-state-metrics' `kube_state_metrics_shard_ordinal` and `_total_shards`: which part
/// of the organizations this instance exports (0 of 1 when not sharded).
pub(crate) fn encode_shard(sink: &mut dyn Sink, shard: Shard) {
    let families = [
        (
            Family::gauge(
                "pipefy_exporter_shard_ordinal",
                "The shard of the organizations this instance fetches and exports (--shard), from 0.",
            ),
            shard.index(),
        ),
        (
            Family::gauge(
                "pipefy_exporter_total_shards",
                "The number of shards that share the organizations (--total-shards); 1: not sharded.",
            ),
            shard.total(),
        ),
    ];
    for (family, value) in families {
        sink.family(&family, &mut |s| s.sample(&[], f64::from(value)));
    }
}
