//! The `/metrics` body: the Prometheus text format written by `encoder`, from the
//! families of every collector (each collector's `encode`), the families that belong to
//! none (`families`), the exporter's own metrics and the process metrics.
//!
//! Rendering reads the latest published [`Snapshot`] and never calls Pipefy. Only the
//! deadline countdown and the stale cut-off depend on the scrape time, which is why
//! rendering happens per scrape (see BENCHMARKS.md for what it costs).

mod encoder;
mod families;

use std::sync::Arc;
use std::time::SystemTime;

pub(crate) use encoder::{Encoder, Histogram, MetricType, CONTENT_TYPE};
pub(crate) use families::org_family;

use crate::collectors::Collector;
use crate::config::Config;
use crate::process;
use crate::self_metrics::SelfMetrics;
use crate::shard::Shard;
use crate::snapshot::Snapshot;

/// This build's version, as `pipefy_exporter_build_info` and `--version` tell it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision it was built from (build.rs), or "unknown".
pub const REVISION: &str = env!("PIPEFY_EXPORTER_REVISION");

/// Static facts about this process that the exposition needs.
#[derive(Clone, Debug)]
pub struct ExpositionInfo {
    /// The enabled collectors, in registry order.
    pub(crate) collectors: Vec<Arc<dyn Collector>>,
    pub version: &'static str,
    pub revision: &'static str,
    /// `--shard` and `--total-shards`.
    pub shard: Shard,
}

impl ExpositionInfo {
    /// What `config` exposes, labelled with this build's version and revision.
    pub fn new(config: &Config) -> Self {
        ExpositionInfo {
            collectors: config.collectors.clone(),
            version: VERSION,
            revision: REVISION,
            shard: config.shard,
        }
    }
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
    families::encode_organizations(&mut enc, snapshot);
    for collector in &info.collectors {
        collector.encode(snapshot, now, &mut enc);
    }
    families::encode_health(&mut enc, snapshot);
    families::encode_intervals(&mut enc, &info.collectors);
    self_metrics.encode(&mut enc);
    families::encode_build_info(&mut enc, info.version, info.revision);
    families::encode_shard(&mut enc, info.shard);
    if let Some(stats) = process::read() {
        process::encode(&mut enc, &stats);
    }
    out
}
