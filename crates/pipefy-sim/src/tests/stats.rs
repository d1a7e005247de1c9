//! What the simulator counts and bills: operations, root fields and recent queries
//! (`GET /sim/stats`), and the requests billed to an organization the way Pipefy bills them.

use super::*;

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
        .filter(|&s| StatusCode::from_u16(s).is_ok_and(crate::http::billable))
        .collect();
    assert_eq!(billed, [200, 204, 304, 404, 408, 422]);
}
