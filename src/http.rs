//! The HTTP side: `/metrics`, the landing page, `/-/healthy`, `/-/ready` and
//! `/-/reload`.
//!
//! Handlers only read the latest published snapshot; nothing here talks to Pipefy.
//! [`app`] builds the router without binding a socket, so tests and `serve` share it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::{Frame, SizeHint};
use tokio::sync::watch;

use crate::encoding::Format;
use crate::exposition::{Published, ScrapeBody, SelfMetricsParts};
use crate::reload::ReloadError;
use crate::self_metrics::SelfMetrics;

/// Reloads the configuration (see `reload`); blocking.
pub(crate) type ReloadFn = Arc<dyn Fn() -> Result<(), ReloadError> + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The latest snapshot with its rendered exposition, as the refresh loop publishes.
    published: watch::Receiver<Arc<Published>>,
    metrics: Arc<SelfMetrics>,
    /// The exporter's own metrics as rendered for the last scrapes.
    own: Arc<SelfMetricsParts>,
    telemetry_path: String,
    /// `Some` with `--web.enable-lifecycle`: `POST /-/reload` calls it.
    lifecycle: Option<ReloadFn>,
}

impl AppState {
    /// What `published` publishes and `metrics` count, under `telemetry_path`.
    pub fn new(
        published: watch::Receiver<Arc<Published>>,
        metrics: Arc<SelfMetrics>,
        telemetry_path: String,
    ) -> Self {
        AppState {
            published,
            metrics,
            own: Arc::default(),
            telemetry_path,
            lifecycle: None,
        }
    }

    /// `/-/reload` calls `lifecycle` (`--web.enable-lifecycle`).
    pub(crate) fn with_lifecycle(mut self, lifecycle: Option<ReloadFn>) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    fn current(&self) -> Arc<Published> {
        // Clone the Arc and release the watch lock at once.
        self.published.borrow().clone()
    }
}

pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route(&state.telemetry_path, get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload));
    // With `--web.telemetry-path=/` the metrics take the root, as in node_exporter.
    if state.telemetry_path != "/" {
        router = router.route("/", get(landing));
    }
    router.with_state(state)
}

/// The body rendered when the snapshot was published, shared, then the few values only
/// the scrape time can tell: nothing here grows with the number of organizations. In
/// the format the `Accept` header prefers, gzip when `Accept-Encoding` allows it.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = negotiate(&headers);
    let gzip = accepts_gzip(&headers);
    state.metrics.observe_scrape(format, gzip);
    // The exporter's own metrics before the publication (see SelfMetricsParts).
    let own = state.own.get(&state.metrics, format);
    let published = state.current();
    let body = published
        .scrape(&own, &state.metrics, SystemTime::now(), format, gzip)
        .await;
    // Caches must not hand one format or encoding to a client that asked for another.
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        ),
        (
            header::VARY,
            HeaderValue::from_static("Accept, Accept-Encoding"),
        ),
    ];
    let gzip = body.gzip;
    let chunks = Body::new(Chunks(body));
    if gzip {
        (
            headers,
            [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))],
            chunks,
        )
            .into_response()
    } else {
        (headers, chunks).into_response()
    }
}

/// A scrape's body sent chunk by chunk (the shared ones are not copied), with its
/// length known, so that the answer has a `Content-Length`.
struct Chunks(ScrapeBody);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = flate2::DecompressError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.next_chunk().map(|chunk| chunk.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.0.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.remaining())
    }
}

