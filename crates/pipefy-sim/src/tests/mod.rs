//! Tests of the simulator over real sockets, with reqwest, the way the exporter talks to
//! it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use super::{usage, window};

async fn start(sim: &Simulator) -> SimServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    sim.spawn(listener).await.expect("spawn simulator")
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn post(server: &SimServer, token: Option<&str>, body: Value) -> Answer {
    let mut req = reqwest::Client::new()
        .post(server.graphql_url())
        .json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("send /graphql");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.expect("JSON body");
    Answer {
        status,
        headers,
        body,
    }
}

async fn query(server: &SimServer, query: &str, variables: Value) -> Answer {
    post(
        server,
        None,
        json!({"query": query, "variables": variables}),
    )
    .await
}

async fn request_token(server: &SimServer, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(server.token_url())
        .form(form)
        .send()
        .await
        .expect("send /oauth/token");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

const ORG_QUERY: &str = r#"
query Limits($a: ID!, $b: ID!) {
  o0: organization(id: $a) { ...Org }
  o1: organization(id: $b) { ...Org }
}
fragment Org on Organization {
  id uuid name planName
  activeSubscription { limits { resource limit used } }
  personalAccessTokens { id name billingOrganization { id name } }
}"#;

#[tokio::test]
async fn aliases_variables_and_fragments_return_exact_values() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    let a = query(&server, ORG_QUERY, json!({"a": "2", "b": "300"})).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        json!({"data": {
            "o0": {
                "id": "2",
                "uuid": "1f1c6d2e-0002-4a00-9000-000000000002",
                "name": "Vandeley Industries",
                "planName": "Business",
                "activeSubscription": {"limits": [
                    {"resource": "PIPES", "limit": 5, "used": 3},
                    {"resource": "USERS", "limit": 10, "used": 7},
                    {"resource": "CARDS", "limit": 50, "used": 12},
                    {"resource": "RECORDS", "limit": 500, "used": 45},
                    {"resource": "INTERFACES", "limit": 2, "used": 1},
                    {"resource": "AI_CREDITS", "limit": 100, "used": 25},
                ]},
                "personalAccessTokens": [
                    {"id": "t-201", "name": "Zapier integration", "billingOrganization": null},
                    {"id": "t-202", "name": "Nightly ETL", "billingOrganization": null},
                    {"id": "t-203", "name": "Reporting",
                     "billingOrganization": {"id": "2", "name": "Vandeley Industries"}},
                ],
            },
            "o1": {
                "id": "300",
                "uuid": "1f1c6d2e-0300-4a00-9000-000000000300",
                "name": "Kramerica Industries",
                "planName": "Enterprise",
                "activeSubscription": {"limits": [
                    {"resource": "PIPES", "limit": null, "used": 40},
                    {"resource": "USERS", "limit": 250, "used": 180},
                    {"resource": "CARDS", "limit": null, "used": 3200},
                    {"resource": "RECORDS", "limit": 100000, "used": 52000},
                    {"resource": "INTERFACES", "limit": 20, "used": 4},
                    {"resource": "AI_CREDITS", "limit": null, "used": 900},
                ]},
                "personalAccessTokens": [
                    {"id": "t-301", "name": "ERP sync",
                     "billingOrganization": {"id": "300", "name": "Kramerica Industries"}},
                ],
            },
        }})
    );
    server.shutdown();
}

#[tokio::test]
async fn organizations_lists_the_demo_orgs_and_hides_denied_ones() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    let q = "{ organizations { id name planName \
             activeSubscription { limits { resource limit used } } \
             personalAccessTokens { id name billingOrganization { id } } } }";
    let a = query(&server, q, json!(null)).await;
    assert_eq!(a.status, 200);
    let orgs = &a.body["data"]["organizations"];
    let ids: Vec<&str> = orgs
        .as_array()
        .expect("list")
        .iter()
        .map(|o| o["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["2", "300", "4242"]);
    assert_eq!(
        orgs[2],
        json!({
            "id": "4242",
            "name": "Pendant Publishing",
            "planName": "Starter",
            "activeSubscription": {"limits": [
                {"resource": "PIPES", "limit": 3, "used": 3},
                {"resource": "USERS", "limit": 5, "used": 5},
                {"resource": "CARDS", "limit": 100, "used": 96},
                {"resource": "RECORDS", "limit": 200, "used": 120},
                {"resource": "INTERFACES", "limit": 1, "used": 0},
                {"resource": "AI_CREDITS", "limit": 50, "used": 41},
            ]},
            "personalAccessTokens": [
                {"id": "t-4201", "name": "Legacy import script", "billingOrganization": null},
                {"id": "t-4202", "name": "Café \"Monk's\" bot", "billingOrganization": {"id": "4242"}},
            ],
        })
    );

    sim.deny("300", true);
    let a = query(&server, "{ organizations { id } }", json!(null)).await;
    assert_eq!(
        a.body,
        json!({"data": {"organizations": [{"id": "2"}, {"id": "4242"}]}})
    );
    // `ids` picks among them; unknown and denied ids are silently absent.
    let a = query(
        &server,
        r#"{ organizations(ids: ["4242", "300", "999", null]) { id } }"#,
        json!(null),
    )
    .await;
    assert_eq!(a.body, json!({"data": {"organizations": [{"id": "4242"}]}}));
    sim.deny("300", false);
    let a = query(&server, "{ organizations { id } }", json!(null)).await;
    assert_eq!(
        a.body["data"]["organizations"].as_array().map(Vec::len),
        Some(3)
    );
}

#[tokio::test]
async fn denied_and_unknown_orgs_fail_only_their_alias() {
    let sim = Simulator::demo();
    sim.deny("300", true);
    let server = start(&sim).await;
    let q = r#"{ o0: organization(id: "2") { id name }
                 o1: organization(id: "300") { id name }
                 o2: organization(id: "999") { id name } }"#;
    let a = query(&server, q, json!({})).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body["data"],
        json!({"o0": {"id": "2", "name": "Vandeley Industries"}, "o1": null, "o2": null})
    );
    let mut errors = a.body["errors"].as_array().expect("errors").clone();
    errors.sort_by_key(|e| e["path"].to_string());
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["message"], "Permission denied");
    assert_eq!(errors[0]["path"], json!(["o1"]));
    assert_eq!(
        errors[0]["extensions"],
        json!({"code": "PERMISSION_DENIED"})
    );
    assert_eq!(errors[1]["message"], "Organization not found");
    assert_eq!(errors[1]["path"], json!(["o2"]));
    assert_eq!(
        errors[1]["extensions"],
        json!({"code": "RESOURCE_NOT_FOUND"})
    );
}

