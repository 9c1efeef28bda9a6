//! Passwords on the command line: the repository's (`--password-file`,
//! `--password-command`, else a prompt on a terminal) and a database's
//! (`--db-password-file`, `--db-password-command`). Files and commands are read by
//! `strata_app::secret` (timeouts, never a command's text in an error, a warning for files
//! others may read); the prompt is the command line's own.
//!
//! A database password given in a URL on the command line can be read by every user of
//! the machine (`ps`) while strata runs: it is used, with a warning naming the options
//! that keep it off the command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use strata_app::SecretRef;
use strata_db::{Database, DbPassword};

use crate::Cli;

/// The repository password, from a file, a command, or a prompt (twice when `confirm`).
pub fn password(cli: &Cli, confirm: bool) -> Result<Vec<u8>> {
    password_from(
        cli.password_file.as_deref(),
        cli.password_command.as_deref(),
        confirm,
    )
}

/// A repository password from `file` (first line), else `command`'s output, else a prompt.
pub fn password_from(file: Option<&Path>, command: Option<&str>, confirm: bool) -> Result<Vec<u8>> {
    if let Some(file) = file {
        return read(SecretRef::File(file.to_path_buf()), "password file");
    }
    if let Some(cmd) = command {
        return read(SecretRef::Command(cmd.to_string()), "password command");
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password given: set STRATA_PASSWORD_FILE or STRATA_PASSWORD_COMMAND, or run on a terminal");
    }
    let pw = rpassword::prompt_password("repository password: ").context("reading password")?;
    if confirm {
        let again = rpassword::prompt_password("repeat password: ").context("reading password")?;
        if again != pw {
            bail!("the passwords do not match");
        }
    }
    Ok(pw.into_bytes())
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
        hide_env_values = true
    )]
    db_password_file: Option<PathBuf>,
    /// Shell command whose output is the database password (used when no
    /// --db-password-file is given).
    #[arg(
        long,
        value_name = "COMMAND",
        env = "STRATA_DB_PASSWORD_COMMAND",
        hide_env_values = true
    )]
    db_password_command: Option<String>,
}

impl DbPasswordArgs {
    /// Gives `db` (named on the command line by `flag`) its password: from
    /// --db-password-file or --db-password-command if given. A password in the URL itself
    /// is used with a warning; both at once are refused.
    pub fn apply(&self, db: &mut Database, flag: &str) -> Result<()> {
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
fn read(secret: SecretRef, what: &str) -> Result<Vec<u8>> {
    Ok(secret
        .read(what)
        .map_err(crate::open::app_error)?
        .into_bytes())
}
