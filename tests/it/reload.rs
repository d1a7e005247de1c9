//! Reload (`POST /-/reload` with `--web.enable-lifecycle`, and SIGHUP on the binary)
//! and secrets rotated on disk.

use std::time::Duration;

use pipefy_sim::{demo_data, SimAuth, Simulator};
use reqwest::StatusCode;

use crate::helpers::{
    pat_config, poll, sim_auth, spawn_simulator, write_config, Metrics, Running, TestApp,
    CLIENT_ID, PAT,
};

/// Only the subscription-limits collector, so that a cycle is one request per
/// organization and counts below are exact.
const LIMITS_ONLY: &str = "collectors:\n  ai_credits: false\n  api_usage: false\n  automation_jobs: false\n  integrations: false\n  token_attribution: false\n";

const RELOAD_OK: &str = "pipefy_exporter_config_last_reload_successful";
const RELOAD_AT: &str = "pipefy_exporter_config_last_reload_success_timestamp_seconds";

fn pipes_limit(m: &Metrics, org: &str) -> f64 {
    m.value(
        "pipefy_subscription_limit",
        &[("organization_id", org), ("resource", "pipes")],
    )
}

/// `pipefy_up` of organization 2's subscription limits.
fn limits_up(m: &Metrics) -> f64 {
    m.value(
        "pipefy_up",
        &[
            ("organization_id", "2"),
            ("collector", "subscription_limits"),
        ],
    )
}

fn watches(m: &Metrics, org: &str) -> bool {
    m.has("pipefy_organization_info", &[("organization_id", org)])
}

impl TestApp {
    /// Rewrites `config.yml` (the secret files too, with their usual content).
    fn rewrite_config(&self, template: &str) {
        write_config(template, &self.sim_server, self.dir.path());
    }

    /// `POST /-/reload`: status and body.
    async fn reload(&self) -> (StatusCode, String) {
        let response = self.http.post(self.url("/-/reload")).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

#[tokio::test]
async fn a_reload_adds_removes_and_keeps_organizations_without_paying_for_known_ones() {
    let app = TestApp::builder(demo_data())
        .config(&pat_config(
            "refresh_interval: 1h\norganizations: [2, 300]\n",
        ))
        .lifecycle()
        .spawn()
        .await;
    let m = app.cycles(1).await;
    assert_eq!(pipes_limit(&m, "2"), 5.0);
    assert!(watches(&m, "300"));
    assert!(!watches(&m, "4242"));
    assert_eq!(m.value(RELOAD_OK, &[]), 1.0);
    let loaded_at = m.value(RELOAD_AT, &[]);
    // The fields that named each organization's id: one in the first cycle, since the
    // schema check validated token attribution's (assumed) query, which then shares
    // subscription limits' `organization(id:)` alias.
    let asked = app.sim.stats().organization_ids;
    let per_org = 1;
    assert_eq!((asked["2"], asked["300"]), (per_org, per_org));

    // Pipefy's figure changes; a kept organization is not asked again on reload, so
    // the exporter keeps showing the value it had.
    app.sim.update(|data| {
        data.orgs.get_mut("2").unwrap().limits[0].limit = Some(50);
    });
    app.rewrite_config(&pat_config(
        "refresh_interval: 1h\norganizations: [2, 4242]\n",
    ));
    let (status, body) = app.reload().await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "Configuration reloaded\n")
    );

    let m = poll("4242 fetched and 300 gone after the reload", || async {
        let m = app.metrics().await;
        (watches(&m, "4242") && !watches(&m, "300")).then_some(m)
    })
    .await;
    assert_eq!(pipes_limit(&m, "4242"), 3.0);
    assert_eq!(pipes_limit(&m, "2"), 5.0, "kept, not fetched again");
    assert!(!m.has("pipefy_up", &[("organization_id", "300")]));
    assert_eq!(m.value(RELOAD_OK, &[]), 1.0);
    assert!(m.value(RELOAD_AT, &[]) >= loaded_at);
    // The newcomer cost one field, both collectors' selections merged; organization 2
    // cost nothing (the reload's schema check names no organization).
    let asked = app.sim.stats().organization_ids;
    assert_eq!(asked["4242"], 1, "4242 fetched once");
    assert_eq!(asked["2"], per_org, "2 not fetched again");
    assert_eq!(asked["300"], per_org, "300 not fetched after its removal");
    app.shutdown().await;
}

