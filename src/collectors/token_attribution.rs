//! Personal access tokens per organization and whether each names a billing
//! organization, plus the countdown to the date Pipefy assigns one automatically.
//!
//! **Assumption**: Pipefy's public schema documents no field that lists tokens (see
//! `../shared/pipefy-api.md`), so the selection inside `organization(id:)` is the
//! configurable `selection`, which must produce
//! `personalAccessTokens { id name billingOrganization { id } }` (aliases let an operator
//! map a differently named real field onto that shape). It is sent in requests of its
//! own, so that if the field does not exist only this collector fails.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use super::{combined, Collector, Context, Decoded, Meta, Target};
use crate::exposition::{org_family, Encoder, MetricType};
use crate::pipefy::model::de_id;
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::{OrgSnapshot, Snapshot};
use crate::timefmt::unix_seconds;

pub(crate) const NAME: &str = "token_attribution";
const OPERATION: &str = "PipefyTokenAttribution";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// The default token selection (see the module comment).
pub const DEFAULT_TOKEN_SELECTION: &str =
    "personalAccessTokens { id name billingOrganization { id } }";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
pub(crate) struct Raw {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::duration::de_duration")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "crate::config::de_date")]
    deadline: Option<i64>,
    #[serde(default)]
    selection: Option<String>,
}

pub(crate) fn build(
    raw: Raw,
    ctx: &Context,
) -> Result<Option<TokenAttribution>, super::BuildError> {
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
    let selection = raw
        .selection
        .unwrap_or_else(|| DEFAULT_TOKEN_SELECTION.into());
    if selection.trim().is_empty() || !balanced_braces(&selection) {
        return Err((
            "selection".into(),
            "must be a non-empty GraphQL selection with balanced braces".into(),
        ));
    }
    // The selection is spliced into a one-line document whose variables are renamed
    // per alias: a `#` would comment out the rest of the request, a `$` would be renamed,
    // and a string would need escaping. A selection of fields and aliases needs none.
    if let Some(bad) = selection.chars().find(|c| matches!(c, '#' | '$' | '"')) {
        return Err((
            "selection".into(),
            format!("must contain only fields, aliases and braces, not {bad:?}"),
        ));
    }
    let field = format!("organization(id: $id) {{ id {selection} }}");
    let depth = crate::pipefy::complexity::estimate(&field, 1).depth;
    if depth > crate::pipefy::complexity::MAX_DEPTH {
        return Err((
            "selection".into(),
            format!(
                "nests {depth} levels deep with organization(id:) around it; Pipefy refuses queries deeper than {}",
                crate::pipefy::complexity::MAX_DEPTH
            ),
        ));
    }
    Ok(Some(TokenAttribution {
        meta,
        deadline: raw.deadline,
        field,
    }))
}

#[derive(Debug)]
pub(crate) struct TokenAttribution {
    meta: Meta,
    /// Unix time (seconds, UTC midnight) of the automatic assignment, if configured.
    pub deadline: Option<i64>,
    field: String,
}

/// A personal access token and whether it names a billing organization.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub id: String,
    pub name: String,
    pub assigned: bool,
}

/// This collector's slice of an organization.
pub(crate) type Tokens = Vec<Token>;

