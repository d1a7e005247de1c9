//! `--web.config.file`: HTTPS, client certificates, basic authentication and extra
//! headers, over real sockets, with certificates made at test time by rcgen; the real
//! binary for startup errors, logs and SIGTERM; and `promtool check web-config` on the
//! shipped example.

use std::path::{Path, PathBuf};
use std::process::Command;

use pipefy_exporter::testing::WebConfig;
use pipefy_sim::demo_data;
use rcgen::SanType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::certs::{client_identity, dns, new_ca, Pki};
use crate::helpers::{pat_config, poll, run, Metrics, Running, TestApp};

/// The password of the example web config (`examples/web-config.yml`).
const EXAMPLE_PASSWORD: &str = "example-password";

const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

/// The exporter in-process with the test PKI and `web_yaml` as its web config,
/// watching organization 2 of the demo data.
async fn web_app(pki: &Pki, web_yaml: &str) -> TestApp {
    TestApp::builder(demo_data())
        .config(&pat_config("organizations: [2]\n"))
        .certificates(pki)
        .web_config(web_yaml)
        .spawn()
        .await
}

/// Waits for the first refresh through `client` at `url` (the metrics endpoint).
async fn first_refresh(client: &reqwest::Client, url: &str, auth: Option<(&str, &str)>) -> Metrics {
    poll("the first refresh", || async {
        let mut request = client.get(url);
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let m = Metrics::parse(&response.text().await.unwrap());
        (m.refreshes() >= 1.0).then_some(m)
    })
    .await
}

/// The whole error chain of a failed request, for messages.
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(" / ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

// ---------------------------------------------------------------------------------
// TLS.

#[tokio::test]
async fn https_serves_the_metrics_to_a_client_that_trusts_the_ca() {
    let pki = Pki::new();
    let app = web_app(&pki, TLS).await;
    let client = pki.client(None);
    let m = first_refresh(&client, &app.https("/metrics"), None).await;
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &[("organization_id", "2"), ("resource", "pipes")]
        ),
        5.0
    );
    let response = client.get(app.https("/-/healthy")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.unwrap(), "Healthy\n");

    // Through "localhost" too, which the certificate also names.
    let by_name = format!("https://localhost:{}/-/ready", app.addr.port());
    assert_eq!(client.get(by_name).send().await.unwrap().status(), 200);

    // A client that does not trust the CA cannot connect.
    let error = reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .unwrap()
        .get(app.https("/metrics"))
        .send()
        .await
        .unwrap_err();
    assert!(chain(&error).contains("UnknownIssuer"), "{}", chain(&error));
    app.shutdown().await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_400_and_the_server_carries_on() {
    let pki = Pki::new();
    let app = web_app(&pki, TLS).await;
    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        "Client sent an HTTP request to an HTTPS server.\n"
    );

    // Garbage that starts like a TLS record, then a half-open connection that never
    // finishes its handshake: neither stops the server.
    let mut garbage = TcpStream::connect(app.addr).await.unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x00\x05hello")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = garbage.read_to_end(&mut buf).await;
    let _idle = TcpStream::connect(app.addr).await.unwrap();

    let client = pki.client(None);
    let response = client.get(app.https("/-/healthy")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // Shutdown does not wait for the idle connection's handshake.
    app.shutdown().await;
}

#[tokio::test]
async fn require_and_verify_client_cert_admits_only_clients_of_the_ca() {
    let pki = Pki::new();
    let app = web_app(
        &pki,
        &format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"),
    )
    .await;

    let error = pki
        .client(None)
        .get(app.https("/metrics"))
        .send()
        .await
        .unwrap_err();
    assert!(
        chain(&error).contains("CertificateRequired"),
        "{}",
        chain(&error)
    );

    let rogue = new_ca("someone else's CA");
    let error = pki
        .client(Some(&client_identity(&rogue, vec![dns("scraper.example")])))
        .get(app.https("/metrics"))
        .send()
        .await
        .unwrap_err();
    assert!(chain(&error).contains("UnknownCA"), "{}", chain(&error));

    let good = pki.client(Some(&client_identity(
        &pki.ca,
        vec![dns("scraper.example")],
    )));
    let m = first_refresh(&good, &app.https("/metrics"), None).await;
    assert!(m.has("pipefy_up", &[("organization_id", "2")]));
    app.shutdown().await;
}

