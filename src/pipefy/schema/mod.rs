//! Knowing what Pipefy accepts before paying for it.
//!
//! Every request is billed, and Pipefy rejects a whole document when one name in it is
//! wrong. So once per check period (`pipefy.schema_check_interval`) each account asks
//! Pipefy for its schema by introspection (one billed request, [`INTROSPECTION_QUERY`]),
//! and every document the enabled collectors would send is validated against it first
//! ([`Schema::check`], pure). A collector whose document does not validate is not sent
//! until the next check or reload ([`checks`]).
//!
//! Validation is `apollo-compiler`'s (the GraphQL validation rules, maintained by Apollo);
//! this module only turns the introspection answer into SDL for it ([`sdl`]) and names
//! the schema coordinate (`Organization.personalAccessTokens`) of an unknown field or
//! argument, which the crate's diagnostics carry only as prose.

pub(crate) mod checks;
mod sdl;

use std::collections::BTreeSet;

use apollo_compiler::ast;
use apollo_compiler::validation::Valid;
use apollo_compiler::ExecutableDocument;

use super::{ApiError, PipefyClient};

/// The operation name of the introspection request, in the request counters and in
/// what Pipefy bills.
pub(crate) const OPERATION: &str = "PipefySchemaCheck";

/// The standard introspection query, with what validation needs and nothing else.
/// Written without fragments (no type condition to get wrong) and with six levels of
/// `ofType`, enough for `[[T!]!]!`: its depth is 12, under Pipefy's documented 15.
pub(crate) const INTROSPECTION_QUERY: &str = concat!(
    "query PipefySchemaCheck { schema: __schema { ",
    "queryType { name } mutationType { name } subscriptionType { name } ",
    "types { kind name ",
    "fields(includeDeprecated: true) { name ",
    "args { name defaultValue type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } ",
    "type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } ",
    "inputFields { name defaultValue type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } ",
    "interfaces { name } enumValues(includeDeprecated: true) { name } possibleTypes { name } ",
    "} } }"
);

/// Pipefy's schema, as its introspection told it.
#[derive(Debug)]
pub(crate) struct Schema {
    schema: Valid<apollo_compiler::Schema>,
}

