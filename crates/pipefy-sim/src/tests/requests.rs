//! How a `POST /graphql` is answered when it is not a good request: validation and parse
//! errors (HTTP 200, as Pipefy), malformed JSON (400), operation names and missing
//! required variables.

use super::*;

#[tokio::test]
async fn validation_and_parse_errors_are_http_200() {
    let sim = Simulator::demo();
    let server = start(&sim).await;

    let a = query(
        &server,
        r#"{ organization(id: "2") { id bogus } }"#,
        json!(null),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"], Value::Null);
    let errors = a.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0]["message"],
        r#"Unknown field "bogus" on type "Organization"."#
    );

    let a = query(&server, "{ organization(id: ", json!(null)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["errors"].as_array().map(Vec::len), Some(1));

    // A missing variable is a request error too, not an HTTP one.
    let a = query(&server, ORG_QUERY, json!({"a": "2"})).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        json!({"errors": [{
            "message": r#"Variable "$b" of required type "ID!" was not provided."#,
            "locations": [{"line": 2, "column": 23}],
        }]})
    );

    // Pipefy's depth limit of 15, reached through introspection.
    let mut deep = String::from("name");
    for _ in 0..15 {
        deep = format!("ofType {{ {deep} }}");
    }
    let a = query(
        &server,
        &format!("{{ __schema {{ types {{ {deep} }} }} }}"),
        json!(null),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["errors"][0]["message"], "Query is nested too deep.");

    // Nothing was resolved by any of these.
    assert_eq!(sim.stats().root_fields, BTreeMap::new());
}

#[tokio::test]
async fn malformed_json_is_400() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    let resp = reqwest::Client::new()
        .post(server.graphql_url())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("JSON body");
    assert!(body["errors"][0]["message"].is_string());
    let a = post(&server, None, json!({"variables": {}})).await;
    assert_eq!(a.status, 400);

    let stats = sim.stats();
    assert_eq!(stats.graphql_requests, 2);
    assert_eq!(stats.operations, BTreeMap::new());
}

#[test]
fn operation_names() {
    use crate::http::operation_name;
    let name = |query: &str, given| {
        operation_name(
            async_graphql::parser::parse_query(query).ok().as_ref(),
            given,
        )
    };
    assert_eq!(name("query A { x }", None), "A");
    assert_eq!(name("query A { x }", Some("B")), "B");
    assert_eq!(name("{ x }", None), "anonymous");
    assert_eq!(name("query A { x } query B { y }", None), "anonymous");
    assert_eq!(name("query A { x } query B { y }", Some("B")), "B");
    assert_eq!(name("{ broken", None), "anonymous");
}

#[test]
fn missing_required_variables() {
    use crate::http::missing_variables;
    let check = |query: &str, given, variables: Value| {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        missing_variables(&doc, given, Some(&variables))
    };
    let q = "query Q($a: ID!, $b: ID, $c: ID! = \"1\") { x }";
    assert_eq!(check(q, None, json!({"a": "1"})), None);
    assert_eq!(
        check(q, None, json!({"a": null, "b": "2"})),
        Some(vec![json!({
            "message": r#"Variable "$a" of required type "ID!" was not provided."#,
            "locations": [{"line": 1, "column": 9}],
        })])
    );
    assert_eq!(check(q, Some("Other"), json!({})), None);
    let two = "query A($a: ID!) { x } query B { y }";
    assert_eq!(check(two, Some("B"), json!({})), None);
    assert_eq!(check(two, Some("A"), json!({})).map(|e| e.len()), Some(1));
    assert_eq!(check(two, None, json!({})), None);
}
