//! The Usage Stats API: per-organization fields (AI credits, API calls by token and by
//! operation, daily API calls, automation jobs, integrations), the combined forms over 1
//! to 25 uuids with `partial`, periods and date ranges, and organizations without the
//! *Usage Stats* permission.

use super::*;
use crate::usage;

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
