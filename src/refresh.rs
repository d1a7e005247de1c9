//! The scheduler: each collector on its own interval, in the background, never on a
//! scrape. When one or more collectors are due, a refresh runs them for every
//! organization of every account, merges the outcome into the last snapshot and
//! publishes it; collectors that were not due keep their values untouched.
//!
//! Request plan of one refresh, per account (N organizations, B root fields a request):
//! - discovery (`organizations`), 1 request, only when no organizations are listed;
//! - identity (`organization(id:)`), ⌈unknown/B⌉ requests, only for organizations whose
//!   uuid a due usage-statistics collector needs and nobody has told yet (subscription
//!   limits tell it when they run first, discovery tells it too);
//! - each due collector: its root fields (one per organization, or one per 25 for the
//!   combined usage-statistics forms) in ⌈fields/B⌉ requests, all collectors concurrently
//!   within `max_concurrent_requests`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};

use crate::collectors::{Collector, Target};
use crate::config::{Account, Config, Credential};
use crate::exposition::{ExpositionInfo, Published};
use crate::pipefy::backoff::{self, Admission, Change, Health, Policy};
use crate::pipefy::model::{self, Organization};
use crate::pipefy::query::{self, RootField};
use crate::pipefy::{ApiError, PipefyClient, Settings};
use crate::self_metrics::{RefreshResult, SelfMetrics};
use crate::snapshot::{merge, OrgEntry, OrgMeta, Outcome, Snapshot};

/// Operation names of the requests that belong to no collector.
pub(crate) mod operation {
    pub const ORGANIZATIONS: &str = "PipefyOrganizations";
    pub const ORGANIZATION_INFO: &str = "PipefyOrganizationInfo";
}

/// What the requests that belong to no collector are called in log lines.
mod step {
    pub const DISCOVERY: &str = "discovery";
    pub const IDENTITY: &str = "identity";
}

const DISCOVERY: &str = "organizations { id uuid name planName }";
const IDENTITY: &str = "organization(id: $id) { id uuid name planName }";

/// The operations a configuration makes requests for, token requests included, so
/// that their counters exist from the start.
pub(crate) fn operations(config: &Config) -> Vec<&'static str> {
    let mut ops = Vec::new();
    if config.accounts.iter().any(|a| a.organizations.is_none()) {
        ops.push(operation::ORGANIZATIONS);
    }
    if config.collectors.iter().any(|c| c.needs_uuid()) {
        ops.push(operation::ORGANIZATION_INFO);
    }
    ops.extend(config.collectors.iter().map(|c| c.operation()));
    if config
        .accounts
        .iter()
        .any(|a| matches!(a.credential, Credential::ServiceAccount { .. }))
    {
        ops.push(crate::pipefy::auth::OAUTH_OPERATION);
    }
    ops
}

struct AccountClient {
    account: Account,
    client: PipefyClient,
    /// Backoff after a refused credential, and the circuit breaker. Locked briefly,
    /// never across an `.await`.
    health: Mutex<Health>,
}

/// Owns the clients and the schedule; publishes snapshots, with their exposition
/// rendered, through a watch channel.
pub struct Refresher {
    config: Arc<Config>,
    accounts: Vec<AccountClient>,
    metrics: Arc<SelfMetrics>,
    publish: watch::Sender<Arc<Published>>,
    /// Shared by all accounts: `max_concurrent_requests` is a process-wide budget.
    permits: Semaphore,
}

/// What one refresh produced.
#[derive(Debug, Default)]
pub struct RefreshOutcome {
    /// Every organization watched now, with what was learned of its identity.
    pub orgs: Vec<OrgEntry>,
    pub outcomes: Vec<Outcome>,
    /// The longest `Retry-After` Pipefy asked for, if it throttled us.
    pub retry_after: Option<Duration>,
    /// Accounts that could not authenticate or discover their organizations.
    pub failed_accounts: usize,
    /// Organizations not asked at all because their account is backing off: their
    /// failures were logged once, when the backoff began.
    pub skipped: HashSet<String>,
}

/// What an account can do this refresh.
enum Plan {
    /// Fetch these organizations (with what discovery already told of them).
    Fetch {
        ids: Vec<String>,
        metas: HashMap<String, OrgMeta>,
    },
    /// Nothing can be fetched (authentication or discovery failed, or the account is
    /// backing off: `skipped`): these organizations fail every due collector, which
    /// keeps their values until stale_after.
    Fail {
        ids: Vec<String>,
        error: String,
        skipped: bool,
    },
}

