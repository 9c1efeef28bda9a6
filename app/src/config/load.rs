//! Reading `strata.toml` into [`Config`]: the file, the top-level keys, the repositories
//! and the notification channels (projects are in [`super::project`]).
//!
//! Everything found wrong is collected (see [`super::error`]); a config with any error is
//! not returned at all, so that nothing ever runs on half a config. Relative paths in the
//! file are relative to the file's directory. Files that hold secrets must exist and be
//! closed to group and others (`chmod 600`), as ssh insists for keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_storage::RemoteOptions;
use toml::de::DeTable;

use super::context::{Cx, PASSWORD, SIGNING_SECRET, WEBHOOK_URL};
use super::error::{ConfigErrors, Sink};
use super::model::*;
use super::project;
use super::reader::{Table, Val};
use crate::ops::Event;
use crate::repo::CachePlace;
use crate::{RepoSpec, SecretRef};

/// Reads and checks the config at `path` (None: [`default_path`]); every problem found is
/// reported, not only the first.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    let file = path.map(Path::to_path_buf).unwrap_or_else(default_path);
    let file = std::path::absolute(&file).unwrap_or(file);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigErrors::whole_file(
                &file,
                "no such file: write the config there, or name it with --config FILE (or \
                 STRATA_CONFIG)",
            ))
        }
        Err(e) => {
            return Err(ConfigErrors::whole_file(
                &file,
                format!("cannot read it: {e}"),
            ))
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(ConfigErrors::whole_file(&file, "is not UTF-8 text"));
    };
    parse(&file, &text)
}

/// `/etc/strata/strata.toml` for root, else `$XDG_CONFIG_HOME/strata/strata.toml` (else
/// `~/.config/strata/strata.toml`).
pub fn default_path() -> PathBuf {
    defaults_for(nix::unistd::geteuid().is_root(), &env_var).0
}

/// Where the catalog and run locks are when `state-dir` is not given: `/var/lib/strata`
/// for root, else `$XDG_STATE_HOME/strata` (else `~/.local/state/strata`).
pub fn default_state_dir() -> PathBuf {
    defaults_for(nix::unistd::geteuid().is_root(), &env_var).1
}

fn env_var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The default config file and state directory for root or not, with the environment
/// `env` (a relative XDG directory is ignored, as the XDG spec says; without a home the
/// system's places are used).
fn defaults_for(root: bool, env: &dyn Fn(&str) -> Option<PathBuf>) -> (PathBuf, PathBuf) {
    let system = (
        PathBuf::from("/etc/strata/strata.toml"),
        PathBuf::from("/var/lib/strata"),
    );
    if root {
        return system;
    }
    let xdg = |var: &str, fallback: &str| {
        env(var)
            .filter(|p| p.is_absolute())
            .or_else(|| env("HOME").map(|h| h.join(fallback)))
    };
    (
        xdg("XDG_CONFIG_HOME", ".config").map_or(system.0, |d| d.join("strata/strata.toml")),
        xdg("XDG_STATE_HOME", ".local/state").map_or(system.1, |d| d.join("strata")),
    )
}

