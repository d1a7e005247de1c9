//! Integration tasks consumed in the period, their quota and the active flows, from one
//! `integrationsUsageStats` root field per organization (Pipefy documents no combined
//! form for integrations).

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::family::org_family;
use super::spec::settings;
use super::{combined, BuildError, Collector, Decoded, Meta, Period, Spec, Target};
use crate::encoding::{Family, Sink};
use crate::pipefy::model::null_as_default;
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::Snapshot;

pub(crate) const SPEC: Spec = Spec {
    name: "integrations",
    operation: "PipefyIntegrations",
    default_interval: Duration::from_secs(60 * 60),
};
const FIELD: &str = "integrationsUsageStats(organizationUuid: $uuid, period: $period) { tasksConsumed { usage limit } activeFlows }";

settings! {
    period: Period,
}

pub(crate) fn build(meta: Meta, raw: Raw) -> Result<Integrations, BuildError> {
    Ok(Integrations {
        meta,
        period: raw.period,
    })
}

#[derive(Debug)]
pub(crate) struct Integrations {
    meta: Meta,
    period: Period,
}

/// This collector's slice of an organization.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Tasks {
    pub used: f64,
    /// `+Inf` when Pipefy answers a null limit.
    pub limit: f64,
    pub active_flows: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    tasks_consumed: TasksConsumed,
    #[serde(default, deserialize_with = "null_as_default")]
    active_flows: f64,
}

#[derive(Deserialize)]
struct TasksConsumed {
    usage: f64,
    limit: Option<f64>,
}

impl Collector for Integrations {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn fields(&self, orgs: &[Target]) -> Vec<RootField> {
        combined::per_org("", orgs, FIELD, Some(self.period))
    }

    fn decode(&self, orgs: &[Target], answers: &Answers) -> Vec<Decoded> {
        combined::per_org_answers::<Answer>("", orgs, answers)
            .map(|(org, answer)| {
                let tasks = answer.map(|a| Tasks {
                    used: a.tasks_consumed.usage,
                    limit: a.tasks_consumed.limit.unwrap_or(f64::INFINITY),
                    active_flows: a.active_flows,
                });
                Decoded::new(&org.id, tasks)
            })
            .collect()
    }

    fn encode(&self, snapshot: &Snapshot, now: SystemTime, sink: &mut dyn Sink) {
        type Field = fn(&Tasks) -> f64;
        let families: [(&str, &str, Field); 3] = [
            (
                "pipefy_integration_tasks_used",
                "Integration tasks consumed in the period (this month by default).",
                |t| t.used,
            ),
            (
                "pipefy_integration_tasks_limit",
                "Integration tasks included in the period; +Inf when unlimited.",
                |t| t.limit,
            ),
            (
                "pipefy_integration_active_flows",
                "Integration flows currently active.",
                |t| t.active_flows,
            ),
        ];
        for (name, help, field) in families {
            org_family(sink, snapshot, Family::gauge(name, help), |org, emit| {
                if let Some(tasks) = org.fresh::<Tasks>(SPEC.name, now) {
                    emit(&[], field(tasks));
                }
            });
        }
    }
}
