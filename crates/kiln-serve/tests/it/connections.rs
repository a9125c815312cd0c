//! The accept loop over real sockets (`kiln_serve::serve` on a port of its own): a connection over the cap gets a
//! 503 `too_many_connections` and is closed, one that sends no request head is closed at the header timeout, an idle
//! kept-alive one at the idle timeout, and a shutdown lets the request in flight finish and refuses new connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kiln_serve::{ConnectionLimits, ServeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::helpers::{eurusd, state_for};

struct Served {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn serve(limits: ConnectionLimits) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = state_for(eurusd(), "eurusd", ServeConfig::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(kiln_serve::serve(listener, state, limits, async move {
        let _ = stopped.await;
    }));
    Served { addr, stop, task }
}

/// What the server sends until it closes the connection (a reset ends it too); panics when it stays open `within`.
async fn until_closed(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "still open after {within:?}; read {:?}", String::from_utf8_lossy(&out));
    out
}

/// One answer on a kept-alive connection: its head and a body of `content-length` bytes.
async fn answer(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the answer: {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            if body.len() >= length {
                return text;
            }
        }
    }
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: kiln\r\n\r\n";

#[tokio::test]
async fn a_connection_over_the_cap_gets_a_503_and_silent_ones_close_at_the_header_timeout() {
    let limits = ConnectionLimits {
        header_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(30),
        max_connections: 2,
    };
    let served = serve(limits).await;
    let opened = Instant::now();
    let mut held = [TcpStream::connect(served.addr).await.unwrap(), TcpStream::connect(served.addr).await.unwrap()];
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut extra = TcpStream::connect(served.addr).await.unwrap();
    extra.write_all(HEALTH).await.unwrap();
    let refused = String::from_utf8(until_closed(&mut extra, Duration::from_secs(3)).await).unwrap();
    let (head, body) = refused.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 503 "), "{refused}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{refused}");
    let error: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["error"]["code"], kiln_serve::TOO_MANY_CONNECTIONS);

    for s in &mut held {
        assert_eq!(until_closed(s, Duration::from_secs(3)).await, b"", "a silent connection is closed unanswered");
    }
    let waited = opened.elapsed();
    assert!(waited >= Duration::from_millis(450) && waited < Duration::from_secs(3), "{waited:?}");

    // room again; /metrics counts what happened (its own connection is the one open)
    let mut next = TcpStream::connect(served.addr).await.unwrap();
    next.write_all(HEALTH).await.unwrap();
    assert!(answer(&mut next).await.starts_with("HTTP/1.1 200 "));
    next.write_all(b"GET /metrics HTTP/1.1\r\nHost: kiln\r\n\r\n").await.unwrap();
    let metrics = answer(&mut next).await;
    for line in [
        "kiln_http_connections_open 1",
        "kiln_http_connections_refused_total{answered=\"true\"} 1",
        "kiln_http_connections_refused_total{answered=\"false\"} 0",
        "kiln_http_connections_timed_out_total{timeout=\"header\"} 2",
        "kiln_http_connections_timed_out_total{timeout=\"idle\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line} in\n{metrics}");
    }
    served.stop.send(()).unwrap();
    served.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_kept_alive_connection_serves_requests_and_closes_once_idle() {
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_millis(300),
        max_connections: 8,
    };
    let served = serve(limits).await;
    let mut s = TcpStream::connect(served.addr).await.unwrap();
    for _ in 0..3 {
        s.write_all(HEALTH).await.unwrap();
        assert!(answer(&mut s).await.starts_with("HTTP/1.1 200 "));
        // a pause shorter than the idle timeout keeps it open
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle = Instant::now();
    assert_eq!(until_closed(&mut s, Duration::from_secs(3)).await, b"");
    assert!(idle.elapsed() >= Duration::from_millis(150), "{:?}", idle.elapsed());
    let mut next = TcpStream::connect(served.addr).await.unwrap();
    next.write_all(b"GET /metrics HTTP/1.1\r\nHost: kiln\r\n\r\n").await.unwrap();
    let metrics = answer(&mut next).await;
    assert!(metrics.lines().any(|l| l == "kiln_http_connections_timed_out_total{timeout=\"idle\"} 1"), "{metrics}");
    served.stop.send(()).unwrap();
    served.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_and_accepts_no_more() {
    let served = serve(ConnectionLimits::default()).await;
    let mut s = TcpStream::connect(served.addr).await.unwrap();
    let body = br#"{"series": "nobody"}"#;
    let head = format!(
        "POST /predict HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    served.stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(served.addr).await.is_err(), "a connection accepted after the shutdown");
    assert!(!served.task.is_finished(), "stopped with a request in flight");
    s.write_all(&body[5..]).await.unwrap();
    let answered = String::from_utf8(until_closed(&mut s, Duration::from_secs(5)).await).unwrap();
    assert!(answered.starts_with("HTTP/1.1 404 "), "{answered}");
    assert!(answered.contains("series_not_found"), "{answered}");
    served.task.await.unwrap().unwrap();
}
