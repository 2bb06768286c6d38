//! The load generator: HTTP/1.1 keep-alive connections, one thread each, sending signed deliveries with a
//! fresh `X-GitHub-Delivery` per request and recording every request's latency.
//!
//! Plain `std` sockets and threads: no runtime and no HTTP library between the clock and the socket, and
//! nothing to install. GitHub's HMAC covers only the body, so one signed body with a new delivery id in
//! the headers of each request is exactly what GitHub would send for distinct events with the same payload.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;

/// Where the load goes and for how long.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoadArgs {
    /// The edge's address; repeat it to spread the connections over several processes.
    #[arg(long, required = true)]
    pub(crate) addr: Vec<SocketAddr>,
    /// The `X-Hub-Signature-256` value of the payload.
    #[arg(long)]
    pub(crate) signature: String,
    /// The JSON payload to send.
    #[arg(long)]
    pub(crate) payload: PathBuf,
    /// Concurrent keep-alive connections.
    #[arg(long)]
    pub(crate) connections: usize,
    /// Seconds measured.
    #[arg(long)]
    pub(crate) seconds: f64,
    /// Seconds of load before measuring starts.
    #[arg(long)]
    pub(crate) warmup: f64,
    /// The status every answer must have (`200` when the payload is not a trigger and is ignored).
    #[arg(long, default_value_t = 202)]
    pub(crate) expect: u16,
}

/// What one run measured; printed as one `result ...` line and parsed back by `bench ingest`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Outcome {
    /// Requests answered during the measured seconds.
    pub(crate) requests: u64,
    /// Requests answered in the whole run, warmup included (to divide the server's CPU time by).
    pub(crate) total_requests: u64,
    pub(crate) errors: u64,
    pub(crate) per_second: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) max_us: f64,
}

impl Outcome {
    pub(crate) fn to_line(self) -> String {
        format!(
            "result requests={} total_requests={} errors={} per_second={:.0} p50_us={:.1} \
             p99_us={:.1} max_us={:.1}",
            self.requests,
            self.total_requests,
            self.errors,
            self.per_second,
            self.p50_us,
            self.p99_us,
            self.max_us
        )
    }

    pub(crate) fn from_line(line: &str) -> anyhow::Result<Self> {
        let fields = line
            .strip_prefix("result ")
            .with_context(|| format!("not a result line: {line:?}"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let value = fields
                .split(' ')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .with_context(|| format!("no {name} in {line:?}"))?;
            value
                .parse()
                .with_context(|| format!("{name}={value:?} is not a number"))
        };
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "the counts were printed from u64 as whole numbers"
        )]
        Ok(Self {
            requests: field("requests")? as u64,
            total_requests: field("total_requests")? as u64,
            errors: field("errors")? as u64,
            per_second: field("per_second")?,
            p50_us: field("p50_us")?,
            p99_us: field("p99_us")?,
            max_us: field("max_us")?,
        })
    }
}

/// Runs the load and prints one `result` line (and the first unexpected answer, if any, on stderr).
pub(crate) fn run(args: &LoadArgs) -> anyhow::Result<()> {
    let payload = std::fs::read(&args.payload)
        .with_context(|| format!("reading the payload {}", args.payload.display()))?;
    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.seconds);
    // Distinguishes this run's delivery ids from every other run's.
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());

    let connections = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.connections)
            .map(|index| {
                let connection = Connection::open(args, &payload, nonce, index);
                scope.spawn(move || connection?.drive(measure_from, until, args.expect))
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a load thread panicked"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut total_requests = 0;
    for connection in connections {
        total_requests += connection.answered;
        latencies.extend(connection.latencies);
        errors += connection.errors;
        if let Some(first) = connection.first_unexpected {
            eprintln!("load: unexpected answer: {first}");
        }
    }
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    #[expect(
        clippy::cast_precision_loss,
        reason = "request counts and nanoseconds are far below 2^52"
    )]
    let outcome = Outcome {
        requests,
        total_requests,
        errors,
        per_second: requests as f64 / args.seconds,
        p50_us: percentile(&latencies, 0.50) as f64 / 1000.0,
        p99_us: percentile(&latencies, 0.99) as f64 / 1000.0,
        max_us: latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
    };
    println!("{}", outcome.to_line());
    Ok(())
}

