//! `--demo`: the built-in Pipefy simulator on loopback, its usage moving every tick, and
//! the configuration that points the exporter at it. Only in builds with the `demo`
//! feature (the default), so a production build can leave the simulator out.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use pipefy_sim::{Corruption, SimServer, Simulator};
use tokio::net::TcpListener;

use crate::config::Config;

/// Environment variable that makes the demo simulator cycle through upstream faults,
/// this many seconds each (for `scripts/soak`).
const ENV_FAULTS: &str = "PIPEFY_DEMO_FAULT_SECONDS";

/// How often the simulator's usage moves.
const TICK: Duration = Duration::from_secs(15);
/// How far ahead the demo's token-attribution deadline is: close enough for the
/// "deadline in less than 14 days" warning to be live.
const DEADLINE_IN: Duration = Duration::from_secs(12 * 86_400);

/// A running demo simulator.
pub(crate) struct Demo {
    server: SimServer,
    /// The simulator's organizations, all of which the demo discovers.
    organizations: usize,
}

/// Starts the simulator on a free loopback port, with a task that moves its usage.
pub(crate) async fn start() -> anyhow::Result<(Config, Demo)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot start the demo simulator on 127.0.0.1")?;
    let simulator = Simulator::demo();
    let organizations = simulator.update(|data| data.orgs.len());
    let server = simulator
        .spawn(listener)
        .await
        .context("cannot start the demo simulator")?;
    if let Some(phase) = fault_phase() {
        tokio::spawn(cycle_faults(simulator.clone(), phase));
    }
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.tick().await;
        loop {
            interval.tick().await;
            simulator.tick();
        }
    });
    let now = timefmt::unix_seconds(SystemTime::now()) as i64;
    let config = Config::demo(server.graphql_url(), now, DEADLINE_IN);
    Ok((
        config,
        Demo {
            server,
            organizations,
        },
    ))
}

impl Demo {
    /// Tells the user where to look; `base` is the exporter's own URL.
    pub(crate) fn announce(&self, base: &str, telemetry_path: &str) {
        let simulator = self.server.base_url();
        // Said here because the warnings of a real start do not apply: the simulator
        // bills nothing, so its 15 s intervals cost nothing.
        tracing::info!(
            %simulator,
            organizations = self.organizations,
            "demo mode: a built-in Pipefy simulator on loopback with {} sample organizations, \
             every collector refreshed every 15s; no credentials, nothing is paid",
            self.organizations,
        );
        tracing::info!(
            "demo mode: open {base}/ for the overview, {base}{telemetry_path} for the metrics, {simulator}/sim/stats for what the simulator was asked"
        );
    }
}

/// How long each fault lasts, if `PIPEFY_DEMO_FAULT_SECONDS` asks for faults.
fn fault_phase() -> Option<Duration> {
    let seconds: u64 = std::env::var(ENV_FAULTS).ok()?.trim().parse().ok()?;
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

/// One upstream fault of the cycle.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Status(u16, Option<u64>),
    Corrupt(Corruption),
    /// Longer than the demo's 10 s request timeout.
    Hang,
}

/// Every fault the exporter must survive, each followed by a healthy phase so that
/// recovery is exercised too, over and over until the process ends.
async fn cycle_faults(simulator: Simulator, phase: Duration) {
    let faults = [
        ("HTTP 500", Fault::Status(500, None)),
        ("HTTP 503 storm", Fault::Status(503, None)),
        ("HTTP 429, Retry-After 5", Fault::Status(429, Some(5))),
        (
            "a body that is not JSON",
            Fault::Corrupt(Corruption::Garbage),
        ),
        ("a body cut short", Fault::Corrupt(Corruption::Truncated)),
        ("a hang longer than the timeout", Fault::Hang),
        ("HTTP 401", Fault::Status(401, None)),
        ("HTTP 403", Fault::Status(403, None)),
    ];
    loop {
        for (name, fault) in faults {
            tracing::info!(fault = name, "demo: the simulator starts failing");
            match fault {
                Fault::Status(status, retry_after) => {
                    simulator.fail_all(Some((status, retry_after)))
                }
                Fault::Corrupt(corruption) => simulator.corrupt_all(Some(corruption)),
                Fault::Hang => simulator.set_latency(Duration::from_secs(12)),
            }
            tokio::time::sleep(phase).await;
            simulator.fail_all(None);
            simulator.set_latency(Duration::ZERO);
            tracing::info!("demo: the simulator is healthy again");
            tokio::time::sleep(phase).await;
        }
    }
}
