//! The scheduler: each collector on its own interval, in the background, never on a
//! scrape. When one or more collectors are due, a refresh runs them for every
//! organization of every account, merges the outcome into the last snapshot and
//! publishes it; collectors that were not due keep their values untouched.
//!
//! Request plan of one refresh, per account (the client packs what is asked,
//! [`crate::pipefy::batch`]):
//! - discovery (`organizations`), 1 request, only when no organizations are listed;
//! - one round with every due collector's root fields that need no uuid or whose
//!   organization's uuid is known, plus identity (`organization(id:)`) for organizations
//!   whose uuid a due usage-statistics collector needs, nobody has told yet and no due
//!   collector tells (subscription limits does); in steady state this is the only round;
//! - a second round for the usage statistics of organizations the first round told the
//!   uuid of (the first refresh with `organizations` listed).
//!
//! Within a round, fields of all collectors share requests, filled up to Pipefy's
//! complexity limit; a collector whose query rests on an undocumented name shares only
//! once Pipefy has accepted it.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};

mod queries;

use crate::collectors::{Collector, Decoded, Target};
use crate::config::{Account, Config};
use crate::exposition::{ExpositionInfo, Published};
use crate::pipefy::backoff::{self, Admission, Change, Health, Policy, Why};
use crate::pipefy::batch::{Part, SHARED_OPERATION};
use crate::pipefy::model::{self, Organization};
use crate::pipefy::query::{self, RootField};
use crate::pipefy::schema::checks::QueryChecks;
use crate::pipefy::Credential;
use crate::pipefy::{Answers, ApiError, PipefyClient, Settings};
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
    if config.schema_check.introspection {
        ops.push(crate::pipefy::schema::OPERATION);
    }
    ops.extend(config.collectors.iter().map(|c| c.operation()));
    if config.collectors.len() + usize::from(ops.contains(&operation::ORGANIZATION_INFO)) > 1 {
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

struct AccountClient {
    account: Account,
    client: PipefyClient,
    /// Backoff after a refused credential, and the circuit breaker. Locked briefly,
    /// never across an `.await`.
    health: Mutex<Health>,
    /// What is known of each collector's query, and when the schema is checked next.
    /// Locked briefly, never across an `.await`.
    checks: Mutex<QueryChecks>,
}

/// A poisoned lock still holds plain data: use it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

/// Which organizations a refresh asks about.
#[derive(Clone, Copy, Debug)]
enum Scope<'a> {
    /// Every organization of every account: a regular refresh.
    All,
    /// Only organizations the snapshot does not have yet, of these accounts: what a
    /// reload added, fetched at once rather than one interval later, without paying
    /// again for what is already known.
    Newcomers { accounts: &'a HashSet<String> },
}

impl Scope<'_> {
    fn asks(&self, account: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Newcomers { accounts } => accounts.contains(account),
        }
    }

    fn wants(&self, id: &str, previous: &Snapshot) -> bool {
        match self {
            Scope::All => true,
            Scope::Newcomers { .. } => !previous.orgs.contains_key(id),
        }
    }
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

impl Plan {
    fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        match self {
            Plan::Fetch { ids, .. } | Plan::Fail { ids, .. } => ids.retain(|id| keep(id)),
        }
    }
}

