//! The jobs page: server-rendered HTML of the admin listener's JSON views, no JavaScript. `GET /` lists the
//! jobs (filtered by state and repository, refreshing itself), `GET /jobs/{job_id}` with `Accept:
//! text/html` shows one, with retry and cancel buttons that are plain form `POST`s.
//!
//! It renders whatever view the inspector gives, read as JSON by field name (`job_id`, `state`,
//! `attempts`, `issue_number`, `repository`, `created_at`, `started_at`, `finished_at`, `retry_at`,
//! `error`, `output`), so it works for any [`JobInspector`](crate::JobInspector) whose views carry them.
//! Every value is HTML-escaped; nothing secret is in a view.

use std::fmt::Write as _;

use booty_queue::JobState;
use serde_json::Value;

use crate::admin::{DEFAULT_JOB_LIMIT, JobFilter};

/// The content type of every page.
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// Seconds between the list page's refreshes.
const REFRESH_SECS: u32 = 10;

const STYLE: &str = r#"
:root { color-scheme: light dark; --fg: #1f2328; --muted: #59636e; --bg: #ffffff; --line: #d1d9e0;
  --panel: #f6f8fa; --link: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117;
  --line: #3d444d; --panel: #151b23; --link: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); }
header { border-bottom: 1px solid var(--line); background: var(--panel); }
header div, main { max-width: 72rem; margin: 0 auto; padding: 0.75rem 1rem; }
header a { color: var(--fg); font-weight: 600; text-decoration: none; font-size: 1.1rem; }
a { color: var(--link); }
h1 { font-size: 1.4rem; margin: 0.5rem 0 1rem; word-break: break-all; }
form.filter { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: end; margin-bottom: 1rem; }
label { display: flex; flex-direction: column; font-size: 0.85rem; color: var(--muted); }
input, select, button { font: inherit; padding: 0.3rem 0.6rem; border: 1px solid var(--line);
  border-radius: 6px; background: var(--bg); color: var(--fg); }
button { cursor: pointer; background: var(--panel); font-weight: 600; }
button.danger { color: #cf222e; }
.table { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.45rem 0.7rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.03em; color: var(--muted);
  background: var(--panel); }
tr:last-child td { border-bottom: 0; }
td.id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.85rem; white-space: nowrap; }
td.error { color: var(--muted); max-width: 24rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.state { display: inline-block; padding: 0.05rem 0.55rem; border-radius: 999px; font-size: 0.8rem;
  font-weight: 600; color: #fff; white-space: nowrap; }
.queued { background: #6e7781; } .running { background: #0969da; } .retrying { background: #9a6700; }
.succeeded { background: #1a7f37; } .failed { background: #cf222e; } .cancelled { background: #8250df; }
.abandoned { background: #57606a; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.35rem 1rem; margin: 0 0 1rem; }
dt { color: var(--muted); } dd { margin: 0; word-break: break-word; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 0.75rem;
  overflow-x: auto; font-size: 0.85rem; max-height: 32rem; }
.actions { display: flex; gap: 0.5rem; margin: 1rem 0; }
.muted { color: var(--muted); }
@media (max-width: 40rem) { .wide { display: none; } td.error { max-width: 12rem; }
  td.id { white-space: normal; word-break: break-all; min-width: 8rem; } dl { grid-template-columns: 1fr; }
  dt { margin-top: 0.4rem; } }
"#;

/// `s` with `&`, `<`, `>`, `"` and `'` escaped: safe as HTML text and as a quoted attribute value. The
/// jobs page uses it, and so does `booty app create`'s page.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` as a string: the text of a string, nothing for null, the JSON of anything else.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `/path/with/parts` percent-encoded enough for a job id in a URL path or query.
fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn page(title: &str, refresh: bool, body: &str) -> String {
    let refresh = if refresh {
        format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">")
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
         <title>{title} · booty</title><style>{STYLE}</style></head><body>\
         <header><div><a href=\"/\">booty</a> <span class=\"muted\">jobs</span></div></header>\
         <main>{body}</main></body></html>",
        title = escape_html(title)
    )
}

fn state_badge(state: &str) -> String {
    let state = escape_html(state);
    format!("<span class=\"state {state}\" data-state=\"{state}\">{state}</span>")
}

fn issue_link(job: &Value, issues_at: Option<&str>) -> String {
    let (repository, number) = (text(&job["repository"]), text(&job["issue_number"]));
    if number.is_empty() {
        return String::new();
    }
    match issues_at {
        Some(base) if !repository.is_empty() => format!(
            "<a href=\"{}/{}/issues/{}\">#{}</a>",
            escape_html(base),
            escape_html(&repository),
            escape_html(&number),
            escape_html(&number)
        ),
        _ => format!("#{}", escape_html(&number)),
    }
}

/// The list page: `jobs` (views as JSON, newest first) under the filter form for `filter`. `issues_at`
/// is the GitHub host issues link to (`https://github.com`), if known.
pub(crate) fn list(jobs: &[Value], filter: &JobFilter, issues_at: Option<&str>) -> String {
    let mut body = String::from("<h1>Jobs</h1><form class=\"filter\" method=\"get\" action=\"/\">");
    body.push_str("<label>State<select name=\"state\"><option value=\"\">any</option>");
    for state in JobState::ALL {
        let selected = if filter.state == Some(state) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{selected}>{}</option>", state.as_str());
    }
    let repository = filter.repository.as_deref().unwrap_or("");
    let _ = write!(
        body,
        "</select></label><label>Repository<input name=\"repository\" placeholder=\"owner/name\" \
         value=\"{}\" size=\"24\"></label>",
        escape_html(repository)
    );
    if filter.limit != DEFAULT_JOB_LIMIT {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"limit\" value=\"{}\">",
            filter.limit
        );
    }
    body.push_str("<button type=\"submit\">Filter</button></form>");
    if jobs.is_empty() {
        body.push_str("<p class=\"muted\" id=\"empty\">No jobs match.</p>");
        return page("Jobs", true, &body);
    }
    body.push_str(
        "<div class=\"table\"><table id=\"jobs\"><thead><tr><th>Job</th><th>State</th><th>Repository</th>\
         <th>Issue</th><th class=\"wide\">Attempts</th><th class=\"wide\">Created</th><th>Error</th></tr>\
         </thead><tbody>",
    );
    for job in jobs {
        let id = text(&job["job_id"]);
        let error = text(&job["error"]);
        let _ = write!(
            body,
            "<tr data-job-id=\"{id_attr}\"><td class=\"id\"><a href=\"/jobs/{href}\">{id_attr}</a></td>\
             <td>{state}</td><td>{repository}</td><td>{issue}</td><td class=\"wide\">{attempts}</td>\
             <td class=\"wide\">{created}</td><td class=\"error\" title=\"{error}\">{error}</td></tr>",
            id_attr = escape_html(&id),
            href = url_part(&id),
            state = state_badge(&text(&job["state"])),
            repository = escape_html(&text(&job["repository"])),
            issue = issue_link(job, issues_at),
            attempts = escape_html(&text(&job["attempts"])),
            created = escape_html(&text(&job["created_at"])),
            error = escape_html(&error),
        );
    }
    body.push_str("</tbody></table></div>");
    page("Jobs", true, &body)
}

/// The page of one job (its view as JSON), with the buttons its state allows.
pub(crate) fn job(job: &Value, issues_at: Option<&str>) -> String {
    let id = text(&job["job_id"]);
    let state = text(&job["state"]);
    let mut body = format!("<h1>Job {}</h1>", escape_html(&id));
    body.push_str("<dl id=\"job\">");
    let _ = write!(body, "<dt>State</dt><dd>{}</dd>", state_badge(&state));
    let rows = [
        ("Repository", escape_html(&text(&job["repository"]))),
        ("Issue", issue_link(job, issues_at)),
        ("Attempts", escape_html(&text(&job["attempts"]))),
        ("Delivery", escape_html(&text(&job["delivery_id"]))),
        ("Installation", escape_html(&text(&job["installation_id"]))),
        ("Created", escape_html(&text(&job["created_at"]))),
        ("Started", escape_html(&text(&job["started_at"]))),
        ("Finished", escape_html(&text(&job["finished_at"]))),
        ("Next attempt", escape_html(&text(&job["retry_at"]))),
    ];
    for (name, value) in rows {
        if !value.is_empty() {
            let _ = write!(body, "<dt>{name}</dt><dd>{value}</dd>");
        }
    }
    body.push_str("</dl>");
    let parsed = state.parse::<JobState>().ok();
    let href = url_part(&id);
    body.push_str("<div class=\"actions\">");
    if parsed.is_some_and(JobState::is_retryable) {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/jobs/{href}/retry\"><button id=\"retry\" type=\"submit\">\
             Retry</button></form>"
        );
    }
    if parsed.is_some_and(|state| !state.is_final()) {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/jobs/{href}/cancel\"><button id=\"cancel\" class=\"danger\" \
             type=\"submit\">Cancel</button></form>"
        );
    }
    body.push_str("</div>");
    let error = text(&job["error"]);
    if !error.is_empty() {
        let _ = write!(
            body,
            "<h2>Error</h2><pre id=\"error\">{}</pre>",
            escape_html(&error)
        );
    }
    let output = text(&job["output"]);
    if output.is_empty() {
        body.push_str("<h2>Output</h2><p class=\"muted\">Nothing printed.</p>");
    } else {
        let _ = write!(
            body,
            "<h2>Output <span class=\"muted\">(the end of the last attempt's)</span></h2>\
             <pre id=\"output\">{}</pre>",
            escape_html(&output)
        );
    }
    body.push_str("<p><a href=\"/\">All jobs</a></p>");
    // A job that may still change refreshes itself.
    page(
        &format!("Job {id}"),
        parsed.is_some_and(|state| !state.is_final()),
        &body,
    )
}

/// A page saying what went wrong (a refused retry, an unknown job), with a way back.
pub(crate) fn message(title: &str, message: &str, back: &str) -> String {
    let body = format!(
        "<h1>{}</h1><p id=\"message\">{}</p><p><a href=\"{}\">Back</a></p>",
        escape_html(title),
        escape_html(message),
        escape_html(back)
    );
    page(title, false, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html_leaves_no_markup_and_keeps_the_rest() {
        assert_eq!(
            escape_html(r#"<a href="x" title='y'>Tom & Jerry ✓</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry ✓&lt;/a&gt;"
        );
        assert_eq!(escape_html("&amp;"), "&amp;amp;");
    }

    #[test]
    fn everything_shown_is_escaped() {
        let job = serde_json::json!({
            "job_id": "1-<script>",
            "state": "failed",
            "attempts": 1,
            "issue_number": 1,
            "repository": "octo/\"repo\"",
            "error": "<img src=x onerror=alert(1)>",
            "output": "a & b </pre>",
        });
        let html = super::job(&job, Some("https://github.com"));
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("1-&lt;script&gt;"));
        assert!(html.contains("a &amp; b &lt;/pre&gt;"));
        assert!(html.contains("action=\"/jobs/1-%3Cscript%3E/retry\""));
        assert!(
            !html.contains("id=\"cancel\""),
            "a failed job cannot be cancelled"
        );
        let list = super::list(&[job], &JobFilter::default(), None);
        assert!(!list.contains("<img"));
        assert!(list.contains("http-equiv=\"refresh\""));
    }
}
