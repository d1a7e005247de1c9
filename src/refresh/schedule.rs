//! When each collector runs: every collector at once at start; then each one of its
//! intervals after its previous refresh started, or later when Pipefy asked to wait
//! (a `Retry-After` holds back every collector of the credential, capped at the
//! collector's `stale_after`); a reloaded configuration between refreshes, a kept
//! collector keeping its turn.
//!
//! [`Timetable`] is the pure part (instants in, instants out). [`run`] is the loop, over
//! [`Steps`] so that tests drive it on paused time with a fake refresher; [`Running`] is
//! the real one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::accounts::with_newcomers;
use super::discovery::Scope;
use super::Refresher;
use crate::collectors::Collector;
use crate::config::Config;
use crate::snapshot::Snapshot;

/// When each collector of the configuration in force is next due, in its order.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Timetable {
    next: Vec<(&'static str, Instant)>,
}

impl Timetable {
    /// Every collector due at `now`.
    pub(super) fn new(collectors: &[Arc<dyn Collector>], now: Instant) -> Self {
        Timetable {
            next: collectors.iter().map(|c| (c.name(), now)).collect(),
        }
    }

    /// The collectors due at `now`.
    pub(super) fn due(
        &self,
        collectors: &[Arc<dyn Collector>],
        now: Instant,
    ) -> Vec<Arc<dyn Collector>> {
        collectors
            .iter()
            .zip(&self.next)
            .filter(|(_, (_, due))| *due <= now)
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// When the next collector is due; `None` when none is enabled.
    pub(super) fn next_wakeup(&self) -> Option<Instant> {
        self.next.iter().map(|(_, due)| *due).min()
    }

    /// After a refresh of the collectors that were due at `started`, finished at `now`
    /// with Pipefy's `retry_after` if it throttled: those are due one interval after
    /// `started`; and since Pipefy throttles the credential, not one operation, every
    /// collector waits out the `retry_after`.
    pub(super) fn ran(
        &mut self,
        collectors: &[Arc<dyn Collector>],
        started: Instant,
        now: Instant,
        retry_after: Option<Duration>,
    ) {
        for (collector, (_, due)) in collectors.iter().zip(&mut self.next) {
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
                next_start(*due, now, Duration::ZERO, retry_after, schedule.stale_after)
            };
        }
    }

    /// After a refresh outside the schedule (a reload's newcomers): every collector keeps
    /// its turn, and waits out Pipefy's `retry_after`.
    pub(super) fn throttled(
        &mut self,
        collectors: &[Arc<dyn Collector>],
        now: Instant,
        retry_after: Option<Duration>,
    ) {
        for (collector, (_, due)) in collectors.iter().zip(&mut self.next) {
            let stale_after = collector.schedule().stale_after;
            *due = next_start(*due, now, Duration::ZERO, retry_after, stale_after);
        }
    }

    /// The timetable of a reloaded configuration's `collectors`: a kept collector keeps
    /// its turn, brought forward if its new interval is shorter (a Retry-After in force
    /// is kept too); a new one is due at once.
    pub(super) fn carried(&self, collectors: &[Arc<dyn Collector>], now: Instant) -> Timetable {
        let next = collectors
            .iter()
            .map(|collector| {
                let name = collector.name();
                let due = match self.next.iter().find(|(old, _)| *old == name) {
                    Some((_, due)) => {
                        let sooner = now
                            .checked_add(collector.schedule().interval)
                            .unwrap_or(*due);
                        (*due).min(sooner)
                    }
                    None => now,
                };
                (name, due)
            })
            .collect();
        Timetable { next }
    }
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

/// What the loop drives.
pub(super) trait Steps {
    /// The enabled collectors, in scheduling order.
    fn collectors(&self) -> Vec<Arc<dyn Collector>>;
    /// Applies the configuration a reload sent, if one waits: `None` when none does (or
    /// it cannot be applied), else what refreshing the organizations it added taught.
    fn reload(&mut self) -> impl Future<Output = Option<Reloaded>> + Send;
    /// Refreshes `due`; returns the `Retry-After` Pipefy sent, if it throttled.
    fn refresh(
        &mut self,
        due: Vec<Arc<dyn Collector>>,
    ) -> impl Future<Output = Option<Duration>> + Send;
    /// Resolves when a reload sends a configuration; never without reloads.
    fn reload_sent(&mut self) -> impl Future<Output = ()> + Send;
}

/// What applying a reloaded configuration did.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Reloaded {
    /// The `Retry-After` Pipefy sent while the organizations it added were fetched.
    pub(super) retry_after: Option<Duration>,
}