#[tokio::test]
async fn a_bad_configuration_is_rejected_and_the_running_one_carries_on() {
    let app = TestApp::builder(demo_data())
        .config(&pat_config("refresh_interval: 1h\norganizations: [2]\n"))
        .lifecycle()
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let loaded_at = m.value(RELOAD_AT, &[]);

    app.rewrite_config(&pat_config(
        "refresh_interval: 1h\norganisations: [2, 4242]\n",
    ));
    let (status, body) = app.reload().await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let config_file = app.dir.path().join("config.yml");
    assert!(body.starts_with("failed to reload config: "), "{body}");
    assert!(body.contains("organisations"), "{body}");
    assert!(body.contains(config_file.to_str().unwrap()), "{body}");

    let m = app.metrics().await;
    assert_eq!(m.value(RELOAD_OK, &[]), 0.0);
    assert_eq!(m.value(RELOAD_AT, &[]), loaded_at);
    assert_eq!(pipes_limit(&m, "2"), 5.0);
    assert!(!watches(&m, "4242"));

    // Fixed: accepted, and the gauge says so again.
    app.rewrite_config(&pat_config(
        "refresh_interval: 1h\norganizations: [2, 4242]\n",
    ));
    assert_eq!(app.reload().await.0, StatusCode::OK);
    let m = poll("4242 after the fixed reload", || async {
        let m = app.metrics().await;
        watches(&m, "4242").then_some(m)
    })
    .await;
    assert_eq!(m.value(RELOAD_OK, &[]), 1.0);
    app.shutdown().await;
}

#[tokio::test]
async fn reload_over_http_needs_the_lifecycle_flag() {
    let app = TestApp::builder(demo_data())
        .config(&pat_config("refresh_interval: 1h\norganizations: [2]\n"))
        .spawn()
        .await;
    let (status, body) = app.reload().await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n")
    );
    let get = app.get("/-/reload").await;
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    app.shutdown().await;
}

