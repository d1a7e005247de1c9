//! Command-line flags (node_exporter style) and the top-level `run`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::TypedValueParser as _;
use clap::Parser;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::logging::{LogFormat, LogLevel};
use crate::shard::Shard;
use crate::web::WebConfig;

/// The default listen address, on every interface. The port is registered nowhere else:
/// the 9100–9999 exporter range of the Prometheus default-port-allocations page is full,
/// and 10151 is unclaimed above it.
pub const DEFAULT_LISTEN_ADDRESS: &str = ":10151";

pub use crate::exposition::{REVISION, VERSION};

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision: ",
    env!("PIPEFY_EXPORTER_REVISION"),
    ")"
);

/// Prometheus exporter for Pipefy plan limits, AI credits and token billing attribution.
///
/// Pipefy is queried in the background, each collector on its own interval (by default
/// plan limits every 5m; API calls, AI credits and automation jobs every 15m;
/// integrations and tokens every 1h); scrapes never call it.
#[derive(Debug, Parser)]
#[command(name = "pipefy-exporter", version = VERSION, long_version = LONG_VERSION)]
pub struct Cli {
    /// Path to the YAML configuration file.
    #[arg(
        long = "config.file",
        value_name = "FILE",
        default_value = "pipefy-exporter.yml"
    )]
    pub config_file: PathBuf,

    /// Address to listen on for the web interface and telemetry (`:PORT` listens on all
    /// interfaces); repeat the flag to listen on several.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDRESS",
        default_value = DEFAULT_LISTEN_ADDRESS
    )]
    pub listen_address: Vec<String>,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// Path to a configuration file that can enable TLS or authentication, in the
    /// Prometheus exporter-toolkit format (read again on reload).
    // Empty is allowed and means none, as in the exporter-toolkit.
    #[arg(
        long = "web.config.file",
        value_name = "FILE",
        value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from)
    )]
    pub web_config_file: Option<PathBuf>,

    /// Maximum duration to wait for a request's headers, from the connection's opening
    /// or the end of the previous response (so it also closes idle kept-alive
    /// connections).
    #[arg(
        long = "web.read-header-timeout",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_timeout
    )]
    pub read_header_timeout: Duration,

    /// Maximum number of simultaneous connections; past it, new connections are closed
    /// at once.
    #[arg(
        long = "web.max-connections",
        value_name = "N",
        default_value_t = crate::server::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize)
    )]
    pub max_connections: usize,

    /// Enable `POST /-/reload` (and PUT), which reloads the configuration as SIGHUP
    /// does.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,

    /// The shard of the organizations this instance fetches and exports, from 0 (with
    /// `--total-shards`): an organization belongs to shard FNV-1a-64(id) mod
    /// total-shards.
    #[arg(long = "shard", value_name = "N", default_value_t = 0)]
    pub shard: u32,

    /// The number of instances that share the organizations, one `--shard` each; 1 (the
    /// default) disables sharding.
    #[arg(long = "total-shards", value_name = "M", default_value_t = 1)]
    pub total_shards: u32,

    /// Run against a built-in Pipefy simulator on loopback, with no credentials and a
    /// 15 s refresh interval; `--config.file` is ignored.
    #[arg(long)]
    pub demo: bool,

    /// Validate the configuration (and the web configuration, if given), secrets
    /// included, then exit: 0 when valid, 1 with the error otherwise.
    #[arg(long = "config.check", conflicts_with = "demo")]
    pub config_check: bool,

    /// Check with Pipefy, using the configured credentials, that everything enabled will
    /// work: authenticate, validate every collector's query against Pipefy's schema, and
    /// check that each organization can be read with the Usage Stats permission. Prints
    /// one line per account, collector and organization and the billed requests spent (2
    /// per account), then exits: 0 when everything will work, 1 otherwise.
    #[arg(long = "check.pipefy", conflicts_with_all = ["demo", "config_check"])]
    pub check_pipefy: bool,
}

/// A positive Prometheus-style duration (`10s`, `1m`).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match crate::duration::parse_duration(text)? {
        Duration::ZERO => Err("must be more than zero".to_owned()),
        duration => Ok(duration),
    }
}

