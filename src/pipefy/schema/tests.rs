//! Documents checked against a schema: known names validate, unknown ones are named by
//! coordinate, the other rules are apollo-compiler's.

use super::*;

/// A few of Pipefy's documented names, as SDL.
const SDL: &str = "
    schema { query: Query }
    type Query {
      organization(id: ID!): Organization
      apiUsageStats(organizationUuid: ID!, period: PeriodFilter!, dimension: GroupedAPIDimension): Usage
      me: User
    }
    type Organization { id: ID! uuid: ID name: String planName: String }
    type User { id: ID! apiTokens: [PersonalToken] }
    type PersonalToken { id: ID! name: String billingOrganization: Organization }
    type Usage { limit: Int data: [MetricItem] }
    type MetricItem { dimension: String metric: Float }
    enum PeriodFilter { current_month last_month last_3_months }
    enum GroupedAPIDimension { operation_name token }
";

fn schema() -> Schema {
    Schema::from_sdl(SDL)
}

#[test]
fn a_document_of_known_names_validates() {
    let problems = schema().check(
        "query PipefyRefresh($a0_id: ID!, $a1_uuid: ID!, $a1_period: PeriodFilter!) { \
         a0: organization(id: $a0_id) { id uuid name planName } \
         a1: apiUsageStats(organizationUuid: $a1_uuid, period: $a1_period, dimension: token) { limit data { dimension metric } } }",
    );
    assert_eq!(problems, vec![]);
}

#[test]
fn an_unknown_field_is_named_by_its_coordinate() {
    let problems = schema().check(
        "query PipefyTokenAttribution($a0_id: ID!) { a0: organization(id: $a0_id) { id personalAccessTokens { id name } } }",
    );
    assert_eq!(
        problems,
        vec![Problem {
            coordinate: Some("Organization.personalAccessTokens".into()),
            message: "Pipefy's schema has no field personalAccessTokens on type Organization"
                .into(),
        }]
    );
}

#[test]
fn an_unknown_argument_is_named_by_its_coordinate() {
    let problems = schema().check("query Q($a0_id: ID!) { a0: organization(uuid: $a0_id) { id } }");
    assert_eq!(
        problems[0].coordinate.as_deref(),
        Some("Query.organization(uuid:)")
    );
}

#[test]
fn other_rules_are_apollo_compilers() {
    // A variable of the wrong type for its argument: not an unknown name, but invalid.
    let problems =
        schema().check("query Q($a0_id: String!) { a0: organization(id: $a0_id) { id } }");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].coordinate, None);
    assert!(
        problems[0].message.contains("a0_id"),
        "{}",
        problems[0].message
    );
    // An enum value Pipefy does not have.
    let problems = schema().check(
        "query Q($u: ID!) { a0: apiUsageStats(organizationUuid: $u, period: this_year) { limit } }",
    );
    assert_eq!(problems.len(), 1);
    // A document that does not parse.
    let problems = schema().check("query Q { a0: organization(id: ");
    assert!(
        problems
            .iter()
            .any(|p| p.message == "syntax error: expected R_PAREN, got EOF"),
        "{problems:?}"
    );
}

#[test]
fn token_candidates_list_token_and_billing_fields() {
    assert_eq!(
        schema().token_candidates(),
        vec![
            "PersonalToken.billingOrganization: Organization".to_owned(),
            "User.apiTokens: [PersonalToken]".to_owned(),
        ]
    );
}

#[test]
fn an_introspection_answer_becomes_the_schema() {
    let data = serde_json::json!({"schema": {
        "queryType": {"name": "Query"},
        "types": [
            {"kind": "OBJECT", "name": "Query", "fields": [
                {"name": "organization", "args": [{"name": "id", "defaultValue": null,
                  "type": {"kind": "NON_NULL", "ofType": {"kind": "SCALAR", "name": "ID"}}}],
                 "type": {"kind": "OBJECT", "name": "Organization"}}
            ]},
            {"kind": "OBJECT", "name": "Organization", "fields": [
                {"name": "id", "args": [], "type": {"kind": "SCALAR", "name": "ID"}}
            ]}
        ]
    }});
    let serde_json::Value::Object(data) = data else {
        unreachable!()
    };
    let schema = Schema::from_introspection(data).unwrap();
    assert_eq!(
        schema.check("query Q($a0_id: ID!) { a0: organization(id: $a0_id) { id } }"),
        vec![]
    );
    assert_eq!(
        schema.check("query Q($a0_id: ID!) { a0: organization(id: $a0_id) { name } }")[0]
            .coordinate
            .as_deref(),
        Some("Organization.name")
    );
    let serde_json::Value::Object(empty) = serde_json::json!({"schema": {"types": []}}) else {
        unreachable!()
    };
    assert_eq!(
        Schema::from_introspection(empty).unwrap_err(),
        "the introspection answer lists no types"
    );
}
