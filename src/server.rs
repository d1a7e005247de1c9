//! Serving the router: one accept loop for plain HTTP and HTTPS, with the same limits
//! on both (hyper's HTTP/1.1 connection builder, behind a rustls handshake for HTTPS):
//!
//! - a header-read timeout, which also closes kept-alive connections left idle (hyper
//!   starts the timer again when a connection waits for its next request);
//! - a cap on open connections: past it a new connection is closed at once, so that
//!   idle clients cannot starve the scrapes of the connections already open;
//! - bounded requests: headers by hyper's read buffer, bodies by [`MAX_BODY`];
//! - on `accept` errors (out of file descriptors, mostly) a short backoff and a
//!   rate-limited log line rather than a busy loop or silence;
//! - graceful drain on shutdown, abandoned after [`DRAIN_DEADLINE`].
//!
//! The basic-auth and extra-headers middleware of `--web.config.file` is
//! `web::protect`. [`raise_open_file_limit`] is called once at start.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::web::WebConfig;

/// Default of `--web.read-header-timeout`, as in the exporters that have the flag.
pub(crate) const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Default of `--web.max-connections`, as in Prometheus.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long a client may take from connecting to finishing the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long in-flight requests may take to finish once shutdown starts; then their
/// connections are dropped. Well inside systemd's `TimeoutStopSec=20s` of the unit.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// hyper's read buffer, which holds the request line and headers: past it the client
/// gets 431. hyper checks after each read, so a request that arrives whole in one read
/// may overshoot it by that read. 64 KiB is far above any real scrape (basic auth
/// included) and well below hyper's ~400 KiB default. hyper's minimum is 8 KiB.
const MAX_HEADER_BUFFER: usize = 64 * 1024;

/// The largest request body accepted. Every endpoint is a GET or a bodyless POST, so a
/// body this size is already a mistake.
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// At most one log line per this interval for each kind of repeated trouble (refused
/// connections, failing `accept`), with the count of what was not logged.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Backoff after a failed `accept`, doubling up to the maximum as Go's `net/http` does
/// (5 ms to 1 s there): short, because descriptors usually come back within moments
/// as idle connections time out, and the scrapes wait in the listen backlog meanwhile.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// What Go's `net/http` answers to plain HTTP on a TLS port; the toolkit's exporters do
/// the same.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The limits every connection is served with, plain or TLS.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    /// `--web.read-header-timeout`: from the connection's opening (or the end of the
    /// previous response) to the end of the request's headers.
    pub(crate) read_header_timeout: Duration,
    /// `--web.max-connections`: connections open at once, TLS handshakes included.
    pub(crate) max_connections: usize,
}