/// When a collector runs next: one interval after this refresh started, or later when
/// Pipefy sent a longer `Retry-After`. The wait is capped at `stale_after`: by then the
/// values are gone anyway, and an absurd header must not switch the exporter off.
fn next_start(
    started: Instant,
    now: Instant,
    interval: Duration,
    retry_after: Option<Duration>,
    stale_after: Duration,
) -> Instant {
    let regular = started.checked_add(interval).unwrap_or(now);
    match retry_after.map(|r| r.min(stale_after)) {
        Some(backoff) => regular.max(now.checked_add(backoff).unwrap_or(regular)),
        None => regular,
    }
}

impl Refresher {
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<SelfMetrics>,
        publish: watch::Sender<Arc<Published>>,
    ) -> anyhow::Result<Self> {
        let accounts = config
            .accounts
            .iter()
            .map(|account| {
                let settings = Settings {
                    timeout: config.timeout,
                    max_tries: config.max_tries,
                    retry_delay: config.retry_delay,
                    backoff_max: config.backoff_max,
                };
                let client = PipefyClient::new(
                    &config.endpoint,
                    &account.name,
                    &account.credential,
                    settings,
                    metrics.clone(),
                )?;
                metrics.set_account_health(&account.name, Duration::ZERO, false);
                Ok(AccountClient {
                    account: account.clone(),
                    client,
                    health: Mutex::new(Health::default()),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Refresher {
            permits: Semaphore::new(config.max_concurrent_requests),
            config,
            accounts,
            metrics,
            publish,
        })
    }

    /// Runs refreshes until `shutdown` resolves. Every collector is due at once; then
    /// each is due one of its intervals after its previous refresh started, or later if
    /// Pipefy asked us to back off.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut previous = self.publish.borrow().snapshot.clone();
        let collectors = &self.config.collectors;
        let mut next_due = vec![Instant::now(); collectors.len()];
        loop {
            let started = Instant::now();
            let due: Vec<&dyn Collector> = collectors
                .iter()
                .zip(&next_due)
                .filter(|(_, due)| **due <= started)
                .map(|(c, _)| c.as_ref())
                .collect();
            if !due.is_empty() {
                let outcome = tokio::select! {
                    outcome = self.refresh(&previous, &due) => outcome,
                    () = &mut shutdown => return,
                };
                let elapsed = started.elapsed();
                let results = self.report(&due, &outcome, elapsed);
                // A Retry-After beyond backoff_max is cut to it, as the client does.
                let retry_after = outcome.retry_after.map(|r| r.min(self.config.backoff_max));
                let snapshot = Arc::new(merge(
                    &previous,
                    outcome.orgs,
                    outcome.outcomes,
                    SystemTime::now(),
                ));
                tokio::select! {
                    () = self.publish(snapshot.clone()) => {}
                    () = &mut shutdown => return,
                }
                previous = snapshot;
                // Counted once its values are served: a client that saw the refresh
                // counter move finds them in the same scrape.
                for (collector, result) in results {
                    self.metrics.observe_refresh(collector, elapsed, result);
                }

                let now = Instant::now();
                for (collector, due) in collectors.iter().zip(&mut next_due) {
                    let schedule = collector.schedule();
                    *due = if *due <= started {
                        next_start(
                            started,
                            now,
                            schedule.interval,
                            retry_after,
                            schedule.stale_after,
                        )
                    } else {
                        // Not due this time, but Pipefy throttles the credential, not
                        // one operation: a collector due sooner waits as well.
                        next_start(*due, now, Duration::ZERO, retry_after, schedule.stale_after)
                    };
                }
                if let Some(backoff) = retry_after {
                    tracing::warn!(
                        retry_after_seconds = backoff.as_secs(),
                        "Pipefy is throttling; every collector waits at least that long"
                    );
                }
            }
            let Some(next) = next_due.iter().min().copied() else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Renders `snapshot` with the configuration's collectors and publishes both.
    async fn publish(&self, snapshot: Arc<Snapshot>) {
        let info = Arc::new(ExpositionInfo::new(&self.config));
        if let Some(published) = Published::render(snapshot, info).await {
            self.publish.send_replace(Arc::new(published));
        }
    }

    /// How each due collector's refresh went, for the self-metrics; logs failures once
    /// per collector, not once per organization. An account that could not even find
    /// its organizations counts as a failure of every collector, so that a first
    /// discovery that fails is not reported as a success of nothing.
    fn report(
        &self,
        due: &[&dyn Collector],
        outcome: &RefreshOutcome,
        elapsed: Duration,
    ) -> Vec<(&'static str, RefreshResult)> {
        let mut results = Vec::with_capacity(due.len());
        let accounts: HashMap<&str, &str> = outcome
            .orgs
            .iter()
            .map(|o| (o.id.as_str(), o.account.as_str()))
            .collect();
        for collector in due {
            let name = collector.name();
            let (ok, failed): (Vec<&Outcome>, Vec<&Outcome>) = outcome
                .outcomes
                .iter()
                .filter(|o| o.collector == name)
                .partition(|o| o.result.is_ok());
            let result =
                RefreshResult::from_tally(ok.len(), failed.len() + outcome.failed_accounts);
            results.push((name, result));
            // Organizations of an account that is backing off were not asked: that was
            // logged once, when the backoff began, not again at every refresh.
            let asked: Vec<&&Outcome> = failed
                .iter()
                .filter(|o| !outcome.skipped.contains(&o.org_id))
                .collect();
            if let Some(first) = asked.first() {
                tracing::warn!(
                    account = accounts.get(first.org_id.as_str()).copied().unwrap_or(""),
                    collector = name,
                    result = result.as_str(),
                    organizations_ok = ok.len(),
                    organizations_failed = failed.len(),
                    organizations_skipped = failed.len() - asked.len(),
                    first_failed = %first.org_id,
                    error = first.result.as_ref().err().map(String::as_str).unwrap_or(""),
                    "refresh finished with failures; last good values are kept until stale_after"
                );
            } else {
                tracing::debug!(
                    collector = name,
                    organizations = ok.len(),
                    organizations_skipped = failed.len(),
                    duration_seconds = elapsed.as_secs_f64(),
                    "refresh finished"
                );
            }
        }
        results
    }

    /// One refresh of every collector at once (what the first refresh does), for
    /// benchmarks and tests that drive the refresher by hand.
    pub async fn refresh_all(&self, previous: &Snapshot) -> RefreshOutcome {
        let all: Vec<&dyn Collector> = self.config.collectors.iter().map(|c| c.as_ref()).collect();
        self.refresh(previous, &all).await
    }

    /// One refresh of the `due` collectors over every account: first each account
    /// authenticates and finds its organizations (concurrently), then each organization
    /// is assigned to the first account in the file that has it, so that an organization
    /// two accounts can see is fetched (and paid for) once; then the accounts fetch
    /// concurrently.
    pub(crate) async fn refresh(
        &self,
        previous: &Snapshot,
        due: &[&dyn Collector],
    ) -> RefreshOutcome {
        let plans = join_all(self.accounts.iter().map(|ac| self.plan(ac, previous))).await;
        let mut outcome = RefreshOutcome::default();
        // Accounts that can fetch claim first; a failing account keeps only the
        // organizations nobody else fetches.
        let claimed: HashSet<String> = plans
            .iter()
            .filter_map(|(plan, _)| match plan {
                Plan::Fetch { ids, .. } => Some(ids.iter().cloned()),
                Plan::Fail { .. } => None,
            })
            .flatten()
            .collect();
        let admitted: Vec<bool> = plans
            .iter()
            .map(|(plan, _)| !matches!(plan, Plan::Fail { skipped: true, .. }))
            .collect();
        let mut owned: HashSet<String> = HashSet::new();
        let mut fetches = Vec::new();
        for (ac, (plan, retry_after)) in self.accounts.iter().zip(plans) {
            outcome.retry_after = outcome.retry_after.max(retry_after);
            let account = &ac.account.name;
            match plan {
                Plan::Fetch { mut ids, metas } => {
                    ids.retain(|id| owned.insert(id.clone()));
                    fetches.push(self.collect(ac, ids, metas, previous, due));
                }
                Plan::Fail {
                    ids,
                    error,
                    skipped,
                } => {
                    outcome.failed_accounts += 1;
                    for id in ids {
                        if claimed.contains(&id) || !owned.insert(id.clone()) {
                            continue;
                        }
                        if skipped {
                            outcome.skipped.insert(id.clone());
                        }
                        outcome
                            .outcomes
                            .extend(due.iter().map(|c| failed(&id, *c, error.clone())));
                        outcome.orgs.push(OrgEntry {
                            id,
                            account: account.clone(),
                            meta: None,
                        });
                    }
                }
            }
        }
        for fetched in join_all(fetches).await {
            outcome.retry_after = outcome.retry_after.max(fetched.retry_after);
            outcome.orgs.extend(fetched.orgs);
            outcome.outcomes.extend(fetched.outcomes);
        }
        for (ac, admitted) in self.accounts.iter().zip(admitted) {
            let tally = ac.client.take_tally();
            if admitted {
                self.judge(ac, tally.verdict());
            }
        }
        outcome
    }

    fn policy(&self) -> Policy {
        Policy {
            base: self.config.backoff_base,
            max: self.config.backoff_max,
            threshold: backoff::CIRCUIT_THRESHOLD,
        }
    }

    /// Whether an account may send this refresh (an open circuit's wait being over
    /// turns it half-open here).
    fn admit(&self, ac: &AccountClient) -> Admission {
        let (admission, change) = {
            let mut health = ac.health.lock().unwrap_or_else(|e| e.into_inner());
            health.admit(Instant::now())
        };
        if let Some(change) = change {
            self.announce(ac, change);
        }
        admission
    }

    /// Updates an account's health with how its refresh went.
    fn judge(&self, ac: &AccountClient, verdict: backoff::Verdict) {
        let change = {
            let mut health = ac.health.lock().unwrap_or_else(|e| e.into_inner());
            health.record(verdict, Instant::now(), &self.policy())
        };
        if let Some(change) = change {
            self.announce(ac, change);
        }
    }

    /// One log line per change of an account's state (not per request), and the
    /// gauges that show the state between them.
    fn announce(&self, ac: &AccountClient, change: Change) {
        let account = ac.account.name.as_str();
        let (wait, open) = {
            let health = ac.health.lock().unwrap_or_else(|e| e.into_inner());
            (health.wait(), health.circuit_open())
        };
        self.metrics.set_account_health(account, wait, open);
        match change {
            Change::BackingOff { wait } => tracing::warn!(
                account,
                wait_seconds = wait.as_secs_f64(),
                backoff_max_seconds = self.config.backoff_max.as_secs_f64(),
                "Pipefy refused the credential (401 or 403, after a new access token where possible); this account's refreshes are skipped for a wait that doubles up to pipefy.backoff_max until it is accepted again"
            ),
            Change::StillRejected { wait } => tracing::debug!(
                account,
                wait_seconds = wait.as_secs_f64(),
                "credential still refused; waiting longer"
            ),
            Change::CircuitOpened { failures, wait } => tracing::warn!(
                account,
                failed_refreshes = failures,
                wait_seconds = wait.as_secs_f64(),
                "circuit open: Pipefy failed every request of this account's last refreshes; skipping its refreshes, then one refresh will probe"
            ),
            Change::HalfOpen => tracing::info!(
                account,
                "circuit half-open: this refresh probes Pipefy"
            ),
            Change::CircuitReopened { wait } => tracing::warn!(
                account,
                wait_seconds = wait.as_secs_f64(),
                "circuit open again: the probe failed; waiting longer"
            ),
            Change::Recovered => tracing::info!(
                account,
                "Pipefy answers this account again; backoff over, circuit closed"
            ),
        }
    }

    /// Authenticates (a broken credential then costs one token request per refresh,
    /// not one per batch) and finds the organizations to ask about.
    async fn plan(&self, ac: &AccountClient, previous: &Snapshot) -> (Plan, Option<Duration>) {
        let account = ac.account.name.as_str();
        // What to report as failed when nothing can be fetched: the configured
        // organizations, or the ones discovered before.
        let fallback = || match &ac.account.organizations {
            Some(ids) => ids.clone(),
            None => previous
                .orgs
                .values()
                .filter(|o| o.account == account)
                .map(|o| o.meta.id.clone())
                .collect(),
        };
        if let Admission::Wait { remaining, why } = self.admit(ac) {
            let plan = Plan::Fail {
                ids: fallback(),
                error: format!(
                    "not asked: {}; next try in {}s",
                    why.as_str(),
                    remaining.as_secs_f64().ceil()
                ),
                skipped: true,
            };
            return (plan, None);
        }
        if let Err(error) = ac.client.authenticate().await {
            tracing::warn!(account, %error, "cannot authenticate to Pipefy; last good values are kept until stale_after");
            let plan = Plan::Fail {
                ids: fallback(),
                error: error.to_string(),
                skipped: false,
            };
            return (plan, error.retry_after());
        }
        match &ac.account.organizations {
            Some(ids) => (
                Plan::Fetch {
                    ids: ids.clone(),
                    metas: HashMap::new(),
                },
                None,
            ),
            None => match self.discover(&ac.client).await {
                Ok(found) => (
                    Plan::Fetch {
                        ids: found.iter().map(|m| m.id.clone()).collect(),
                        metas: found.into_iter().map(|m| (m.id.clone(), m)).collect(),
                    },
                    None,
                ),
                Err(error) => {
                    tracing::warn!(account, collector = step::DISCOVERY, %error, "organization discovery failed; keeping the organizations found before");
                    let plan = Plan::Fail {
                        ids: fallback(),
                        error: format!("discovery failed: {error}"),
                        skipped: false,
                    };
                    (plan, error.retry_after())
                }
            },
        }
    }

    /// Runs the due collectors for `ids` with one account's client.
    async fn collect(
        &self,
        ac: &AccountClient,
        ids: Vec<String>,
        mut metas: HashMap<String, OrgMeta>,
        previous: &Snapshot,
        due: &[&dyn Collector],
    ) -> RefreshOutcome {
        let account = ac.account.name.as_str();
        let mut outcome = RefreshOutcome::default();
        // Identity known before this refresh: discovery's, else the last snapshot's.
        for id in &ids {
            if !metas.contains_key(id) {
                if let Some(org) = previous.orgs.get(id).filter(|o| o.meta.uuid.is_some()) {
                    metas.insert(id.clone(), org.meta.clone());
                }
            }
        }
        let all: Vec<Target> = ids
            .iter()
            .map(|id| Target {
                id: id.clone(),
                uuid: None,
            })
            .collect();

        // Collectors that tell identity without needing it go first (subscription
        // limits); the others wait for the uuids.
        let (first, then): (Vec<&dyn Collector>, Vec<&dyn Collector>) =
            due.iter().partition(|c| !c.needs_uuid());
        let mut identity_errors: HashMap<String, String> = HashMap::new();
        let firsts = join_all(first.iter().map(|c| self.run_collector(ac, *c, &all))).await;
        for (collector, (decoded, retry_after)) in first.iter().zip(firsts) {
            outcome.retry_after = outcome.retry_after.max(retry_after);
            for d in decoded {
                if let Some(meta) = d.meta {
                    metas.insert(d.org_id.clone(), meta);
                } else if let (true, Err(error)) = (collector.tells_identity(), &d.result) {
                    // Its `organization(id:)` failed: asking again for identity alone
                    // would fail the same way. (A failing token selection says nothing
                    // about identity, so it does not count here.)
                    identity_errors.insert(d.org_id.clone(), error.clone());
                }
                outcome.outcomes.push(Outcome {
                    org_id: d.org_id,
                    collector: collector.name(),
                    stale_after: collector.schedule().stale_after,
                    result: d.result,
                });
            }
        }

        if !then.is_empty() {
            // Identity only for organizations whose uuid is still unknown, and not for
            // those whose `organization(id:)` just failed: it would fail the same way.
            let unknown: Vec<&str> = ids
                .iter()
                .filter(|id| metas.get(*id).and_then(|m| m.uuid.as_ref()).is_none())
                .filter(|id| !identity_errors.contains_key(*id))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                let (found, errors, retry_after) = self.identify(ac, &unknown).await;
                outcome.retry_after = outcome.retry_after.max(retry_after);
                metas.extend(found.into_iter().map(|m| (m.id.clone(), m)));
                identity_errors.extend(errors);
            }
            let with_uuid: Vec<Target> = ids
                .iter()
                .filter_map(|id| {
                    let uuid = metas.get(id)?.uuid.clone()?;
                    Some(Target {
                        id: id.clone(),
                        uuid: Some(uuid),
                    })
                })
                .collect();
            let runs = join_all(then.iter().map(|c| self.run_collector(ac, *c, &with_uuid))).await;
            for (collector, (decoded, retry_after)) in then.iter().zip(runs) {
                outcome.retry_after = outcome.retry_after.max(retry_after);
                let mut missing: HashSet<&String> = ids.iter().collect();
                for d in decoded {
                    missing.remove(&d.org_id);
                    outcome.outcomes.push(Outcome {
                        org_id: d.org_id,
                        collector: collector.name(),
                        stale_after: collector.schedule().stale_after,
                        result: d.result,
                    });
                }
                // No uuid, so it could not be asked.
                outcome.outcomes.extend(missing.into_iter().map(|id| {
                    let why = identity_errors
                        .get(id)
                        .map(String::as_str)
                        .unwrap_or("not returned");
                    failed(id, *collector, format!("organization uuid unknown: {why}"))
                }));
            }
        }

        outcome.orgs = ids
            .into_iter()
            .map(|id| OrgEntry {
                meta: metas.remove(&id),
                account: account.to_owned(),
                id,
            })
            .collect();
        outcome
    }

    /// One collector over `orgs`: its root fields, batched, then decoded.
    async fn run_collector(
        &self,
        ac: &AccountClient,
        collector: &dyn Collector,
        orgs: &[Target],
    ) -> (Vec<crate::collectors::Decoded>, Option<Duration>) {
        if orgs.is_empty() {
            return (Vec::new(), None);
        }
        let fields = collector.fields(orgs);
        let fetched = ac
            .client
            .fetch(
                collector.name(),
                collector.operation(),
                &fields,
                self.config.max_orgs_per_request,
                &self.permits,
            )
            .await;
        (
            collector.decode(orgs, &fetched.answers),
            fetched.retry_after,
        )
    }

    /// Identity (uuid, name, plan) of organizations nothing has told yet.
    async fn identify(
        &self,
        ac: &AccountClient,
        ids: &[&str],
    ) -> (Vec<OrgMeta>, HashMap<String, String>, Option<Duration>) {
        let fields: Vec<RootField> = ids
            .iter()
            .map(|id| RootField::new(*id, IDENTITY).var("id", "ID!", serde_json::json!(id)))
            .collect();
        let fetched = ac
            .client
            .fetch(
                step::IDENTITY,
                operation::ORGANIZATION_INFO,
                &fields,
                self.config.max_orgs_per_request,
                &self.permits,
            )
            .await;
        let mut found = Vec::new();
        let mut errors = HashMap::new();
        for id in ids {
            match crate::collectors::answer::<Organization>(&fetched.answers, id) {
                Ok(org) => found.push(org.meta()),
                Err(error) => {
                    errors.insert((*id).to_owned(), error);
                }
            }
        }
        (found, errors, fetched.retry_after)
    }

    async fn discover(&self, client: &PipefyClient) -> Result<Vec<OrgMeta>, ApiError> {
        #[derive(Deserialize)]
        struct Data {
            a0: Vec<Organization>,
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::Transport("shutting down".into()))?;
        let document = query::document(
            operation::ORGANIZATIONS,
            &[RootField::new("all", DISCOVERY)],
        );
        let response = client
            .execute(
                operation::ORGANIZATIONS,
                &document.text,
                &document.variables,
            )
            .await?;
        if let Some(error) = response.errors.first() {
            return Err(ApiError::Decode(format!(
                "organizations query failed: {}",
                model::truncate(&error.message)
            )));
        }
        let data = serde_json::Value::Object(response.data.unwrap_or_default());
        let data: Data = serde_json::from_value(data)
            .map_err(|e| ApiError::Decode(format!("unexpected organizations response: {e}")))?;
        Ok(data.a0.iter().map(Organization::meta).collect())
    }
}

fn failed(id: &str, collector: &dyn Collector, error: String) -> Outcome {
    Outcome {
        org_id: id.to_owned(),
        collector: collector.name(),
        stale_after: collector.schedule().stale_after,
        result: Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_start_honours_retry_after_within_stale_after() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let stale = Duration::from_secs(900);
        // No throttling: one interval after the start.
        assert_eq!(
            next_start(t0, t0 + Duration::from_secs(5), minute, None, stale),
            t0 + minute
        );
        // A short Retry-After changes nothing.
        assert_eq!(
            next_start(
                t0,
                t0 + Duration::from_secs(5),
                minute,
                Some(Duration::from_secs(10)),
                stale
            ),
            t0 + minute
        );
        // A longer one postpones, counted from now.
        let now = t0 + Duration::from_secs(5);
        assert_eq!(
            next_start(t0, now, minute, Some(Duration::from_secs(120)), stale),
            now + Duration::from_secs(120)
        );
        // An absurd one is capped at stale_after instead of overflowing.
        assert_eq!(
            next_start(t0, now, minute, Some(Duration::from_secs(u64::MAX)), stale),
            now + stale
        );
    }
}
