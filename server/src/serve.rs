//! Accepting and serving connections (HTTP/1.1 and HTTP/2) under limits a hostile client cannot
//! stretch: a cap on open connections, a deadline for a request's head, a deadline for a whole
//! request, and an idle deadline for connections with nothing in flight.
//!
//! `axum::serve` has none of these: a client that sends half a request line, or a
//! `Content-Length` it never honours, holds a socket (and a file descriptor) forever.
//!
//! How the deadlines are kept:
//! - Each connection's socket is wrapped ([`Tracked`]) to notice bytes arriving while no request
//!   is in flight (a request head under way), and its service to count requests in flight.
//! - A watchdog per connection closes it when, with nothing in flight, a head has been under way
//!   longer than `header_timeout` (or a new connection has sent nothing for that long), or the
//!   connection has been idle longer than `idle_timeout`. One mechanism for both protocols and for
//!   hyper's protocol detection, which itself waits for the first bytes without a deadline.
//! - The whole request, body included, runs under `request_timeout` ([`request_deadline`]): past
//!   it the caller gets the contract's 408 and the connection is closed.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// A request head (a few hundred bytes) takes milliseconds; ten seconds covers slow mobile
/// links and still frees a slow-loris socket quickly.
pub const DEFAULT_HEADER_TIMEOUT: &str = "10s";
/// A whole request, 100 kB body and database included (the statement timeout is 30 s too).
pub const DEFAULT_REQUEST_TIMEOUT: &str = "30s";
/// Longer than the 60 s idle timeout of common load balancers, so they close first and never
/// send on a connection the server is closing.
pub const DEFAULT_IDLE_TIMEOUT: &str = "75s";
/// Open connections at once; far below the usual file-descriptor limits.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The limits every connection is served under; settings of the server (`config.rs` flattens
/// them into its own).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ConnectionLimits {
    /// Most time a request head may take, from its first byte or the connection's start; then
    /// the connection is closed.
    #[arg(long, env = "WEBHOOKS_HEADER_TIMEOUT", global = true, default_value = DEFAULT_HEADER_TIMEOUT, value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Most time a whole request may take, body and handler included; then 408.
    #[arg(long, env = "WEBHOOKS_REQUEST_TIMEOUT", global = true, default_value = DEFAULT_REQUEST_TIMEOUT, value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Connections with nothing in flight are closed after this long.
    #[arg(long, env = "WEBHOOKS_IDLE_TIMEOUT", global = true, default_value = DEFAULT_IDLE_TIMEOUT, value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Most client connections open at once; more wait in the listen backlog.
    #[arg(long, env = "WEBHOOKS_MAX_CONNECTIONS", global = true, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
}

/// What a connection is doing, shared by its socket, its service and its watchdog. Times are
/// milliseconds since `origin`.
struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    /// Requests started on this connection so far.
    started: AtomicU64,
    /// When the connection last became idle (its start, or the end of its last request).
    idle_since: AtomicU64,
    /// When bytes first arrived while idle (a request head under way); `NONE` if none have.
    head_since: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Relaxed) == NONE {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When the connection must be closed if nothing changes meanwhile; `None` while a request
    /// is in flight (the request's own deadline covers it).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let after = |since: u64, limit: Duration| self.origin + Duration::from_millis(since) + limit;
        Some(match self.head_since.load(Ordering::Relaxed) {
            NONE if self.started.load(Ordering::Relaxed) > 0 => {
                after(self.idle_since.load(Ordering::Relaxed), limits.idle_timeout)
            }
            // A new connection is expected to send its first request promptly.
            NONE => after(0, limits.header_timeout),
            since => after(since, limits.header_timeout),
        })
    }
}

/// A request in flight on a connection; its end makes the connection idle again.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now(), Ordering::Relaxed);
        self.0.head_since.store(NONE, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that reports arriving bytes to its connection's [`Activity`].
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Resolves when the connection has outlived its head or idle deadline.
async fn watchdog(activity: Arc<Activity>, limits: ConnectionLimits) {
    loop {
        match activity.deadline(&limits) {
            // In flight: look again once the request's own deadline could have passed.
            None => tokio::time::sleep(limits.request_timeout).await,
            Some(deadline) if deadline <= Instant::now() => return,
            // A request may come and go meanwhile: the deadline is computed afresh.
            Some(deadline) => tokio::time::sleep_until(deadline).await,
        }
    }
}

/// The whole request (body included) under `timeout`; past it, the contract's 408, and the
/// connection is not kept (the rest of the body may never come).
pub async fn request_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = crate::error::request_timeout();
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves; then stops accepting,
/// lets the requests in flight finish (at most `request_timeout`), and returns.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked { stream, activity: activity.clone() });
        let service = {
            let activity = activity.clone();
            let app = app.clone();
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let in_flight = activity.request_started();
                let app = app.clone();
                async move {
                    let response = app.oneshot(request.map(Body::new)).await;
                    drop(in_flight);
                    response
                }
            })
        };
        let connection = graceful.watch(builder.serve_connection_with_upgrades(io, service).into_owned());
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                result = connection => if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                // Dropping the connection closes the socket: nothing is in flight.
                () = watchdog(activity, limits) => tracing::debug!("closed a stalled or idle connection"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after the request timeout; closing their connections");
    }
    Ok(())
}

/// Accept errors are per connection (the peer left) or a resource running out (file
/// descriptors): the latter must not spin the loop.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
