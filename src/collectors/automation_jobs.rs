//! Automation jobs run by each organization in the period, from
//! `automationsUsageDetailsCombined` (25 organizations per root field). Plans have
//! automation-job quotas, but Pipefy documents no quota field for them, so only the use
//! is exported.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::family::org_family;
use super::{combined, Collector, Context, Decoded, Meta, Period, Target};
use crate::encoding::Encoder;
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::Snapshot;

pub(crate) const NAME: &str = "automation_jobs";
const OPERATION: &str = "PipefyAutomationJobs";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);
const COMBINED: &str = "automationsUsageDetailsCombined(organizationUuids: $uuids, period: $period) { byOrganization { organizationUuid organizationName usage } partial }";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
pub(crate) struct Raw {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::duration::de_duration")]
    interval: Option<Duration>,
    #[serde(default)]
    period: Period,
}

pub(crate) fn build(raw: Raw, ctx: &Context) -> Result<Option<AutomationJobs>, super::BuildError> {
    let Some(meta) = Meta::resolve(
        (NAME, OPERATION),
        raw.enabled,
        raw.interval,
        DEFAULT_INTERVAL,
        ctx,
    )?
    else {
        return Ok(None);
    };
    Ok(Some(AutomationJobs {
        meta,
        period: raw.period,
    }))
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

    fn encode(&self, snapshot: &Snapshot, now: SystemTime, enc: &mut Encoder) {
        org_family(
            enc,
            snapshot,
            "pipefy_automation_jobs_used",
            "Automation jobs run in the period (this month by default).",
            |org, emit| {
                if let Some(jobs) = org.fresh::<Jobs>(NAME, now) {
                    emit(&[], jobs.used);
                }
            },
        );
    }
}
