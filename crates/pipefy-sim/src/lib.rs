//! A fake Pipefy that speaks real GraphQL, for the exporter's `--demo` mode and for
//! integration tests over real sockets.
//!
//! It serves `POST /graphql` (executed by async-graphql, so aliases, variables,
//! fragments, validation errors and per-alias errors behave like a real server),
//! `POST /oauth/token` (OAuth2 client credentials) and `GET /sim/stats`. Tests drive it
//! through [`Simulator`]: change the data, deny organizations, inject HTTP failures and
//! latency, revoke issued tokens, and read back what the exporter asked.
//!
//! The GraphQL schema is the part of Pipefy's that the project's API notes document:
//! organizations with their subscription limits, and the *Usage Stats* API
//! (`myUsageStatsOrganizations`, `apiUsageStats`, `apiUsageStatsDaily`,
//! `aiCreditUsageStats`, `automationsUsageDetails`, `integrationsUsageStats` and the
//! `...Combined` forms over 1 to 25 organization uuids). Documented type names are used
//! as documented and every other type has an unguessable `Sim_<Name>_<xyz>` name, so
//! that a query typed with a guessed name fails here as it would against Pipefy.
//!
//! The data ([`SimData`]) is plain Rust values. Per organization ([`SimOrg`]):
//! subscription `limits`, `ai` credits split between the `ai_automation` and
//! `assistants` features, `tokens` with their billing organization, `api` calls by token
//! and operation name with the quota ([`SimApiUsage`]), `automation_jobs`, and
//! `integrations` tasks and flows ([`SimIntegrations`]). Across organizations: `denied`
//! (unreadable organizations), `usage_stats_denied` (readable, but without the *Usage
//! Stats* permission) and `bill_requests_to`, which bills the simulator's own billable
//! requests to an organization the way Pipefy would, so that the demo shows what
//! monitoring costs. The simulator keeps no history: every period answers the same
//! numbers, only the echoed `filterDate` window follows the question.
//!
//! Its own crate, so that the exporter's `src/` holds the exporter alone: the exporter
//! depends on it behind its `demo` feature (`--demo`) and for its tests and benchmarks;
//! it depends on nothing of the exporter (calendar arithmetic comes from `timefmt`).
//!
//! Layout: this file holds the public API and the shared state, `data.rs` the data
//! model and demo data, `schema.rs` the root fields and the organization types,
//! `usage.rs` the Usage Stats types, `window.rs` periods and date windows, `http.rs` the
//! routes, `complexity.rs` Pipefy's complexity count, `variants.rs` the schemas served;
//! `tests/` the tests over real sockets, one file per area.

mod complexity;
mod data;
mod http;
mod schema;
#[cfg(test)]
mod tests;
mod usage;
mod variants;
mod window;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::http::HeaderMap;

/// Pipefy's timestamps are to the second.
use timefmt::rfc3339_secs as rfc3339;

pub use data::{
    demo_data, Resource, SimAiCredits, SimAiResource, SimApiCall, SimApiUsage, SimData,
    SimIntegrations, SimLimit, SimOrg, SimToken,
};
pub use variants::SimSchema;

/// How many raw query texts [`SimStats::recent_queries`] keeps.
const RECENT_QUERIES: usize = 1000;

/// Lifetime of issued tokens when [`SimAuth::token_ttl`] is left at zero (its
/// `Default`): a zero lifetime would make every issued token useless at once, which is
/// never what a caller of `SimAuth { clients, ..Default::default() }` means.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Which credentials the simulator accepts.
#[derive(Clone, Debug, Default)]
pub struct SimAuth {
    /// Accept any request, even one without `Authorization` (demo mode).
    pub open: bool,
    /// Accepted personal access tokens (`Authorization: Bearer <t>`).
    pub static_tokens: Vec<String>,
    /// `(client_id, client_secret)` pairs accepted by `/oauth/token`.
    pub clients: Vec<(String, String)>,
    /// Lifetime of issued access tokens (`expires_in` is its whole seconds). Zero means
    /// one hour.
    pub token_ttl: Duration,
}

impl SimAuth {
    /// Any caller is accepted, with or without credentials (the demo, benchmarks).
    pub fn open() -> SimAuth {
        SimAuth {
            open: true,
            ..SimAuth::default()
        }
    }
}

