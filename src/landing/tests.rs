//! The landing page: bands, figures, order, status, and the cells the collectors fill.

use std::time::UNIX_EPOCH;

use super::*;
use crate::snapshot::{OrgMeta, Series, Slice};
use crate::thresholds::{Kind, Level};

#[test]
fn bands_follow_the_alert_levels() {
    let cases = [
        // (used, limit, kind, class, percentage)
        (104.0, 100.0, Kind::PlanLimit, "critical", Some("104 %")),
        (3.0, 3.0, Kind::PlanLimit, "critical", Some("100 %")),
        (99.6, 100.0, Kind::PlanLimit, "warn", Some("99 %")),
        (80.0, 100.0, Kind::PlanLimit, "warn", Some("80 %")),
        (79.0, 100.0, Kind::PlanLimit, "ok", Some("79 %")),
        (0.0, 2.0, Kind::PlanLimit, "ok", Some("0 %")),
        // A monthly quota is critical from 90 %: Pendant's API calls at 93 % page.
        (9300.0, 10_000.0, Kind::Quota, "critical", Some("93 %")),
        (45.0, 50.0, Kind::Quota, "critical", Some("90 %")),
        (41.0, 50.0, Kind::Quota, "warn", Some("82 %")),
        (8130.0, 50_000.0, Kind::Quota, "ok", Some("16 %")),
        (40.0, f64::INFINITY, Kind::PlanLimit, "unlimited", None),
        // A zero limit has no share, and the rules' ratios leave it out: no alert.
        (0.0, 0.0, Kind::PlanLimit, "no-share", None),
        (1.0, 0.0, Kind::Quota, "no-share", None),
        (f64::NAN, 10.0, Kind::PlanLimit, "no-data", None),
    ];
    for (used, limit, kind, class, pct) in cases {
        assert_eq!(band(used, limit, kind).class(), class, "{used} / {limit}");
        assert_eq!(percent(used, limit).as_deref(), pct, "{used} / {limit}");
    }
}

#[test]
fn numbers_and_ages_read_well() {
    assert_eq!(number(0.0), "0");
    assert_eq!(number(999.0), "999");
    assert_eq!(number(1000.0), "1,000");
    assert_eq!(number(52_000.0), "52,000");
    assert_eq!(number(100_000.0), "100,000");
    assert_eq!(number(1_234_567.0), "1,234,567");
    assert_eq!(number(1234.5), "1,234.5");
    assert_eq!(number(0.125), "0.13");
    assert_eq!(number(-1500.0), "-1,500");
    assert_eq!(number(f64::INFINITY), "∞");

    let s = Duration::from_secs;
    assert_eq!(age(s(0)), "0s");
    assert_eq!(age(s(45)), "45s");
    assert_eq!(age(s(250)), "4m 10s");
    assert_eq!(age(s(240)), "4m");
    assert_eq!(age(s(2 * 3600 + 5 * 60 + 7)), "2h 5m");
    assert_eq!(age(s(3 * 86_400 + 4 * 3600 + 59)), "3d 4h");
}

fn share(used: f64, limit: f64, kind: Kind) -> CellValue {
    CellValue::Share { used, limit, kind }
}

fn plan(used: f64, limit: f64) -> Option<CellValue> {
    Some(share(used, limit, Kind::PlanLimit))
}

#[test]
fn cells_show_the_figure_the_percentage_and_the_band() {
    let plan = Kind::PlanLimit;
    assert_eq!(
        cell_html("cards", &share(104.0, 100.0, plan)),
        "<td class=\"critical\" data-label=\"cards\">104 / 100<small>104 %</small></td>"
    );
    assert_eq!(
        cell_html("records", &share(52_000.0, 100_000.0, plan)),
        "<td class=\"ok\" data-label=\"records\">52,000 / 100,000<small>52 %</small></td>"
    );
    assert_eq!(
        cell_html("pipes", &share(40.0, f64::INFINITY, plan)),
        "<td class=\"unlimited\" data-label=\"pipes\">40 / unlimited</td>"
    );
    assert_eq!(
        cell_html("interfaces", &share(0.0, 0.0, plan)),
        "<td class=\"no-share\" data-label=\"interfaces\">0 / 0</td>"
    );
    assert_eq!(
        cell_html("API calls", &CellValue::NoData),
        "<td class=\"no-data\" data-label=\"API calls\">no data</td>"
    );
    assert_eq!(
        cell_html("<x>", &CellValue::NoData),
        "<td class=\"no-data\" data-label=\"&lt;x&gt;\">no data</td>"
    );
    assert_eq!(
        cell_html(
            "unassigned tokens",
            &CellValue::Count {
                count: 2,
                level: Level::Warning
            }
        ),
        "<td class=\"warn\" data-label=\"unassigned tokens\">2</td>"
    );
}

