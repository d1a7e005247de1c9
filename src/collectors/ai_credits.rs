//! AI credits of the period per organization, split by feature (AI automations and
//! assistants), from `aiCreditUsageStatsCombined` (default: 25 organizations per root
//! field) or, with `source: per_organization`, from `aiCreditUsageStats` (one root field
//! per organization, which also tells the free credits).
//!
//! A `limit` of 0 means an uncapped plan (Pipefy's convention): exported as `+Inf`.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::family::org_family;
use super::spec::settings;
use super::{combined, BuildError, Cell, Collector, Decoded, Meta, Period, Spec, Target};
use crate::encoding::{Family, Sink};
use crate::pipefy::model::null_as_default;
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::{OrgSnapshot, Snapshot};
use crate::thresholds::Kind;

pub(crate) const SPEC: Spec = Spec {
    name: "ai_credits",
    operation: "PipefyAiCredits",
    default_interval: Duration::from_secs(15 * 60),
};
/// Its column on the landing page (the plan's `ai_credits` limit stands in for it when
/// this collector is off).
pub(crate) const COLUMN: &str = "AI credits";
const COMBINED: &str = "aiCreditUsageStatsCombined(organizationUuids: $uuids, period: $period) { byOrganization { organizationUuid organizationName usage limit hasAddon aiAutomation { usage enabled } assistants { usage enabled } } partial }";
const PER_ORGANIZATION: &str = "aiCreditUsageStats(organizationUuid: $uuid, period: $period) { active usage limit hasAddon updatedAt aiAutomation { enabled usage } assistants { enabled usage } freeAiCredit { limit usage } }";

/// Which query answers for the AI credits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Source {
    /// `aiCreditUsageStatsCombined`: 25 organizations per root field; no free credits.
    #[default]
    Combined,
    /// `aiCreditUsageStats`: one root field per organization, with the free credits.
    PerOrganization,
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::yaml::one_of(
            d,
            &[
                ("combined", Source::Combined),
                ("per_organization", Source::PerOrganization),
            ],
        )
    }
}

settings! {
    period: Period,
    source: Source,
}

pub(crate) fn build(meta: Meta, raw: Raw) -> Result<AiCredits, BuildError> {
    Ok(AiCredits {
        meta,
        period: raw.period,
        source: raw.source,
    })
}

#[derive(Debug)]
pub(crate) struct AiCredits {
    meta: Meta,
    period: Period,
    source: Source,
}

