//! The Pipefy GraphQL client: batching of root fields into aliased requests
//! ([`query`]), one HTTP POST per batch, bearer auth, bounded bodies, per-alias
//! decoding ([`model::split`]), and every request counted in the self-metrics (each one
//! is a paid API call).
//!
//! It retries only one thing: a 401 with a service account, once, with a fresh
//! access token. Everything else (429, 5xx, timeouts) fails the batch; the scheduler
//! keeps the last good values and tries again at the collector's next interval, so a
//! flaky upstream never multiplies the calls it is billed for.

pub(crate) mod auth;
pub(crate) mod model;
pub(crate) mod query;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;
use tokio::sync::Semaphore;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use crate::config::Credential;
use crate::secret::Secret;
use crate::self_metrics::SelfMetrics;
use auth::Auth;
pub(crate) use model::GraphQlResponse;
use query::RootField;

/// Each key's answer: the aliased field's JSON (`None` when Pipefy answered `null`
/// without an error), or why it failed.
pub(crate) type Answers = HashMap<String, Result<Option<Value>, String>>;

/// What a batched fetch returned.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub answers: Answers,
    /// The longest `Retry-After` Pipefy sent, if it throttled a request.
    pub retry_after: Option<Duration>,
}

/// Upper bound of a GraphQL response body: a batch of 500 organizations with their
/// tokens stays far below this; anything larger is an upstream fault, not data.
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// Why a request failed. Callers branch on `RateLimited` (postpone the next cycle)
/// and all variants end up as a per-organization error string.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unauthorized (HTTP 401): check the token or service account")]
    Unauthorized,
    #[error("rate limited (HTTP 429){}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("HTTP {0}")]
    Status(u16),
    #[error("invalid response: {0}")]
    Decode(String),
    #[error("{0}")]
    TokenEndpoint(String),
}

impl ApiError {
    /// How long Pipefy asked us to wait, if it throttled us.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// A client for one account (one credential).
#[derive(Debug)]
pub(crate) struct PipefyClient {
    http: reqwest::Client,
    endpoint: String,
    auth: Auth,
    metrics: Arc<SelfMetrics>,
}

impl PipefyClient {
    pub(crate) fn new(
        endpoint: &str,
        credential: &Credential,
        timeout: Duration,
        metrics: Arc<SelfMetrics>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("pipefy-exporter/", env!("CARGO_PKG_VERSION")))
            // Redirects would resend the bearer token to wherever they point.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(PipefyClient {
            http,
            endpoint: endpoint.to_owned(),
            auth: Auth::new(credential),
            metrics,
        })
    }

    /// Makes sure a bearer token is at hand (for a service account: fetched or still
    /// valid), so that a cycle with a broken credential stops after one token request.
    pub(crate) async fn authenticate(&self) -> Result<(), ApiError> {
        self.auth
            .bearer(&self.http, &self.metrics)
            .await
            .map(|_| ())
    }

    /// Asks for `fields` in requests of at most `per_request` aliased root fields, at
    /// most as many in flight as `permits` allows (a process-wide budget), and returns
    /// one answer per field key. A failed request fails its own fields only; an alias
    /// error with a `path` fails that alias only.
    pub(crate) async fn fetch(
        &self,
        operation: &'static str,
        fields: &[RootField],
        per_request: usize,
        permits: &Semaphore,
    ) -> Fetched {
        let requests = fields.chunks(per_request.max(1)).map(|chunk| {
            let document = query::document(operation, chunk);
            async move {
                let response = match permits.acquire().await {
                    Ok(_permit) => {
                        self.execute(operation, &document.text, &document.variables)
                            .await
                    }
                    Err(_) => Err(ApiError::Transport("shutting down".into())),
                };
                (document, response)
            }
        });
        let mut fetched = Fetched::default();
        for (document, response) in join_all(requests).await {
            match response {
                Ok(response) => {
                    for (key, result) in model::split::<Value>(&response, &document.aliases) {
                        if let Err(error) = &result {
                            tracing::warn!(operation, key = %key, %error, "Pipefy returned an error for one field");
                        }
                        fetched.answers.insert(key, result);
                    }
                }
                Err(error) => {
                    tracing::warn!(operation, fields = document.aliases.len(), %error, "Pipefy request failed");
                    fetched.retry_after = fetched.retry_after.max(error.retry_after());
                    let message = error.to_string();
                    fetched.answers.extend(
                        document
                            .aliases
                            .into_iter()
                            .map(|(_, key)| (key, Err(message.clone()))),
                    );
                }
            }
        }
        fetched
    }

    /// Sends one GraphQL request. `operation` labels the self-metrics.
    pub(crate) async fn execute(
        &self,
        operation: &'static str,
        query: &str,
        variables: &serde_json::Value,
    ) -> Result<GraphQlResponse, ApiError> {
        let body = serde_json::json!({
            "query": query,
            "variables": variables,
            "operationName": operation,
        });
        let bearer = self.auth.bearer(&self.http, &self.metrics).await?;
        match self.send(operation, &body, bearer.as_ref()).await {
            Err(ApiError::Unauthorized) if self.auth.invalidate(bearer.as_ref()).await => {
                tracing::info!(operation, "access token rejected; fetching a new one");
                let bearer = self.auth.bearer(&self.http, &self.metrics).await?;
                self.send(operation, &body, bearer.as_ref()).await
            }
            other => other,
        }
    }

    async fn send(
        &self,
        operation: &'static str,
        body: &serde_json::Value,
        bearer: Option<&Secret>,
    ) -> Result<GraphQlResponse, ApiError> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .json(body);
        if let Some(token) = bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        let started = Instant::now();
        let response = request.send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.metrics
                    .observe_request(operation, "error", started.elapsed());
                return Err(ApiError::Transport(describe_transport(&e)));
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        // Time to the full body: that is what a slow upstream costs a cycle.
        let body = read_capped(response, MAX_RESPONSE).await;
        self.metrics
            .observe_request(operation, status.as_str(), started.elapsed());
        match status {
            StatusCode::UNAUTHORIZED => return Err(ApiError::Unauthorized),
            StatusCode::TOO_MANY_REQUESTS => return Err(ApiError::RateLimited { retry_after }),
            s if !s.is_success() => return Err(ApiError::Status(s.as_u16())),
            _ => {}
        }
        serde_json::from_slice(&body?)
            .map_err(|e| ApiError::Decode(format!("not a GraphQL response: {e}")))
    }
}

/// Reads a body, failing once it exceeds `max` bytes instead of buffering it all.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ApiError::Transport(describe_transport(&e)))?
    {
        if body.len() + chunk.len() > max {
            return Err(ApiError::Decode(format!(
                "response larger than {max} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error without its URL (which is fine) and with its cause chain
/// (which reqwest's Display hides).
pub(crate) fn describe_transport(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs; it is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