#[test]
fn html_is_escaped() {
    assert_eq!(
        escape_html("<b>\"A&B's\"</b>"),
        "&lt;b&gt;&quot;A&amp;B&#39;s&quot;&lt;/b&gt;"
    );
}

fn row(id: &str, name: &str, status: Status, cells: &[Option<CellValue>]) -> Row {
    Row {
        id: id.into(),
        name: name.into(),
        status,
        error: None,
        cells: cells.to_vec(),
    }
}

#[test]
fn organizations_sort_worst_first() {
    let ok = Status::Ok {
        age: Duration::from_secs(5),
    };
    let mut rows = vec![
        row("1", "Comfortable", ok, &[plan(3.0, 10.0)]),
        row("2", "Warned", ok, &[plan(85.0, 100.0)]),
        row("3", "Over", ok, &[plan(104.0, 100.0)]),
        row("4", "Exactly at", ok, &[plan(3.0, 3.0)]),
        row("5", "Failing", Status::Failing { age: None }, &[None]),
        row(
            "6",
            "Stale",
            Status::Stale {
                age: Some(Duration::from_secs(600)),
            },
            &[plan(1.0, 10.0)],
        ),
        row("7", "Unlimited", ok, &[plan(1e9, f64::INFINITY)]),
        row("8", "Also comfortable", ok, &[plan(3.0, 10.0)]),
    ];
    let quota = |used| Some(share(used, 10_000.0, Kind::Quota));
    rows.push(row(
        "9",
        "API nearly out",
        ok,
        &[plan(1.0, 10.0), quota(9300.0)],
    ));
    rows.push(row(
        "10",
        "API warned",
        ok,
        &[plan(1.0, 10.0), quota(8500.0)],
    ));
    let due = Some(CellValue::Count {
        count: 2,
        level: Level::Warning,
    });
    rows.push(row("11", "Tokens due", ok, &[plan(1.0, 10.0), due]));
    sort_worst_first(&mut rows);
    let order: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        order,
        [
            // Critical or failing: by the highest share, then by name.
            "Over",
            "Exactly at",
            "API nearly out",
            "Failing",
            // A warning or stale (85 % both: by name).
            "API warned",
            "Warned",
            "Stale",
            "Tokens due",
            // Nothing wrong.
            "Also comfortable",
            "Comfortable",
            "Unlimited",
        ]
    );
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn series(up: bool, last_success: Option<u64>) -> Series<Slice> {
    Series {
        up,
        value: last_success.map(|_| Slice::new(())),
        last_success: last_success.map(at),
        stale_after: Duration::from_secs(900),
        last_error: (!up).then(|| "HTTP 500".to_owned()),
    }
}

