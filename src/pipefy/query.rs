//! Batched GraphQL documents. Collectors describe root fields (`organization(id: $id)
//! {...}`); this module puts many of them into one named query, each under its own alias
//! (`a0: organization(id: $a0_id) {...}`) with its own variables. Values are never
//! spliced into the text, so no organization id or uuid can change a query's meaning,
//! and aliases make every response key ours (Pipefy's samples disagree with their
//! queries about root keys).

use std::sync::Arc;

use serde_json::{Map, Value};

/// A variable of one root field: `$name` in its text, declared as `ty`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Variable {
    pub name: &'static str,
    /// A GraphQL type Pipefy documents: `ID!`, `[ID!]!`, `PeriodFilter!`, ...
    pub ty: &'static str,
    pub value: Value,
}

/// One root field to ask for, and the key its answer is filed under.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RootField {
    /// The caller's key for the answer: an organization id, a uuid, a chunk number.
    pub key: String,
    /// The field with its arguments and selection; `$name` refers to `variables`.
    /// Shared: every organization's field of a collector has the same text.
    pub text: Arc<str>,
    pub variables: Vec<Variable>,
}

impl RootField {
    pub(crate) fn new(key: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        RootField {
            key: key.into(),
            text: text.into(),
            variables: Vec::new(),
        }
    }

    pub(crate) fn var(mut self, name: &'static str, ty: &'static str, value: Value) -> Self {
        self.variables.push(Variable { name, ty, value });
        self
    }
}

/// One request: its text, its variables, and which alias answers for which key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Document {
    pub text: String,
    pub variables: Value,
    /// `(alias, key)` in the order of the fields.
    pub aliases: Vec<(String, String)>,
}

/// Builds `query <operation>(<declarations>) { a0: ... a1: ... }`.
pub(crate) fn document(operation: &str, fields: &[RootField]) -> Document {
    let mut declarations = Vec::new();
    let mut body = String::new();
    let mut variables = Map::new();
    let mut aliases = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let alias = format!("a{i}");
        for var in &field.variables {
            let name = format!("{alias}_{}", var.name);
            declarations.push(format!("${name}: {}", var.ty));
            variables.insert(name, var.value.clone());
        }
        body.push(' ');
        body.push_str(&alias);
        body.push_str(": ");
        body.push_str(&prefix_variables(&field.text, &alias));
        aliases.push((alias, field.key.clone()));
    }
    let declarations = if declarations.is_empty() {
        String::new()
    } else {
        format!("({})", declarations.join(", "))
    };
    Document {
        text: format!("query {operation}{declarations} {{{body} }}"),
        variables: Value::Object(variables),
        aliases,
    }
}

/// Rewrites every `$name` in `text` as `$<alias>_name`, so that the fields of one
/// request never share a variable by accident.
fn prefix_variables(text: &str, alias: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        out.push_str(alias);
        out.push('_');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_get_aliases_and_their_own_variables() {
        let fields = [
            RootField::new("2", "organization(id: $id) { id uuid }").var("id", "ID!", json!("2")),
            RootField::new(
                "c0",
                "apiUsageStatsCombined(organizationUuids: $uuids, period: $period) { partial }",
            )
            .var("uuids", "[ID!]!", json!(["u1", "u2"]))
            .var("period", "PeriodFilter!", json!("current_month")),
        ];
        let doc = document("PipefyTest", &fields);
        assert_eq!(
            doc.text,
            "query PipefyTest($a0_id: ID!, $a1_uuids: [ID!]!, $a1_period: PeriodFilter!) { \
             a0: organization(id: $a0_id) { id uuid } \
             a1: apiUsageStatsCombined(organizationUuids: $a1_uuids, period: $a1_period) { partial } }"
        );
        assert_eq!(
            doc.variables,
            json!({"a0_id": "2", "a1_uuids": ["u1", "u2"], "a1_period": "current_month"})
        );
        assert_eq!(
            doc.aliases,
            vec![("a0".into(), "2".into()), ("a1".into(), "c0".into())]
        );
    }

    #[test]
    fn values_never_appear_in_the_text() {
        let field = RootField::new("x", "organization(id: $id) { id }").var(
            "id",
            "ID!",
            json!("300\") { id } evil: organizations { id"),
        );
        let doc = document("PipefyTest", &[field]);
        assert!(!doc.text.contains("evil"));
    }

    #[test]
    fn a_field_without_variables_declares_none() {
        let doc = document(
            "PipefyOrganizations",
            &[RootField::new("all", "organizations { id }")],
        );
        assert_eq!(
            doc.text,
            "query PipefyOrganizations { a0: organizations { id } }"
        );
    }
}