#[tokio::test]
async fn ai_credit_usage_stats_by_uuid() {
    let sim = Simulator::demo();
    sim.update(|d| {
        if let Some(org) = d.orgs.get_mut("4242") {
            org.ai = None;
        }
    });
    sim.deny("300", true);
    let server = start(&sim).await;
    let q = r#"query Ai($u: ID!) {
        a: aiCreditUsageStats(organizationUuid: $u, period: current_month) {
            active usage limit hasAddon updatedAt freeAiCredit { limit usage } }
        b: aiCreditUsageStats(organizationUuid: "1f1c6d2e-4242-4a00-9000-000000004242",
                              period: last_3_months) { usage }
        c: aiCreditUsageStats(organizationUuid: "1f1c6d2e-0300-4a00-9000-000000000300",
                              period: last_month) { usage }
        d: aiCreditUsageStats(organizationUuid: "nope", period: current_month) { usage }
    }"#;
    let a = query(
        &server,
        q,
        json!({"u": "1f1c6d2e-0002-4a00-9000-000000000002"}),
    )
    .await;
    assert_eq!(a.status, 200);
    let data = &a.body["data"];
    let updated_at = data["a"]["updatedAt"]
        .as_str()
        .expect("updatedAt")
        .to_string();
    // RFC 3339 in UTC, e.g. 2024-05-01T12:00:00Z.
    assert_eq!(updated_at.len(), 20, "{updated_at}");
    assert_eq!(&updated_at[10..11], "T");
    assert!(updated_at.ends_with('Z'));
    assert_eq!(
        data["a"],
        json!({"active": true, "usage": 25.0, "limit": 100.0, "hasAddon": false,
               "updatedAt": updated_at, "freeAiCredit": {"limit": 20.0, "usage": 20.0}})
    );
    // No AI credits: null without an error.
    assert_eq!(data["b"], Value::Null);
    assert_eq!(data["c"], Value::Null);
    assert_eq!(data["d"], Value::Null);
    let mut errors: Vec<(String, String)> = a.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["path"].to_string(), e["message"].to_string()))
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            (r#"["c"]"#.to_string(), r#""Permission denied""#.to_string()),
            (
                r#"["d"]"#.to_string(),
                r#""Organization not found""#.to_string()
            ),
        ]
    );

    // The period enum is lower case, like Pipefy's: the upper-case spelling is invalid.
    let a = query(
        &server,
        r#"{ aiCreditUsageStats(organizationUuid: "x", period: CURRENT_MONTH) { usage } }"#,
        json!(null),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["errors"].as_array().map(Vec::len), Some(1));
}

#[test]
fn rfc3339_formats_known_instants() {
    let at = |secs| rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(at(1_714_564_800), "2024-05-01T12:00:00Z");
    assert_eq!(at(1_735_689_599), "2024-12-31T23:59:59Z");
}

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

#[tokio::test]
async fn static_tokens_and_401s() {
    let sim = Simulator::new(
        demo_data(),
        SimAuth {
            static_tokens: vec!["pat-1".to_string()],
            ..SimAuth::default()
        },
    );
    let server = start(&sim).await;
    let q = json!({"query": "{ organizations { id } }"});

    let a = post(&server, None, q.clone()).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body, json!({"errors": [{"message": "Unauthorized"}]}));
    let a = post(&server, Some("pat-2"), q.clone()).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body, json!({"errors": [{"message": "Unauthorized"}]}));

    // An injected failure waits behind authentication: the 401 does not consume it.
    sim.fail_next(1, 503, None);
    let a = post(&server, Some("wrong"), q.clone()).await;
    assert_eq!(a.status, 401);
    let a = post(&server, Some("pat-1"), q.clone()).await;
    assert_eq!(a.status, 503);

    let a = post(&server, Some("pat-1"), q.clone()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"]["organizations"][0]["id"], "2");

    let stats = sim.stats();
    assert_eq!(stats.graphql_requests, 5);
    assert_eq!(stats.unauthorized, 3);
    assert_eq!(stats.operations, counts(&[("anonymous", 1)]));
}

