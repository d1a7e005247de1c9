//! [`org_family`]: how every collector writes its per-organization families, the
//! organization's id and name on each series.

use crate::encoding::{Family, Sink};
use crate::snapshot::{OrgSnapshot, Snapshot};

/// Appended to the HELP of every value that comes from Pipefy.
pub(crate) const FROM_REFRESH: &str =
    "As of the last background refresh, not fetched at scrape time.";

/// A family over organizations: what `samples` emits for each organization, labelled
/// `organization_id`, `organization_name` and the extra labels given; a family with no
/// series writes nothing at all. Its HELP gets [`FROM_REFRESH`] appended.
pub(crate) fn org_family(
    sink: &mut dyn Sink,
    snapshot: &Snapshot,
    family: Family,
    mut samples: impl FnMut(&OrgSnapshot, &mut dyn FnMut(&[(&str, &str)], f64)),
) {
    let help = format!("{} {FROM_REFRESH}", family.help);
    // The samples stream straight into the sink: no copy of a family that is megabytes
    // at 10,000 organizations.
    sink.family(&family.with_help(&help), &mut |writer| {
        for org in snapshot.orgs.values() {
            samples(org, &mut |extra, value| {
                let org_labels = [
                    ("organization_id", org.meta.id.as_str()),
                    ("organization_name", org.meta.name.as_str()),
                ];
                // On the stack for the usual two extra labels at most.
                let mut labels = [("", ""); 4];
                if let Some(all) = labels.get_mut(..2 + extra.len()) {
                    all[..2].copy_from_slice(&org_labels);
                    all[2..].copy_from_slice(extra);
                    writer.sample(all, value);
                } else {
                    writer.sample(&[&org_labels[..], extra].concat(), value);
                }
            });
        }
    });
}
