//! What the integration tests and the benchmarks need beyond the binary's surface, in
//! one place: nothing here is meant for other uses, and it carries no guarantee.

pub use crate::app::{serve, ServeOptions};
pub use crate::config::{Config, ENV_CLIENT_SECRET, ENV_TOKEN};
pub use crate::encoding::Format;
pub use crate::exposition::{render, ExpositionInfo, Published, ScrapeBody, SelfMetricsParts};
pub use crate::http::{app, AppState};
pub use crate::refresh::{Due, RefreshOutcome, Refresher};
pub use crate::reload::Sources;
pub use crate::self_metrics::SelfMetrics;
pub use crate::shard::{owner, Shard};
pub use crate::snapshot::{merge, Snapshot};
pub use crate::web::WebConfig;

/// What `config` exposes: its collectors and shard, labelled with this build.
pub fn exposition_info(config: &Config) -> ExpositionInfo {
    ExpositionInfo::new(&config.collectors, config.shard)
}