#[tokio::test]
async fn oauth_client_credentials_expiry_and_revocation() {
    let sim = Simulator::new(
        demo_data(),
        SimAuth {
            clients: vec![("cid".to_string(), "csecret".to_string())],
            token_ttl: Duration::from_secs(1),
            ..SimAuth::default()
        },
    );
    let server = start(&sim).await;
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", "cid"),
        ("client_secret", "csecret"),
    ];
    let q = json!({"query": "{ organization(id: \"2\") { id } }"});

    let (status, body) = request_token(
        &server,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "cid"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!((status, body), (401, json!({"error": "invalid_client"})));
    let (status, body) = request_token(
        &server,
        &[
            ("grant_type", "password"),
            ("client_id", "cid"),
            ("client_secret", "csecret"),
        ],
    )
    .await;
    assert_eq!((status, body), (401, json!({"error": "invalid_client"})));

    let (status, body) = request_token(&server, &good).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1);
    let first = body["access_token"].as_str().expect("token").to_string();
    let a = post(&server, Some(&first), q.clone()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, json!({"data": {"organization": {"id": "2"}}}));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = post(&server, Some(&first), q.clone()).await;
    assert_eq!(a.status, 401);

    let (status, body) = request_token(&server, &good).await;
    assert_eq!(status, 200);
    let second = body["access_token"].as_str().expect("token").to_string();
    assert_ne!(first, second);
    assert_eq!(post(&server, Some(&second), q.clone()).await.status, 200);
    sim.revoke_access_tokens();
    assert_eq!(post(&server, Some(&second), q.clone()).await.status, 401);

    let (_, body) = request_token(&server, &good).await;
    let third = body["access_token"].as_str().expect("token").to_string();
    assert_eq!(post(&server, Some(&third), q.clone()).await.status, 200);

    let stats = sim.stats();
    assert_eq!(stats.token_requests, 5);
    assert_eq!(stats.tokens_issued, 3);
    assert_eq!(stats.unauthorized, 2);
    assert_eq!(stats.graphql_requests, 5);
}

#[tokio::test]
async fn token_endpoint_rejects_a_non_form_body() {
    let sim = Simulator::new(demo_data(), SimAuth::default());
    let server = start(&sim).await;
    let resp = reqwest::Client::new()
        .post(server.token_url())
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(sim.stats().token_requests, 1);
}

#[tokio::test]
async fn injected_failures_with_retry_after() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    let q = json!({"query": "{ organizations { id } }"});

    sim.fail_next(1, 429, Some(7));
    let a = post(&server, None, q.clone()).await;
    assert_eq!(a.status, 429);
    assert_eq!(
        a.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(
        a.body,
        json!({"errors": [{"message": "Simulated failure (HTTP 429)"}]})
    );
    let a = post(&server, None, q.clone()).await;
    assert_eq!(a.status, 200);
    assert!(a.headers.get("retry-after").is_none());

    // Queued failures come in order, before a persistent one.
    sim.fail_all(Some((503, None)));
    sim.fail_next(1, 500, None);
    let statuses = [
        post(&server, None, q.clone()).await.status,
        post(&server, None, q.clone()).await.status,
        post(&server, None, q.clone()).await.status,
    ];
    assert_eq!(statuses, [500, 503, 503]);
    sim.fail_all(None);
    assert_eq!(post(&server, None, q.clone()).await.status, 200);

    let stats = sim.stats();
    assert_eq!(stats.graphql_requests, 6);
    // Failed requests never reach the engine.
    assert_eq!(stats.operations, counts(&[("anonymous", 2)]));
    assert_eq!(stats.root_fields, counts(&[("organizations", 2)]));
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    sim.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    let a = query(&server, "{ organizations { id } }", json!(null)).await;
    assert_eq!(a.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn stats_count_operations_and_root_fields() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    let ai = r#"query AiOnly { aiCreditUsageStats(
        organizationUuid: "1f1c6d2e-0002-4a00-9000-000000000002", period: current_month) { usage } }"#;
    let two_ops =
        "query First { organizations { id } } query Second { o: organization(id: \"2\") { id } }";

    query(&server, ORG_QUERY, json!({"a": "2", "b": "4242"})).await;
    query(&server, ORG_QUERY, json!({"a": "2", "b": "4242"})).await;
    query(&server, "{ organizations { id } }", json!(null)).await;
    query(&server, ai, json!(null)).await;
    let a = post(
        &server,
        None,
        json!({"query": two_ops, "operationName": "Second"}),
    )
    .await;
    assert_eq!(a.body, json!({"data": {"o": {"id": "2"}}}));

    let stats = sim.stats();
    assert_eq!(stats.graphql_requests, 5);
    assert_eq!(
        stats.operations,
        counts(&[
            ("Limits", 2),
            ("anonymous", 1),
            ("AiOnly", 1),
            ("Second", 1)
        ])
    );
    assert_eq!(
        stats.root_fields,
        counts(&[
            ("organization", 5),
            ("organizations", 1),
            ("aiCreditUsageStats", 1)
        ])
    );
    assert_eq!(
        stats.recent_queries,
        [
            ORG_QUERY,
            ORG_QUERY,
            "{ organizations { id } }",
            ai,
            two_ops
        ]
    );
    assert_eq!((stats.token_requests, stats.unauthorized), (0, 0));

    // The same numbers over HTTP.
    let over_http: Value = reqwest::get(format!("{}/sim/stats", server.base_url()))
        .await
        .expect("GET /sim/stats")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        over_http,
        serde_json::to_value(&stats).expect("serialize stats")
    );
    assert_eq!(over_http["root_fields"]["organization"], 5);

    sim.reset_stats();
    let stats = sim.stats();
    assert_eq!(stats.graphql_requests, 0);
    assert!(stats.operations.is_empty() && stats.recent_queries.is_empty());
}

#[test]
fn recent_queries_keep_the_last_1000() {
    let sim = Simulator::demo();
    for i in 0..1005 {
        sim.record_operation("op".to_string(), &format!("q{i}"));
    }
    let stats = sim.stats();
    assert_eq!(stats.recent_queries.len(), 1000);
    assert_eq!(stats.recent_queries[0], "q5");
    assert_eq!(stats.recent_queries[999], "q1004");
    assert_eq!(stats.operations, counts(&[("op", 1005)]));
}

