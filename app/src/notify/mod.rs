//! Notifications: email, Slack, signed webhooks and dead-man pings, retried, recorded,
//! never failing the run that sends them.
//!
//! A [`Dispatcher`] is the [`Notifier`] of a config: for each channel a notice names whose
//! `on` list has the notice's event, it sends, and retries a failed send three times after
//! 1 s, 4 s and 16 s (`STRATA_NOTIFY_BACKOFF_MS` sets the first wait, for tests; each next
//! one is four times longer), each attempt bounded by [`ATTEMPT_TIMEOUT`]. Then it records
//! a [`RecordBody::Notify`] with the number of attempts and the last error. Channels are
//! served side by side.
//!
//! Threads and runtimes: the HTTP channels are async (reqwest), mail is blocking (lettre),
//! run on a blocking thread. [`Dispatcher::notify_async`] runs on the caller's tokio runtime
//! (a server); [`Notifier::notify`] runs on a small runtime of the dispatcher's own, made
//! when first needed — from a thread of its own when called inside a runtime, since a
//! runtime cannot be blocked on from within one.
//!
//! Secrets: a webhook's secret, a Slack URL and an SMTP password are read when sent, and
//! no error shows one: URLs in errors keep only their scheme, host and port.
//!
//! The webhook's JSON body and headers are documented in `docs/notifications.md`.

mod email;
mod http;
mod message;

pub use http::{signature, EVENT_HEADER, SIGNATURE_HEADER};
pub use message::{redact_url, WebhookBody};

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::config::{Channel, Config, Notification};
use crate::ops::{Event, Nothing, Notice, Notifier, Record, RecordBody, Recorder};
use crate::{AppError, Result};

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The waits before each retry (scaled by [`BACKOFF_VAR`]).
pub const BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(16),
];
/// Milliseconds of the first wait between attempts (default 1000); the others scale with it.
pub const BACKOFF_VAR: &str = "STRATA_NOTIFY_BACKOFF_MS";

/// Sends notices to a config's channels (see the module docs).
pub struct Dispatcher {
    inner: Arc<Inner>,
    /// Made when [`Notifier::notify`] first needs it.
    runtime: OnceLock<std::result::Result<tokio::runtime::Runtime, String>>,
}

struct Inner {
    channels: BTreeMap<String, Notification>,
    recorder: Arc<dyn Recorder>,
    backoff: Vec<Duration>,
    timeout: Duration,
    client: OnceLock<std::result::Result<reqwest::Client, String>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("channels", &self.inner.channels.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Dispatcher {
    /// A dispatcher for `cfg`'s channels that records each delivery in `recorder`.
    pub fn new(cfg: &Config, recorder: Arc<dyn Recorder>) -> Dispatcher {
        Dispatcher {
            inner: Arc::new(Inner {
                channels: cfg.notifications.clone(),
                recorder,
                backoff: backoff_from_env(),
                timeout: ATTEMPT_TIMEOUT,
                client: OnceLock::new(),
            }),
            runtime: OnceLock::new(),
        }
    }

    /// [`Notifier::notify`] on the caller's runtime.
    pub async fn notify_async(&self, channels: &[String], notice: &Notice) {
        let mut set = tokio::task::JoinSet::new();
        for name in channels {
            let inner = Arc::clone(&self.inner);
            let Some(n) = inner.channels.get(name) else {
                tracing::warn!("notification {name:?} is not defined in the config");
                inner.record(
                    name,
                    notice,
                    0,
                    Err(format!("no notification named {name:?}")),
                );
                continue;
            };
            if !n.on.contains(&notice.event) || !channel_reports(&n.channel, notice.event) {
                continue;
            }
            let (name, notice) = (name.clone(), notice.clone());
            set.spawn(async move {
                let (attempts, outcome) = inner.deliver(&name, &notice).await;
                let record_inner = Arc::clone(&inner);
                let _ = tokio::task::spawn_blocking(move || {
                    record_inner.record(&name, &notice, attempts, outcome)
                })
                .await;
            });
        }
        while let Some(done) = set.join_next().await {
            if let Err(e) = done {
                tracing::error!("a notification task failed: {e}");
            }
        }
    }

    /// Runs `fut` to its end on this dispatcher's own runtime, from a thread of its own
    /// when the caller is inside a runtime; None when no runtime could be made.
    fn run_blocking<F>(&self, fut: F) -> Option<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("strata-notify")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        });
        let runtime = match runtime {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("notifications: cannot start a runtime: {e}");
                return None;
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(|| runtime.block_on(fut)).join().ok())
        } else {
            Some(runtime.block_on(fut))
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime: let it go.
        if let Some(Ok(rt)) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Notifier for Dispatcher {
    fn notify(&self, channels: &[String], notice: &Notice) {
        self.run_blocking(self.notify_async(channels, notice));
    }
}

/// Whether `channel` has anything to send on `event` (pings report start, success and
/// failure only).
fn channel_reports(channel: &Channel, event: Event) -> bool {
    match channel {
        Channel::Ping { .. } => http::ping_suffix(event).is_some(),
        _ => true,
    }
}

fn backoff_from_env() -> Vec<Duration> {
    let first_ms = std::env::var(BACKOFF_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    match first_ms {
        Some(ms) => (0..BACKOFF.len() as u32)
            .map(|i| Duration::from_millis(ms.saturating_mul(4u64.pow(i))))
            .collect(),
        None => BACKOFF.to_vec(),
    }
}

impl Inner {
    fn client(&self) -> std::result::Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| http::client(self.timeout))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Sends with retries: the number of attempts and the last outcome.
    async fn deliver(&self, name: &str, notice: &Notice) -> (u32, std::result::Result<(), String>) {
        let Some(n) = self.channels.get(name) else {
            return (0, Err(format!("no notification named {name:?}")));
        };
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome =
                match tokio::time::timeout(self.timeout, self.attempt(&n.channel, notice)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {} s", self.timeout.as_secs())),
                };
            match outcome {
                Ok(()) => {
                    tracing::info!(
                        "notification {name}: {} sent (attempt {attempts})",
                        notice.event.name()
                    );
                    return (attempts, Ok(()));
                }
                Err(e) => {
                    let wait = self.backoff.get(attempts as usize - 1).copied();
                    tracing::warn!(
                        "notification {name}: {} not sent (attempt {attempts}): {e}",
                        notice.event.name()
                    );
                    match wait {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => return (attempts, Err(e)),
                    }
                }
            }
        }
    }

    /// One attempt on one channel.
    async fn attempt(&self, channel: &Channel, notice: &Notice) -> std::result::Result<(), String> {
        match channel {
            Channel::Webhook { url, secret } => {
                http::webhook(self.client()?, url, secret.as_ref(), notice).await
            }
            Channel::Slack { webhook_url } => {
                http::slack(self.client()?, webhook_url, notice).await
            }
            Channel::Ping { url } => http::ping(self.client()?, url, notice).await,
            Channel::Email(e) => {
                let (e, notice, timeout) = (e.clone(), notice.clone(), self.timeout);
                tokio::task::spawn_blocking(move || email::send(&e, &notice, timeout))
                    .await
                    .map_err(|e| format!("the mail task failed: {e}"))?
            }
        }
    }

    /// Records a delivery; a recorder that fails is logged (a notification never fails its
    /// caller).
    fn record(
        &self,
        name: &str,
        notice: &Notice,
        attempts: u32,
        outcome: std::result::Result<(), String>,
    ) {
        let record = delivery_record(name, notice, attempts, outcome);
        if let Err(e) = self.recorder.record(record) {
            tracing::warn!("notification {name}: cannot record the delivery: {e}");
        }
    }
}

