//! What the collectors share about asking Pipefy: per-organization root fields, and the
//! `...Combined` usage-statistics forms, which take up to 25 organization uuids in one
//! root field and answer one `byOrganization` item per organization they could read.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Period, Target};
use crate::pipefy::model::decode;
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;

/// Pipefy's documented bound for `organizationUuids` of the combined forms.
pub(crate) const MAX_UUIDS: usize = 25;

/// One root field per organization, keyed `<prefix><id>`. `text` uses `$id` or
/// `$uuid`, and `$period` when `period` is given.
pub(crate) fn per_org(
    prefix: &str,
    orgs: &[Target],
    text: &str,
    period: Option<Period>,
) -> Vec<RootField> {
    let shared: Arc<str> = Arc::from(text);
    orgs.iter()
        .map(|org| {
            let mut field = RootField::new(format!("{prefix}{}", org.id), shared.clone());
            if text.contains("$id") {
                field = field.var("id", "ID!", json!(org.id));
            }
            if text.contains("$uuid") {
                field = field.var("uuid", "ID!", json!(org.uuid()));
            }
            if let Some(period) = period {
                field = field.var("period", "PeriodFilter!", json!(period.as_str()));
            }
            field
        })
        .collect()
}

/// Each organization's answer to [`per_org`] fields, decoded as `T`.
pub(crate) fn per_org_answers<'a, T: DeserializeOwned>(
    prefix: &'a str,
    orgs: &'a [Target],
    answers: &'a Answers,
) -> impl Iterator<Item = (&'a Target, Result<T, String>)> + 'a {
    orgs.iter()
        .map(move |org| (org, answer(answers, &format!("{prefix}{}", org.id))))
}

/// The answer filed under `key`, decoded as `T`; `null` is an error.
pub(crate) fn answer<T: DeserializeOwned>(answers: &Answers, key: &str) -> Result<T, String> {
    answer_or_null(answers, key)?.ok_or_else(|| "not returned (null)".to_owned())
}

/// The answer filed under `key`, decoded as `T`; `None` when Pipefy answered `null`
/// without an error.
pub(crate) fn answer_or_null<T: DeserializeOwned>(
    answers: &Answers,
    key: &str,
) -> Result<Option<T>, String> {
    match answers.get(key) {
        Some(Ok(Some(answer))) => answer.decode().map(Some),
        Some(Ok(None)) => Ok(None),
        Some(Err(error)) => Err(error.clone()),
        None => Err("missing from the response".to_owned()),
    }
}

/// Root fields of a combined query: one per chunk of at most [`MAX_UUIDS`]
/// organizations, keyed `<prefix><chunk>`. `text` uses `$uuids` and `$period`.
pub(crate) fn fields(prefix: &str, text: &str, period: Period, orgs: &[Target]) -> Vec<RootField> {
    let shared: Arc<str> = Arc::from(text);
    orgs.chunks(MAX_UUIDS)
        .enumerate()
        .map(|(i, chunk)| {
            let uuids: Vec<&str> = chunk.iter().map(Target::uuid).collect();
            RootField::new(format!("{prefix}{i}"), shared.clone())
                .var("uuids", "[ID!]!", json!(uuids))
                .var("period", "PeriodFilter!", json!(period.as_str()))
        })
        .collect()
}

/// What every combined answer has: one item per organization it could read, and
/// `partial` when it left some out. Items stay raw JSON here so that one malformed item
/// fails its own organization, not the 24 others of its chunk.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    by_organization: Vec<Value>,
    #[serde(default)]
    partial: Option<bool>,
}

/// The uuid an item of `byOrganization` is about.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemUuid {
    organization_uuid: String,
}

/// Each organization's item of the combined answers to [`fields`]. An organization
/// Pipefy dropped from `byOrganization` while setting `partial` (no Usage Stats
/// permission, unknown uuid) fails alone; one left out without `partial` is `Ok(None)`:
/// Pipefy has no statistics for it (an organization without AI credits, say). A failed
/// root field fails its own chunk.
pub(crate) fn by_organization<T: DeserializeOwned>(
    prefix: &str,
    orgs: &[Target],
    answers: &Answers,
) -> Vec<(String, Result<Option<T>, String>)> {
    let mut out = Vec::with_capacity(orgs.len());
    for (i, chunk) in orgs.chunks(MAX_UUIDS).enumerate() {
        let answer: Result<Answer, String> = answer(answers, &format!("{prefix}{i}"));
        match answer {
            Err(error) => out.extend(chunk.iter().map(|org| (org.id.clone(), Err(error.clone())))),
            Ok(answer) => {
                let partial = answer.partial.unwrap_or(false);
                // An item without a readable uuid belongs to nobody we asked about.
                let mut items: HashMap<String, Value> = answer
                    .by_organization
                    .into_iter()
                    .filter_map(|item| {
                        let uuid = ItemUuid::deserialize(&item).ok()?.organization_uuid;
                        Some((uuid, item))
                    })
                    .collect();
                for org in chunk {
                    let result = match items.remove(org.uuid()) {
                        Some(item) => decode::<T>(&item).map(Some),
                        None if partial => Err("left out of the combined answer (partial): no Usage Stats permission, or unknown uuid".to_owned()),
                        None => Ok(None),
                    };
                    out.push((org.id.clone(), result));
                }
            }
        }
    }
    out
}