/// Reads a config from its text; `file` names it in errors and is the base of relative
/// paths. Nothing on any input panics.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut sink = Sink::new(file, text);
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in &syntax {
            let message: Vec<&str> = e.message().lines().map(str::trim).collect();
            let message = message.join("; ");
            sink.error(
                &e.span().unwrap_or(0..0),
                "",
                message.trim_matches(&[' ', ';'][..]),
            );
        }
        return Err(sink.finish());
    }
    let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut cx = Cx { sink, base };
    let mut top = Table::new(String::new(), root.span(), root.get_ref());
    let state_dir = top
        .get("state-dir")
        .and_then(|v| cx.path(&v))
        .unwrap_or_else(default_state_dir);
    let mut repositories = BTreeMap::new();
    if let Some(mut t) = top.get("repositories").and_then(|v| v.table(&mut cx.sink)) {
        for (name, v) in t.rest() {
            cx.name(&name, "repository");
            if let Some(spec) = repository(&mut cx, &v) {
                repositories.insert(name.v, spec);
            }
        }
    }
    let mut notifications = BTreeMap::new();
    if let Some(mut t) = top.get("notifications").and_then(|v| v.table(&mut cx.sink)) {
        for (name, v) in t.rest() {
            cx.name(&name, "notification");
            if let Some(n) = notification(&mut cx, &name.v, &v) {
                notifications.insert(name.v, n);
            }
        }
    }
    let server = top
        .get("server")
        .and_then(|v| super::server::server(&mut cx, &v))
        .unwrap_or_default();
    let names = project::Names {
        repositories: repositories.keys().cloned().collect(),
        notifications: notifications.keys().cloned().collect(),
    };
    let defaults_top = top.get("defaults");
    let mut projects_table = top.get("projects").and_then(|v| v.table(&mut cx.sink));
    let defaults_nested = projects_table.as_mut().and_then(|t| t.get("defaults"));
    if let (Some(_), Some(nested)) = (&defaults_top, &defaults_nested) {
        cx.sink.error(
            &nested.span(),
            &nested.key,
            "defaults given twice: here and as [defaults]; keep one",
        );
    }
    let defaults = match defaults_top.or(defaults_nested) {
        Some(v) => v
            .table(&mut cx.sink)
            .map(|t| project::RawProject::read(&mut cx, t, &names, true))
            .unwrap_or_default(),
        None => project::RawProject::default(),
    };
    let mut projects = BTreeMap::new();
    if let Some(mut t) = projects_table {
        for (name, v) in t.rest() {
            cx.name(&name, "project");
            let Some(table) = v.table(&mut cx.sink) else {
                continue;
            };
            let (key, span) = (table.key.clone(), table.span.clone());
            let raw = project::RawProject::read(&mut cx, table, &names, false);
            if let Some(p) = raw.over(&defaults).resolve(&mut cx, &name.v, &key, &span) {
                projects.insert(name.v, p);
            }
        }
        t.finish(&mut cx.sink);
    }
    top.finish(&mut cx.sink);
    if !cx.sink.is_empty() {
        return Err(cx.sink.finish());
    }
    Ok(Config {
        file: file.to_path_buf(),
        state_dir,
        server,
        repositories,
        notifications,
        projects,
    })
}

fn repository(cx: &mut Cx, v: &Val) -> Option<RepoSpec> {
    let mut t = v.table(&mut cx.sink)?;
    let url = cx
        .required(&mut t, "url")
        .and_then(|v| v.text(&mut cx.sink));
    let password = cx.secret(&mut t, PASSWORD);
    if matches!(password, Ok(None)) {
        cx.sink.error(
            &t.span,
            &t.key,
            "needs a password: give one of password-file, password-command, password-env",
        );
    }
    let mut spec = RepoSpec::new(String::new());
    if let Some(v) = t.get("connections") {
        spec.connections = v.int(&mut cx.sink, 1..65).map(|n| n.v as u16);
    }
    if let Some(v) = t.get("verify-uploads") {
        spec.verify_uploads = v.bool(&mut cx.sink).is_some_and(|b| b.v);
    }
    let mut remote = RemoteOptions::default();
    if let Some(v) = t.get("ssh-key") {
        remote.ssh_key = cx.path(&v).map(|p| p.to_string_lossy().into_owned());
    }
    if let Some(v) = t.get("s3-endpoint") {
        remote.s3_endpoint = cx.url(&v, false);
    }
    if let Some(v) = t.get("s3-region") {
        remote.s3_region = v.text(&mut cx.sink).map(|s| s.v);
    }
    spec.remote = remote;
    if let Some(v) = t.get("limit-upload") {
        spec.limit_upload_kib = v.int(&mut cx.sink, 1..u64::MAX).map(|n| n.v);
    }
    if let Some(v) = t.get("limit-download") {
        spec.limit_download_kib = v.int(&mut cx.sink, 1..u64::MAX).map(|n| n.v);
    }
    if let Some(v) = t.get("cache-dir") {
        if let Some(dir) = cx.path(&v) {
            spec.cache = CachePlace::Dir(dir);
        }
    }
    t.finish(&mut cx.sink);
    let url = url?;
    // A local path: relative to the config's directory, like every other path.
    spec.location = if url.v.contains("://") || Path::new(&url.v).is_absolute() {
        url.v
    } else {
        cx.base.join(&url.v).to_string_lossy().into_owned()
    };
    spec.password = password.ok().flatten();
    Some(spec)
}

