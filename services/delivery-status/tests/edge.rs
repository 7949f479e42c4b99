//! The webhook server's edge limits, on a real socket: a request head not sent in time closes the
//! connection, a request (body included) not done in time is 408, past the in-flight limit
//! requests are shed with 503 and Retry-After, while the server keeps serving, and past the
//! connection limit a connection waits to be accepted until another closes.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use messaging_delivery_status::edge::{self, EdgeLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(limits: EdgeLimits) -> (String, tokio_util::sync::CancellationToken) {
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/hold",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "held"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "never"
            }),
        )
        .route("/echo", post(|body: String| async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let router = edge::bounded(router, &limits);
    tokio::spawn(edge::serve(listener, router, limits, shutdown.clone()));
    (format!("http://{address}"), shutdown)
}

#[tokio::test]
async fn slow_heads_slow_requests_and_floods_are_bounded() {
    let limits =
        EdgeLimits { header_timeout_ms: 300, request_timeout_ms: 1_500, max_in_flight: 2, max_connections: 64 };
    let (base, shutdown) = start(limits).await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{base}/ok")).send().await.expect("answered").status(), 200);

    // A head that never finishes: the server hangs up instead of holding the connection.
    let mut slow_head = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.expect("connect");
    slow_head.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), slow_head.read(&mut buffer)).await.expect("closed in time");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    if let Ok(n) = read {
        let answer = String::from_utf8_lossy(&buffer[..n]);
        assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }

    // A body that never arrives, and a handler that never answers: 408.
    let mut slow_body = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.expect("connect");
    slow_body.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc").await.expect("write");
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), slow_body.read(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert_eq!(client.get(format!("{base}/slow")).send().await.expect("answered").status(), 408);

    // Two held requests fill the server; a third is shed at once, and once they finish all is well.
    let held: Vec<_> = (0..2).map(|_| tokio::spawn(client.get(format!("{base}/hold")).send())).collect();
    // Asked until both held requests are in (each holds for 800 ms).
    let mut shed = client.get(format!("{base}/ok")).send().await.expect("answered");
    let deadline = Instant::now() + Duration::from_millis(600);
    while shed.status() != 503 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        shed = client.get(format!("{base}/ok")).send().await.expect("answered");
    }
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    for request in held {
        assert_eq!(request.await.expect("joined").expect("answered").status(), 200);
    }
    assert_eq!(client.get(format!("{base}/ok")).send().await.expect("answered").status(), 200);
    shutdown.cancel();
}

#[tokio::test]
async fn connections_past_the_limit_wait_until_one_closes() {
    let limits =
        EdgeLimits { header_timeout_ms: 10_000, request_timeout_ms: 10_000, max_in_flight: 8, max_connections: 2 };
    let (base, shutdown) = start(limits).await;
    let address = base.trim_start_matches("http://").to_owned();
    // Two idle connections take both places.
    let first = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let _second = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let waiting = tokio::spawn(reqwest::Client::new().get(format!("{base}/ok")).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection is not served while two are open");
    drop(first);
    let answered = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("served once one closed");
    assert_eq!(answered.expect("joined").expect("answered").status(), 200);
    shutdown.cancel();
}