/// The fresh tokens of an organization (`None` when unknown, unlike "no tokens").
pub(crate) fn of(org: &OrgSnapshot, now: SystemTime) -> Option<&[Token]> {
    org.fresh::<Tokens>(NAME, now).map(Vec::as_slice)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    personal_access_tokens: Vec<PersonalAccessToken>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersonalAccessToken {
    #[serde(deserialize_with = "de_id")]
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    billing_organization: Option<Value>,
}

/// One entry per token id (a token listed twice would export a duplicate series).
fn tokens(answer: Answer) -> Tokens {
    let mut seen = std::collections::HashSet::new();
    answer
        .personal_access_tokens
        .into_iter()
        .filter(|t| seen.insert(t.id.clone()))
        .map(|t| Token {
            id: t.id,
            name: t.name.unwrap_or_default(),
            assigned: t.billing_organization.is_some_and(|b| !b.is_null()),
        })
        .collect()
}

fn balanced_braces(text: &str) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

impl Collector for TokenAttribution {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn needs_uuid(&self) -> bool {
        false
    }
    /// Pipefy documents no field listing tokens: the selection is a guess.
    fn assumed(&self) -> bool {
        true
    }

    fn fields(&self, orgs: &[Target]) -> Vec<RootField> {
        combined::per_org("", orgs, &self.field, None)
    }

    fn decode(&self, orgs: &[Target], answers: &Answers) -> Vec<Decoded> {
        combined::per_org_answers::<Answer>("", orgs, answers)
            .map(|(org, answer)| Decoded::new(&org.id, answer.map(tokens)))
            .collect()
    }

    fn encode(&self, snapshot: &Snapshot, now: SystemTime, enc: &mut Encoder) {
        org_family(
            enc,
            snapshot,
            "pipefy_tokens",
            "Personal access tokens by billing attribution (assigned: names a billing organization).",
            |org, emit| {
                if let Some(tokens) = of(org, now) {
                    let assigned = tokens.iter().filter(|t| t.assigned).count();
                    emit(&[("billing", "assigned")], assigned as f64);
                    emit(&[("billing", "unassigned")], (tokens.len() - assigned) as f64);
                }
            },
        );
        org_family(
            enc,
            snapshot,
            "pipefy_token_unassigned_info",
            "1 for each personal access token that has no billing organization yet.",
            |org, emit| {
                for t in of(org, now).unwrap_or_default() {
                    if !t.assigned {
                        emit(&[("token_id", &t.id), ("token_name", &t.name)], 1.0);
                    }
                }
            },
        );
        if let Some(deadline) = self.deadline {
            enc.family(
                "pipefy_token_attribution_deadline_timestamp_seconds",
                "Configured date (Unix time, UTC midnight) on which Pipefy assigns a billing organization to tokens that still have none.",
                MetricType::Gauge,
            );
            enc.sample(
                "pipefy_token_attribution_deadline_timestamp_seconds",
                &[],
                deadline as f64,
            );
        }
    }

    fn encode_live(&self, now: SystemTime, enc: &mut Encoder) {
        if let Some(deadline) = self.deadline {
            // Seconds, not days: Prometheus base units (promtool check metrics rejects a
            // `_days` name). The rules file records the days.
            enc.family(
                "pipefy_token_attribution_deadline_remaining_seconds",
                "Time left until the token-attribution deadline, computed at scrape time; negative once passed.",
                MetricType::Gauge,
            );
            enc.sample(
                "pipefy_token_attribution_deadline_remaining_seconds",
                &[],
                deadline as f64 - unix_seconds(now),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_are_classified_and_ids_may_be_numbers() {
        let answer: Answer = serde_json::from_value(json!({"personalAccessTokens": [
            {"id": 201, "name": "Zapier", "billingOrganization": null},
            {"id": "203", "name": "Reporting", "billingOrganization": {"id": "2"}}
        ]}))
        .unwrap();
        assert_eq!(
            tokens(answer),
            vec![
                Token {
                    id: "201".into(),
                    name: "Zapier".into(),
                    assigned: false
                },
                Token {
                    id: "203".into(),
                    name: "Reporting".into(),
                    assigned: true
                },
            ]
        );
    }

    #[test]
    fn the_selection_is_configurable() {
        let raw = Raw {
            selection: Some(
                "personalAccessTokens: accessTokens { id name billingOrganization { id } }".into(),
            ),
            ..Raw::default()
        };
        let collector = build(raw, &Context::default()).unwrap().unwrap();
        let fields = collector.fields(&[Target {
            id: "2".into(),
            uuid: None,
        }]);
        assert_eq!(
            &*fields[0].text,
            "organization(id: $id) { id personalAccessTokens: accessTokens { id name billingOrganization { id } } }"
        );
        for bad in [
            "personalAccessTokens { id",
            "personalAccessTokens { id } # a comment would hide the rest of the request",
            "personalAccessTokens(first: $n) { id }",
            "a { b { c { d { e { f { g { h { i { j { k { l { m { n { o } } } } } } } } } } } } } }",
        ] {
            let raw = Raw {
                selection: Some(bad.into()),
                ..Raw::default()
            };
            assert_eq!(
                build(raw, &Context::default()).unwrap_err().0,
                "selection",
                "{bad}"
            );
        }
    }
}