/// This collector's slice of an organization.
#[derive(Clone, Debug, PartialEq)]
struct Credits {
    used: f64,
    /// `+Inf` for an uncapped plan.
    limit: f64,
    addon_enabled: bool,
    /// `(used, limit)` of the free credits, known with `source: per_organization` only.
    free: Option<(f64, f64)>,
    /// `(feature, enabled, used)` for `ai_automation` and `assistants`.
    features: Vec<(&'static str, bool, f64)>,
}

/// The fresh AI credits of an organization, if Pipefy returned any.
fn of(org: &OrgSnapshot, now: SystemTime) -> Option<&Credits> {
    org.fresh::<Option<Credits>>(SPEC.name, now)
        .and_then(Option::as_ref)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    usage: f64,
    limit: f64,
    #[serde(default, deserialize_with = "null_as_default")]
    has_addon: bool,
    #[serde(default)]
    ai_automation: Option<AiResource>,
    #[serde(default)]
    assistants: Option<AiResource>,
    #[serde(default)]
    free_ai_credit: Option<FreeAiCredit>,
}

/// Pipefy's `AiResource`.
#[derive(Deserialize)]
struct AiResource {
    #[serde(default, deserialize_with = "null_as_default")]
    enabled: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    usage: f64,
}

#[derive(Deserialize)]
struct FreeAiCredit {
    limit: f64,
    usage: f64,
}

impl Answer {
    fn credits(self) -> Credits {
        let feature =
            |name, resource: Option<AiResource>| resource.map(|r| (name, r.enabled, r.usage));
        Credits {
            used: self.usage,
            limit: if self.limit == 0.0 {
                f64::INFINITY
            } else {
                self.limit
            },
            addon_enabled: self.has_addon,
            free: self.free_ai_credit.map(|f| (f.usage, f.limit)),
            features: [
                feature("ai_automation", self.ai_automation),
                feature("assistants", self.assistants),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }
}

impl Collector for AiCredits {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn fields(&self, orgs: &[Target]) -> Vec<RootField> {
        match self.source {
            Source::Combined => combined::fields("ai", COMBINED, self.period, orgs),
            Source::PerOrganization => {
                combined::per_org("", orgs, PER_ORGANIZATION, Some(self.period))
            }
        }
    }

    fn decode(&self, orgs: &[Target], answers: &Answers) -> Vec<Decoded> {
        match self.source {
            Source::Combined => combined::by_organization::<Answer>("ai", orgs, answers)
                .into_iter()
                .map(|(id, r)| Decoded::new(&id, r.map(|a| a.map(Answer::credits))))
                .collect(),
            // `null` without an error: Pipefy has no AI-credit statistics for it.
            Source::PerOrganization => orgs
                .iter()
                .map(|org| {
                    let answer = combined::answer_or_null::<Answer>(answers, &org.id);
                    Decoded::new(&org.id, answer.map(|a| a.map(Answer::credits)))
                })
                .collect(),
        }
    }

    fn encode(&self, snapshot: &Snapshot, now: SystemTime, sink: &mut dyn Sink) {
        type Field = fn(&Credits) -> Option<f64>;
        let families: [(&str, &str, Field); 5] = [
            (
                "pipefy_ai_credits_used",
                "AI credits used in the period (this month by default).",
                |c| Some(c.used),
            ),
            (
                "pipefy_ai_credits_limit",
                "AI credits included in the period; +Inf when uncapped.",
                |c| Some(c.limit),
            ),
            (
                "pipefy_ai_credits_free_used",
                "Free AI credits used in the period (source: per_organization only).",
                |c| c.free.map(|f| f.0),
            ),
            (
                "pipefy_ai_credits_free_limit",
                "Free AI credits in the period (source: per_organization only).",
                |c| c.free.map(|f| f.1),
            ),
            (
                "pipefy_ai_credits_addon_enabled",
                "1 when AI-credit overage is billed (add-on) rather than blocked.",
                |c| Some(if c.addon_enabled { 1.0 } else { 0.0 }),
            ),
        ];
        for (name, help, field) in families {
            org_family(sink, snapshot, Family::gauge(name, help), |org, emit| {
                if let Some(value) = of(org, now).and_then(field) {
                    emit(&[], value);
                }
            });
        }
        org_family(
            sink,
            snapshot,
            Family::gauge(
                "pipefy_ai_credits_used_by_feature",
                "AI credits used in the period by feature: ai_automation (AI agents and automations), assistants.",
            ),
            |org, emit| {
                for (feature, _, used) in of(org, now).map(|c| c.features.as_slice()).unwrap_or_default() {
                    emit(&[("feature", feature)], *used);
                }
            },
        );
        org_family(
            sink,
            snapshot,
            Family::gauge(
                "pipefy_ai_credits_feature_enabled",
                "1 when the AI feature is enabled for the organization.",
            ),
            |org, emit| {
                for (feature, enabled, _) in of(org, now)
                    .map(|c| c.features.as_slice())
                    .unwrap_or_default()
                {
                    emit(&[("feature", feature)], if *enabled { 1.0 } else { 0.0 });
                }
            },
        );
    }

    fn cells(&self, org: &OrgSnapshot, now: SystemTime) -> Vec<Cell> {
        let figure = of(org, now).map(|c| (c.used, c.limit));
        vec![Cell::share(COLUMN, figure, Kind::Quota)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limit_zero_is_uncapped_and_features_are_split() {
        let answer: Answer = serde_json::from_value(json!({
            "active": true, "usage": 900.5, "limit": 0, "hasAddon": true,
            "aiAutomation": {"enabled": true, "usage": 600},
            "assistants": {"enabled": false, "usage": 300.5},
            "freeAiCredit": {"limit": 50, "usage": 50}
        }))
        .unwrap();
        assert_eq!(
            answer.credits(),
            Credits {
                used: 900.5,
                limit: f64::INFINITY,
                addon_enabled: true,
                free: Some((50.0, 50.0)),
                features: vec![("ai_automation", true, 600.0), ("assistants", false, 300.5)],
            }
        );
    }
}
