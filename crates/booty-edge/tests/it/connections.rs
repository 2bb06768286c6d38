//! Connections: keep-alive, h2c, many at once, the connection cap, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Barrier, watch};

use crate::harness::{
    Answer, LABEL, Mode, TestServer, TestSink, client, config, delivery, h2c_client, labeled, send,
};

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
async fn past_the_connection_cap_a_client_waits_until_a_slot_frees() {
    let mut config = config();
    config.limits.max_connections = 1;
    let server = TestServer::start(config, TestSink::accepting()).await;
    let health = || {
        Request::get("/health")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let (mut first, first_connection) = one_connection(&server).await;
    first.ready().await.unwrap();
    let answer = Answer::from_response(first.send_request(health()).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);

    // The second connection sits in the listen backlog: its request is not answered while the first
    // connection holds the only slot.
    let (mut second, _second_connection) = one_connection(&server).await;
    second.ready().await.unwrap();
    let mut waiting = Box::pin(second.send_request(health()));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "answered past the connection cap"
    );
    drop(first);
    first_connection.await.unwrap().unwrap();
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
