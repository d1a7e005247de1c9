//! Connection limits of the real binary (`--demo`, over raw sockets): idle half-sent
//! requests under a small open-file limit, `--web.max-connections`, bounded request
//! bodies and the shutdown deadline.
//!
//! Timeouts here are guards against hanging, never measurements: the tests assert what
//! happened (a scrape answered, a connection closed), not how fast.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{binary, poll, Running};

/// A request whose headers never end: what an idle or malicious client leaves open.
const HALF_REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\n";

/// Upper bound for anything the server should do "soon"; a guard, not a measurement.
const GUARD: Duration = Duration::from_secs(30);

/// The binary under `ulimit -n LIMIT`. Without `-H` or `-S`, the shell's `ulimit` sets
/// the soft and the hard limit, so the exporter's raise to the hard limit at start
/// leaves it at `limit`.
fn exporter_under_ulimit(limit: u32, args: &[&str]) -> Running {
    let mut shell = vec![
        "-c".to_owned(),
        format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
        binary().to_owned(),
    ];
    shell.extend(args.iter().map(|arg| (*arg).to_owned()));
    Running::tool("sh", &shell, "a POSIX shell")
}

/// A client that opens a new connection for every request, as a scraper may.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(GUARD)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Opens a connection and sends [`HALF_REQUEST`]; a write error is ignored, since a
/// server that refuses the connection may have closed it already.
async fn half_sent(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(HALF_REQUEST).await;
    stream
}

/// Reads until the server closes `stream` (end of file or reset) and returns what it
/// sent before; panics if it is still open after [`GUARD`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let read = async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("the server should have closed the connection")
}

/// Sends `request` on a kept-alive connection and reads one response with a
/// `Content-Length`, leaving the connection open.
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let read = async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed mid-response: {received:?}");
            received.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&received);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .expect("a Content-Length")
                    .parse()
                    .unwrap();
                if received.len() >= end + 4 + length {
                    return text.into_owned();
                }
            }
        }
    };
    tokio::time::timeout(GUARD, read).await.expect("a response")
}

fn count(logs: &str, needle: &str) -> usize {
    logs.lines().filter(|l| l.contains(needle)).count()
}

/// The reproduction: with 256 descriptors, 400 clients that send half a request
/// and wait. The header timeout closes them, the scrape waiting in the listen backlog
/// behind them is served, running out of descriptors is logged (rate-limited), and all
/// is well once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_half_sent_connections_do_not_stop_the_scrapes() {
    let header_timeout = Duration::from_secs(2);
    let exporter = exporter_under_ulimit(
        256,
        &[
            "--demo",
            "--web.listen-address=127.0.0.1:0",
            "--web.read-header-timeout=2s",
        ],
    );
    let addr = exporter.address().await;
    let url = format!("http://{addr}/metrics");
    let http = fresh_connections();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    let logs = exporter.logs();
    assert!(
        logs.contains("open file limit already at its maximum") && logs.contains("soft=256"),
        "{logs}"
    );

    let started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..400 {
        idle.push(half_sent(&addr).await);
    }
    let response = http.get(&url).send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("pipefy_up"));
    // For the record (the assertion is the success above): the scrape waited in the
    // listen backlog until the first idle connections timed out.
    eprintln!(
        "scrape answered {waited:?} after 400 idle connections began to open \
         (header timeout {header_timeout:?})"
    );

    // The server closed every idle connection, without waiting for the client.
    let mut readers = tokio::task::JoinSet::new();
    for mut stream in idle {
        readers.spawn(async move { read_until_closed(&mut stream).await });
    }
    let mut closed = 0;
    while let Some(received) = readers.join_next().await {
        let received = received.unwrap();
        // Nothing, or hyper's 408 before closing.
        assert!(
            received.is_empty() || received.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&received)
        );
        closed += 1;
    }
    assert_eq!(closed, 400);

    // Everything recovers once they are gone.
    for path in ["/metrics", "/-/healthy", "/"] {
        let response = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let logs = exporter.logs();
    let out_of_descriptors = count(&logs, "out of file descriptors");
    assert!(out_of_descriptors >= 1, "{logs}");
    // Rate-limited: one line per 10 s at most (plus one for the start of the window).
    let allowed = 2 + started.elapsed().as_secs() as usize / 10;
    assert!(
        out_of_descriptors <= allowed,
        "{out_of_descriptors} lines:\n{logs}"
    );
}

/// Past `--web.max-connections`, a new connection is closed at once, without an answer,
/// while a connection already open still gets its scrape; its slot is free again once
/// it closes.
#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    let exporter = Running::start(&[
        "--demo",
        "--web.listen-address=127.0.0.1:0",
        "--web.max-connections=3",
        // Far longer than the guards: what closes the extra connection is the cap.
        "--web.read-header-timeout=5m",
    ]);
    let addr = exporter.address().await;

    let mut kept = TcpStream::connect(&addr).await.unwrap();
    let answer = exchange(&mut kept, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _idle = [half_sent(&addr).await, half_sent(&addr).await];

    let mut extra = half_sent(&addr).await;
    let received = read_until_closed(&mut extra).await;
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );

    kept.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let scrape = String::from_utf8(read_until_closed(&mut kept).await).unwrap();
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    assert!(scrape.contains("pipefy_exporter_"), "{scrape}");

    let http = fresh_connections();
    let url = format!("http://{addr}/metrics");
    poll("a scrape on the freed slot", || async {
        let response = http.get(&url).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let logs = exporter.logs();
    assert!(
        logs.contains("too many open connections (--web.max-connections)"),
        "{logs}"
    );
}

/// A request that declares a body larger than the cap gets 413 without the body being
/// read, headers far over theirs get 431; the exporter serves on.
#[tokio::test]
async fn large_requests_are_refused() {
    let exporter = Running::start(&["--demo", "--web.listen-address=127.0.0.1:0"]);
    let addr = exporter.address().await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let mut request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 300 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    // The server answers and closes before reading it all: the write may fail.
    let _ = stream.write_all(&request).await;
    let answer = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let response = fresh_connections()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// SIGTERM with a client stuck in its headers: the exporter does not wait for the
/// (long) header timeout, only for the drain deadline (hyper's graceful shutdown leaves
/// a connection in the middle of its headers open), says so, and exits 0.
#[tokio::test]
async fn shutdown_does_not_wait_for_idle_clients() {
    let mut exporter = Running::start(&[
        "--demo",
        "--web.listen-address=127.0.0.1:0",
        "--web.read-header-timeout=5m",
    ]);
    let addr = exporter.address().await;
    let mut idle = half_sent(&addr).await;
    // The connection is accepted once a request on another one is answered after it.
    let response = fresh_connections()
        .get(format!("http://{addr}/-/healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (code, exporter) = tokio::time::timeout(
        GUARD,
        tokio::task::spawn_blocking(move || (exporter.terminate(), exporter)),
    )
    .await
    .expect("the exporter should exit within the drain deadline")
    .unwrap();
    assert_eq!(code, 0, "{}", exporter.logs());
    read_until_closed(&mut idle).await;
    poll("the drain deadline in the logs", || async {
        exporter
            .logs()
            .contains("connections still open at the shutdown deadline")
            .then_some(())
    })
    .await;
}
