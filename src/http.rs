//! The HTTP side: `/metrics`, the landing page, `/-/healthy` and `/-/ready`.
//!
//! Handlers only read the latest published snapshot; nothing here talks to Pipefy.
//! [`app`] builds the router without binding a socket, so tests and `serve` share it.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::{Frame, SizeHint};
use tokio::sync::watch;

use crate::collectors::{self, slices, TokenAttribution};
use crate::exposition::{ExpositionInfo, Published, CONTENT_TYPE};
use crate::self_metrics::SelfMetrics;
use crate::snapshot::{OrgSnapshot, Snapshot};
use crate::timefmt::rfc3339;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The latest snapshot with its rendered exposition, as the refresh loop publishes.
    pub published: watch::Receiver<Arc<Published>>,
    pub metrics: Arc<SelfMetrics>,
    pub telemetry_path: String,
}

impl AppState {
    fn current(&self) -> Arc<Published> {
        // Clone the Arc and release the watch lock at once.
        self.published.borrow().clone()
    }
}

pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route(&state.telemetry_path, get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready));
    // With `--web.telemetry-path=/` the metrics take the root, as in node_exporter.
    if state.telemetry_path != "/" {
        router = router.route("/", get(landing));
    }
    router.with_state(state)
}

/// The body rendered when the snapshot was published, shared, then the few values only
/// the scrape time can tell: nothing here grows with the number of organizations.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let published = state.current();
    let body = published.scrape(&state.metrics, SystemTime::now(), accepts_gzip(&headers));
    // Caches must not hand a gzip body to a client that did not ask for one.
    let content_type = [
        (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    let chunks = Body::new(Chunks(body.parts.into_iter()));
    if body.gzip {
        (
            content_type,
            [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))],
            chunks,
        )
            .into_response()
    } else {
        (content_type, chunks).into_response()
    }
}

/// A body of a few chunks sent as they are (the shared one is not copied), with its
/// length known, so that the answer has a `Content-Length`.
struct Chunks(std::array::IntoIter<Bytes, 3>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.next().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_slice().is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_slice().iter().map(|c| c.len() as u64).sum())
    }
}

/// True when `Accept-Encoding` accepts gzip: listed with a non-zero quality, or
/// covered by `*` without an explicit `gzip;q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") {
            gzip = Some(q > 0.0);
        } else if coding == "*" {
            any = Some(q > 0.0);
        }
    }
    gzip.or(any).unwrap_or(false)
}

async fn healthy() -> &'static str {
    "Healthy\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.current().snapshot.cycles > 0 {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: the first refresh from Pipefy has not finished\n",
        )
            .into_response()
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let published = state.current();
    Html(landing_page(
        &published.snapshot,
        &published.info,
        &state.telemetry_path,
        SystemTime::now(),
    ))
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn format_number(value: f64) -> String {
    if value.is_infinite() {
        "∞".to_owned()
    } else {
        format!("{value}")
    }
}

/// Status words of one organization: ok, stale (failing but values kept), failing.
fn org_status(org: &OrgSnapshot, now: SystemTime) -> (&'static str, &'static str) {
    if org.collectors.values().all(|s| s.up) {
        return ("ok", "ok");
    }
    if org.collectors.values().any(|s| s.is_fresh(now)) {
        ("stale", "stale: failing, last good values kept")
    } else {
        ("down", "failing")
    }
}

fn used_of(used: f64, limit: f64) -> String {
    format!("{} / {}", format_number(used), format_number(limit))
}