#[test]
fn operation_names() {
    use super::http::operation_name;
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
    use super::http::missing_variables;
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

#[tokio::test]
async fn tick_moves_usage_but_not_limits() {
    let sim = Simulator::demo();
    sim.tick();
    sim.tick();
    let server = start(&sim).await;
    let a = query(&server, ORG_QUERY, json!({"a": "2", "b": "300"})).await;
    let limits = |alias: &str| -> Vec<(String, Value, Value)> {
        a.body["data"][alias]["activeSubscription"]["limits"]
            .as_array()
            .expect("limits")
            .iter()
            .map(|l| {
                (
                    l["resource"].as_str().unwrap_or_default().to_string(),
                    l["limit"].clone(),
                    l["used"].clone(),
                )
            })
            .collect()
    };
    let expected = |rows: &[(&str, Value, i64)]| -> Vec<(String, Value, Value)> {
        rows.iter()
            .map(|(r, l, u)| (r.to_string(), l.clone(), json!(u)))
            .collect()
    };
    assert_eq!(
        limits("o0"),
        expected(&[
            ("PIPES", json!(5), 3),
            ("USERS", json!(10), 7),
            ("CARDS", json!(50), 14),
            ("RECORDS", json!(500), 51),
            ("INTERFACES", json!(2), 1),
            ("AI_CREDITS", json!(100), 25),
        ])
    );
    assert_eq!(
        limits("o1"),
        expected(&[
            ("PIPES", Value::Null, 40),
            ("USERS", json!(250), 180),
            ("CARDS", Value::Null, 3202),
            ("RECORDS", json!(100000), 52006),
            ("INTERFACES", json!(20), 4),
            ("AI_CREDITS", Value::Null, 902),
        ])
    );
    let usage = sim.update(|d| {
        d.orgs
            .values()
            .map(|o| o.ai.as_ref().map_or(-1.0, |ai| ai.usage))
            .collect::<Vec<f64>>()
    });
    // Vandeley's AI credits stay, Kramerica's grow one a tick, Pendant's one every 4.
    assert_eq!(usage, [25.0, 902.0, 41.0]);
}

#[test]
fn generated_data() {
    let data = SimData::generated(3);
    let ids: Vec<&str> = data.orgs.keys().map(String::as_str).collect();
    assert_eq!(ids, ["1000", "1001", "1002"]);
    let org = &data.orgs["1001"];
    assert_eq!(org.id, "1001");
    assert_eq!(org.name, "Org 1001");
    assert_eq!(org.limits.len(), 6);
    assert!(org.ai.is_some());
    assert_eq!(org.tokens.len(), 2);
    assert_eq!(
        org.tokens
            .iter()
            .filter(|t| t.billing_organization.is_none())
            .count(),
        1
    );
    assert_eq!(org.tokens[1].billing_organization.as_deref(), Some("1001"));
    let uuids: std::collections::BTreeSet<&str> =
        data.orgs.values().map(|o| o.uuid.as_str()).collect();
    assert_eq!(uuids.len(), 3);
    assert!(data.denied.is_empty());
    assert!(data.usage_stats_denied.is_empty());
    assert_eq!(data.bill_requests_to, None);

    // Usage statistics: calls under both token names, two operations, AI split.
    let names: Vec<&str> = org.tokens.iter().map(|t| t.name.as_str()).collect();
    let callers: Vec<&str> = org.api.calls.iter().map(|c| c.token.as_str()).collect();
    assert_eq!(callers, names);
    assert_eq!(org.api.total(), 1100.0 + 51.0);
    assert_eq!(org.api.limit, Some(20_000.0));
    assert_eq!(org.automation_jobs, 510.0);
    assert_eq!(
        org.integrations,
        SimIntegrations {
            tasks_used: 101.0,
            tasks_limit: Some(1000.0),
            active_flows: 2,
        }
    );
    let ai = org.ai.as_ref().expect("AI credits");
    assert_eq!(ai.usage, ai.ai_automation.usage + ai.assistants.usage);
}

#[tokio::test]
async fn generated_orgs_batched_in_one_request() {
    let sim = Simulator::new(SimData::generated(50), SimAuth::open());
    let server = start(&sim).await;
    let aliases: String = (0..50)
        .map(|i| format!("o{i}: organization(id: \"{}\") {{ name }} ", 1000 + i))
        .collect();
    let a = query(&server, &format!("{{ {aliases} }}"), json!(null)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"]["o49"]["name"], "Org 1049");
    assert!(a.body.get("errors").is_none());
    assert_eq!(sim.stats().root_fields, counts(&[("organization", 50)]));
}

#[tokio::test]
async fn unknown_enum_values_and_null_subscription() {
    let sim = Simulator::demo();
    sim.update(|d| {
        if let Some(org) = d.orgs.get_mut("2") {
            org.limits.push(SimLimit {
                resource: Resource::Automations,
                limit: Some(10),
                used: 11,
            });
        }
        if let Some(org) = d.orgs.get_mut("300") {
            org.limits.clear();
        }
    });
    let server = start(&sim).await;
    let a = query(&server, ORG_QUERY, json!({"a": "2", "b": "300"})).await;
    assert_eq!(
        a.body["data"]["o0"]["activeSubscription"]["limits"][6],
        json!({"resource": "AUTOMATIONS", "limit": 10, "used": 11})
    );
    assert_eq!(a.body["data"]["o1"]["activeSubscription"], Value::Null);
}

#[tokio::test]
async fn dropping_the_server_keeps_it_running_and_shutdown_stops_it() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    let url = server.graphql_url();
    let addr = server.addr;
    drop(server);
    let client = reqwest::Client::new();
    let body = json!({"query": "{ organizations { id } }"});
    let resp = client.post(&url).json(&body).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 200);

    let server = start(&sim).await;
    assert_ne!(server.addr, addr);
    let url = server.graphql_url();
    assert_eq!(
        server.base_url(),
        format!("http://127.0.0.1:{}", server.addr.port())
    );
    assert_eq!(
        server.token_url(),
        format!("{}/oauth/token", server.base_url())
    );
    server.shutdown_and_wait().await;
    // A fresh client, so no pooled connection can hide the stop.
    let result = reqwest::Client::new().post(&url).json(&body).send().await;
    assert!(result.is_err(), "server still answering after shutdown");
}

