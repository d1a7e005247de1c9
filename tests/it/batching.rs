//! What monitoring costs in API calls: batching, variables, discovery, and scrapes
//! that never reach Pipefy.

use pipefy_exporter::simulator::{demo_data, SimData};

use crate::helpers::{pat_config, pat_config_with, TestApp};

fn ids(n: usize) -> String {
    let ids: Vec<String> = (1000..1000 + n).map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", ids.join(", "))
}

#[tokio::test]
async fn one_hundred_twenty_organizations_with_every_collector_cost_fourteen_requests() {
    let config = pat_config(&format!(
        "refresh_interval: 1h\norganizations: {}\n",
        ids(120)
    ));
    let app = TestApp::builder(SimData::generated(120))
        .config(&config)
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let stats = app.sim.stats();

    // 50 root fields a request: one per organization, or one per 25 organizations
    // for the combined usage-statistics forms.
    let expected = [
        ("PipefySubscriptionLimits", 3), // 120 organization(id:)
        ("PipefyAiCredits", 1),          // 5 aiCreditUsageStatsCombined
        ("PipefyApiUsage", 3),           // 5 apiUsageStatsCombined + 120 apiUsageStats(token)
        ("PipefyAutomationJobs", 1),     // 5 automationsUsageDetailsCombined
        ("PipefyIntegrations", 3),       // 120 integrationsUsageStats
        ("PipefyTokenAttribution", 3),   // 120 organization(id:)
    ];
    assert_eq!(stats.graphql_requests, 14);
    for (operation, requests) in expected {
        assert_eq!(
            stats.operations.get(operation),
            Some(&requests),
            "{operation}"
        );
        // The exporter counts the same calls.
        assert_eq!(
            m.value(
                "pipefy_exporter_api_requests_total",
                &[("operation", operation), ("status", "200")]
            ),
            requests as f64,
            "{operation}"
        );
    }
    assert_eq!(stats.root_fields.get("organization"), Some(&240));
    assert_eq!(
        stats.root_fields.get("aiCreditUsageStatsCombined"),
        Some(&5)
    );
    assert_eq!(stats.root_fields.get("apiUsageStatsCombined"), Some(&5));
    assert_eq!(stats.root_fields.get("apiUsageStats"), Some(&120));
    assert_eq!(
        stats.root_fields.get("automationsUsageDetailsCombined"),
        Some(&5)
    );
    assert_eq!(stats.root_fields.get("integrationsUsageStats"), Some(&120));
    assert_eq!(
        stats.max_combined_uuids, 25,
        "never a 26th uuid in one call"
    );
    assert_eq!(m.find("pipefy_organization_info", &[]).len(), 120);
    assert_eq!(
        m.find("pipefy_up", &[])
            .iter()
            .filter(|s| s.value == 1.0)
            .count(),
        720
    );
    // Ids travel as variables, never in the query text.
    assert_eq!(stats.recent_queries.len(), 14);
    for query in &stats.recent_queries {
        for id in 1000..1120 {
            assert!(
                !query.contains(&id.to_string()),
                "id {id} spliced into {query}"
            );
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn batch_size_and_concurrency_are_configurable() {
    let config = pat_config_with(
        "  max_orgs_per_request: 10\n  max_concurrent_requests: 1\n",
        &format!("refresh_interval: 1h\norganizations: {}\n", ids(25)),
    );
    let app = TestApp::builder(SimData::generated(25))
        .config(&config)
        .spawn()
        .await;
    app.cycles(1).await;
    let stats = app.sim.stats();
    assert_eq!(stats.operations.get("PipefySubscriptionLimits"), Some(&3));
    assert_eq!(stats.operations.get("PipefyAiCredits"), Some(&1));
    assert_eq!(
        stats.operations.get("PipefyApiUsage"),
        Some(&3),
        "1 + 25 fields"
    );
    assert_eq!(stats.operations.get("PipefyIntegrations"), Some(&3));
    assert_eq!(stats.operations.get("PipefyTokenAttribution"), Some(&3));
    app.shutdown().await;
}

#[tokio::test]
async fn organizations_are_discovered_when_not_listed() {
    let app = TestApp::builder(demo_data())
        .config(&pat_config("refresh_interval: 1h\n"))
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let mut found: Vec<(String, String)> = m
        .find("pipefy_organization_info", &[])
        .iter()
        .map(|s| {
            (
                s.labels["organization_id"].clone(),
                s.labels["organization_name"].clone(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("2".into(), "Vandeley Industries".into()),
            ("300".into(), "Kramerica Industries".into()),
            ("4242".into(), "Pendant Publishing".into()),
        ]
    );
    let stats = app.sim.stats();
    assert_eq!(stats.operations.get("PipefyOrganizations"), Some(&1));
    assert_eq!(
        stats.graphql_requests, 7,
        "discovery + one batch per collector"
    );
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &[("organization_id", "4242"), ("resource", "users")]
        ),
        5.0
    );
    assert_eq!(
        m.value(
            "pipefy_exporter_api_requests_total",
            &[("operation", "PipefyOrganizations"), ("status", "200")]
        ),
        1.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn disabled_collectors_cost_nothing() {
    let config = pat_config(
        "refresh_interval: 1h\norganizations: [2]\ncollectors:\n  subscription_limits: false\n  token_attribution:\n    enabled: false\n  api_usage: false\n  automation_jobs: {enabled: false}\n  integrations: false\n",
    );
    let app = TestApp::builder(demo_data()).config(&config).spawn().await;
    let m = app.cycles(1).await;
    let stats = app.sim.stats();
    // AI credits need the uuid: one identity request, then one AI request.
    assert_eq!(stats.operations.get("PipefyOrganizationInfo"), Some(&1));
    assert_eq!(stats.operations.get("PipefyAiCredits"), Some(&1));
    assert_eq!(stats.graphql_requests, 2);
    assert_eq!(
        m.value("pipefy_ai_credits_used", &[("organization_id", "2")]),
        25.0
    );
    assert!(!m.has("pipefy_subscription_limit", &[]));
    assert!(!m.has("pipefy_tokens", &[]));
    assert_eq!(m.find("pipefy_up", &[]).len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn one_hundred_scrapes_cause_zero_upstream_requests() {
    let app = TestApp::builder(demo_data())
        .config(&pat_config(
            "refresh_interval: 1h\norganizations: [2, 300]\n",
        ))
        .spawn()
        .await;
    app.cycles(1).await;
    let before = app.sim.stats();
    for i in 0..100 {
        let path = if i % 10 == 0 { "/" } else { "/metrics" };
        assert_eq!(app.get(path).await.status(), 200);
    }
    let after = app.sim.stats();
    assert_eq!(after.graphql_requests, before.graphql_requests);
    assert_eq!(after.graphql_requests, 6, "one per collector");
    assert_eq!(after.token_requests, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn an_organization_two_accounts_see_is_fetched_once() {
    // Two accounts that both discover the same three organizations: each is fetched
    // (and paid for) by the first account only.
    let config = "pipefy:\n  endpoint: {endpoint}\nrefresh_interval: 1h\naccounts:\n  - name: first\n    auth: {token_file: '{token_file}'}\n  - name: second\n    auth: {token_file: '{token_file}'}\n";
    let app = TestApp::builder(demo_data()).config(config).spawn().await;
    let m = app.cycles(1).await;
    let stats = app.sim.stats();
    assert_eq!(stats.operations.get("PipefyOrganizations"), Some(&2));
    assert_eq!(stats.operations.get("PipefySubscriptionLimits"), Some(&1));
    assert_eq!(stats.operations.get("PipefyAiCredits"), Some(&1));
    assert_eq!(stats.operations.get("PipefyTokenAttribution"), Some(&1));
    assert_eq!(stats.operations.get("PipefyApiUsage"), Some(&1));
    assert_eq!(stats.graphql_requests, 8);
    assert_eq!(m.find("pipefy_organization_info", &[]).len(), 3);
    assert_eq!(
        m.value(
            "pipefy_subscription_used",
            &[("organization_id", "300"), ("resource", "users")]
        ),
        180.0
    );
    app.shutdown().await;
}