fn notification(cx: &mut Cx, name: &str, v: &Val) -> Option<Notification> {
    let mut t = v.table(&mut cx.sink)?;
    let kinds: Vec<(&str, Val)> = ["email", "slack", "webhook", "ping"]
        .into_iter()
        .filter_map(|k| t.get(k).map(|v| (k, v)))
        .collect();
    let on = t.get("on").and_then(|v| events(cx, &v));
    let channel = match kinds.as_slice() {
        [] => {
            cx.sink
                .error(&t.span, &t.key, "give one of email, slack, webhook or ping");
            None
        }
        [(kind, v)] => match *kind {
            "email" => email(cx, v).map(Channel::Email),
            "slack" => slack(cx, v),
            "webhook" => webhook(cx, v),
            _ => ping(cx, v),
        },
        [_, (_, second), ..] => {
            cx.sink.error(
                &second.span(),
                &second.key,
                "a notification is one channel: give only one of email, slack, webhook or ping \
                 (make another [notifications.NAME] for the other)",
            );
            None
        }
    };
    t.finish(&mut cx.sink);
    let channel = channel?;
    let on = on.unwrap_or_else(|| {
        let mut on = Event::default_on();
        if matches!(channel, Channel::Ping { .. }) {
            on.extend([Event::Start, Event::Success, Event::Failure]);
        }
        on.sort();
        on.dedup();
        on
    });
    Some(Notification {
        name: name.to_string(),
        channel,
        on,
    })
}

fn events(cx: &mut Cx, v: &Val) -> Option<Vec<Event>> {
    let names = v.strings(&mut cx.sink)?;
    let mut on = Vec::new();
    for n in names {
        match Event::parse(n.v.trim()) {
            Some(e) if !on.contains(&e) => on.push(e),
            Some(_) => {}
            None => {
                let all: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
                cx.sink.error(
                    &n.span,
                    &n.key,
                    format!("unknown event `{}`; the events are {}", n.v, all.join(", ")),
                );
            }
        }
    }
    Some(on)
}

fn email(cx: &mut Cx, v: &Val) -> Option<Email> {
    let mut t = v.table(&mut cx.sink)?;
    let smtp = cx
        .required(&mut t, "smtp")
        .and_then(|v| v.text(&mut cx.sink));
    let starttls = t.get("starttls").and_then(|v| v.bool(&mut cx.sink));
    let user = t.get("user").and_then(|v| v.text(&mut cx.sink));
    let password = cx.secret(&mut t, PASSWORD);
    let from = cx
        .required(&mut t, "from")
        .and_then(|v| v.text(&mut cx.sink));
    let to_val = cx.required(&mut t, "to");
    let to = to_val.as_ref().and_then(|v| v.strings(&mut cx.sink));
    if let (Some(v), Some(to)) = (&to_val, &to) {
        if to.is_empty() {
            cx.sink
                .error(&v.span(), &v.key, "name at least one address");
        }
    }
    let ca_file = t.get("ca-file").and_then(|v| {
        let path = cx.path(&v)?;
        if !path.is_file() {
            cx.sink
                .error(&v.span(), &v.key, format!("{} is no file", path.display()));
        }
        Some(path)
    });
    let mut ok = true;
    let starttls_on = starttls.as_ref().is_none_or(|s| s.v);
    if let Some(s) = &smtp {
        let lower = s.v.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("smtp://")
            .or_else(|| lower.strip_prefix("smtps://"));
        match rest {
            Some(rest) if !rest.is_empty() => {
                let host = smtp_host(rest);
                if lower.starts_with("smtp://") && !starttls_on && !is_loopback(host) {
                    let at = starttls.as_ref().map_or(s.span.clone(), |b| b.span.clone());
                    let key = starttls.as_ref().map_or(s.key.clone(), |b| b.key.clone());
                    cx.sink.error(
                        &at,
                        &key,
                        format!(
                            "starttls = false would send mail (and the password) to {host} in \
                             the clear; only a server on this machine may go without TLS: set \
                             starttls = true, or use smtps://"
                        ),
                    );
                    ok = false;
                }
            }
            _ => {
                cx.sink.error(
                    &s.span,
                    &s.key,
                    format!(
                        "`{}` must be smtp://HOST[:PORT] or smtps://HOST[:PORT]",
                        s.v
                    ),
                );
                ok = false;
            }
        }
    }
    if let (None, Ok(Some(_))) = (&user, &password) {
        cx.sink.error(
            &t.span,
            &t.key,
            "a password is given but no `user` to log in as",
        );
        ok = false;
    }
    t.finish(&mut cx.sink);
    if !ok {
        return None;
    }
    Some(Email {
        smtp: smtp?.v,
        starttls: starttls_on,
        user: user.map(|u| u.v),
        password: password.ok()?,
        from: from?.v,
        to: to?.into_iter().map(|s| s.v).collect(),
        ca_file,
    })
}