/// For collectors whose figures every organization has: no item is an error.
pub(crate) fn required<T>(result: Result<Option<T>, String>) -> Result<T, String> {
    result?.ok_or_else(|| "missing from the combined answer".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Vec<Target> {
        (0..n)
            .map(|i| Target {
                id: i.to_string(),
                uuid: Some(format!("u{i}")),
            })
            .collect()
    }

    #[test]
    fn chunks_hold_at_most_25_uuids() {
        let fields = fields(
            "c",
            "x(organizationUuids: $uuids, period: $period) { partial }",
            Period::CurrentMonth,
            &targets(51),
        );
        let sizes: Vec<usize> = fields
            .iter()
            .map(|f| f.variables[0].value.as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(sizes, vec![25, 25, 1]);
        assert_eq!(fields[2].key, "c2");
        assert_eq!(fields[2].variables[0].value, json!(["u50"]));
    }

    #[derive(Clone, Debug, Deserialize, PartialEq)]
    struct Usage {
        usage: f64,
    }

    #[test]
    fn a_missing_organization_fails_alone() {
        let mut answers = Answers::new();
        answers.insert(
            "c0".into(),
            Ok(Some(
                json!({"byOrganization": [
                {"organizationUuid": "u0", "organizationName": "A", "usage": 12},
                {"organizationUuid": "u2", "usage": 2.5}
            ], "partial": true})
                .into(),
            )),
        );
        let out = by_organization::<Usage>("c", &targets(3), &answers);
        assert_eq!(out[0], ("0".into(), Ok(Some(Usage { usage: 12.0 }))));
        assert!(out[1].1.as_ref().unwrap_err().contains("partial"));
        assert_eq!(out[2], ("2".into(), Ok(Some(Usage { usage: 2.5 }))));
    }

    #[test]
    fn a_malformed_item_fails_only_its_organization() {
        let mut answers = Answers::new();
        answers.insert(
            "c0".into(),
            Ok(Some(
                json!({"byOrganization": [
                {"organizationUuid": "u0", "usage": null},
                {"organizationUuid": "u1", "usage": 4}
            ], "partial": null})
                .into(),
            )),
        );
        let out = by_organization::<Usage>("c", &targets(2), &answers);
        assert!(out[0]
            .1
            .as_ref()
            .unwrap_err()
            .contains("unexpected response shape"));
        assert_eq!(out[1], ("1".into(), Ok(Some(Usage { usage: 4.0 }))));
    }

    #[test]
    fn left_out_without_partial_means_no_statistics() {
        let mut answers = Answers::new();
        answers.insert(
            "c0".into(),
            Ok(Some(json!({"byOrganization": [], "partial": false}).into())),
        );
        let out = by_organization::<Usage>("c", &targets(1), &answers);
        assert_eq!(out[0], ("0".into(), Ok(None)));
        assert_eq!(
            required(out[0].1.clone()),
            Err("missing from the combined answer".to_owned())
        );
    }

    #[test]
    fn a_failed_chunk_fails_its_organizations_only() {
        let mut answers = Answers::new();
        answers.insert("c0".into(), Err("HTTP 500".into()));
        let items: Vec<Value> = (25..30)
            .map(|i| json!({"organizationUuid": format!("u{i}"), "usage": i}))
            .collect();
        answers.insert(
            "c1".into(),
            Ok(Some(json!({"byOrganization": items}).into())),
        );
        let out = by_organization::<Usage>("c", &targets(30), &answers);
        assert!(out[..25]
            .iter()
            .all(|(_, r)| r.as_ref().unwrap_err() == "HTTP 500"));
        assert_eq!(out[29], ("29".into(), Ok(Some(Usage { usage: 29.0 }))));
    }
}