/// The accounts of `config` that may watch organizations `previous` does not have:
/// those listing one, and those discovering that did not run under `before` (an
/// account that already discovered finds newcomers at its own next refresh).
fn with_newcomers(config: &Config, before: &[String], previous: &Snapshot) -> HashSet<String> {
    config
        .accounts
        .iter()
        .filter(|a| match &a.organizations {
            Some(ids) => ids.iter().any(|id| !previous.orgs.contains_key(id)),
            None => !before.contains(&a.name),
        })
        .map(|a| a.name.clone())
        .collect()
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

/// How `config` asks Pipefy, for every account's client.
pub(crate) fn settings(config: &Config) -> Settings {
    Settings {
        timeout: config.timeout,
        max_tries: config.max_tries,
        retry_delay: config.retry_delay,
        backoff_max: config.backoff_max,
        limits: config.request_limits.clone(),
    }
}

fn account_client(
    config: &Config,
    account: &Account,
    metrics: &Arc<SelfMetrics>,
) -> anyhow::Result<AccountClient> {
    let client = PipefyClient::new(
        &config.endpoint,
        &account.name,
        &account.credential,
        settings(config),
        metrics.clone(),
    )?;
    metrics.set_account_health(&account.name, Duration::ZERO, false);
    let collectors: Vec<&'static str> = config.collectors.iter().map(|c| c.name()).collect();
    Ok(AccountClient {
        account: account.clone(),
        client,
        health: Mutex::new(Health::default()),
        checks: Mutex::new(queries::new_checks(metrics, &account.name, &collectors)),
    })
}

/// Whether `org` is still watched under `config`: listed by some account, or found by
/// discovery of an account that is still there and still discovers.
fn still_watched(config: &Config, id: &str, account: &str) -> bool {
    config.accounts.iter().any(|a| match &a.organizations {
        Some(ids) => ids.iter().any(|listed| listed == id),
        None => a.name == account,
    })
}

/// When each collector of a new configuration is due, from the old schedule: a kept
/// collector keeps its turn, brought forward if its new interval is shorter (a
/// Retry-After in force is kept too); a new one is due at once.
fn carry_schedule(
    old: &[(&'static str, Instant)],
    new: &[Arc<dyn Collector>],
    now: Instant,
) -> Vec<Instant> {
    new.iter()
        .map(
            |collector| match old.iter().find(|(name, _)| *name == collector.name()) {
                Some((_, due)) => {
                    let sooner = now
                        .checked_add(collector.schedule().interval)
                        .unwrap_or(*due);
                    (*due).min(sooner)
                }
                None => now,
            },
        )
        .collect()
}

impl Refresher {
    /// A refresher whose snapshots nobody reads, for benchmarks and tests that call
    /// [`Refresher::refresh_all`] themselves.
    pub fn standalone(config: Arc<Config>, metrics: Arc<SelfMetrics>) -> anyhow::Result<Self> {
        let info = Arc::new(ExpositionInfo::new(&config.collectors, config.shard));
        let nothing = Published::new(Arc::default(), info, SystemTime::now());
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
            .map(|account| account_client(&config, account, &metrics))
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

    /// Switches to a reloaded configuration: clients of unchanged accounts are kept
    /// (with their access token, `Retry-After` and backoff), others are made anew;
    /// organizations and collectors no longer watched leave the snapshot at once; kept
    /// ones keep their values until their next refresh. On error (a client that cannot
    /// be built) nothing changes.
    fn reconfigure(
        &mut self,
        config: Arc<Config>,
        previous: &Snapshot,
    ) -> anyhow::Result<Snapshot> {
        let same_transport =
            self.config.endpoint == config.endpoint && settings(&self.config) == settings(&config);
        let unchanged = |ac: &AccountClient, account: &Account| {
            same_transport
                && ac.account.name == account.name
                && ac.account.credential == account.credential
        };
        // Build what is new first, so that a failure leaves everything as it was.
        let mut fresh = Vec::new();
        for account in &config.accounts {
            if !self.accounts.iter().any(|ac| unchanged(ac, account)) {
                fresh.push(account_client(&config, account, &self.metrics)?);
            }
        }
        let collectors: Vec<&'static str> = config.collectors.iter().map(|c| c.name()).collect();
        let mut old = std::mem::take(&mut self.accounts);
        let mut fresh = fresh.into_iter();
        for account in &config.accounts {
            let client = match old.iter().position(|ac| unchanged(ac, account)) {
                Some(i) => {
                    let kept = old.swap_remove(i);
                    // A reload checks the queries again: it may be what fixes one.
                    lock(&kept.checks).reload(&collectors);
                    for collector in &collectors {
                        if lock(&kept.checks).status(collector).sendable() {
                            self.metrics.set_query(&account.name, collector, None);
                        }
                    }
                    AccountClient {
                        account: account.clone(),
                        ..kept
                    }
                }
                // One was built above for every account not kept, in this order.
                None => match fresh.next() {
                    Some(client) => client,
                    None => unreachable!("a client was built for every new account"),
                },
            };
            self.accounts.push(client);
        }
        let names: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
        self.metrics.retain_accounts(&names, &collectors);
        self.metrics.add(&collectors, &operations(&config));
        self.permits = Semaphore::new(config.max_concurrent_requests);
        self.config = config;
        Ok(previous.retain(
            |org| still_watched(&self.config, &org.meta.id, &org.account),
            &collectors,
        ))
    }

    /// Runs refreshes until `shutdown` resolves. Every collector is due at once; then
    /// each is due one of its intervals after its previous refresh started, or later if
    /// Pipefy asked us to back off. A reloaded configuration is applied between
    /// refreshes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut previous = self.publish.borrow().snapshot.clone();
        let mut next_due = vec![Instant::now(); self.config.collectors.len()];
        loop {
            if let Some(config) = self.reloaded() {
                let old: Vec<(&'static str, Instant)> = self
                    .config
                    .collectors
                    .iter()
                    .map(|c| c.name())
                    .zip(next_due.iter().copied())
                    .collect();
                let before: Vec<String> = self
                    .accounts
                    .iter()
                    .map(|ac| ac.account.name.clone())
                    .collect();
                match self.reconfigure(config.clone(), &previous) {
                    Ok(pruned) => {
                        next_due = carry_schedule(&old, &config.collectors, Instant::now());
                        previous = Arc::new(pruned);
                        // Removed organizations and collectors leave /metrics now,
                        // rendered with the new configuration.
                        tokio::select! {
                            () = self.publish(previous.clone()) => {}
                            () = &mut shutdown => return,
                        }
                        let accounts = with_newcomers(&config, &before, &previous);
                        if !accounts.is_empty() && !config.collectors.is_empty() {
                            let all: Vec<&dyn Collector> =
                                config.collectors.iter().map(|c| c.as_ref()).collect();
                            let scope = Scope::Newcomers {
                                accounts: &accounts,
                            };
                            let cycle = self.cycle(&previous, &all, scope);
                            let (snapshot, retry_after) = tokio::select! {
                                done = cycle => done,
                                () = &mut shutdown => return,
                            };
                            previous = snapshot;
                            let now = Instant::now();
                            for (collector, due) in config.collectors.iter().zip(&mut next_due) {
                                let stale_after = collector.schedule().stale_after;
                                *due =
                                    next_start(*due, now, Duration::ZERO, retry_after, stale_after);
                            }
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot apply the reloaded configuration; the previous one keeps running")
                    }
                }
            }
            let collectors = self.config.collectors.clone();
            let started = Instant::now();
            let due: Vec<&dyn Collector> = collectors
                .iter()
                .zip(&next_due)
                .filter(|(_, due)| **due <= started)
                .map(|(c, _)| c.as_ref())
                .collect();
            if !due.is_empty() {
                let (snapshot, retry_after) = tokio::select! {
                    done = self.cycle(&previous, &due, Scope::All) => done,
                    () = &mut shutdown => return,
                };
                previous = snapshot;
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
            }
            // With every collector disabled by a reload, wait for the next reload.
            let next = next_due.iter().min().copied();
            let sleep = async {
                match next {
                    Some(next) => tokio::time::sleep_until(next.into()).await,
                    None => std::future::pending().await,
                }
            };
            let reloaded = async {
                match self.reloads.as_mut() {
                    Some(reloads) => {
                        if reloads.changed().await.is_err() {
                            // The reloader is gone (shutdown): nothing more will come.
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                () = reloaded => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// One refresh of the `due` collectors in `scope`: fetched, merged, published, then
    /// counted (once its values are served: a client that saw the refresh counter move
    /// finds them in the same scrape). Returns the new snapshot and the `Retry-After` to
    /// honour, if Pipefy throttled (cut to `backoff_max`, as the client does).
    async fn cycle(
        &self,
        previous: &Snapshot,
        due: &[&dyn Collector],
        scope: Scope<'_>,
    ) -> (Arc<Snapshot>, Option<Duration>) {
        let started = Instant::now();
        let outcome = self.refresh_in(previous, due, scope).await;
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
        if let Some(published) = Published::render(snapshot, info).await {
            self.publish.send_replace(Arc::new(published));
        }
    }

    /// A configuration sent by a reload and not yet applied, if any.
    fn reloaded(&mut self) -> Option<Arc<Config>> {
        let reloads = self.reloads.as_mut()?;
        // `changed()` in the loop's select marks the value seen; compare the pointer
        // to what runs instead.
        let latest = reloads.borrow_and_update().clone();
        (!Arc::ptr_eq(&latest, &self.config)).then_some(latest)
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

    /// One refresh of the named collectors only, as when only they are due, for tests
    /// and benchmarks that count the requests of a given schedule.
    pub async fn refresh_only(&self, previous: &Snapshot, names: &[&str]) -> RefreshOutcome {
        let due: Vec<&dyn Collector> = self
            .config
            .collectors
            .iter()
            .filter(|c| names.contains(&c.name()))
            .map(|c| c.as_ref())
            .collect();
        self.refresh(previous, &due).await
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
        let outcome = self.refresh_in(previous, due, Scope::All).await;
        self.show_health();
        outcome
    }

    /// [`Refresher::refresh`] of the organizations in `scope`; the others are carried
    /// over untouched.
    async fn refresh_in(
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
            let (mut plan, retry_after) = self.plan(ac, previous).await;
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
        for (ac, (plan, retry_after)) in accounts.iter().zip(plans) {
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
            // The usual single account's are moved, not copied into a new vector.
            append(&mut outcome.orgs, fetched.orgs);
            append(&mut outcome.outcomes, fetched.outcomes);
        }
        for (ac, admitted) in accounts.iter().zip(admitted) {
            let tally = ac.client.take_tally();
            if admitted {
                self.judge(ac, tally.verdict());
            }
        }
        if let Scope::Newcomers { .. } = scope {
            // Everything else stays as it is: merge drops organizations it is not given.
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

    /// `pipefy_exporter_backoff_seconds` and `_circuit_open` of every account, from its
    /// state now. Called once a refresh is published, as the refresh counters are: a
    /// client that sees an account back off finds the refresh that caused it in the same
    /// scrape.
    fn show_health(&self) {
        for ac in &self.accounts {
            let (wait, open) = {
                let health = ac.health.lock().unwrap_or_else(|e| e.into_inner());
                (health.wait(), health.circuit_open())
            };
            self.metrics
                .set_account_health(&ac.account.name, wait, open);
        }
    }

    /// One log line per change of an account's state (not per request).
    /// The gauges are set by [`Refresher::show_health`], once the refresh that caused the
    /// change is published.
    fn announce(&self, ac: &AccountClient, change: Change) {
        let account = ac.account.name.as_str();
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

    /// What an account backing off does this refresh: nothing, its organizations fail.
    fn skip(&self, ids: Vec<String>, remaining: Duration, why: Why) -> Plan {
        Plan::Fail {
            ids,
            error: format!(
                "not asked: {}; next try in {}s",
                why.as_str(),
                remaining.as_secs_f64().ceil()
            ),
            skipped: true,
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
            // A secret rotated on disk is worth one try at once rather than at the end
            // of a wait of up to backoff_max: Kubernetes updates mounted secrets in place.
            if why == Why::CredentialRejected && ac.client.secret_rotated() {
                tracing::info!(
                    account,
                    "the secret file changed during the credential backoff; trying it now"
                );
            } else {
                return (self.skip(fallback(), remaining, why), None);
            }
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
        self.check_queries(ac).await;
        match &ac.account.organizations {
            Some(ids) => (
                Plan::Fetch {
                    ids: ids.clone(),
                    metas: HashMap::new(),
                },
                None,
            ),
            None => match self.discover(&ac.client).await {
                Ok(found) => {
                    announce_discovered(account, found.len(), previous, self.config.shard);
                    (
                        Plan::Fetch {
                            ids: found.iter().map(|m| m.id.clone()).collect(),
                            metas: found.into_iter().map(|m| (m.id.clone(), m)).collect(),
                        },
                        None,
                    )
                }
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

    /// Runs the due collectors for `ids` with one account's client, in as few requests
    /// as possible: one round for everything that needs no uuid or whose uuid is known
    /// (the steady state: every due collector shares the same requests), and a second
    /// round only for the usage statistics of organizations whose uuid the first round
    /// told.
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
        // One outcome per organization and due collector: allocated once, not doubled
        // as it grows (tens of thousands of them at 10,000 organizations).
        outcome.outcomes.reserve_exact(ids.len() * due.len());
        // Identity known before this refresh: discovery's, else the last snapshot's.
        for id in &ids {
            if !metas.contains_key(id) {
                if let Some(org) = previous.orgs.get(id).filter(|o| o.meta.uuid.is_some()) {
                    metas.insert(id.clone(), org.meta.clone());
                }
            }
        }
        let targets = |ids: &mut dyn Iterator<Item = &String>, metas: &HashMap<String, OrgMeta>| {
            ids.map(|id| Target {
                id: id.clone(),
                uuid: metas.get(id).and_then(|m| m.uuid.clone()),
            })
            .collect::<Vec<Target>>()
        };
        // Shared by the asks rather than copied for each collector.
        let all: Arc<[Target]> = targets(&mut ids.iter(), &metas).into();
        let (known, unknown): (Vec<Target>, Vec<Target>) =
            all.iter().cloned().partition(|t| t.uuid.is_some());
        let (known, unknown): (Arc<[Target]>, Arc<[Target]>) = (known.into(), unknown.into());

        // A collector whose query the schema check found invalid, or Pipefy rejected, is
        // not asked: its organizations fail, keeping their values until stale_after.
        let mut sent: Vec<&dyn Collector> = Vec::with_capacity(due.len());
        for collector in due {
            match self.held_back(ac, *collector) {
                Some(why) => outcome
                    .outcomes
                    .extend(ids.iter().map(|id| failed(id, *collector, why.clone()))),
                None => sent.push(*collector),
            }
        }
        // Collectors that need no uuid (subscription limits, which tells it, and token
        // attribution), and the others wherever the uuid is known.
        let (first, then): (Vec<&dyn Collector>, Vec<&dyn Collector>) =
            sent.iter().partition(|c| !c.needs_uuid());
        let mut asks: Vec<Ask> = first
            .iter()
            .map(|c| Ask::collector(*c, all.clone()))
            .collect();
        let told = first.iter().any(|c| c.tells_identity());
        if !then.is_empty() && !unknown.is_empty() && !told {
            asks.push(Ask {
                asker: Asker::Identity,
                orgs: unknown.clone(),
            });
        }
        if !known.is_empty() {
            asks.extend(then.iter().map(|c| Ask::collector(*c, known.clone())));
        }
        let mut identity_errors: HashMap<String, String> = HashMap::new();
        let (decoded, retry_after) = self.ask(ac, &asks).await;
        outcome.retry_after = outcome.retry_after.max(retry_after);
        for (asker, decoded) in decoded {
            match asker {
                Asker::Identity => {
                    for d in decoded {
                        match (d.meta, d.result) {
                            (Some(meta), _) => {
                                metas.insert(d.org_id, *meta);
                            }
                            (None, Err(error)) => {
                                identity_errors.insert(d.org_id, error);
                            }
                            (None, Ok(_)) => {}
                        }
                    }
                }
                Asker::Collector(collector) => {
                    for d in decoded {
                        if let Some(meta) = d.meta {
                            metas.insert(d.org_id.clone(), *meta);
                        } else if let (true, Err(error)) = (collector.tells_identity(), &d.result) {
                            // Its `organization(id:)` failed: asking again for identity
                            // alone would fail the same way. (A failing token selection
                            // says nothing about identity, so it does not count here.)
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
            }
        }

        if !then.is_empty() {
            // The usage statistics of organizations whose uuid the first round told.
            let learned: Arc<[Target]> = targets(&mut unknown.iter().map(|t| &t.id), &metas)
                .into_iter()
                .filter(|t| t.uuid.is_some())
                .collect();
            if !learned.is_empty() {
                let asks: Vec<Ask> = then
                    .iter()
                    .map(|c| Ask::collector(*c, learned.clone()))
                    .collect();
                let (decoded, retry_after) = self.ask(ac, &asks).await;
                outcome.retry_after = outcome.retry_after.max(retry_after);
                for (asker, decoded) in decoded {
                    let Asker::Collector(collector) = asker else {
                        continue;
                    };
                    outcome
                        .outcomes
                        .extend(decoded.into_iter().map(|d| Outcome {
                            org_id: d.org_id,
                            collector: collector.name(),
                            stale_after: collector.schedule().stale_after,
                            result: d.result,
                        }));
                }
            }
            // No uuid, so they could not be asked.
            let asked: HashSet<&str> = learned.iter().map(|t| t.id.as_str()).collect();
            for t in unknown.iter().filter(|t| !asked.contains(t.id.as_str())) {
                let why = identity_errors
                    .get(&t.id)
                    .map(String::as_str)
                    .unwrap_or("not returned");
                outcome.outcomes.extend(then.iter().map(|collector| {
                    failed(
                        &t.id,
                        *collector,
                        format!("organization uuid unknown: {why}"),
                    )
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

    /// Asks every ask's root fields in planned fetches (the client shares requests
    /// between them), [`ORGS_PER_FETCH`] organizations at a time, and decodes each ask's
    /// answers. Once Pipefy throttles, the client holds back the requests of the later
    /// fetches as it does those of the same fetch: a short `Retry-After` is waited out and
    /// they are sent; during a long one they fail unsent, so they cost nothing.
    async fn ask<'a>(
        &self,
        ac: &AccountClient,
        asks: &[Ask<'a>],
    ) -> (Vec<(Asker<'a>, Vec<Decoded>)>, Option<Duration>) {
        let mut decoded: Vec<(Asker<'a>, Vec<Decoded>)> = asks
            .iter()
            .map(|ask| (ask.asker, Vec::with_capacity(ask.orgs.len())))
            .collect();
        let mut retry_after = None;
        for window in windows(asks, ORGS_PER_FETCH) {
            // A collector rejected in an earlier window is not sent in this one.
            let (live, held): (Vec<usize>, Vec<usize>) =
                (0..window.len()).partition(|&i| match window[i].asker {
                    Asker::Collector(c) => self.held_back(ac, c).is_none(),
                    Asker::Identity => true,
                });
            for i in held {
                let Asker::Collector(c) = window[i].asker else {
                    continue;
                };
                let why = self.held_back(ac, c).unwrap_or_default();
                let failed = window[i].orgs.iter();
                decoded[i]
                    .1
                    .extend(failed.map(|t| Decoded::new::<()>(&t.id, Err(why.clone()))));
            }
            let parts: Vec<Part> = live
                .iter()
                .map(|&i| {
                    let probe = match window[i].asker {
                        Asker::Collector(c) => self.probe_first(ac, c),
                        Asker::Identity => false,
                    };
                    window[i].part(probe)
                })
                .collect();
            let fetched = ac.client.fetch(&parts, &self.permits).await;
            retry_after = retry_after.max(fetched.retry_after);
            drop(parts);
            let verdicts: Vec<(&'static str, &crate::pipefy::PartVerdict)> = live
                .iter()
                .zip(&fetched.verdicts)
                .filter_map(|(&i, verdict)| match window[i].asker {
                    Asker::Collector(c) => Some((c.name(), verdict)),
                    Asker::Identity => None,
                })
                .collect();
            self.learn(ac, &verdicts);
            // Each ask's answers are dropped once decoded, not kept until all are.
            for (&i, answers) in live.iter().zip(fetched.answers) {
                decoded[i].1.extend(window[i].decode(&answers));
            }
        }
        (decoded, retry_after)
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
        // Every shard discovers (one request each) and keeps the organizations it owns:
        // the others' are never asked about, so they cost this shard nothing more.
        let shard = self.config.shard;
        Ok(data
            .a0
            .iter()
            .filter(|org| shard.owns(&org.id))
            .map(Organization::meta)
            .collect())
    }
}

/// Says how many organizations discovery found for an account that lists none, the
/// first time and whenever the number changes (not every refresh): `organizations: []`
/// reads like "none" but means "every one the credential can see".
fn announce_discovered(
    account: &str,
    found: usize,
    previous: &Snapshot,
    shard: crate::shard::Shard,
) {
    let before = previous
        .orgs
        .values()
        .filter(|o| o.account == account)
        .count();
    if found != before || previous.cycles == 0 {
        let of_shard = if shard.is_sharded() {
            " (those of this shard)"
        } else {
            ""
        };
        tracing::info!(
            account,
            organizations = found,
            "watching all {found} organizations the credential can see{of_shard}"
        );
    }
}

/// How many organizations one planned fetch covers. A fetch holds its root fields and
/// its answers until they are decoded, so this bounds a refresh's working memory
/// whatever the number of organizations (BENCHMARKS.md: at 10,000 organizations, all
/// at once was 40 MB more at the peak). Large enough that the requests it splits
/// between fetches are few: each fetch packs its own, so at most one request per
/// fetch goes out less than full (10,000 organizations: 5 fetches instead of 1).
pub(crate) const ORGS_PER_FETCH: usize = 2_000;

/// `asks` cut into windows of at most `size` organizations, each ask keeping its own
/// organizations of the window, in order. One organization is in one window for every
/// ask, so that the fields that different asks make for it can still share a request.
fn windows<'a>(asks: &[Ask<'a>], size: usize) -> Vec<Vec<Ask<'a>>> {
    let mut window_of: HashMap<&str, usize> = HashMap::new();
    for target in asks.iter().flat_map(|ask| ask.orgs.iter()) {
        let next = window_of.len() / size.max(1);
        window_of.entry(target.id.as_str()).or_insert(next);
    }
    let count = window_of.values().max().map_or(0, |last| last + 1);
    if count == 1 {
        // Everything in one window: the asks as they are, their organizations shared.
        let whole = asks.iter().map(|ask| Ask {
            asker: ask.asker,
            orgs: ask.orgs.clone(),
        });
        return vec![whole.collect()];
    }
    (0..count)
        .map(|w| {
            asks.iter()
                .map(|ask| Ask {
                    asker: ask.asker,
                    orgs: ask
                        .orgs
                        .iter()
                        .filter(|t| window_of.get(t.id.as_str()) == Some(&w))
                        .cloned()
                        .collect(),
                })
                .collect()
        })
        .collect()
}

/// Who asks Pipefy something in a refresh: a collector, or the identity step (uuid,
/// name and plan of organizations nothing has told yet).
#[derive(Clone, Copy)]
enum Asker<'a> {
    Collector(&'a dyn Collector),
    Identity,
}

/// One asker's question about some organizations.
struct Ask<'a> {
    asker: Asker<'a>,
    orgs: Arc<[Target]>,
}

impl<'a> Ask<'a> {
    fn collector(collector: &'a dyn Collector, orgs: Arc<[Target]>) -> Self {
        Ask {
            asker: Asker::Collector(collector),
            orgs,
        }
    }

    /// Its root fields; with `probe`, one goes alone first (see [`Part::probe`]).
    fn part(&self, probe: bool) -> Part {
        match self.asker {
            Asker::Collector(c) => Part {
                operation: c.operation(),
                label: c.name(),
                probe,
                fields: c.fields(&self.orgs),
            },
            Asker::Identity => Part {
                operation: operation::ORGANIZATION_INFO,
                label: step::IDENTITY,
                probe: false,
                fields: {
                    let text: Arc<str> = Arc::from(IDENTITY);
                    self.orgs
                        .iter()
                        .map(|o| {
                            RootField::new(&o.id, text.clone()).var(
                                "id",
                                "ID!",
                                serde_json::json!(o.id),
                            )
                        })
                        .collect()
                },
            },
        }
    }

    /// One outcome per organization; identity's carry the meta when it was told.
    fn decode(&self, answers: &Answers) -> Vec<Decoded> {
        match self.asker {
            Asker::Collector(c) => c.decode(&self.orgs, answers),
            Asker::Identity => self
                .orgs
                .iter()
                .map(
                    |o| match crate::collectors::answer::<Organization>(answers, &o.id) {
                        Ok(org) => Decoded {
                            meta: Some(Box::new(org.meta())),
                            ..Decoded::new(&o.id, Ok(()))
                        },
                        Err(error) => Decoded::new::<()>(&o.id, Err(error)),
                    },
                )
                .collect(),
        }
    }
}

/// `more` added to `all`; taken as it is when `all` is still empty.
fn append<T>(all: &mut Vec<T>, mut more: Vec<T>) {
    if all.is_empty() {
        std::mem::swap(all, &mut more);
    } else {
        all.append(&mut more);
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
    fn windows_keep_an_organization_in_one_window_for_every_ask() {
        let targets = |ids: &[u32]| -> Arc<[Target]> {
            ids.iter()
                .map(|id| Target {
                    id: id.to_string(),
                    uuid: None,
                })
                .collect()
        };
        let ids = |ask: &Ask| -> Vec<String> { ask.orgs.iter().map(|t| t.id.clone()).collect() };
        let collectors = crate::collectors::every_variant();
        // Every organization, then a subset in another order (identity of those whose
        // uuid is unknown), then organizations only the second ask has.
        let asks = [
            Ask::collector(collectors[0].as_ref(), targets(&[1, 2, 3, 4, 5])),
            Ask {
                asker: Asker::Identity,
                orgs: targets(&[5, 2, 6, 7]),
            },
        ];
        let windows = windows(&asks, 2);
        let got: Vec<(Vec<String>, Vec<String>)> =
            windows.iter().map(|w| (ids(&w[0]), ids(&w[1]))).collect();
        let strings = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            [
                (strings(&["1", "2"]), strings(&["2"])),
                (strings(&["3", "4"]), strings(&[])),
                (strings(&["5"]), strings(&["5", "6"])),
                (strings(&[]), strings(&["7"])),
            ]
        );
        assert!(super::windows(&[], 2).is_empty());
        // One window: the asks' organizations are shared, not copied.
        let whole = super::windows(&asks, 2_000);
        assert_eq!(whole.len(), 1);
        assert!(Arc::ptr_eq(&whole[0][0].orgs, &asks[0].orgs));
        assert!(Arc::ptr_eq(&whole[0][1].orgs, &asks[1].orgs));
    }

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
