//! Response shapes and the pure functions that turn a batched GraphQL response into
//! one result per organization.
//!
//! A GraphQL error with a `path` fails only the alias it names; an error without a
//! path (validation, auth) fails the whole batch.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::snapshot::{AiCredits, Limit, OrgMeta, Token};

#[derive(Debug, Default, Deserialize)]
pub struct GraphQlResponse {
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    #[serde(default)]
    pub errors: Vec<GraphQlError>,
}

#[derive(Debug, Deserialize)]
pub struct GraphQlError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub path: Option<Vec<Value>>,
}

/// Splits a response into one outcome per alias. `Ok(None)` is an alias whose value
/// is `null` without an error.
pub fn split<T: for<'de> Deserialize<'de>>(
    response: &GraphQlResponse,
    aliases: &[(String, String)],
) -> Vec<(String, Result<Option<T>, String>)> {
    // Errors with no path concern the whole request.
    let global: Vec<&str> = response
        .errors
        .iter()
        .filter(|e| e.path.as_ref().is_none_or(|p| p.is_empty()))
        .map(|e| e.message.as_str())
        .collect();
    aliases
        .iter()
        .map(|(alias, key)| {
            let alias_error = response.errors.iter().find(|e| {
                e.path
                    .as_ref()
                    .and_then(|p| p.first())
                    .and_then(Value::as_str)
                    == Some(alias.as_str())
            });
            let outcome = if let Some(error) = alias_error {
                Err(truncate(&error.message))
            } else {
                match response.data.as_ref().and_then(|d| d.get(alias)) {
                    Some(Value::Null) => Ok(None),
                    Some(value) => T::deserialize(value)
                        .map(Some)
                        .map_err(|e| format!("unexpected response shape: {e}")),
                    None if !global.is_empty() => Err(truncate(&global.join("; "))),
                    None => Err("missing from the response".to_owned()),
                }
            };
            (key.clone(), outcome)
        })
        .collect()
}

