//! `booty recover [--since DURATION] [--dry-run]`: one recovery pass from the command line, printed.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use booty_queue::Timestamp;
use booty_service::{MissedOutcome, PassReport, Since};

use crate::config::Config;

/// Runs one pass with `config`'s hook and store and renders what it found and did.
pub(crate) async fn recover(
    config: &Config,
    since: Option<Duration>,
    dry_run: bool,
) -> anyhow::Result<PassReport> {
    let service = config.service()?;
    if service.recovery.is_none() {
        anyhow::bail!(
            "recovery is off: it needs a GitHub App's credentials (`github_app_id`, \
             `github_app_private_key_file`), or `github_token` with `recovery_hook`, and `recovery` not \
             set to false"
        );
    }
    let since = since.map_or(Since::Bookmark, Since::Ago);
    booty_service::recover_once(service, since, dry_run)
        .await
        .context("cannot recover deliveries")
}

/// One line per missed delivery, then the totals.
pub(crate) fn render(report: &PassReport, dry_run: bool) -> String {
    let mut out = String::new();
    if !report.ran {
        out.push_str("skipped: another booty process is recovering this hook now\n");
        return out;
    }
    for missed in &report.missed {
        let what = match &missed.outcome {
            MissedOutcome::Submitted { job_id } => format!("submitted job {job_id}"),
            MissedOutcome::WouldSubmit => "would submit".to_owned(),
            MissedOutcome::Ignored(reason) => format!("ignored: {reason}"),
            MissedOutcome::Duplicate { job_id } => format!("already accepted as job {job_id}"),
            MissedOutcome::Refused(why) => format!("refused: {why}"),
            MissedOutcome::NotSubmitted(why) => format!("not submitted: {why}"),
            _ => "?".to_owned(),
        };
        let _ = writeln!(
            out,
            "missed {} ({} {}, sent {}, attempt {}): {what}",
            missed.delivery_id,
            missed.event,
            missed.action.as_deref().unwrap_or("-"),
            Timestamp::from_system_time(missed.delivered_at),
            missed.attempt,
        );
    }
    let submitted = if dry_run {
        report
            .missed
            .iter()
            .filter(|missed| missed.outcome == MissedOutcome::WouldSubmit)
            .count()
    } else {
        report.submitted()
    };
    let _ = writeln!(
        out,
        "pages {} seen {} skipped {} missed {} {} {submitted}",
        report.pages,
        report.seen,
        report.skipped,
        report.missed.len(),
        if dry_run { "would_submit" } else { "submitted" },
    );
    if let Some(stopped) = &report.stopped {
        let _ = writeln!(out, "stopped early: {stopped}");
    }
    out
}

/// `90s`, `30m`, `6h`, `3d` or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 30m, 6h or 3d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_mins(30)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_hours(6)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_hours(72)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("3w").unwrap_err().contains("unit"));
        assert!(parse_duration("h").is_err());
    }
}
