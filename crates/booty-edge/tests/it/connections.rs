//! Connections: keep-alive, h2c, many at once, the connection cap, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Barrier, watch};

use crate::harness::{
    Answer, LABEL, Mode, TestServer, TestSink, client, config, delivery, h2c_client, labeled,
    read_until_closed, send,
};

/// What an HTTP/2 client with prior knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: with the preface, a finished HTTP/2 handshake from the client's side.
const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
/// How long a test waits for something that must happen; a liveness bound, not a benchmark.
const GENEROUS: Duration = Duration::from_secs(10);

fn health() -> Request<Full<Bytes>> {
    Request::get("/health")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// One HTTP/2 connection through hyper's own client, with prior knowledge.
async fn one_h2_connection(
    server: &TestServer,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    (sender, tokio::spawn(connection))
}

/// An HTTP/2 `GET /health` (hyper's HTTP/2 client needs the whole URI).
fn h2_health(server: &TestServer) -> Request<Full<Bytes>> {
    Request::get(server.url("/health"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A raw connection that has sent `bytes` and then nothing more.
async fn raw_connection(server: &TestServer, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Whether the server closes `stream` within [`GENEROUS`], reading (and dropping) what it sends.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    tokio::time::timeout(GENEROUS, read_until_closed(stream))
        .await
        .is_ok()
}

/// One HTTP/1.1 connection, and nothing else: every request sent through it shares its socket.
async fn one_connection(
    server: &TestServer,
) -> (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    (sender, tokio::spawn(connection))
}

#[tokio::test]
async fn several_requests_share_one_keep_alive_connection() {
    let (server, sink) = TestServer::accepting().await;
    let (mut sender, connection) = one_connection(&server).await;
    for issue in 1..=5 {
        sender.ready().await.unwrap();
        let request = delivery(
            &server,
            "issues",
            &format!("d-{issue}"),
            labeled(issue, LABEL),
        );
        let answer = Answer::from_response(sender.send_request(request).await.unwrap()).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "request {issue}");
        assert_eq!(answer.json["job_id"], format!("{issue}-d-{issue}"));
    }
    let health = Request::get("/health")
        .body(Full::new(Bytes::new()))
        .unwrap();
    sender.ready().await.unwrap();
    let answer = Answer::from_response(sender.send_request(health).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(sink.submissions().len(), 5);
    assert!(
        !connection.is_finished(),
        "the server closed a keep-alive connection"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let mut config = config();
    config.limits.header_read_timeout = Duration::from_millis(300);
    let server = TestServer::start(config, TestSink::accepting()).await;
    let (mut sender, connection) = one_connection(&server).await;
    sender.ready().await.unwrap();
    let health = Request::get("/health")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        sender.send_request(health).await.unwrap().status(),
        StatusCode::OK
    );
    // The client keeps the connection and sends nothing more: the server ends it.
    connection.await.unwrap().unwrap();
    assert!(sender.is_closed());
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served() {
    let (server, sink) = TestServer::accepting().await;
    let client = h2c_client();
    let request = delivery(&server, "issues", "d-h2", labeled(21, LABEL));
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    let answer = Answer::from_response(response).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    assert_eq!(answer.request_id(), "d-h2");
    let health = Request::get(server.url("/health"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client, health).await.json["status"], "ok");
    assert_eq!(sink.submissions().len(), 1);
}

#[tokio::test]
async fn five_hundred_concurrent_connections_are_all_answered() {
    const CONNECTIONS: usize = 500;
    let (server, sink) = TestServer::accepting().await;
    let server = Arc::new(server);
    // Every client connects and completes its handshake before any sends, so all 500 are open at once.
    let all_connected = Arc::new(Barrier::new(CONNECTIONS));
    let mut clients = tokio::task::JoinSet::new();
    for index in 0..CONNECTIONS {
        let server = Arc::clone(&server);
        let all_connected = Arc::clone(&all_connected);
        clients.spawn(async move {
            let (mut sender, _connection) = one_connection(&server).await;
            all_connected.wait().await;
            let request = delivery(&server, "issues", &format!("d-{index}"), labeled(1, LABEL));
            sender.ready().await.unwrap();
            Answer::from_response(sender.send_request(request).await.unwrap()).await
        });
    }
    let mut accepted = 0;
    while let Some(answer) = clients.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        accepted += 1;
    }
    assert_eq!(accepted, CONNECTIONS);
    let mut ids: Vec<_> = sink
        .submissions()
        .into_iter()
        .map(|submission| submission.delivery.id().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), CONNECTIONS);
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_while_every_slot_has_a_request_in_flight() {
    let (open_gate, gate) = watch::channel(false);
    let sink = TestSink::new(Mode::Gated(gate));
    let mut config = config();
    config.limits.max_connections = 1;
    let server = TestServer::start(config, Arc::clone(&sink)).await;

    let (mut first, _first_connection) = one_connection(&server).await;
    first.ready().await.unwrap();
    let held = first.send_request(delivery(&server, "issues", "d-held", labeled(1, LABEL)));
    let held = tokio::spawn(held);
    sink.wait_for_arrivals(1).await;

    // The second connection sits in the listen backlog: its request is not answered while the first
    // connection holds the only slot with a request in flight.
    let (mut second, _second_connection) = one_connection(&server).await;
    second.ready().await.unwrap();
    let mut waiting = Box::pin(second.send_request(health()));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "answered past the connection cap"
    );
    // Once the first request is answered, its connection is idle and gives up the slot.
    open_gate.send(true).unwrap();
    let answer = Answer::from_response(held.await.unwrap().unwrap()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let answer = Answer::from_response(waiting.await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn shutdown_answers_the_100_requests_in_flight_then_returns() {
    const IN_FLIGHT: usize = 100;
    let (open_gate, gate) = watch::channel(false);
    let sink = TestSink::new(Mode::Gated(gate));
    let mut server = TestServer::start(config(), Arc::clone(&sink)).await;
    let addr = server.addr;

    // An idle keep-alive connection: shutdown must close it rather than wait for it.
    let (mut idle, idle_connection) = one_connection(&server).await;
    idle.ready().await.unwrap();
    let health = Request::get("/health")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        idle.send_request(health).await.unwrap().status(),
        StatusCode::OK
    );

    let client = client();
    let mut requests = tokio::task::JoinSet::new();
    for index in 0..IN_FLIGHT {
        let request = delivery(&server, "issues", &format!("d-{index}"), labeled(2, LABEL));
        let client = client.clone();
        requests.spawn(async move { send(&client, request).await });
    }
    sink.wait_for_arrivals(IN_FLIGHT).await;

    server.begin_shutdown();
    // The idle connection is closed by the server while the 100 are still held.
    idle_connection.await.unwrap().unwrap();
    open_gate.send(true).unwrap();

    let mut answered = 0;
    while let Some(answer) = requests.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        answered += 1;
    }
    assert_eq!(answered, IN_FLIGHT);
    server.stop().await.unwrap();
    // The listener is gone with the server.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_gives_up_on_requests_still_running_after_the_grace_period() {
    let (_never_open, gate) = watch::channel(false);
    let sink = TestSink::new(Mode::Gated(gate));
    let mut config = config();
    config.limits.shutdown_grace = Duration::from_millis(200);
    config.limits.request_timeout = Duration::from_mins(1);
    let mut server = TestServer::start(config, Arc::clone(&sink)).await;
    let request = delivery(&server, "issues", "d-stuck", labeled(2, LABEL));
    let client = client();
    let stuck = tokio::spawn(async move { client.request(request).await });
    sink.wait_for_arrivals(1).await;
    server.begin_shutdown();
    server.stop().await.unwrap();
    // The request was dropped with its connection: the client sees an error, not an answer.
    assert!(stuck.await.unwrap().is_err());
}

#[tokio::test]
async fn an_h2_connection_that_sent_only_the_preface_is_closed_after_the_idle_timeout() {
    let mut config = config();
    config.limits.idle_timeout = Duration::from_millis(200);
    let server = TestServer::start(config, TestSink::accepting()).await;
    let mut stream = raw_connection(&server, H2_PREFACE).await;
    assert!(
        closed_by_server(&mut stream).await,
        "a preface-only connection was kept open"
    );
}

#[tokio::test]
async fn an_h2_connection_idle_after_its_requests_is_closed_after_the_idle_timeout() {
    let mut config = config();
    config.limits.idle_timeout = Duration::from_millis(300);
    let server = TestServer::start(config, TestSink::accepting()).await;
    let (mut sender, connection) = one_h2_connection(&server).await;
    for _ in 0..3 {
        let response = sender.send_request(h2_health(&server)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The client keeps the connection and sends nothing more: the server says GOAWAY and closes it.
    tokio::time::timeout(GENEROUS, connection)
        .await
        .expect("an idle HTTP/2 connection was kept open")
        .unwrap()
        .unwrap();
    assert!(sender.is_closed());
}

#[tokio::test]
async fn an_h2_request_in_flight_longer_than_the_idle_timeout_is_answered_and_then_times_out() {
    let (open_gate, gate) = watch::channel(false);
    let sink = TestSink::new(Mode::Gated(gate));
    let mut config = config();
    config.limits.idle_timeout = Duration::from_millis(200);
    let server = TestServer::start(config, Arc::clone(&sink)).await;
    let (mut sender, connection) = one_h2_connection(&server).await;
    let held = tokio::spawn(sender.send_request(delivery(
        &server,
        "issues",
        "d-h2-held",
        labeled(3, LABEL),
    )));
    sink.wait_for_arrivals(1).await;
    // Several idle timeouts pass with the stream open: the connection is busy, not idle.
    tokio::time::sleep(Duration::from_millis(800)).await;
    open_gate.send(true).unwrap();
    let answer = Answer::from_response(held.await.unwrap().unwrap()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    // Idle once answered, though nothing wakes the server when a request ends: its idle timer, which
    // fired while the request was in flight, looks again and closes the connection an idle timeout later.
    tokio::time::timeout(GENEROUS, connection)
        .await
        .expect("a connection idle after a long request was kept open")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_h2_client_that_does_not_answer_pings_is_disconnected() {
    let mut config = config();
    config.limits.idle_timeout = Duration::from_mins(1);
    config.limits.h2_keep_alive_interval = Some(Duration::from_millis(200));
    config.limits.h2_keep_alive_timeout = Duration::from_millis(200);
    let server = TestServer::start(config, TestSink::accepting()).await;
    let mut bytes = H2_PREFACE.to_vec();
    bytes.extend_from_slice(EMPTY_SETTINGS);
    // The handshake is done; the server's pings go unanswered.
    let mut stream = raw_connection(&server, &bytes).await;
    assert!(
        closed_by_server(&mut stream).await,
        "a client that never acknowledges pings was kept"
    );
}

#[tokio::test]
async fn when_every_slot_is_held_by_idle_connections_the_longest_idle_makes_room() {
    let mut config = config();
    config.limits.max_connections = 4;
    // Long enough that only eviction can free a slot during the test.
    config.limits.idle_timeout = Duration::from_mins(1);
    config.limits.header_read_timeout = Duration::from_mins(1);
    let server = TestServer::start(config, TestSink::accepting()).await;

    // Idle the longest: an HTTP/1.1 connection after one request, then an HTTP/2 one after one request.
    let (mut h1, h1_connection) = one_connection(&server).await;
    h1.ready().await.unwrap();
    assert_eq!(
        h1.send_request(health()).await.unwrap().status(),
        StatusCode::OK
    );
    let (mut h2, h2_connection) = one_h2_connection(&server).await;
    assert_eq!(
        h2.send_request(h2_health(&server)).await.unwrap().status(),
        StatusCode::OK
    );
    // Then a preface and nothing more, and a connection that never said anything.
    let _preface_only = raw_connection(&server, H2_PREFACE).await;
    let _silent = raw_connection(&server, b"").await;

    // All four slots are taken, none with a request in flight: a health check still gets in, and the
    // connection idle the longest is the one that made room.
    let client = client();
    let answer = tokio::time::timeout(
        GENEROUS,
        send(
            &client,
            Request::get(server.url("/health"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        ),
    )
    .await
    .expect("a health check was kept out by idle connections");
    assert_eq!(answer.status, StatusCode::OK);
    tokio::time::timeout(GENEROUS, h1_connection)
        .await
        .expect("the longest idle connection was not the one closed")
        .unwrap()
        .unwrap();
    assert!(!h2_connection.is_finished());

    // The next new client makes room by closing the HTTP/2 connection, with GOAWAY.
    let (mut third, _third_connection) = one_connection(&server).await;
    third.ready().await.unwrap();
    let answer = tokio::time::timeout(GENEROUS, third.send_request(health()))
        .await
        .expect("the second health check was kept out")
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    tokio::time::timeout(GENEROUS, h2_connection)
        .await
        .expect("the idle HTTP/2 connection was not closed")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_instead_of_waiting_for_the_grace() {
    let mut config = config();
    config.limits.shutdown_grace = Duration::from_secs(30);
    config.limits.idle_timeout = Duration::from_mins(1);
    config.limits.header_read_timeout = Duration::from_mins(1);
    let mut server = TestServer::start(config, TestSink::accepting()).await;

    let mut h2_connections = Vec::new();
    for _ in 0..3 {
        let (mut sender, connection) = one_h2_connection(&server).await;
        let response = sender.send_request(h2_health(&server)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        h2_connections.push((sender, connection));
    }
    let (mut h1, h1_connection) = one_connection(&server).await;
    h1.ready().await.unwrap();
    assert_eq!(
        h1.send_request(health()).await.unwrap().status(),
        StatusCode::OK
    );
    let _preface_only = raw_connection(&server, H2_PREFACE).await;
    let mut handshaken = H2_PREFACE.to_vec();
    handshaken.extend_from_slice(EMPTY_SETTINGS);
    // Finished its handshake but will never acknowledge the GOAWAY's ping.
    let _deaf = raw_connection(&server, &handshaken).await;

    server.begin_shutdown();
    // 5 s is a liveness bound far under the 30 s grace, which only requests in flight may use.
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("shutdown waited for idle connections")
        .unwrap();
    for (_sender, connection) in h2_connections {
        // hyper's client ends cleanly on the server's GOAWAY.
        connection.await.unwrap().unwrap();
    }
    h1_connection.await.unwrap().unwrap();
}
