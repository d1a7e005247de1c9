//! Test helpers: a simulator and an exporter on random loopback ports ([`TestApp`]),
//! the exporter's binary or another program as a child process ([`Running`], [`run`]),
//! a parser for the exposition format (independent of the exporter's encoder), and
//! polling.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipefy_exporter::testing::Config;
use pipefy_exporter::testing::ServeOptions;
use pipefy_exporter::testing::Shard;
use pipefy_exporter::testing::Sources;
use pipefy_exporter::testing::WebConfig;
use pipefy_sim::{SimAuth, SimData, SimServer, Simulator};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::certs::Pki;

pub const PAT: &str = "pat-7e1b9c0d-secret-token";
pub const CLIENT_ID: &str = "exporter-client";
pub const CLIENT_SECRET: &str = "cs-4f2a8e61-client-secret";

/// Upper bound for any polling loop: a guard against hanging, never a measurement.
const POLL_LIMIT: Duration = Duration::from_secs(30);

/// The auth the simulator accepts: the personal access token and the client.
pub fn sim_auth(token_ttl: Duration) -> SimAuth {
    SimAuth {
        open: false,
        static_tokens: vec![PAT.to_owned()],
        clients: vec![(CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())],
        token_ttl,
    }
}

/// The usual config: the personal access token from a file, plus `extra` top-level
/// keys.
pub fn pat_config(extra: &str) -> String {
    pat_config_with("", extra)
}

/// Like [`pat_config`], with `pipefy_keys` (indented by two spaces) added to the
/// `pipefy:` block.
pub fn pat_config_with(pipefy_keys: &str, extra: &str) -> String {
    format!(
        "pipefy:\n  endpoint: {{endpoint}}\n  auth:\n    token_file: {{token_file}}\n{pipefy_keys}{extra}"
    )
}

/// Writes the secret files and the config `template`, filled in for the simulator at
/// `sim`, into `dir`; returns the config file's path. The template may use
/// `{endpoint}`, `{token_endpoint}`, `{token_file}` (holds [`PAT`]) and
/// `{secret_file}` (holds [`CLIENT_SECRET`]).
pub fn write_config(template: &str, sim: &SimServer, dir: &Path) -> PathBuf {
    let token_file = dir.join("token");
    let secret_file = dir.join("client-secret");
    std::fs::write(&token_file, format!("{PAT}\n")).unwrap();
    std::fs::write(&secret_file, CLIENT_SECRET).unwrap();
    let yaml = template
        .replace("{endpoint}", &sim.graphql_url())
        .replace("{token_endpoint}", &sim.token_url())
        .replace("{token_file}", &token_file.display().to_string())
        .replace("{secret_file}", &secret_file.display().to_string());
    let file = dir.join("config.yml");
    std::fs::write(&file, yaml).unwrap();
    file
}

/// [`write_config`], then loads the file as the exporter would.
pub fn load_config(template: &str, sim: &SimServer, dir: &Path) -> Config {
    let file = write_config(template, sim, dir);
    let yaml = std::fs::read_to_string(&file).unwrap();
    Config::from_yaml(&yaml, &file, &|_| None)
        .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{yaml}"))
}

