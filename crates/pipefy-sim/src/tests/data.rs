//! The data itself: the demo's and the generated organizations, how ticks move them (and
//! leave the exporter's own billed calls alone), and the `updatedAt` timestamps.

use std::time::Duration;

use super::*;

#[test]
fn rfc3339_formats_known_instants() {
    let at = |secs| rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(at(1_714_564_800), "2024-05-01T12:00:00Z");
    assert_eq!(at(1_735_689_599), "2024-12-31T23:59:59Z");
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
