//! Plan limits and current use per resource (pipes, users, cards, records, interfaces,
//! AI credits, and whatever Pipefy adds), from `organization(id:) { activeSubscription }`.
//! Its answers also carry each organization's identity (uuid, name, plan), which is why
//! it runs before the usage-statistics collectors.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::family::org_family;
use super::spec::settings;
use super::{combined, BuildError, Cell, CellValue, Collector, Decoded, Meta, Spec, Target};
use crate::encoding::{Family, Sink};
use crate::pipefy::model::Organization;
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::{OrgSnapshot, Snapshot};
use crate::thresholds::Kind;

pub(crate) const SPEC: Spec = Spec {
    name: "subscription_limits",
    operation: "PipefySubscriptionLimits",
    default_interval: Duration::from_secs(5 * 60),
};
const FIELD: &str = "organization(id: $id) { id uuid name planName activeSubscription { limits { resource limit used } } }";
/// The plan resource the `ai_credits` collector shows as its own.
const AI_CREDITS: &str = "ai_credits";

settings! {}

pub(crate) fn build(meta: Meta, _raw: Raw) -> Result<SubscriptionLimits, BuildError> {
    Ok(SubscriptionLimits { meta })
}

#[derive(Debug)]
pub(crate) struct SubscriptionLimits {
    meta: Meta,
}

/// One plan limit. `limit` is `+Inf` when the plan has none.
#[derive(Clone, Debug, PartialEq)]
struct Limit {
    /// Lower case, e.g. `pipes`, `ai_credits`, or a value Pipefy added later. The
    /// documented ones are not copied for every organization of every snapshot.
    resource: Cow<'static, str>,
    limit: f64,
    used: f64,
}

/// This collector's slice of an organization.
type PlanLimits = Vec<Limit>;

/// The fresh limits of an organization (empty when unknown or stale).
fn of(org: &OrgSnapshot, now: SystemTime) -> &[Limit] {
    org.fresh::<PlanLimits>(SPEC.name, now)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(flatten)]
    identity: Organization,
    #[serde(default)]
    active_subscription: Option<ActiveSubscription>,
}

#[derive(Deserialize)]
struct ActiveSubscription {
    #[serde(default)]
    limits: Vec<SubscriptionLimit>,
}

#[derive(Deserialize)]
struct SubscriptionLimit {
    resource: String,
    limit: Option<f64>,
    used: Option<f64>,
}

/// The values of the `resource` enum that Pipefy documents, lower-cased.
const DOCUMENTED: [&str; 6] = [
    "pipes",
    "users",
    "cards",
    "records",
    "interfaces",
    "ai_credits",
];

/// `resource` lower-cased; borrowed from [`DOCUMENTED`] when it is one of those.
fn resource_name(resource: &str) -> Cow<'static, str> {
    match DOCUMENTED
        .iter()
        .find(|known| known.eq_ignore_ascii_case(resource))
    {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(resource.to_ascii_lowercase()),
    }
}

/// Resource names lower-cased; a null limit is `+Inf`. An organization without an
/// active subscription has no limits. A resource listed twice (or in two spellings)
/// keeps its last entry: one series per label set is a must.
fn limits(answer: &Answer) -> PlanLimits {
    let listed = answer.active_subscription.iter().flat_map(|s| &s.limits);
    let mut out: PlanLimits = Vec::with_capacity(listed.clone().count());
    for l in listed {
        let limit = Limit {
            resource: resource_name(&l.resource),
            limit: l.limit.unwrap_or(f64::INFINITY),
            used: l.used.unwrap_or(0.0),
        };
        match out
            .iter_mut()
            .find(|known| known.resource == limit.resource)
        {
            Some(known) => *known = limit,
            None => out.push(limit),
        }
    }
    out
}

impl Collector for SubscriptionLimits {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn needs_uuid(&self) -> bool {
        false
    }
    fn tells_identity(&self) -> bool {
        true
    }
    fn needs_usage_stats(&self) -> bool {
        false
    }