/// The `quantile` of sorted nanoseconds (nearest rank).
fn percentile(sorted: &[u64], quantile: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank between 1 and the number of samples"
    )]
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The length of a GUID such as `72d3162e-cc78-11e3-81ab-4c9367dc0958`.
const GUID_LEN: usize = 36;

/// One keep-alive connection and the request it sends over and over, a new delivery id each time.
struct Connection {
    stream: TcpStream,
    request: Vec<u8>,
    /// Where the delivery id sits in `request`.
    id_at: usize,
    nonce: u32,
    index: usize,
    response: Vec<u8>,
}

/// What one connection saw.
struct Seen {
    /// Every request answered, warmup included.
    answered: u64,
    /// Nanoseconds per request, for those started after the warmup.
    latencies: Vec<u64>,
    errors: u64,
    first_unexpected: Option<String>,
}

impl Connection {
    fn open(args: &LoadArgs, payload: &[u8], nonce: u32, index: usize) -> anyhow::Result<Self> {
        let addr = args.addr[index % args.addr.len()];
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut request = format!(
            "POST /webhooks/github HTTP/1.1\r\nhost: {}\r\nuser-agent: GitHub-Hookshot/bench\r\n\
             content-type: application/json\r\nx-github-event: issues\r\n\
             x-hub-signature-256: {}\r\ncontent-length: {}\r\nx-github-delivery: ",
            addr,
            args.signature,
            payload.len()
        )
        .into_bytes();
        let id_at = request.len();
        request.extend_from_slice(&[b'0'; GUID_LEN]);
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(payload);
        Ok(Self {
            stream,
            request,
            id_at,
            nonce,
            index,
            response: Vec::with_capacity(4096),
        })
    }

    /// Sends requests back to back until `until`, recording those started after `measure_from`; an answer
    /// other than `expect` counts as an error.
    fn drive(mut self, measure_from: Instant, until: Instant, expect: u16) -> anyhow::Result<Seen> {
        let mut seen = Seen {
            answered: 0,
            latencies: Vec::with_capacity(200_000),
            errors: 0,
            first_unexpected: None,
        };
        let mut id = String::with_capacity(GUID_LEN);
        for sequence in 0_u64.. {
            let sent = Instant::now();
            if sent >= until {
                break;
            }
            id.clear();
            write!(
                id,
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                self.nonce,
                self.index & 0xffff,
                (sequence >> 48) & 0xfff,
                (sequence >> 36) & 0xfff,
                sequence & 0xffff_ffff_ffff
            )?;
            self.request[self.id_at..self.id_at + GUID_LEN].copy_from_slice(id.as_bytes());
            self.stream.write_all(&self.request)?;
            let status = self.read_response()?;
            let elapsed = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
            seen.answered += 1;
            if sent >= measure_from {
                seen.latencies.push(elapsed);
            }
            if status != expect {
                seen.errors += 1;
                if seen.first_unexpected.is_none() {
                    seen.first_unexpected =
                        Some(String::from_utf8_lossy(&self.response).into_owned());
                }
            }
        }
        Ok(seen)
    }

    /// Reads one whole response (headers and `content-length` bytes of body) and returns its status.
    fn read_response(&mut self) -> anyhow::Result<u16> {
        self.response.clear();
        let mut buf = [0u8; 4096];
        let (head_len, body_len) = loop {
            let read = self.stream.read(&mut buf)?;
            if read == 0 {
                bail!("the server closed the connection mid-response");
            }
            self.response.extend_from_slice(&buf[..read]);
            if let Some(end) = find(&self.response, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.response[..end])?;
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .context("response without content-length")?;
                break (end + 4, length);
            }
        };
        while self.response.len() < head_len + body_len {
            let read = self.stream.read(&mut buf)?;
            if read == 0 {
                bail!("the server closed the connection mid-body");
            }
            self.response.extend_from_slice(&buf[..read]);
        }
        let status = self
            .response
            .get(9..12)
            .and_then(|digits| std::str::from_utf8(digits).ok()?.parse().ok())
            .context("response without a status line")?;
        Ok(status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.50), 50);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&sorted, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn result_lines_round_trip() {
        let outcome = Outcome {
            requests: 150_000,
            total_requests: 180_000,
            errors: 0,
            per_second: 30_000.0,
            p50_us: 480.5,
            p99_us: 1210.0,
            max_us: 5210.3,
        };
        assert_eq!(Outcome::from_line(&outcome.to_line()).unwrap(), outcome);
        assert!(Outcome::from_line("listening on 127.0.0.1:1").is_err());
    }
}