/// Runs refreshes until `shutdown` resolves.
pub(super) async fn run(mut steps: impl Steps, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut collectors = steps.collectors();
    let mut table = Timetable::new(&collectors, Instant::now());
    loop {
        let reloaded = tokio::select! {
            reloaded = steps.reload() => reloaded,
            () = &mut shutdown => return,
        };
        if let Some(reloaded) = reloaded {
            collectors = steps.collectors();
            table = table.carried(&collectors, Instant::now());
            table.throttled(&collectors, Instant::now(), reloaded.retry_after);
        }
        let started = Instant::now();
        let due = table.due(&collectors, started);
        if !due.is_empty() {
            let retry_after = tokio::select! {
                retry_after = steps.refresh(due) => retry_after,
                () = &mut shutdown => return,
            };
            table.ran(&collectors, started, Instant::now(), retry_after);
        }
        // With every collector disabled by a reload, wait for the next reload.
        let next = table.next_wakeup();
        let sleep = async {
            match next {
                Some(next) => tokio::time::sleep_until(next).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = steps.reload_sent() => {}
            () = &mut shutdown => return,
        }
    }
}

/// The real steps: the refresher and the last snapshot it published.
pub(super) struct Running {
    refresher: Refresher,
    previous: Arc<Snapshot>,
}

impl Running {
    pub(super) fn new(refresher: Refresher) -> Self {
        let previous = refresher.publish.borrow().snapshot.clone();
        Running {
            refresher,
            previous,
        }
    }

    /// A configuration sent by a reload and not yet applied, if any.
    fn reloaded(&mut self) -> Option<Arc<Config>> {
        let reloads = self.refresher.reloads.as_mut()?;
        // `changed()` in the loop's select marks the value seen; compare the pointer to
        // what runs instead.
        let latest = reloads.borrow_and_update().clone();
        (!Arc::ptr_eq(&latest, &self.refresher.config)).then_some(latest)
    }
}

impl Steps for Running {
    fn collectors(&self) -> Vec<Arc<dyn Collector>> {
        self.refresher.config.collectors.clone()
    }

    /// Switches to the new configuration; removed organizations and collectors leave
    /// /metrics at once, rendered with it; organizations it added are fetched at once,
    /// rather than one interval later.
    async fn reload(&mut self) -> Option<Reloaded> {
        let config = self.reloaded()?;
        let refresher = &mut self.refresher;
        let before: Vec<String> = refresher
            .accounts
            .iter()
            .map(|ac| ac.account.name.clone())
            .collect();
        let pruned = match refresher.reconfigure(config.clone(), &self.previous) {
            Ok(pruned) => Arc::new(pruned),
            Err(error) => {
                tracing::error!(%error, "cannot apply the reloaded configuration; the previous one keeps running");
                return None;
            }
        };
        self.previous = pruned;
        refresher.publish(self.previous.clone()).await;
        let accounts = with_newcomers(&config, &before, &self.previous);
        if accounts.is_empty() || config.collectors.is_empty() {
            return Some(Reloaded::default());
        }
        let all: Vec<&dyn Collector> = config.collectors.iter().map(|c| c.as_ref()).collect();
        let scope = Scope::Newcomers {
            accounts: &accounts,
        };
        let (snapshot, retry_after) = refresher
            .refresh_and_publish(&self.previous, &all, scope)
            .await;
        self.previous = snapshot;
        Some(Reloaded { retry_after })
    }

    async fn refresh(&mut self, due: Vec<Arc<dyn Collector>>) -> Option<Duration> {
        let due: Vec<&dyn Collector> = due.iter().map(|c| c.as_ref()).collect();
        let (snapshot, retry_after) = self
            .refresher
            .refresh_and_publish(&self.previous, &due, Scope::All)
            .await;
        self.previous = snapshot;
        retry_after
    }

    async fn reload_sent(&mut self) {
        match self.refresher.reloads.as_mut() {
            Some(reloads) => {
                if reloads.changed().await.is_err() {
                    // The reloader is gone (shutdown): nothing more will come.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests;
