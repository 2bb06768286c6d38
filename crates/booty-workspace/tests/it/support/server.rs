//! Loopback servers that speak real smart HTTP: `git http-backend` run as CGI behind a small HTTP/1.1 server
//! that can demand Basic authentication and stall a fetch on request; plus a server that accepts connections
//! and never answers, and a port nobody listens on.
//!
//! Plain `std` threads, so the benchmark can use it without a runtime. One request per connection
//! (`Connection: close`), which both gix (reqwest) and the git CLI handle.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use base64::Engine as _;

/// A request the server saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `GET` or `POST`.
    pub(crate) method: String,
    /// Path and query.
    pub(crate) target: String,
    /// The `Authorization` header, if any.
    pub(crate) authorization: Option<String>,
}

/// Holds a fetch's response after its first bytes until released.
pub(crate) struct Stall {
    stalled: mpsc::Sender<()>,
    release: Mutex<mpsc::Receiver<()>>,
}

/// The test's side of a [`Stall`].
pub(crate) struct StallControl {
    /// Receives once the server has sent part of a fetch response and stopped.
    pub(crate) stalled: mpsc::Receiver<()>,
    /// Send (or drop) to let the server send the rest.
    pub(crate) release: mpsc::Sender<()>,
}

impl Stall {
    pub(crate) fn new() -> (Self, StallControl) {
        let (stalled_tx, stalled_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        (
            Self {
                stalled: stalled_tx,
                release: Mutex::new(release_rx),
            },
            StallControl {
                stalled: stalled_rx,
                release: release_tx,
            },
        )
    }
}

struct Config {
    root: PathBuf,
    /// `Basic <base64(user:password)>` that must be presented, if any.
    expected_authorization: Option<String>,
    stall: Option<Stall>,
    seen: Mutex<Vec<Seen>>,
}

/// Smart HTTP for every repository under a root, on `127.0.0.1`.
pub(crate) struct GitServer {
    addr: SocketAddr,
    config: Arc<Config>,
    /// Stops accepting when the server is dropped; connections being served finish on their own.
    _acceptor: Acceptor,
}

impl GitServer {
    /// Serves `root` without authentication.
    pub(crate) fn start(root: &Path) -> Self {
        Self::start_with(root, None, None)
    }

    /// Serves `root`, answering 401 unless a request carries Basic credentials `user:password`.
    pub(crate) fn with_basic_auth(root: &Path, user: &str, password: &str) -> Self {
        Self::start_with(root, Some((user, password)), None)
    }

    /// Serves `root` (with optional Basic credentials); the first fetch response stalls as `stall` says.
    pub(crate) fn start_with(
        root: &Path,
        credentials: Option<(&str, &str)>,
        stall: Option<Stall>,
    ) -> Self {
        let expected_authorization = credentials.map(|(user, password)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        });
        let config = Arc::new(Config {
            root: root.to_owned(),
            expected_authorization,
            stall,
            seen: Mutex::new(Vec::new()),
        });
        let handler_config = config.clone();
        let acceptor = Acceptor::start(move |stream| {
            let config = handler_config.clone();
            std::thread::spawn(move || {
                // A client that hangs up early is its business; the test sees the client's side.
                let _ = serve(stream, &config);
            });
        });
        Self {
            addr: acceptor.addr,
            config,
            _acceptor: acceptor,
        }
    }

    /// `http://127.0.0.1:PORT/NAME`.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// The requests seen so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.config.seen.lock().unwrap().clone()
    }
}

/// Accepts connections and keeps them open without reading or writing a byte, until dropped.
pub(crate) struct SilentServer {
    addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
    _acceptor: Acceptor,
}

impl SilentServer {
    pub(crate) fn start() -> Self {
        let held = Arc::new(Mutex::new(Vec::new()));
        let holder = held.clone();
        let acceptor = Acceptor::start(move |stream| holder.lock().unwrap().push(stream));
        Self {
            addr: acceptor.addr,
            held,
            _acceptor: acceptor,
        }
    }

    pub(crate) fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// How many connections were accepted (and are still held).
    pub(crate) fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// A loopback address nothing listens on: bound to get a free port, then closed.
pub(crate) fn closed_port_url(name: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/{name}")
}

/// A thread accepting connections on `127.0.0.1:0` and handing each to a callback, until dropped.
struct Acceptor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn start(mut on_connection: impl FnMut(TcpStream) + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    on_connection(stream);
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `git-http-backend` in git's exec path.
fn http_backend() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let output = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("the git CLI runs");
        let exec_path = String::from_utf8(output.stdout).unwrap();
        Path::new(exec_path.trim()).join("git-http-backend")
    })
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

fn read_request(reader: &mut impl BufRead) -> io::Result<Request> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        request.body = vec![0; length];
        reader.read_exact(&mut request.body)?;
    }
    Ok(request)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                if line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

fn serve(stream: TcpStream, config: &Config) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let request = read_request(&mut reader)?;
    let authorization = request.header("authorization").map(str::to_owned);
    config.seen.lock().unwrap().push(Seen {
        method: request.method.clone(),
        target: request.target.clone(),
        authorization: authorization.clone(),
    });
    if let Some(expected) = &config.expected_authorization
        && authorization.as_deref() != Some(expected.as_str())
    {
        return out.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"booty-tests\"\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }

    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let mut cgi = Command::new(http_backend());
    cgi.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &config.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (header, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("git-protocol", "HTTP_GIT_PROTOCOL"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
    ] {
        if let Some(value) = request.header(header) {
            cgi.env(variable, value);
        }
    }
    let mut child = cgi.spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = request.body.clone();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let mut cgi_out = BufReader::new(child.stdout.take().expect("piped"));

    // CGI headers, then a blank line, then the body.
    let mut status = "200 OK".to_owned();
    let mut head = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if cgi_out.read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        match trimmed.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                value.trim().clone_into(&mut status);
            }
            _ => {
                head.push_str(trimmed);
                head.push_str("\r\n");
            }
        }
    }
    out.write_all(format!("HTTP/1.1 {status}\r\n{head}Connection: close\r\n\r\n").as_bytes())?;

    // Only the request that asks for objects (`want <id>`, in every protocol version) gets the pack.
    let wants_pack = request.method == "POST" && request.body.windows(5).any(|w| w == b"want ");
    if let Some(stall) = config.stall.as_ref().filter(|_| wants_pack) {
        let mut first = [0u8; 64];
        let n = cgi_out.read(&mut first)?;
        out.write_all(&first[..n])?;
        out.flush()?;
        let _ = stall.stalled.send(());
        let _ = stall.release.lock().unwrap().recv();
    }
    io::copy(&mut cgi_out, &mut out)?;
    out.flush()?;
    feeder.join().unwrap();
    child.wait()?;
    Ok(())
}
