//! Serving the router: plain HTTP through `axum::serve`, or HTTPS through our own accept
//! loop (rustls handshake, then hyper's HTTP/1.1), both with graceful shutdown. The
//! basic-auth and extra-headers middleware of `--web.config.file` is
//! `web::protect`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::web::WebConfig;

/// How long a client may take from connecting to finishing the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What Go's `net/http` answers to plain HTTP on a TLS port; the toolkit's exporters do
/// the same.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish. With `tls`, HTTPS only.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    match tls {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => serve_tls(listener, router, tls, shutdown).await,
    }
}

async fn serve_tls(
    listener: TcpListener,
    router: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    // Tells connections still in their handshake to give up at shutdown.
    let (stopping, stop) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    // A timer turns on hyper's 30 s limit for reading request headers.
    http.timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    accept_error(error).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        let http = http.clone();
        let watcher = graceful.watcher();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, stream, peer));
            let stream = tokio::select! {
                result = handshake => match result {
                    Ok(Ok(Some(stream))) => stream,
                    Ok(Ok(None)) => return,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                _ = stop.wait_for(|stopping| *stopping) => return,
            };
            let connection = http.serve_connection(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "HTTPS connection ended with an error");
            }
        });
    }
    // Stop accepting, abandon handshakes, finish in-flight requests.
    drop(listener);
    let _ = stopping.send(true);
    graceful.shutdown().await;
    Ok(())
}

/// The TLS handshake; `Ok(None)` when the client spoke plain HTTP and got Go's 400.
async fn handshake(
    acceptor: &TlsAcceptor,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> io::Result<Option<TlsStream<TcpStream>>> {
    let _ = stream.set_nodelay(true);
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

/// As `axum::serve` does: per-connection errors are the client's business; anything
/// else (such as running out of file descriptors) gets a pause before trying again.
async fn accept_error(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// `https://` or `http://`, for messages that print the exporter's URL.
pub(crate) fn scheme(web: &WebConfig) -> &'static str {
    if web.tls_enabled() {
        "https"
    } else {
        "http"
    }
}
