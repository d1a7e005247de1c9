//! Query complexity as Pipefy describes it: every field adds 1, and the fields inside a
//! list count once per item of a page (`first:` of the list or of the connection around
//! it, else a default page size). Which fields are lists comes from the simulator's own
//! schema (its SDL), not from the exporter's list of documented lists, so that the two
//! estimates are made independently.
//!
//! A request above the limit is refused the way Pipefy's notes describe a complexity
//! failure: HTTP 200, an `errors` array whose error has no `path`, and no `data`.

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, Selection, SelectionSet, Type, TypeKind,
    TypeSystemDefinition,
};

/// Each object type's fields: whether the field is a list, and the type it returns.
#[derive(Debug, Default)]
pub(super) struct Shapes {
    root: String,
    types: HashMap<String, HashMap<String, (bool, String)>>,
}

impl Shapes {
    /// Reads the schema's SDL.
    pub(super) fn from_sdl(sdl: &str) -> Shapes {
        let mut shapes = Shapes {
            root: "Query".into(),
            ..Shapes::default()
        };
        let Ok(doc) = async_graphql::parser::parse_schema(sdl) else {
            return shapes;
        };
        for definition in doc.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    if let Some(query) = &schema.node.query {
                        shapes.root = query.node.to_string();
                    }
                }
                TypeSystemDefinition::Type(ty) => {
                    if let TypeKind::Object(object) = &ty.node.kind {
                        let fields = object
                            .fields
                            .iter()
                            .map(|f| {
                                let (list, named) = unwrap(&f.node.ty.node);
                                (f.node.name.node.to_string(), (list, named))
                            })
                            .collect();
                        shapes.types.insert(ty.node.name.node.to_string(), fields);
                    }
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        shapes
    }

    /// The type that field `name` of type `on` returns, if the schema has it.
    pub(super) fn field_type(&self, on: &str, name: &str) -> Option<&str> {
        let (_, ty) = self.types.get(on)?.get(name)?;
        Some(ty)
    }

    /// The complexity of the operation a request runs (`operation` or the only one).
    pub(super) fn complexity(
        &self,
        doc: &ExecutableDocument,
        operation: Option<&str>,
        variables: Option<&serde_json::Value>,
        page_size: u64,
    ) -> u64 {
        let op = match (&doc.operations, operation) {
            (DocumentOperations::Single(op), _) => &op.node,
            (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
                Some(op) => &op.node,
                None => return 0,
            },
            (DocumentOperations::Multiple(ops), None) => match ops.values().next() {
                Some(op) => &op.node,
                None => return 0,
            },
        };
        let walk = Walk {
            shapes: self,
            doc,
            variables,
            page_size,
        };
        walk.selection(&op.selection_set.node, &self.root, None)
    }
}

/// `[T!]!` → (true, "T").
fn unwrap(ty: &Type) -> (bool, String) {
    match &ty.base {
        BaseType::Named(name) => (false, name.to_string()),
        BaseType::List(inner) => (true, unwrap(inner).1),
    }
}

struct Walk<'a> {
    shapes: &'a Shapes,
    doc: &'a ExecutableDocument,
    variables: Option<&'a serde_json::Value>,
    page_size: u64,
}

impl Walk<'_> {
    fn selection(&self, set: &SelectionSet, on: &str, first: Option<u64>) -> u64 {
        let mut total = 0u64;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let (list, ty) = self
                        .shapes
                        .types
                        .get(on)
                        .and_then(|fields| fields.get(field.name.node.as_str()))
                        .cloned()
                        .unwrap_or((false, String::new()));
                    let own_first = field
                        .arguments
                        .iter()
                        .find(|(name, _)| name.node == "first")
                        .and_then(|(_, value)| self.number(&value.node));
                    let inner = self.selection(&field.selection_set.node, &ty, own_first);
                    let per_item = if list {
                        own_first.or(first).unwrap_or(self.page_size)
                    } else {
                        1
                    };
                    inner.saturating_mul(per_item).saturating_add(1)
                }
                Selection::InlineFragment(fragment) => {
                    self.selection(&fragment.node.selection_set.node, on, first)
                }
                Selection::FragmentSpread(spread) => self
                    .doc
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |f| self.selection(&f.node.selection_set.node, on, first)),
            };
            total = total.saturating_add(cost);
        }
        total
    }

    /// A literal number or a variable's. (The parser's `Value` is not re-exported by
    /// async-graphql; its GraphQL text is enough here.)
    fn number(&self, value: &impl std::fmt::Display) -> Option<u64> {
        let text = value.to_string();
        match text.strip_prefix('$') {
            Some(name) => self.variables?.get(name)?.as_u64(),
            None => text.parse().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_from_the_schema_and_count_a_page_each() {
        let shapes = Shapes::from_sdl(&super::super::schema::build_schema().sdl());
        let doc = async_graphql::parser::parse_query(
            "query Q($n: ID!) { a: organization(id: $n) { id uuid name planName activeSubscription { limits { resource limit used } } personalAccessTokens { id name billingOrganization { id } } } }",
        )
        .unwrap();
        // 1 + 4 + (1 + (1 + 3 × 50)) + (1 + 50 × (1 + 1 + (1 + 1))).
        assert_eq!(shapes.complexity(&doc, None, None, 50), 358);
        assert_eq!(shapes.complexity(&doc, Some("Q"), None, 10), 78);
        let two = async_graphql::parser::parse_query(
            "query Q { a: organizations { id } b: organizations { id name } }",
        )
        .unwrap();
        assert_eq!(shapes.complexity(&two, None, None, 50), 51 + 101);
    }
}