/// What the simulator was asked, for assertions in tests and for curious demo users
/// (`GET /sim/stats`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimStats {
    /// Every `POST /graphql`, whatever its outcome.
    pub graphql_requests: u64,
    /// Requests that reached the GraphQL engine, by operation name (`operationName`,
    /// else the name in the document, else `"anonymous"`).
    pub operations: BTreeMap<String, u64>,
    /// Resolved root fields by name (`organization`, `apiUsageStats`, ...). An aliased
    /// field counts once per alias.
    pub root_fields: BTreeMap<String, u64>,
    /// The most organization uuids received in one combined usage-statistics field
    /// (`apiUsageStatsCombined`, ...), including refused ones: Pipefy takes at most 25,
    /// and tests assert an exporter never sends more.
    pub max_combined_uuids: usize,
    /// Organization ids named by `organization(id:)` and `organizations(ids:)`, with
    /// how many fields named each: what the exporter asked about, whatever the answer.
    pub organization_ids: BTreeMap<String, u64>,
    /// Organization uuids named by the usage-statistics fields (the uuid of a
    /// per-organization field, each uuid of a combined one), with how many fields named
    /// each.
    pub organization_uuids: BTreeMap<String, u64>,
    /// Every `POST /oauth/token`.
    pub token_requests: u64,
    pub tokens_issued: u64,
    /// 401s answered on `/graphql`.
    pub unauthorized: u64,
    /// Raw query texts of the last 1000 requests that reached the GraphQL engine,
    /// oldest first.
    pub recent_queries: Vec<String>,
    /// Requests refused as too complex (answered 200, so billed by Pipefy).
    pub too_complex: u64,
    /// The highest complexity of a request answered (not refused).
    pub max_complexity_answered: u64,
    /// Requests refused as a whole, by operation name: answered HTTP 200 with errors and
    /// no `data` (an unknown field, a missing variable, too complex). Pipefy bills them:
    /// this is what a wrong guess costs.
    pub rejected: BTreeMap<String, u64>,
}

/// Pipefy's documented complexity limit, which the simulator enforces unless told
/// otherwise ([`Simulator::set_complexity_limit`]).
const MAX_COMPLEXITY: u64 = 50_000;
/// What a list without `first:` counts for in the simulator's complexity (Pipefy's
/// documentation gives no number; 50 is the exporter's default assumption too).
const DEFAULT_PAGE_SIZE: u64 = 50;

/// An injected HTTP failure for `/graphql`.
#[derive(Clone, Copy, Debug)]
struct Failure {
    status: u16,
    retry_after: Option<u64>,
    /// With a body fault, `status` is 200 and the body is broken this way.
    body: Option<Corruption>,
}

/// A broken `200 OK` body, as a faulty proxy or an overloaded server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// A complete body that is not JSON (an HTML error page).
    Garbage,
    /// The start of a GraphQL response, then the connection breaks off.
    Truncated,
}

impl Failure {
    fn corrupt(corruption: Corruption) -> Failure {
        Failure {
            status: 200,
            retry_after: None,
            body: Some(corruption),
        }
    }
}

/// Everything that changes, behind one mutex. Critical sections are short and never
/// span an `.await`.
struct State {
    data: SimData,
    /// RFC 3339 time of the last data change, served as `updatedAt`.
    updated_at: String,
    stats: SimStats,
    /// `recent_queries` lives here as a ring buffer and is copied out by `stats()`.
    recent_queries: VecDeque<String>,
    /// Issued OAuth access tokens and when they expire.
    issued: HashMap<String, Instant>,
    /// Every access token ever issued, revoked or not (tests look for leaks).
    issued_history: Vec<String>,
    token_counter: u64,
    fail_next: VecDeque<Failure>,
    fail_all: Option<Failure>,
    latency: Duration,
    /// Ticks so far, which drive the oscillation of [`SimData::tick`].
    ticks: u64,
    /// Who may call; changes when a test rotates a credential.
    auth: SimAuth,
    /// Requests above this complexity are refused; `None`: no limit.
    complexity_limit: Option<u64>,
    page_size: u64,
    /// The schema served ([`SimSchema`]).
    schema: SimSchema,
    /// Whether `__schema` and `__type` are answered.
    introspection: bool,
}

