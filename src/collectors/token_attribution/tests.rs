//! Token attribution: the default guess, a whole query the operator points at the real
//! field, the tokens read from its answer, and their highlight on the landing page.

use super::*;
use serde_json::json;

fn built(yaml: &str) -> Result<TokenAttribution, BuildError> {
    let raw: Raw = crate::yaml::parse_yaml(yaml).unwrap();
    let defaults = super::super::Defaults::default();
    let meta = Meta::resolve(&SPEC, raw.enabled, raw.interval, &defaults)?.unwrap();
    build(meta, raw)
}

fn target() -> Target {
    Target {
        id: "2".into(),
        uuid: Some("u-2".into()),
    }
}

#[test]
fn tokens_are_classified_and_ids_may_be_numbers() {
    let answer = json!({"id": "2", "personalAccessTokens": [
        {"id": 201, "name": "Zapier", "billingOrganization": null},
        {"id": "203", "name": "Reporting", "billingOrganization": {"id": "2"}},
        {"id": "203", "name": "Reporting again", "billingOrganization": null},
        {"id": "204", "name": null}
    ]});
    assert_eq!(
        tokens(&answer, &Paths::default()),
        Ok(vec![
            Token {
                id: "201".into(),
                name: "Zapier".into(),
                assigned: false
            },
            Token {
                id: "203".into(),
                name: "Reporting".into(),
                assigned: true
            },
            Token {
                id: "204".into(),
                name: String::new(),
                assigned: false
            },
        ])
    );
    assert_eq!(
        tokens(&json!({"personalAccessTokens": null}), &Paths::default()),
        Err("unexpected response shape: no personalAccessTokens".into())
    );
    assert_eq!(
        tokens(
            &json!({"personalAccessTokens": [{"name": "x"}]}),
            &Paths::default()
        ),
        Err("unexpected response shape: a token without id".into())
    );
}

#[test]
fn the_default_query_is_todays_guess() {
    let collector = built("{}").unwrap();
    let fields = collector.fields(&[target()]);
    assert_eq!(
        &*fields[0].text,
        "organization(id: $id) { id personalAccessTokens { id name billingOrganization { id } } }"
    );
    assert!(!collector.needs_uuid());
    assert!(collector.assumed());
}

#[test]
fn the_selection_shorthand_stays() {
    let collector = built(
        "selection: 'personalAccessTokens: accessTokens { id name billingOrganization { id } }'",
    )
    .unwrap();
    assert_eq!(
        &*collector.fields(&[target()])[0].text,
        "organization(id: $id) { id personalAccessTokens: accessTokens { id name billingOrganization { id } } }"
    );
    for bad in [
        "personalAccessTokens { id",
        "personalAccessTokens { id } # a comment would hide the rest of the request",
        "personalAccessTokens(first: $n) { id }",
        "a { b { c { d { e { f { g { h { i { j { k { l { m { n { o } } } } } } } } } } } } } }",
    ] {
        let yaml = format!("selection: {}", serde_json::to_string(bad).unwrap());
        let key = built(&yaml).unwrap_err().0;
        assert!(key == "selection" || key == "query", "{bad}: {key}");
    }
}

#[test]
fn a_whole_query_reaches_a_field_anywhere() {
    let collector = built(
        "query: |\n  tokenBillingAssignments(organizationId: $id) {\n    token { id name }\n    billingOrganization { id }\n  }\n\
         paths: {tokens: '', id: token.id, name: token.name, billing_organization_id: billingOrganization.id}",
    )
    .unwrap();
    let fields = collector.fields(&[target()]);
    assert_eq!(
        &*fields[0].text,
        "tokenBillingAssignments(organizationId: $id) { token { id name } billingOrganization { id } }"
    );
    assert_eq!(fields[0].variables[0].value, json!("2"));
    let answers: Answers = [(
        "2".to_owned(),
        Ok(Some(
            json!([
                {"token": {"id": "7", "name": "ETL"}, "billingOrganization": null},
                {"token": {"id": "8", "name": "BI"}, "billingOrganization": {"id": "2"}}
            ])
            .into(),
        )),
    )]
    .into_iter()
    .collect();
    let decoded = collector.decode(&[target()], &answers);
    let tokens = decoded[0]
        .result
        .as_ref()
        .unwrap()
        .get::<Tokens>()
        .unwrap()
        .clone();
    assert_eq!(
        tokens
            .iter()
            .map(|t| (t.id.as_str(), t.assigned))
            .collect::<Vec<_>>(),
        [("7", false), ("8", true)]
    );
    // By uuid: the collector then waits for the uuid like the usage statistics.
    let by_uuid = built(
        "query: 'orgTokens(uuid: $uuid) { items { id name billing { id } } }'\n\
         paths: {tokens: items, billing_organization_id: billing.id}",
    )
    .unwrap();
    assert!(by_uuid.needs_uuid());
    assert_eq!(
        by_uuid.fields(&[target()])[0].variables[0].value,
        json!("u-2")
    );
}