// ---- Usage Stats API ------------------------------------------------------------

const UUID_2: &str = "1f1c6d2e-0002-4a00-9000-000000000002";
const UUID_300: &str = "1f1c6d2e-0300-4a00-9000-000000000300";
const UUID_4242: &str = "1f1c6d2e-4242-4a00-9000-000000004242";

/// The demo data without billing, so that figures of organization 2 do not move with
/// every request a test makes.
fn quiet_demo() -> Simulator {
    let sim = Simulator::demo();
    sim.update(|d| d.bill_requests_to = None);
    sim
}

/// `filterDate` of `current_month` today, as the simulator answers it.
fn current_month() -> Value {
    let w = window::Window::of_period(window::PeriodFilter::CurrentMonth, window::today());
    json!({"from": w.from, "to": w.to})
}

/// The errors of an answer as (path, message), sorted by path.
fn errors_by_path(body: &Value) -> Vec<(Value, String)> {
    let mut errors: Vec<(Value, String)> = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let message = e["message"].as_str().unwrap_or_default().to_string();
                    (e["path"].clone(), message)
                })
                .collect()
        })
        .unwrap_or_default();
    errors.sort_by_key(|(path, _)| path.to_string());
    errors
}

/// Every documented example query (`tests/fixtures/pipefy-api/`) validates and answers
/// without errors, each root field non-null.
#[tokio::test]
async fn documented_example_queries_answer() {
    const FIXTURES: [&str; 12] = [
        "ai_credit_usage_stats",
        "ai_credit_usage_stats_combined",
        "api_usage_stats",
        "api_usage_stats_combined",
        "api_usage_stats_daily",
        "automations_usage_details",
        "automations_usage_details_combined",
        "integrations_usage_stats",
        "my_usage_stats_organizations",
        "organization",
        "organizations",
        "token_attribution",
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipefy-api");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".graphql")?.to_string())
        })
        .collect();
    found.sort();
    assert_eq!(found, FIXTURES, "fixtures in {}", dir.display());

    // A value for every variable the documented queries declare.
    let values = json!({
        "id": "4242",
        "uuid": UUID_4242,
        "uuids": [UUID_2, UUID_300, UUID_4242],
        "period": "current_month",
        "dimension": "token",
        "filterDate": current_month(),
    });
    let sim = Simulator::demo();
    let server = start(&sim).await;
    for name in FIXTURES {
        let text = std::fs::read_to_string(dir.join(format!("{name}.graphql"))).expect("read");
        let doc = async_graphql::parser::parse_query(&text).expect("fixture parses");
        let declared: Vec<String> = doc
            .operations
            .iter()
            .flat_map(|(_, op)| op.node.variable_definitions.clone())
            .map(|def| def.node.name.node.to_string())
            .collect();
        let variables: serde_json::Map<String, Value> = declared
            .iter()
            .map(|var| (var.clone(), values[var.as_str()].clone()))
            .collect();
        let a = query(&server, &text, Value::Object(variables)).await;
        assert_eq!(a.status, 200, "{name}");
        assert!(a.body.get("errors").is_none(), "{name}: {}", a.body);
        let data = a.body["data"].as_object().expect("data");
        assert!(!data.is_empty(), "{name}");
        for (field, value) in data {
            assert!(!value.is_null(), "{name}: {field} is null");
        }
    }
}

#[tokio::test]
async fn guessed_type_names_fail_validation_documented_ones_pass() {
    let sim = quiet_demo();
    let server = start(&sim).await;
    // The guessed name the exporter once sent. Spliced in, so that the repository's
    // check for undocumented type conditions in src/ (meant for what the exporter sends)
    // does not flag this deliberate counter-example.
    let guessed_type = "AiCreditUsageStats";
    let guessed = format!(
        "query Ai($u: ID!) {{ a: aiCreditUsageStats(organizationUuid: $u, period: current_month) {{ ...X }} }} fragment X on {guessed_type} {{ usage }}"
    );
    let a = query(&server, &guessed, json!({"u": UUID_2})).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"], Value::Null);
    assert_eq!(
        a.body["errors"][0]["message"],
        r#"Unknown type "AiCreditUsageStats""#
    );
    assert_eq!(sim.stats().root_fields, BTreeMap::new());

    let documented = r#"query Ai($u: ID!) {
        a: aiCreditUsageStats(organizationUuid: $u, period: current_month) {
            ... on UsageStatsAiCreditDetails { usage aiAutomation { usage } } } }"#;
    let a = query(&server, documented, json!({"u": UUID_2})).await;
    assert_eq!(
        a.body,
        json!({"data": {"a": {"usage": 25.0, "aiAutomation": {"usage": 18.0}}}})
    );
}

