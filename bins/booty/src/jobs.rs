//! `booty jobs list|show|retry|cancel`: the admin listener's JSON API from the command line, with the
//! admin token from the configuration (never from argv, where other users of the machine could read it).

use std::fmt::Write as _;

use anyhow::{Context, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request};
use serde_json::Value;

use crate::cli::{JobsAction, JobsArgs};
use crate::config::Config;
use crate::send;

/// Runs the action: whether the listener said yes, and what to print (the listing, the job, or the
/// listener's error with its status).
pub(crate) async fn run(args: &JobsArgs, config: &Config) -> anyhow::Result<(bool, String)> {
    let base = match &args.url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => default_url(config),
    };
    if !base.starts_with("http://") {
        bail!("cannot reach {base}: booty jobs speaks plain http:// to the admin listener only");
    }
    let (method, path) = match &args.action {
        JobsAction::List {
            state,
            repository,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(state) = state {
                query.push(format!("state={}", encode(state)));
            }
            if let Some(repository) = repository {
                query.push(format!("repository={}", encode(repository)));
            }
            if let Some(limit) = limit {
                query.push(format!("limit={limit}"));
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            (Method::GET, format!("/jobs{query}"))
        }
        JobsAction::Show { job_id } => (Method::GET, format!("/jobs/{}", encode(job_id))),
        JobsAction::Retry { job_id } => (Method::POST, format!("/jobs/{}/retry", encode(job_id))),
        JobsAction::Cancel { job_id } => (Method::POST, format!("/jobs/{}/cancel", encode(job_id))),
    };
    let url = format!("{base}{path}");
    let mut request = Request::builder()
        .method(method)
        .uri(&url)
        .header("accept", "application/json")
        .header(
            "user-agent",
            concat!("booty-jobs/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(token) = &config.admin_token {
        request = request.header("authorization", format!("Bearer {}", token.expose()));
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("cannot build a request to {url:?}"))?;
    let (status, body) = send::exchange(request, &url, "reach").await?;
    let json: Value = serde_json::from_slice(&body)
        .with_context(|| format!("the answer from {url} (HTTP {status}) is not JSON"))?;
    if !status.is_success() {
        let error = json["error"].as_str().unwrap_or("no error message");
        return Ok((false, format!("HTTP {}: {error}\n", status.as_u16())));
    }
    let text = match &args.action {
        JobsAction::List { .. } => table(json["jobs"].as_array().map_or(&[][..], Vec::as_slice)),
        JobsAction::Show { .. } => format!("{}\n", serde_json::to_string_pretty(&json)?),
        JobsAction::Retry { .. } | JobsAction::Cancel { .. } => format!(
            "{} {}\n",
            json["job_id"].as_str().unwrap_or_default(),
            json["state"].as_str().unwrap_or_default()
        ),
    };
    Ok((true, text))
}

/// `http://<admin_listen>`, an unspecified address (`0.0.0.0`) replaced by loopback.
fn default_url(config: &Config) -> String {
    let mut addr = config.admin_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}")
}

/// `text` percent-encoded but for unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// One line per job: id, state, attempts, `repository#issue`, created, the error's first line.
fn table(jobs: &[Value]) -> String {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|job| {
            [
                text(&job["job_id"]),
                text(&job["state"]),
                text(&job["attempts"]),
                format!(
                    "{}#{}",
                    text(&job["repository"]),
                    text(&job["issue_number"])
                ),
                text(&job["created_at"]),
                text(&job["error"]).lines().next().unwrap_or("-").to_owned(),
            ]
        })
        .collect();
    let header = ["JOB", "STATE", "ATTEMPTS", "ISSUE", "CREATED", "ERROR"].map(str::to_owned);
    let mut widths = header.clone().map(|column| column.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_a_table_with_aligned_columns() {
        let jobs = [
            serde_json::json!({"job_id": "1-a", "state": "failed", "attempts": 3,
                "repository": "octo/repo", "issue_number": 1, "created_at": "2026-01-01T00:00:00.000Z",
                "error": "exit status 1\nmore"}),
            serde_json::json!({"job_id": "12-bb", "state": "queued", "attempts": 0,
                "repository": "octo/repo", "issue_number": 12, "created_at": "2026-01-01T00:00:01.000Z",
                "error": null}),
        ];
        assert_eq!(
            table(&jobs),
            "JOB    STATE   ATTEMPTS  ISSUE         CREATED                   ERROR\n\
             1-a    failed  3         octo/repo#1   2026-01-01T00:00:00.000Z  exit status 1\n\
             12-bb  queued  0         octo/repo#12  2026-01-01T00:00:01.000Z  -\n"
        );
        assert_eq!(encode("octo/repo"), "octo%2Frepo");
    }
}