#[test]
fn a_query_that_cannot_work_is_refused_with_its_key() {
    for (yaml, key, message) in [
        (
            "query: 'me { tokens { id name billingOrganization { id } } }'",
            "query",
            "must use $id or $uuid: tokens are counted per organization",
        ),
        (
            "query: 'organization(id: $orgId) { personalAccessTokens { id } }'",
            "query",
            "uses $orgId: only $id (the organization's id) and $uuid (its uuid) are given",
        ),
        (
            "query: 'organization(id: $id) { ...Tokens }'",
            "query",
            "must not contain comments (#) or fragments (...)",
        ),
        (
            "query: 'organization(id: $id) { id } organizations { id }'",
            "query",
            "must be exactly one root field with its selection",
        ),
        (
            "query: 'organization(id: $id) { tokens { id name billingOrganization { id } } }'",
            "paths.tokens",
            "\"personalAccessTokens\" is not selected by the query",
        ),
        (
            "query: 'organization(id: $id) { personalAccessTokens { id name } }'",
            "paths.billing_organization_id",
            "\"billingOrganization.id\" is not selected inside each token of the query",
        ),
        (
            "selection: x\nquery: 'organization(id: $id) { x }'",
            "selection",
            "set `query` or its shorthand `selection`, not both",
        ),
    ] {
        assert_eq!(
            built(yaml).unwrap_err(),
            (key.to_owned(), message.to_owned()),
            "{yaml}"
        );
    }
    let (key, message) =
        built("query: 'organization(id: $id) { personalAccessTokens { id }'").unwrap_err();
    assert_eq!(key, "query");
    assert!(
        message.starts_with("is not a GraphQL field: syntax error"),
        "{message}"
    );
}

/// The rule of `PipefyUnassignedTokensDeadlineSoon` and `...Imminent`: tokens left
/// unassigned, and the deadline under 14 (warning) or 3 days (critical) away.
#[test]
fn unassigned_tokens_are_highlighted_by_the_deadline_alerts() {
    use crate::snapshot::{merge, OrgEntry};
    use crate::thresholds::Level;
    use std::time::UNIX_EPOCH;
    let day = 86_400;
    // 2027-01-05, UTC midnight.
    let deadline = 1_799_107_200;
    let collector = built("deadline: 2027-01-05").unwrap();
    let tokens = vec![
        Token {
            id: "1".into(),
            name: "a".into(),
            assigned: false,
        },
        Token {
            id: "2".into(),
            name: "b".into(),
            assigned: false,
        },
        Token {
            id: "3".into(),
            name: "c".into(),
            assigned: true,
        },
    ];
    let snapshot_at = |now: SystemTime| {
        let outcome = Decoded::new("2", Ok(tokens.clone())).into_outcome(&collector);
        let entry = OrgEntry {
            id: "2".into(),
            ..OrgEntry::default()
        };
        merge(&Snapshot::default(), vec![entry], vec![outcome], now)
    };
    for (days_before, level) in [
        (14.0, Level::Ok),
        (11.4, Level::Warning),
        (2.5, Level::Critical),
        (-1.0, Level::Critical),
    ] {
        let now = UNIX_EPOCH + Duration::from_secs_f64(deadline as f64 - days_before * day as f64);
        let snapshot = snapshot_at(now);
        let cells = collector.cells(&snapshot.orgs["2"], now);
        assert_eq!(
            cells,
            [Cell::own(
                "unassigned tokens",
                CellValue::Count { count: 2, level }
            )],
            "{days_before} days before"
        );
    }
    // No deadline configured: the alerts cannot fire.
    let without = built("{}").unwrap();
    let now = SystemTime::now();
    let snapshot = snapshot_at(now);
    assert_eq!(
        without.cells(&snapshot.orgs["2"], now),
        [Cell::own(
            "unassigned tokens",
            CellValue::Count {
                count: 2,
                level: Level::Ok
            }
        )]
    );
    assert_eq!(
        collector.headline(UNIX_EPOCH + Duration::from_secs(deadline - 12 * day)),
        Some("Token billing-attribution deadline: 2027-01-05 (12.0 days left)".to_owned())
    );
    assert_eq!(without.headline(now), None);
}