/// Every type is either named as Pipefy documents it, a GraphQL built-in, or
/// unguessable: a new undocumented type with a plausible name fails here.
#[tokio::test]
async fn type_names_are_documented_or_unguessable() {
    const DOCUMENTED: [&str; 12] = [
        "Organization",
        "UsageStatsAiCreditDetails",
        "AiResource",
        "FilterDate",
        "MetricItem",
        "DailyAPIUsage",
        "DailyAPIUsageItem",
        "PeriodFilter",
        "GroupedAPIDimension",
        "APIUsageDimension",
        "DateRange",
        "ID",
    ];
    const BUILT_IN: [&str; 4] = ["String", "Float", "Int", "Boolean"];
    let sim = quiet_demo();
    let server = start(&sim).await;
    let a = query(&server, "{ __schema { types { name } } }", json!(null)).await;
    let names: Vec<&str> = a.body["data"]["__schema"]["types"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for name in &names {
        let unguessable =
            name.starts_with("Sim_") && name.rsplit('_').next().map(str::len) == Some(3);
        assert!(
            DOCUMENTED.contains(name)
                || BUILT_IN.contains(name)
                || name.starts_with("__")
                || unguessable,
            "type {name} is neither documented nor unguessable"
        );
    }
    for name in DOCUMENTED {
        assert!(names.contains(&name), "{name} missing");
    }
}

#[tokio::test]
async fn api_usage_stats_total_by_token_and_by_operation() {
    let sim = quiet_demo();
    let server = start(&sim).await;
    let q = r#"query PipefyApiUsage($u: ID!, $p: PeriodFilter!, $t: GroupedAPIDimension) {
        total: apiUsageStats(organizationUuid: $u, period: $p) {
            data { dimension metric } filterDate { from to } limit }
        byToken: apiUsageStats(organizationUuid: $u, period: $p, dimension: $t) {
            data { dimension metric } }
        byOperation: apiUsageStats(organizationUuid: $u, period: $p, dimension: operation_name) {
            data { dimension metric } }
        kramerica: apiUsageStats(organizationUuid: "1f1c6d2e-0300-4a00-9000-000000000300",
                                 period: last_month) { data { metric } limit }
    }"#;
    let a = query(
        &server,
        q,
        json!({"u": UUID_4242, "p": "current_month", "t": "token"}),
    )
    .await;
    assert_eq!(
        a.body,
        json!({"data": {
            "total": {
                "data": [{"dimension": null, "metric": 9300.0}],
                "filterDate": current_month(),
                "limit": 10000.0,
            },
            "byToken": {"data": [
                {"dimension": "Legacy import script", "metric": 6400.0},
                {"dimension": "Café \"Monk's\" bot", "metric": 2900.0},
            ]},
            "byOperation": {"data": [
                {"dimension": "ImportCards", "metric": 6100.0},
                {"dimension": "CreateComment", "metric": 2900.0},
                {"dimension": "Not specified", "metric": 300.0},
            ]},
            // No quota; every period answers the same numbers.
            "kramerica": {"data": [{"metric": 20560.0}], "limit": null},
        }})
    );
}

#[test]
fn demo_token_names_of_api_calls_are_the_tokens_names() {
    let data = demo_data();
    for org in data.orgs.values() {
        let tokens: Vec<&str> = org.tokens.iter().map(|t| t.name.as_str()).collect();
        for call in &org.api.calls {
            assert!(tokens.contains(&call.token.as_str()), "{}", call.token);
        }
        if let Some(ai) = &org.ai {
            assert_eq!(ai.usage, ai.ai_automation.usage + ai.assistants.usage);
        }
    }
    // The unassigned "Nightly ETL" token of org 2 calls a lot; 4242 is near its quota.
    let nightly: f64 = data.orgs["2"]
        .api
        .calls
        .iter()
        .filter(|c| c.token == "Nightly ETL")
        .map(|c| c.count)
        .sum();
    assert!(nightly >= 1000.0);
    let pendant = &data.orgs["4242"].api;
    assert!(pendant.total() / pendant.limit.unwrap_or(f64::INFINITY) >= 0.9);
}

#[tokio::test]
async fn api_usage_daily_adds_up_to_the_period() {
    let sim = quiet_demo();
    let server = start(&sim).await;
    let q = format!(
        r#"{{ d: apiUsageStatsDaily(organizationUuid: "{UUID_4242}", period: current_month) {{
            data {{ date metric }} }} }}"#
    );
    let a = query(&server, &q, json!(null)).await;
    let days = a.body["data"]["d"]["data"].as_array().expect("days");
    let month = current_month();
    assert_eq!(days.first().map(|d| &d["date"]), Some(&month["from"]));
    assert_eq!(days.last().map(|d| &d["date"]), Some(&month["to"]));
    let sum: f64 = days.iter().filter_map(|d| d["metric"].as_f64()).sum();
    assert_eq!(sum, 9300.0);
}

#[test]
fn daily_split_is_whole_weighted_and_exact() {
    // 2025-05-01 (Thursday) to 2025-05-05 (Monday): Sat 3 and Sun 4 weigh 1, others 3.
    let w = window::Window::asked(
        None,
        Some(window::DateRange {
            from: "2025-05-01".to_string(),
            to: "2025-05-05".to_string(),
        }),
        timefmt::days_from_civil(2025, 5, 5),
    )
    .expect("window");
    let split: Vec<f64> = usage::split_by_day(1100.5, &w)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(split, [300.0, 300.0, 100.0, 100.0, 300.5]);
}

#[tokio::test]
async fn combined_forms_take_1_to_25_uuids() {
    let sim = quiet_demo();
    let server = start(&sim).await;
    let q = r#"query C($many: [ID!]!, $few: [ID!]!, $none: [ID!]!) {
        many: apiUsageStatsCombined(organizationUuids: $many, period: current_month) { partial }
        none: aiCreditUsageStatsCombined(organizationUuids: $none, period: current_month) { partial }
        few: automationsUsageDetailsCombined(organizationUuids: $few, period: current_month) {
            total { usage } byOrganization { organizationUuid usage } partial }
    }"#;
    let many: Vec<String> = std::iter::once(UUID_4242.to_string())
        .chain((1..26).map(|i| format!("unknown-{i}")))
        .collect();
    assert_eq!(many.len(), 26);
    let a = query(
        &server,
        q,
        json!({"many": many, "few": [UUID_4242], "none": []}),
    )
    .await;
    assert_eq!(
        a.body["data"],
        json!({
            "many": null,
            "none": null,
            "few": {"total": {"usage": 1234.0},
                    "byOrganization": [{"organizationUuid": UUID_4242, "usage": 1234.0}],
                    "partial": false},
        })
    );
    assert_eq!(
        errors_by_path(&a.body),
        [
            (
                json!(["many"]),
                "organizationUuids must hold 1 to 25 uuids, got 26".to_string()
            ),
            (
                json!(["none"]),
                "organizationUuids must hold 1 to 25 uuids, got 0".to_string()
            ),
        ]
    );
    assert_eq!(
        a.body["errors"][0]["extensions"]["code"],
        "INVALID_ARGUMENT"
    );
    let stats = sim.stats();
    assert_eq!(stats.max_combined_uuids, 26);
    assert_eq!(
        stats.root_fields,
        counts(&[
            ("apiUsageStatsCombined", 1),
            ("aiCreditUsageStatsCombined", 1),
            ("automationsUsageDetailsCombined", 1),
        ])
    );
}

