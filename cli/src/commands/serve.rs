//! `strata serve`: the REST API and the web dashboard over the projects of `strata.toml`
//! (see `strata-server`); `strata serve token ...` manages the API tokens.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Result};
use strata_server::auth::tokens::TokenStore;
use strata_server::{Role, ServeOptions};

use crate::output::json;
use crate::Cli;

/// Serve the REST API (/api/v1) and the web dashboard for the projects of strata.toml.
///
/// Binds to 127.0.0.1:8080 unless --listen (or `[server] listen`) says otherwise; an address
/// other than loopback needs --tls-cert and --tls-key, or --insecure-http behind a reverse
/// proxy that terminates TLS. Prints `strata serve: listening on URL` once it listens;
/// SIGINT or SIGTERM stop it.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Address and port to listen on (port 0: any free one).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback.
    #[arg(long)]
    insecure_http: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// API tokens (Authorization: Bearer TOKEN), stored hashed in the state directory.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Users who log in to the dashboard ([server.users] in the config, argon2id hashes).
    #[command(subcommand)]
    User(UserCmd),
}

#[derive(Debug, clap::Subcommand)]
enum UserCmd {
    /// Add a user: asks for the password twice (or reads --password-file) and writes
    /// `[server.users.NAME] password-hash, role` into the config file, leaving the rest of
    /// the file as it was. A running server sees the user after a restart.
    Add {
        name: String,
        /// viewer, operator or admin.
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
        /// Read the password from this file (its first line), for scripts.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Replace the password and role of an existing user.
        #[arg(long)]
        force: bool,
    },
    /// List the users (names and roles; never the hashes).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
enum TokenCmd {
    /// Make a token; it is printed once and never again.
    Add {
        name: String,
        /// viewer, operator or admin.
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
        /// Print {"name", "role", "token"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the tokens (names and roles; never the tokens).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a token: it stops working at once, on a running server too.
    Remove { name: String },
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let cfg = match strata_app::config::load(cli.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("strata: {e}");
            return Ok(2);
        }
    };
    let tokens = TokenStore::load(&cfg.state_dir)?;
    match &args.command {
        Some(Sub::Token(TokenCmd::Add {
            name,
            role,
            json: as_json,
        })) => {
            let role = Role::parse(role).expect("clap checked the role");
            let created = jiff::Timestamp::now().to_string();
            let token = tokens.add(name, role, &created)?;
            if *as_json {
                json(&serde_json::json!({"name": name, "role": role, "token": token}))?;
            } else {
                println!("{token}");
                eprintln!("token {name} ({}): shown once; keep it now", role.name());
            }
            Ok(0)
        }
        Some(Sub::Token(TokenCmd::List { json: as_json })) => {
            let list = tokens.list();
            if *as_json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|t| serde_json::json!({"name": t.name, "role": t.role, "created": t.created}))
                    .collect();
                json(&rows)?;
            } else {
                for t in list {
                    println!("{}\t{}\t{}", t.name, t.role, t.created);
                }
            }
            Ok(0)
        }
        Some(Sub::Token(TokenCmd::Remove { name })) => {
            if !tokens.remove(name)? {
                bail!("no token named {name}");
            }
            Ok(0)
        }
        Some(Sub::User(cmd)) => user(cli, &cfg, cmd),
        None => {
            let listen = args
                .listen
                .or(cfg.server.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
            let opts = ServeOptions {
                listen,
                tls: args.tls_cert.clone().zip(args.tls_key.clone()),
                insecure_http: args.insecure_http,
            };
            let clock = cli.clock();
            strata_server::serve(
                move |handle| {
                    strata_server::AppState::new(
                        cfg,
                        strata_engine::EngineRuntime::from_handle(handle),
                        tokens,
                        clock,
                    )
                },
                opts,
            )?;
            Ok(0)
        }
    }
}

fn user(cli: &Cli, cfg: &strata_app::config::Config, cmd: &UserCmd) -> Result<u8> {
    match cmd {
        UserCmd::Add {
            name,
            role,
            password_file,
            force,
        } => {
            use strata_server::auth::users;
            let role = Role::parse(role).expect("clap checked the role");
            if !users::valid_name(name) {
                bail!(
                    "{name:?}: a user name is letters, digits, `-`, `_` and `.`, starting with \
                     a letter or digit, at most 64 characters"
                );
            }
            let path = cli
                .config
                .clone()
                .unwrap_or_else(strata_app::config::default_path);
            if cfg.server.users.contains_key(name) && !*force {
                bail!(
                    "user {name} exists in {}: --force replaces its password and role",
                    path.display()
                );
            }
            let password = match password_file {
                Some(f) => {
                    let text = std::fs::read_to_string(f)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                    text.lines().next().unwrap_or("").to_string()
                }
                None => {
                    let first = rpassword::prompt_password(format!("Password for {name}: "))
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "cannot ask for the password ({e}): give --password-file FILE"
                            )
                        })?;
                    let again = rpassword::prompt_password("Again: ")
                        .map_err(|e| anyhow::anyhow!("cannot ask for the password: {e}"))?;
                    if first != again {
                        bail!("the two passwords differ; nothing written");
                    }
                    first
                }
            };
            if password.chars().count() < users::MIN_PASSWORD_LEN {
                bail!(
                    "a password needs at least {} characters; nothing written",
                    users::MIN_PASSWORD_LEN
                );
            }
            let hash = users::hash_password(&password)?;
            let written = users::write_user(&path, name, role, &hash, *force)?;
            let what = match written {
                users::Written::Added => "added",
                users::Written::Replaced => "replaced",
            };
            eprintln!(
                "user {name} ({}) {what} in {}; restart strata serve to use it",
                role.name(),
                path.display()
            );
            Ok(0)
        }
        UserCmd::List { json: as_json } => {
            if *as_json {
                let rows: Vec<_> = cfg
                    .server
                    .users
                    .iter()
                    .map(|(name, u)| serde_json::json!({"name": name, "role": u.role}))
                    .collect();
                json(&rows)?;
            } else {
                for (name, u) in &cfg.server.users {
                    println!("{name}\t{}", u.role);
                }
            }
            Ok(0)
        }
    }
}