#[tokio::test]
async fn a_reload_reads_the_web_configuration_again() {
    // Cost 4, for speed.
    let alice = format!("alice: {}\n", bcrypt::hash("alice-pw", 4).unwrap());
    let bob = format!("bob: {}\n", bcrypt::hash("bob-pw", 4).unwrap());
    let app = TestApp::builder(demo_data())
        .config(&pat_config("refresh_interval: 1h\norganizations: [2]\n"))
        .web_config(&format!("basic_auth_users:\n  {alice}"))
        .lifecycle()
        .spawn()
        .await;
    let as_user = |user: &'static str, password: &'static str| {
        let request = app.http.get(app.url("/-/healthy"));
        async move {
            request
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(as_user("alice", "alice-pw").await, StatusCode::OK);
    assert_eq!(as_user("bob", "bob-pw").await, StatusCode::UNAUTHORIZED);

    let web = app.dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  {bob}")).unwrap();
    let status = app
        .http
        .post(app.url("/-/reload"))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(as_user("alice", "alice-pw").await, StatusCode::UNAUTHORIZED);
    assert_eq!(as_user("bob", "bob-pw").await, StatusCode::OK);

    // Plain HTTP to HTTPS needs a new listener: refused, bob still gets in.
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    let response = app
        .http
        .post(app.url("/-/reload"))
        .basic_auth("bob", Some("bob-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.text().await.unwrap();
    // The certificate files do not exist: the file is refused for that first, or for
    // the switch; either way it names the file.
    assert!(body.contains(web.to_str().unwrap()), "{body}");
    assert_eq!(as_user("bob", "bob-pw").await, StatusCode::OK);
    app.shutdown().await;
}

/// The simulator from now on accepts only `token` as a personal access token.
fn accept_only_token(sim: &Simulator, token: &str) {
    sim.set_auth(SimAuth {
        static_tokens: vec![token.to_owned()],
        ..sim_auth(Duration::from_secs(3600))
    });
}

#[tokio::test]
async fn a_token_file_rotated_on_disk_is_used_at_the_next_refusal_without_a_reload() {
    let app = TestApp::builder(demo_data())
        .config(&pat_config(&format!(
            "refresh_interval: 1s\norganizations: [2]\n{LIMITS_ONLY}"
        )))
        .spawn()
        .await;
    let m = app.cycles(1).await;
    assert_eq!(pipes_limit(&m, "2"), 5.0);

    // Kubernetes rotates the mounted secret; Pipefy revokes the old token.
    let rotated = "pat-rotated-0b5e";
    std::fs::write(app.dir.path().join("token"), format!("{rotated}\n")).unwrap();
    accept_only_token(&app.sim, rotated);
    let before = m.refreshes();
    let m = app.cycles(before as u64 + 2).await;
    assert_eq!(limits_up(&m), 1.0);
    // One refused request (not billed), read the file, sent again: no backoff.
    assert_eq!(app.sim.stats().unauthorized, 1);
    assert_eq!(
        m.value("pipefy_exporter_backoff_seconds", &[("account", "default")]),
        0.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_reload_reads_the_secret_files_again_before_any_refusal() {
    let app = TestApp::builder(demo_data())
        .config(&pat_config(&format!(
            "refresh_interval: 1s\norganizations: [2]\n{LIMITS_ONLY}"
        )))
        .lifecycle()
        .spawn()
        .await;
    app.cycles(1).await;
    // A new token is issued while the old one still works, written to the file, and
    // the exporter told at once (as a secret operator would do).
    let rotated = "pat-rotated-7c21";
    app.sim.set_auth(SimAuth {
        static_tokens: vec![PAT.to_owned(), rotated.to_owned()],
        ..sim_auth(Duration::from_secs(3600))
    });
    std::fs::write(app.dir.path().join("token"), format!("{rotated}\n")).unwrap();
    let (status, _) = app.reload().await;
    assert_eq!(status, StatusCode::OK);
    // Wait for the reload to apply, then revoke the old token: not one request of the
    // exporter is refused, because it no longer uses it.
    let before = app.metrics().await.refreshes();
    app.cycles(before as u64 + 1).await;
    accept_only_token(&app.sim, rotated);
    let before = app.metrics().await.refreshes();
    let m = app.cycles(before as u64 + 2).await;
    assert_eq!(limits_up(&m), 1.0);
    assert_eq!(app.sim.stats().unauthorized, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_secret_rotated_on_disk_is_used_when_the_old_one_is_refused() {
    let config = format!(
        "pipefy:\n  endpoint: {{endpoint}}\n  auth:\n    service_account:\n      client_id: {CLIENT_ID}\n      client_secret_file: {{secret_file}}\n      token_endpoint: {{token_endpoint}}\nrefresh_interval: 1s\norganizations: [2]\n{LIMITS_ONLY}"
    );
    let app = TestApp::builder(demo_data()).config(&config).spawn().await;
    app.cycles(1).await;
    assert_eq!(app.sim.stats().tokens_issued, 1);

    let rotated = "cs-rotated-91d3";
    std::fs::write(app.dir.path().join("client-secret"), rotated).unwrap();
    app.sim.set_auth(SimAuth {
        clients: vec![(CLIENT_ID.to_owned(), rotated.to_owned())],
        static_tokens: vec![],
        ..sim_auth(Duration::from_secs(3600))
    });
    app.sim.revoke_access_tokens();
    let before = app.metrics().await.refreshes();
    let m = app.cycles(before as u64 + 2).await;
    assert_eq!(limits_up(&m), 1.0);
    let stats = app.sim.stats();
    // The revoked access token was refused once; the new secret got a new one.
    assert_eq!((stats.unauthorized, stats.tokens_issued), (1, 2));
    app.shutdown().await;
}

/// `kill -HUP`, with the POSIX shell's built-in `kill`.
fn hangup(exporter: &Running) {
    let status = std::process::Command::new("sh")
        .args(["-c", "kill -HUP \"$1\"", "sh", &exporter.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sighup_reloads_the_binary_and_a_bad_file_keeps_it_running() {
    let sim = Simulator::new(demo_data(), sim_auth(Duration::from_secs(3600)));
    let server = spawn_simulator(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &pat_config("refresh_interval: 1h\norganizations: [2]\n"),
        &server,
        dir.path(),
    );
    let mut exporter = Running::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--web.listen-address",
        "127.0.0.1:0",
    ]);
    let address = exporter.address().await;
    let http = reqwest::Client::new();
    let metrics = || async {
        let text = http
            .get(format!("http://{address}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(Metrics::parse(&text))
    };
    poll("the first refresh", || async {
        metrics().await.filter(|m| watches(m, "2"))
    })
    .await;

    write_config(
        &pat_config("refresh_interval: 1h\norganizations: [2, 4242]\n"),
        &server,
        dir.path(),
    );
    hangup(&exporter);
    let m = poll("4242 after SIGHUP", || async {
        metrics().await.filter(|m| watches(m, "4242"))
    })
    .await;
    assert_eq!(pipes_limit(&m, "4242"), 3.0);
    assert_eq!(m.value(RELOAD_OK, &[]), 1.0);
    assert!(exporter
        .logs()
        .contains("msg=\"configuration reloaded; it takes effect at the next refresh\""));

    std::fs::write(&config, "pipefy:\n  timeout: soon\n").unwrap();
    hangup(&exporter);
    let m = poll("the failed reload in the gauge", || async {
        metrics().await.filter(|m| m.value(RELOAD_OK, &[]) == 0.0)
    })
    .await;
    assert_eq!(
        pipes_limit(&m, "4242"),
        3.0,
        "the running configuration stays"
    );
    let logs = exporter.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("configuration reload failed"))
        .unwrap_or_else(|| panic!("no failure line in:\n{logs}"));
    assert!(
        line.starts_with("time=") && line.contains("level=error"),
        "{line}"
    );
    assert!(line.contains("pipefy.timeout"), "{line}");
    assert!(line.contains(config.to_str().unwrap()), "{line}");
    assert!(!logs.contains(PAT), "a secret reached the logs");
    assert_eq!(exporter.terminate(), 0, "{}", exporter.logs());
}

#[tokio::test]
async fn a_reload_keeps_the_shard_of_the_flags() {
    // Of 2 shards, shard 1 owns organizations 2 and 4242, shard 0 owns 300. The reload
    // lists all three, and only this shard's must be fetched and exported.
    let shard = 1;
    assert_eq!(pipefy_exporter::testing::owner("300", 2), 0);
    let app = TestApp::builder(demo_data())
        .config(&pat_config("refresh_interval: 1h\norganizations: [2]\n"))
        .shard(pipefy_exporter::testing::Shard::new(shard, 2).unwrap())
        .lifecycle()
        .spawn()
        .await;
    let m = app.cycles(1).await;
    assert!(watches(&m, "2"));

    app.rewrite_config(&pat_config(
        "refresh_interval: 1h\norganizations: [2, 300, 4242]\n",
    ));
    assert_eq!(app.reload().await.0, StatusCode::OK);
    let owned = ["2", "4242"];
    let m = poll("the reloaded organizations of this shard", || async {
        let m = app.metrics().await;
        owned.iter().all(|id| watches(&m, id)).then_some(m)
    })
    .await;
    for id in ["2", "300", "4242"] {
        assert_eq!(watches(&m, id), owned.contains(&id), "organization {id}");
    }
    // Nothing outside the shard was asked for either.
    let asked = app.sim.stats().organization_ids;
    assert!(
        asked.keys().all(|id| owned.contains(&id.as_str())),
        "{asked:?} asked, shard owns {owned:?}"
    );
    app.shutdown().await;
}
