//! Knowing what Pipefy accepts before paying for it: the schema check, the fallback
//! when introspection is refused, `pipefy_exporter_query_valid`, the landing page, the
//! log, `--check.pipefy`, and an operator pointing token attribution at the real field.
//!
//! The simulator serves one of three schemas ([`SimSchema`]): the exporter's guess
//! (`Organization.personalAccessTokens`), Pipefy's public reference (no token listing),
//! or tokens listed elsewhere. `SimStats::rejected` counts the requests it refused as a
//! whole (HTTP 200, errors, no data): what a wrong guess costs, since Pipefy bills them.
//! Nothing here reads the wording of a GraphQL error.

use std::collections::BTreeMap;

use pipefy_sim::{demo_data, SimSchema, Simulator};

use crate::helpers::{
    pat_config, pat_config_with, poll, run, sim_auth, spawn_simulator, write_config, Metrics,
    Running, TestApp, COLLECTORS,
};

const THREE_ORGS: &str =
    "refresh_interval: 200ms\nstale_after: 1h\norganizations: [2, 300, 4242]\n";
/// Tokens listed by the relocated schema's root field, as an operator configures them.
const RELOCATED_QUERY: &str = "collectors:\n  token_attribution:\n    query: 'tokenBillingAssignments(organizationId: $id) { token { id name } billingOrganization { id } }'\n    paths: {tokens: '', id: token.id, name: token.name, billing_organization_id: billingOrganization.id}\n";