/// Starts a simulator on a loopback port.
pub async fn spawn_simulator(sim: &Simulator) -> SimServer {
    sim.spawn(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap()
}

/// A simulator and an exporter (`serve_with`, in-process) wired together, each on its
/// own loopback port. Made by [`TestApp::builder`].
pub struct TestApp {
    pub sim: Simulator,
    #[allow(dead_code)] // kept alive for the test's duration
    pub sim_server: SimServer,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The files the exporter was started from: `config.yml`, `token`,
    /// `client-secret`, and `web.yml` if any; a reload reads them again.
    pub dir: tempfile::TempDir,
}

/// What a [`TestApp`] starts with; every setting but the data has a default.
#[must_use = "call .spawn().await"]
pub struct TestAppBuilder {
    data: SimData,
    auth: SimAuth,
    prepare: Box<dyn FnOnce(&Simulator)>,
    config: String,
    web_config: Option<String>,
    pki: Option<Vec<(&'static str, String)>>,
    lifecycle: bool,
    shard: Shard,
}

impl TestApp {
    /// A simulator serving `data` and accepting [`sim_auth`] (one-hour access tokens),
    /// and an exporter with [`pat_config`]`("")` over plain HTTP; change any of these
    /// on the builder, then `.spawn().await`.
    pub fn builder(data: SimData) -> TestAppBuilder {
        TestAppBuilder {
            data,
            auth: sim_auth(Duration::from_secs(3600)),
            prepare: Box::new(|_| ()),
            config: pat_config(""),
            web_config: None,
            pki: None,
            lifecycle: false,
            shard: Shard::ALL,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL of `path` over TLS (with a web config that enables it).
    pub fn https(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn metrics(&self) -> Metrics {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200);
        Metrics::parse(&response.text().await.unwrap())
    }

    /// Waits until every collector has refreshed at least `n` times, and returns the
    /// metrics.
    pub async fn cycles(&self, n: u64) -> Metrics {
        poll(&format!("{n} refresh cycles"), || async {
            let m = self.metrics().await;
            (m.refreshes() >= n as f64).then_some(m)
        })
        .await
    }

    /// Stops the exporter and waits for `serve_with` to return `Ok`.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl TestAppBuilder {
    /// The credentials the simulator accepts (default: [`sim_auth`] with one-hour
    /// access tokens).
    pub fn auth(mut self, auth: SimAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Prepares the simulator (latency, faults) before the exporter's first request;
    /// the simulator stays reachable as [`TestApp::sim`].
    pub fn prepare(mut self, prepare: impl FnOnce(&Simulator) + 'static) -> Self {
        self.prepare = Box::new(prepare);
        self
    }

    /// The exporter's config, with the placeholders of [`write_config`].
    pub fn config(mut self, template: &str) -> Self {
        self.config = template.to_owned();
        self
    }

    /// Serves with this `--web.config.file`, written as `web.yml` into the exporter's
    /// directory and loaded from there, so relative paths name files beside it.
    pub fn web_config(mut self, yaml: &str) -> Self {
        self.web_config = Some(yaml.to_owned());
        self
    }

    /// Runs as this shard (`--shard`, `--total-shards`; default: not sharded).
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Writes `server.crt`, `server.key` and `ca.crt` of `pki` beside `web.yml`.
    pub fn certificates(mut self, pki: &Pki) -> Self {
        self.pki = Some(pki.files());
        self
    }

    /// Turns on `POST /-/reload` (`--web.enable-lifecycle`), reading the files in
    /// [`TestApp::dir`] again.
    pub fn lifecycle(mut self) -> Self {
        self.lifecycle = true;
        self
    }

    /// Starts the simulator, then the exporter.
    pub async fn spawn(self) -> TestApp {
        let sim = Simulator::new(self.data, self.auth);
        (self.prepare)(&sim);
        let sim_server = spawn_simulator(&sim).await;
        let dir = tempfile::tempdir().unwrap();
        let config = load_config(&self.config, &sim_server, dir.path()).sharded(self.shard);
        for (name, pem) in self.pki.into_iter().flatten() {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        let (web, web_config_file) = match self.web_config {
            None => (WebConfig::default(), None),
            Some(yaml) => {
                let file = dir.path().join("web.yml");
                std::fs::write(&file, &yaml).unwrap();
                let web = WebConfig::load(&file).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
                (web, Some(file))
            }
        };

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServeOptions {
            web,
            sources: Sources {
                config_file: Some(dir.path().join("config.yml")),
                web_config_file,
            },
            enable_lifecycle: self.lifecycle,
            ..ServeOptions::default()
        };
        let task = tokio::spawn(pipefy_exporter::testing::serve(
            Arc::new(config),
            vec![listener],
            options,
            async {
                let _ = stopped.await;
            },
        ));
        TestApp {
            sim,
            sim_server,
            addr,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, panicking after 30 s.
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + POLL_LIMIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One sample of the text exposition format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` body.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text format, unescaping label values; panics on malformed lines so
    /// that a test notices an encoder bug.
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                parse_sample(line).unwrap_or_else(|| panic!("malformed sample line: {line:?}"))
            })
            .collect();
        Metrics {
            text: text.to_owned(),
            samples,
        }
    }

    /// Samples of `name` whose labels include all of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample matching; panics if there is not exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels).as_slice() {
            [one] => one.value,
            other => panic!(
                "expected one {name}{labels:?}, found {}: {other:?}",
                other.len()
            ),
        }
    }

    /// The sum of the samples of `name` whose labels include all of `labels`.
    pub fn sum_of(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().map(|s| s.value).sum()
    }

    /// Refreshes finished by the collector that has had the fewest.
    pub fn refreshes(&self) -> f64 {
        let mut per_collector: BTreeMap<&str, f64> = BTreeMap::new();
        for s in self.find("pipefy_exporter_refreshes_total", &[]) {
            *per_collector.entry(&s.labels["collector"]).or_default() += s.value;
        }
        per_collector.into_values().fold(f64::INFINITY, f64::min)
    }

    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        !self.find(name, labels).is_empty()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (name, value) = line.split_once(' ')?;
            return Some(Sample {
                name: name.to_owned(),
                labels: BTreeMap::new(),
                value: parse_value(value)?,
            });
        }
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    _ => return None,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        match chars.next()? {
            ',' => continue,
            '}' => break,
            _ => return None,
        }
    }
    let value: String = chars.collect();
    Some(Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value.strip_prefix(' ')?)?,
    })
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        t => t.parse().ok(),
    }
}

/// The path of the compiled binary, for tests that run it as a user would.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_pipefy-exporter")
}

/// The binary as a user starts it: no secrets in its environment.
fn exporter(args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_remove("PIPEFY_TOKEN")
        .env_remove("PIPEFY_CLIENT_SECRET");
    command
}

/// How a run of the binary to completion ended.
pub struct Exit {
    /// The exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args` to completion.
pub fn run(args: &[&str]) -> Exit {
    let output = exporter(args).output().unwrap();
    Exit {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A child process (the binary, or a tool such as Prometheus), its stdout and stderr
/// collected on threads; killed and reaped on drop, whatever the test did.
pub struct Running {
    child: Child,
    logs: Arc<Mutex<String>>,
}

impl Running {
    /// The binary with `args`, as a user would start it (no secrets in its
    /// environment).
    pub fn start(args: &[&str]) -> Running {
        Running::spawn(exporter(args), "the exporter's binary")
    }

    /// Another program, such as Debian's `prometheus`; panics naming `install` if it
    /// cannot be started.
    pub fn tool(program: &str, args: &[String], install: &str) -> Running {
        let mut command = Command::new(program);
        command.args(args);
        Running::spawn(command, &format!("{program} ({install})"))
    }

    fn spawn(mut command: Command, what: &str) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let logs = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let sink = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut logs = sink.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        Running { child, logs }
    }

    /// Another program listening on a port it is given: `args(port)` are its arguments
    /// for a port nobody listens on. Picking a free port and handing it over leaves a
    /// moment in which another process may take it; the program then fails to listen and
    /// exits, and is started again on another port (up to five times).
    pub async fn tool_on_free_port(
        program: &str,
        args: impl Fn(u16) -> Vec<String>,
        install: &str,
    ) -> (Running, u16) {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut running = Running::tool(program, &args(port), install);
            let deadline = tokio::time::Instant::now() + POLL_LIMIT;
            loop {
                if running.child.try_wait().ok().flatten().is_some() {
                    break; // it could not listen there: another port
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return (running, port);
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "gave up waiting for {program} to listen on {port}:\n{}",
                    running.logs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("{program} could not listen on a free port in five tries")
    }

    /// The process id, to send it signals.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far, stderr and stdout interleaved by line.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The address from the exporter's `starting pipefy-exporter` log line.
    pub async fn address(&self) -> String {
        poll("the listen address in the logs", || async {
            let logs = self.logs();
            let line = logs
                .lines()
                .find(|l| l.contains("msg=\"starting pipefy-exporter\""))?;
            let addr = line.split(" address=").nth(1)?.split(' ').next()?;
            Some(addr.to_owned())
        })
        .await
    }

    /// Sends SIGTERM and returns the exit code (-1 when killed by a signal). `kill` is
    /// the POSIX shell's built-in, so that procps need not be installed.
    pub fn terminate(&mut self) -> i32 {
        let status = Command::new("sh")
            .args([
                "-c",
                "kill -TERM \"$1\"",
                "sh",
                &self.child.id().to_string(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python of the validators' virtualenv (deploy/requirements-ci.txt): scripts/test
/// puts it first on PATH; plain `cargo test -- --ignored` after
/// scripts/install-test-tools finds it under target/.
pub fn venv_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Every collector, in registry order.
pub const COLLECTORS: [&str; 6] = [
    "subscription_limits",
    "ai_credits",
    "api_usage",
    "automation_jobs",
    "integrations",
    "token_attribution",
];
