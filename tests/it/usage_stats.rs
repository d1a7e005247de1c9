//! The usage-statistics collectors (API calls, AI credits by feature, automation jobs,
//! integrations) against the simulator's documented Usage Stats API: exact values,
//! partial answers, per-collector schedules, and every document the exporter builds
//! validating against the simulator's schema.

use pipefy_sim::{demo_data, SimData};

use crate::helpers::{pat_config, poll, Metrics, TestApp};

const DEMO_ORGS: &str = "refresh_interval: 1h\norganizations: [2, 300, 4242]\n";

/// The demo data without the simulator billing the exporter's own requests, so that the
/// API-call figures are the seed values exactly.
fn unbilled_demo() -> SimData {
    let mut data = demo_data();
    data.bill_requests_to = None;
    data
}

fn org(m: &Metrics, id: &str, name: &str, extra: &[(&str, &str)]) -> f64 {
    let mut labels = vec![("organization_id", id)];
    labels.extend_from_slice(extra);
    m.value(name, &labels)
}

#[tokio::test]
async fn api_calls_quota_and_breakdowns_have_the_seed_values() {
    let config = pat_config(&format!(
        "{DEMO_ORGS}collectors:\n  api_usage: {{by_operation: true}}\n"
    ));
    let app = TestApp::builder(unbilled_demo())
        .config(&config)
        .spawn()
        .await;
    let m = app.cycles(1).await;

    assert_eq!(org(&m, "2", "pipefy_api_calls_used", &[]), 8130.0);
    assert_eq!(org(&m, "2", "pipefy_api_calls_limit", &[]), 50_000.0);
    assert_eq!(org(&m, "4242", "pipefy_api_calls_used", &[]), 9300.0);
    assert_eq!(org(&m, "4242", "pipefy_api_calls_limit", &[]), 10_000.0);
    assert_eq!(org(&m, "300", "pipefy_api_calls_used", &[]), 20_560.0);
    assert_eq!(
        org(&m, "300", "pipefy_api_calls_limit", &[]),
        f64::INFINITY,
        "no quota"
    );
    // Per token: the unassigned "Nightly ETL" token is the big spender of org 2.
    for (token, calls) in [
        ("Nightly ETL", 6030.0),
        ("Zapier integration", 1480.0),
        ("Reporting", 620.0),
    ] {
        assert_eq!(
            org(
                &m,
                "2",
                "pipefy_api_calls_used_by_token",
                &[("token_name", token)]
            ),
            calls,
            "{token}"
        );
    }
    assert_eq!(
        m.find(
            "pipefy_api_calls_used_by_token",
            &[("organization_id", "2")]
        )
        .len(),
        3
    );
    assert_eq!(
        org(
            &m,
            "4242",
            "pipefy_api_calls_used_by_token",
            &[("token_name", "Café \"Monk's\" bot")]
        ),
        2900.0
    );
    // Per operation, unnamed calls as Pipefy names them.
    assert_eq!(
        org(
            &m,
            "2",
            "pipefy_api_calls_used_by_operation",
            &[("operation_name", "Not specified")]
        ),
        1830.0
    );
    assert_eq!(
        org(
            &m,
            "300",
            "pipefy_api_calls_used_by_operation",
            &[("operation_name", "SyncOrders")]
        ),
        18_250.0
    );
    // The token label joins with the unassigned-token info of the same organization.
    assert_eq!(
        org(
            &m,
            "2",
            "pipefy_token_unassigned_info",
            &[("token_name", "Nightly ETL")]
        ),
        1.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn ai_credits_by_feature_automation_jobs_and_integrations() {
    let mut data = unbilled_demo();
    // Pipefy may count in fractions; the demo's own counts are whole.
    data.orgs.get_mut("4242").unwrap().automation_jobs = 1234.5;
    let app = TestApp::builder(data)
        .config(&pat_config(DEMO_ORGS))
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let feature = |id, f| {
        org(
            &m,
            id,
            "pipefy_ai_credits_used_by_feature",
            &[("feature", f)],
        )
    };
    assert_eq!(feature("2", "ai_automation"), 18.0);
    assert_eq!(feature("2", "assistants"), 7.0);
    assert_eq!(feature("300", "ai_automation"), 640.0);
    assert_eq!(feature("300", "assistants"), 260.0);
    assert_eq!(
        org(
            &m,
            "4242",
            "pipefy_ai_credits_feature_enabled",
            &[("feature", "assistants")]
        ),
        0.0
    );
    assert_eq!(
        org(
            &m,
            "4242",
            "pipefy_ai_credits_feature_enabled",
            &[("feature", "ai_automation")]
        ),
        1.0
    );
    assert_eq!(
        org(&m, "300", "pipefy_ai_credits_limit", &[]),
        f64::INFINITY
    );

    assert_eq!(org(&m, "2", "pipefy_automation_jobs_used", &[]), 3420.0);
    assert_eq!(
        org(&m, "4242", "pipefy_automation_jobs_used", &[]),
        1234.5,
        "a float usage"
    );

    assert_eq!(org(&m, "2", "pipefy_integration_tasks_used", &[]), 1150.0);
    assert_eq!(org(&m, "2", "pipefy_integration_tasks_limit", &[]), 5000.0);
    assert_eq!(org(&m, "2", "pipefy_integration_active_flows", &[]), 5.0);
    assert_eq!(
        org(&m, "4242", "pipefy_integration_tasks_limit", &[]),
        500.0
    );
    assert_eq!(
        org(&m, "300", "pipefy_integration_tasks_limit", &[]),
        f64::INFINITY,
        "a null limit"
    );
    assert_eq!(org(&m, "300", "pipefy_integration_active_flows", &[]), 12.0);
    app.shutdown().await;
}

#[tokio::test]
async fn an_organization_left_out_of_a_combined_answer_fails_only_those_collectors() {
    // 4242 has no Usage Stats permission: the combined answers drop it and set
    // `partial`, its per-organization usage fields fail; its limits and tokens (read
    // through organization(id:)) stay fresh, and the other organizations are untouched.
    let mut data = unbilled_demo();
    data.usage_stats_denied.insert("4242".into());
    let app = TestApp::builder(data)
        .config(&pat_config(DEMO_ORGS))
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let up = |id, collector| org(&m, id, "pipefy_up", &[("collector", collector)]);
    for collector in ["ai_credits", "api_usage", "automation_jobs", "integrations"] {
        assert_eq!(up("4242", collector), 0.0, "{collector}");
        assert_eq!(up("2", collector), 1.0, "{collector}");
    }
    assert_eq!(up("4242", "subscription_limits"), 1.0);
    assert_eq!(up("4242", "token_attribution"), 1.0);
    assert!(!m.has("pipefy_api_calls_used", &[("organization_id", "4242")]));
    assert_eq!(org(&m, "2", "pipefy_api_calls_used", &[]), 8130.0);
    assert_eq!(
        m.value(
            "pipefy_exporter_refreshes_total",
            &[("collector", "automation_jobs"), ("result", "partial")]
        ),
        1.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn each_collector_keeps_its_own_interval() {
    // Subscription limits every 300 ms; integrations every hour: the quick cycles never
    // ask for integrations again.
    let config = pat_config(
        "organizations: [2]\nstale_after: 1h\ncollectors:\n  subscription_limits: {interval: 300ms}\n  integrations: {interval: 1h}\n  ai_credits: false\n  api_usage: false\n  automation_jobs: false\n  token_attribution: false\n",
    );
    let app = TestApp::builder(unbilled_demo())
        .config(&config)
        .spawn()
        .await;
    let m = poll("four limits refreshes", || async {
        let m = app.metrics().await;
        (m.sum_of(
            "pipefy_exporter_refreshes_total",
            &[("collector", "subscription_limits")],
        ) >= 4.0)
            .then_some(m)
    })
    .await;
    let stats = app.sim.stats();
    assert!(stats.operations["PipefySubscriptionLimits"] >= 4);
    assert_eq!(stats.operations["PipefyIntegrations"], 1);
    assert_eq!(
        m.sum_of(
            "pipefy_exporter_refreshes_total",
            &[("collector", "integrations")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "pipefy_exporter_collector_interval_seconds",
            &[("collector", "integrations")]
        ),
        3600.0
    );
    // Still exported: an hourly collector is not stale after a few quick cycles.
    assert_eq!(org(&m, "2", "pipefy_integration_tasks_used", &[]), 1150.0);
    app.shutdown().await;
}

#[tokio::test]
async fn pipefy_bills_the_exporters_own_calls_by_operation_name() {
    // With the simulator billing every request to organization 2 under the token
    // "pipefy-exporter", a second API-usage refresh shows the first one's calls,
    // by the operation names the exporter sends.
    let config = pat_config(
        "organizations: [2]\nstale_after: 1h\ncollectors:\n  api_usage: {interval: 500ms, by_operation: true}\n  subscription_limits: {interval: 1h}\n  ai_credits: false\n  automation_jobs: false\n  integrations: false\n  token_attribution: false\n",
    );
    let app = TestApp::builder(demo_data()).config(&config).spawn().await;
    let m = poll(
        "API usage that includes the exporter's own calls",
        || async {
            let m = app.metrics().await;
            m.has(
                "pipefy_api_calls_used_by_operation",
                &[("operation_name", "PipefySubscriptionLimits")],
            )
            .then_some(m)
        },
    )
    .await;
    assert_eq!(
        org(
            &m,
            "2",
            "pipefy_api_calls_used_by_operation",
            &[("operation_name", "PipefySubscriptionLimits")]
        ),
        m.value(
            "pipefy_exporter_api_requests_total",
            &[("operation", "PipefySubscriptionLimits"), ("status", "200")]
        ),
        "Pipefy's count of the exporter's limits calls is the exporter's own count"
    );
    assert!(
        org(
            &m,
            "2",
            "pipefy_api_calls_used_by_token",
            &[("token_name", "pipefy-exporter")]
        ) >= 1.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn every_document_the_exporter_sends_validates_against_the_schema() {
    // Every option that changes a document switched on, against a simulator whose
    // schema uses only Pipefy's documented type names: any validation error (an
    // unknown field, argument or type) would fail a collector, and pipefy_up would be 0.
    let config =
        pat_config("refresh_interval: 1h\ncollectors:\n  api_usage: {by_operation: true}\n");
    let app = TestApp::builder(unbilled_demo())
        .config(&config)
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let down: Vec<_> = m
        .find("pipefy_up", &[])
        .into_iter()
        .filter(|s| s.value != 1.0)
        .collect();
    assert!(down.is_empty(), "{down:?}");
    assert_eq!(m.find("pipefy_up", &[]).len(), 3 * 6);
    let ai_per_org = pat_config(
        "refresh_interval: 1h\norganizations: [2]\ncollectors:\n  ai_credits: {source: per_organization}\n",
    );
    let app2 = TestApp::builder(unbilled_demo())
        .config(&ai_per_org)
        .spawn()
        .await;
    let m2 = app2.cycles(1).await;
    assert_eq!(org(&m2, "2", "pipefy_ai_credits_free_used", &[]), 20.0);
    assert_eq!(org(&m2, "2", "pipefy_ai_credits_free_limit", &[]), 20.0);
    assert_eq!(
        org(&m2, "2", "pipefy_up", &[("collector", "ai_credits")]),
        1.0
    );
    for query in app.sim.stats().recent_queries {
        assert!(
            !query.contains(" on "),
            "a type condition was sent: {query}"
        );
    }
    app.shutdown().await;
    app2.shutdown().await;
}
