//! The Pipefy GraphQL client: batching of root fields into aliased requests
//! ([`query`]), one HTTP POST per batch, bearer auth, bounded bodies, per-alias
//! decoding ([`model::alias_outcome`]), and every request counted in the self-metrics (each one
//! is a paid API call).
//!
//! Retries follow what Pipefy bills (2xx, 3xx, 404, 408, 422; not 401, 403, 5xx):
//! - a 401 or 403 with a service account is tried once more with a fresh access token;
//! - a 5xx, or a connection that could not be made, is tried again up to
//!   `pipefy.max_tries` times in all, after a full-jitter wait ([`backoff`]): it cost
//!   nothing;
//! - nothing else is retried within a refresh: a timeout or a truncated 2xx body may
//!   have been processed and billed, a 404 or 422 was billed and would be again;
//! - a 429's `Retry-After` holds back every later request of the account (a shared
//!   "not before" instant), not only the next refresh.
//!
//! Every request's outcome is tallied per account ([`PipefyClient::take_tally`]) so that
//! the scheduler can back off a refused credential and open the circuit of an account
//! whose refreshes keep failing as a whole ([`backoff::Health`]).

pub(crate) mod auth;
pub(crate) mod backoff;
pub(crate) mod batch;
pub(crate) mod complexity;
mod fetch;
pub(crate) mod model;
pub(crate) mod query;
pub(crate) mod schema;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use crate::secret::Secret;
use crate::self_metrics::SelfMetrics;
use auth::Auth;
pub(crate) use auth::Credential;
use backoff::{Class, Tally};
pub(crate) use fetch::PartVerdict;
pub(crate) use model::{Answer, GraphQlResponse};

/// Each key's answer: the aliased field's JSON (`None` when Pipefy answered `null`
/// without an error), or why it failed.
pub(crate) type Answers = HashMap<String, Result<Option<Answer>, String>>;

/// Upper bound of a GraphQL response body: a batch of 500 organizations with their
/// tokens stays far below this; anything larger is an upstream fault, not data.
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// The longest wait between two tries of one request, whatever `pipefy.retry_delay`.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// The longest `Retry-After` a request waits for within a refresh (and never longer
/// than `pipefy.timeout`). A longer one fails the request unsent: the refresh publishes
/// what it has, and the scheduler postpones the next one.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(5);

/// Why a request failed. Callers branch on `RateLimited` (postpone the next cycle)
/// and all variants end up as a per-organization error string.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("request failed: {0}")]
    Transport(String),
    /// No connection could be made: nothing reached Pipefy.
    #[error("request failed: {0}")]
    Unreachable(String),
    #[error("unauthorized (HTTP 401): check the token or service account")]
    Unauthorized,
    #[error("forbidden (HTTP 403): the credential may not use the API")]
    Forbidden,
    #[error("rate limited (HTTP 429){}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// Not sent: an earlier 429 asked to wait longer than a request may take.
    #[error("not sent: Pipefy asked to wait {}s more (Retry-After)", retry_after.as_secs_f64().ceil())]
    Deferred { retry_after: Duration },
    #[error("HTTP {0}")]
    Status(u16),
    #[error("invalid response: {0}")]
    Decode(String),
    /// A success status whose body broke off: it may well have been billed.
    #[error("response cut short: {0}")]
    Incomplete(String),
    #[error("{0}")]
    TokenEndpoint(String),
    /// The token endpoint refused the client (4xx): a credential problem.
    #[error("{0}")]
    TokenRejected(String),
}

impl ApiError {
    /// How long Pipefy asked us to wait, if it throttled us.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after } => *retry_after,
            ApiError::Deferred { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether trying again within the refresh is free: Pipefy bills no 5xx, and a
    /// connection that could not be made carried no request.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            ApiError::Status(status) => *status >= 500,
            ApiError::Unreachable(_) => true,
            _ => false,
        }
    }

    /// What this failure says about the account as a whole.
    pub(crate) fn class(&self) -> Class {
        match self {
            ApiError::Unauthorized | ApiError::Forbidden | ApiError::TokenRejected(_) => {
                Class::Rejected
            }
            ApiError::RateLimited { .. } | ApiError::Deferred { .. } => Class::Throttled,
            ApiError::Transport(_)
            | ApiError::Unreachable(_)
            | ApiError::Status(_)
            | ApiError::Decode(_)
            | ApiError::Incomplete(_)
            | ApiError::TokenEndpoint(_) => Class::Failed,
        }
    }
}

/// How a client sends: timeouts, tries, the bounds of its waits, and request sizes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Settings {
    /// Per HTTP request. Also bounds the wait for a `Retry-After` within a refresh.
    pub timeout: Duration,
    /// Tries of one request in all, for failures Pipefy does not bill (at least 1).
    pub max_tries: u32,
    /// Base of the full-jitter wait between tries.
    pub retry_delay: Duration,
    /// The longest `Retry-After` honoured (a longer one is cut to this).
    pub backoff_max: Duration,
    /// How requests are sized and what a rejection for size looks like.
    pub limits: batch::RequestLimits,
}

