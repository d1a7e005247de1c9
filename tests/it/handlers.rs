//! The router alone: `http::app` driven with `oneshot`, no socket and no server. Its
//! state holds a snapshot made the way the refresh loop makes one (`Refresher::refresh`
//! against the simulator, then `snapshot::merge`), as `benches/exposition.rs` does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{to_bytes, Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use pipefy_exporter::testing::Config;
use pipefy_exporter::testing::SelfMetrics;
use pipefy_exporter::testing::{app, AppState};
use pipefy_exporter::testing::{merge, Snapshot};
use pipefy_exporter::testing::{Due, Refresher};
use pipefy_exporter::testing::{ExpositionInfo, Format, Published};
use pipefy_sim::{demo_data, SimData, Simulator};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::helpers::{load_config, pat_config, sim_auth, spawn_simulator, Metrics};

/// The config of every test here: the demo organizations, every collector.
const ORGS: &str = "organizations: [2, 300, 4242]\n";

/// The config and the snapshot after one refresh of every collector against a
/// simulator serving `data`.
async fn one_refresh(data: SimData) -> (Arc<Config>, Snapshot) {
    let sim = Simulator::new(data, sim_auth(Duration::from_secs(3600)));
    let server = spawn_simulator(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(load_config(&pat_config(ORGS), &server, dir.path()));
    let refresher = Refresher::standalone(config.clone(), Arc::default()).unwrap();
    let previous = Snapshot::default();
    let outcome = refresher.refresh(&previous, Due::All).await;
    let snapshot = merge(&previous, outcome.orgs, outcome.outcomes, SystemTime::now());
    (config, snapshot)
}

/// Publishes snapshots to a router, rendered as the refresh loop renders them.
struct Publisher {
    sender: watch::Sender<Arc<Published>>,
    info: Arc<ExpositionInfo>,
}

impl Publisher {
    fn send(&self, snapshot: Snapshot) {
        // Rendered at once in OpenMetrics; a text scrape renders its format on demand.
        let published = Published::new(
            Arc::new(snapshot),
            self.info.clone(),
            SystemTime::now(),
            &[Format::OpenMetrics],
        );
        self.sender.send_replace(Arc::new(published));
    }
}

/// The router `serve_with` builds for `config`, serving `snapshot` under `/metrics`;
/// the publisher publishes later snapshots, as the refresh loop does.
fn router(config: &Config, snapshot: Snapshot) -> (Router, Publisher) {
    router_at(config, snapshot, "/metrics")
}

fn router_at(config: &Config, snapshot: Snapshot, telemetry_path: &str) -> (Router, Publisher) {
    let info = Arc::new({
        let mut info = pipefy_exporter::testing::exposition_info(config);
        info.version = "1.2.3-test";
        info.revision = "abc123";
        info
    });
    let published = Published::new(Arc::new(snapshot), info.clone(), SystemTime::now(), &[]);
    let (sender, published) = watch::channel(Arc::new(published));
    let state = AppState::new(
        published,
        Arc::new(SelfMetrics::default()),
        telemetry_path.to_owned(),
    );
    (app(state), Publisher { sender, info })
}

/// A GET of `path` with `headers`, through the router; returns status, headers, body.
async fn get_with(
    router: &Router,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, headers, body)
}

async fn get(router: &Router, path: &str) -> (StatusCode, HeaderMap, Bytes) {
    get_with(router, path, &[]).await
}

fn text(body: &Bytes) -> &str {
    std::str::from_utf8(body).unwrap()
}

const VANDELEY_PIPES: [(&str, &str); 2] = [("organization_id", "2"), ("resource", "pipes")];

#[tokio::test]
async fn healthy_answers_before_any_refresh() {
    let (config, _) = one_refresh(demo_data()).await;
    let (router, _publish) = router(&config, Snapshot::default());
    let (status, _, body) = get(&router, "/-/healthy").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&body), "Healthy\n");
}