/// The record of one delivery, at the notice's time: the caller's clock (`--now`) decides
/// both.
fn delivery_record(
    name: &str,
    notice: &Notice,
    attempts: u32,
    outcome: std::result::Result<(), String>,
) -> Record {
    Record {
        time_ns: notice.time_ns,
        project: (!notice.project.is_empty()).then(|| notice.project.clone()),
        repository: notice.repository.clone(),
        run_id: notice.run_id.clone(),
        ok: outcome.is_ok(),
        error: outcome.err(),
        user: None,
        body: RecordBody::Notify {
            channel: name.to_string(),
            event: notice.event,
            attempts,
        },
    }
}

/// `strata notify test NAME`: sends a test notice of `event` to the channel `name` now,
/// whatever its `on` list says, with the normal retries; nothing is recorded.
pub fn send_test(cfg: &Config, name: &str, event: Event) -> Result<()> {
    let Some(n) = cfg.notifications.get(name) else {
        let known: Vec<&str> = cfg.notifications.keys().map(String::as_str).collect();
        return Err(AppError::Invalid(format!(
            "no notification named {name:?} in {} (defined: {})",
            cfg.file.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if !channel_reports(&n.channel, event) {
        return Err(AppError::Invalid(format!(
            "{name} is a ping, which reports start, success, recovered and failure only; \
             try --event failure"
        )));
    }
    let dispatcher = Dispatcher::new(cfg, Arc::new(Nothing));
    let notice = test_notice(name, event);
    let outcome = dispatcher.run_blocking(async {
        let (_, outcome) = dispatcher.inner.deliver(name, &notice).await;
        outcome
    });
    match outcome {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(AppError::Notify(format!("notification {name}: {e}"))),
        None => Err(AppError::Notify(format!(
            "notification {name}: no runtime to send it on"
        ))),
    }
}

fn test_notice(name: &str, event: Event) -> Notice {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "this host".into());
    Notice {
        event,
        project: "test".into(),
        repository: None,
        run_id: None,
        snapshot_ids: Vec::new(),
        bytes_read: 0,
        bytes_added: 0,
        duration_ns: 0,
        error: (event == Event::Failure).then(|| "(a test: nothing failed)".to_string()),
        summary: format!("A test notification from strata on {host} (strata notify test {name})"),
        time_ns: crate::ops::Clock::system().now_ns(),
    }
}