/// The host of `host[:port][/...]` (`[::1]` for IPv6).
fn smtp_host(rest: &str) -> &str {
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    hostport.split(':').next().unwrap_or(hostport)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn slack(cx: &mut Cx, v: &Val) -> Option<Channel> {
    let mut t = v.table(&mut cx.sink)?;
    let url = cx.secret(&mut t, WEBHOOK_URL);
    if let (Ok(Some(SecretRef::Inline(s))), Some(v)) = (&url, t.get("webhook-url")) {
        if !String::from_utf8_lossy(s.as_bytes()).starts_with("https://") {
            cx.sink.error(
                &v.span(),
                &v.key,
                "a Slack webhook URL starts with https://",
            );
        }
    }
    if matches!(url, Ok(None)) {
        cx.sink.error(
            &t.span,
            &t.key,
            "give one of webhook-url, webhook-url-file, webhook-url-command, webhook-url-env",
        );
    }
    t.finish(&mut cx.sink);
    Some(Channel::Slack {
        webhook_url: url.ok()??,
    })
}

fn webhook(cx: &mut Cx, v: &Val) -> Option<Channel> {
    let mut t = v.table(&mut cx.sink)?;
    let url = cx.required(&mut t, "url").and_then(|v| cx.url(&v, true));
    let secret = cx.secret(&mut t, SIGNING_SECRET);
    t.finish(&mut cx.sink);
    Some(Channel::Webhook {
        url: url?,
        secret: secret.ok()?,
    })
}

fn ping(cx: &mut Cx, v: &Val) -> Option<Channel> {
    let mut t = v.table(&mut cx.sink)?;
    let url = cx.required(&mut t, "url").and_then(|v| cx.url(&v, true));
    t.finish(&mut cx.sink);
    Some(Channel::Ping { url: url? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_places_follow_root_and_xdg() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| PathBuf::from(v))
            }
        };
        let p = |s: &str| PathBuf::from(s);
        let all = env(&[
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/cfg"),
            ("XDG_STATE_HOME", "/st"),
        ]);
        assert_eq!(
            defaults_for(true, &all),
            (p("/etc/strata/strata.toml"), p("/var/lib/strata"))
        );
        assert_eq!(
            defaults_for(false, &all),
            (p("/cfg/strata/strata.toml"), p("/st/strata"))
        );
        let relative = env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "cfg")]);
        assert_eq!(
            defaults_for(false, &relative),
            (
                p("/home/u/.config/strata/strata.toml"),
                p("/home/u/.local/state/strata")
            )
        );
        assert_eq!(
            defaults_for(false, &env(&[])),
            (p("/etc/strata/strata.toml"), p("/var/lib/strata"))
        );
    }
}
