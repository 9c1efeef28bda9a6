//! The reading context of `strata.toml` ([`Cx`]): where errors go, what relative paths are
//! relative to, and how the values every part of the file shares are read (names, paths,
//! durations, schedules, URLs, secrets). The file's parts (`load`, `project`) use it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_engine::retention::{parse_span, CalendarSpan};

use super::error::Sink;
use super::model::*;
use super::reader::{Sv, Table, Val};
use crate::{Secret, SecretRef};

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

pub(crate) const WEBHOOK_URL: SecretKeys = SecretKeys {
    inline: Some("webhook-url"),
    file: "webhook-url-file",
    command: "webhook-url-command",
    env: "webhook-url-env",
};

pub(crate) const SIGNING_SECRET: SecretKeys = SecretKeys {
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
    pub(crate) fn url(&mut self, v: &Val, secret: bool) -> Option<String> {
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
