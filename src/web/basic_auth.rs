//! HTTP basic authentication (`basic_auth_users`): [`BasicAuth`] checks credentials, and
//! [`protect`] is the axum middleware that enforces it on every route and adds the
//! configured response headers.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use ring::hmac;
use tokio::sync::Semaphore;

use super::WebConfig;
use crate::secret::Secret;

/// Checks `Authorization: Basic` credentials against bcrypt hashes, as the toolkit does:
///
/// - an unknown user costs one bcrypt verification too (against the costliest configured
///   hash, with the result discarded), so response times do not tell which users exist;
/// - bcrypt runs on the blocking pool, one verification at a time (the toolkit holds a
///   mutex for the same reason: a flood of bad passwords must not take every core);
/// - a successful verification is cached per user as an HMAC-SHA-256 of user and
///   password under a random per-process key (never the password itself), checked in
///   constant time, so scrapes every few seconds do not pay for bcrypt each time. The
///   cache holds at most one entry per configured user.
pub struct BasicAuth {
    users: HashMap<String, Secret>,
    decoy: Secret,
    key: hmac::Key,
    cache: Mutex<HashMap<String, hmac::Tag>>,
    bcrypt: Arc<Semaphore>,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("BasicAuth").field("users", &users).finish()
    }
}

/// The longest password bcrypt can check; Go's bcrypt refuses longer ones rather than
/// truncating them, and so do we.
const MAX_PASSWORD_BYTES: usize = 72;

impl BasicAuth {
    /// `users`: user → (validated bcrypt hash, its cost). Must not be empty.
    pub(super) fn new(users: HashMap<String, (Secret, u32)>) -> Result<BasicAuth, String> {
        let decoy = users
            .values()
            .max_by_key(|(_, cost)| *cost)
            .map(|(hash, _)| hash.clone())
            .ok_or("no users")?;
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| "cannot generate a random key for the credential cache")?;
        Ok(BasicAuth {
            users: users.into_iter().map(|(u, (h, _))| (u, h)).collect(),
            decoy,
            key,
            cache: Mutex::new(HashMap::new()),
            bcrypt: Arc::new(Semaphore::new(1)),
        })
    }

    /// Number of users whose last good password is cached.
    #[cfg(test)]
    fn cached_users(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// True when `authorization` carries valid basic credentials.
    async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        let user = String::from_utf8(user).ok();
        let hash = user.as_ref().and_then(|u| self.users.get(u));
        let message = user.as_ref().map(|u| cache_message(u, &password));
        if let (Some(user), Some(message)) = (&user, &message) {
            if hash.is_some() && self.cached(user, message) {
                return true;
            }
        }
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).clone();
        let Ok(permit) = self.bcrypt.clone().acquire_owned().await else {
            return false;
        };
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(&password, hash.expose()).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !(known && verified) {
            return false;
        }
        if let (Some(user), Some(message), Ok(mut cache)) = (user, message, self.cache.lock()) {
            cache.insert(user, hmac::sign(&self.key, &message));
        }
        true
    }

    fn cached(&self, user: &str, message: &[u8]) -> bool {
        let tag = match self.cache.lock() {
            Ok(cache) => cache.get(user).copied(),
            Err(_) => None,
        };
        // hmac::verify compares in constant time.
        tag.is_some_and(|tag| hmac::verify(&self.key, message, tag.as_ref()).is_ok())
    }
}

/// Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
fn cache_message(user: &str, password: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(8 + user.len() + password.len());
    message.extend_from_slice(&(user.len() as u64).to_be_bytes());
    message.extend_from_slice(user.as_bytes());
    message.extend_from_slice(password);
    message
}

/// `Basic base64(user:password)` → (user, password), as Go's `Request.BasicAuth` reads
/// it: case-insensitive scheme, standard base64, split at the first colon.
fn parse_basic(value: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.as_bytes();
    let prefix = b"basic ";
    if value.len() < prefix.len() || !value[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&value[prefix.len()..])
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// Wraps `router` in the basic-auth check and the extra headers of the current web
/// configuration, for every route and for the 404 fallback alike. Read at each request,
/// so that a reload changes users and headers from the next request on.
///
/// One layer for both, so that the headers land on the 401 as well, as the toolkit
/// sets them.
pub(crate) fn protect(router: Router, web: watch::Receiver<Arc<WebConfig>>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(web, guard_layer))
}

async fn guard_layer(
    State(web): State<watch::Receiver<Arc<WebConfig>>>,
    request: Request,
    next: Next,
) -> Response {
    // Clone the Arc and release the watch lock at once: the check below may wait.
    let web = web.borrow().clone();
    let allowed = match &web.basic_auth {
        None => true,
        Some(auth) => {
            auth.check(request.headers().get(header::AUTHORIZATION))
                .await
        }
    };
    let mut response = if allowed {
        next.run(request).await
    } else {
        unauthorized()
    };
    // Like the toolkit, on every response, the 401 included.
    for (name, value) in web.headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// The toolkit's 401: `WWW-Authenticate: Basic` and Go's `http.Error` body.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "Unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use base64::Engine as _;

    use super::super::fixtures::{files, SECRET_HASH};

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    #[tokio::test]
    async fn basic_auth_checks_and_caches_good_passwords_only() {
        let f = files();
        let config = f
            .parse(&format!("basic_auth_users:\n  alice: '{SECRET_HASH}'\n"))
            .unwrap();
        let auth = config.basic_auth.unwrap();
        assert!(!auth.check(None).await);
        assert!(!auth.check(Some(&basic("alice", "wrong"))).await);
        assert!(!auth.check(Some(&basic("mallory", "secret"))).await);
        assert_eq!(auth.cached_users(), 0);
        assert!(auth.check(Some(&basic("alice", "secret"))).await);
        assert_eq!(auth.cached_users(), 1);
        // From the cache now; a wrong password still fails after a good one was cached.
        assert!(auth.check(Some(&basic("alice", "secret"))).await);
        assert!(!auth.check(Some(&basic("alice", "secreT"))).await);
        assert!(
            !auth
                .check(Some(&basic("alice", &format!("secret{}", "x".repeat(80)))))
                .await
        );
        let lower = HeaderValue::from_str(
            basic("alice", "secret")
                .to_str()
                .unwrap()
                .replace("Basic", "bAsIc")
                .as_str(),
        )
        .unwrap();
        assert!(
            auth.check(Some(&lower)).await,
            "the scheme is case-insensitive"
        );
        for bad in ["Bearer abc", "Basic", "Basic !!!", "Basic YWxpY2U="] {
            assert!(
                !auth.check(Some(&HeaderValue::from_static(bad))).await,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_test_hash_is_what_it_claims() {
        assert!(bcrypt::verify("secret", SECRET_HASH).unwrap());
    }
}
