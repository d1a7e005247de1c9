//! Which of Pipefy's possible schemas the simulator serves, chosen at run time
//! ([`Simulator::set_schema`](super::Simulator::set_schema)), and whether it answers
//! introspection ([`Simulator::set_introspection`](super::Simulator::set_introspection)).
//!
//! No public source names a field that lists personal access tokens with their billing
//! organization (the project's API notes), so the exporter's token query is a guess that
//! the real Pipefy may reject. The simulator can be each of the worlds the exporter must
//! survive:
//! - [`SimSchema::Guessed`]: `Organization.personalAccessTokens`, the exporter's default
//!   guess (the demo);
//! - [`SimSchema::Public`]: `Organization` as Pipefy's public reference shows it, with no
//!   field that lists tokens;
//! - [`SimSchema::Relocated`]: tokens listed elsewhere, by a root field
//!   `tokenBillingAssignments(organizationId: ID!)` (a made-up name, standing for "the real
//!   field an admin finds"), so that the tests show an operator pointing the exporter at
//!   it by configuration.
//!
//! A field outside the variant in force is hidden from introspection (async-graphql's
//! `visible`) and refused by validation ([`hidden_field`]), the way a server without it
//! answers: HTTP 200, an error without `path`, no `data`. The wording is graphql-ruby's
//! (common behind Rails back ends like Pipefy's), not async-graphql's, so that nothing
//! in the exporter can come to depend on one server's words.

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use serde_json::{json, Value};

use super::complexity::Shapes;

/// Which schema the simulator serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SimSchema {
    /// `Organization.personalAccessTokens { id name billingOrganization { id } }`: what
    /// the exporter asks by default.
    #[default]
    Guessed,
    /// No field lists tokens.
    Public,
    /// Tokens listed by `tokenBillingAssignments(organizationId: ID!)`, each
    /// `{ token { id name } billingOrganization { id name } }`.
    Relocated,
}

/// The root type's name in the simulator's SDL (Pipefy does not document it).
pub(super) const ROOT: &str = "Sim_Query_z0q";

impl SimSchema {
    /// `(type, field)` pairs this variant does not have.
    fn hidden(self) -> &'static [(&'static str, &'static str)] {
        match self {
            SimSchema::Guessed => &[(ROOT, "tokenBillingAssignments")],
            SimSchema::Public => &[
                ("Organization", "personalAccessTokens"),
                (ROOT, "tokenBillingAssignments"),
            ],
            SimSchema::Relocated => &[("Organization", "personalAccessTokens")],
        }
    }
}

/// The variant in force for a request, as async-graphql's `visible` functions read it
/// from the request data (absent: the default).
fn variant(ctx: &async_graphql::Context<'_>) -> SimSchema {
    ctx.data_opt::<SimSchema>().copied().unwrap_or_default()
}

pub(super) fn guessed(ctx: &async_graphql::Context<'_>) -> bool {
    variant(ctx) == SimSchema::Guessed
}

pub(super) fn relocated(ctx: &async_graphql::Context<'_>) -> bool {
    variant(ctx) == SimSchema::Relocated
}

pub(super) fn lists_tokens(ctx: &async_graphql::Context<'_>) -> bool {
    variant(ctx) != SimSchema::Public
}

/// The first field of the operation that `schema` hides (or `__schema`/`__type` at the
/// root when introspection is off), as `(type, field)`.
pub(super) fn hidden_field(
    shapes: &Shapes,
    doc: &ExecutableDocument,
    operation: Option<&str>,
    schema: SimSchema,
    introspection: bool,
) -> Option<(String, String)> {
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => &op.node,
        (DocumentOperations::Multiple(ops), Some(name)) => &ops.get(name)?.node,
        (DocumentOperations::Multiple(ops), None) => &ops.values().next()?.node,
    };
    let walk = Walk {
        shapes,
        doc,
        hidden: schema.hidden(),
        introspection,
    };
    walk.selection(&op.selection_set.node, ROOT)
}

struct Walk<'a> {
    shapes: &'a Shapes,
    doc: &'a ExecutableDocument,
    hidden: &'static [(&'static str, &'static str)],
    introspection: bool,
}

impl Walk<'_> {
    fn selection(&self, set: &SelectionSet, on: &str) -> Option<(String, String)> {
        for item in &set.items {
            let found = match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let introspection = on == ROOT && matches!(name, "__schema" | "__type");
                    if self.hidden.contains(&(on, name)) || (introspection && !self.introspection) {
                        return Some((on.to_owned(), name.to_owned()));
                    }
                    match self.shapes.field_type(on, name) {
                        Some(ty) => self.selection(&field.node.selection_set.node, ty),
                        None => None,
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(on, |c| c.node.on.node.as_str());
                    self.selection(&fragment.node.selection_set.node, on)
                }
                Selection::FragmentSpread(spread) => self
                    .doc
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .and_then(|f| {
                        let on = f.node.type_condition.node.on.node.as_str();
                        self.selection(&f.node.selection_set.node, on)
                    }),
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// What a server without the field answers: graphql-ruby's validation error, with no
/// `path` and no `data`.
pub(super) fn undefined_field(on: &str, field: &str) -> Value {
    json!({"errors": [{
        "message": format!("Field '{field}' doesn't exist on type '{on}'"),
        "extensions": {"code": "undefinedField", "typeName": on, "fieldName": field}
    }]})
}