/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn` (4096 by
/// default on Linux), which is what Go's `net.Listen` uses. tokio's `bind` asks for
/// 128 only: while idle clients hold every descriptor, the scrapes must wait in the
/// backlog for one to free up, and past 128 their connection attempts are dropped and
/// retried a second or more later.
const LISTEN_BACKLOG: u32 = u16::MAX as u32;

/// Binds `address` (`host:port`, resolved) with a deep listen backlog: the first
/// resolved address that binds.
pub(crate) async fn bind(address: &str) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(address).await? {
        match bind_one(addr) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    }))
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    // As tokio's `bind`: restart at once on a port with connections in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Where the server is in its life; each connection task watches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    /// Shutdown started: no new connections, handshakes abandoned, requests finish.
    Draining,
    /// The drain deadline passed: every connection still open is dropped.
    Abandoned,
}

/// Serves `router` on `listeners` (one per `--web.listen-address`) until `shutdown`
/// resolves, then lets in-flight requests finish for up to [`DRAIN_DEADLINE`]. HTTPS
/// only when `web` has TLS. The connection cap is shared: it bounds the process's
/// descriptors, whichever address the clients came in by.
pub(crate) async fn run(
    listeners: Vec<TcpListener>,
    router: Router,
    web: watch::Receiver<Arc<WebConfig>>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = Shared {
        http: http1_builder(&limits),
        service: TowerToHyperService::new(router.layer(axum::middleware::from_fn(limit_body))),
        web,
        limits,
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let (phase, phase_rx) = watch::channel(Phase::Serving);
    let mut accept_errors = AcceptErrors::new();
    let mut refused = RateLimit::new(LOG_INTERVAL);
    let mut next_listener = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = accept_any(&listeners, &mut next_listener) => match accepted {
                Ok(connection) => {
                    accept_errors.succeeded();
                    connection
                }
                Err(error) => {
                    accept_errors.failed(error).await;
                    continue;
                }
            },
        };
        // Refusing at once keeps the connections already open (a scrape among them)
        // served, where waiting for a slot would let idle clients starve everyone.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            refused.log(Instant::now(), |not_logged| {
                tracing::warn!(
                    %peer,
                    limit = limits.max_connections,
                    not_logged,
                    "too many open connections (--web.max-connections): closing new ones"
                );
            });
            continue;
        };
        let connection = Connection {
            shared: shared.clone(),
            peer,
            watcher: graceful.watcher(),
            phase: phase_rx.clone(),
            _slot: slot,
        };
        tokio::spawn(connection.run(stream));
    }
    drop(listeners);
    drain(graceful, &phase).await;
    Ok(())
}

/// The next connection on any of `listeners`. The search starts after the listener
/// that gave the previous one (`next`), so that a busy address cannot starve another.
async fn accept_any(
    listeners: &[TcpListener],
    next: &mut usize,
) -> io::Result<(TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| {
        let count = listeners.len();
        for offset in 0..count {
            let index = (*next + offset) % count;
            // Each listener that is not ready registers the waker: any of them wakes us.
            if let std::task::Poll::Ready(accepted) = listeners[index].poll_accept(cx) {
                *next = (index + 1) % count;
                return std::task::Poll::Ready(accepted);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Stops accepting, abandons handshakes, lets requests in flight finish until the
/// deadline, then drops what is left.
async fn drain(graceful: GracefulShutdown, phase: &watch::Sender<Phase>) {
    let _ = phase.send(Phase::Draining);
    let open = graceful.count();
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open,
            deadline_seconds = DRAIN_DEADLINE.as_secs(),
            "connections still open at the shutdown deadline: closing them"
        );
        let _ = phase.send(Phase::Abandoned);
    }
}

/// The HTTP/1.1 settings of every connection.
fn http1_builder(limits: &ConnectionLimits) -> http1::Builder {
    let mut http = http1::Builder::new();
    // Without a timer, hyper enforces no header-read timeout at all.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_header_timeout)
        .max_buf_size(MAX_HEADER_BUFFER);
    http
}

/// Answers 413 to a request that declares a body over [`MAX_BODY`], and caps the body
/// of the others, whatever their framing (chunked bodies declare no length).
async fn limit_body(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        // `Connection: close`: hyper need not read (or skip) the body it would
        // otherwise expect before the next request.
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            "request body too large\n",
        )
            .into_response();
    }
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, MAX_BODY)));
    next.run(request).await
}

/// What every connection task shares.
#[derive(Clone)]
struct Shared {
    http: http1::Builder,
    service: TowerToHyperService<Router>,
    /// Read at each connection, so that a reload's new certificate is used from the
    /// next handshake on. Whether TLS is on does not change (a reload refuses that).
    web: watch::Receiver<Arc<WebConfig>>,
    limits: ConnectionLimits,
}

/// One accepted connection, holding its slot under `--web.max-connections` until it
/// ends.
struct Connection {
    shared: Shared,
    peer: SocketAddr,
    watcher: Watcher,
    phase: watch::Receiver<Phase>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let tls = self.shared.web.borrow().tls.clone();
        match tls {
            None => self.serve(stream).await,
            Some(config) => {
                let acceptor = TlsAcceptor::from(config);
                if let Some(stream) = self.handshake(&acceptor, stream).await {
                    self.serve(stream).await;
                }
            }
        }
    }

    /// The TLS handshake within [`HANDSHAKE_TIMEOUT`], given up at shutdown; `None`
    /// when it failed or the client spoke plain HTTP.
    async fn handshake(
        &mut self,
        acceptor: &TlsAcceptor,
        stream: TcpStream,
    ) -> Option<TlsStream<TcpStream>> {
        let peer = self.peer;
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(acceptor, stream, peer));
        tokio::select! {
            result = handshake => match result {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    None
                }
            },
            _ = self.phase.wait_for(|phase| *phase >= Phase::Draining) => None,
        }
    }

    /// HTTP/1.1 on `stream` until the client or the limits close it, or shutdown.
    async fn serve<S>(mut self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let connection = self
            .shared
            .http
            .serve_connection(TokioIo::new(stream), self.shared.service.clone());
        tokio::select! {
            result = self.watcher.watch(connection) => {
                if let Err(error) = result {
                    // Header timeouts land here: the client's business, not the
                    // operator's, unless debugging.
                    tracing::debug!(
                        %peer,
                        %error,
                        read_header_timeout_seconds = self.shared.limits.read_header_timeout.as_secs_f64(),
                        "connection ended with an error"
                    );
                }
            }
            _ = self.phase.wait_for(|phase| *phase == Phase::Abandoned) => {}
        }
    }
}

/// The TLS handshake; `Ok(None)` when the client spoke plain HTTP and got Go's 400.
async fn handshake(
    acceptor: &TlsAcceptor,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed before the TLS handshake",
        ));
    }
    // A TLS connection opens with a handshake record (0x16); an HTTP request with an
    // upper-case method name.
    if first[0].is_ascii_uppercase() {
        tracing::debug!(%peer, "plain HTTP request on the TLS port: answering 400");
        stream.write_all(PLAIN_HTTP_ANSWER).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes, so that closing with unread data
        // does not reset the connection before the answer is read.
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        return Ok(None);
    }
    acceptor.accept(stream).await.map(Some)
}

/// What the accept loop does when `accept` fails: back off, and say so now and then.
struct AcceptErrors {
    backoff: Duration,
    log: RateLimit,
}

impl AcceptErrors {
    fn new() -> Self {
        AcceptErrors {
            backoff: ACCEPT_BACKOFF_MIN,
            log: RateLimit::new(LOG_INTERVAL),
        }
    }

    fn succeeded(&mut self) {
        self.backoff = ACCEPT_BACKOFF_MIN;
    }

    /// Per-connection errors (the client gave up before we accepted) are ignored, as
    /// `axum::serve` does; anything else is logged (rate-limited) and followed by a
    /// pause, so that running out of descriptors neither spins nor goes unnoticed.
    async fn failed(&mut self, error: io::Error) {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        self.log.log(Instant::now(), |not_logged| {
            if is_out_of_descriptors(&error) {
                tracing::error!(
                    %error,
                    open_file_limit = limit_field(open_file_limit().current),
                    not_logged,
                    "cannot accept connections: out of file descriptors; new \
                     connections wait in the listen backlog until some close"
                );
            } else {
                tracing::error!(%error, not_logged, "cannot accept a connection");
            }
        });
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
    }
}

/// EMFILE (this process's limit) or ENFILE (the system's).
fn is_out_of_descriptors(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        matches!(
            Errno::from_io_error(error),
            Some(Errno::MFILE | Errno::NFILE)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// At most one event per `interval` goes through; the others are counted, and the
/// count is handed to the next one that goes through.
#[derive(Debug)]
pub(crate) struct RateLimit {
    interval: Duration,
    last: Option<Instant>,
    not_logged: u64,
}

impl RateLimit {
    pub(crate) fn new(interval: Duration) -> Self {
        RateLimit {
            interval,
            last: None,
            not_logged: 0,
        }
    }

    /// Calls `emit` with the number of events held back since the last call that went
    /// through, if `interval` has passed since then.
    pub(crate) fn log(&mut self, now: Instant, emit: impl FnOnce(u64)) {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.interval)
        {
            self.not_logged += 1;
            return;
        }
        self.last = Some(now);
        emit(std::mem::take(&mut self.not_logged));
    }
}

/// The soft and hard `RLIMIT_NOFILE`; `None` is unlimited (or unknown off Unix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenFileLimit {
    pub(crate) current: Option<u64>,
    pub(crate) maximum: Option<u64>,
}

#[cfg(unix)]
fn open_file_limit() -> OpenFileLimit {
    use rustix::process::{getrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    OpenFileLimit {
        current: limit.current,
        maximum: limit.maximum,
    }
}

#[cfg(not(unix))]
fn open_file_limit() -> OpenFileLimit {
    OpenFileLimit {
        current: None,
        maximum: None,
    }
}

/// A limit as a log field: the number itself, so that JSON logs carry a number, or
/// "unlimited".
fn limit_field(limit: Option<u64>) -> Box<dyn tracing::Value> {
    match limit {
        Some(n) => Box::new(n),
        None => Box::new("unlimited"),
    }
}

/// Raises the soft open-file limit to the hard limit, as Go programs (node_exporter
/// among them) do at start: systemd's default soft limit of 1,024 is soon reached by
/// idle clients, while the hard limit is usually far higher. Logs before and after.
/// Returns the soft limit now in force.
pub(crate) fn raise_open_file_limit() -> Option<u64> {
    let before = open_file_limit();
    if before.current == before.maximum {
        tracing::info!(
            soft = limit_field(before.current),
            hard = limit_field(before.maximum),
            "open file limit already at its maximum"
        );
        return before.current;
    }
    let raised = OpenFileLimit {
        current: before.maximum,
        maximum: before.maximum,
    };
    match set_open_file_limit(raised) {
        Ok(()) => {
            let after = open_file_limit();
            tracing::info!(
                before = limit_field(before.current),
                after = limit_field(after.current),
                hard = limit_field(after.maximum),
                "raised the open file limit to the hard limit"
            );
            after.current
        }
        Err(error) => {
            tracing::warn!(
                %error,
                soft = limit_field(before.current),
                hard = limit_field(before.maximum),
                "cannot raise the open file limit; raise it with `ulimit -n` or \
                 systemd's LimitNOFILE="
            );
            before.current
        }
    }
}

#[cfg(unix)]
fn set_open_file_limit(limit: OpenFileLimit) -> io::Result<()> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let limit = Rlimit {
        current: limit.current,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, limit).map_err(io::Error::from)
}

#[cfg(not(unix))]
fn set_open_file_limit(_limit: OpenFileLimit) -> io::Result<()> {
    Ok(())
}

/// Descriptors the process needs besides its HTTP connections: the runtime, the
/// listener, the connections to Pipefy, logs. A generous guess.
const OTHER_DESCRIPTORS: u64 = 64;

/// A warning when the open-file limit leaves fewer descriptors for connections than
/// `--web.max-connections` allows: then `accept` fails before the cap refuses.
pub(crate) fn capacity_warning(max_connections: usize, soft_limit: Option<u64>) -> Option<String> {
    let soft = soft_limit?;
    let room = soft.saturating_sub(OTHER_DESCRIPTORS);
    (max_connections as u64 > room).then(|| {
        format!(
            "--web.max-connections={max_connections} is above the {room} connections \
             that the open file limit of {soft} leaves room for: past those, new \
             connections wait in the listen backlog instead of being refused"
        )
    })
}

/// `https://` or `http://`, for messages that print the exporter's URL.
pub(crate) fn scheme(web: &WebConfig) -> &'static str {
    if web.tls_enabled() {
        "https"
    } else {
        "http"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_one_through_per_interval_and_counts_the_rest() {
        let mut limit = RateLimit::new(Duration::from_secs(10));
        let start = Instant::now();
        let mut emitted = Vec::new();
        for offset in [0, 1, 2, 9, 10, 11, 25] {
            limit.log(start + Duration::from_secs(offset), |n| {
                emitted.push((offset, n))
            });
        }
        assert_eq!(emitted, [(0, 0), (10, 3), (25, 1)]);
    }

    #[test]
    fn out_of_descriptors_is_recognised() {
        #[cfg(unix)]
        {
            use rustix::io::Errno;
            for errno in [Errno::MFILE, Errno::NFILE] {
                assert!(is_out_of_descriptors(&io::Error::from(errno)));
            }
            assert!(!is_out_of_descriptors(&io::Error::from(Errno::INVAL)));
        }
        assert!(!is_out_of_descriptors(&io::Error::other("no")));
    }

    #[test]
    fn a_cap_above_the_open_file_limit_is_warned_about() {
        assert_eq!(capacity_warning(512, None), None);
        assert_eq!(capacity_warning(512, Some(1_048_576)), None);
        let warning = capacity_warning(512, Some(256)).unwrap();
        assert!(warning.contains("--web.max-connections=512"), "{warning}");
        assert!(warning.contains("192 connections"), "{warning}");
        assert!(capacity_warning(100, Some(10)).is_some());
    }

    #[test]
    fn raising_the_open_file_limit_ends_at_the_hard_limit() {
        let soft = raise_open_file_limit();
        assert_eq!(soft, open_file_limit().maximum);
    }
}
