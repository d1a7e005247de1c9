//! [`org_family`]: how every collector writes its per-organization families, the
//! organization's id and name on each series.

use crate::encoding::{Encoder, MetricType};
use crate::snapshot::{OrgSnapshot, Snapshot};

/// Appended to the HELP of every value that comes from Pipefy.
pub(crate) const FROM_REFRESH: &str =
    "As of the last background refresh, not fetched at scrape time.";

/// A gauge family over organizations: writes HELP/TYPE once, then what `samples` emits
/// for each organization, labelled `organization_id`, `organization_name` and the extra
/// labels given; a family with no series writes nothing at all. `help` gets
/// [`FROM_REFRESH`] appended.
pub(crate) fn org_family(
    enc: &mut Encoder,
    snapshot: &Snapshot,
    name: &str,
    help: &str,
    mut samples: impl FnMut(&OrgSnapshot, &mut dyn FnMut(&[(&str, &str)], f64)),
) {
    // HELP and TYPE go out with the first sample, so that the family's samples stream
    // straight into `enc` (no copy of a family that is megabytes at 10,000
    // organizations) and an empty family writes nothing.
    let mut started = false;
    for org in snapshot.orgs.values() {
        samples(org, &mut |extra, value| {
            if !started {
                enc.family(name, &format!("{help} {FROM_REFRESH}"), MetricType::Gauge);
                started = true;
            }
            let mut labels: Vec<(&str, &str)> = Vec::with_capacity(2 + extra.len());
            labels.push(("organization_id", &org.meta.id));
            labels.push(("organization_name", &org.meta.name));
            labels.extend_from_slice(extra);
            enc.sample(name, &labels, value);
        });
    }
}
