//! What monitoring costs in API calls: batching, variables, discovery, and scrapes
//! that never reach Pipefy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pipefy_exporter::testing::Config;
use pipefy_exporter::testing::SelfMetrics;
use pipefy_exporter::testing::{merge, Snapshot};
use pipefy_exporter::testing::{Due, RefreshOutcome, Refresher};
use pipefy_sim::{demo_data, SimAuth, SimData, SimServer, SimStats, Simulator};

use crate::helpers::{pat_config, pat_config_with, TestApp};

fn ids(n: usize) -> String {
    let ids: Vec<String> = (1000..1000 + n).map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", ids.join(", "))
}

#[tokio::test]
async fn one_hundred_twenty_organizations_with_every_collector_cost_two_requests_after_the_schema_check(
) {
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

    // Requests are filled up to Pipefy's complexity limit of 50,000 (lists counted 50
    // times), whatever their collector. The schema check (one introspection) validated
    // every query first, so token attribution shares requests from the first refresh.
    // The first refresh has two rounds, as the uuids come from the subscription limits:
    // 120 organization(id:) with limits and tokens (358 each, 42,960), then
    // 5 aiCreditUsageStatsCombined × 553, 5 apiUsageStatsCombined × 203,
    // 120 apiUsageStats(token) × 103, 5 automationsUsageDetailsCombined × 153 and
    // 120 integrationsUsageStats × 5 (17,505).
    let expected = [("PipefySchemaCheck", 1), ("PipefyRefresh", 2)];
    assert_eq!(stats.graphql_requests, 3);
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
    assert_eq!(stats.root_fields.get("organization"), Some(&120));
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
    assert_eq!(stats.recent_queries.len(), 3);
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
    // At most 10 root fields a request, though they would fit the complexity budget:
    // limits and tokens of 25 organizations (one alias each) in 3 requests; then AI
    // credits 1, API usage 1 + 25, automation jobs 1 and integrations 25, the costliest
    // first: AI, API and automations' combined fields with 7 of API usage's, 10 of API
    // usage's, its last 8 with 2 of integrations', then integrations' 23 in 3 requests.
    assert_eq!(stats.operations.get("PipefySchemaCheck"), Some(&1));
    assert_eq!(stats.operations.get("PipefyRefresh"), Some(&(3 + 2)));
    assert_eq!(stats.operations.get("PipefyApiUsage"), Some(&1));
    assert_eq!(stats.operations.get("PipefyIntegrations"), Some(&3));
    assert_eq!(stats.graphql_requests, 10);
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
        stats.graphql_requests, 3,
        "the schema check, discovery, then one request for every collector"
    );
    assert_eq!(stats.operations.get("PipefyRefresh"), Some(&1));
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
    // The schema check, then AI credits, which need the uuid: one identity request,
    // then one AI request.
    assert_eq!(stats.operations.get("PipefyOrganizationInfo"), Some(&1));
    assert_eq!(stats.operations.get("PipefyAiCredits"), Some(&1));
    assert_eq!(stats.graphql_requests, 3);
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
    assert_eq!(
        after.graphql_requests, 3,
        "the schema check and the first refresh's two"
    );
    assert_eq!(after.token_requests, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn an_organization_two_accounts_see_is_fetched_once() {
    // Two accounts that both discover the same three organizations: each is fetched
    // (and paid for) by the first account only. Each account checks its queries against
    // the schema (what a credential may see is its own).
    let config = "pipefy:\n  endpoint: {endpoint}\nrefresh_interval: 1h\naccounts:\n  - name: first\n    auth: {token_file: '{token_file}'}\n  - name: second\n    auth: {token_file: '{token_file}'}\n";
    let app = TestApp::builder(demo_data()).config(config).spawn().await;
    let m = app.cycles(1).await;
    let stats = app.sim.stats();
    assert_eq!(stats.operations.get("PipefySchemaCheck"), Some(&2));
    assert_eq!(stats.operations.get("PipefyOrganizations"), Some(&2));
    assert_eq!(stats.operations.get("PipefyRefresh"), Some(&1));
    assert_eq!(stats.graphql_requests, 5);
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

/// The requests the simulator saw between two reads of its stats, by operation.
fn delta(before: &SimStats, after: &SimStats) -> Vec<(String, u64)> {
    after
        .operations
        .iter()
        .map(|(op, n)| {
            (
                op.clone(),
                n - before.operations.get(op).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The refresher alone against a simulator on loopback, driven refresh by refresh (no
/// schedule, so that what each refresh sends is counted exactly), for `n` generated
/// organizations and the `collectors:` section given.
struct Driven {
    sim: Simulator,
    _server: SimServer,
    refresher: Refresher,
    snapshot: Snapshot,
}

impl Driven {
    async fn new(data: SimData, organizations: &str, rest: &str) -> Driven {
        Driven::with_pipefy(data, organizations, "", rest).await
    }

    /// [`Driven::new`] with `pipefy_keys` (indented by two spaces) in the `pipefy:`
    /// block.
    async fn with_pipefy(
        data: SimData,
        organizations: &str,
        pipefy_keys: &str,
        rest: &str,
    ) -> Driven {
        let sim = Simulator::new(data, SimAuth::open());
        let server = sim
            .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await
            .unwrap();
        let yaml = format!(
            "pipefy:\n  endpoint: {}\n{pipefy_keys}organizations: {organizations}\n{rest}",
            server.graphql_url()
        );
        let config = Config::from_yaml(&yaml, "test.yml".as_ref(), &|name| {
            (name == "PIPEFY_TOKEN").then(|| "test".to_string())
        })
        .unwrap();
        let refresher =
            Refresher::standalone(Arc::new(config), Arc::new(SelfMetrics::default())).unwrap();
        Driven {
            sim,
            _server: server,
            refresher,
            snapshot: Snapshot::default(),
        }
    }

    /// One refresh of `collectors` (every one when empty); the requests it sent.
    async fn refresh(&mut self, collectors: &[&str]) -> (SimStats, RefreshOutcome) {
        let before = self.sim.stats();
        let outcome = if collectors.is_empty() {
            self.refresher.refresh(&self.snapshot, Due::All).await
        } else {
            self.refresher
                .refresh(&self.snapshot, Due::Only(collectors))
                .await
        };
        self.snapshot = merge(
            &self.snapshot,
            outcome.orgs.clone(),
            outcome.outcomes.clone(),
            SystemTime::now(),
        );
        let after = self.sim.stats();
        let mut sent = after.clone();
        sent.operations = delta(&before, &after).into_iter().collect();
        sent.graphql_requests = after.graphql_requests - before.graphql_requests;
        sent.too_complex = after.too_complex - before.too_complex;
        sent.recent_queries = after.recent_queries[before.recent_queries.len()..].to_vec();
        (sent, outcome)
    }
}

fn ops(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
    list.iter().map(|(op, n)| (op.to_string(), *n)).collect()
}

fn all_ok(outcome: &RefreshOutcome) -> bool {
    outcome.outcomes.iter().all(|o| o.result.is_ok())
}

#[tokio::test]
async fn from_the_second_refresh_every_collector_shares_the_same_requests() {
    let mut d = Driven::new(SimData::generated(120), &ids(120), "").await;
    let (first, outcome) = d.refresh(&[]).await;
    // The schema check, limits and tokens, then the usage statistics (uuids now known).
    assert_eq!(
        first.operations,
        ops(&[("PipefySchemaCheck", 1), ("PipefyRefresh", 2)])
    );
    assert!(all_ok(&outcome));
    let (second, outcome) = d.refresh(&[]).await;
    // 120 × 358 (limits and tokens in one alias per organization) + 5 × 553 + 5 × 203
    // + 120 × 103 + 5 × 153 + 120 × 5 = 60,465: two requests of at most 50,000, no
    // identity request (the uuids are known).
    assert_eq!(second.operations, ops(&[("PipefyRefresh", 2)]));
    assert_eq!(second.too_complex, 0);
    assert!(second.max_complexity_answered <= 50_000);
    assert_eq!(outcome.outcomes.len(), 720);
    assert!(all_ok(&outcome));
}

#[tokio::test]
async fn limits_and_tokens_share_an_alias_when_both_are_due_and_not_otherwise() {
    let mut d = Driven::new(demo_data(), "[2]", LIMITS_AND_TOKENS).await;
    // The schema check validated the (assumed) token query: it shares at once.
    let (first, _) = d.refresh(&[]).await;
    assert_eq!(
        first.operations,
        ops(&[("PipefySchemaCheck", 1), ("PipefyRefresh", 1)])
    );
    let (only_limits, outcome) = d.refresh(&["subscription_limits"]).await;
    assert_eq!(
        only_limits.operations,
        ops(&[("PipefySubscriptionLimits", 1)])
    );
    assert!(!only_limits.recent_queries[0].contains("personalAccessTokens"));
    assert!(all_ok(&outcome));
    let (only_tokens, _) = d.refresh(&["token_attribution"]).await;
    assert_eq!(
        only_tokens.operations,
        ops(&[("PipefyTokenAttribution", 1)])
    );
    assert!(!only_tokens.recent_queries[0].contains("activeSubscription"));
    let (both, outcome) = d.refresh(&[]).await;
    assert_eq!(both.operations, ops(&[("PipefyRefresh", 1)]));
    assert_eq!(
        both.recent_queries,
        vec!["query PipefyRefresh($a0_id: ID!) { a0: organization(id: $a0_id) { id uuid name planName activeSubscription { limits { resource limit used } } personalAccessTokens { id name billingOrganization { id } } } }"]
    );
    // Both collectors decoded the shared answer.
    assert_eq!(outcome.outcomes.len(), 2);
    assert!(all_ok(&outcome));
}

#[tokio::test]
async fn usage_statistics_share_requests_when_due_together_and_not_otherwise() {
    let mut d = Driven::new(SimData::generated(30), &ids(30), "").await;
    d.refresh(&[]).await;
    let (together, _) = d.refresh(&["ai_credits", "automation_jobs"]).await;
    assert_eq!(together.operations, ops(&[("PipefyRefresh", 1)]));
    assert_eq!(
        together.recent_queries[0].matches("Combined(").count(),
        4,
        "2 × 25-uuid chunks of each"
    );
    let (alone, _) = d.refresh(&["automation_jobs"]).await;
    assert_eq!(alone.operations, ops(&[("PipefyAutomationJobs", 1)]));
    assert!(!alone.recent_queries[0].contains("aiCredit"));
}

/// How many organizations each uuid-keyed or id-keyed field named, per key, between two
/// stats: what one refresh asked about.
fn asked_per_key(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<u64, usize> {
    let mut times: BTreeMap<u64, usize> = BTreeMap::new();
    for (key, count) in after {
        let asked = count - before.get(key).copied().unwrap_or(0);
        if asked > 0 {
            *times.entry(asked).or_default() += 1;
        }
    }
    times
}

#[tokio::test]
async fn more_organizations_than_one_fetch_covers_are_fetched_in_windows_each_asked_once() {
    // 2,500 organizations: a window of 2,000 (ORGS_PER_FETCH), then one of 500, each
    // packing its own requests.
    let mut d = Driven::new(SimData::generated(2500), &ids(2500), "").await;
    let (_, outcome) = d.refresh(&[]).await;
    assert_eq!(outcome.outcomes.len(), 2500 * 6);
    assert!(all_ok(&outcome));
    let before = d.sim.stats();
    let (second, outcome) = d.refresh(&[]).await;
    let after = d.sim.stats();
    // Per organization 358 (limits and tokens in one alias), 103 (its token's calls)
    // and 5 (integrations), and per 25 of them 553, 203 and 153 (combined statistics):
    // the first window's 6,240 root fields weigh 1,004,720, at least 21 requests of
    // 50,000 and 500 fields; the second's 1,560 weigh 251,180, at least 6. Packed
    // largest first, the integrations' light fields come last and fill requests of
    // their own up to 500 fields, whence the operation names.
    assert_eq!(
        second.operations,
        ops(&[("PipefyIntegrations", 5), ("PipefyRefresh", 25)])
    );
    assert_eq!(second.too_complex, 0);
    assert_eq!(outcome.outcomes.len(), 2500 * 6);
    assert!(all_ok(&outcome));
    // Every organization asked about once by id (limits and tokens share its alias)
    // and five times by uuid (three combined fields, its token's calls, integrations):
    // no window drops one, and none asks about another window's organizations.
    assert_eq!(
        asked_per_key(&before.organization_ids, &after.organization_ids),
        BTreeMap::from([(1, 2500)])
    );
    assert_eq!(
        asked_per_key(&before.organization_uuids, &after.organization_uuids),
        BTreeMap::from([(5, 2500)])
    );
    // Values of the last organization, in the second window, are its own.
    let last = &d.snapshot.orgs["3499"];
    assert_eq!(last.meta.name, "Org 3499");
    assert_eq!(
        last.meta.uuid.as_deref(),
        Some("00000000-0000-4000-8000-000000003499")
    );
}

/// 2,500 organizations (two fetch windows), one request at a time so that an injected
/// 429 comes before anything else is sent, after a first refresh (identities known).
async fn two_windows_one_request_at_a_time() -> Driven {
    let mut d = Driven::with_pipefy(
        SimData::generated(2500),
        &ids(2500),
        "  max_concurrent_requests: 1\n",
        "",
    )
    .await;
    d.refresh(&[]).await;
    d
}

#[tokio::test]
async fn a_long_retry_after_in_the_first_window_spends_nothing_on_the_next() {
    let mut d = two_windows_one_request_at_a_time().await;
    let before = d.sim.stats();
    d.sim.fail_next(1, 429, Some(600));
    let (throttled, outcome) = d.refresh(&[]).await;
    let after = d.sim.stats();
    assert_eq!(throttled.graphql_requests, 1, "only the throttled request");
    assert_eq!(before.organization_ids, after.organization_ids);
    assert_eq!(before.organization_uuids, after.organization_uuids);
    let retry_after = outcome.retry_after.expect("the refresh reports the wait");
    assert!(
        (Duration::from_secs(599)..=Duration::from_secs(600)).contains(&retry_after),
        "{retry_after:?}"
    );
    // Every collector of every organization failed: the throttled request's fields
    // with the 429, everything else, in both windows, unsent.
    assert_eq!(outcome.outcomes.len(), 2500 * 6);
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &outcome.outcomes {
        let error = o.result.as_ref().expect_err("nothing succeeds");
        let kind = if error.starts_with("rate limited (HTTP 429), retry after 600s") {
            "429"
        } else if error.starts_with("not sent: Pipefy asked to wait") {
            "unsent"
        } else {
            error
        };
        *errors.entry(kind).or_default() += 1;
    }
    // The throttled request was the first-window request packed first, with the
    // heaviest fields that fit in 50,000: the 80 combined AI-credit fields (44,240, the
    // AI credits of 2,000 organizations), 16 organization aliases (5,728: limits and
    // tokens of 16) and 6 integrations fields (30).
    assert_eq!(
        errors,
        BTreeMap::from([("429", 2000 + 16 * 2 + 6), ("unsent", 2500 * 6 - 2038)])
    );
    // The organizations of the second window were not asked: their last good values
    // from the first refresh are kept.
    let last = &d.snapshot.orgs["3499"];
    assert!(!last.collectors["subscription_limits"].up);
    assert!(last.collectors["subscription_limits"].value.is_some());
}

#[tokio::test]
async fn a_short_retry_after_in_the_first_window_is_waited_out_and_the_next_is_sent() {
    let mut d = two_windows_one_request_at_a_time().await;
    d.sim.fail_next(1, 429, Some(1));
    let (throttled, outcome) = d.refresh(&[]).await;
    // The 30 requests of a steady refresh (see the test above), the first answered with
    // the 429: the wait of a second is within the client's bound (5 s and the timeout),
    // so the other 29, of both windows, are sent once it is over.
    assert_eq!(throttled.graphql_requests, 30);
    assert_eq!(outcome.retry_after, Some(Duration::from_secs(1)));
    let failed = outcome
        .outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .count();
    // Only the throttled request's fields failed (a 429 is not tried again).
    assert_eq!(failed, 2000 + 16 * 2 + 6);
    let last = &d.snapshot.orgs["3499"];
    assert!(last.collectors.values().all(|s| s.up));
}

const LIMITS_AND_TOKENS: &str = "collectors:\n  ai_credits: false\n  api_usage: false\n  automation_jobs: false\n  integrations: false\n";
const LIMITS_ONLY: &str = "collectors:\n  ai_credits: false\n  api_usage: false\n  automation_jobs: false\n  integrations: false\n  token_attribution: false\n";

#[tokio::test]
async fn a_request_rejected_as_too_complex_is_halved_until_it_passes_and_remembered() {
    // Pipefy counts more than the exporter estimates (here: a limit of 4,000 where the
    // exporter plans for 50,000). After the schema check, 120 organizations' limits
    // (157 each, 18,840) are rejected, then 2 × 60 (9,420) and 4 × 30 (4,710), and
    // 8 × 15 (2,355) pass.
    let mut d = Driven::new(SimData::generated(120), &ids(120), LIMITS_ONLY).await;
    d.sim.set_complexity_limit(Some(4_000), 50);
    let (first, outcome) = d.refresh(&[]).await;
    assert_eq!(first.graphql_requests, 1 + 1 + 2 + 4 + 8);
    assert_eq!(first.too_complex, 1 + 2 + 4);
    assert_eq!(first.max_complexity_answered, 15 * 157);
    assert_eq!(outcome.outcomes.len(), 120);
    assert!(all_ok(&outcome));
    // The next refresh starts at the size that worked: 8 requests, no rejection.
    let (second, outcome) = d.refresh(&[]).await;
    assert_eq!(second.graphql_requests, 8);
    assert_eq!(second.too_complex, 0);
    assert!(all_ok(&outcome));
}

#[tokio::test]
async fn rejections_are_billed_answers_and_counted_so() {
    let config = pat_config(&format!(
        "refresh_interval: 1h\norganizations: {}\n{LIMITS_ONLY}",
        ids(120)
    ));
    let app = TestApp::builder(SimData::generated(120))
        .prepare(|sim| sim.set_complexity_limit(Some(10_000), 50))
        .config(&config)
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let stats = app.sim.stats();
    // The schema check, then 18,840 rejected, 2 × 9,420 answered.
    assert_eq!(stats.graphql_requests, 1 + 3);
    assert_eq!(stats.too_complex, 1);
    assert_eq!(
        m.value(
            "pipefy_exporter_api_requests_total",
            &[("operation", "PipefySubscriptionLimits"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        m.find("pipefy_up", &[])
            .iter()
            .filter(|s| s.value == 1.0)
            .count(),
        120
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_single_organization_still_too_complex_fails_alone_after_the_halving() {
    // Below one organization's 157: 4 → 2 + 2 → 1 + 1 + 1 + 1, all rejected (after the
    // schema check, which passes).
    let config = pat_config(&format!(
        "refresh_interval: 1h\norganizations: {}\n{LIMITS_ONLY}",
        ids(4)
    ));
    let app = TestApp::builder(SimData::generated(4))
        .prepare(|sim| sim.set_complexity_limit(Some(100), 50))
        .config(&config)
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let stats = app.sim.stats();
    assert_eq!(stats.graphql_requests, 1 + 7);
    assert_eq!(stats.too_complex, 7);
    assert_eq!(
        m.find("pipefy_up", &[])
            .iter()
            .filter(|s| s.value == 0.0)
            .count(),
        4
    );
    let page = app.get("/").await.text().await.unwrap();
    assert!(
        page.contains("Query has complexity of 157, which exceeds max complexity of 100"),
        "{page}"
    );
    app.shutdown().await;
}
