//! Response shapes and the pure functions that turn a batched GraphQL response into
//! one result per organization.
//!
//! A GraphQL error with a `path` fails only the alias it names (for an alias several
//! collectors share, only those that selected the field below it); an error without a
//! path (validation, auth) fails the whole batch.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::snapshot::OrgMeta;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct GraphQlResponse {
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    #[serde(default)]
    pub errors: Vec<GraphQlError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GraphQlError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub path: Option<Vec<Value>>,
    /// `code` says what kind of error it is (Pipefy's error table).
    #[serde(default)]
    pub extensions: Option<Value>,
}

/// One alias's answer for a reader that selected `names` at the top of the alias (when
/// several collectors share one alias): an error at the alias itself, or below it
/// through one of `names`, is this reader's; an error below it through another name is
/// not. With `names` `None`, every error at or below the alias counts.
pub(crate) fn alias_outcome<'r>(
    response: &'r GraphQlResponse,
    alias: &str,
    names: Option<&[String]>,
) -> Result<Option<&'r Value>, String> {
    // Errors with no path concern the whole request.
    let global: Vec<&str> = response
        .errors
        .iter()
        .filter(|e| e.path.as_ref().is_none_or(|p| p.is_empty()))
        .map(|e| e.message.as_str())
        .collect();
    let alias_error = response.errors.iter().find(|e| {
        let Some(path) = e.path.as_ref() else {
            return false;
        };
        if path.first().and_then(Value::as_str) != Some(alias) {
            return false;
        }
        match (names, path.get(1).and_then(Value::as_str)) {
            (Some(names), Some(below)) => names.iter().any(|n| n == below),
            _ => true,
        }
    });
    if let Some(error) = alias_error {
        return Err(truncate(&error.message));
    }
    match response.data.as_ref().and_then(|d| d.get(alias)) {
        // Null next to an error without a path: the error explains the null.
        Some(Value::Null) if !global.is_empty() => Err(truncate(&global.join("; "))),
        Some(Value::Null) => Ok(None),
        Some(value) => Ok(Some(value)),
        None if !global.is_empty() => Err(truncate(&global.join("; "))),
        None => Err("missing from the response".to_owned()),
    }
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
pub(crate) fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an ID, got {other}"
        ))),
    }
}

/// An organization's identity, as `organizations` and `organization(id:)` answer it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Organization {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub plan_name: Option<String>,
}

impl Organization {
    pub(crate) fn meta(&self) -> OrgMeta {
        OrgMeta {
            id: self.id.clone(),
            uuid: self.uuid.clone(),
            name: self.name.clone().unwrap_or_default(),
            plan: self.plan_name.clone(),
        }
    }
}

/// For fields Pipefy may answer `null` where a default means the same (flags, counts).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Decodes one aliased answer into `T`, with an error message fit for a log line.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(value: &Value) -> Result<T, String> {
    T::deserialize(value).map_err(|e| format!("unexpected response shape: {e}"))
}

/// One alias's answer, kept as JSON text until its collector decodes it. A refresh
/// holds every organization's answers until then (10,000 organizations: tens of MB of
/// answers); as a `serde_json::Value` tree (a map node, a `String` and a `Value` per
/// field) the same answers take several times the memory of their text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Answer(Box<str>);

impl Answer {
    /// Decodes it into `T`, with the same message as [`decode`]: the position serde
    /// would add is one in this text, not in Pipefy's body, so it is left out.
    pub(crate) fn decode<T: for<'de> Deserialize<'de>>(&self) -> Result<T, String> {
        serde_json::from_str(&self.0).map_err(|e| {
            let message = e.to_string();
            let position = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&position).unwrap_or(&message);
            format!("unexpected response shape: {message}")
        })
    }
}

impl From<&Value> for Answer {
    fn from(value: &Value) -> Self {
        Answer(value.to_string().into_boxed_str())
    }
}

