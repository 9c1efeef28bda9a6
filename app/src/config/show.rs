//! The effective config (defaults merged, each repository's retention resolved, max-age
//! and the default check schedule filled in) as data, with every secret redacted:
//! `strata config show` prints it as TOML or JSON, a server would show the same.
//!
//! What is shown and what is not:
//! - References to secrets are shown (`password-file`, `password-command`, `password-env`
//!   and the like): they name where a secret is, not what it is.
//! - A secret written into the file (a webhook's `secret`) is [`REDACTED`].
//! - URLs lose the password of their userinfo (`sftp://u:<redacted>@host/…`) and their
//!   query (`?<redacted>`: tokens live there). Slack and ping URLs are secrets whole (the
//!   path is the credential): only scheme and host are shown (`https://hc-ping.com/…`).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::model::*;
use crate::{RepoSpec, SecretRef};

/// What stands in for a secret.
pub const REDACTED: &str = "<redacted>";

/// The effective config as JSON (kebab-case keys, as in the file).
pub fn effective(config: &Config) -> Value {
    let repositories: Map<String, Value> = config
        .repositories
        .iter()
        .map(|(name, spec)| (name.clone(), repository(spec)))
        .collect();
    let notifications: Map<String, Value> = config
        .notifications
        .iter()
        .map(|(name, n)| (name.clone(), notification(n)))
        .collect();
    let projects: Map<String, Value> = config
        .projects
        .iter()
        .map(|(name, p)| (name.clone(), project(p)))
        .collect();
    json!({
        "file": path(&config.file),
        "state-dir": path(&config.state_dir),
        "repositories": repositories,
        "notifications": notifications,
        "projects": projects,
    })
}

