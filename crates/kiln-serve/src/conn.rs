//! The accept loop under [`crate::serve`]: hyper's HTTP/1 connections with what `axum::serve` lacks against hostile
//! or broken clients. A connection must send a whole request head within a deadline (hyper's header read timeout,
//! which in hyper 1.12 also runs while a keep-alive connection waits for its next request); one on which no byte
//! moves either way for a while, with no request being handled, is closed; and at most `max_connections` are open
//! at once: one more is accepted, answered a short 503 `too_many_connections` with `Connection: close`, and closed,
//! so that neither the open-file limit nor a client is left hanging. Requests in flight finish on shutdown.
//!
//! It does not touch the routes: every connection serves the same [`Router`], with the peer address as
//! `ConnectInfo<SocketAddr>` (the rate limit keys on it). The caller sizes `max_connections` below the open-file
//! limit ([`raise_open_file_limit`] gives it room), keeping descriptors for the store and hot reload.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::AppState;

/// How long connections may wait and how many may be open, built by the caller from flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// a connection must have sent a whole request head this long after it opened, or after the previous answer
    pub header_timeout: Duration,
    /// a connection on which no byte has moved either way for this long, while no request is being handled, is
    /// closed (a stalled body upload is the request timeout's business, a stalled reader of an answer is this one's)
    pub idle_timeout: Duration,
    /// the most connections open at once; one more gets a 503 `too_many_connections` and is closed
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// 10 s: far more than any real client needs to send a request head, short enough that idle sockets held open
    /// on purpose (slow loris) do not pile up
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// 60 s without a byte either way
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// well below common open-file limits; behind a proxy a service needs tens
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
    /// the connections over the cap being answered 503 at once; more are closed without an answer. Each holds a
    /// file descriptor for at most [`REJECT_LINGER`], so the caller keeps this many in reserve too.
    pub const MAX_REJECTING: usize = 64;
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Raises this process's soft open-file limit to its hard limit when it is lower (connections are file
/// descriptors), and returns the soft limit in force after: `None` when unlimited. A failure to raise it leaves
/// the old limit, which is returned.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && maximum > current
        && setrlimit(Resource::Nofile, Rlimit { current: Some(maximum), maximum: Some(maximum) }).is_ok()
    {
        return Some(maximum);
    }
    limit.current
}

/// The code of the answer to a connection over the cap (a row of `kiln_domain::Code`, written on the socket before
/// any HTTP parsing).
pub const TOO_MANY_CONNECTIONS: &str = kiln_domain::Code::TooManyConnections.as_str();

/// How long a rejected connection is kept to let the client read the 503 before the socket closes.
const REJECT_LINGER: Duration = Duration::from_secs(1);

/// The 503 written to a connection over the cap.
fn rejection(max: usize) -> Vec<u8> {
    let body = serde_json::json!({"error": {
        "code": TOO_MANY_CONNECTIONS,
        "message": format!("the server has {max} connections open, its limit; retry later"),
        "field": null,
    }})
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accepts connections on `listener` and serves `app` on each until `shutdown` completes; then stops accepting,
/// closes idle connections and waits for the requests in flight to finish (and for a connection still sending its
/// head, at most the header timeout).
///
/// # Errors
/// Never so far: a failed accept (a connection reset before it was accepted, the open-file limit) is logged and
/// the loop goes on, as `axum::serve` does.
pub(crate) async fn serve(
    listener: TcpListener,
    state: AppState,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let rejecting = Arc::new(Semaphore::new(ConnectionLimits::MAX_REJECTING));
    let reject = Arc::<[u8]>::from(rejection(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut rejections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !is_connection_error(&e) {
                        eprintln!("kiln serve: cannot accept a connection: {e}");
                        // out of file descriptors, most likely: give the connections time to close
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            // reap finished tasks, so that the sets do not grow with every connection ever served
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            Some(_) = rejections.join_next(), if !rejections.is_empty() => continue,
        };
        let metrics = state.metrics();
        match Arc::clone(&open).try_acquire_owned() {
            Ok(permit) => {
                let (state, app, stop) = (state.clone(), app.clone(), stop_rx.clone());
                metrics.connections_open.fetch_add(1, Ordering::Relaxed);
                connections.spawn(async move {
                    let closed = serve_connection(stream, peer, app, limits, stop).await;
                    let metrics = state.metrics();
                    metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
                    let timed_out = match closed {
                        Closed::HeaderTimeout => Some(&metrics.header_timeouts),
                        Closed::IdleTimeout => Some(&metrics.idle_timeouts),
                        Closed::Done => None,
                    };
                    if let Some(counter) = timed_out {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit);
                });
            }
            Err(_) => match Arc::clone(&rejecting).try_acquire_owned() {
                Ok(permit) => {
                    metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                    metrics.rejected_connection();
                    let reject = Arc::clone(&reject);
                    rejections.spawn(async move {
                        refuse(stream, &reject).await;
                        drop(permit);
                    });
                }
                // a flood: closing at once is the only answer that costs nothing
                Err(_) => {
                    metrics.connections_dropped.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                }
            },
        }
    }
    drop(listener);
    // tell every connection to finish its request in flight and close; idle ones close now
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    rejections.abort_all();
    Ok(())
}

/// Errors of one connection that has not been accepted yet, which say nothing about the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// Writes the 503 to a connection over the cap, stops writing, and reads what the client sends until it closes
/// or [`REJECT_LINGER`] ends: closing with unread bytes would send a reset that can destroy the 503 on its way.
async fn refuse(mut stream: TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(REJECT_LINGER, async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0_u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Why a connection ended, for the metrics.
enum Closed {
    /// the client closed it, it failed, or shutdown closed it
    Done,
    HeaderTimeout,
    IdleTimeout,
}

/// Serves one connection until the client closes it, a timeout closes it, or shutdown is asked and the request in
/// flight (if any) has been answered.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> Closed {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { inner: stream, activity: Arc::clone(&activity) });
    let service_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let handling = Handling::start(Arc::clone(&service_activity));
        let answer = app.clone().oneshot(request);
        async move {
            let response = answer.await;
            drop(handling);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        // while a request is handled the connection is not idle: look again a whole timeout later
        let wait = if activity.handling() > 0 {
            limits.idle_timeout
        } else {
            limits.idle_timeout.saturating_sub(activity.idle_for())
        };
        tokio::select! {
            // an error is the client's doing (a reset, a head too slow or malformed): hyper has answered what it
            // could, and the connection is over either way
            done = connection.as_mut() => {
                return match done {
                    Err(e) if e.is_timeout() => Closed::HeaderTimeout,
                    _ => Closed::Done,
                };
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_err() || *stop.borrow() {
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(wait) => {
                if activity.handling() == 0 && activity.idle_for() >= limits.idle_timeout {
                    // dropping the connection closes the socket
                    return Closed::IdleTimeout;
                }
            }
        }
    }
}

/// When a byte last moved on a connection, and how many of its requests are being handled.
struct Activity {
    since: Instant,
    /// milliseconds from `since` to the last read or write of at least a byte
    last_ms: AtomicU64,
    handling: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity { since: Instant::now(), last_ms: AtomicU64::new(0), handling: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.since.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    fn handling(&self) -> usize {
        self.handling.load(Ordering::Relaxed)
    }
}

/// A request being handled on a connection, from its head to its answer; the connection is not idle meanwhile.
struct Handling(Arc<Activity>);

impl Handling {
    fn start(activity: Arc<Activity>) -> Handling {
        activity.handling.fetch_add(1, Ordering::Relaxed);
        Handling(activity)
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A socket that records when a byte last moved on it.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
