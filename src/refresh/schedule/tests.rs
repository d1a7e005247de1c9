//! The loop on paused time, with a fake refresher that records when it ran what: no
//! test here waits for real.

use std::sync::Mutex;

use tokio::sync::{oneshot, Notify};

use super::*;

/// The enabled collectors of a configuration whose `collectors:` section is `yaml`.
fn collectors(yaml: &str) -> Vec<Arc<dyn Collector>> {
    let text = format!("organizations: [\"1\"]\n{yaml}");
    let token = |name: &str| (name == crate::config::ENV_TOKEN).then(|| "t".to_owned());
    Config::from_yaml(&text, "test.yml".as_ref(), &token)
        .unwrap()
        .collectors
}

/// What the fake records: when each refresh ran (since the start) and which collectors.
type Log = Arc<Mutex<Vec<(Duration, Vec<&'static str>)>>>;
/// A reloaded configuration's collectors, once sent.
type Pending = Arc<Mutex<Option<Vec<Arc<dyn Collector>>>>>;

struct Fake {
    start: Instant,
    collectors: Vec<Arc<dyn Collector>>,
    log: Log,
    /// The `Retry-After` the n-th refresh (from 0) answers.
    throttle: Vec<(usize, Duration)>,
    reload: Pending,
    sent: Arc<Notify>,
}

impl Steps for Fake {
    fn collectors(&self) -> Vec<Arc<dyn Collector>> {
        self.collectors.clone()
    }

    async fn reload(&mut self) -> Option<Reloaded> {
        let collectors = self.reload.lock().unwrap().take()?;
        self.collectors = collectors;
        Some(Reloaded::default())
    }

    async fn refresh(&mut self, due: Vec<Arc<dyn Collector>>) -> Option<Duration> {
        let mut log = self.log.lock().unwrap();
        let n = log.len();
        log.push((self.start.elapsed(), due.iter().map(|c| c.name()).collect()));
        self.throttle
            .iter()
            .find(|(i, _)| *i == n)
            .map(|(_, wait)| *wait)
    }

    async fn reload_sent(&mut self) {
        self.sent.notified().await;
    }
}

/// Runs the loop over `collectors` for `how_long` of paused time, reloading to
/// `reload.1` at `reload.0` when given; returns what ran when.
async fn schedule(
    collectors: Vec<Arc<dyn Collector>>,
    throttle: Vec<(usize, Duration)>,
    reload: Option<(Duration, Vec<Arc<dyn Collector>>)>,
    how_long: Duration,
) -> Vec<(Duration, Vec<&'static str>)> {
    let log = Log::default();
    let pending = Pending::default();
    let sent = Arc::new(Notify::new());
    let fake = Fake {
        start: Instant::now(),
        collectors,
        log: log.clone(),
        throttle,
        reload: pending.clone(),
        sent: sent.clone(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(fake, async {
        let _ = stopped.await;
    }));
    let mut elapsed = Duration::ZERO;
    if let Some((at, collectors)) = reload {
        tokio::time::sleep(at).await;
        *pending.lock().unwrap() = Some(collectors);
        sent.notify_one();
        elapsed = at;
    }
    tokio::time::sleep(how_long - elapsed).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    let log = log.lock().unwrap().clone();
    log
}

const MINUTE: Duration = Duration::from_secs(60);

fn minutes(log: &[(Duration, Vec<&'static str>)]) -> Vec<(u64, Vec<&'static str>)> {
    log.iter()
        .map(|(at, names)| (at.as_secs() / 60, names.clone()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn every_collector_at_once_then_each_on_its_own_interval() {
    let all = collectors("");
    let log = schedule(all, vec![], None, 61 * MINUTE).await;
    let every = vec![
        "subscription_limits",
        "ai_credits",
        "api_usage",
        "automation_jobs",
        "integrations",
        "token_attribution",
    ];
    let quarter = vec![
        "subscription_limits",
        "ai_credits",
        "api_usage",
        "automation_jobs",
    ];
    let limits = vec!["subscription_limits"];
    let expected: Vec<(u64, Vec<&str>)> = (0..=12)
        .map(|i| {
            let names = match i {
                0 | 12 => every.clone(),
                3 | 6 | 9 => quarter.clone(),
                _ => limits.clone(),
            };
            (i * 5, names)
        })
        .collect();
    assert_eq!(minutes(&log), expected);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_holds_back_every_collector() {
    // Limits every 200 ms, API usage every 1 s. A Retry-After of 60 s on the second
    // refresh (limits alone) holds back API usage too, which was due at 1 s: Pipefy
    // throttles the credential, not one operation.
    let two = collectors(
        "collectors: {subscription_limits: {interval: 200ms}, api_usage: {interval: 1s}, ai_credits: false, automation_jobs: false, integrations: false, token_attribution: false}\nstale_after: 1h\n",
    );
    let log = schedule(
        two,
        vec![(1, Duration::from_secs(60))],
        None,
        Duration::from_millis(60_250),
    )
    .await;
    let at: Vec<(u128, Vec<&str>)> = log
        .iter()
        .map(|(at, names)| (at.as_millis(), names.clone()))
        .collect();
    assert_eq!(
        at,
        [
            (0, vec!["subscription_limits", "api_usage"]),
            (200, vec!["subscription_limits"]),
            // Nothing for a minute, then both: limits' turn and API usage's, held back.
            (60_200, vec!["subscription_limits", "api_usage"]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_absurd_retry_after_is_cut_to_stale_after() {
    // Every 5 minutes, values kept 15 minutes: a Retry-After of a year postpones the
    // next refresh by 15 minutes, not a year.
    let limits = collectors(
        "collectors: {ai_credits: false, api_usage: false, automation_jobs: false, integrations: false, token_attribution: false}\n",
    );
    let year = Duration::from_secs(365 * 86_400);
    let log = schedule(limits, vec![(0, year)], None, 31 * MINUTE).await;
    assert_eq!(
        minutes(&log),
        [
            (0, vec!["subscription_limits"]),
            (15, vec!["subscription_limits"]),
            (20, vec!["subscription_limits"]),
            (25, vec!["subscription_limits"]),
            (30, vec!["subscription_limits"]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_each_collectors_turn_and_runs_new_ones_at_once() {
    let before = collectors(
        "collectors: {ai_credits: false, automation_jobs: false, integrations: false, token_attribution: false}\n",
    );
    // At 7 minutes: limits kept (due at 10), API usage every 5 minutes now (its turn at
    // 15 brought forward to 12), integrations added (due at once).
    let after = collectors(
        "collectors: {api_usage: {interval: 5m}, ai_credits: false, automation_jobs: false, token_attribution: false}\n",
    );
    let log = schedule(before, vec![], Some((7 * MINUTE, after)), 16 * MINUTE).await;
    assert_eq!(
        minutes(&log),
        [
            (0, vec!["subscription_limits", "api_usage"]),
            (5, vec!["subscription_limits"]),
            (7, vec!["integrations"]),
            (10, vec!["subscription_limits"]),
            (12, vec!["api_usage"]),
            (15, vec!["subscription_limits"]),
        ]
    );
}

#[test]
fn next_start_honours_retry_after_within_stale_after() {
    let t0 = Instant::now();
    let stale = Duration::from_secs(900);
    let s = Duration::from_secs;
    // No throttling: one interval after the start.
    assert_eq!(next_start(t0, t0 + s(5), MINUTE, None, stale), t0 + MINUTE);
    // A short Retry-After changes nothing.
    assert_eq!(
        next_start(t0, t0 + s(5), MINUTE, Some(s(10)), stale),
        t0 + MINUTE
    );
    // A longer one postpones, counted from now.
    let now = t0 + s(5);
    assert_eq!(
        next_start(t0, now, MINUTE, Some(s(120)), stale),
        now + s(120)
    );
    // An absurd one is capped at stale_after instead of overflowing.
    assert_eq!(
        next_start(t0, now, MINUTE, Some(Duration::from_secs(u64::MAX)), stale),
        now + stale
    );
}
