//! Pipefy's introspection answer turned into SDL text, which `apollo-compiler` parses
//! into the schema that documents are validated against.
//!
//! Written here rather than taken from a crate: the conversion is a page of code over
//! the standard introspection shape, while the crates that do it (`cynic-introspection`)
//! bring a second GraphQL stack into the build. Only what validation needs is kept:
//! types, fields, arguments with their defaults, input fields, enum values, interfaces
//! and union members; descriptions and directives are left out.
//!
//! The answer comes from the network: a name that is not a GraphQL name is dropped (it
//! could not have been meant, and would break the SDL around it), and nesting is bounded
//! by what [`super::INTROSPECTION_QUERY`] asks for.

use std::fmt::Write;

use serde::Deserialize;

/// `data` of the introspection request.
#[derive(Debug, Deserialize)]
pub(super) struct Answer {
    pub(super) schema: RawSchema,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawSchema {
    #[serde(default)]
    query_type: Option<Named>,
    #[serde(default)]
    mutation_type: Option<Named>,
    #[serde(default)]
    subscription_type: Option<Named>,
    #[serde(default)]
    pub(super) types: Vec<RawType>,
}

#[derive(Debug, Deserialize)]
struct Named {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawType {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    fields: Option<Vec<RawField>>,
    #[serde(default)]
    input_fields: Option<Vec<RawInput>>,
    #[serde(default)]
    interfaces: Option<Vec<Named>>,
    #[serde(default)]
    enum_values: Option<Vec<Named>>,
    #[serde(default)]
    possible_types: Option<Vec<Named>>,
}

#[derive(Debug, Deserialize)]
struct RawField {
    name: String,
    #[serde(default)]
    args: Vec<RawInput>,
    #[serde(rename = "type")]
    ty: TypeRef,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInput {
    name: String,
    #[serde(default)]
    default_value: Option<String>,
    #[serde(rename = "type")]
    ty: TypeRef,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    of_type: Option<Box<TypeRef>>,
}

/// The scalars every GraphQL schema has; SDL must not define them again.
const BUILT_IN_SCALARS: &[&str] = &["String", "Int", "Float", "Boolean", "ID"];

/// A GraphQL name: `[_A-Za-z][_0-9A-Za-z]*`.
pub(super) fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The SDL of `schema`. Types without a valid name, or whose kind is unknown, are left
/// out; a field whose type cannot be written is left out.
pub(super) fn to_sdl(schema: &RawSchema) -> String {
    let mut sdl = String::new();
    fn root(named: &Option<Named>) -> Option<&str> {
        named
            .as_ref()
            .and_then(|n| n.name.as_deref())
            .filter(|n| is_name(n))
    }
    let roots: Vec<(&str, &str)> = [
        ("query", root(&schema.query_type)),
        ("mutation", root(&schema.mutation_type)),
        ("subscription", root(&schema.subscription_type)),
    ]
    .into_iter()
    .filter_map(|(op, name)| Some((op, name?)))
    .collect();
    if !roots.is_empty() {
        sdl.push_str("schema {");
        for (op, name) in roots {
            let _ = write!(sdl, " {op}: {name}");
        }
        sdl.push_str(" }\n");
    }
    for ty in &schema.types {
        write_type(&mut sdl, ty);
    }
    sdl
}

fn write_type(sdl: &mut String, ty: &RawType) {
    let Some(name) = ty.name.as_deref().filter(|n| is_name(n)) else {
        return;
    };
    // Introspection's own types (`__Schema`, ...) are built into every schema.
    if name.starts_with("__") {
        return;
    }
    fn names(list: &Option<Vec<Named>>) -> Vec<&str> {
        list.iter()
            .flatten()
            .filter_map(|n| n.name.as_deref())
            .filter(|n| is_name(n))
            .collect()
    }
    match ty.kind.as_str() {
        "SCALAR" if !BUILT_IN_SCALARS.contains(&name) => {
            let _ = writeln!(sdl, "scalar {name}");
        }
        "OBJECT" | "INTERFACE" => {
            let keyword = if ty.kind == "OBJECT" {
                "type"
            } else {
                "interface"
            };
            let _ = write!(sdl, "{keyword} {name}");
            let interfaces = names(&ty.interfaces);
            if !interfaces.is_empty() {
                let _ = write!(sdl, " implements {}", interfaces.join(" & "));
            }
            let fields: Vec<String> = ty.fields.iter().flatten().filter_map(field).collect();
            write_body(sdl, &fields);
        }
        "UNION" => {
            let members = names(&ty.possible_types);
            let _ = write!(sdl, "union {name}");
            if !members.is_empty() {
                let _ = write!(sdl, " = {}", members.join(" | "));
            }
            sdl.push('\n');
        }
        "ENUM" => {
            let _ = write!(sdl, "enum {name}");
            let values: Vec<String> = names(&ty.enum_values)
                .into_iter()
                .map(str::to_owned)
                .collect();
            write_body(sdl, &values);
        }
        "INPUT_OBJECT" => {
            let _ = write!(sdl, "input {name}");
            let fields: Vec<String> = ty.input_fields.iter().flatten().filter_map(input).collect();
            write_body(sdl, &fields);
        }
        _ => {}
    }
}

/// ` { a b c }\n`, or just a line end for a type with nothing in it (which SDL allows).
fn write_body(sdl: &mut String, items: &[String]) {
    if !items.is_empty() {
        sdl.push_str(" {");
        for item in items {
            sdl.push(' ');
            sdl.push_str(item);
        }
        sdl.push_str(" }");
    }
    sdl.push('\n');
}

/// `name(args): Type`, or `None` when a name or the type cannot be written.
fn field(field: &RawField) -> Option<String> {
    if !is_name(&field.name) {
        return None;
    }
    let ty = type_ref(&field.ty, 0)?;
    let args: Vec<String> = field.args.iter().filter_map(input).collect();
    Some(if args.is_empty() {
        format!("{}: {ty}", field.name)
    } else {
        format!("{}({}): {ty}", field.name, args.join(", "))
    })
}

/// `name: Type = default`. The default is GraphQL text as Pipefy wrote it: a required
/// argument with a default is not required, so validation needs it.
fn input(input: &RawInput) -> Option<String> {
    if !is_name(&input.name) {
        return None;
    }
    let ty = type_ref(&input.ty, 0)?;
    Some(match input.default_value.as_deref() {
        Some(default) if !default.contains(['{', '}', '#']) || balanced(default) => {
            format!("{}: {ty} = {default}", input.name)
        }
        _ => format!("{}: {ty}", input.name),
    })
}

/// Braces balance and no comment starts: a default value that could not end the
/// definition it sits in.
fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            '#' => return false,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// `[ID!]!` from the nested `ofType`s. The introspection query asks for a bounded
/// depth; deeper answers are refused rather than followed.
fn type_ref(ty: &TypeRef, depth: usize) -> Option<String> {
    const MAX: usize = 8;
    if depth > MAX {
        return None;
    }
    match ty.kind.as_str() {
        "NON_NULL" => {
            let inner = type_ref(ty.of_type.as_deref()?, depth + 1)?;
            // `!!` is not a type.
            (!inner.ends_with('!')).then(|| format!("{inner}!"))
        }
        "LIST" => Some(format!(
            "[{}]",
            type_ref(ty.of_type.as_deref()?, depth + 1)?
        )),
        _ => ty.name.clone().filter(|n| is_name(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(value: serde_json::Value) -> RawSchema {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_kind_of_type_is_written() {
        let schema = raw(json!({
            "queryType": {"name": "Query"},
            "mutationType": null,
            "types": [
                {"kind": "OBJECT", "name": "Query", "interfaces": [], "fields": [
                    {"name": "organization", "args": [
                        {"name": "id", "defaultValue": null, "type": {"kind": "NON_NULL", "name": null, "ofType": {"kind": "SCALAR", "name": "ID"}}}
                    ], "type": {"kind": "OBJECT", "name": "Organization"}},
                    {"name": "usage", "args": [
                        {"name": "period", "defaultValue": "current_month", "type": {"kind": "ENUM", "name": "PeriodFilter"}},
                        {"name": "uuids", "defaultValue": null, "type": {"kind": "NON_NULL", "ofType": {"kind": "LIST", "ofType": {"kind": "NON_NULL", "ofType": {"kind": "SCALAR", "name": "ID"}}}}},
                        {"name": "range", "defaultValue": null, "type": {"kind": "INPUT_OBJECT", "name": "DateRange"}}
                    ], "type": {"kind": "UNION", "name": "Usage"}}
                ]},
                {"kind": "INTERFACE", "name": "Node", "fields": [{"name": "id", "args": [], "type": {"kind": "SCALAR", "name": "ID"}}]},
                {"kind": "OBJECT", "name": "Organization", "interfaces": [{"name": "Node"}], "fields": [
                    {"name": "id", "args": [], "type": {"kind": "SCALAR", "name": "ID"}},
                    {"name": "createdAt", "args": [], "type": {"kind": "SCALAR", "name": "DateTime"}}
                ]},
                {"kind": "UNION", "name": "Usage", "possibleTypes": [{"name": "Organization"}]},
                {"kind": "ENUM", "name": "PeriodFilter", "enumValues": [{"name": "current_month"}, {"name": "last_month"}]},
                {"kind": "INPUT_OBJECT", "name": "DateRange", "inputFields": [
                    {"name": "from", "defaultValue": null, "type": {"kind": "NON_NULL", "ofType": {"kind": "SCALAR", "name": "DateTime"}}}
                ]},
                {"kind": "SCALAR", "name": "DateTime"},
                {"kind": "SCALAR", "name": "String"},
                {"kind": "OBJECT", "name": "__Schema", "fields": []}
            ]
        }));
        assert_eq!(
            to_sdl(&schema),
            "schema { query: Query }\n\
             type Query { organization(id: ID!): Organization usage(period: PeriodFilter = current_month, uuids: [ID!]!, range: DateRange): Usage }\n\
             interface Node { id: ID }\n\
             type Organization implements Node { id: ID createdAt: DateTime }\n\
             union Usage = Organization\n\
             enum PeriodFilter { current_month last_month }\n\
             input DateRange { from: DateTime! }\n\
             scalar DateTime\n"
        );
    }

    #[test]
    fn names_and_types_that_cannot_be_written_are_left_out() {
        let schema = raw(json!({
            "queryType": {"name": "Query } type Evil {"},
            "types": [
                {"kind": "OBJECT", "name": "Query", "fields": [
                    {"name": "ok", "args": [], "type": {"kind": "SCALAR", "name": "Int"}},
                    {"name": "bad name", "args": [], "type": {"kind": "SCALAR", "name": "Int"}},
                    {"name": "cut", "args": [], "type": {"kind": "NON_NULL", "ofType": null}},
                    {"name": "twice", "args": [], "type": {"kind": "NON_NULL", "ofType": {"kind": "NON_NULL", "ofType": {"kind": "SCALAR", "name": "Int"}}}},
                    {"name": "arg", "args": [{"name": "x", "defaultValue": "} type Evil {", "type": {"kind": "SCALAR", "name": "Int"}}], "type": {"kind": "SCALAR", "name": "Int"}}
                ]},
                {"kind": "OBJECT", "name": "Evil{", "fields": []},
                {"kind": "MYSTERY", "name": "Mystery"}
            ]
        }));
        assert_eq!(to_sdl(&schema), "type Query { ok: Int arg(x: Int): Int }\n");
        assert!(is_name("_a1") && !is_name("1a") && !is_name("") && !is_name("a-b"));
    }

    #[test]
    fn nesting_deeper_than_asked_is_refused() {
        let mut ty = json!({"kind": "SCALAR", "name": "ID"});
        for _ in 0..10 {
            ty = json!({"kind": "LIST", "ofType": ty});
        }
        let deep: TypeRef = serde_json::from_value(ty).unwrap();
        assert_eq!(type_ref(&deep, 0), None);
    }
}