struct Inner {
    schema: schema::SimSchema,
    /// Which fields of the schema are lists, for the complexity.
    shapes: complexity::Shapes,
    /// Seeds issued tokens, so tokens differ between simulators and runs.
    hasher: std::collections::hash_map::RandomState,
    state: Mutex<State>,
}

/// A fake Pipefy. Cheap to clone: clones share the same state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

/// Outcome of the checks made before a `/graphql` request is executed.
enum Admission {
    Unauthorized,
    Fail(Failure),
    Proceed { latency: Duration },
}

impl Simulator {
    pub fn new(data: SimData, auth: SimAuth) -> Self {
        let schema = schema::build_schema();
        Simulator {
            inner: Arc::new(Inner {
                shapes: complexity::Shapes::from_sdl(&schema.sdl()),
                schema,
                hasher: std::collections::hash_map::RandomState::new(),
                state: Mutex::new(State {
                    data,
                    updated_at: rfc3339(SystemTime::now()),
                    stats: SimStats::default(),
                    recent_queries: VecDeque::new(),
                    issued: HashMap::new(),
                    issued_history: Vec::new(),
                    token_counter: 0,
                    fail_next: VecDeque::new(),
                    fail_all: None,
                    latency: Duration::ZERO,
                    ticks: 0,
                    auth,
                    complexity_limit: Some(MAX_COMPLEXITY),
                    page_size: DEFAULT_PAGE_SIZE,
                    schema: SimSchema::default(),
                    introspection: true,
                }),
            }),
        }
    }

    /// The demo data, open to any caller.
    pub fn demo() -> Self {
        Simulator::new(demo_data(), SimAuth::open())
    }