    fn fields(&self, orgs: &[Target]) -> Vec<RootField> {
        combined::per_org("", orgs, FIELD, None)
    }

    fn decode(&self, orgs: &[Target], answers: &Answers) -> Vec<Decoded> {
        combined::per_org_answers::<Answer>("", orgs, answers)
            .map(|(org, answer)| match answer {
                Ok(answer) => Decoded {
                    meta: Some(Box::new(answer.identity.meta())),
                    ..Decoded::new(&org.id, Ok(limits(&answer)))
                },
                Err(error) => Decoded::new::<PlanLimits>(&org.id, Err(error)),
            })
            .collect()
    }

    fn encode(&self, snapshot: &Snapshot, now: SystemTime, sink: &mut dyn Sink) {
        org_family(
            sink,
            snapshot,
            Family::gauge(
                "pipefy_subscription_limit",
                "Plan limit per resource; +Inf when the plan has no limit.",
            ),
            |org, emit| {
                for l in of(org, now) {
                    emit(&[("resource", &l.resource)], l.limit);
                }
            },
        );
        org_family(
            sink,
            snapshot,
            Family::gauge(
                "pipefy_subscription_used",
                "Current use per resource (cards: created this month).",
            ),
            |org, emit| {
                for l in of(org, now) {
                    emit(&[("resource", &l.resource)], l.used);
                }
            },
        );
    }

    /// A column per plan resource, in Pipefy's order; AI credits last and not as its
    /// own: the `ai_credits` collector's figure is the one Pipefy's *Usage Stats* page
    /// shows, and the one the AI-credit alerts read, so this one fills the column only
    /// where that collector is off.
    fn cells(&self, org: &OrgSnapshot, now: SystemTime) -> Vec<Cell> {
        let limits = of(org, now);
        let share = |l: &Limit| CellValue::Share {
            used: l.used,
            limit: l.limit,
            kind: Kind::PlanLimit,
        };
        let mut cells: Vec<Cell> = limits
            .iter()
            .filter(|l| l.resource != AI_CREDITS)
            .map(|l| Cell::own(l.resource.clone(), share(l)))
            .collect();
        if let Some(ai) = limits.iter().find(|l| l.resource == AI_CREDITS) {
            cells.push(Cell {
                own: false,
                ..Cell::own(super::ai_credits::COLUMN, share(ai))
            });
        }
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_are_lower_cased_and_null_is_unlimited() {
        let targets = [Target {
            id: "2".into(),
            uuid: None,
        }];
        let mut answers = Answers::new();
        answers.insert(
            "2".into(),
            Ok(Some(
                json!({"id": "2", "uuid": "u2", "name": "Vandeley", "planName": "Business",
                "activeSubscription": {"limits": [
                    {"resource": "PIPES", "limit": 5, "used": 3},
                    {"resource": "RECORDS", "limit": null, "used": 45.5},
                    {"resource": "AUTOMATIONS", "limit": 10, "used": 1}
                ]}})
                .into(),
            )),
        );
        let meta = Meta::resolve(&SPEC, None, None, &super::super::Defaults::default())
            .unwrap()
            .unwrap();
        let collector = build(meta, Raw::default()).unwrap();
        let decoded = collector.decode(&targets, &answers);
        assert_eq!(
            decoded[0].meta.as_ref().unwrap().uuid.as_deref(),
            Some("u2")
        );
        let limits = decoded[0]
            .result
            .as_ref()
            .unwrap()
            .get::<PlanLimits>()
            .unwrap();
        assert_eq!(
            limits,
            &vec![
                Limit {
                    resource: "pipes".into(),
                    limit: 5.0,
                    used: 3.0
                },
                Limit {
                    resource: "records".into(),
                    limit: f64::INFINITY,
                    used: 45.5
                },
                Limit {
                    resource: "automations".into(),
                    limit: 10.0,
                    used: 1.0
                },
            ]
        );
    }
}