/// Binds the listen address, with a deep listen backlog (`server::bind`). `:PORT` means
/// every interface, IPv6 and IPv4 as in the Go exporters: `[::]:PORT` (dual-stack on
/// Linux), or `0.0.0.0:PORT` where IPv6 is off.
async fn bind(text: &str) -> anyhow::Result<TcpListener> {
    let context = || format!("cannot listen on {text} (--web.listen-address)");
    match text.strip_prefix(':') {
        Some(port) => match crate::server::bind(&format!("[::]:{port}")).await {
            Ok(listener) => Ok(listener),
            Err(_) => crate::server::bind(&format!("0.0.0.0:{port}"))
                .await
                .with_context(context),
        },
        None => crate::server::bind(text).await.with_context(context),
    }
}

/// The telemetry path must be a plain absolute path that no other endpoint uses.
fn check_telemetry_path(path: &str) -> anyhow::Result<()> {
    if !path.starts_with('/') {
        anyhow::bail!("--web.telemetry-path must start with '/', got {path:?}");
    }
    if path.contains(['{', '}', '*', '?', '#']) || path.chars().any(char::is_whitespace) {
        anyhow::bail!("--web.telemetry-path must be a plain path, got {path:?}");
    }
    if path == "/-/healthy" || path == "/-/ready" {
        anyhow::bail!("--web.telemetry-path {path:?} is taken by the health endpoints");
    }
    Ok(())
}

/// The running demo's simulator.
#[cfg(feature = "demo")]
type Demo = crate::demo::Demo;

#[cfg(feature = "demo")]
async fn start_demo() -> anyhow::Result<(Config, Demo)> {
    crate::demo::start().await
}

/// A build without the simulator (`--no-default-features`) has no demo to start.
#[cfg(not(feature = "demo"))]
async fn start_demo() -> anyhow::Result<(Config, Demo)> {
    anyhow::bail!("--demo is not available: this build was made without the `demo` feature")
}

/// Stands in for the demo in a build without it: no value of it can exist.
#[cfg(not(feature = "demo"))]
enum Demo {}

#[cfg(not(feature = "demo"))]
impl Demo {
    fn announce(&self, _base: &str, _telemetry_path: &str) {
        match *self {}
    }
}

/// Reads the configuration file; a missing one says how to start, since the default
/// path (`pipefy-exporter.yml` in the working directory) is what a first run trips on.
fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|error| {
        let missing = matches!(
            &error,
            crate::yaml::FileError::Read { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound
        );
        let error = anyhow::Error::new(error);
        if missing {
            anyhow::anyhow!(
                "{error:#}; point --config.file at your configuration file, or try the \
                 exporter with --demo (a built-in Pipefy simulator, no credentials)"
            )
        } else {
            error
        }
    })
}

/// Logs what the configuration will do: each collector's schedule, and the accounts
/// that list no organization, which watch every organization their credential can see
/// (an empty `organizations: []` means that too, which surprises).
fn log_plan(config: &Config) {
    for collector in &config.collectors {
        tracing::info!(
            collector = collector.name(),
            "collector enabled: {}",
            collector.schedule().describe()
        );
    }
    for account in config.accounts.iter().filter(|a| a.organizations.is_none()) {
        tracing::info!(
            account = %account.name,
            "no organizations listed (`organizations` omitted or empty): the exporter \
             watches every organization the credential can see, found by one \
             `organizations` request per refresh"
        );
    }
}

/// Runs the exporter until SIGTERM or Ctrl-C, or one of the checks.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    check_telemetry_path(&cli.telemetry_path)?;
    let shard = Shard::new(cli.shard, cli.total_shards).map_err(anyhow::Error::msg)?;
    // Load the web config, then start the simulator (demo) or load the config, all
    // before binding, so that a bad file fails fast and never leaves a half-started
    // server. An empty `--web.config.file` means none, as in the exporter-toolkit.
    let web_config_file = cli
        .web_config_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf);
    let web = match &web_config_file {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    };
    let (config, demo) = if cli.demo {
        let (config, demo) = start_demo().await?;
        (config, Some(demo))
    } else {
        (load_config(&cli.config_file)?, None)
    };
    // Listed organizations are filtered here, once; discovered ones at each discovery.
    let config = config.sharded(shard);
    if cli.check_pipefy {
        let report = crate::preflight::check(&config, &cli.config_file.display().to_string()).await;
        print!("{}", report.text);
        if report.problems > 0 {
            anyhow::bail!(
                "--check.pipefy found {} problem(s) (listed above)",
                report.problems
            );
        }
        return Ok(());
    }
    if cli.config_check {
        tracing::info!(
            file = %cli.config_file.display(),
            organizations = %crate::reload::describe(&config),
            shard = %config.shard,
            "configuration is valid"
        );
        log_plan(&config);
        return Ok(());
    }
    serve(cli, web, web_config_file, config, demo).await
}

