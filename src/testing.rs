//! What the integration tests and the benchmarks need beyond the binary's surface, in
//! one place: nothing here is meant for other uses, and it carries no guarantee.

use crate::config::Config;
use crate::exposition::ExpositionInfo;

/// What `config` exposes: its collectors and shard, labelled with this build.
pub fn exposition_info(config: &Config) -> ExpositionInfo {
    ExpositionInfo::new(&config.collectors, config.shard)
}