fn counts(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
    list.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The metrics once Pipefy has rejected the token query (the rest went through),
/// refreshing between looks when `refresh` says so.
async fn until_token_query_rejected(app: &TestApp, refresh: bool) -> Metrics {
    poll("token attribution rejected", || async {
        let m = if refresh {
            app.cycles(1).await
        } else {
            app.metrics().await
        };
        (query_valid(&m, "token_attribution") == 0.0).then_some(m)
    })
    .await
}

fn query_valid(m: &Metrics, collector: &str) -> f64 {
    m.value(
        "pipefy_exporter_query_valid",
        &[("account", "default"), ("collector", collector)],
    )
}

fn up(m: &Metrics, org: &str, collector: &str) -> f64 {
    m.value(
        "pipefy_up",
        &[("organization_id", org), ("collector", collector)],
    )
}

/// Every collector but token attribution is up with its exact values, for the three
/// demo organizations.
fn the_others_are_exact(m: &Metrics) {
    for org in ["2", "300", "4242"] {
        for collector in &COLLECTORS[..5] {
            assert_eq!(up(m, org, collector), 1.0, "{org} {collector}");
        }
    }
    let limit = |org, resource| {
        m.value(
            "pipefy_subscription_limit",
            &[("organization_id", org), ("resource", resource)],
        )
    };
    assert_eq!(limit("2", "pipes"), 5.0);
    assert_eq!(limit("4242", "users"), 5.0);
    assert_eq!(
        m.value("pipefy_ai_credits_used", &[("organization_id", "2")]),
        25.0
    );
    assert!(m.has("pipefy_api_calls_limit", &[("organization_id", "300")]));
    assert!(m.has(
        "pipefy_integration_tasks_used",
        &[("organization_id", "4242")]
    ));
}

/// Token attribution of organization 4242 (one token unassigned, one assigned).
fn tokens_of_4242(m: &Metrics) -> (f64, f64) {
    let tokens = |billing| {
        m.value(
            "pipefy_tokens",
            &[("organization_id", "4242"), ("billing", billing)],
        )
    };
    (tokens("unassigned"), tokens("assigned"))
}

#[tokio::test]
async fn without_the_token_field_the_token_query_is_never_sent() {
    let app = TestApp::builder(demo_data())
        .prepare(|sim| sim.set_schema(SimSchema::Public))
        .config(&pat_config(THREE_ORGS))
        .spawn()
        .await;
    let m = app.cycles(4).await;
    let stats = app.sim.stats();
    // One introspection for four refreshes and more: the check is once per period.
    assert_eq!(stats.operations.get("PipefySchemaCheck"), Some(&1));
    // Nothing refused, so nothing billed for nothing; the token query was never sent.
    assert_eq!(stats.rejected, counts(&[]));
    assert!(stats
        .recent_queries
        .iter()
        .all(|q| !q.contains("personalAccessTokens")));
    assert_eq!(query_valid(&m, "token_attribution"), 0.0);
    for collector in &COLLECTORS[..5] {
        assert_eq!(query_valid(&m, collector), 1.0, "{collector}");
    }
    for org in ["2", "300", "4242"] {
        assert_eq!(up(&m, org, "token_attribution"), 0.0);
    }
    assert!(!m.has("pipefy_tokens", &[]));
    the_others_are_exact(&m);
    assert_eq!(
        m.value(
            "pipefy_exporter_refreshes_total",
            &[("collector", "token_attribution"), ("result", "success")]
        ),
        0.0
    );
    // The landing page says why, once, where it is read first.
    let page = app.get("/").await.text().await.unwrap();
    assert!(
        page.contains(
            "<li data-collector=\"token_attribution\"><strong>token_attribution</strong> (account default): \
             Organization.personalAccessTokens: Pipefy&#39;s schema has no field personalAccessTokens on type Organization</li>"
        ),
        "{page}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn when_pipefy_refuses_introspection_a_wrong_guess_costs_one_request() {
    let app = TestApp::builder(demo_data())
        .prepare(|sim| {
            sim.set_schema(SimSchema::Public);
            sim.set_introspection(false);
        })
        .config(&pat_config(THREE_ORGS))
        .spawn()
        .await;
    // Until Pipefy has rejected the token query and the rest went through.
    let m = until_token_query_rejected(&app, true).await;
    assert_eq!(
        m.value(
            "pipefy_exporter_query_valid",
            &[("collector", "subscription_limits")]
        ),
        1.0
    );
    let first = app.sim.stats();
    let m = app.cycles(m.refreshes() as u64 + 3).await;
    let stats = app.sim.stats();
    // The refused introspection, and one of the token query's root fields sent alone
    // (a probe) while the others waited: each rejected document billed once, and
    // nothing more in the three refreshes after.
    assert_eq!(
        stats.rejected,
        counts(&[("PipefySchemaCheck", 1), ("PipefyTokenAttribution", 1)])
    );
    assert_eq!(first.rejected, stats.rejected);
    assert!(stats.graphql_requests > first.graphql_requests);
    assert_eq!(query_valid(&m, "token_attribution"), 0.0);
    the_others_are_exact(&m);
    app.shutdown().await;
}

#[tokio::test]
async fn with_introspection_off_a_wrong_guess_costs_one_request() {
    let config = pat_config_with("  introspection: false\n", THREE_ORGS);
    let app = TestApp::builder(demo_data())
        .prepare(|sim| sim.set_schema(SimSchema::Public))
        .config(&config)
        .spawn()
        .await;
    let m = until_token_query_rejected(&app, true).await;
    let m = app.cycles(m.refreshes() as u64 + 3).await;
    let stats = app.sim.stats();
    assert_eq!(stats.operations.get("PipefySchemaCheck"), None);
    assert_eq!(stats.rejected, counts(&[("PipefyTokenAttribution", 1)]));
    the_others_are_exact(&m);
    app.shutdown().await;
}

#[tokio::test]
async fn a_field_dropped_while_running_costs_each_rejected_document_once() {
    let app = TestApp::builder(demo_data())
        .config(&pat_config(THREE_ORGS))
        .spawn()
        .await;
    let m = app.cycles(2).await;
    assert_eq!(tokens_of_4242(&m), (1.0, 1.0));
    assert_eq!(query_valid(&m, "token_attribution"), 1.0);
    // Pipefy drops the field: the schema check passed at start, so the next shared
    // request is refused as a whole.
    app.sim.set_schema(SimSchema::Public);
    let m = until_token_query_rejected(&app, false).await;
    let m = app.cycles(m.refreshes() as u64 + 3).await;
    let stats = app.sim.stats();
    // The refused shared request, then each collector's document alone with one root
    // field: only token attribution's is refused. Both documents billed once; none
    // since, and no second introspection.
    assert_eq!(
        stats.rejected,
        counts(&[("PipefyRefresh", 1), ("PipefyTokenAttribution", 1)])
    );
    assert_eq!(stats.operations.get("PipefySchemaCheck"), Some(&1));
    the_others_are_exact(&m);
    // Its last good values are kept (marked stale: up is 0) until stale_after.
    assert_eq!(up(&m, "4242", "token_attribution"), 0.0);
    assert_eq!(tokens_of_4242(&m), (1.0, 1.0));
    app.shutdown().await;
}

#[tokio::test]
async fn the_field_appears_and_a_reload_brings_token_attribution_back() {
    let app = TestApp::builder(demo_data())
        .prepare(|sim| sim.set_schema(SimSchema::Public))
        .config(&pat_config(THREE_ORGS))
        .lifecycle()
        .spawn()
        .await;
    let m = app.cycles(1).await;
    assert_eq!(query_valid(&m, "token_attribution"), 0.0);
    app.sim.set_schema(SimSchema::Guessed);
    let response = app.http.post(app.url("/-/reload")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let m = poll("token attribution back", || async {
        let m = app.metrics().await;
        (m.has("pipefy_tokens", &[]) && up(&m, "4242", "token_attribution") == 1.0).then_some(m)
    })
    .await;
    assert_eq!(query_valid(&m, "token_attribution"), 1.0);
    assert_eq!(tokens_of_4242(&m), (1.0, 1.0));
    assert_eq!(
        m.value(
            "pipefy_tokens",
            &[("organization_id", "2"), ("billing", "unassigned")]
        ),
        2.0
    );
    let stats = app.sim.stats();
    assert_eq!(
        stats.operations.get("PipefySchemaCheck"),
        Some(&2),
        "start and reload"
    );
    assert_eq!(stats.rejected, counts(&[]));
    let page = app.get("/").await.text().await.unwrap();
    assert!(!page.contains("Queries not sent"), "{page}");
    app.shutdown().await;
}

#[tokio::test]
async fn one_warning_names_the_collector_the_type_and_the_field() {
    let sim = Simulator::new(demo_data(), sim_auth(std::time::Duration::from_secs(3600)));
    sim.set_schema(SimSchema::Public);
    let server = spawn_simulator(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&pat_config(THREE_ORGS), &server, dir.path());
    let exporter = Running::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--web.listen-address",
        "127.0.0.1:0",
    ]);
    let address = exporter.address().await;
    let http = reqwest::Client::new();
    poll("four refreshes", || async {
        let text = http
            .get(format!("http://{address}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (Metrics::parse(&text).refreshes() >= 4.0).then_some(())
    })
    .await;
    let logs = exporter.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("does not match Pipefy's schema"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    for part in [
        "level=warn",
        "account=default",
        "collector=token_attribution",
        "type=Organization",
        "field=personalAccessTokens",
    ] {
        assert!(warnings[0].contains(part), "{part} in {}", warnings[0]);
    }
}

/// Runs `--check.pipefy` with `config` against `sim`, off the runtime's threads.
async fn check_pipefy(sim: &Simulator, config: &str) -> crate::helpers::Exit {
    let server = spawn_simulator(sim).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(config, &server, dir.path());
    tokio::task::spawn_blocking(move || {
        let _dir = dir;
        run(&["--check.pipefy", "--config.file", file.to_str().unwrap()])
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_pipefy_succeeds_when_everything_will_work() {
    let sim = Simulator::new(demo_data(), sim_auth(std::time::Duration::from_secs(3600)));
    let exit = check_pipefy(&sim, &pat_config("organizations: [2, 300, 4242]\n")).await;
    assert_eq!(exit.code, 0, "{}{}", exit.stdout, exit.stderr);
    let lines: Vec<&str> = exit.stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "account default: authenticated",
            &format!(
                "account default: schema introspected: {} types",
                sim_types(&exit.stdout)
            ),
            "  collector subscription_limits: OK",
            "  collector ai_credits: OK",
            "  collector api_usage: OK",
            "  collector automation_jobs: OK",
            "  collector integrations: OK",
            "  collector token_attribution: OK",
            "  organization 2 (Vandeley Industries): OK",
            "  organization 300 (Kramerica Industries): OK",
            "  organization 4242 (Pendant Publishing): OK",
            "account default: billed requests: 2 (PipefyPreflight 1, PipefySchemaCheck 1)",
            "SUCCESS: every enabled collector and organization will work",
        ]
    );
    // 2 billed requests: exactly what the simulator answered.
    assert_eq!(sim.stats().graphql_requests, 2);
}

/// The number of types the check reported (the simulator's, built-in ones included).
fn sim_types(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("account default: schema introspected: "))
        .and_then(|rest| rest.strip_suffix(" types"))
        .unwrap_or("?")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_pipefy_names_what_will_not_work_and_where_tokens_may_be() {
    let mut data = demo_data();
    data.denied.insert("300".into());
    data.usage_stats_denied.insert("4242".into());
    let sim = Simulator::new(data, sim_auth(std::time::Duration::from_secs(3600)));
    sim.set_schema(SimSchema::Relocated);
    let exit = check_pipefy(&sim, &pat_config("organizations: [2, 300, 4242]\n")).await;
    assert_eq!(exit.code, 1, "{}{}", exit.stdout, exit.stderr);
    let wanted = [
        "  collector subscription_limits: OK",
        "  collector token_attribution: FAILED: Organization.personalAccessTokens: Pipefy's schema has no field personalAccessTokens on type Organization",
        "  fields of Pipefy's schema that may list tokens (point collectors.token_attribution.query and paths at the right one):",
        "    Sim_Query_z0q.tokenBillingAssignments(organizationId: ID!): [Sim_TokenAssignment_r4m!]",
        "    Sim_TokenAssignment_r4m.billingOrganization: Sim_BillingOrganization_b9c",
        "    Sim_TokenAssignment_r4m.token: Sim_AssignedToken_v7d!",
        "  organization 2 (Vandeley Industries): OK",
        "  organization 300: FAILED: not readable with this credential (no access, or no such organization)",
        "  organization 4242 (Pendant Publishing): FAILED: no Usage Stats permission here, which ai_credits, api_usage, automation_jobs, integrations need",
        "account default: billed requests: 2 (PipefyPreflight 1, PipefySchemaCheck 1)",
        "FAILED: 3 problem(s); the exporter would run, but not export all that is configured",
    ];
    for line in wanted {
        assert!(
            exit.stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{}",
            exit.stdout
        );
    }
    assert!(exit
        .stderr
        .contains("--check.pipefy found 3 problem(s) (listed above)"));
    assert_eq!(sim.stats().graphql_requests, 2);
    assert_eq!(sim.stats().rejected, counts(&[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_points_token_attribution_at_the_real_field() {
    // What --check.pipefy showed above, configured: the check passes...
    let sim = Simulator::new(demo_data(), sim_auth(std::time::Duration::from_secs(3600)));
    sim.set_schema(SimSchema::Relocated);
    let config = pat_config(&format!(
        "organizations: [2, 300, 4242]\nrefresh_interval: 200ms\nstale_after: 1h\n{RELOCATED_QUERY}"
    ));
    let exit = check_pipefy(&sim, &config).await;
    assert_eq!(exit.code, 0, "{}", exit.stdout);
    assert!(exit.stdout.contains("  collector token_attribution: OK\n"));
    // ...and the exporter counts the tokens from there, sharing requests.
    let app = TestApp::builder(demo_data())
        .prepare(|sim| sim.set_schema(SimSchema::Relocated))
        .config(&config)
        .spawn()
        .await;
    let m = app.cycles(2).await;
    assert_eq!(query_valid(&m, "token_attribution"), 1.0);
    assert_eq!(tokens_of_4242(&m), (1.0, 1.0));
    assert_eq!(
        m.value(
            "pipefy_tokens",
            &[("organization_id", "2"), ("billing", "unassigned")]
        ),
        2.0
    );
    assert!(m.has(
        "pipefy_token_unassigned_info",
        &[
            ("organization_id", "2"),
            ("token_id", "t-202"),
            ("token_name", "Nightly ETL")
        ]
    ));
    the_others_are_exact(&m);
    assert_eq!(app.sim.stats().rejected, counts(&[]));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_pipefy_without_a_schema_says_nothing_is_checked() {
    let sim = Simulator::new(demo_data(), sim_auth(std::time::Duration::from_secs(3600)));
    sim.set_introspection(false);
    let exit = check_pipefy(&sim, &pat_config("organizations: [2]\n")).await;
    assert_eq!(exit.code, 1, "{}", exit.stdout);
    assert!(
        exit.stdout.lines().any(|l| l.starts_with(
            "  collector token_attribution: NOT CHECKED: Pipefy refused introspection: "
        )),
        "{}",
        exit.stdout
    );
    assert!(exit
        .stdout
        .contains("account default: billed requests: 2 (PipefyPreflight 1, PipefySchemaCheck 1)"));
    assert!(exit.stdout.contains("FAILED: 6 problem(s)"));
}
