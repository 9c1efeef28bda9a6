//! Passwords on the command line: the repository's and a database's
//! (`--db-password-file`, `--db-password-command`). Files and commands are read by
//! `strata_app::secret` (timeouts, never a command's text in an error, a warning for files
//! others may read); the prompt is the command line's own.
//!
//! The repository password comes from one source:
//! - on the command line: `--password-file FILE`, `--password-command CMD`, or
//!   `--insecure-no-password` (no password at all);
//! - else from the environment: `STRATA_PASSWORD_FILE`, `STRATA_PASSWORD_COMMAND` or
//!   `STRATA_PASSWORD` (the password itself: every process of the same user can read it
//!   in /proc/PID/environ, and every child strata starts inherits it);
//! - else a prompt on a terminal.
//!
//! A source on the command line wins over the environment (a one-off command need not
//! unset the profile's variables). Two sources on the command line, or two in the
//! environment, are a usage error (exit 2), never silently one of them. An empty password,
//! from wherever, is refused unless `--insecure-no-password` is given.
//!
//! A database password given in a URL on the command line can be read by every user of
//! the machine (`ps`) while strata runs: it is used, with a warning naming the options
//! that keep it off the command line.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use strata_app::{check_password, EmptyPassword, SecretRef};
use strata_db::{Database, DbPassword};

use crate::Cli;

/// The variable holding the repository password itself.
pub const PASSWORD_VAR: &str = "STRATA_PASSWORD";

/// Chooses the repository password's source (see the module docs) and leaves it in
/// `cli.password_source`; `--password-file` and `--password-command` keep only the chosen
/// one, for the commands that read them as defaults (`copy`). Err: a usage error.
pub fn resolve(cli: &mut Cli, matches: &ArgMatches) -> std::result::Result<(), String> {
    let source = |id: &str| matches.value_source(id);
    let file = cli.password_file.clone().map(SecretRef::File);
    let command = cli.password_command.clone().map(SecretRef::Command);
    let env_password = std::env::var_os(PASSWORD_VAR)
        .filter(|v| !v.is_empty())
        .map(|_| SecretRef::Env(PASSWORD_VAR.into()));
    // (what the user wrote, the source; None: no password at all)
    let mut flags: Vec<(&str, Option<SecretRef>)> = Vec::new();
    let mut vars: Vec<(&str, Option<SecretRef>)> = Vec::new();
    for (id, flag, var, secret) in [
        (
            "password_file",
            "--password-file",
            "STRATA_PASSWORD_FILE",
            file,
        ),
        (
            "password_command",
            "--password-command",
            "STRATA_PASSWORD_COMMAND",
            command,
        ),
    ] {
        match source(id) {
            Some(ValueSource::CommandLine) => flags.push((flag, secret)),
            Some(ValueSource::EnvVariable) => vars.push((var, secret)),
            _ => {}
        }
    }
    if cli.insecure_no_password {
        flags.push(("--insecure-no-password", None));
    }
    if let Some(secret) = env_password {
        vars.push((PASSWORD_VAR, Some(secret)));
    }
    // "A and B", "A, B and C"
    let names = |list: &[(&str, Option<SecretRef>)]| {
        let names: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => names.concat(),
        }
    };
    let chosen = if flags.len() > 1 {
        return Err(format!(
            "{} each give the repository password: give only one",
            names(&flags)
        ));
    } else if let Some((_, secret)) = flags.pop() {
        secret
    } else if vars.len() > 1 {
        return Err(format!(
            "{} are all set, and each gives the repository password: unset all but one (or \
             give --password-file or --password-command, which win over the environment)",
            names(&vars)
        ));
    } else {
        vars.pop().and_then(|(_, secret)| secret)
    };
    if !matches!(chosen, Some(SecretRef::File(_))) {
        cli.password_file = None;
    }
    if !matches!(chosen, Some(SecretRef::Command(_))) {
        cli.password_command = None;
    }
    cli.password_source = chosen;
    Ok(())
}

/// Whether `--insecure-no-password` allows an empty password.
pub fn empty_allowed(cli: &Cli) -> EmptyPassword {
    if cli.insecure_no_password {
        EmptyPassword::Allow
    } else {
        EmptyPassword::Refuse
    }
}

/// The repository password from the chosen source (or a prompt, twice when `confirm`).
pub fn password(cli: &Cli, confirm: bool) -> Result<Vec<u8>> {
    password_from(cli, cli.password_source.as_ref(), confirm)
}

/// A repository password from `source`; without one, none at all with
/// `--insecure-no-password`, else a prompt on a terminal. An empty password is refused
/// unless `--insecure-no-password` is given.
pub fn password_from(cli: &Cli, source: Option<&SecretRef>, confirm: bool) -> Result<Vec<u8>> {
    let (pw, from) = match source {
        Some(secret) => {
            let (what, from) = describe(secret);
            (read(secret.clone(), what)?, from)
        }
        None if cli.insecure_no_password => return Ok(Vec::new()),
        None => {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "no password given: use --password-file or --password-command, or set \
                     STRATA_PASSWORD_FILE, STRATA_PASSWORD_COMMAND or STRATA_PASSWORD, or run \
                     on a terminal"
                );
            }
            let pw = prompt("repository password: ", "repeat password: ", confirm)?;
            (pw, "prompt".to_string())
        }
    };
    check_password(&pw, &from, empty_allowed(cli), "--insecure-no-password")
        .map_err(crate::app_error)?;
    Ok(pw)
}

