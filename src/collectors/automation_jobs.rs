//! Automation jobs run by each organization in the period, from
//! `automationsUsageDetailsCombined` (25 organizations per root field). Plans have
//! automation-job quotas, but Pipefy documents no quota field for them, so only the use
//! is exported.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::family::org_family;
use super::spec::settings;
use super::{combined, BuildError, Collector, Decoded, Meta, Period, Spec, Target};
use crate::encoding::{Family, Sink};
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::Snapshot;

pub(crate) const SPEC: Spec = Spec {
    name: "automation_jobs",
    operation: "PipefyAutomationJobs",
    default_interval: Duration::from_secs(15 * 60),
};
const COMBINED: &str = "automationsUsageDetailsCombined(organizationUuids: $uuids, period: $period) { byOrganization { organizationUuid organizationName usage } partial }";

settings! {
    period: Period,
}

pub(crate) fn build(meta: Meta, raw: Raw) -> Result<AutomationJobs, BuildError> {
    Ok(AutomationJobs {
        meta,
        period: raw.period,
    })
}

#[derive(Debug)]
pub(crate) struct AutomationJobs {
    meta: Meta,
    period: Period,
}

/// This collector's slice of an organization: jobs used in the period.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub(crate) struct Jobs {
    #[serde(rename = "usage")]
    pub used: f64,
}

impl Collector for AutomationJobs {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn fields(&self, orgs: &[Target]) -> Vec<RootField> {
        combined::fields("jobs", COMBINED, self.period, orgs)
    }

    fn decode(&self, orgs: &[Target], answers: &Answers) -> Vec<Decoded> {
        combined::by_organization::<Jobs>("jobs", orgs, answers)
            .into_iter()
            .map(|(id, jobs)| Decoded::new(&id, combined::required(jobs)))
            .collect()
    }

    fn encode(&self, snapshot: &Snapshot, now: SystemTime, sink: &mut dyn Sink) {
        org_family(
            sink,
            snapshot,
            Family::gauge(
                "pipefy_automation_jobs_used",
                "Automation jobs run in the period (this month by default).",
            ),
            |org, emit| {
                if let Some(jobs) = org.fresh::<Jobs>(SPEC.name, now) {
                    emit(&[], jobs.used);
                }
            },
        );
    }
}