/// A client for one account (one credential).
#[derive(Debug)]
pub(crate) struct PipefyClient {
    http: reqwest::Client,
    endpoint: String,
    /// The account's name, in every log line.
    account: String,
    auth: Auth,
    settings: Settings,
    metrics: Arc<SelfMetrics>,
    /// No request of this account leaves before this instant (the last `Retry-After`).
    not_before: Mutex<Option<Instant>>,
    /// Outcomes since the last [`PipefyClient::take_tally`].
    tally: Mutex<Tally>,
    /// The credential was refused (after a new access token where possible) since the
    /// last [`PipefyClient::take_tally`]: the rest of the refresh sends nothing, since
    /// every request would be refused the same way.
    refused: Mutex<Option<ApiError>>,
    /// Field shapes that weigh more than estimated, learned from rejections.
    learned: Mutex<batch::Learned>,
}

/// The later of `current` and `now + retry_after` (cut to `cap`): a shorter
/// `Retry-After` never shortens a wait another request was asked for.
pub(crate) fn extend_not_before(
    current: Option<Instant>,
    now: Instant,
    retry_after: Duration,
    cap: Duration,
) -> Option<Instant> {
    let proposed = now.checked_add(retry_after.min(cap));
    current.max(proposed)
}

impl PipefyClient {
    pub(crate) fn new(
        endpoint: &str,
        account: &str,
        credential: &Credential,
        settings: Settings,
        metrics: Arc<SelfMetrics>,
    ) -> anyhow::Result<Self> {
        let timeout = settings.timeout;
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
            account: account.to_owned(),
            auth: Auth::new(credential),
            settings,
            metrics,
            not_before: Mutex::new(None),
            tally: Mutex::new(Tally::default()),
            refused: Mutex::new(None),
            learned: Mutex::new(batch::Learned::default()),
        })
    }

    /// Makes sure a bearer token is at hand (for a service account: fetched or still
    /// valid), so that a cycle with a broken credential stops after one token request.
    pub(crate) async fn authenticate(&self) -> Result<(), ApiError> {
        let result = self
            .auth
            .bearer(&self.http, &self.metrics, &self.account)
            .await
            .map(|_| ());
        if let Err(error) = &result {
            self.count(error.class());
        }
        result
    }

    /// Whether the account's secret file changed on disk since it was read; the new
    /// secret is used from here on.
    pub(crate) fn secret_rotated(&self) -> bool {
        self.auth.rotated(&self.account)
    }

    /// What this account's requests came to since the last call, and a fresh start
    /// (a refused credential is tried again from here on).
    pub(crate) fn take_tally(&self) -> Tally {
        *lock(&self.refused) = None;
        std::mem::take(&mut *lock(&self.tally))
    }

    fn count(&self, class: Class) {
        lock(&self.tally).count(class);
    }

    /// Sends one GraphQL request, tried again while it fails in a way Pipefy does not
    /// bill (at most `max_tries` in all). `operation` labels the self-metrics.
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
        let refused = lock(&self.refused).clone();
        if let Some(error) = refused {
            self.count(error.class());
            return Err(error);
        }
        let mut tries = 1;
        let result = loop {
            let result = self.try_once(operation, &body).await;
            match &result {
                Err(error) if error.retryable() && tries < self.settings.max_tries => {
                    tries += 1;
                    let wait = backoff::full_jitter(
                        self.settings.retry_delay,
                        tries,
                        MAX_RETRY_DELAY,
                        backoff::random_unit(),
                    );
                    // Debug only: the batch's final failure is logged once by `fetch`.
                    tracing::debug!(account = %self.account, operation, %error, next_try = tries, wait_seconds = wait.as_secs_f64(), "trying again: Pipefy bills no 5xx and no failed connection");
                    tokio::time::sleep(wait).await;
                }
                _ => break result,
            }
        };
        let class = match &result {
            Ok(_) => Class::Answered,
            Err(error) => error.class(),
        };
        if let (Class::Rejected, Err(error)) = (class, &result) {
            *lock(&self.refused) = Some(error.clone());
        }
        self.count(class);
        result
    }

    /// One try: the bearer token, the request, and once more if the credential was
    /// refused and something changed: a service account's new access token, or a
    /// secret file rotated on disk (401 and 403 are not billed).
    async fn try_once(
        &self,
        operation: &'static str,
        body: &serde_json::Value,
    ) -> Result<GraphQlResponse, ApiError> {
        let bearer = self
            .auth
            .bearer(&self.http, &self.metrics, &self.account)
            .await?;
        match self.send(operation, body, bearer.as_ref()).await {
            Err(error @ (ApiError::Unauthorized | ApiError::Forbidden))
                if self.auth.invalidate(bearer.as_ref(), &self.account).await =>
            {
                tracing::info!(account = %self.account, operation, %error, "credential refused; trying once more with a new access token or the secret file's new content");
                let bearer = self
                    .auth
                    .bearer(&self.http, &self.metrics, &self.account)
                    .await?;
                self.send(operation, body, bearer.as_ref()).await
            }
            other => other,
        }
    }

    /// Waits for the account's `Retry-After`, if one is running and short (see
    /// [`MAX_THROTTLE_WAIT`]); a longer one fails the request unsent.
    async fn wait_if_throttled(&self) -> Result<(), ApiError> {
        let not_before = *lock(&self.not_before);
        let Some(not_before) = not_before else {
            return Ok(());
        };
        let remaining = not_before.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(());
        }
        if remaining > self.settings.timeout.min(MAX_THROTTLE_WAIT) {
            return Err(ApiError::Deferred {
                retry_after: remaining,
            });
        }
        tokio::time::sleep(remaining).await;
        Ok(())
    }

    async fn send(
        &self,
        operation: &'static str,
        body: &serde_json::Value,
        bearer: Option<&Secret>,
    ) -> Result<GraphQlResponse, ApiError> {
        self.wait_if_throttled().await?;
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
                let text = describe_transport(&e);
                return Err(if e.is_connect() {
                    ApiError::Unreachable(text)
                } else {
                    ApiError::Transport(text)
                });
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
            StatusCode::FORBIDDEN => return Err(ApiError::Forbidden),
            StatusCode::TOO_MANY_REQUESTS => {
                if let Some(wait) = retry_after {
                    let mut not_before = lock(&self.not_before);
                    *not_before = extend_not_before(
                        *not_before,
                        Instant::now(),
                        wait,
                        self.settings.backoff_max,
                    );
                }
                return Err(ApiError::RateLimited { retry_after });
            }
            s if !s.is_success() => return Err(ApiError::Status(s.as_u16())),
            _ => {}
        }
        let body = body.map_err(|e| match e {
            ApiError::Transport(why) => ApiError::Incomplete(why),
            other => other,
        })?;
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::Decode(format!("not a GraphQL response: {e}")))
    }
}

