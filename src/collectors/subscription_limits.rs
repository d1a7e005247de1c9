//! Plan limits and current use per resource (pipes, users, cards, records, interfaces,
//! AI credits, and whatever Pipefy adds), from `organization(id:) { activeSubscription }`.
//! Its answers also carry each organization's identity (uuid, name, plan), which is why
//! it runs before the usage-statistics collectors.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::family::org_family;
use super::{combined, Collector, Context, Decoded, Meta, Target};
use crate::encoding::Encoder;
use crate::pipefy::model::Organization;
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::{OrgSnapshot, Snapshot};

pub(crate) const NAME: &str = "subscription_limits";
const OPERATION: &str = "PipefySubscriptionLimits";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
const FIELD: &str = "organization(id: $id) { id uuid name planName activeSubscription { limits { resource limit used } } }";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
pub(crate) struct Raw {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::duration::de_duration")]
    interval: Option<Duration>,
}

pub(crate) fn build(
    raw: Raw,
    ctx: &Context,
) -> Result<Option<SubscriptionLimits>, super::BuildError> {
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
    Ok(Some(SubscriptionLimits { meta }))
}

#[derive(Debug)]
pub(crate) struct SubscriptionLimits {
    meta: Meta,
}

/// One plan limit. `limit` is `+Inf` when the plan has none.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Limit {
    /// Lower case, e.g. `pipes`, `ai_credits`, or a value Pipefy added later. The
    /// documented ones are not copied for every organization of every snapshot.
    pub resource: Cow<'static, str>,
    pub limit: f64,
    pub used: f64,
}

/// This collector's slice of an organization.
pub(crate) type Limits = Vec<Limit>;

/// The fresh limits of an organization (empty when unknown or stale).
pub(crate) fn of(org: &OrgSnapshot, now: SystemTime) -> &[Limit] {
    org.fresh::<Limits>(NAME, now)
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
fn limits(answer: &Answer) -> Limits {
    let listed = answer.active_subscription.iter().flat_map(|s| &s.limits);
    let mut out: Limits = Vec::with_capacity(listed.clone().count());
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
                Err(error) => Decoded::new::<Limits>(&org.id, Err(error)),
            })
            .collect()
    }

    fn encode(&self, snapshot: &Snapshot, now: SystemTime, enc: &mut Encoder) {
        org_family(
            enc,
            snapshot,
            "pipefy_subscription_limit",
            "Plan limit per resource; +Inf when the plan has no limit.",
            |org, emit| {
                for l in of(org, now) {
                    emit(&[("resource", &l.resource)], l.limit);
                }
            },
        );
        org_family(
            enc,
            snapshot,
            "pipefy_subscription_used",
            "Current use per resource (cards: created this month).",
            |org, emit| {
                for l in of(org, now) {
                    emit(&[("resource", &l.resource)], l.used);
                }
            },
        );
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
        let collector = build(Raw::default(), &Context::default()).unwrap().unwrap();
        let decoded = collector.decode(&targets, &answers);
        assert_eq!(
            decoded[0].meta.as_ref().unwrap().uuid.as_deref(),
            Some("u2")
        );
        let limits = decoded[0].result.as_ref().unwrap().get::<Limits>().unwrap();
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
