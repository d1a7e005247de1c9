//! The wiring of one exporter process: the refresh loop and the HTTP server, sharing
//! the latest snapshot and its rendered exposition through a watch channel, stopped
//! together; and the reloader, which hands reloaded configurations to both.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::exposition::{keep_fresh, ExpositionInfo, Published};
use crate::http::{app, AppState, ReloadFn};
use crate::refresh::Refresher;
use crate::reload::{Reloader, Sources};
use crate::self_metrics::SelfMetrics;
use crate::snapshot::Snapshot;
use crate::web::WebConfig;

/// How the HTTP side is served.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Path under which the metrics are exposed (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// TLS, basic authentication and extra headers (`--web.config.file`).
    pub web: WebConfig,
    /// Time allowed for a request's headers, and for an idle kept-alive connection's
    /// next request (`--web.read-header-timeout`, 10 s by default).
    pub read_header_timeout: Duration,
    /// Connections open at once; past it new ones are closed at once
    /// (`--web.max-connections`, 512 by default).
    pub max_connections: usize,
    /// What a reload reads again. Without a configuration file, the configuration
    /// given to [`serve`] stays; the web configuration is then the only thing reloaded.
    pub sources: Sources,
    /// `POST /-/reload` (`--web.enable-lifecycle`); off by default, as in Prometheus:
    /// anyone who can reach the port could otherwise make the exporter re-read files.
    pub enable_lifecycle: bool,
    /// Reload on SIGHUP. Process-wide, so only the binary turns it on.
    pub reload_on_sighup: bool,
}

impl Default for ServeOptions {
    /// The flags' defaults: `/metrics`, plain HTTP, 10 s for headers, 512 connections.
    fn default() -> Self {
        ServeOptions {
            telemetry_path: "/metrics".to_owned(),
            web: WebConfig::default(),
            read_header_timeout: crate::server::DEFAULT_READ_HEADER_TIMEOUT,
            max_connections: crate::server::DEFAULT_MAX_CONNECTIONS,
            sources: Sources::default(),
            enable_lifecycle: false,
            reload_on_sighup: false,
        }
    }
}

/// Runs the refresh loop and the HTTP server on `listeners` (`--web.listen-address`
/// repeated, as in node_exporter: the same endpoints on every address) until
/// `shutdown` resolves; then stops refreshing and lets in-flight scrapes finish. HTTPS
/// when `options.web` has TLS, and basic authentication and extra headers on every
/// endpoint when it has them.
pub async fn serve(
    config: Arc<Config>,
    listeners: Vec<TcpListener>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(!listeners.is_empty(), "no address to listen on");
    let ServeOptions {
        telemetry_path,
        web,
        read_header_timeout,
        max_connections,
        sources,
        enable_lifecycle,
        reload_on_sighup,
    } = options;
    let limits = crate::server::ConnectionLimits {
        read_header_timeout,
        max_connections,
    };
    let names: Vec<&'static str> = config.collectors.iter().map(|c| c.name()).collect();
    let metrics = Arc::new(SelfMetrics::new(
        &names,
        &crate::refresh::operations(&config),
    ));
    // The load at start counts as the first successful one, as in Prometheus.
    metrics.observe_reload(true, SystemTime::now());
    let nothing_yet = Published::new(
        Arc::new(Snapshot::default()),
        Arc::new(ExpositionInfo::new(&config.collectors, config.shard)),
        SystemTime::now(),
        &[],
    );
    let (publish, published) = watch::channel(Arc::new(nothing_yet));
    let (configs, reloaded) = watch::channel(config.clone());
    let (webs, web) = watch::channel(Arc::new(web));
    let refresher =
        Refresher::new(config.clone(), metrics.clone(), publish.clone())?.follow(reloaded);
    let reloader = Arc::new(Reloader::new(sources, configs, webs, metrics.clone()));

    // One shutdown signal for the loop, the server, the re-rendering and SIGHUP.
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let refresh = tokio::spawn(refresher.run(until(stopped.clone())));
    tokio::spawn(keep_fresh(publish, until(stopped.clone())));
    if reload_on_sighup {
        tokio::spawn(reload_on_hangup(reloader.clone(), until(stopped.clone())));
    }
    let lifecycle: Option<ReloadFn> = enable_lifecycle.then(|| {
        let reloader = reloader.clone();
        Arc::new(move || reloader.reload()) as ReloadFn
    });
    let state = AppState::new(published, metrics, telemetry_path).with_lifecycle(lifecycle);
    let router = crate::web::protect(app(state), web.clone());
    let server = crate::server::run(listeners, router, web, limits, until(stopped));
    until_both(server, refresh).await
}

/// Resolves once `stopped` says so.
async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
}

/// Waits for the server and the refresh loop. The loop returns only on shutdown; if it
/// died (a bug), this ends with an error rather than serve frozen values that look
/// healthy.
async fn until_both(
    server: impl Future<Output = std::io::Result<()>>,
    mut refresh: tokio::task::JoinHandle<()>,
) -> anyhow::Result<()> {
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => {
            served?;
            refresh.await?;
            Ok(())
        }
        ended = &mut refresh => match ended {
            Ok(()) => Ok(server.await?),
            Err(e) => Err(anyhow::anyhow!("the refresh loop stopped unexpectedly: {e}")),
        },
    }
}

/// Reloads on every SIGHUP until `stopped`. Without this, SIGHUP's default action
/// would end the process (status 129), and a systemd unit would stay down.
#[cfg(unix)]
async fn reload_on_hangup(reloader: Arc<Reloader>, stopped: impl Future<Output = ()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP; reload with POST /-/reload (--web.enable-lifecycle) or restart");
            return;
        }
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            received = hangups.recv() => {
                if received.is_none() {
                    return;
                }
                tracing::info!("SIGHUP received; reloading the configuration");
                let reloader = reloader.clone();
                // The outcome is logged and shown by the metric; nobody else to tell.
                let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
            }
            () = &mut stopped => return,
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(_reloader: Arc<Reloader>, _stopped: impl Future<Output = ()>) {}
