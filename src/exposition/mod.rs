//! The `/metrics` body: the Prometheus text format written by `encoder`, from the
//! families of every collector (each collector's `encode`), the families that belong to
//! none (`families`), the exporter's own metrics and the process metrics.
//!
//! Rendering reads a published [`Snapshot`] and never calls Pipefy. The body has three
//! parts, none of which splits a family:
//! - [`encode_snapshot`], everything that follows from the snapshot: it grows with the
//!   organizations, and is rendered once when a snapshot is published ([`Published`],
//!   gzip, and plain too below a size);
//! - the exporter's own metrics ([`SelfMetrics`]), a few kilobytes whatever the number
//!   of organizations, rendered again when they change (during refreshes);
//! - [`render_scrape_time`], what only the scrape time can tell (a deadline countdown,
//!   the process metrics), a few hundred bytes rendered on every scrape.

mod families;
mod published;

use std::sync::Arc;
use std::time::SystemTime;

use crate::encoding::Encoder;
pub(crate) use crate::encoding::CONTENT_TYPE;
pub use published::Published;
pub(crate) use published::{keep_fresh, ScrapeBody};

use crate::collectors::Collector;
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
    /// What these collectors and this shard expose, labelled with this build's version
    /// and revision.
    pub(crate) fn new(collectors: &[Arc<dyn Collector>], shard: Shard) -> Self {
        ExpositionInfo {
            collectors: collectors.to_vec(),
            version: VERSION,
            revision: REVISION,
            shard,
        }
    }
}

/// Renders the whole `/metrics` body at `now`, as one scrape serves it.
pub fn render(
    snapshot: &Snapshot,
    self_metrics: &SelfMetrics,
    info: &ExpositionInfo,
    now: SystemTime,
) -> String {
    let mut out = String::new();
    let mut enc = Encoder::new(&mut out);
    encode_snapshot(&mut enc, snapshot, info, now);
    self_metrics.encode(&mut enc);
    out.push_str(&render_scrape_time(info, now));
    out
}

/// Writes the part of the body that follows from the snapshot and the configuration,
/// with the values that are still fresh at `now` (see [`Snapshot::stale_at`] for when
/// that changes).
pub(crate) fn encode_snapshot(
    enc: &mut Encoder,
    snapshot: &Snapshot,
    info: &ExpositionInfo,
    now: SystemTime,
) {
    families::encode_organizations(enc, snapshot);
    for collector in &info.collectors {
        collector.encode(snapshot, now, enc);
    }
    families::encode_health(enc, snapshot);
    families::encode_intervals(enc, &info.collectors);
    families::encode_build_info(enc, info.version, info.revision);
    families::encode_shard(enc, info.shard);
}

/// The part of the body that only the scrape time can tell. Its size does not depend
/// on the number of organizations.
pub(crate) fn render_scrape_time(info: &ExpositionInfo, now: SystemTime) -> String {
    let mut out = String::with_capacity(2048);
    let mut enc = Encoder::new(&mut out);
    for collector in &info.collectors {
        collector.encode_live(now, &mut enc);
    }
    if let Some(stats) = process::read() {
        process::encode(&mut enc, &stats);
    }
    out
}