#[tokio::test]
async fn ready_is_503_until_the_first_refresh_is_published_then_200() {
    let (config, refreshed) = one_refresh(demo_data()).await;
    assert_eq!(refreshed.cycles, 1);
    let (router, publish) = router(&config, Snapshot::default());
    let (status, _, body) = get(&router, "/-/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        text(&body),
        "Not ready: the first refresh from Pipefy has not finished\n"
    );

    publish.send(refreshed);
    let (status, _, body) = get(&router, "/-/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&body), "Ready\n");
}

#[tokio::test]
async fn metrics_are_the_text_format_unless_openmetrics_is_asked_for() {
    let (config, refreshed) = one_refresh(demo_data()).await;
    let (router, _publish) = router(&config, refreshed);
    for headers in [
        &[][..],
        &[("accept-encoding", "gzip;q=0, identity")][..],
        &[("accept", "*/*")][..],
        &[(
            "accept",
            "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4",
        )][..],
    ] {
        let (status, headers, body) = get_with(&router, "/metrics", headers).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(headers["vary"], "Accept, Accept-Encoding");
        assert!(headers.get("content-encoding").is_none(), "{headers:?}");
        assert!(!text(&body).contains("# EOF"));
        let m = Metrics::parse(text(&body));
        assert_eq!(m.value("pipefy_subscription_limit", &VANDELEY_PIPES), 5.0);
        assert_eq!(m.value("pipefy_subscription_used", &VANDELEY_PIPES), 3.0);
        assert_eq!(m.find("pipefy_organization_info", &[]).len(), 3);
    }
}

/// What Prometheus 3 sends by default (`scrape_protocols`).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

#[tokio::test]
async fn metrics_are_openmetrics_when_the_scraper_prefers_it_with_the_same_values() {
    let (config, refreshed) = one_refresh(demo_data()).await;
    let (router, _publish) = router(&config, refreshed);
    // Scrape-time values (process metrics, a countdown) differ from one scrape to the next.
    let comparable = |body: &str| -> BTreeMap<(String, Vec<(String, String)>), f64> {
        Metrics::parse(body)
            .samples
            .into_iter()
            .filter(|s| {
                !s.name.starts_with("process_")
                    && !s.name.contains("remaining")
                    && s.name != "pipefy_exporter_scrapes_total"
            })
            .map(|s| ((s.name, s.labels.into_iter().collect()), s.value))
            .collect()
    };
    let (_, _, plain) = get_with(&router, "/metrics", &[]).await;
    let plain = comparable(text(&plain));
    for encoding in ["identity", "gzip"] {
        let (status, headers, body) = get_with(
            &router,
            "/metrics",
            &[("accept", PROMETHEUS_ACCEPT), ("accept-encoding", encoding)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(headers["vary"], "Accept, Accept-Encoding");
        let body = match headers.get("content-encoding") {
            Some(_) => gunzip(&body),
            None => text(&body).to_owned(),
        };
        // Whole: one `# EOF`, at the end.
        assert!(body.ends_with("\n# EOF\n"), "{body}");
        assert_eq!(body.matches("# EOF").count(), 1);
        for line in [
            "# TYPE pipefy_organization info\n",
            "# TYPE pipefy_last_success_timestamp_seconds gauge\n# UNIT pipefy_last_success_timestamp_seconds seconds\n",
            "# TYPE pipefy_exporter_build info\npipefy_exporter_build_info{version=\"1.2.3-test\",revision=\"abc123\"} 1\n",
            "# TYPE process_cpu_seconds counter\n# UNIT process_cpu_seconds seconds\n",
        ] {
            assert!(body.contains(line), "{line:?} in {body}");
        }
        let m = Metrics::parse(body.strip_suffix("# EOF\n").unwrap());
        assert_eq!(m.value("pipefy_subscription_limit", &VANDELEY_PIPES), 5.0);
        assert_eq!(m.value("pipefy_subscription_used", &VANDELEY_PIPES), 3.0);
        assert_eq!(m.find("pipefy_organization_info", &[]).len(), 3);
        // The very same series and values as the text format.
        assert_eq!(comparable(&body), plain, "{encoding}");
    }
}

#[tokio::test]
async fn metrics_are_gzipped_when_the_client_accepts_gzip() {
    let (config, refreshed) = one_refresh(demo_data()).await;
    let (router, _publish) = router(&config, refreshed);
    let (status, headers, body) =
        get_with(&router, "/metrics", &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["vary"], "Accept, Accept-Encoding");
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = gunzip(&body);
    let m = Metrics::parse(&text);
    assert_eq!(m.value("pipefy_subscription_limit", &VANDELEY_PIPES), 5.0);
    assert_eq!(m.value("pipefy_subscription_used", &VANDELEY_PIPES), 3.0);
    assert_eq!(
        headers["content-length"],
        body.len().to_string(),
        "the length is known"
    );
}

/// One gzip member, decoded by a single-member decoder (which must use every byte) and
/// by a multi-member one, to the same text.
fn gunzip(body: &[u8]) -> String {
    use std::io::Read;
    let mut single = flate2::bufread::GzDecoder::new(body);
    let mut text = String::new();
    single.read_to_string(&mut text).unwrap();
    assert!(
        single.into_inner().is_empty(),
        "bytes after the first member"
    );
    let mut multi = String::new();
    flate2::read::MultiGzDecoder::new(body)
        .read_to_string(&mut multi)
        .unwrap();
    assert_eq!(multi, text);
    text
}

/// The body up to what each scrape renders anew (its own count, the process metrics).
fn before_scrape_time(text: &str) -> &str {
    let end = text
        .find("# HELP pipefy_exporter_scrapes_total")
        .unwrap_or(text.len());
    &text[..end]
}

#[tokio::test]
async fn the_gzip_body_is_the_plain_body() {
    let (config, refreshed) = one_refresh(demo_data()).await;
    let (router, _publish) = router(&config, refreshed);
    let (_, plain_headers, plain) = get(&router, "/metrics").await;
    let (_, headers, gzip) = get_with(&router, "/metrics", &[("accept-encoding", "gzip")]).await;
    assert_eq!(headers["content-encoding"], "gzip");
    assert!(
        gzip.len() * 5 < plain.len(),
        "{} vs {} bytes",
        gzip.len(),
        plain.len()
    );
    assert_eq!(plain_headers["content-length"], plain.len().to_string());
    let unzipped = gunzip(&gzip);
    assert_eq!(
        before_scrape_time(&unzipped),
        before_scrape_time(text(&plain))
    );
    // Read at each scrape, so their values differ; the same samples are there.
    let process = |text: &str| -> Vec<String> {
        let lines = text.lines().filter(|l| l.starts_with("process_"));
        lines
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(process(&unzipped), process(text(&plain)));
}

#[tokio::test]
async fn a_scrape_after_a_publication_shows_the_new_values() {
    let (config, refreshed) = one_refresh(demo_data()).await;
    let (router, publish) = router(&config, refreshed);
    let mut data = demo_data();
    let vandeley = data.orgs.get_mut("2").unwrap();
    vandeley.limits[0].used = 4;
    let (_, later) = one_refresh(data).await;
    for encoding in ["identity", "gzip"] {
        let scrape = || async {
            let (_, headers, body) =
                get_with(&router, "/metrics", &[("accept-encoding", encoding)]).await;
            let text = match headers.get("content-encoding") {
                Some(_) => gunzip(&body),
                None => text(&body).to_owned(),
            };
            Metrics::parse(&text).value("pipefy_subscription_used", &VANDELEY_PIPES)
        };
        publish.send(one_refresh(demo_data()).await.1);
        assert_eq!(scrape().await, 3.0, "{encoding}");
        assert_eq!(scrape().await, 3.0, "{encoding}");
        publish.send(later.clone());
        assert_eq!(scrape().await, 4.0, "{encoding}");
    }
}

#[tokio::test]
async fn the_landing_page_escapes_organization_names() {
    let mut data = demo_data();
    data.orgs.get_mut("2").unwrap().name = "<script>alert(\"x&y\")</script> O'Hara".into();
    let (config, refreshed) = one_refresh(data).await;
    let (router, _publish) = router(&config, refreshed);
    let (status, headers, body) = get(&router, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let page = text(&body);
    assert!(
        page.contains("<p>Version 1.2.3-test (revision abc123)</p>"),
        "{page}"
    );
    assert!(page.contains("<a href=\"/metrics\">Metrics</a>"), "{page}");
    let start = page
        .find("<tr data-org=\"2\"><td class=\"org\">&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt; O&#39;Hara<small>2</small></td><td class=\"status ok\" data-label=\"status\" title=\"\">ok<small>updated ")
        .unwrap_or_else(|| panic!("no escaped row for organization 2 in:\n{page}"));
    let row = &page[start..start + page[start..].find("</tr>").unwrap()];
    let cells: Vec<&str> = row
        .split("<td")
        .skip(1)
        .map(|cell| &cell[..cell.find("</td>").unwrap()])
        .collect();
    // Name, status; pipes, users, cards, records, interfaces (the plan limits, without
    // AI credits); AI credits (from the usage statistics); API calls; unassigned tokens.
    assert_eq!(cells.len(), 10, "{row}");
    assert_eq!(
        cells[2..8],
        [
            " class=\"ok\" data-label=\"pipes\">3 / 5<small>60 %</small>",
            " class=\"ok\" data-label=\"users\">7 / 10<small>70 %</small>",
            " class=\"ok\" data-label=\"cards\">12 / 50<small>24 %</small>",
            " class=\"ok\" data-label=\"records\">45 / 500<small>9 %</small>",
            " class=\"ok\" data-label=\"interfaces\">1 / 2<small>50 %</small>",
            " class=\"ok\" data-label=\"AI credits\">25 / 100<small>25 %</small>",
        ],
        "{row}"
    );
    // The demo's 8,130 calls of this month, plus the exporter's own of this refresh.
    let api = cells[8]
        .strip_prefix(" class=\"ok\" data-label=\"API calls\">8,13")
        .unwrap_or_else(|| panic!("{row}"));
    assert!(api.ends_with(" / 50,000<small>16 %</small>"), "{row}");
    // No deadline configured: the deadline alerts cannot fire, so no highlight.
    assert_eq!(
        cells[9], " class=\"ok\" data-label=\"unassigned tokens\">2",
        "{row}"
    );
    // Worst first: Pendant Publishing (at its pipes and users limits) leads.
    let pendant = page.find("<tr data-org=\"4242\">").unwrap();
    assert!(pendant < start, "{page}");
    assert!(
        page.contains("<td class=\"critical\" data-label=\"pipes\">3 / 3<small>100 %</small></td>"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");
}

#[tokio::test]
async fn unknown_paths_are_404_and_the_telemetry_path_moves_the_metrics() {
    let (config, refreshed) = one_refresh(demo_data()).await;
    let (router, _publish) = router(&config, refreshed.clone());
    let (status, _, body) = get(&router, "/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(text(&body), "");

    let (router, _publish) = router_at(&config, refreshed, "/pipefy/metrics");
    assert_eq!(get(&router, "/metrics").await.0, StatusCode::NOT_FOUND);
    let (status, _, body) = get(&router, "/pipefy/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let m = Metrics::parse(text(&body));
    assert_eq!(m.value("pipefy_subscription_limit", &VANDELEY_PIPES), 5.0);
    let (_, _, landing) = get(&router, "/").await;
    assert!(text(&landing).contains("<a href=\"/pipefy/metrics\">Metrics</a>"));
}
