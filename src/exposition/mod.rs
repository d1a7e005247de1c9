//! The `/metrics` body, in the format the scrape asked for (`encoding::Format`: the
//! text format 0.0.4 or OpenMetrics), from the families of every collector (each
//! collector's `encode`), the families that belong to none (`families`), the exporter's
//! own metrics and the process metrics.
//!
//! Rendering reads a published [`Snapshot`] and never calls Pipefy. The body has three
//! parts, none of which splits a family:
//! - [`write_snapshot`], everything that follows from the snapshot: it grows with the
//!   organizations, and is rendered once per format when a snapshot is published
//!   ([`Published`], gzip, and plain too below a size);
//! - the exporter's own metrics ([`SelfMetrics`]), a few kilobytes whatever the number
//!   of organizations, rendered again when they change (during refreshes);
//! - [`render_scrape_time`], what only the scrape time can tell (a deadline countdown,
//!   the process metrics), a few hundred bytes rendered on every scrape, and in
//!   OpenMetrics the `# EOF` that tells a scraper the body is whole.

mod families;
mod published;

use std::sync::Arc;
use std::time::SystemTime;

use crate::encoding::{self, openmetrics, Buffer, Format, Sink};
pub(crate) use published::keep_fresh;
pub use published::Published;
pub use published::{ScrapeBody, SelfMetricsParts};

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

/// Renders the whole `/metrics` body in `format` at `now`, as one scrape serves it.
pub fn render(
    snapshot: &Arc<Snapshot>,
    self_metrics: &SelfMetrics,
    info: &ExpositionInfo,
    now: SystemTime,
    format: Format,
) -> String {
    let info = Arc::new(info.clone());
    let mut buffer = Buffer::new();
    write_snapshot(format, &mut buffer, snapshot.clone(), info.clone(), now);
    let mut out = buffer.into_string();
    out.push_str(&render_self_metrics(self_metrics, format));
    out.push_str(&render_scrape_time(&info, self_metrics, now, format));
    out
}

/// Writes the part of the body that follows from the snapshot and the configuration,
/// with the values that are still fresh at `now` (see [`Snapshot::stale_at`] for when
/// that changes).
pub(crate) fn write_snapshot(
    format: Format,
    buffer: &mut Buffer,
    snapshot: Arc<Snapshot>,
    info: Arc<ExpositionInfo>,
    now: SystemTime,
) {
    encoding::write(format, buffer, move |sink| {
        encode_snapshot(sink, &snapshot, &info, now)
    });
}

fn encode_snapshot(
    sink: &mut dyn Sink,
    snapshot: &Snapshot,
    info: &ExpositionInfo,
    now: SystemTime,
) {
    families::encode_organizations(sink, snapshot);
    for collector in &info.collectors {
        collector.encode(snapshot, now, sink);
    }
    families::encode_health(sink, snapshot);
    families::encode_intervals(sink, &info.collectors);
    families::encode_build_info(sink, info.version, info.revision);
    families::encode_shard(sink, info.shard);
}

/// The exporter's own metrics in `format`: prometheus-client writes them as
/// OpenMetrics, and the text format is derived from that.
pub(crate) fn render_self_metrics(self_metrics: &SelfMetrics, format: Format) -> String {
    let mut buffer = Buffer::new();
    self_metrics.write(&mut buffer);
    let openmetrics = buffer.into_string();
    match format {
        Format::OpenMetrics => openmetrics,
        Format::Text => {
            let mut text = String::with_capacity(openmetrics.len());
            encoding::from_openmetrics(&openmetrics, &mut text);
            text
        }
    }
}

/// The part of the body that only the scrape time can tell (the exporter's scrape
/// counts, a countdown, the process metrics), and in OpenMetrics the `# EOF` that ends
/// the body. Its size does not depend on the number of organizations.
pub(crate) fn render_scrape_time(
    info: &Arc<ExpositionInfo>,
    self_metrics: &SelfMetrics,
    now: SystemTime,
    format: Format,
) -> String {
    let mut buffer = Buffer::new();
    self_metrics.write_per_scrape(&mut buffer);
    let counts = buffer.into_string();
    let mut buffer = Buffer::new();
    match format {
        Format::OpenMetrics => buffer.push_str(&counts),
        Format::Text => {
            let mut text = String::with_capacity(counts.len());
            encoding::from_openmetrics(&counts, &mut text);
            buffer.push_str(&text);
        }
    }
    let info = info.clone();
    encoding::write(format, &mut buffer, move |sink| {
        for collector in &info.collectors {
            collector.encode_live(now, sink);
        }
        if let Some(stats) = process::read() {
            process::encode(sink, &stats);
        }
    });
    let mut out = buffer.into_string();
    if format == Format::OpenMetrics {
        out.push_str(openmetrics::EOF);
    }
    out
}