    /// All the routes: `POST /graphql`, `POST /oauth/token`, `GET /sim/stats`.
    fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Serves all the routes (`POST /graphql`, `POST /oauth/token`, `GET /sim/stats`) on
    /// `listener` in a tokio task until [`SimServer::shutdown`].
    pub async fn spawn(&self, listener: tokio::net::TcpListener) -> std::io::Result<SimServer> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(listener, self.router()).with_graceful_shutdown(async move {
            // A dropped sender is not a request to stop: tests may let the SimServer
            // value go out of scope and still use the server.
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        let task = tokio::spawn(async move {
            if let Err(err) = serve.await {
                tracing::error!(%err, "simulator server failed");
            }
        });
        Ok(SimServer { addr, stop, task })
    }

    /// Changes the data (organizations, denied sets, billing) under the lock.
    pub fn update<R>(&self, f: impl FnOnce(&mut SimData) -> R) -> R {
        let mut st = self.lock();
        let r = f(&mut st.data);
        st.updated_at = rfc3339(SystemTime::now());
        r
    }

    /// Denies (or allows again) reading the organization with this id (for this crate's
    /// tests; the exporter's change [`SimData::denied`] through [`Simulator::update`]).
    #[cfg(test)]
    fn deny(&self, org_id: &str, denied: bool) {
        self.update(|d| {
            if denied {
                d.denied.insert(org_id.to_string());
            } else {
                d.denied.remove(org_id);
            }
        });
    }

    /// The next `count` `/graphql` requests (after authentication) answer `status`, with
    /// `Retry-After: retry_after` when given. Calls queue up: `fail_next(1, 500, None)`
    /// then `fail_next(1, 429, Some(7))` fails one request with each, in that order.
    /// Queued failures come before a [`Simulator::fail_all`] one.
    pub fn fail_next(&self, count: usize, status: u16, retry_after: Option<u64>) {
        let mut st = self.lock();
        st.fail_next.extend(std::iter::repeat_n(
            Failure {
                status,
                retry_after,
                body: None,
            },
            count,
        ));
    }

    /// Every `/graphql` request (after authentication) answers `200 OK` with a broken
    /// body until called with `None` (which also ends a [`Simulator::fail_all`]).
    pub fn corrupt_all(&self, corruption: Option<Corruption>) {
        self.lock().fail_all = corruption.map(Failure::corrupt);
    }

    /// Every `/graphql` request (after authentication) fails this way until called with
    /// `None`.
    pub fn fail_all(&self, failure: Option<(u16, Option<u64>)>) {
        self.lock().fail_all = failure.map(|(status, retry_after)| Failure {
            status,
            retry_after,
            body: None,
        });
    }

    /// Requests whose complexity (counted as Pipefy describes it, lists without
    /// `first:` as `page_size` items) exceeds `limit` are refused as Pipefy refuses them:
    /// HTTP 200, one error without `path`, no `data`. `None` lifts the limit. The
    /// default is Pipefy's 50,000 with pages of 50.
    pub fn set_complexity_limit(&self, limit: Option<u64>, page_size: u64) {
        let mut st = self.lock();
        st.complexity_limit = limit;
        st.page_size = page_size;
    }

    /// The complexity limit and page size in force.
    fn complexity_limit(&self) -> (Option<u64>, u64) {
        let st = self.lock();
        (st.complexity_limit, st.page_size)
    }

    /// Records the complexity of a request: refused (over the limit) or answered.
    fn record_complexity(&self, complexity: u64, refused: bool) {
        let mut st = self.lock();
        if refused {
            st.stats.too_complex += 1;
        } else {
            st.stats.max_complexity_answered = st.stats.max_complexity_answered.max(complexity);
        }
    }

    /// Serves `schema` from the next request on: introspection shows it, and a document
    /// selecting a field it lacks is refused as a whole ([`SimSchema`]).
    pub fn set_schema(&self, schema: SimSchema) {
        self.lock().schema = schema;
    }

    /// Answers introspection (`__schema`, `__type`), or refuses it as a server with
    /// introspection disabled does: an error without `path`, no `data`.
    pub fn set_introspection(&self, enabled: bool) {
        self.lock().introspection = enabled;
    }

    /// The schema in force and whether introspection is on.
    fn variant(&self) -> (SimSchema, bool) {
        let st = self.lock();
        (st.schema, st.introspection)
    }

    /// Counts a request refused as a whole.
    fn record_rejected(&self, operation: &str) {
        *self
            .lock()
            .stats
            .rejected
            .entry(operation.to_owned())
            .or_default() += 1;
    }

    /// Delay added to every `/graphql` request that passed the checks above.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Rotates credentials: from now on only `auth` is accepted (access tokens already
    /// issued stay valid until revoked or expired).
    pub fn set_auth(&self, auth: SimAuth) {
        self.lock().auth = auth;
    }

    /// Every access token issued so far is rejected from now on (401), as after a
    /// secret rotation. Tokens issued later work.
    pub fn revoke_access_tokens(&self) {
        self.lock().issued.clear();
    }

    /// Every access token issued so far, including revoked and expired ones.
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.lock().issued_history.clone()
    }

    pub fn stats(&self) -> SimStats {
        let st = self.lock();
        let mut stats = st.stats.clone();
        stats.recent_queries = st.recent_queries.iter().cloned().collect();
        stats
    }

    pub fn reset_stats(&self) {
        let mut st = self.lock();
        st.stats = SimStats::default();
        st.recent_queries.clear();
    }

    /// A step of fake activity so that demo graphs move: each organization's cards,
    /// records, API calls, automation jobs and integration tasks rise and fall back
    /// within a band, and its AI credits grow up to a cap, as the data's motion says.
    /// Limits never change.
    pub fn tick(&self) {
        let mut st = self.lock();
        st.ticks += 1;
        let step = st.ticks;
        st.data.tick(step);
        st.updated_at = rfc3339(SystemTime::now());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("simulator state poisoned")
    }

    /// Runs `f` on the data and the current `updatedAt` under the lock (for resolvers).
    fn read<R>(&self, f: impl FnOnce(&SimData, &str) -> R) -> R {
        let st = self.lock();
        f(&st.data, &st.updated_at)
    }

