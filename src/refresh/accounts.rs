//! The accounts: one Pipefy client per credential, its health (credential backoff and
//! circuit breaker, [`crate::pipefy::backoff`]) and what is known of its queries, and
//! what a reloaded configuration changes among them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::{operations, Refresher};
use crate::config::{Account, Config};
use crate::pipefy::backoff::{self, Admission, Change, Health, Policy};
use crate::pipefy::schema::checks::QueryChecks;
use crate::pipefy::{PipefyClient, Settings};
use crate::self_metrics::SelfMetrics;
use crate::snapshot::Snapshot;

/// One account's client and what the refresher keeps about it between refreshes.
pub(super) struct AccountClient {
    pub(super) account: Account,
    pub(super) client: PipefyClient,
    /// Backoff after a refused credential, and the circuit breaker. Locked briefly,
    /// never across an `.await`.
    health: Mutex<Health>,
    /// What is known of each collector's query, and when the schema is checked next.
    /// Locked briefly, never across an `.await`.
    pub(super) checks: Mutex<QueryChecks>,
}

impl AccountClient {
    pub(super) fn new(
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
            checks: Mutex::new(new_checks(metrics, &account.name, &collectors)),
        })
    }
}

/// A fresh state for an account's queries (every collector unchecked, a check due),
/// with its gauges.
fn new_checks(metrics: &SelfMetrics, account: &str, collectors: &[&'static str]) -> QueryChecks {
    for collector in collectors {
        metrics.set_query(account, collector, None);
    }
    QueryChecks::new(collectors)
}

/// A poisoned lock still holds plain data: use it.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

/// The accounts of `config` that may watch organizations `previous` does not have:
/// those listing one, and those discovering that did not run under `before` (an
/// account that already discovered finds newcomers at its own next refresh).
pub(super) fn with_newcomers(
    config: &Config,
    before: &[String],
    previous: &Snapshot,
) -> HashSet<String> {
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

/// Whether `org` is still watched under `config`: listed by some account, or found by
/// discovery of an account that is still there and still discovers.
fn still_watched(config: &Config, id: &str, account: &str) -> bool {
    config.accounts.iter().any(|a| match &a.organizations {
        Some(ids) => ids.iter().any(|listed| listed == id),
        None => a.name == account,
    })
}

impl Refresher {
    /// Switches to a reloaded configuration: clients of unchanged accounts are kept
    /// (with their access token, `Retry-After` and backoff, and a schema check due),
    /// others are made anew; organizations and collectors no longer watched leave the
    /// snapshot at once; kept ones keep their values until their next refresh. On error
    /// (a client that cannot be built) nothing changes.
    pub(super) fn reconfigure(
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
                fresh.push(AccountClient::new(&config, account, &self.metrics)?);
            }
        }
        let collectors: Vec<&'static str> = config.collectors.iter().map(|c| c.name()).collect();
        let mut old = std::mem::take(&mut self.accounts);
        let mut fresh = fresh.into_iter();
        for account in &config.accounts {
            let client = match old.iter().position(|ac| unchanged(ac, account)) {
                Some(i) => self.keep(old.swap_remove(i), account, &collectors),
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

    /// An unchanged account's client, kept across a reload with its new settings. A
    /// reload checks the queries again: it may be what fixes one.
    fn keep(
        &self,
        kept: AccountClient,
        account: &Account,
        collectors: &[&'static str],
    ) -> AccountClient {
        {
            let mut checks = lock(&kept.checks);
            checks.reload(collectors);
            for collector in collectors {
                if checks.status(collector).sendable() {
                    self.metrics.set_query(&account.name, collector, None);
                }
            }
        }
        AccountClient {
            account: account.clone(),
            ..kept
        }
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
    pub(super) fn admit(&self, ac: &AccountClient) -> Admission {
        let (admission, change) = lock(&ac.health).admit(Instant::now());
        if let Some(change) = change {
            self.log_health_change(ac, change);
        }
        admission
    }

    /// Updates an account's health with how its refresh went.
    pub(super) fn record_health(&self, ac: &AccountClient, verdict: backoff::AccountVerdict) {
        let change = lock(&ac.health).record(verdict, Instant::now(), &self.policy());
        if let Some(change) = change {
            self.log_health_change(ac, change);
        }
    }

    /// `pipefy_exporter_backoff_seconds` and `_circuit_open` of every account, from its
    /// state now. Called once a refresh is published, as the refresh counters are: a
    /// client that sees an account back off finds the refresh that caused it in the same
    /// scrape.
    pub(super) fn show_health(&self) {
        for ac in &self.accounts {
            let (wait, open) = {
                let health = lock(&ac.health);
                (health.wait(), health.circuit_open())
            };
            self.metrics
                .set_account_health(&ac.account.name, wait, open);
        }
    }

    /// One log line per change of an account's state (not per request). The gauges are
    /// set by [`Refresher::show_health`], once the refresh that caused the change is
    /// published.
    fn log_health_change(&self, ac: &AccountClient, change: Change) {
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
}