/// Upstream messages go into logs and the landing page: keep them bounded.
pub(crate) fn truncate(message: &str) -> String {
    const MAX: usize = 300;
    if message.len() <= MAX {
        return message.to_owned();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// GraphQL `ID`s are strings, but some servers send numbers.
fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an ID, got {other}"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub plan_name: Option<String>,
    #[serde(default)]
    pub active_subscription: Option<ActiveSubscription>,
}

impl Organization {
    pub fn meta(&self) -> OrgMeta {
        OrgMeta {
            id: self.id.clone(),
            uuid: self.uuid.clone(),
            name: self.name.clone().unwrap_or_default(),
            plan: self.plan_name.clone(),
        }
    }

    /// The subscription limits, resource names lower-cased; a null limit is `+Inf`.
    /// An organization without an active subscription has no limits.
    pub fn limits(&self) -> Vec<Limit> {
        self.active_subscription
            .iter()
            .flat_map(|s| &s.limits)
            .map(|l| Limit {
                resource: l.resource.to_ascii_lowercase(),
                limit: l.limit.unwrap_or(f64::INFINITY),
                used: l.used.unwrap_or(0.0),
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub struct ActiveSubscription {
    #[serde(default)]
    pub limits: Vec<SubscriptionLimit>,
}

#[derive(Debug, Deserialize)]
pub struct SubscriptionLimit {
    pub resource: String,
    pub limit: Option<f64>,
    pub used: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiCreditUsageStats {
    pub usage: f64,
    pub limit: f64,
    #[serde(default)]
    pub has_addon: bool,
    #[serde(default)]
    pub free_ai_credit: Option<FreeAiCredit>,
}

#[derive(Debug, Deserialize)]
pub struct FreeAiCredit {
    pub limit: f64,
    pub usage: f64,
}

impl AiCreditUsageStats {
    /// A limit of 0 means an uncapped plan: exported as `+Inf`.
    pub fn to_snapshot(&self) -> AiCredits {
        let free = self.free_ai_credit.as_ref();
        AiCredits {
            used: self.usage,
            limit: if self.limit == 0.0 {
                f64::INFINITY
            } else {
                self.limit
            },
            free_used: free.map_or(0.0, |f| f.usage),
            free_limit: free.map_or(0.0, |f| f.limit),
            addon_enabled: self.has_addon,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationTokens {
    pub personal_access_tokens: Vec<PersonalAccessToken>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonalAccessToken {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub billing_organization: Option<Value>,
}

impl OrganizationTokens {
    pub fn to_snapshot(&self) -> Vec<Token> {
        self.personal_access_tokens
            .iter()
            .map(|t| Token {
                id: t.id.clone(),
                name: t.name.clone().unwrap_or_default(),
                assigned: t
                    .billing_organization
                    .as_ref()
                    .is_some_and(|b| !b.is_null()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(value: Value) -> GraphQlResponse {
        serde_json::from_value(value).unwrap()
    }

    fn aliases() -> Vec<(String, String)> {
        vec![("o0".into(), "2".into()), ("o1".into(), "7".into())]
    }

    #[test]
    fn an_alias_error_fails_only_that_organization() {
        let r = response(json!({
            "data": {"o0": {"id": "2", "name": "Vandeley", "activeSubscription": {"limits": [
                {"resource": "PIPES", "limit": 5, "used": 3},
                {"resource": "RECORDS", "limit": null, "used": 45},
                {"resource": "AUTOMATIONS", "limit": 10, "used": 1}
            ]}}, "o1": null},
            "errors": [{"message": "Permission denied", "path": ["o1"]}]
        }));
        let out = split::<Organization>(&r, &aliases());
        assert_eq!(out[1].0, "7");
        assert_eq!(out[1].1.as_ref().unwrap_err(), "Permission denied");
        let org = out[0].1.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(
            org.limits(),
            vec![
                Limit {
                    resource: "pipes".into(),
                    limit: 5.0,
                    used: 3.0
                },
                Limit {
                    resource: "records".into(),
                    limit: f64::INFINITY,
                    used: 45.0
                },
                Limit {
                    resource: "automations".into(),
                    limit: 10.0,
                    used: 1.0
                },
            ]
        );
    }

    #[test]
    fn an_error_without_path_fails_every_alias() {
        let r = response(json!({"errors": [{"message": "Field 'x' doesn't exist"}]}));
        let out = split::<Organization>(&r, &aliases());
        assert!(out
            .iter()
            .all(|(_, o)| o.as_ref().unwrap_err() == "Field 'x' doesn't exist"));
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        let r = response(json!({"data": {"o0": {"id": []}, "o1": "text"}}));
        let out = split::<Organization>(&r, &aliases());
        assert!(out[0]
            .1
            .as_ref()
            .unwrap_err()
            .starts_with("unexpected response shape"));
        assert!(out[1]
            .1
            .as_ref()
            .unwrap_err()
            .starts_with("unexpected response shape"));
    }

    #[test]
    fn ai_limit_zero_is_uncapped_and_tokens_are_classified() {
        let ai: AiCreditUsageStats = serde_json::from_value(json!(
            {"active": true, "usage": 900.5, "limit": 0, "hasAddon": true, "freeAiCredit": {"limit": 50, "usage": 50}}
        ))
        .unwrap();
        assert_eq!(
            ai.to_snapshot(),
            AiCredits {
                used: 900.5,
                limit: f64::INFINITY,
                free_used: 50.0,
                free_limit: 50.0,
                addon_enabled: true
            }
        );
        let tokens: OrganizationTokens = serde_json::from_value(json!({"personalAccessTokens": [
            {"id": 201, "name": "Zapier", "billingOrganization": null},
            {"id": "203", "name": "Reporting", "billingOrganization": {"id": "2"}}
        ]}))
        .unwrap();
        assert_eq!(
            tokens.to_snapshot(),
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

    /// A tiny deterministic generator, enough to throw many shapes at the parser.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn value(&mut self, depth: u32) -> Value {
            let keys = [
                "id",
                "uuid",
                "name",
                "planName",
                "activeSubscription",
                "limits",
                "resource",
                "limit",
                "used",
                "usage",
                "hasAddon",
                "freeAiCredit",
                "personalAccessTokens",
                "billingOrganization",
                "o0",
                "o1",
                "path",
                "message",
            ];
            match self.below(if depth == 0 { 6 } else { 9 }) {
                0 => Value::Null,
                1 => Value::Bool(self.below(2) == 0),
                2 => json!(self.next() as i64),
                3 => json!(f64::from_bits(self.next()).abs().min(1e300)),
                4 => Value::String(
                    ["", "PIPES", "é\u{0}\"", "2", "o1"][self.below(5) as usize].into(),
                ),
                5 => json!(-(self.below(1000) as i64)),
                6 | 7 => {
                    let mut map = Map::new();
                    for _ in 0..self.below(6) {
                        let key = keys[self.below(keys.len() as u64) as usize];
                        map.insert(key.into(), self.value(depth - 1));
                    }
                    Value::Object(map)
                }
                _ => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            }
        }
    }

    #[test]
    fn arbitrary_responses_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5_000 {
            let body = json!({ "data": rng.value(4), "errors": rng.value(3) });
            // Whatever the shape: a response, or a decode error, never a panic.
            let Ok(response) = serde_json::from_value::<GraphQlResponse>(body) else {
                continue;
            };
            for (_, outcome) in split::<Organization>(&response, &aliases()) {
                if let Ok(Some(org)) = outcome {
                    let _ = (org.meta(), org.limits());
                }
            }
            for (_, outcome) in split::<AiCreditUsageStats>(&response, &aliases()) {
                if let Ok(Some(stats)) = outcome {
                    let _ = stats.to_snapshot();
                }
            }
            for (_, outcome) in split::<OrganizationTokens>(&response, &aliases()) {
                if let Ok(Some(tokens)) = outcome {
                    let _ = tokens.to_snapshot();
                }
            }
        }
    }

    #[test]
    fn long_upstream_messages_are_cut_on_a_char_boundary() {
        let message = "é".repeat(400);
        let cut = truncate(&message);
        assert!(cut.ends_with('…'));
        assert_eq!(cut.chars().count(), 151);
    }
}
