//! Bearer tokens for Pipefy: a static personal access token, or an OAuth2
//! client-credentials access token that is cached, renewed before it expires, and
//! fetched again after a 401.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::ApiError;
use crate::config::Credential;
use crate::secret::Secret;
use crate::self_metrics::SelfMetrics;

/// Operation label of token requests in `pipefy_api_requests_total`.
pub(crate) const OAUTH_OPERATION: &str = "oauth_token";
/// Pipefy's longest service-account token lifetime.
const MAX_LIFETIME_SECS: u64 = 30 * 86_400;
/// Upper bound of the token endpoint's answer; a token response is a few hundred bytes.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) enum Auth {
    Anonymous,
    Static(Secret),
    ServiceAccount(ServiceAccount),
}

#[derive(Debug)]
pub(crate) struct ServiceAccount {
    client_id: String,
    client_secret: Secret,
    token_endpoint: String,
    /// Held across the token request so that concurrent batches wait for one fetch
    /// instead of each asking for a token.
    cached: Mutex<Option<CachedToken>>,
}

#[derive(Debug)]
struct CachedToken {
    token: Secret,
    /// When to fetch a new one: before the real expiry, by a margin.
    renew_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Auth {
    pub(crate) fn new(credential: &Credential) -> Auth {
        match credential {
            Credential::Anonymous => Auth::Anonymous,
            Credential::Token(token) => Auth::Static(token.clone()),
            Credential::ServiceAccount {
                client_id,
                client_secret,
                token_endpoint,
            } => Auth::ServiceAccount(ServiceAccount {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                token_endpoint: token_endpoint.clone(),
                cached: Mutex::new(None),
            }),
        }
    }

    /// The bearer token to send, fetching one if needed.
    pub(crate) async fn bearer(
        &self,
        http: &reqwest::Client,
        metrics: &Arc<SelfMetrics>,
    ) -> Result<Option<Secret>, ApiError> {
        match self {
            Auth::Anonymous => Ok(None),
            Auth::Static(token) => Ok(Some(token.clone())),
            Auth::ServiceAccount(sa) => sa.token(http, metrics).await.map(Some),
        }
    }

    /// Forgets the access token `rejected` after a 401 or 403, unless another request has
    /// already replaced it; returns whether a retry with a new token can help (not
    /// for static tokens).
    pub(crate) async fn invalidate(&self, rejected: Option<&Secret>) -> bool {
        match self {
            Auth::ServiceAccount(sa) => {
                let mut cached = sa.cached.lock().await;
                if cached.as_ref().map(|c| &c.token) == rejected {
                    *cached = None;
                }
                true
            }
            _ => false,
        }
    }
}

/// Renew when this much of the lifetime is left: a fifth of it, at most a minute.
/// Pipefy lifetimes run from 5 minutes to 30 days.
fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(60))
}

impl ServiceAccount {
    async fn token(
        &self,
        http: &reqwest::Client,
        metrics: &Arc<SelfMetrics>,
    ) -> Result<Secret, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        // Measure the lifetime from before the request: the server starts its clock
        // when it answers, so this errs on the safe side.
        let requested = Instant::now();
        let response = http
            .post(&self.token_endpoint)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose()),
            ])
            .send()
            .await;
        let elapsed = requested.elapsed();
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                metrics.observe_request(OAUTH_OPERATION, "error", elapsed);
                let text = super::describe_transport(&e);
                return Err(if e.is_connect() {
                    ApiError::Unreachable(text)
                } else {
                    ApiError::Transport(text)
                });
            }
        };
        let status = response.status();
        metrics.observe_request(OAUTH_OPERATION, status.as_str(), elapsed);
        if !status.is_success() {
            let message = format!("token endpoint answered HTTP {status}");
            // A 4xx refuses the client (wrong id or secret): a credential problem that
            // waiting will not fix, backed off like a 401. A 5xx is an outage.
            return Err(if status.is_client_error() && status.as_u16() != 429 {
                ApiError::TokenRejected(message)
            } else {
                ApiError::TokenEndpoint(message)
            });
        }
        let body = super::read_capped(response, MAX_TOKEN_RESPONSE).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            ApiError::TokenEndpoint(format!(
                "token endpoint sent an invalid token response: {e}"
            ))
        })?;
        if parsed.access_token.is_empty() {
            return Err(ApiError::TokenEndpoint(
                "token endpoint sent an empty access_token".into(),
            ));
        }
        // Without expires_in, assume Pipefy's shortest lifetime; never trust more than
        // its longest (30 days), which also keeps the arithmetic below from overflowing.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(300).min(MAX_LIFETIME_SECS));
        let token = Secret::new(parsed.access_token);
        *cached = Some(CachedToken {
            token: token.clone(),
            renew_at: requested + lifetime - renewal_margin(lifetime),
        });
        tracing::debug!(
            expires_in_seconds = lifetime.as_secs(),
            "fetched a service-account access token"
        );
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_margin_is_a_fifth_capped_at_a_minute() {
        assert_eq!(
            renewal_margin(Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(300)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(2_592_000)),
            Duration::from_secs(60)
        );
    }
}
