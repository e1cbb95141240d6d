//! Connection hygiene under hostile clients: a half-sent head, a silent socket, a body that
//! never comes, an idle keep-alive, more connections than allowed — on HTTP/1.1 and HTTP/2.
//! Each server here runs with short deadlines; the checks wait several times longer than a
//! deadline, so they prove that a deadline exists, not how fast it fires.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::channel::Channel;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webhooks_e2e::TestServer;

const SHORT: Duration = Duration::from_millis(400);
/// Far longer than any deadline of these servers: a connection still open after it never closes.
const PATIENCE: Duration = Duration::from_secs(10);

async fn server_with(configure: impl FnOnce(&mut webhooks_server::serve::ConnectionLimits)) -> TestServer {
    TestServer::start_with(|settings| {
        settings.connections.header_timeout = SHORT;
        settings.connections.request_timeout = SHORT;
        settings.connections.idle_timeout = SHORT;
        configure(&mut settings.connections);
    })
    .await
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base_url.trim_start_matches("http://")).await.expect("connecting")
}

/// Reads until the server closes the connection; what it sent. Panics if it stays open.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received)).await;
    match read {
        Ok(Ok(_)) => received,
        // A reset is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => received,
        Ok(Err(e)) => panic!("reading: {e}"),
        Err(_) => {
            panic!("the server kept the connection open; it sent {:?}", String::from_utf8_lossy(&received))
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed() {
    let server = server_with(|_| {}).await;
    let mut stream = connect(&server).await;
    stream.write_all(b"GET /api/v2/public/webhooks/us").await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    // Nothing, or the contract's shape: never a plain-text answer.
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let server = server_with(|_| {}).await;
    let mut stream = connect(&server).await;
    assert!(read_until_closed(&mut stream).await.is_empty());
}

#[tokio::test]
async fn a_body_that_never_comes_gets_the_contracts_408_and_the_connection_closes() {
    let server = server_with(|_| {}).await;
    let token = server.token("client-a", "user-a");
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /api/v2/public/webhooks/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    assert_eq!(body, r#"{"message":"Request Timeout","error":"Request Timeout","statusCode":408}"#);
    // Nothing was stored.
    let list = server.client("client-a", "user-a").list_user_webhooks().await.unwrap();
    assert!(list.into_inner().data.is_empty());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_answers() {
    let server = server_with(|_| {}).await;
    let mut stream = connect(&server).await;
    for _ in 0..2 {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&buf[..n]));
    }
    assert!(read_until_closed(&mut stream).await.is_empty());
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let server = server_with(|limits| {
        limits.max_connections = 2;
        // Long enough that the two held connections stay open until this test closes one.
        limits.header_timeout = PATIENCE * 3;
        limits.idle_timeout = PATIENCE * 3;
    })
    .await;
    let first = connect(&server).await;
    let _second = connect(&server).await;
    let mut third = connect(&server).await;
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(1), third.read_to_end(&mut answer)).await;
    assert!(waited.is_err(), "a third connection was served: {:?}", String::from_utf8_lossy(&answer));
    drop(first);
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn http2_is_served_and_bounded_the_same_way() {
    webhooks_e2e::install_crypto_provider();
    let server = server_with(|_| {}).await;

    // Prior-knowledge HTTP/2 works.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let health = h2.get(format!("{}/healthz", server.base_url)).send().await.unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    assert_eq!(health.status(), 200);

    // A connection that sends the preface and nothing more is closed.
    let mut stream = connect(&server).await;
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
    read_until_closed(&mut stream).await;

    // A stream whose body stalls gets the contract's 408.
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(connect(&server).await),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let (mut chunks, body) = Channel::<Bytes>::new(1);
    chunks.send_data(Bytes::from_static(b"{")).await.unwrap();
    let request = hyper::Request::post(format!("{}/api/v2/public/webhooks/user", server.base_url))
        .header("authorization", format!("Bearer {}", server.token("client-a", "user-a")))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response =
        tokio::time::timeout(PATIENCE, sender.send_request(request)).await.expect("an answer").unwrap();
    assert_eq!(response.status(), 408);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"message":"Request Timeout","error":"Request Timeout","statusCode":408}"#);
    drop(chunks);
}
