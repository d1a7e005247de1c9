//! The scheduler: each collector on its own interval, in the background, never on a
//! scrape. When one or more collectors are due, a refresh runs them for every
//! organization of every account, merges the outcome into the last snapshot and
//! publishes it; collectors that were not due keep their values untouched.
//!
//! Request plan of one refresh, per account (the client packs what is asked,
//! [`crate::pipefy::batch`]):
//! - the schema check (introspection), at start, after a reload and once per
//!   `pipefy.schema_check_interval` (`queries.rs`);
//! - discovery (`organizations`), 1 request, only when no organizations are listed;
//! - one round with every due collector's root fields that need no uuid or whose
//!   organization's uuid is known, plus identity (`organization(id:)`) for organizations
//!   whose uuid a due usage-statistics collector needs, nobody has told yet and no due
//!   collector tells (subscription limits does); in steady state this is the only round;
//! - a second round for the usage statistics of organizations the first round told the
//!   uuid of (the first refresh with `organizations` listed).
//!
//! Within a round, fields of all collectors share requests, filled up to Pipefy's
//! complexity limit.
//!
//! The rooms: `schedule.rs` the loop and when each collector is due; `accounts.rs` the
//! clients, their credential backoff and circuit breaker, and reloads; `discovery.rs`
//! which organizations an account fetches and what is known of them; `rounds.rs` what
//! one account asks and how the answers become outcomes; `queries.rs` the schema check.
//! Two entry points: [`Refresher::run`], the loop, and [`Refresher::refresh`], one
//! refresh for tests and benchmarks.

mod accounts;
mod discovery;
mod queries;
mod rounds;
mod schedule;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use tokio::sync::{watch, Semaphore};

use crate::collectors::{failed, Collector};
use crate::config::Config;
use crate::exposition::{ExpositionInfo, Published};
use crate::pipefy::batch::SHARED_OPERATION;
use crate::pipefy::Credential;
use crate::self_metrics::{RefreshResult, SelfMetrics};
use crate::snapshot::{merge, OrgEntry, Outcome, Snapshot};
use accounts::AccountClient;
use discovery::{AccountPlan, Scope};

pub(crate) use accounts::settings;

/// Owns the clients and the schedule; publishes snapshots, with their exposition
/// rendered, through a watch channel.
pub struct Refresher {
    config: Arc<Config>,
    accounts: Vec<AccountClient>,
    metrics: Arc<SelfMetrics>,
    publish: watch::Sender<Arc<Published>>,
    /// Shared by all accounts: `max_concurrent_requests` is a process-wide budget.
    permits: Semaphore,
    /// Configurations from reloads (`None`: the configuration never changes).
    reloads: Option<watch::Receiver<Arc<Config>>>,
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

/// Which collectors [`Refresher::refresh`] runs.
#[derive(Clone, Copy, Debug)]
pub enum Due<'a> {
    /// Every enabled collector, as the first refresh does.
    All,
    /// These collectors only, as when only they are due.
    Only(&'a [&'a str]),
}

impl Refresher {
    /// A refresher whose snapshots nobody reads, for benchmarks and tests that call
    /// [`Refresher::refresh`] themselves.
    pub fn standalone(config: Arc<Config>, metrics: Arc<SelfMetrics>) -> anyhow::Result<Self> {
        let info = Arc::new(ExpositionInfo::new(&config.collectors, config.shard));
        let nothing = Published::new(Arc::default(), info, SystemTime::now(), &[]);
        Refresher::new(config, metrics, watch::channel(Arc::new(nothing)).0)
    }