/// Asks for a password on the terminal; with `confirm`, a second time (`again`), and the
/// two must match.
pub fn prompt(ask: &str, again: &str, confirm: bool) -> Result<Vec<u8>> {
    let pw = rpassword::prompt_password(ask).context("reading the password")?;
    if confirm {
        let repeated = rpassword::prompt_password(again).context("reading the password")?;
        if repeated != pw {
            bail!("the passwords do not match");
        }
    }
    Ok(pw.into_bytes())
}

/// How a source is named: to its reader ("password file") and in the message about an
/// empty password ("STRATA_PASSWORD variable").
fn describe(secret: &SecretRef) -> (&'static str, String) {
    match secret {
        SecretRef::File(_) => ("password file", "password file".into()),
        SecretRef::Command(_) => ("password command", "password command".into()),
        SecretRef::Env(var) => ("password", format!("{var} variable")),
        SecretRef::Inline(_) => ("password", "config file".into()),
    }
}

/// `--db-password-file` and `--db-password-command`, for the commands that log in to a
/// database server.
#[derive(Debug, Clone, clap::Args)]
pub struct DbPasswordArgs {
    /// File holding the database password (first line), for PostgreSQL and MySQL URLs
    /// that carry none. Unlike a password in the URL, it is not visible in the process
    /// list. (Without it: PGPASSWORD or ~/.pgpass, MYSQL_PWD or ~/.my.cnf.)
    #[arg(
        long,
        value_name = "FILE",
        env = "STRATA_DB_PASSWORD_FILE",
        hide_env_values = true,
        conflicts_with = "db_password_command"
    )]
    db_password_file: Option<PathBuf>,
    /// Shell command whose output is the database password (not together with
    /// --db-password-file).
    #[arg(
        long,
        value_name = "COMMAND",
        env = "STRATA_DB_PASSWORD_COMMAND",
        hide_env_values = true
    )]
    db_password_command: Option<String>,
    /// Run the database's tools through this command, split into words as a shell would:
    /// `'docker exec -i shop-db'`, `'runuser -u postgres --'`, `'ssh db1'` (then without a
    /// password: ssh passes none on). For a database in a container or reachable only by
    /// a local socket (`postgres://app@/shop`: no host). Everything else asked of the
    /// database (the scratch database of a restore test, its row counts) goes through it
    /// too.
    #[arg(long, value_name = "COMMAND", env = "STRATA_DB_EXEC_PREFIX")]
    exec_prefix: Option<String>,
}

impl DbPasswordArgs {
    /// `db` (named on the command line by `flag`) with its password (see
    /// [`DbPasswordArgs::apply`]) and its tools run through --exec-prefix, if given.
    pub fn prepare(&self, mut db: Database, flag: &str) -> Result<Database> {
        self.apply(&mut db, flag)?;
        let Some(text) = &self.exec_prefix else {
            return Ok(db);
        };
        let Some(words) = shlex::split(text).filter(|w| !w.is_empty()) else {
            bail!("--exec-prefix {text:?}: not a command (unbalanced quotes?)");
        };
        let has_password = db.server_mut().is_some_and(|s| s.password().is_some());
        strata_db::check_prefix(&words, has_password)
            .map_err(|e| anyhow::anyhow!("{flag} with --exec-prefix: {e}"))?;
        Ok(db.through(words))
    }

    /// Gives `db` (named on the command line by `flag`) its password: from
    /// --db-password-file or --db-password-command if given. A password in the URL itself
    /// is used with a warning; both at once are refused.
    fn apply(&self, db: &mut Database, flag: &str) -> Result<()> {
        let tool_sources = db.tool_password_sources().unwrap_or_default();
        let Some(server) = db.server_mut() else {
            return Ok(());
        };
        let in_url = server.password().is_some();
        let given = match (&self.db_password_file, &self.db_password_command) {
            (Some(file), _) => Some(read(
                SecretRef::File(file.clone()),
                "database password file",
            )?),
            (None, Some(cmd)) => Some(read(
                SecretRef::Command(cmd.clone()),
                "database password command",
            )?),
            (None, None) => None,
        };
        match (in_url, given) {
            (true, Some(_)) => bail!(
                "the {flag} URL holds a password, and --db-password-file or \
                 --db-password-command gives one too: take it out of the URL"
            ),
            (true, None) => tracing::warn!(
                "the {flag} URL holds a password, which every user of this machine can read \
                 in the process list while strata runs; give it with --db-password-file or \
                 --db-password-command (STRATA_DB_PASSWORD_FILE, STRATA_DB_PASSWORD_COMMAND) \
                 instead, or in {}",
                tool_sources
            ),
            (false, Some(bytes)) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow::anyhow!("the database password is not UTF-8 text"))?;
                server.set_password(DbPassword::new(text));
            }
            (false, None) => {}
        }
        Ok(())
    }
}

/// Reads a secret (`what` names it in messages).
pub fn read(secret: SecretRef, what: &str) -> Result<Vec<u8>> {
    Ok(secret.read(what).map_err(crate::app_error)?.into_bytes())
}
