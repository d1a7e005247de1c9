//! What a collector costs in paid calls: the requests one refresh of it plans, and the
//! warnings worth a log line when a configuration makes it expensive.

use std::sync::Arc;
use std::time::Duration;

use super::{Collector, Target};
use crate::duration::format_duration;
use crate::pipefy::batch;

/// Below this, a collector's interval gets a warning with what it costs a day.
const CHEAP_INTERVAL: Duration = Duration::from_secs(60);

/// Requests one refresh of `collector` alone costs for `organizations`, as planned.
pub(crate) fn requests_per_refresh(
    collector: &dyn Collector,
    organizations: usize,
    limits: &batch::RequestLimits,
) -> usize {
    let targets: Vec<Target> = (0..organizations)
        .map(|i| Target {
            id: i.to_string(),
            uuid: Some(i.to_string()),
        })
        .collect();
    let part = batch::Part {
        operation: collector.operation(),
        label: collector.name(),
        probe: false,
        fields: collector.fields(&targets),
    };
    batch::plan(
        &[part],
        &batch::everything,
        limits,
        &batch::Learned::default(),
    )
    .len()
}

/// Collectors whose interval makes them expensive, with what they cost a day for
/// `organizations`.
pub(crate) fn warnings(
    collectors: &[Arc<dyn Collector>],
    organizations: usize,
    limits: &batch::RequestLimits,
) -> Vec<String> {
    collectors
        .iter()
        .filter(|c| c.schedule().interval < CHEAP_INTERVAL)
        .map(|c| {
            let requests = requests_per_refresh(c.as_ref(), organizations, limits);
            format!(
                "collectors.{}.interval is {}: {} paid Pipefy calls a day for {} organization(s), more with more organizations",
                c.name(),
                format_duration(c.schedule().interval),
                c.schedule().calls_per_day(requests),
                organizations
            )
        })
        .collect()
}