#[tokio::test]
async fn client_allowed_sans_narrow_the_accepted_certificates() {
    let pki = Pki::new();
    let app = web_app(
        &pki,
        &format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [scraper.example, spiffe://example/prometheus]\n"),
    )
    .await;
    let other = pki.client(Some(&client_identity(&pki.ca, vec![dns("other.example")])));
    let error = other.get(app.https("/metrics")).send().await.unwrap_err();
    assert!(chain(&error).contains("AccessDenied"), "{}", chain(&error));

    for san in [
        dns("scraper.example"),
        SanType::URI("spiffe://example/prometheus".try_into().unwrap()),
    ] {
        let client = pki.client(Some(&client_identity(
            &pki.ca,
            vec![dns("other.example"), san],
        )));
        let response = client.get(app.https("/-/healthy")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn require_any_client_cert_takes_any_certificate_but_not_none() {
    let pki = Pki::new();
    let app = web_app(
        &pki,
        &format!("{TLS}  client_auth_type: RequireAnyClientCert\n"),
    )
    .await;
    let error = pki
        .client(None)
        .get(app.https("/-/healthy"))
        .send()
        .await
        .unwrap_err();
    assert!(
        chain(&error).contains("CertificateRequired"),
        "{}",
        chain(&error)
    );
    let rogue = new_ca("self-made");
    let client = pki.client(Some(&client_identity(&rogue, vec![dns("x.example")])));
    let response = client.get(app.https("/-/healthy")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------
// Basic authentication and headers.

/// Two users: alice ("wonderland") and bob ("builder"), hashed at cost 4 here.
fn users() -> String {
    format!(
        "basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
        bcrypt::hash("wonderland", 4).unwrap(),
        bcrypt::hash("builder", 4).unwrap().replace("$2b$", "$2y$"),
    )
}

async fn status(
    client: &reqwest::Client,
    url: &str,
    auth: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn basic_auth_guards_every_endpoint() {
    let pki = Pki::new();
    let app = web_app(&pki, &users()).await;
    let client = reqwest::Client::new();
    let alice = Some(("alice", "wonderland"));
    first_refresh(&client, &app.url("/metrics"), alice).await;

    for path in ["/metrics", "/", "/-/ready", "/-/healthy", "/no-such-page"] {
        for auth in [
            None,
            Some(("alice", "wrong")),
            Some(("alice", "")),
            Some(("mallory", "wonderland")),
            Some(("", "wonderland")),
            Some(("alice", "builder")), // bob's password
        ] {
            let response = status(&client, &app.url(path), auth).await;
            assert_eq!(response.status(), 401, "{path} {auth:?}");
            assert_eq!(response.headers()["www-authenticate"], "Basic");
            assert_eq!(response.text().await.unwrap(), "Unauthorized\n");
        }
    }
    for (path, expected) in [
        ("/metrics", 200),
        ("/", 200),
        ("/-/ready", 200),
        ("/-/healthy", 200),
        ("/no-such-page", 404),
    ] {
        for auth in [alice, Some(("bob", "builder"))] {
            let response = status(&client, &app.url(path), auth).await;
            assert_eq!(response.status(), expected, "{path} {auth:?}");
            assert!(response.headers().get("www-authenticate").is_none());
        }
    }
    // The raw header, as a browser or curl sends it.
    let response = client
        .get(app.url("/-/healthy"))
        .header("Authorization", "Basic YWxpY2U6d29uZGVybGFuZA==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn basic_auth_over_https_with_mutual_tls() {
    let pki = Pki::new();
    let app = web_app(
        &pki,
        &format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n{}",
            users()
        ),
    )
    .await;
    let client = pki.client(Some(&client_identity(
        &pki.ca,
        vec![dns("scraper.example")],
    )));
    let response = status(&client, &app.https("/metrics"), None).await;
    assert_eq!(response.status(), 401);
    let response = status(&client, &app.https("/metrics"), Some(("bob", "nope"))).await;
    assert_eq!(response.status(), 401);
    first_refresh(&client, &app.https("/metrics"), Some(("bob", "builder"))).await;
    app.shutdown().await;
}

#[tokio::test]
async fn extra_headers_are_on_every_response() {
    let pki = Pki::new();
    let app = web_app(
        &pki,
        &format!(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=31536000; includeSubDomains\n    Content-Security-Policy: default-src 'self'\n    X-XSS-Protection: '0'\n{}",
            users()
        ),
    )
    .await;
    let client = reqwest::Client::new();
    let alice = Some(("alice", "wonderland"));
    for (path, auth, expected) in [
        ("/metrics", alice, 200),
        ("/", alice, 200),
        ("/-/healthy", alice, 200),
        ("/no-such-page", alice, 404),
        ("/metrics", None, 401),
    ] {
        let response = status(&client, &app.url(path), auth).await;
        assert_eq!(response.status(), expected, "{path}");
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "deny", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(
            headers["strict-transport-security"], "max-age=31536000; includeSubDomains",
            "{path}"
        );
        assert_eq!(
            headers["content-security-policy"], "default-src 'self'",
            "{path}"
        );
        assert_eq!(headers["x-xss-protection"], "0", "{path}");
        assert_eq!(headers.get_all("x-frame-options").iter().count(), 1);
    }
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------
// The shipped example and promtool.

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web-config.yml")
}

fn promtool_check_web_config(file: &Path) -> (bool, String) {
    let output = Command::new("promtool")
        .args(["check", "web-config"])
        .arg(file)
        .output()
        .expect(
            "promtool is installed (apt-get install prometheus, or scripts/install-test-tools)",
        );
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn the_example_web_config_serves_https_with_basic_auth() {
    let pki = Pki::new();
    let text = std::fs::read_to_string(example()).unwrap();
    let app = web_app(&pki, &text).await;
    let client = pki.client(None);
    let response = status(&client, &app.https("/metrics"), None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let response = status(
        &client,
        &app.https("/-/healthy"),
        Some(("prometheus", EXAMPLE_PASSWORD)),
    )
    .await;
    assert_eq!(response.status(), 200, "the example's documented password");
    app.shutdown().await;
}

#[test]
#[ignore = "needs Debian's prometheus (promtool); run by scripts/test"]
fn the_example_web_config_passes_promtool() {
    let dir = tempfile::tempdir().unwrap();
    Pki::new().write(dir.path());
    let file = dir.path().join("web.yml");
    std::fs::copy(example(), &file).unwrap();
    let (ok, output) = promtool_check_web_config(&file);
    assert!(ok, "promtool check web-config failed:\n{output}");
    assert!(output.contains("SUCCESS"), "{output}");
}

/// Writes each web config that promtool and the exporter should both accept (`true`)
/// or both refuse (`false`) as `web.yml` beside the test PKI, and calls `check` with
/// the file, the text and the verdict.
fn for_each_web_config(mut check: impl FnMut(&Path, &str, bool)) {
    let dir = tempfile::tempdir().unwrap();
    Pki::new().write(dir.path());
    let hash = bcrypt::hash("pw", 4).unwrap();
    let valid = [
        String::new(),
        TLS.to_string(),
        format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n  max_version: TLS13\n"),
        format!("{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"),
        format!("{TLS}  client_auth_type: RequestClientCert\n"),
        format!("{TLS}  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n  prefer_server_cipher_suites: false\n  curve_preferences: [CurveP256, X25519, CurveP384]\n"),
        "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: sameorigin\n".to_string(),
        format!("basic_auth_users:\n  alice: {hash}\n"),
    ];
    let invalid = [
        format!("{TLS}  cert_fil: x\n"),
        "tls_server_config:\n  cert_file: server.crt\n".to_string(),
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n".to_string(),
        format!("{TLS}  client_auth_type: Sometimes\n"),
        format!("{TLS}  client_ca_file: ca.crt\n"),
        format!("{TLS}  min_version: TLS14\n"),
        format!("{TLS}  cipher_suites: [TLS_FANCY]\n"),
        format!("{TLS}  curve_preferences: [Curve25519]\n"),
        "http_server_config:\n  headers:\n    Server: pipefy\n".to_string(),
        "http_server_config:\n  headers:\n    X-Frame-Options: allow-from\n".to_string(),
        "basic_auth_users:\n  alice: not-a-hash\n".to_string(),
    ];
    let file = dir.path().join("web.yml");
    for (text, expect) in valid
        .iter()
        .map(|t| (t, true))
        .chain(invalid.iter().map(|t| (t, false)))
    {
        std::fs::write(&file, text).unwrap();
        check(&file, text, expect);
    }
}

#[test]
fn the_exporter_accepts_the_valid_web_configs_and_refuses_the_others() {
    for_each_web_config(|file, text, expect| {
        let ours = WebConfig::load(file);
        assert_eq!(ours.is_ok(), expect, "the exporter on:\n{text}\n{ours:?}");
    });
}

#[test]
#[ignore = "needs Debian's prometheus (promtool); run by scripts/test"]
fn promtool_agrees_on_which_web_configs_are_valid() {
    for_each_web_config(|file, text, expect| {
        let (promtool, output) = promtool_check_web_config(file);
        assert_eq!(promtool, expect, "promtool on:\n{text}\n{output}");
    });
}

// ---------------------------------------------------------------------------------
// The binary.

#[test]
fn a_bad_web_config_stops_the_binary_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    Pki::new().write(dir.path());
    let file = dir.path().join("web.yml");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let broken = hash.replace("$04$", "$4$");
    for (text, key, message) in [
        (
            format!("{TLS}  min_version: TLS10\n"),
            "line 4: key tls_server_config.min_version",
            "TLS10 is not supported: rustls implements only TLS 1.2 and 1.3",
        ),
        (
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n".to_string(),
            "line 2: key tls_server_config.cert_file",
            "cannot read ",
        ),
        (
            format!("basic_auth_users:\n  alice: '{broken}'\n"),
            "line 2: key basic_auth_users.alice",
            "not a bcrypt hash",
        ),
    ] {
        std::fs::write(&file, &text).unwrap();
        let exit = run(&[
            "--demo",
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.config.file",
            file.to_str().unwrap(),
        ]);
        let stderr = exit.stderr;
        assert_eq!(exit.code, 1, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "web config file {}: {key}: {message}",
                file.display()
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("starting pipefy-exporter"), "{stderr}");
        assert!(!stderr.contains(&broken), "the hash leaked: {stderr}");
    }
}

#[tokio::test]
async fn an_empty_web_config_flag_means_plain_http() {
    // As in the exporter-toolkit.
    let mut exporter = Running::start(&[
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.config.file=",
    ]);
    let addr = exporter.address().await;
    let response = reqwest::get(format!("http://{addr}/-/healthy"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(exporter.terminate(), 0);
    let logs = exporter.logs();
    assert!(
        logs.contains("msg=\"TLS is disabled, basic authentication is disabled\" tls=false client_auth=NoClientCert basic_auth=false"),
        "{logs}"
    );
}

#[tokio::test]
async fn the_binary_serves_https_with_basic_auth_logs_it_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    pki.write(dir.path());
    let hash = bcrypt::hash("s3cret-pass", 4).unwrap();
    let file = dir.path().join("web.yml");
    std::fs::write(
        &file,
        format!("{TLS}basic_auth_users:\n  prometheus: {hash}\n"),
    )
    .unwrap();
    let mut exporter = Running::start(&[
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.level",
        "debug",
        "--web.config.file",
        file.to_str().unwrap(),
    ]);
    let addr = exporter.address().await;
    let client = pki.client(None);
    let url = format!("https://{addr}/metrics");
    let response = status(&client, &url, Some(("prometheus", "wrong"))).await;
    assert_eq!(response.status(), 401);
    let m = first_refresh(&client, &url, Some(("prometheus", "s3cret-pass"))).await;
    assert_eq!(m.find("pipefy_organization_info", &[]).len(), 3);
    // A plain-HTTP attempt is logged at debug, and the server carries on.
    assert_eq!(
        reqwest::get(format!("http://{addr}/"))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(exporter.terminate(), 0, "graceful shutdown on SIGTERM");

    let logs = exporter.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("msg=\"TLS is enabled, basic authentication is enabled\""))
        .unwrap_or_else(|| panic!("no web config line in:\n{logs}"));
    assert!(line.contains("level=info"), "{line}");
    assert!(line.contains("tls=true"), "{line}");
    assert!(line.contains("basic_auth=true"), "{line}");
    assert!(line.contains("client_auth=NoClientCert"), "{line}");
    assert!(logs.contains("demo mode: open https://"), "{logs}");
    assert!(
        logs.contains("plain HTTP request on the TLS port"),
        "{logs}"
    );
    assert!(logs.contains("msg=\"shutting down\""), "{logs}");
    for secret in ["s3cret-pass", hash.as_str(), &hash[7..29]] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}