/// Binds every address, says what runs, and serves until SIGTERM or Ctrl-C.
async fn serve(
    cli: Cli,
    web: WebConfig,
    web_config_file: Option<PathBuf>,
    config: Config,
    demo: Option<Demo>,
) -> anyhow::Result<()> {
    let open_files = crate::server::raise_open_file_limit();
    if let Some(warning) = crate::server::capacity_warning(cli.max_connections, open_files) {
        tracing::warn!("{warning}");
    }
    // Every address is bound before anything is served, so that one taken address
    // stops the start rather than leaving the others half-served.
    let mut listeners = Vec::with_capacity(cli.listen_address.len());
    for address in &cli.listen_address {
        listeners.push(bind(address).await?);
    }
    let locals = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<SocketAddr>, _>>()?;
    // The demo points at the first address: one place to look is enough.
    if let (Some(demo), Some(local)) = (&demo, locals.first()) {
        demo.announce(&base_url(*local, &web), &cli.telemetry_path);
    }
    log_start(&config, &locals, &web, demo.is_some());
    let sources = crate::reload::Sources {
        // The demo's configuration is built in; only its web configuration reloads.
        config_file: (!cli.demo).then(|| cli.config_file.clone()),
        web_config_file,
    };
    let options = crate::app::ServeOptions {
        telemetry_path: cli.telemetry_path,
        web,
        read_header_timeout: cli.read_header_timeout,
        max_connections: cli.max_connections,
        sources,
        enable_lifecycle: cli.enable_lifecycle,
        reload_on_sighup: true,
    };
    crate::app::serve(Arc::new(config), listeners, options, shutdown_signal()).await
}

/// `http(s)://host:port` of a local address, `localhost` for every interface.
fn base_url(local: SocketAddr, web: &WebConfig) -> String {
    let host = if local.ip().is_unspecified() {
        "localhost".to_string()
    } else if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    format!("{}://{host}:{}", crate::server::scheme(web), local.port())
}

