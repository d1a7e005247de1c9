//! `--demo`: the built-in Pipefy simulator on loopback, its usage moving every tick, and
//! the configuration that points the exporter at it. Only in builds with the `demo`
//! feature (the default), so a production build can leave the simulator out.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::simulator::{SimServer, Simulator};

/// How often the simulator's usage moves.
const TICK: Duration = Duration::from_secs(15);
/// How far ahead the demo's token-attribution deadline is: close enough for the
/// "deadline in less than 14 days" warning to be live.
const DEADLINE_IN: Duration = Duration::from_secs(12 * 86_400);

/// A running demo simulator.
pub(crate) struct Demo {
    server: SimServer,
}

/// Starts the simulator on a free loopback port, with a task that moves its usage.
pub(crate) async fn start() -> anyhow::Result<(Config, Demo)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot start the demo simulator on 127.0.0.1")?;
    let simulator = Simulator::demo();
    let server = simulator
        .spawn(listener)
        .await
        .context("cannot start the demo simulator")?;
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.tick().await;
        loop {
            interval.tick().await;
            simulator.tick();
        }
    });
    let now = crate::timefmt::unix_seconds(SystemTime::now()) as i64;
    let config = Config::demo(server.graphql_url(), now, DEADLINE_IN);
    Ok((config, Demo { server }))
}

impl Demo {
    /// Tells the user where to look; `base` is the exporter's own URL.
    pub(crate) fn announce(&self, base: &str, telemetry_path: &str) {
        let simulator = self.server.base_url();
        tracing::info!(
            %simulator,
            "demo mode: a built-in Pipefy simulator with sample organizations, refreshed every 15s"
        );
        tracing::info!(
            "demo mode: open {base}/ for the overview, {base}{telemetry_path} for the metrics, {simulator}/sim/stats for what the simulator was asked"
        );
    }
}