impl From<Value> for Answer {
    fn from(value: Value) -> Self {
        Answer::from(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(value: Value) -> GraphQlResponse {
        serde_json::from_value(value).unwrap()
    }

    /// Each alias's outcome decoded as `T`, as the client files them.
    fn split<T: for<'de> Deserialize<'de>>(
        response: &GraphQlResponse,
        aliases: &[(String, String)],
    ) -> Vec<(String, Result<Option<T>, String>)> {
        aliases
            .iter()
            .map(|(alias, key)| {
                let outcome = alias_outcome(response, alias, None)
                    .and_then(|v| v.map(decode::<T>).transpose());
                (key.clone(), outcome)
            })
            .collect()
    }

    #[test]
    fn an_error_below_a_shared_alias_fails_only_the_readers_of_that_field() {
        let r = response(json!({
            "data": {"o0": {"id": "2", "uuid": "u2", "personalAccessTokens": null}},
            "errors": [{"message": "Not allowed", "path": ["o0", "personalAccessTokens"]}]
        }));
        let limits = ["id".to_owned(), "uuid".to_owned()];
        let tokens = ["id".to_owned(), "personalAccessTokens".to_owned()];
        assert_eq!(
            alias_outcome(&r, "o0", Some(&limits)).unwrap().unwrap()["uuid"],
            "u2"
        );
        assert_eq!(
            alias_outcome(&r, "o0", Some(&tokens)).unwrap_err(),
            "Not allowed"
        );
        // Not shared: any error under the alias is the alias's.
        assert_eq!(alias_outcome(&r, "o0", None).unwrap_err(), "Not allowed");
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
        assert_eq!(org.meta().name, "Vandeley");
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
    fn a_null_next_to_an_error_without_path_is_that_error() {
        let r = response(json!({"data": {"o0": null}, "errors": [{"message": "Internal error"}]}));
        let out = split::<Organization>(&r, &aliases());
        assert_eq!(out[0].1.as_ref().unwrap_err(), "Internal error");
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
    fn arbitrary_responses_never_panic() {
        let mut rng = super::arbitrary::Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5_000 {
            let body = json!({ "data": rng.value(4), "errors": rng.value(3) });
            // Whatever the shape: a response, or a decode error, never a panic.
            let Ok(response) = serde_json::from_value::<GraphQlResponse>(body) else {
                continue;
            };
            for (_, outcome) in split::<Organization>(&response, &aliases()) {
                if let Ok(Some(org)) = outcome {
                    let _ = org.meta();
                }
            }
        }
    }

    #[test]
    fn an_answer_kept_as_text_decodes_and_fails_as_its_json_tree_does() {
        let good = json!({"id": 7, "uuid": "u7", "name": "Vandeley", "planName": null});
        let org: Organization = Answer::from(&good).decode().unwrap();
        assert_eq!(
            (org.id.as_str(), org.uuid.as_deref(), org.plan_name),
            ("7", Some("u7"), None)
        );
        for bad in [
            json!({"id": "7", "uuid": 12}),
            json!({"uuid": "u7"}),
            json!([1, 2]),
        ] {
            assert_eq!(
                Answer::from(&bad).decode::<Organization>().unwrap_err(),
                decode::<Organization>(&bad).unwrap_err(),
                "{bad}"
            );
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

/// Arbitrary JSON for robustness tests of every decoder.
#[cfg(test)]
pub(crate) mod arbitrary {
    use serde_json::{json, Map, Value};

    /// A tiny deterministic generator, enough to throw many shapes at the parser.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        pub(crate) fn value(&mut self, depth: u32) -> Value {
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
                "byOrganization",
                "organizationUuid",
                "partial",
                "data",
                "dimension",
                "metric",
                "aiAutomation",
                "assistants",
                "enabled",
                "tasksConsumed",
                "activeFlows",
                "total0",
                "ai0",
                "jobs0",
                "token:2",
                "2",
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
                    ["", "PIPES", "é\u{0}\"", "2", "o1", "u2", "u3", "u4"][self.below(8) as usize]
                        .into(),
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
}