/// The start-up lines: version, addresses, organizations, schedule, warnings, TLS and
/// authentication.
fn log_start(config: &Config, locals: &[SocketAddr], web: &WebConfig, demo: bool) {
    tracing::info!(
        version = VERSION,
        revision = REVISION,
        address = %locals.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(","),
        organizations = %crate::reload::describe(config),
        shard = %config.shard,
        "starting pipefy-exporter"
    );
    log_plan(config);
    // The demo's simulator bills nothing: its short intervals cost no money.
    if !demo {
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
    }
    let on = |enabled: bool| if enabled { "enabled" } else { "disabled" };
    tracing::info!(
        tls = web.tls_enabled(),
        client_auth = ?web.client_auth,
        basic_auth = web.basic_auth_enabled(),
        "TLS is {}, basic authentication is {}",
        on(web.tls_enabled()),
        on(web.basic_auth_enabled()),
    );
    if web.basic_auth_enabled() && !web.tls_enabled() {
        tracing::warn!("basic authentication without TLS sends passwords in clear text");
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_paths_are_checked() {
        assert!(check_telemetry_path("/metrics").is_ok());
        assert!(check_telemetry_path("/").is_ok());
        for bad in [
            "metrics",
            "/-/ready",
            "/-/healthy",
            "/metrics/{x}",
            "/a b",
            "/*x",
        ] {
            assert!(check_telemetry_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_flags_have_their_defaults_and_reject_zero() {
        let cli = Cli::try_parse_from(["pipefy-exporter"]).unwrap();
        assert_eq!(cli.read_header_timeout, Duration::from_secs(10));
        assert_eq!(cli.max_connections, 512);
        let cli = Cli::try_parse_from([
            "pipefy-exporter",
            "--web.read-header-timeout=1m30s",
            "--web.max-connections=8",
        ])
        .unwrap();
        assert_eq!(cli.read_header_timeout, Duration::from_secs(90));
        assert_eq!(cli.max_connections, 8);
        for bad in [
            "--web.read-header-timeout=0",
            "--web.read-header-timeout=10",
            "--web.max-connections=0",
            "--web.max-connections=-1",
        ] {
            assert!(
                Cli::try_parse_from(["pipefy-exporter", bad]).is_err(),
                "{bad}"
            );
        }
    }

    /// `--help` states the collectors' own default intervals, the ones a configuration
    /// without any `interval` or `refresh_interval` runs with.
    #[test]
    fn help_states_each_collectors_default_interval() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(
            help.contains(
                "Pipefy is queried in the background, each collector on its own interval (by \
                 default plan limits every 5m; API calls, AI credits and automation jobs every \
                 15m; integrations and tokens every 1h); scrapes never call it."
            ),
            "{help}"
        );
        let config = Config::from_yaml("", Path::new("empty.yml"), &|key| {
            (key == crate::config::ENV_TOKEN).then(|| "pat".to_owned())
        })
        .unwrap();
        let intervals: Vec<(&str, String)> = config
            .schedules()
            .into_iter()
            .map(|(name, s)| (name, crate::duration::format_duration(s.interval)))
            .collect();
        assert_eq!(
            intervals,
            [
                ("subscription_limits", "5m".to_owned()),
                ("ai_credits", "15m".to_owned()),
                ("api_usage", "15m".to_owned()),
                ("automation_jobs", "15m".to_owned()),
                ("integrations", "1h".to_owned()),
                ("token_attribution", "1h".to_owned()),
            ]
        );
    }

    #[test]
    fn the_listen_address_repeats_and_defaults_to_one() {
        let cli = Cli::try_parse_from(["pipefy-exporter"]).unwrap();
        assert_eq!(cli.listen_address, [":10151"]);
        let cli = Cli::try_parse_from([
            "pipefy-exporter",
            "--web.listen-address=127.0.0.1:10151",
            "--web.listen-address",
            "[::1]:10151",
        ])
        .unwrap();
        assert_eq!(cli.listen_address, ["127.0.0.1:10151", "[::1]:10151"]);
    }

    #[test]
    fn shard_flags_default_to_one_shard() {
        let cli = Cli::try_parse_from(["pipefy-exporter"]).unwrap();
        assert_eq!((cli.shard, cli.total_shards), (0, 1));
        let cli =
            Cli::try_parse_from(["pipefy-exporter", "--shard=2", "--total-shards", "3"]).unwrap();
        assert_eq!((cli.shard, cli.total_shards), (2, 3));
        assert!(Cli::try_parse_from(["pipefy-exporter", "--shard=-1"]).is_err());
    }

    #[tokio::test]
    async fn out_of_range_shards_stop_the_exporter_with_the_flags_named() {
        for (args, message) in [
            (
                ["--shard=0", "--total-shards=0"],
                "--total-shards must be at least 1, got 0",
            ),
            (
                ["--shard=3", "--total-shards=3"],
                "--shard must be less than --total-shards (3): shards are numbered from 0, got --shard=3",
            ),
        ] {
            let cli = Cli::try_parse_from(
                ["pipefy-exporter", "--config.file=/nonexistent.yml"]
                    .into_iter()
                    .chain(args),
            )
            .unwrap();
            // Checked before the configuration file is read.
            assert_eq!(run(cli).await.unwrap_err().to_string(), message);
        }
    }

    #[tokio::test]
    async fn a_bare_port_listens_on_every_interface() {
        let listener = bind(":0").await.unwrap();
        assert!(listener.local_addr().unwrap().ip().is_unspecified());
        let listener = bind("127.0.0.1:0").await.unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
        let error = bind("256.0.0.1:80").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot listen on 256.0.0.1:80 (--web.listen-address)"
        );
    }
}