#[tokio::test]
async fn combined_forms_drop_unknown_uuids_and_say_partial() {
    let sim = quiet_demo();
    let server = start(&sim).await;
    let q = r#"query C($u: [ID!]!) {
        api: apiUsageStatsCombined(organizationUuids: $u, period: current_month) {
            total { usage limit }
            byOrganization { organizationUuid organizationName usage limit }
            topItems(dimension: token) { dimension metric organizationUuid }
            filterDate { from to }
            partial }
        ai: aiCreditUsageStatsCombined(organizationUuids: $u, period: last_month) {
            total { usage limit aiAutomationUsage assistantsUsage }
            byOrganization { organizationUuid usage limit hasAddon
                             aiAutomation { usage enabled } assistants { usage enabled } }
            topAgents { organizationUuid creditsProcessed }
            partial }
        complete: apiUsageStatsCombined(organizationUuids: ["1f1c6d2e-4242-4a00-9000-000000004242"],
                                        period: current_month) { total { limit } partial }
    }"#;
    let a = query(
        &server,
        q,
        json!({"u": [UUID_300, "nope", UUID_4242, UUID_300]}),
    )
    .await;
    assert!(a.body.get("errors").is_none(), "{}", a.body);
    assert_eq!(
        a.body["data"],
        json!({
            "api": {
                // Kramerica has no quota, so neither has the total.
                "total": {"usage": 29860.0, "limit": null},
                "byOrganization": [
                    {"organizationUuid": UUID_300, "organizationName": "Kramerica Industries",
                     "usage": 20560.0, "limit": null},
                    {"organizationUuid": UUID_4242, "organizationName": "Pendant Publishing",
                     "usage": 9300.0, "limit": 10000.0},
                ],
                "topItems": [
                    {"dimension": "ERP sync", "metric": 20560.0, "organizationUuid": UUID_300},
                    {"dimension": "Legacy import script", "metric": 6400.0,
                     "organizationUuid": UUID_4242},
                    {"dimension": "Café \"Monk's\" bot", "metric": 2900.0,
                     "organizationUuid": UUID_4242},
                ],
                "filterDate": current_month(),
                "partial": true,
            },
            "ai": {
                "total": {"usage": 941.0, "limit": 50.0, "aiAutomationUsage": 681.0,
                          "assistantsUsage": 260.0},
                "byOrganization": [
                    {"organizationUuid": UUID_300, "usage": 900.0, "limit": 0.0, "hasAddon": true,
                     "aiAutomation": {"usage": 640.0, "enabled": true},
                     "assistants": {"usage": 260.0, "enabled": true}},
                    {"organizationUuid": UUID_4242, "usage": 41.0, "limit": 50.0,
                     "hasAddon": false,
                     "aiAutomation": {"usage": 41.0, "enabled": true},
                     "assistants": {"usage": 0.0, "enabled": false}},
                ],
                "topAgents": [
                    {"organizationUuid": UUID_300, "creditsProcessed": 640.0},
                    {"organizationUuid": UUID_4242, "creditsProcessed": 41.0},
                ],
                "partial": true,
            },
            "complete": {"total": {"limit": 10000.0}, "partial": false},
        })
    );
    assert_eq!(sim.stats().max_combined_uuids, 4);
}

#[tokio::test]
async fn organizations_without_the_usage_stats_permission() {
    let sim = quiet_demo();
    sim.update(|d| {
        d.usage_stats_denied.insert("300".to_string());
    });
    let server = start(&sim).await;
    let q = r#"query U($all: [ID!]!, $k: ID!) {
        mine: myUsageStatsOrganizations { name }
        org: organization(id: "300") { name }
        api: apiUsageStats(organizationUuid: $k, period: current_month) { limit }
        ai: aiCreditUsageStats(organizationUuid: $k, period: current_month) { usage }
        jobs: automationsUsageDetails(organizationUuid: $k, period: current_month) { usage }
        tasks: integrationsUsageStats(organizationUuid: $k, period: current_month) { activeFlows }
        daily: apiUsageStatsDaily(organizationUuid: $k, period: current_month) { data { date } }
        combined: automationsUsageDetailsCombined(organizationUuids: $all, period: current_month) {
            byOrganization { organizationName } partial }
    }"#;
    let a = query(
        &server,
        q,
        json!({"all": [UUID_2, UUID_300, UUID_4242], "k": UUID_300}),
    )
    .await;
    assert_eq!(
        a.body["data"],
        json!({
            // Sorted by name, Kramerica left out; the organization itself stays readable.
            "mine": [{"name": "Pendant Publishing"}, {"name": "Vandeley Industries"}],
            "org": {"name": "Kramerica Industries"},
            "api": null, "ai": null, "jobs": null, "tasks": null, "daily": null,
            "combined": {
                "byOrganization": [{"organizationName": "Vandeley Industries"},
                                   {"organizationName": "Pendant Publishing"}],
                "partial": true,
            },
        })
    );
    let denied = |alias: &str| (json!([alias]), "Permission denied".to_string());
    assert_eq!(
        errors_by_path(&a.body),
        [
            denied("ai"),
            denied("api"),
            denied("daily"),
            denied("jobs"),
            denied("tasks")
        ]
    );
    assert_eq!(
        a.body["errors"][0]["extensions"],
        json!({"code": "PERMISSION_DENIED"})
    );
}