/// Why a document does not validate, in the user's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The schema coordinate concerned, when the problem is an unknown field or
    /// argument: `Organization.personalAccessTokens`, `Query.organization(id:)`.
    pub(crate) coordinate: Option<String>,
    pub(crate) message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Schema {
    /// The schema from the `data` of an answer to [`INTROSPECTION_QUERY`].
    pub(crate) fn from_introspection(
        data: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Schema, String> {
        let answer: sdl::Answer = serde_json::from_value(serde_json::Value::Object(data))
            .map_err(|e| format!("unexpected introspection answer: {e}"))?;
        if answer.schema.types.is_empty() {
            return Err("the introspection answer lists no types".to_owned());
        }
        Ok(Schema::from_sdl(&sdl::to_sdl(&answer.schema)))
    }

    /// The schema of `sdl`. What does not parse is left out rather than failing the
    /// whole schema: one odd definition must not stop every check.
    pub(crate) fn from_sdl(sdl: &str) -> Schema {
        let schema = match apollo_compiler::Schema::parse(sdl, "pipefy-schema.graphql") {
            Ok(schema) => schema,
            Err(with_errors) => {
                tracing::debug!(
                    problems = with_errors.errors.len(),
                    "parts of Pipefy's introspected schema could not be read; they are left out"
                );
                with_errors.partial
            }
        };
        // Pipefy's schema is Pipefy's: validating it would only find reasons not to check
        // the exporter's documents against it.
        Schema {
            schema: Valid::assume_valid(schema),
        }
    }

    /// How many named types the schema has, built-in ones included.
    pub(crate) fn type_count(&self) -> usize {
        self.schema.types.len()
    }

    /// Why `document` would be rejected, or nothing when it validates. Unknown fields and
    /// arguments are named by coordinate; anything else the validation rules find comes
    /// with `apollo-compiler`'s message.
    pub(crate) fn check(&self, document: &str) -> Vec<Problem> {
        let unknown = self.unknown_names(document);
        if !unknown.is_empty() {
            return unknown;
        }
        match ExecutableDocument::parse_and_validate(&self.schema, document, "request.graphql") {
            Ok(_) => Vec::new(),
            Err(with_errors) => with_errors
                .errors
                .iter()
                .map(|diagnostic| Problem {
                    coordinate: None,
                    message: diagnostic.error.to_string(),
                })
                .collect(),
        }
    }

    /// Unknown fields and arguments of `document`, by coordinate, in document order.
    fn unknown_names(&self, document: &str) -> Vec<Problem> {
        // A document that does not parse is reported by `parse_and_validate`.
        let Ok(parsed) = ast::Document::parse(document, "request.graphql") else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        for definition in &parsed.definitions {
            if let ast::Definition::OperationDefinition(operation) = definition {
                if let Some(root) = self.schema.root_operation(operation.operation_type) {
                    self.walk(&operation.selection_set, root.as_str(), &mut problems);
                }
            }
        }
        problems
    }

    fn walk(&self, selections: &[ast::Selection], on: &str, problems: &mut Vec<Problem>) {
        for selection in selections {
            match selection {
                ast::Selection::Field(field) => {
                    let name = field.name.as_str();
                    let Ok(definition) = self.schema.type_field(on, name) else {
                        problems.push(Problem {
                            coordinate: Some(format!("{on}.{name}")),
                            message: format!("Pipefy's schema has no field {name} on type {on}"),
                        });
                        continue;
                    };
                    for argument in &field.arguments {
                        let known = definition.arguments.iter().any(|a| a.name == argument.name);
                        if !known {
                            problems.push(Problem {
                                coordinate: Some(format!("{on}.{name}({}:)", argument.name)),
                                message: format!(
                                    "Pipefy's field {on}.{name} takes no argument {}",
                                    argument.name
                                ),
                            });
                        }
                    }
                    let inner = definition.ty.inner_named_type();
                    self.walk(&field.selection_set, inner.as_str(), problems);
                }
                ast::Selection::InlineFragment(fragment) => {
                    let on = fragment.type_condition.as_ref().map_or(on, |t| t.as_str());
                    self.walk(&fragment.selection_set, on, problems);
                }
                // Nothing the exporter sends has named fragments; a spread is left to
                // `parse_and_validate`.
                ast::Selection::FragmentSpread(_) => {}
            }
        }
    }

    /// Where a field listing tokens with their billing organization might be, for an
    /// admin looking for the real one: fields whose name contains `token`, and fields
    /// whose name contains `billing` (with the type that has them), as `Type.field: T`.
    pub(crate) fn token_candidates(&self) -> Vec<String> {
        use apollo_compiler::schema::ExtendedType;
        let mut found = BTreeSet::new();
        for (type_name, ty) in &self.schema.types {
            if type_name.starts_with("__") {
                continue;
            }
            let fields = match ty {
                ExtendedType::Object(object) => &object.fields,
                ExtendedType::Interface(interface) => &interface.fields,
                _ => continue,
            };
            for (field_name, field) in fields {
                let lower = field_name.to_ascii_lowercase();
                if lower.contains("token") || lower.contains("billing") {
                    let args: Vec<String> = field
                        .arguments
                        .iter()
                        .map(|a| format!("{}: {}", a.name, a.ty))
                        .collect();
                    let args = if args.is_empty() {
                        String::new()
                    } else {
                        format!("({})", args.join(", "))
                    };
                    found.insert(format!("{type_name}.{field_name}{args}: {}", field.ty));
                }
            }
        }
        found.into_iter().collect()
    }
}

/// How an introspection request went.
#[derive(Debug)]
pub(crate) enum Introspection {
    Schema(Schema),
    /// Pipefy answered without a schema (errors and no `data`, or an answer that does
    /// not read as one): introspection is off for this credential. Billed.
    Refused(String),
    /// The request failed (HTTP status, transport): worth trying again soon.
    Failed(ApiError),
}

impl PipefyClient {
    /// Asks Pipefy for its schema: one billed request.
    pub(crate) async fn introspect(&self) -> Introspection {
        let response = match self
            .execute(OPERATION, INTROSPECTION_QUERY, &serde_json::json!({}))
            .await
        {
            Ok(response) => response,
            Err(error) => return Introspection::Failed(error),
        };
        let has_schema = |data: &serde_json::Map<String, serde_json::Value>| {
            data.get("schema").is_some_and(|v| !v.is_null())
        };
        match response.data {
            Some(data) if has_schema(&data) => match Schema::from_introspection(data) {
                Ok(schema) => Introspection::Schema(schema),
                Err(why) => Introspection::Refused(why),
            },
            _ => {
                let messages: Vec<&str> =
                    response.errors.iter().map(|e| e.message.as_str()).collect();
                Introspection::Refused(if messages.is_empty() {
                    "the answer holds no schema".to_owned()
                } else {
                    super::model::truncate(&messages.join("; "))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