fn path(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

fn duration(d: Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

/// Inserts `key` (when `value` is not null).
fn put(m: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    let value = value.into();
    if !value.is_null() {
        m.insert(key.to_string(), value);
    }
}

/// A secret reference under the keys of `base` (`password` → `password-file`, …).
fn secret(m: &mut Map<String, Value>, base: &str, s: &SecretRef, inline: impl Fn(&str) -> String) {
    match s {
        SecretRef::File(f) => put(m, &format!("{base}-file"), path(f)),
        SecretRef::Command(c) => put(m, &format!("{base}-command"), c.as_str()),
        SecretRef::Env(v) => put(m, &format!("{base}-env"), v.as_str()),
        SecretRef::Inline(secret) => {
            put(m, base, inline(&String::from_utf8_lossy(secret.as_bytes())))
        }
    }
}

fn repository(spec: &RepoSpec) -> Value {
    let mut m = Map::new();
    put(&mut m, "url", redact_url(&spec.location));
    if let Some(s) = &spec.password {
        secret(&mut m, "password", s, |_| REDACTED.to_string());
    }
    put(&mut m, "connections", spec.connections.map(Value::from));
    if spec.verify_uploads {
        put(&mut m, "verify-uploads", true);
    }
    put(&mut m, "ssh-key", spec.remote.ssh_key.clone());
    put(
        &mut m,
        "s3-endpoint",
        spec.remote.s3_endpoint.as_deref().map(redact_url),
    );
    put(&mut m, "s3-region", spec.remote.s3_region.clone());
    put(&mut m, "limit-upload", spec.limit_upload_kib);
    put(&mut m, "limit-download", spec.limit_download_kib);
    if let crate::CachePlace::Dir(d) = &spec.cache {
        put(&mut m, "cache-dir", path(d));
    }
    Value::Object(m)
}

fn notification(n: &Notification) -> Value {
    let mut m = Map::new();
    let (kind, channel) = match &n.channel {
        Channel::Email(e) => {
            let mut c = Map::new();
            put(&mut c, "smtp", redact_url(&e.smtp));
            put(&mut c, "starttls", e.starttls);
            put(&mut c, "user", e.user.clone());
            if let Some(s) = &e.password {
                secret(&mut c, "password", s, |_| REDACTED.to_string());
            }
            put(&mut c, "from", e.from.as_str());
            put(&mut c, "to", e.to.clone());
            put(&mut c, "ca-file", e.ca_file.as_deref().map(path));
            ("email", c)
        }
        Channel::Slack { webhook_url } => {
            let mut c = Map::new();
            secret(&mut c, "webhook-url", webhook_url, host_only);
            ("slack", c)
        }
        Channel::Webhook { url, secret: s } => {
            let mut c = Map::new();
            put(&mut c, "url", redact_url(url));
            if let Some(s) = s {
                secret(&mut c, "secret", s, |_| REDACTED.to_string());
            }
            ("webhook", c)
        }
        Channel::Ping { url } => {
            let mut c = Map::new();
            put(&mut c, "url", host_only(url));
            ("ping", c)
        }
    };
    m.insert(kind.to_string(), Value::Object(channel));
    let on: Vec<&str> = n.on.iter().map(|e| e.name()).collect();
    put(&mut m, "on", on);
    Value::Object(m)
}

fn project(p: &Project) -> Value {
    let mut m = Map::new();
    put(
        &mut m,
        "schedule",
        p.schedule.as_ref().map(|s| s.text.clone()),
    );
    let mut databases = Vec::new();
    let mut commands = Vec::new();
    for source in &p.sources {
        match source {
            Source::Paths { paths, exclude } => {
                let paths: Vec<Value> = paths.iter().map(|p| path(p)).collect();
                put(&mut m, "paths", paths);
                if !exclude.is_empty() {
                    put(&mut m, "exclude", exclude.clone());
                }
            }
            Source::Database(d) => databases.push(database(d)),
            Source::Command { name, run } => {
                commands.push(json!({ "name": name, "run": run }));
            }
            // Shown as its table, `pitr`.
            Source::PgCluster(_) => {}
        }
    }
    if !databases.is_empty() {
        put(&mut m, "databases", databases);
    }
    if !commands.is_empty() {
        put(&mut m, "commands", commands);
    }
    put(&mut m, "repositories", p.repositories.clone());
    if !p.notify.is_empty() {
        put(&mut m, "notify", p.notify.clone());
    }
    put(&mut m, "max-age", p.max_age.map(duration));
    for (key, s) in [
        ("restore-test", &p.restore_test),
        ("check", &p.check),
        ("prune", &p.prune),
    ] {
        put(&mut m, key, s.as_ref().map(|s| s.text.clone()));
    }
    put(&mut m, "before", p.before.clone());
    put(&mut m, "after", p.after.clone());
    put(&mut m, "timeout", p.timeout.map(duration));
    if let Some(c) = &p.pitr {
        let mut t = Map::new();
        put(&mut t, "data-dir", path(&c.data_dir));
        put(&mut t, "url", redact_url(&c.url));
        if let Some(s) = &c.password {
            secret(&mut t, "password", s, |_| REDACTED.to_string());
        }
        put(&mut t, "stop-timeout", duration(c.stop_timeout));
        put(&mut t, "max-wal-age", c.max_wal_age.map(duration));
        put(&mut t, "prefetch", c.prefetch);
        put(&mut m, "pitr", Value::Object(t));
    }
    if !p.retention.is_empty() {
        let retention: Map<String, Value> = p
            .retention
            .iter()
            .map(|(repo, r)| (repo.clone(), retention(r)))
            .collect();
        put(&mut m, "retention", retention);
    }
    Value::Object(m)
}

fn database(d: &DatabaseSource) -> Value {
    let mut m = Map::new();
    put(&mut m, d.kind.name(), redact_url(&d.location));
    if let Some(s) = &d.password {
        secret(&mut m, "password", s, |_| REDACTED.to_string());
    }
    if !d.exec_prefix.is_empty() {
        put(&mut m, "exec-prefix", d.exec_prefix.clone());
    }
    put(&mut m, "scratch", d.scratch.as_deref().map(redact_url));
    Value::Object(m)
}

fn retention(r: &Retention) -> Value {
    let mut m = Map::new();
    let k = &r.keep;
    for (key, n) in [
        ("keep-last", k.last),
        ("keep-hourly", k.hourly),
        ("keep-daily", k.daily),
        ("keep-weekly", k.weekly),
        ("keep-monthly", k.monthly),
        ("keep-yearly", k.yearly),
    ] {
        if n > 0 {
            put(&mut m, key, n);
        }
    }
    put(&mut m, "keep-within", k.within.map(|s| s.to_string()));
    if !k.tags.is_empty() {
        put(&mut m, "keep-tag", k.tags.clone());
    }
    for hold in &r.holds {
        let rule = match hold.rule {
            KeepRule::Last => "hold-last",
            KeepRule::Hourly => "hold-hourly",
            KeepRule::Daily => "hold-daily",
            KeepRule::Weekly => "hold-weekly",
            KeepRule::Monthly => "hold-monthly",
            KeepRule::Yearly => "hold-yearly",
        };
        put(&mut m, rule, hold.span.to_string());
    }
    Value::Object(m)
}

/// `url` without the password of its userinfo and without its query; not a URL (a local
/// path): as it is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.find(['?', '#']) {
        Some(q) => format!("{}?{REDACTED}", &tail[..q]),
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Only the scheme and host of a URL that is a secret whole (`https://hc-ping.com/…`).
pub fn host_only(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return REDACTED.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}/…")
}

/// The JSON of [`effective`] as TOML: scalars and lists first, then a `[table]` for each
/// table; lists of tables inline.
pub fn to_toml(value: &Value) -> String {
    let mut out = String::new();
    if let Value::Object(m) = value {
        table(&mut out, "", m);
    }
    out
}

fn table(out: &mut String, path: &str, m: &Map<String, Value>) {
    // An empty table (no notifications) says nothing.
    if m.is_empty() {
        return;
    }
    let (tables, plain): (Vec<_>, Vec<_>) = m.iter().partition(|(_, v)| v.is_object());
    if !path.is_empty() && !plain.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("[{path}]\n"));
    }
    for (k, v) in plain {
        out.push_str(&format!("{} = {}\n", key(k), inline(v)));
    }
    for (k, v) in tables {
        let sub = if path.is_empty() {
            key(k)
        } else {
            format!("{path}.{}", key(k))
        };
        if let Value::Object(m) = v {
            table(out, &sub, m);
        }
    }
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Null => "\"\"".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords_and_queries() {
        assert_eq!(
            redact_url("sftp://u1234:hunter2@box.example:23/./strata"),
            "sftp://u1234:<redacted>@box.example:23/./strata"
        );
        assert_eq!(
            redact_url("sftp://u1234@box.example/strata"),
            "sftp://u1234@box.example/strata"
        );
        assert_eq!(
            redact_url("postgres://shop@db/shop?password=hunter2"),
            "postgres://shop@db/shop?<redacted>"
        );
        assert_eq!(redact_url("/srv/backup"), "/srv/backup");
        assert_eq!(
            host_only("https://hc-ping.com/0b1c-secret"),
            "https://hc-ping.com/…"
        );
        assert_eq!(host_only("not a url"), REDACTED);
    }
}