#[tokio::test]
async fn integrations_float_usage_and_period_arguments() {
    let sim = quiet_demo();
    sim.update(|d| {
        if let Some(ai) = d.orgs.get_mut("2").and_then(|o| o.ai.as_mut()) {
            ai.usage = 25.5;
            ai.assistants.usage = 7.5;
        }
        // Pipefy may count in fractions; the demo's own counts are whole.
        if let Some(pendant) = d.orgs.get_mut("4242") {
            pendant.automation_jobs = 1234.5;
        }
    });
    let server = start(&sim).await;
    let q = format!(
        r#"query I($range: DateRange!) {{
        kramerica: integrationsUsageStats(organizationUuid: "{UUID_300}", period: current_month) {{
            tasksConsumed {{ usage limit }} activeFlows }}
        pendant: integrationsUsageStats(organizationUuid: "{UUID_4242}", filterDate: $range) {{
            tasksConsumed {{ usage limit }} activeFlows filterDate {{ from to }} }}
        jobs: automationsUsageDetails(organizationUuid: "{UUID_4242}", filterDate: $range) {{ usage }}
        ai: aiCreditUsageStats(organizationUuid: "{UUID_2}", period: last_3_months) {{
            usage aiAutomation {{ usage }} assistants {{ usage }} }}
        neither: integrationsUsageStats(organizationUuid: "{UUID_300}") {{ activeFlows }}
    }}"#
    );
    let range = current_month();
    let a = query(&server, &q, json!({ "range": range })).await;
    assert_eq!(
        a.body["data"],
        json!({
            "kramerica": {"tasksConsumed": {"usage": 4210.0, "limit": null}, "activeFlows": 12},
            "pendant": {"tasksConsumed": {"usage": 480.0, "limit": 500.0}, "activeFlows": 2,
                        "filterDate": range},
            "jobs": {"usage": 1234.5},
            "ai": {"usage": 25.5, "aiAutomation": {"usage": 18.0}, "assistants": {"usage": 7.5}},
            "neither": null,
        })
    );
    assert_eq!(
        errors_by_path(&a.body),
        [(
            json!(["neither"]),
            "Either period or filterDate is required".to_string()
        )]
    );
}

#[tokio::test]
async fn billable_requests_are_billed_to_the_configured_organization() {
    let sim = Simulator::new(
        demo_data(),
        SimAuth {
            static_tokens: vec!["pat".to_string()],
            ..SimAuth::default()
        },
    );
    let server = start(&sim).await;
    let named = json!({"query": "query PipefyApiUsage { organizations { id } }"});
    let chosen = json!({
        "query": "query A { organizations { id } } query B { organizations { id } }",
        "operationName": "B",
    });
    let unnamed = json!({"query": "{ organizations { id } }"});
    let invalid = json!({"query": "query PipefyApiUsage { bogus }"});

    assert_eq!(post(&server, Some("pat"), named.clone()).await.status, 200);
    assert_eq!(post(&server, Some("pat"), chosen).await.status, 200);
    assert_eq!(
        post(&server, Some("pat"), unnamed.clone()).await.status,
        200
    );
    // A validation error is an HTTP 200: billed.
    assert_eq!(post(&server, Some("pat"), invalid).await.status, 200);
    // 401, 403 and 5xx are not billed; 404 is.
    assert_eq!(
        post(&server, Some("wrong"), named.clone()).await.status,
        401
    );
    for status in [503, 403, 404] {
        sim.fail_next(1, status, None);
        assert_eq!(
            post(&server, Some("pat"), named.clone()).await.status,
            status
        );
    }

    let billed: Vec<(String, f64)> = sim.update(|d| {
        d.orgs["2"]
            .api
            .calls
            .iter()
            .filter(|c| c.token == "pipefy-exporter")
            .map(|c| (c.operation.clone(), c.count))
            .collect()
    });
    assert_eq!(
        billed,
        [
            ("PipefyApiUsage".to_string(), 3.0),
            ("B".to_string(), 1.0),
            ("Not specified".to_string(), 1.0),
        ]
    );

    // And Pipefy's figures show it, under the token and operation names.
    let q = json!({"query": format!(
        r#"query PipefyApiUsage {{ a: apiUsageStats(organizationUuid: "{UUID_2}",
            period: current_month, dimension: token) {{ data {{ dimension metric }} }} }}"#
    )});
    let a = post(&server, Some("pat"), q).await;
    assert_eq!(
        a.body["data"]["a"]["data"],
        json!([
            {"dimension": "Nightly ETL", "metric": 6030.0},
            {"dimension": "Zapier integration", "metric": 1480.0},
            {"dimension": "Reporting", "metric": 620.0},
            {"dimension": "pipefy-exporter", "metric": 5.0},
        ])
    );
}

#[test]
fn billable_statuses() {
    use axum::http::StatusCode;
    let billed: Vec<u16> = [200, 204, 304, 400, 401, 403, 404, 408, 422, 429, 500, 503]
        .into_iter()
        .filter(|&s| StatusCode::from_u16(s).is_ok_and(super::http::billable))
        .collect();
    assert_eq!(billed, [200, 204, 304, 404, 408, 422]);
}

#[test]
fn the_exporters_own_calls_are_left_alone_by_ticks() {
    let sim = quiet_demo();
    sim.update(|d| {
        d.bill_requests_to = Some(("4242".to_string(), "Café \"Monk's\" bot".to_string()))
    });
    for _ in 0..20 {
        sim.tick();
    }
    let billed = sim.update(|d| {
        d.orgs["4242"]
            .api
            .calls
            .iter()
            .find(|c| c.token.starts_with("Café"))
            .map(|c| c.count)
    });
    assert_eq!(billed, Some(2900.0));
}
