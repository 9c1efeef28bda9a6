//! Reading `strata.toml` into [`Config`]: the file, the top-level keys, the repositories
//! and the notification channels (projects are in [`super::project`]).
//!
//! Everything found wrong is collected (see [`super::error`]); a config with any error is
//! not returned at all, so that nothing ever runs on half a config. Relative paths in the
//! file are relative to the file's directory. Files that hold secrets must exist and be
//! closed to group and others (`chmod 600`), as ssh insists for keys.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_engine::retention::{parse_span, CalendarSpan};
use strata_storage::RemoteOptions;
use toml::de::DeTable;

use super::error::{ConfigErrors, Sink};
use super::model::*;
use super::project;
use super::reader::{Sv, Table, Val};
use crate::ops::Event;
use crate::repo::CachePlace;
use crate::{RepoSpec, Secret, SecretRef};

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
        repositories,
        notifications,
        projects,
    })
}

/// The reading context: where errors go and what relative paths are relative to.
pub(crate) struct Cx<'t> {
    pub sink: Sink<'t>,
    pub base: PathBuf,
}

/// The keys a secret may be given by: inline (where the contract allows it), a file, a
/// command or an environment variable.
#[derive(Clone, Copy)]
pub(crate) struct SecretKeys {
    pub inline: Option<&'static str>,
    pub file: &'static str,
    pub command: &'static str,
    pub env: &'static str,
}

pub(crate) const PASSWORD: SecretKeys = SecretKeys {
    inline: None,
    file: "password-file",
    command: "password-command",
    env: "password-env",
};

const WEBHOOK_URL: SecretKeys = SecretKeys {
    inline: Some("webhook-url"),
    file: "webhook-url-file",
    command: "webhook-url-command",
    env: "webhook-url-env",
};

const SIGNING_SECRET: SecretKeys = SecretKeys {
    inline: Some("secret"),
    file: "secret-file",
    command: "secret-command",
    env: "secret-env",
};