/// Whether Pipefy bills a request answered with `status` (an HTTP status code, or
/// `error` when none came): 2xx, 3xx, 404, 408 and 422 are billed; 401, 403 and 5xx are
/// not (its "Consumption Guide").
pub(crate) fn billed(status: &str) -> bool {
    status.starts_with('2') || status.starts_with('3') || matches!(status, "404" | "408" | "422")
}

/// A poisoned lock still holds plain data: use it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unbilled_failures_are_retried() {
        for status in [500, 502, 503, 504] {
            assert!(ApiError::Status(status).retryable(), "{status}");
        }
        assert!(ApiError::Unreachable("refused".into()).retryable());
        // Billed (404, 408, 422), or possibly processed and billed (timeouts, cut
        // bodies, unreadable 200s), or pointless (401, 403, 429).
        for error in [
            ApiError::Status(404),
            ApiError::Status(408),
            ApiError::Status(422),
            ApiError::Transport("timed out".into()),
            ApiError::Incomplete("eof".into()),
            ApiError::Decode("garbage".into()),
            ApiError::Unauthorized,
            ApiError::Forbidden,
            ApiError::RateLimited { retry_after: None },
        ] {
            assert!(!error.retryable(), "{error:?}");
        }
    }

    #[test]
    fn failures_are_classed_for_the_account() {
        assert_eq!(ApiError::Forbidden.class(), Class::Rejected);
        assert_eq!(ApiError::TokenRejected("x".into()).class(), Class::Rejected);
        assert_eq!(
            ApiError::Deferred {
                retry_after: Duration::from_secs(3)
            }
            .class(),
            Class::Throttled
        );
        assert_eq!(ApiError::Status(503).class(), Class::Failed);
        assert_eq!(ApiError::Decode("x".into()).class(), Class::Failed);
    }

    #[test]
    fn a_retry_after_only_ever_extends_the_wait() {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let s = Duration::from_secs;
        assert_eq!(extend_not_before(None, now, s(30), hour), Some(now + s(30)));
        // A shorter one later does not shorten it.
        let later = Some(now + s(30));
        assert_eq!(extend_not_before(later, now, s(5), hour), later);
        assert_eq!(
            extend_not_before(later, now, s(60), hour),
            Some(now + s(60))
        );
        // An absurd one is cut to the cap.
        assert_eq!(
            extend_not_before(None, now, Duration::MAX, hour),
            Some(now + hour)
        );
    }

    #[test]
    fn a_deferred_request_says_how_long_is_left() {
        let error = ApiError::Deferred {
            retry_after: Duration::from_millis(2500),
        };
        assert_eq!(
            error.to_string(),
            "not sent: Pipefy asked to wait 3s more (Retry-After)"
        );
        assert_eq!(error.retry_after(), Some(Duration::from_millis(2500)));
    }
}