/// The format `Accept` prefers, much as the Go client's
/// `expfmt.NegotiateIncludingOpenMetrics` chooses: the media types in order of quality
/// (the order given among equals); OpenMetrics text 1.0.0 (or unversioned) for
/// `application/openmetrics-text`, the text format for `text/plain` version 0.0.4 (or
/// unversioned); anything else (protobuf, another version, `*/*`) is passed over, and
/// the text format is the default. Prometheus's default header lists OpenMetrics 1.0.0
/// first; `curl` sends `*/*`. Unlike Go's: OpenMetrics 0.0.1 alone (the first
/// Prometheus releases that spoke OpenMetrics) gets the text format, since this exporter
/// writes 1.0.0; `q=0` is honoured as "not acceptable" (RFC 9110); an unreadable `q`
/// counts as 1.
fn negotiate(headers: &HeaderMap) -> Format {
    let mut offers: Vec<(f32, Option<Format>)> = header_items(headers, header::ACCEPT)
        .map(|(range, params, q)| {
            let version = params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case("version"))
                .map(|(_, value)| value.trim_matches('"'));
            let format = if range.eq_ignore_ascii_case("application/openmetrics-text") {
                matches!(version, None | Some("1.0.0")).then_some(Format::OpenMetrics)
            } else if range.eq_ignore_ascii_case("text/plain") {
                matches!(version, None | Some("0.0.4")).then_some(Format::Text)
            } else {
                None
            };
            (q, format)
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    // Stable: equal qualities keep the order the client gave.
    offers.sort_by(|a, b| b.0.total_cmp(&a.0));
    offers
        .into_iter()
        .find_map(|(_, format)| format)
        .unwrap_or(Format::Text)
}

/// True when `Accept-Encoding` accepts gzip: listed with a non-zero quality, or
/// covered by `*` without an explicit `gzip;q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for (coding, _, q) in header_items(headers, header::ACCEPT_ENCODING) {
        if coding.eq_ignore_ascii_case("gzip") {
            gzip = Some(q > 0.0);
        } else if coding == "*" {
            any = Some(q > 0.0);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// The items of every `name` header (`a;k=v;q=0.5, b`): each value, its parameters other
/// than `q`, and its quality (1 when absent or unreadable, as RFC 9110 §12.4.2 defaults).
fn header_items(
    headers: &HeaderMap,
    name: header::HeaderName,
) -> impl Iterator<Item = (&str, Vec<(&str, &str)>, f32)> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| {
            let mut parts = item.split(';');
            let value = parts.next().unwrap_or("").trim();
            let mut q = 1.0;
            let mut params = Vec::new();
            for part in parts {
                let (key, val) = part.split_once('=').unwrap_or((part, ""));
                let (key, val) = (key.trim(), val.trim());
                if key.eq_ignore_ascii_case("q") {
                    q = val.parse::<f32>().unwrap_or(1.0);
                } else {
                    params.push((key, val));
                }
            }
            (value, params, q)
        })
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

/// Prometheus's `/-/reload`: 200 once the files are read and valid (the new
/// configuration applies at the next refresh), 500 with the error otherwise, 403 when
/// `--web.enable-lifecycle` is off, with Prometheus's wording.
async fn reload(State(state): State<AppState>) -> Response {
    let Some(reload) = state.lifecycle.clone() else {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n").into_response();
    };
    match tokio::task::spawn_blocking(move || reload()).await {
        Ok(Ok(())) => (StatusCode::OK, "Configuration reloaded\n").into_response(),
        Ok(Err(error)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {error}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to reload config: the reload task failed\n",
        )
            .into_response(),
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let published = state.current();
    Html(crate::landing::page(
        &published.snapshot,
        &published.info,
        &state.metrics.invalid_queries(),
        &state.telemetry_path,
        SystemTime::now(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_negotiation() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            negotiate(&h)
        };
        // Prometheus 3's default scrape_protocols, then Prometheus 2's header.
        assert_eq!(
            with("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"),
            Format::OpenMetrics
        );
        assert_eq!(
            with("application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::Text,
            "OpenMetrics 0.0.1 is not what this exporter writes"
        );
        assert_eq!(with("*/*"), Format::Text, "curl");
        assert_eq!(negotiate(&HeaderMap::new()), Format::Text);
        assert_eq!(with("application/openmetrics-text"), Format::OpenMetrics);
        assert_eq!(
            with("Application/OpenMetrics-Text; Version=\"1.0.0\""),
            Format::OpenMetrics
        );
        assert_eq!(
            with(
                "text/plain;version=0.0.4;q=0.9, application/openmetrics-text;version=1.0.0;q=0.8"
            ),
            Format::Text,
            "quality first"
        );
        assert_eq!(
            with("text/plain, application/openmetrics-text"),
            Format::Text,
            "equal qualities: the client's order"
        );
        assert_eq!(with("application/openmetrics-text;q=0, */*"), Format::Text);
        assert_eq!(
            with("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,application/openmetrics-text;version=1.0.0;q=0.5"),
            Format::OpenMetrics,
            "protobuf is not offered"
        );
        assert_eq!(
            with("application/openmetrics-text;q=banana"),
            Format::OpenMetrics
        );
    }

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
}
