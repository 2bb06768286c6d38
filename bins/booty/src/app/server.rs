//! The loopback listener of `app create`: `GET /` is the page, `GET /callback` takes GitHub's redirect back
//! (once), and anything else is 404. Requests naming another host than the listener's address (a page
//! elsewhere reaching it through DNS rebinding) get 421; each connection serves one request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use super::{AppError, Created, Exchange, page};

/// How long the answers in flight may take to reach the browser once the outcome is known.
const DRAIN: Duration = Duration::from_secs(5);

/// The longest code accepted from the redirect (GitHub's are 20 hex digits).
const MAX_CODE: usize = 128;

/// What the requests share.
struct Shared {
    addr: SocketAddr,
    page: String,
    state: String,
    exchange: Exchange,
    /// Set by the first request to `/callback`: a code is exchanged once.
    called_back: Arc<AtomicBool>,
    outcome: mpsc::Sender<Result<Created, AppError>>,
}

/// The listener, serving until the outcome is known.
pub(crate) struct Running {
    outcome: mpsc::Receiver<Result<Created, AppError>>,
    called_back: Arc<AtomicBool>,
    stop: Arc<Notify>,
    server: tokio::task::JoinHandle<()>,
}

/// Starts serving the page on `listener` (bound to `addr`).
pub(crate) fn start(
    listener: TcpListener,
    addr: SocketAddr,
    page: String,
    state: String,
    exchange: Exchange,
) -> Running {
    let (sender, outcome) = mpsc::channel(1);
    let called_back = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        addr,
        page,
        state,
        exchange,
        called_back: called_back.clone(),
        outcome: sender,
    });
    let stop = Arc::new(Notify::new());
    let server = tokio::spawn(serve(listener, shared, stop.clone()));
    Running {
        outcome,
        called_back,
        stop,
        server,
    }
}

impl Running {
    /// The outcome of the callback, or [`AppError::TimedOut`] after `timeout` (unless the callback has
    /// begun: a code being exchanged is never cut off, or GitHub's only copy of the key would be lost), or
    /// [`AppError::Interrupted`] on Ctrl-C; then the listener stops, once the answers in flight are sent.
    pub(crate) async fn outcome(
        mut self,
        timeout: Duration,
        timeout_secs: u64,
    ) -> Result<Created, AppError> {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut timed_out = false;
        let outcome = loop {
            tokio::select! {
                got = self.outcome.recv() => break got.unwrap_or(Err(AppError::Interrupted)),
                () = &mut deadline, if !timed_out => {
                    // Taking the callback's place: a redirect arriving from now on is refused.
                    let claimed = self
                        .called_back
                        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                    if claimed {
                        break Err(AppError::TimedOut(timeout_secs));
                    }
                    timed_out = true;
                }
                _ = tokio::signal::ctrl_c() => break Err(AppError::Interrupted),
            }
        };
        self.stop.notify_one();
        // The server drains for at most DRAIN; it ending any other way is nothing to report.
        let _ = self.server.await;
        outcome
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: Arc<Notify>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                while connections.try_join_next().is_some() {}
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(answer(&shared, &request).await) }
                    });
                    // A browser that hangs up is its business.
                    let _ = http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            () = stop.notified() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

async fn answer(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if !host_allowed(shared.addr, request) {
        return html(
            StatusCode::MISDIRECTED_REQUEST,
            &page::message(
                "wrong host",
                "This page answers only to its own address.",
                None,
            ),
        );
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => html(StatusCode::OK, &shared.page),
        (&Method::GET, "/callback") => callback(shared, request.uri().query().unwrap_or("")).await,
        _ => html(
            StatusCode::NOT_FOUND,
            &page::message("not found", "Nothing here.", None),
        ),
    }
}

/// Whether the request names the listener's own address (`IP:PORT`, or `localhost:PORT`).
fn host_allowed(addr: SocketAddr, request: &Request<Incoming>) -> bool {
    let Some(host) = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let port = addr.port();
    host.eq_ignore_ascii_case(&addr.to_string())
        || host.eq_ignore_ascii_case(&format!("localhost:{port}"))
}

/// GitHub's redirect back: the state checked, the code exchanged, the files written; the outcome goes to
/// the command, and the browser is told.
async fn callback(shared: &Shared, query: &str) -> Response<Full<Bytes>> {
    if shared.called_back.swap(true, Ordering::SeqCst) {
        return html(
            StatusCode::CONFLICT,
            &page::message(
                "already done",
                "This run of booty app create has taken GitHub's redirect already, or has ended: see the terminal.",
                None,
            ),
        );
    }
    let mut code = None;
    let mut state = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "code" => code = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            _ => {}
        }
    }
    let state_matches = state
        .as_deref()
        .is_some_and(|state| same(state, &shared.state));
    let outcome = match code.as_deref() {
        _ if !state_matches => Err(AppError::StateMismatch),
        None | Some("") => Err(AppError::BadCode("no `code`")),
        Some(code)
            if code.len() > MAX_CODE
                || !code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Err(AppError::BadCode("a `code` GitHub does not make"))
        }
        Some(code) => shared.exchange.run(code).await,
    };
    let response = match &outcome {
        Ok(created) => html(
            StatusCode::OK,
            &page::message(
                "the GitHub App is ready",
                &format!(
                    "booty wrote the App's key and configuration (see the terminal). Install the App on the repositories booty should serve: {}/installations/new. You can close this tab.",
                    created.app.html_url
                ),
                Some(&format!("{}/installations/new", created.app.html_url)),
            ),
        ),
        Err(err) => html(
            StatusCode::BAD_REQUEST,
            &page::message("the GitHub App was not set up", &err.to_string(), None),
        ),
    };
    // The command is waiting for this; if it stopped waiting (timed out), it has said so already.
    let _ = shared.outcome.send(outcome).await;
    response
}

/// Compares two states in time independent of where they differ.
fn same(got: &str, expected: &str) -> bool {
    got.len() == expected.len()
        && got
            .bytes()
            .zip(expected.bytes())
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn html(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn states_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abd", "abc"));
        assert!(!same("ab", "abc"));
        assert!(!same("", "abc"));
    }
}
