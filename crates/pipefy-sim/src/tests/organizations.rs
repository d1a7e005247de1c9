//! Organizations through GraphQL as the exporter asks for them: aliases, variables and
//! fragments with exact values, the `organizations` list, and denied, unknown or
//! generated organizations each failing or answering in their own alias.

use super::*;

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