    /// Records the organization ids (`uuids: false`) or uuids a field named.
    fn record_asked<'a>(&self, uuids: bool, asked: impl IntoIterator<Item = &'a str>) {
        let mut st = self.lock();
        let counts = if uuids {
            &mut st.stats.organization_uuids
        } else {
            &mut st.stats.organization_ids
        };
        for key in asked {
            *counts.entry(key.to_owned()).or_default() += 1;
        }
    }

    fn record_combined_uuids(&self, count: usize) {
        let mut st = self.lock();
        st.stats.max_combined_uuids = st.stats.max_combined_uuids.max(count);
    }

    /// Whether `/graphql` requests are billed to an organization
    /// ([`SimData::bill_requests_to`]).
    fn bills_requests(&self) -> bool {
        self.lock().data.bill_requests_to.is_some()
    }

    /// Bills one API call made by `operation` (see [`SimData::bill_requests_to`]).
    fn bill(&self, operation: &str) {
        self.update(|data| data.bill(operation));
    }

    fn count_root_field(&self, name: &str) {
        *self
            .lock()
            .stats
            .root_fields
            .entry(name.to_string())
            .or_default() += 1;
    }

    /// Steps 1–3 of a `/graphql` request, in one critical section: count it, check its
    /// credentials, then take an injected failure if one is due.
    fn admit(&self, headers: &HeaderMap) -> Admission {
        let mut st = self.lock();
        st.stats.graphql_requests += 1;
        if !self.authorized(&mut st, headers) {
            st.stats.unauthorized += 1;
            return Admission::Unauthorized;
        }
        if let Some(failure) = st.fail_next.pop_front().or(st.fail_all) {
            return Admission::Fail(failure);
        }
        Admission::Proceed {
            latency: st.latency,
        }
    }

    fn authorized(&self, st: &mut State, headers: &HeaderMap) -> bool {
        if st.auth.open {
            return true;
        }
        let Some(token) = bearer_token(headers) else {
            return false;
        };
        if st.auth.static_tokens.iter().any(|t| t == token) {
            return true;
        }
        match st.issued.get(token) {
            Some(&expires) if Instant::now() < expires => true,
            Some(_) => {
                // Expired: forget it, so the map does not grow with dead tokens.
                st.issued.remove(token);
                false
            }
            None => false,
        }
    }

    /// Records a request that reached the GraphQL engine.
    fn record_operation(&self, operation: String, query: &str) {
        let mut st = self.lock();
        *st.stats.operations.entry(operation).or_default() += 1;
        if st.recent_queries.len() == RECENT_QUERIES {
            st.recent_queries.pop_front();
        }
        st.recent_queries.push_back(query.to_string());
    }

    /// The client-credentials grant: a new access token for a known client, or `None`.
    /// Returns the token and its `expires_in`.
    fn issue_token(&self, client_id: &str, client_secret: &str) -> Option<(String, u64)> {
        let mut st = self.lock();
        let known = st
            .auth
            .clients
            .iter()
            .any(|(id, secret)| id == client_id && secret == client_secret);
        st.stats.token_requests += 1;
        if !known {
            return None;
        }
        let ttl = match st.auth.token_ttl {
            Duration::ZERO => DEFAULT_TOKEN_TTL,
            ttl => ttl,
        };
        st.token_counter += 1;
        // Unique by the counter, unguessable enough for a fake by the random hash.
        let token = format!(
            "sim-{:016x}-{}",
            self.inner.hasher.hash_one((st.token_counter, client_id)),
            st.token_counter
        );
        st.issued.insert(token.clone(), Instant::now() + ttl);
        st.issued_history.push(token.clone());
        st.stats.tokens_issued += 1;
        Some((token, ttl.as_secs()))
    }

    /// Counts a token request that was rejected before its credentials were read.
    fn count_token_request(&self) {
        self.lock().stats.token_requests += 1;
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A running simulator server. Dropping it leaves the server running (it lives as long
/// as the tokio runtime); [`SimServer::shutdown`] stops it.
pub struct SimServer {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.base_url())
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base_url())
    }

    /// Stops accepting connections and closes idle ones; requests in flight finish.
    /// Returns at once: use [`SimServer::shutdown_and_wait`] to wait for the end.
    pub fn shutdown(self) {
        // An error means the server task already ended: nothing left to stop.
        let _ = self.stop.send(());
    }

    /// Like [`SimServer::shutdown`], then waits until the server has stopped, so that
    /// new connections to `addr` are refused afterwards.
    pub async fn shutdown_and_wait(self) {
        let _ = self.stop.send(());
        if let Err(err) = self.task.await {
            tracing::error!(%err, "simulator server task failed");
        }
    }
}
