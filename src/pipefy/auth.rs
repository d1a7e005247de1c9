//! Bearer tokens for Pipefy: a static personal access token, or an OAuth2
//! client-credentials access token that is cached, renewed before it expires, and
//! fetched again after a 401.
//!
//! A secret read from a file is read again when Pipefy refuses it: Kubernetes (and
//! Vault agents) rotate mounted secrets in place, and the new value must be picked up
//! without a reload or a restart. A secret from the environment cannot change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::{lock, ApiError};
use crate::secret::Secret;
use crate::self_metrics::SelfMetrics;

/// How one account authenticates to Pipefy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// No `Authorization` header at all: only for `--demo` against the simulator.
    Anonymous,
    /// A personal access token (static bearer).
    Token {
        token: Secret,
        /// Where it was read from (not set when it came from the environment): read
        /// again when Pipefy refuses it, since Kubernetes rotates mounted secrets in place.
        file: Option<PathBuf>,
    },
    /// OAuth2 client credentials; the access token is fetched and renewed by the client.
    ServiceAccount {
        client_id: String,
        client_secret: Secret,
        /// As for a token: read again when the token endpoint refuses the secret.
        client_secret_file: Option<PathBuf>,
        token_endpoint: String,
    },
}

impl Credential {
    /// A token from `PIPEFY_TOKEN`: there is no file to read again.
    pub(crate) fn from_env_token(token: &str) -> Credential {
        Credential::Token {
            token: Secret::new(token.trim()),
            file: None,
        }
    }
}

/// Operation label of token requests in `pipefy_api_requests_total`.
pub(crate) const OAUTH_OPERATION: &str = "oauth_token";
/// Pipefy's longest service-account token lifetime.
const MAX_LIFETIME_SECS: u64 = 30 * 86_400;
/// Upper bound of the token endpoint's answer; a token response is a few hundred bytes.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) enum Auth {
    Anonymous,
    Static(FileSecret),
    ServiceAccount(ServiceAccount),
}

/// A secret and the file it came from, if any. Locked briefly, never across an
/// `.await`.
#[derive(Debug)]
pub(crate) struct FileSecret {
    current: std::sync::Mutex<Secret>,
    file: Option<PathBuf>,
}

impl FileSecret {
    fn new(secret: &Secret, file: Option<&PathBuf>) -> Self {
        FileSecret {
            current: std::sync::Mutex::new(secret.clone()),
            file: file.cloned(),
        }
    }

    fn get(&self) -> Secret {
        lock(&self.current).clone()
    }

    /// Reads the file again; true when it now holds another secret, which then
    /// replaces the current one. An unreadable or empty file keeps the current one: a
    /// rotation caught half-way must not lose a secret that may still work.
    fn reread(&self, account: &str, what: &str) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let Some(fresh) = read_secret_file(file, account, what) else {
            return false;
        };
        let mut current = lock(&self.current);
        if current.expose() == fresh.expose() {
            return false;
        }
        *current = fresh;
        tracing::info!(
            account,
            file = %file.display(),
            "the {what} file changed on disk; using the new {what}"
        );
        true
    }
}

/// The trimmed content of a secret file, or `None` (logged) when it cannot be used.
fn read_secret_file(file: &Path, account: &str, what: &str) -> Option<Secret> {
    match std::fs::read_to_string(file) {
        Ok(text) if !text.trim().is_empty() => Some(Secret::new(text.trim())),
        Ok(_) => {
            tracing::warn!(account, file = %file.display(), "the {what} file is empty; keeping the {what} read before");
            None
        }
        Err(error) => {
            tracing::warn!(account, file = %file.display(), %error, "cannot read the {what} file again; keeping the {what} read before");
            None
        }
    }
}

#[derive(Debug)]
pub(crate) struct ServiceAccount {
    client_id: String,
    client_secret: FileSecret,
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
            Credential::Token { token, file } => {
                Auth::Static(FileSecret::new(token, file.as_ref()))
            }
            Credential::ServiceAccount {
                client_id,
                client_secret,
                client_secret_file,
                token_endpoint,
            } => Auth::ServiceAccount(ServiceAccount {
                client_id: client_id.clone(),
                client_secret: FileSecret::new(client_secret, client_secret_file.as_ref()),
                token_endpoint: token_endpoint.clone(),
                cached: Mutex::new(None),
            }),
        }
    }

    /// The bearer token to send, fetching one if needed. When the token endpoint
    /// refuses the client secret and the secret file has changed since, the new secret
    /// is tried at once.
    pub(crate) async fn bearer(
        &self,
        http: &reqwest::Client,
        metrics: &Arc<SelfMetrics>,
        account: &str,
    ) -> Result<Option<Secret>, ApiError> {
        match self {
            Auth::Anonymous => Ok(None),
            Auth::Static(token) => Ok(Some(token.get())),
            Auth::ServiceAccount(sa) => match sa.token(http, metrics).await {
                Err(ApiError::TokenRejected(_))
                    if sa.client_secret.reread(account, "client secret") =>
                {
                    sa.token(http, metrics).await.map(Some)
                }
                other => other.map(Some),
            },
        }
    }

    /// Whether the secret file changed on disk since it was last read (the new secret
    /// is then used from here on). Cheap: one small file read.
    pub(crate) fn rotated(&self, account: &str) -> bool {
        match self {
            Auth::Anonymous => false,
            Auth::Static(token) => token.reread(account, "token"),
            Auth::ServiceAccount(sa) => {
                let rotated = sa.client_secret.reread(account, "client secret");
                if rotated {
                    // The access token belongs to the old client secret.
                    if let Ok(mut cached) = sa.cached.try_lock() {
                        *cached = None;
                    }
                }
                rotated
            }
        }
    }

    /// After a 401 or 403 with `rejected`: forgets a service account's access token
    /// (unless another request has already replaced it) and reads the secret file
    /// again. Returns whether a retry can help: with a new access token, or with a
    /// token file that changed on disk; not with the same static token.
    pub(crate) async fn invalidate(&self, rejected: Option<&Secret>, account: &str) -> bool {
        match self {
            Auth::Anonymous => false,
            Auth::Static(token) => {
                // Another request may have picked up the new file already.
                rejected.is_some_and(|r| r.expose() != token.get().expose())
                    || token.reread(account, "token")
            }
            Auth::ServiceAccount(sa) => {
                // A refused access token may mean a rotated client: take the new
                // secret, if any, for the token request that follows.
                sa.client_secret.reread(account, "client secret");
                let mut cached = sa.cached.lock().await;
                if cached.as_ref().map(|c| &c.token) == rejected {
                    *cached = None;
                }
                true
            }
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
        let client_secret = self.client_secret.get();
        let response = http
            .post(&self.token_endpoint)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", client_secret.expose()),
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
