//! Reloading the configuration without a restart, as Prometheus does: on SIGHUP, and on
//! `POST /-/reload` when `--web.enable-lifecycle` is set.
//!
//! A reload reads the configuration file, the web configuration file and every secret
//! file again, and validates them all before anything changes. A bad file is rejected
//! with the error (file, key, line), `pipefy_exporter_config_last_reload_successful`
//! goes to 0 and the running configuration carries on. A good one is handed to the
//! refresher, which applies it between refreshes (see `Refresher::follow`), and to the
//! HTTP side, whose next connection and request see the new TLS certificate and users.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::config::Config;
use crate::self_metrics::SelfMetrics;
use crate::web::WebConfig;

/// Where a reload reads from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The configuration file; `None` when the configuration was not read from a file
    /// (`--demo`, or a program embedding the exporter): it then stays as it is.
    pub config_file: Option<PathBuf>,
    /// The web configuration file (`--web.config.file`), if any.
    pub web_config_file: Option<PathBuf>,
}

/// Why a reload was rejected. The message names the file and key; it never holds a
/// secret (the loaders never put one in an error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ReloadError(String);

/// Reads the sources again and hands what it read to the refresher and the server.
pub(crate) struct Reloader {
    sources: Sources,
    configs: watch::Sender<Arc<Config>>,
    webs: watch::Sender<Arc<WebConfig>>,
    metrics: Arc<SelfMetrics>,
    /// Serializes reloads: a SIGHUP and a `POST /-/reload` at once read the files once
    /// each, one after the other, and the last one read wins.
    running: Mutex<()>,
}

impl Reloader {
    pub(crate) fn new(
        sources: Sources,
        configs: watch::Sender<Arc<Config>>,
        webs: watch::Sender<Arc<WebConfig>>,
        metrics: Arc<SelfMetrics>,
    ) -> Self {
        Reloader {
            sources,
            configs,
            webs,
            metrics,
            running: Mutex::new(()),
        }
    }

    /// Reads every file again; on success the new configuration takes effect at the
    /// refresher's next turn. Blocking (file reads, bcrypt hashes are only parsed):
    /// call it from `spawn_blocking`.
    pub(crate) fn reload(&self) -> Result<(), ReloadError> {
        let _one_at_a_time = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.read();
        self.metrics
            .observe_reload(result.is_ok(), SystemTime::now());
        match &result {
            Ok(config) => tracing::info!(
                organizations = %describe(config),
                collectors = config.collectors.len(),
                "configuration reloaded; it takes effect at the next refresh"
            ),
            Err(error) => tracing::error!(
                %error,
                "configuration reload failed; the previous configuration keeps running"
            ),
        }
        result.map(|_| ())
    }

    fn read(&self) -> Result<Arc<Config>, ReloadError> {
        let config = match &self.sources.config_file {
            Some(path) => {
                // The shard comes from the flags, which a reload does not change.
                let shard = self.configs.borrow().shard;
                let config = Config::load(path).map_err(|e| ReloadError(e.to_string()))?;
                Arc::new(config.sharded(shard))
            }
            None => self.configs.borrow().clone(),
        };
        let web = match &self.sources.web_config_file {
            Some(path) => WebConfig::load(path).map_err(|e| ReloadError(e.to_string()))?,
            None => WebConfig::default(),
        };
        // The listener was set up for one or the other; as in the exporter-toolkit,
        // switching needs a restart. Certificates, client CAs and users do not.
        let serving_tls = self.webs.borrow().tls_enabled();
        if web.tls_enabled() != serving_tls {
            let (from, to) = if serving_tls {
                ("HTTPS", "plain HTTP")
            } else {
                ("plain HTTP", "HTTPS")
            };
            return Err(ReloadError(format!(
                "web config file {}: switching from {from} to {to} needs a restart",
                self.sources
                    .web_config_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(none)".to_owned()),
            )));
        }
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        self.webs.send_replace(Arc::new(web));
        // Always sent, even if unchanged: secret files were read again and may differ.
        self.configs.send_replace(config.clone());
        Ok(config)
    }
}

/// `account:count` or `account:all` per account, for log lines.
pub(crate) fn describe(config: &Config) -> String {
    let parts: Vec<String> = config
        .accounts
        .iter()
        .map(|a| match &a.organizations {
            Some(ids) => format!("{}:{}", a.name, ids.len()),
            None => format!("{}:all", a.name),
        })
        .collect();
    parts.join(",")
}
