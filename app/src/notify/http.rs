//! The channels that speak HTTP: generic webhooks (signed JSON), Slack incoming webhooks
//! and dead-man pings. One attempt each; the caller retries.

use std::error::Error as _;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::message::{redact_url, slack_text, WebhookBody};
use crate::ops::{Event, Notice};
use crate::SecretRef;

/// The header carrying `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Strata-Signature";
/// The header carrying the event's name.
pub const EVENT_HEADER: &str = "X-Strata-Event";

/// A client for every HTTP channel of a dispatcher: the per-attempt timeout, our user
/// agent, and no pooled connections (a notice is rare, and the client may be used from
/// more than one runtime).
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(0)
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {}", describe(e)))
}

/// `sha256=<hex>`: what [`SIGNATURE_HEADER`] carries.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs the notice's JSON to `url`, signed when a secret is given.
pub async fn webhook(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&SecretRef>,
    notice: &Notice,
) -> Result<(), String> {
    let body = WebhookBody::new(notice).to_bytes();
    let mut req = client
        .post(parse(url)?)
        .header("Content-Type", "application/json")
        .header(EVENT_HEADER, notice.event.name());
    if let Some(secret) = secret {
        let key = read_secret(secret, "webhook secret").await?;
        req = req.header(SIGNATURE_HEADER, signature(&key, &body));
    }
    send(req.body(body), url).await
}

/// POSTs `{"text": …}` to a Slack incoming webhook, whose URL is a secret.
pub async fn slack(
    client: &reqwest::Client,
    webhook_url: &SecretRef,
    notice: &Notice,
) -> Result<(), String> {
    let url = read_secret(webhook_url, "Slack webhook URL").await?;
    let url = String::from_utf8(url)
        .map_err(|_| "the Slack webhook URL is not UTF-8".to_string())?
        .trim()
        .to_string();
    let body = serde_json::json!({ "text": slack_text(notice) }).to_string();
    let req = client
        .post(parse(&url)?)
        .header("Content-Type", "application/json")
        .body(body);
    send(req, &url).await
}

/// The path a dead-man ping adds to its URL for `event` (healthchecks.io's convention),
/// or None for events pings do not report.
pub fn ping_suffix(event: Event) -> Option<&'static str> {
    match event {
        Event::Start => Some("/start"),
        Event::Success | Event::Recovered => Some(""),
        Event::Failure => Some("/fail"),
        Event::Warning | Event::Restore | Event::RestoreTest => None,
    }
}

/// Pings `URL/start`, `URL` or `URL/fail`, with the summary (and error) as the body.
pub async fn ping(client: &reqwest::Client, url: &str, notice: &Notice) -> Result<(), String> {
    let Some(suffix) = ping_suffix(notice.event) else {
        return Ok(());
    };
    let full = format!("{}{suffix}", url.trim_end_matches('/'));
    let mut body = notice.summary.clone();
    if let Some(e) = &notice.error {
        body.push('\n');
        body.push_str(e);
    }
    let req = client
        .post(parse(&full)?)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(body);
    send(req, &full).await
}

fn parse(url: &str) -> Result<reqwest::Url, String> {
    let u =
        reqwest::Url::parse(url).map_err(|e| format!("invalid URL {}: {e}", redact_url(url)))?;
    match u.scheme() {
        "http" | "https" => Ok(u),
        s => Err(format!(
            "{}: a {s}: URL; give an http(s) URL",
            redact_url(url)
        )),
    }
}

async fn read_secret(secret: &SecretRef, what: &'static str) -> Result<Vec<u8>, String> {
    let secret = secret.clone();
    tokio::task::spawn_blocking(move || secret.read(what))
        .await
        .map_err(|e| format!("reading the {what}: {e}"))?
        .map(|s| s.into_bytes())
        .map_err(|e| e.to_string())
}

/// Sends; a 2xx answer is success. Errors name the URL redacted.
async fn send(req: reqwest::RequestBuilder, url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{shown}: {}", describe(e)))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{shown} answered HTTP {status}"))
    }
}

/// A reqwest error without its URL (which may hold a secret), with its causes.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.ends_with(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn pings_report_start_success_and_failure_only() {
        assert_eq!(ping_suffix(Event::Start), Some("/start"));
        assert_eq!(ping_suffix(Event::Success), Some(""));
        assert_eq!(ping_suffix(Event::Recovered), Some(""));
        assert_eq!(ping_suffix(Event::Failure), Some("/fail"));
        assert_eq!(ping_suffix(Event::Warning), None);
    }
}
