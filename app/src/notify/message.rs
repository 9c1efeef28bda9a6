//! What a notice looks like on each channel: the webhook's JSON body (a documented
//! contract, see `docs/notifications.md`), the text of a mail or a Slack message, and the
//! redaction of URLs in error messages.

use serde::Serialize;

use crate::ops::Notice;

/// The JSON body of a webhook, one object per notice. Stable: receiving apps parse it.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    /// `failure`, `success`, … ([`crate::ops::Event::name`]).
    pub event: &'static str,
    pub project: &'a str,
    pub repository: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub snapshot_ids: &'a [String],
    pub bytes_read: u64,
    pub bytes_added: u64,
    /// Seconds, with fractions.
    pub duration_s: f64,
    pub error: Option<&'a str>,
    pub summary: &'a str,
    /// RFC 3339, UTC.
    pub time: String,
}

impl<'a> WebhookBody<'a> {
    pub fn new(notice: &'a Notice) -> Self {
        WebhookBody {
            event: notice.event.name(),
            project: &notice.project,
            repository: notice.repository.as_deref(),
            run_id: notice.run_id.as_ref().map(|r| r.as_str()),
            snapshot_ids: &notice.snapshot_ids,
            bytes_read: notice.bytes_read,
            bytes_added: notice.bytes_added,
            duration_s: notice.duration_ns as f64 / 1e9,
            error: notice.error.as_deref(),
            summary: &notice.summary,
            time: rfc3339(notice.time_ns),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

pub fn rfc3339(time_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(time_ns))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `[strata] shop: failure`
pub fn subject(notice: &Notice) -> String {
    format!("[strata] {}: {}", notice.project, notice.event.name())
}

/// The plain-text body of a mail: the summary, then every field of the notice.
pub fn text_body(notice: &Notice) -> String {
    let mut s = String::new();
    s.push_str(&notice.summary);
    s.push_str("\n\n");
    let mut line = |k: &str, v: &str| {
        s.push_str(&format!("{k:<12}{v}\n"));
    };
    line("event:", notice.event.name());
    line("project:", &notice.project);
    if let Some(r) = &notice.repository {
        line("repository:", r);
    }
    if let Some(r) = &notice.run_id {
        line("run:", r.as_str());
    }
    if !notice.snapshot_ids.is_empty() {
        line("snapshots:", &notice.snapshot_ids.join(" "));
    }
    if notice.bytes_read > 0 || notice.bytes_added > 0 {
        line("read:", &format!("{} bytes", notice.bytes_read));
        line("added:", &format!("{} bytes", notice.bytes_added));
    }
    if notice.duration_ns > 0 {
        line(
            "duration:",
            &format!("{:.1} s", notice.duration_ns as f64 / 1e9),
        );
    }
    line("time:", &rfc3339(notice.time_ns));
    if let Some(e) = &notice.error {
        s.push_str("\nerror:\n");
        for l in e.lines() {
            s.push_str("  ");
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}

/// A Slack message's text: the subject, the summary and the error.
pub fn slack_text(notice: &Notice) -> String {
    let mut s = format!("*{}* {}", subject(notice), notice.summary);
    if let Some(e) = &notice.error {
        s.push_str("\n```\n");
        s.push_str(e);
        s.push_str("\n```");
    }
    s
}

/// A URL as errors may show it: scheme, host and port only. Its user info, path and
/// query are secrets (a Slack webhook's path, a ping's UUID, a token in a query).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let tail = if u.path() != "/" || u.query().is_some() {
                "/…"
            } else {
                ""
            };
            format!("{}://{host}{port}{tail}", u.scheme())
        }
        Err(_) => "<an invalid URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_only_scheme_host_and_port() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:8080/x?token=1"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(redact_url("https://example.com"), "https://example.com");
        assert_eq!(redact_url("not a url secret"), "<an invalid URL>");
    }
}
