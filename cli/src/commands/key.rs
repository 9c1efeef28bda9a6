//! `strata key`

use anyhow::{bail, Result};
use serde::Serialize;
use strata_engine::keys;
use strata_engine::Operation;
use strata_format::keyfile::KdfParams;

use strata_app::{check_password, EmptyPassword, SecretRef};

use crate::output::{json, rfc3339, time};
use crate::{exit, open, password, Cli};

/// Manage the repository's passwords (key files).
///
/// Every password is one key file wrapping the same master key, so adding or removing a
/// password never re-encrypts data. Each key records the host, user and time it was made.
/// The last key can never be removed, and neither can the key the command was opened with
/// (open with another password to remove it).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List the keys: id, host, user, creation time; `*` marks the one in use.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Add a password (a new key file).
    Add(NewPassword),
    /// Remove a key by id or unique prefix.
    Remove {
        /// Key id (see `strata key list`).
        id: String,
    },
    /// Change the password of the key in use: a new key is written, then the old one removed.
    Passwd(NewPassword),
}

#[derive(Debug, clap::Args)]
struct NewPassword {
    /// File holding the new password (first line); without it, asked twice on a terminal.
    #[arg(long, env = "STRATA_NEW_PASSWORD_FILE", hide_env_values = true)]
    new_password_file: Option<std::path::PathBuf>,
    /// Make the new key's password empty. Insecure: whoever can read the repository's
    /// files can then read its data. Without it, an empty new password is refused.
    #[arg(long, conflicts_with = "new_password_file")]
    new_insecure_no_password: bool,
    /// argon2id memory in KiB for the new key.
    #[arg(long, hide = true, default_value_t = KdfParams::DEFAULT.m_kib)]
    kdf_memory: u32,
    /// argon2id iterations for the new key.
    #[arg(long, hide = true, default_value_t = KdfParams::DEFAULT.t)]
    kdf_iterations: u32,
}

impl NewPassword {
    /// The new password: from the file, else asked twice on a terminal (none at all with
    /// --new-insecure-no-password; an empty one is refused otherwise). Read before the
    /// repository is locked, so that an unanswered prompt blocks nobody.
    fn read(&self) -> Result<(Vec<u8>, KdfParams)> {
        let kdf = KdfParams {
            m_kib: self.kdf_memory,
            t: self.kdf_iterations,
            p: 1,
        };
        if self.new_insecure_no_password {
            return Ok((Vec::new(), kdf));
        }
        let (pw, from) = match &self.new_password_file {
            Some(file) => (
                password::read(SecretRef::File(file.clone()), "new password file")?,
                "new password file",
            ),
            None => {
                use std::io::IsTerminal;
                if !std::io::stdin().is_terminal() {
                    bail!("no new password given: use --new-password-file or STRATA_NEW_PASSWORD_FILE, or run on a terminal");
                }
                let pw = password::prompt("new password: ", "repeat new password: ", true)?;
                (pw, "prompt")
            }
        };
        check_password(
            &pw,
            from,
            EmptyPassword::Refuse,
            "--new-insecure-no-password",
        )
        .map_err(crate::app_error)?;
        Ok((pw, kdf))
    }
}

#[derive(Serialize)]
struct KeyJson<'a> {
    id: &'a str,
    current: bool,
    created: String,
    host: &'a str,
    user: &'a str,
    error: Option<&'a str>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    match &args.action {
        Action::List { json: as_json } => {
            let (repo, _) = open::open(cli, Operation::KeyList)?;
            let list = keys::list(&repo)?;
            if *as_json {
                let items: Vec<KeyJson> = list
                    .iter()
                    .map(|k| KeyJson {
                        id: &k.id,
                        current: k.current,
                        created: rfc3339(k.created_ns),
                        host: &k.hostname,
                        user: &k.username,
                        error: k.error.as_deref(),
                    })
                    .collect();
                json(&items)?;
            } else {
                println!(" {:<8}  {:<20}  {:<16}  user", "id", "created", "host");
                for k in &list {
                    let mark = if k.current { '*' } else { ' ' };
                    match &k.error {
                        Some(e) => {
                            println!("{mark}{:<8}  unreadable: {e}", keys::short(&k.id))
                        }
                        None => println!(
                            "{mark}{:<8}  {:<20}  {:<16}  {}",
                            keys::short(&k.id),
                            time(k.created_ns),
                            k.hostname,
                            k.username
                        ),
                    }
                }
            }
        }
        Action::Add(new) => {
            let (pw, kdf) = new.read()?;
            let (repo, _lock) = open::open(cli, Operation::KeyAdd)?;
            let id = keys::add(&repo, &pw, kdf)?;
            if !cli.quiet {
                println!("added key {}", keys::short(&id));
            }
        }
        Action::Remove { id } => {
            let (repo, _lock) = open::open(cli, Operation::KeyRemove)?;
            let id = keys::resolve(&repo, id)?;
            keys::remove(&repo, &id)?;
            if !cli.quiet {
                println!("removed key {}", keys::short(&id));
            }
        }
        Action::Passwd(new) => {
            let (pw, kdf) = new.read()?;
            let (repo, _lock) = open::open(cli, Operation::KeyPasswd)?;
            let old = repo.key_name().to_string();
            let id = keys::change_password(&repo, &pw, kdf)?;
            if !cli.quiet {
                println!(
                    "changed the password: key {} replaces {}",
                    keys::short(&id),
                    keys::short(&old)
                );
            }
        }
    }
    Ok(exit::OK)
}