impl Cx<'_> {
    /// A name of a repository, notification or project: it becomes part of file names,
    /// tags and records.
    pub(crate) fn name(&mut self, name: &Sv<String>, what: &str) {
        let ok = !name.v.is_empty()
            && name.v.len() <= 64
            && name
                .v
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.sink.error(
                &name.span,
                &name.key,
                format!(
                    "a {what} name is letters, digits, `-`, `_` and `.`, starting with a letter \
                     or digit, at most 64 characters"
                ),
            );
        }
    }

    /// A required key: its value, or an error at the table naming what is missing.
    pub(crate) fn required<'a, 'i>(
        &mut self,
        t: &mut Table<'a, 'i>,
        name: &'static str,
    ) -> Option<Val<'a, 'i>> {
        let v = t.get(name);
        if v.is_none() {
            self.sink
                .error(&t.span, &t.key, format!("missing `{name}`"));
        }
        v
    }

    /// A path; relative ones are relative to the config file's directory.
    pub(crate) fn path(&mut self, v: &Val) -> Option<PathBuf> {
        let s = v.text(&mut self.sink)?;
        Some(self.base.join(s.v))
    }

    pub(crate) fn duration(&mut self, v: &Val) -> Option<Duration> {
        let s = v.text(&mut self.sink)?;
        match humantime::parse_duration(s.v.trim()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.sink.error(&s.span, &s.key, "must be longer than zero");
                None
            }
            Err(e) => {
                self.sink.error(
                    &s.span,
                    &s.key,
                    format!(
                        "`{}` is no duration ({e}); write it as `26h`, `90m` or `2h 30m`",
                        s.v
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn span(&mut self, v: &Val) -> Option<Sv<CalendarSpan>> {
        let s = v.text(&mut self.sink)?;
        match parse_span(&s.v) {
            Ok(span) => Some(s.map(|_| span)),
            Err(e) => {
                // The engine's message names the span and says how to write one.
                self.sink.error(&s.span, &s.key, e.to_string());
                None
            }
        }
    }

    pub(crate) fn schedule(&mut self, v: &Val) -> Option<Schedule> {
        let s = v.text(&mut self.sink)?;
        match Schedule::parse(&s.v) {
            Ok(schedule) => Some(schedule),
            Err(e) => {
                self.sink
                    .error(&s.span, &s.key, format!("bad schedule: {e}"));
                None
            }
        }
    }

    /// An `http://` or `https://` URL; `secret`: its text is not quoted in errors.
    fn url(&mut self, v: &Val, secret: bool) -> Option<String> {
        let s = v.text(&mut self.sink)?;
        let lower = s.v.to_ascii_lowercase();
        let host = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
            let shown = if secret {
                String::new()
            } else {
                format!("`{}` ", s.v)
            };
            self.sink.error(
                &s.span,
                &s.key,
                format!("{shown}is no URL: it must start with https:// (or http://) and a host"),
            );
            return None;
        }
        Some(s.v)
    }

    /// The secret given by one of `keys` (None: none given); two given is an error.
    /// `Err`: given, but wrong (reported).
    pub(crate) fn secret(
        &mut self,
        t: &mut Table,
        keys: SecretKeys,
    ) -> Result<Option<SecretRef>, ()> {
        let mut given: Vec<(&'static str, Val)> = Vec::new();
        for name in keys
            .inline
            .into_iter()
            .chain([keys.file, keys.command, keys.env])
        {
            if let Some(v) = t.get(name) {
                given.push((name, v));
            }
        }
        let all: Vec<&str> = keys
            .inline
            .into_iter()
            .chain([keys.file, keys.command, keys.env])
            .collect();
        let Some((name, v)) = given.first().cloned() else {
            return Ok(None);
        };
        if let Some((_, second)) = given.get(1) {
            self.sink.error(
                &second.span(),
                &second.key,
                format!("give only one of {}", all.join(", ")),
            );
            return Err(());
        }
        if Some(name) == keys.inline {
            // Not `text`: an error must not quote the secret.
            let Some(s) = v.str(&mut self.sink) else {
                return Err(());
            };
            if s.v.trim().is_empty() {
                self.sink.error(&s.span, &s.key, "must not be empty");
                return Err(());
            }
            return Ok(Some(SecretRef::Inline(Secret::new(s.v.into_bytes()))));
        }
        if name == keys.file {
            let path = self.path(&v).ok_or(())?;
            self.secret_file(&path, &v);
            return Ok(Some(SecretRef::File(path)));
        }
        let s = v.text(&mut self.sink).ok_or(())?;
        if name == keys.env {
            let ok = s.v.chars().next().is_some_and(|c| !c.is_ascii_digit())
                && s.v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                self.sink.error(
                    &s.span,
                    &s.key,
                    format!("`{}` is no environment variable's name", s.v),
                );
                return Err(());
            }
            return Ok(Some(SecretRef::Env(s.v)));
        }
        Ok(Some(SecretRef::Command(s.v)))
    }

    /// A file holding a secret must exist and be closed to group and others.
    pub(crate) fn secret_file(&mut self, path: &Path, v: &Val) {
        let shown = path.display();
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.sink
                    .error(&v.span(), &v.key, format!("{shown} does not exist"));
            }
            Err(e) => {
                self.sink
                    .error(&v.span(), &v.key, format!("{shown} cannot be read: {e}"));
            }
            Ok(m) if m.is_dir() => {
                self.sink
                    .error(&v.span(), &v.key, format!("{shown} is a directory"));
            }
            Ok(m) => {
                let mode = m.permissions().mode() & 0o7777;
                if m.is_file() && mode & 0o077 != 0 {
                    self.sink.error(
                        &v.span(),
                        &v.key,
                        format!(
                            "{shown} is open to its group or others (mode {mode:04o}); it \
                             holds a secret: chmod 600 {shown}"
                        ),
                    );
                }
            }
        }
    }
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