fn org(collectors: &[(&'static str, Series<Slice>)]) -> OrgSnapshot {
    OrgSnapshot {
        meta: OrgMeta {
            id: "2".into(),
            ..OrgMeta::default()
        },
        account: "default".into(),
        collectors: collectors.iter().cloned().collect(),
    }
}

#[test]
fn status_says_stale_or_failing_with_the_age() {
    let now = at(10_000);
    let all_up = org(&[
        ("a", series(true, Some(9_990))),
        ("b", series(true, Some(9_000))),
    ]);
    let status = Status::of(&all_up, now);
    assert_eq!(
        status,
        Status::Ok {
            age: Duration::from_secs(1000)
        }
    );
    assert_eq!(status.text(), ("ok", "updated 16m 40s ago".to_owned()));

    // One collector failed 250 s after its last success; its value is still kept.
    let stale = org(&[
        ("a", series(true, Some(9_990))),
        ("b", series(false, Some(9_750))),
    ]);
    let status = Status::of(&stale, now);
    assert_eq!(status.text(), ("stale", "updated 4m 10s ago".to_owned()));
    assert_eq!(status.class(), "stale");

    // Every value is older than stale_after (900 s): nothing left to show.
    let failing = org(&[("a", series(false, Some(2_800)))]);
    let status = Status::of(&failing, now);
    assert_eq!(status.text(), ("failing", "updated 2h ago".to_owned()));
    assert_eq!(status.class(), "failing");

    let never = org(&[("a", series(false, None))]);
    assert_eq!(
        Status::of(&never, now).text(),
        ("failing", "never updated".to_owned())
    );
    assert_eq!(Status::of(&org(&[]), now), Status::Waiting);
}

#[test]
fn rows_render_every_column_escaped() {
    let mut r = row(
        "4242",
        "Café \"Monk's\" <b>",
        Status::Stale {
            age: Some(Duration::from_secs(75)),
        },
        &[
            plan(3.0, 3.0),
            None,
            Some(share(41.0, 50.0, Kind::Quota)),
            Some(share(9300.0, f64::INFINITY, Kind::Quota)),
            Some(CellValue::NoData),
        ],
    );
    r.error = Some("api_usage: <script>".into());
    let columns: Vec<String> = [
        "pipes",
        "users",
        "AI credits",
        "API calls",
        "unassigned tokens",
    ]
    .map(String::from)
    .to_vec();
    let mut html = String::new();
    write_row(&mut html, &columns, &r);
    assert_eq!(
        html,
        "<tr data-org=\"4242\"><td class=\"org\">Café &quot;Monk&#39;s&quot; &lt;b&gt;<small>4242</small></td>\
         <td class=\"status stale\" data-label=\"status\" title=\"api_usage: &lt;script&gt;\">stale<small>updated 1m 15s ago</small>\
         <small class=\"reason\">api_usage: &lt;script&gt;</small></td>\
         <td class=\"critical\" data-label=\"pipes\">3 / 3<small>100 %</small></td>\
         <td class=\"no-data\" data-label=\"users\">no data</td>\
         <td class=\"warn\" data-label=\"AI credits\">41 / 50<small>82 %</small></td>\
         <td class=\"unlimited\" data-label=\"API calls\">9,300 / unlimited</td>\
         <td class=\"no-data\" data-label=\"unassigned tokens\">no data</td></tr>"
    );
}

/// The organizations of the demo's shape, every collector's slice decoded from answers
/// like Pipefy's, in a snapshot.
fn snapshot_of(
    collectors: &[Arc<dyn Collector>],
    answers: &[(&str, serde_json::Value)],
) -> Snapshot {
    use crate::collectors::Target;
    use crate::snapshot::{merge, OrgEntry};
    let orgs = [Target {
        id: "2".into(),
        uuid: Some("u2".into()),
    }];
    let answers: crate::pipefy::Answers = answers
        .iter()
        .map(|(key, value)| ((*key).to_owned(), Ok(Some(value.into()))))
        .collect();
    let outcomes = collectors
        .iter()
        .flat_map(|c| {
            c.decode(&orgs, &answers)
                .into_iter()
                .map(|d| d.into_outcome(c.as_ref()))
        })
        .collect();
    let entry = OrgEntry {
        id: "2".into(),
        account: "default".into(),
        meta: None,
    };
    merge(
        &Snapshot::default(),
        vec![entry],
        outcomes,
        SystemTime::now(),
    )
}

fn enabled(yaml: &str) -> Vec<Arc<dyn Collector>> {
    crate::yaml::parse_yaml::<crate::collectors::RawCollectors>(yaml)
        .unwrap()
        .build(&crate::collectors::Defaults::default())
        .unwrap()
}

#[test]
fn the_collectors_fill_the_columns_and_the_plan_stands_in_for_ai_credits() {
    use serde_json::json;
    let limits = json!({"id": "2", "uuid": "u2", "name": "V", "activeSubscription": {"limits": [
        {"resource": "PIPES", "limit": 5, "used": 3},
        {"resource": "AI_CREDITS", "limit": 100, "used": 25},
        {"resource": "USERS", "limit": 10, "used": 9}
    ]}});
    let credits = json!({"byOrganization": [
        {"organizationUuid": "u2", "usage": 45, "limit": 50, "hasAddon": false}
    ], "partial": false});
    let answers = [("2", limits), ("ai0", credits)];
    // Every collector: AI credits from its own collector, after the plan resources.
    let all = enabled("");
    let table = Table::of(&snapshot_of(&all, &answers), &all, SystemTime::now());
    assert_eq!(
        table.columns,
        [
            "pipes",
            "users",
            "AI credits",
            "API calls",
            "unassigned tokens"
        ]
    );
    assert_eq!(
        table.rows[0].cells,
        [
            plan(3.0, 5.0),
            plan(9.0, 10.0),
            Some(share(45.0, 50.0, Kind::Quota)),
            Some(CellValue::NoData),
            Some(CellValue::NoData),
        ]
    );
    // Without the ai_credits collector, the plan's figure stands in, last of the plan's
    // columns; without api_usage, no API-call column.
    let some = enabled(
        "ai_credits: false
api_usage: false
",
    );
    let table = Table::of(&snapshot_of(&some, &answers), &some, SystemTime::now());
    assert_eq!(
        table.columns,
        ["pipes", "users", "AI credits", "unassigned tokens"]
    );
    assert_eq!(table.rows[0].cells[2], plan(25.0, 100.0));
}

#[test]
fn the_failure_names_the_collector_and_counts_the_others() {
    let failing = |errors: &[(&'static str, &str)]| {
        let collectors: Vec<(&'static str, Series<Slice>)> = errors
            .iter()
            .map(|(name, error)| {
                let mut s = series(false, None);
                s.last_error = Some((*error).to_owned());
                (*name, s)
            })
            .collect();
        failure(&org(&collectors))
    };
    assert_eq!(failure(&org(&[("a", series(true, Some(1)))])), None);
    assert_eq!(
        failing(&[("token_attribution", "Pipefy returned an error: denied")]),
        Some("token_attribution: Pipefy returned an error: denied".to_owned())
    );
    assert_eq!(
        failing(&[
            ("api_usage", "HTTP 500"),
            ("ai_credits", "timed out"),
            ("integrations", "x")
        ]),
        Some("ai_credits: timed out (and 2 more collectors)".to_owned())
    );
    assert_eq!(
        failing(&[("api_usage", "HTTP 500"), ("ai_credits", "timed out")]),
        Some("ai_credits: timed out (and 1 more collector)".to_owned())
    );
}

/// The legend states the levels the colours follow, from `thresholds`.
#[test]
fn the_legend_states_the_alert_levels() {
    assert_eq!(
        legend(),
        "<p class=\"legend\">Colours follow the alerts: <span class=\"ok\">below 80 %</span>\
         <span class=\"warn\">warning: 80 % of a limit, unassigned tokens under 14 days before \
         the deadline</span><span class=\"critical\">critical: a plan limit reached, 90 % of the \
         AI credits or API calls, unassigned tokens under 3 days</span> Organizations in trouble \
         first.</p>"
    );
}

#[test]
fn queries_not_sent_are_listed_with_their_reason_escaped() {
    let mut html = String::new();
    write_invalid_queries(&mut html, &[]);
    assert_eq!(html, "", "nothing to say when every query is sent");
    write_invalid_queries(
        &mut html,
        &[(
            "acme".into(),
            "token_attribution",
            "Organization.personalAccessTokens: Pipefy's schema has no field <b>".into(),
        )],
    );
    assert!(html.starts_with("<section class=\"queries\"><h2>Queries not sent</h2>"));
    assert!(html.ends_with(
        "<ul><li data-collector=\"token_attribution\"><strong>token_attribution</strong> (account acme): \
         Organization.personalAccessTokens: Pipefy&#39;s schema has no field &lt;b&gt;</li></ul></section>"
    ), "{html}");
}