/// The landing page: version, links, the collectors' schedules, and one row per
/// organization.
pub(crate) fn landing_page(
    snapshot: &Snapshot,
    info: &ExpositionInfo,
    telemetry_path: &str,
    now: SystemTime,
) -> String {
    // Columns in Pipefy's order (first appearance), new resources at the end.
    let mut resources: Vec<&str> = Vec::new();
    for limit in snapshot
        .orgs
        .values()
        .flat_map(|o| slices::subscription_limits(o, now))
    {
        if !resources.contains(&limit.resource.as_str()) {
            resources.push(&limit.resource);
        }
    }
    let mut html = String::with_capacity(4096);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Pipefy Exporter</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}}td:first-child,th:first-child{{text-align:left}}\
         .ok{{color:#1a7f37}}.stale{{color:#9a6700}}.down{{color:#cf222e}}</style></head><body>\
         <h1>Pipefy Exporter</h1><p>Version {version} (revision {revision})</p>\
         <ul><li><a href=\"{path}\">Metrics</a></li><li><a href=\"/-/healthy\">Health</a></li><li><a href=\"/-/ready\">Readiness</a></li></ul>\
         <p>Values come from background refreshes, not from the scrape; after a failure they are kept, marked stale, for a while:</p><ul>",
        version = escape_html(info.version),
        revision = escape_html(info.revision),
        path = escape_html(telemetry_path),
    );
    for collector in &info.collectors {
        let _ = write!(
            html,
            "<li>{}: {}</li>",
            collector.name(),
            collector.schedule().describe()
        );
    }
    html.push_str("</ul>");
    if let Some(deadline) =
        collectors::find::<TokenAttribution>(&info.collectors).and_then(|t| t.deadline)
    {
        let days = (deadline as f64 - crate::timefmt::unix_seconds(now)) / 86_400.0;
        let (y, m, d) = crate::timefmt::civil_from_days(deadline.div_euclid(86_400));
        let _ = write!(
            html,
            "<p>Token billing-attribution deadline: {y:04}-{m:02}-{d:02} ({days:.1} days left)</p>"
        );
    }
    match snapshot.last_cycle {
        None => html.push_str("<p>Waiting for the first refresh.</p>"),
        Some(t) => {
            let _ = write!(html, "<p>Last refresh: {}</p>", rfc3339(t));
        }
    }
    html.push_str("<table><thead><tr><th>Organization</th><th>Status</th><th>Last success</th>");
    for resource in &resources {
        let _ = write!(html, "<th>{}<br>used / limit</th>", escape_html(resource));
    }
    html.push_str(
        "<th>AI credits<br>used / limit</th><th>API calls<br>used / limit</th><th>Unassigned tokens</th></tr></thead><tbody>",
    );
    for org in snapshot.orgs.values() {
        let (class, status) = org_status(org, now);
        let last = org
            .collectors
            .values()
            .filter_map(|s| s.last_success)
            .max()
            .map(rfc3339)
            .unwrap_or_else(|| "never".into());
        let title = org.last_error().map(escape_html).unwrap_or_default();
        let _ = write!(
            html,
            "<tr><td>{name} ({id})</td><td class=\"{class}\" title=\"{title}\">{status}</td><td>{last}</td>",
            name = escape_html(&org.meta.name),
            id = escape_html(&org.meta.id),
        );
        let limits = slices::subscription_limits(org, now);
        for resource in &resources {
            let cell = limits
                .iter()
                .find(|l| l.resource == *resource)
                .map(|l| used_of(l.used, l.limit))
                .unwrap_or_else(|| "–".into());
            let _ = write!(html, "<td>{cell}</td>");
        }
        let ai = slices::ai_credits(org, now)
            .map(|a| used_of(a.used, a.limit))
            .unwrap_or_else(|| "–".into());
        let api = slices::api_usage(org, now)
            .map(|a| used_of(a.used, a.limit))
            .unwrap_or_else(|| "–".into());
        let unassigned = slices::token_attribution(org, now)
            .map(|t| t.iter().filter(|t| !t.assigned).count().to_string())
            .unwrap_or_else(|| "–".into());
        let _ = write!(
            html,
            "<td>{ai}</td><td>{api}</td><td>{unassigned}</td></tr>"
        );
    }
    html.push_str("</tbody></table></body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("deflate, GZIP;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(with("*"));
        assert!(!with("gzip;q=0, *"));
        assert!(!with("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<b>\"A&B's\"</b>"),
            "&lt;b&gt;&quot;A&amp;B&#39;s&quot;&lt;/b&gt;"
        );
    }
}
