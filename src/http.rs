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

use crate::exposition::{Published, ScrapeBody, CONTENT_TYPE};
use crate::reload::ReloadError;
use crate::self_metrics::SelfMetrics;

/// Reloads the configuration (see `reload`); blocking.
pub(crate) type ReloadFn = Arc<dyn Fn() -> Result<(), ReloadError> + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The latest snapshot with its rendered exposition, as the refresh loop publishes.
    pub published: watch::Receiver<Arc<Published>>,
    pub metrics: Arc<SelfMetrics>,
    pub telemetry_path: String,
    /// `Some` with `--web.enable-lifecycle`: `POST /-/reload` calls it.
    pub lifecycle: Option<ReloadFn>,
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
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload));
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
    let gzip = body.gzip;
    let chunks = Body::new(Chunks(body));
    if gzip {
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