    pub fn new(
        config: Arc<Config>,
        metrics: Arc<SelfMetrics>,
        publish: watch::Sender<Arc<Published>>,
    ) -> anyhow::Result<Self> {
        let accounts = config
            .accounts
            .iter()
            .map(|account| AccountClient::new(&config, account, &metrics))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Refresher {
            permits: Semaphore::new(config.max_concurrent_requests),
            config,
            accounts,
            metrics,
            publish,
            reloads: None,
        })
    }

    /// Applies every configuration sent on `reloads` between refreshes; what is
    /// published from then on is rendered with it.
    pub(crate) fn follow(mut self, reloads: watch::Receiver<Arc<Config>>) -> Self {
        self.reloads = Some(reloads);
        self
    }

    /// Runs refreshes until `shutdown` resolves (`schedule.rs`).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        schedule::run(schedule::Running::new(self), shutdown).await;
    }

    /// One refresh of the `due` collectors over every account, as the loop does but
    /// without publishing it, for tests and benchmarks that count what it sends.
    pub async fn refresh(&self, previous: &Snapshot, due: Due<'_>) -> RefreshOutcome {
        let due: Vec<&dyn Collector> = self
            .config
            .collectors
            .iter()
            .filter(|c| match due {
                Due::All => true,
                Due::Only(names) => names.contains(&c.name()),
            })
            .map(|c| c.as_ref())
            .collect();
        let outcome = self.fetch(previous, &due, Scope::All).await;
        self.show_health();
        outcome
    }

    /// Fetches the `due` collectors for the organizations in `scope`, the others carried
    /// over untouched: first each account authenticates and finds its organizations
    /// (concurrently), then each organization is assigned to the first account in the
    /// file that has it, so that an organization two accounts can see is fetched (and
    /// paid for) once; then the accounts fetch concurrently.
    async fn fetch(
        &self,
        previous: &Snapshot,
        due: &[&dyn Collector],
        scope: Scope<'_>,
    ) -> RefreshOutcome {
        let accounts: Vec<&AccountClient> = self
            .accounts
            .iter()
            .filter(|ac| scope.asks(&ac.account.name))
            .collect();
        let plans = join_all(accounts.iter().map(|ac| async {
            let (mut plan, retry_after) = self.plan_account(ac, previous).await;
            plan.retain(|id| scope.wants(id, previous));
            (plan, retry_after)
        }))
        .await;
        let mut outcome = RefreshOutcome::default();
        // Accounts that can fetch claim first; a failing account keeps only the
        // organizations nobody else fetches.
        let claimed: HashSet<String> = plans
            .iter()
            .filter_map(|(plan, _)| match plan {
                AccountPlan::Fetch { ids, .. } => Some(ids.iter().cloned()),
                AccountPlan::Fail { .. } => None,
            })
            .flatten()
            .collect();
        let admitted: Vec<bool> = plans
            .iter()
            .map(|(plan, _)| !matches!(plan, AccountPlan::Fail { skipped: true, .. }))
            .collect();
        let mut owned: HashSet<String> = HashSet::new();
        let mut fetches = Vec::new();
        for (ac, (plan, retry_after)) in accounts.iter().zip(plans) {
            outcome.retry_after = outcome.retry_after.max(retry_after);
            match plan {
                AccountPlan::Fetch { mut ids, metas } => {
                    ids.retain(|id| owned.insert(id.clone()));
                    fetches.push(self.fetch_account(ac, ids, metas, previous, due));
                }
                AccountPlan::Fail {
                    ids,
                    error,
                    skipped,
                } => {
                    outcome.failed_accounts += 1;
                    // Only the organizations nobody else fetches.
                    let ids = ids
                        .into_iter()
                        .filter(|id| !claimed.contains(id) && owned.insert(id.clone()));
                    fail_account(&mut outcome, ac, ids, &error, skipped, due);
                }
            }
        }
        for fetched in join_all(fetches).await {
            outcome.retry_after = outcome.retry_after.max(fetched.retry_after);
            // The usual single account's are moved, not copied into a new vector.
            append(&mut outcome.orgs, fetched.orgs);
            append(&mut outcome.outcomes, fetched.outcomes);
        }
        for (ac, admitted) in accounts.iter().zip(admitted) {
            let tally = ac.client.take_tally();
            if admitted {
                self.record_health(ac, tally.verdict());
            }
        }
        if let Scope::Newcomers { .. } = scope {
            carry_over(&mut outcome, previous);
        }
        outcome
    }

    /// One refresh of the `due` collectors in `scope`, published: fetched, merged,
    /// published, then counted (once its values are served: a client that saw the
    /// refresh counter move finds them in the same scrape). Returns the new snapshot and
    /// the `Retry-After` to honour, if Pipefy throttled (cut to `backoff_max`, as the
    /// client does).
    async fn refresh_and_publish(
        &self,
        previous: &Snapshot,
        due: &[&dyn Collector],
        scope: Scope<'_>,
    ) -> (Arc<Snapshot>, Option<Duration>) {
        let started = std::time::Instant::now();
        let outcome = self.fetch(previous, due, scope).await;
        let elapsed = started.elapsed();
        let results = self.report(due, &outcome, elapsed);
        let retry_after = outcome.retry_after.map(|r| r.min(self.config.backoff_max));
        let snapshot = Arc::new(merge(
            previous,
            outcome.orgs,
            outcome.outcomes,
            SystemTime::now(),
        ));
        self.publish(snapshot.clone()).await;
        for (collector, result) in results {
            self.metrics.observe_refresh(collector, elapsed, result);
        }
        self.show_health();
        if let Some(backoff) = retry_after {
            tracing::warn!(
                retry_after_seconds = backoff.as_secs(),
                "Pipefy is throttling; every collector waits at least that long"
            );
        }
        (snapshot, retry_after)
    }

    /// Renders `snapshot` with the running configuration's collectors and publishes
    /// both.
    async fn publish(&self, snapshot: Arc<Snapshot>) {
        let info = Arc::new(ExpositionInfo::new(
            &self.config.collectors,
            self.config.shard,
        ));
        // In the formats the scrapes of the last publication asked for.
        let formats = self.publish.borrow().next_formats();
        if let Some(published) = Published::render(snapshot, info, formats).await {
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
        let accounts: HashMap<&str, &str> = outcome
            .orgs
            .iter()
            .map(|o| (o.id.as_str(), o.account.as_str()))
            .collect();
        let mut results = Vec::with_capacity(due.len());
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
}

/// Every due collector fails for the organizations `ids` of an account that cannot fetch
/// them; `skipped`: it is backing off, which was logged once, when the backoff began.
fn fail_account(
    outcome: &mut RefreshOutcome,
    ac: &AccountClient,
    ids: impl Iterator<Item = String>,
    error: &str,
    skipped: bool,
    due: &[&dyn Collector],
) {
    for id in ids {
        if skipped {
            outcome.skipped.insert(id.clone());
        }
        outcome
            .outcomes
            .extend(due.iter().map(|c| failed(&id, *c, error.to_owned())));
        outcome.orgs.push(OrgEntry {
            id,
            account: ac.account.name.clone(),
            meta: None,
        });
    }
}

/// The organizations of `previous` that a refresh of newcomers did not ask about, as they
/// are: merge drops the organizations it is not given.
fn carry_over(outcome: &mut RefreshOutcome, previous: &Snapshot) {
    let asked: HashSet<&str> = outcome.orgs.iter().map(|o| o.id.as_str()).collect();
    let kept: Vec<OrgEntry> = previous
        .orgs
        .values()
        .filter(|org| !asked.contains(org.meta.id.as_str()))
        .map(|org| OrgEntry {
            id: org.meta.id.clone(),
            account: org.account.clone(),
            meta: None,
        })
        .collect();
    outcome.orgs.extend(kept);
}

/// `more` added to `all`; taken as it is when `all` is still empty.
fn append<T>(all: &mut Vec<T>, mut more: Vec<T>) {
    if all.is_empty() {
        std::mem::swap(all, &mut more);
    } else {
        all.append(&mut more);
    }
}

/// The operations a configuration makes requests for, token requests included, so
/// that their counters exist from the start.
pub(crate) fn operations(config: &Config) -> Vec<&'static str> {
    let mut ops = Vec::new();
    if config.accounts.iter().any(|a| a.organizations.is_none()) {
        ops.push(discovery::operation::ORGANIZATIONS);
    }
    if config.collectors.iter().any(|c| c.needs_uuid()) {
        ops.push(discovery::operation::ORGANIZATION_INFO);
    }
    if config.schema_check.introspection {
        ops.push(crate::pipefy::schema::OPERATION);
    }
    ops.extend(config.collectors.iter().map(|c| c.operation()));
    let identity = usize::from(ops.contains(&discovery::operation::ORGANIZATION_INFO));
    if config.collectors.len() + identity > 1 {
        ops.push(SHARED_OPERATION);
    }
    if config
        .accounts
        .iter()
        .any(|a| matches!(a.credential, Credential::ServiceAccount { .. }))
    {
        ops.push(crate::pipefy::auth::OAUTH_OPERATION);
    }
    ops
}
