//! The wiring of one exporter process: the refresh loop and the HTTP server, sharing
//! the latest snapshot and its rendered exposition through a watch channel, stopped
//! together.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::exposition::{keep_fresh, ExpositionInfo, Published};
use crate::http::{app, AppState};
use crate::refresh::Refresher;
use crate::self_metrics::SelfMetrics;
use crate::snapshot::Snapshot;
use crate::web::WebConfig;

/// Runs the refresh loop and the HTTP server on `listener` until `shutdown`
/// resolves; then stops refreshing and lets in-flight scrapes finish. Plain HTTP
/// without authentication: see [`serve_with`] for `--web.config.file`.
pub async fn serve(
    config: Arc<Config>,
    listener: TcpListener,
    telemetry_path: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let options = ServeOptions {
        telemetry_path,
        ..ServeOptions::default()
    };
    serve_with(config, listener, options, shutdown).await
}

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
}

impl Default for ServeOptions {
    /// The flags' defaults: `/metrics`, plain HTTP, 10 s for headers, 512 connections.
    fn default() -> Self {
        ServeOptions {
            telemetry_path: "/metrics".to_owned(),
            web: WebConfig::default(),
            read_header_timeout: crate::server::DEFAULT_READ_HEADER_TIMEOUT,
            max_connections: crate::server::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// [`serve`] with the web configuration: HTTPS when `options.web` has TLS, and basic
/// authentication and extra headers on every endpoint when it has them.
pub async fn serve_with(
    config: Arc<Config>,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ServeOptions {
        telemetry_path,
        web,
        read_header_timeout,
        max_connections,
    } = options;
    let limits = crate::server::Limits {
        read_header_timeout,
        max_connections,
    };
    let names: Vec<&'static str> = config.collectors.iter().map(|c| c.name()).collect();
    let metrics = Arc::new(SelfMetrics::new(
        &names,
        &crate::refresh::operations(&config),
    ));
    let nothing_yet = Published::new(
        Arc::new(Snapshot::default()),
        Arc::new(ExpositionInfo::new(&config)),
        SystemTime::now(),
    );
    let (publish, published) = watch::channel(Arc::new(nothing_yet));
    let refresher = Refresher::new(config.clone(), metrics.clone(), publish.clone())?;

    // One shutdown signal, two listeners: the loop and the server.
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let refresh = tokio::spawn(refresher.run(wait(stopped.clone())));
    tokio::spawn(keep_fresh(publish, wait(stopped.clone())));

    let state = AppState {
        published,
        metrics,
        telemetry_path,
    };
    let router = crate::web::protect(app(state), &web);
    let server = crate::server::run(listener, router, web.tls.clone(), limits, wait(stopped));
    tokio::pin!(server);
    let mut refresh = refresh;
    tokio::select! {
        served = &mut server => {
            served?;
            refresh.await?;
            Ok(())
        }
        // The loop returns only on shutdown; if it died (a bug), exit with an error
        // rather than serve frozen values that look healthy.
        ended = &mut refresh => match ended {
            Ok(()) => Ok(server.await?),
            Err(e) => Err(anyhow::anyhow!("the refresh loop stopped unexpectedly: {e}")),
        },
    }
}
