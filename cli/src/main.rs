//! `strata`: the command-line front end. It parses arguments, opens the repository, calls
//! the engine and renders results; it holds no backup logic of its own.

// The only module allowed `unsafe`: one mallopt call (see its docs).
#[allow(unsafe_code)]
mod alloc;
mod commands;
mod mount;
mod open;
mod output;
mod password;
mod progress;
mod values;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use strata_db::{DbError, ErrorKind as DbKind};
use strata_engine::{EngineError, ErrorKind};
use strata_storage::{ErrorKind as StorageKind, StorageError};

/// Exit codes, as restic users already script against them.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FATAL: u8 = 1;
    pub const PARTIAL: u8 = 3;
    pub const NO_REPOSITORY: u8 = 10;
    pub const LOCKED: u8 = 11;
    pub const WRONG_PASSWORD: u8 = 12;
}

/// Strata: deduplicating, encrypted backups of file trees and streams.
///
/// The repository is given with -r/--repo or --repo-file (STRATA_REPOSITORY,
/// STRATA_REPOSITORY_FILE); the password comes from --password-file or --password-command
/// (STRATA_PASSWORD_FILE, STRATA_PASSWORD_COMMAND), STRATA_PASSWORD, or a prompt on a
/// terminal. An option on the command line wins over the environment; two sources of the
/// same thing on the command line, or two in the environment, are a usage error. Empty
/// passwords are refused unless --insecure-no-password is given.
///
/// Exit codes: 0 ok, 1 fatal error, 2 bad usage (an unknown option, or a value that cannot
/// be read, such as --time or --keep-within), 3 snapshot written but some sources were
/// unreadable, 10 no repository at the location (nothing there, or a file in the way), 11
/// repository locked, 12 wrong password.
#[derive(Debug, Parser)]
#[command(name = "strata", version, long_version = env!("STRATA_LONG_VERSION"), max_term_width = 100)]
pub struct Cli {
    /// Repository location: a directory path, file:///path, sftp://user@host[:port]/path
    /// (key login, host checked against known_hosts; STRATA_SSH_KEY names a key file) or
    /// s3://bucket/prefix (credentials, region and endpoint from AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL).
    #[arg(short = 'r', long = "repo", env = "STRATA_REPOSITORY", global = true)]
    pub repo: Option<String>,

    /// File whose first line is the repository location (instead of -r/--repo).
    #[arg(
        long,
        env = "STRATA_REPOSITORY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub repo_file: Option<std::path::PathBuf>,

    /// File holding the repository password (first line). Only its owner should be able
    /// to read it (chmod 600): strata warns otherwise.
    #[arg(
        long,
        env = "STRATA_PASSWORD_FILE",
        global = true,
        hide_env_values = true
    )]
    pub password_file: Option<std::path::PathBuf>,

    /// Shell command whose output is the password. It is killed if it has not finished
    /// after 60 s (STRATA_PASSWORD_COMMAND_TIMEOUT sets another limit, e.g. `5m`).
    #[arg(
        long,
        env = "STRATA_PASSWORD_COMMAND",
        global = true,
        hide_env_values = true
    )]
    pub password_command: Option<String>,

    /// Use no password: `init` creates a repository without one, other commands open such
    /// a repository. Insecure: whoever can read the repository's files can read the data.
    /// Without it, an empty password (an empty file, a command printing nothing, Enter at
    /// the prompt) is refused. (The password itself may also be given in STRATA_PASSWORD,
    /// which every process of the same user can read in /proc/PID/environ.)
    #[arg(long, global = true)]
    pub insecure_no_password: bool,

    /// The repository password's source after the rules above (`None`: a prompt, or none
    /// with --insecure-no-password); set by `open::resolve_sources`.
    #[arg(skip)]
    pub password_source: Option<strata_app::SecretRef>,

    /// Show no progress (and list nothing for -v). Without a terminal on stderr (cron, a
    /// pipe) progress is not shown anyway: only warnings and errors, without colour
    /// (NO_COLOR also turns colour off on a terminal).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Say more: `backup -v` lists the new and modified files (`new       /path`,
    /// `modified  /path`) on stdout, -vv unchanged ones too; with --json they are
    /// `verbose_status` lines on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When the repository is locked by another process, keep retrying for this long
    /// (e.g. `10m`) instead of failing at once.
    #[arg(long, global = true, value_name = "DURATION")]
    pub retry_lock: Option<humantime::Duration>,

    /// Do not lock the repository: for commands that only read it (restore to a
    /// directory, dump, ls, check, mount, find, diff, stats, cat, verify) on a read-only
    /// medium or with read-only credentials. A prune running at the same time is not
    /// excluded. (Reading commands also go on without a lock, with a warning, when they
    /// cannot write one.)
    #[arg(long, global = true)]
    pub no_lock: bool,

    /// Show times in UTC instead of local time (the TZ variable, else the system's zone).
    /// JSON output always has RFC 3339 times in UTC (`2025-01-31T03:00:00Z`).
    #[arg(long, global = true)]
    pub utc: bool,

    /// Packs uploaded at once (default: 1 for a local repository, 2 for a remote one).
    #[arg(long, global = true, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: Option<u16>,

    /// After every upload, read the object back and check its hash (doubles the traffic).
    #[arg(long, global = true)]
    pub verify_uploads: bool,

    /// Limit uploads to the repository to this many KiB/s (all connections together).
    #[arg(long, global = true, value_name = "KiB/s",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_upload: Option<u64>,

    /// Limit downloads from the repository to this many KiB/s (all connections together).
    #[arg(long, global = true, value_name = "KiB/s",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_download: Option<u64>,

    /// S3 endpoint URL, for S3-compatible servers (default: AWS_ENDPOINT_URL, else AWS).
    #[arg(long, global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// S3 region (default: AWS_REGION, else us-east-1).
    #[arg(long, global = true, value_name = "REGION")]
    pub s3_region: Option<String>,

    /// SSH private key for sftp:// repositories (default: STRATA_SSH_KEY, else ssh's own).
    #[arg(long, global = true, value_name = "FILE")]
    pub ssh_key: Option<String>,

    /// Use no local cache: read index files, snapshots and trees of a remote repository
    /// from the repository every time.
    #[arg(long, env = "STRATA_NO_CACHE", global = true,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub no_cache: bool,

    /// Keep the local cache of remote repositories in DIR (default: $XDG_CACHE_HOME/strata,
    /// else ~/.cache/strata).
    #[arg(long, env = "STRATA_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<std::path::PathBuf>,

    /// The config file of `run`, `health`, `log`, `schedule`, `config` and `notify`
    /// (default: /etc/strata/strata.toml for root, else $XDG_CONFIG_HOME/strata/strata.toml).
    #[arg(long, env = "STRATA_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// Pretend it is this time (`2026-12-06 03:00`, local time unless a zone or offset is
    /// given) for `run`, `health`, `log`, `stats` and `schedule`: new snapshots get it as their
    /// time and schedules, retention and health are judged at it; time runs on from there.
    /// For trying a config over simulated days, and for tests.
    #[arg(long, env = "STRATA_NOW", global = true, value_name = "TIME")]
    pub now: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Where the local cache is, after --no-cache and --cache-dir.
    pub fn cache_place(&self) -> strata_app::CachePlace {
        match (&self.cache_dir, self.no_cache) {
            (_, true) => strata_app::CachePlace::Off,
            (Some(d), false) => strata_app::CachePlace::Dir(d.clone()),
            (None, false) => strata_app::CachePlace::Default,
        }
    }

    /// The clock after --now (a time that cannot be read is a usage error, exit 2).
    pub fn clock(&self) -> strata_app::ops::Clock {
        let Some(now) = &self.now else {
            return strata_app::ops::Clock::system();
        };
        let tz = jiff::tz::TimeZone::system();
        match strata_engine::retention::parse_time(now, &tz) {
            Ok(t) => strata_app::ops::Clock::starting_at(t),
            Err(e) => usage_error(format!("--now {now:?}: {e}")),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(commands::init::Args),
    Backup(commands::backup::Args),
    Snapshots(commands::snapshots::Args),
    Ls(commands::ls::Args),
    Mount(commands::mount::Args),
    Restore(commands::restore::Args),
    Dump(commands::dump::Args),
    Cat(commands::cat::Args),
    Check(commands::check::Args),
    Copy(commands::copy::Args),
    Forget(commands::forget::Args),
    Hold(commands::hold::Args),
    Prune(commands::prune::Args),
    Repair(commands::repair::Args),
    Unlock(commands::unlock::Args),
    Find(commands::find::Args),
    Diff(commands::diff::Args),
    Stats(commands::stats::Args),
    Key(commands::key::Args),
    Verify(commands::verify::Args),
    Version(commands::version::Args),
    Generate(commands::generate::Args),
    Tag(commands::tag::Args),
    Rewrite(commands::rewrite::Args),
    List(commands::list::Args),
    Cache(commands::cache::Args),
    Run(commands::run::Args),
    Config(commands::config::Args),
    Schedule(commands::schedule::Args),
    Health(commands::health::Args),
    Log(commands::log::Args),
    Notify(commands::notify::Args),
    Serve(commands::serve::Args),
    Pg(commands::pg::Args),
    Migrate(commands::migrate::Args),
}

/// Reports a usage error the way clap does (to stderr, exit code 2) and exits.
pub fn usage_error(message: impl std::fmt::Display) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

/// The application error as the exit codes read it: engine failures stay engine errors;
/// a request that cannot be done is a usage error (exit 2).
pub fn app_error(e: strata_app::AppError) -> anyhow::Error {
    match e {
        strata_app::AppError::Engine(e) => e.into(),
        strata_app::AppError::Invalid(msg) => crate::usage_error(msg),
        other => other.into(),
    }
}

/// The engine error a link of an error chain is: an `EngineError` itself, or the one an
/// application error carries (`AppError::Engine` is transparent, so the engine error is
/// never a link of its own in the chain).
fn engine_error<'a>(c: &'a (dyn std::error::Error + 'static)) -> Option<&'a EngineError> {
    c.downcast_ref::<EngineError>()
        .or(match c.downcast_ref::<strata_app::AppError>() {
            Some(strata_app::AppError::Engine(e)) => Some(e),
            _ => None,
        })
}

fn exit_code_for(e: &anyhow::Error) -> u8 {
    // A repository path that is a file: nothing of a repository can be there. The check is
    // made when the storage backend is built, before any engine call.
    let not_a_directory = e.chain().any(|c| {
        let storage = c.downcast_ref::<StorageError>().or(match engine_error(c) {
            Some(EngineError::Storage(s)) => Some(s),
            _ => None,
        });
        storage.is_some_and(|s| s.kind == StorageKind::NotADirectory)
    });
    if not_a_directory {
        return exit::NO_REPOSITORY;
    }
    // A database error that is the engine's keeps its kind; one of the database's own
    // (unavailable, invalid) is fatal.
    let kind = match e.downcast_ref::<DbError>().map(DbError::kind) {
        Some(DbKind::Engine(kind)) => Some(kind),
        Some(_) => None,
        None => engine_error(e.as_ref()).map(EngineError::kind),
    };
    match kind {
        Some(ErrorKind::RepoNotFound) => exit::NO_REPOSITORY,
        Some(ErrorKind::Locked) => exit::LOCKED,
        Some(ErrorKind::WrongPassword) => exit::WRONG_PASSWORD,
        _ => exit::FATAL,
    }
}

/// Whether the error is our standard output closing early (`strata ls | head`), which is
/// not a failure. A broken pipe to anything else (a dump or load tool, storage) is one.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    // An engine error other than writing standard output, or any other application error
    // (a storage failure through `AppError` included), is a failure however it was caused.
    let elsewhere = e.chain().any(|c| {
        let other_app_error = c
            .downcast_ref::<strata_app::AppError>()
            .is_some_and(|a| !matches!(a, strata_app::AppError::Engine(_)));
        other_app_error
            || engine_error(c).is_some_and(|engine| {
                !matches!(engine, EngineError::Io { path, .. } if path.as_os_str() == "standard output")
            })
    });
    !elsewhere
        && e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                || c.downcast_ref::<serde_json::Error>()
                    .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
        })
}

/// Whether log lines may carry colour: only for a person at a terminal. Written to a file,
/// a pipe, a journal or mail, escape codes are noise (and NO_COLOR turns them off anyway).
fn log_colours() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    alloc::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,openssh_sftp_client=off,openssh=off,sqlx=error",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(log_colours())
        .init();
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `version`, `generate`, `cache` and the commands of strata.toml need no repository
    // from the command line: a broken repository file or password setting must not stop
    // them.
    if !matches!(
        cli.command,
        Command::Version(_)
            | Command::Generate(_)
            | Command::Cache(_)
            | Command::Run(_)
            | Command::Config(_)
            | Command::Schedule(_)
            | Command::Health(_)
            | Command::Log(_)
            | Command::Notify(_)
            | Command::Serve(_)
            | Command::Pg(_)
    ) {
        if let Err(e) = open::resolve_sources(&mut cli, &matches) {
            eprintln!("strata: {}", output::one_line(&e));
            return ExitCode::from(exit::FATAL);
        }
    }
    // Tree walks recurse once per directory level; give them the stack the engine asks for.
    let result = std::thread::Builder::new()
        .name("strata".into())
        .stack_size(strata_engine::STACK_SIZE)
        .spawn(move || commands::run(&cli))
        .map_err(anyhow::Error::from)
        .and_then(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error: the command panicked")))
        });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("strata: {}", output::one_line(&e));
            ExitCode::from(exit_code_for(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken_pipe() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe closed")
    }

    /// Our standard output closing early is no failure; a storage connection breaking under
    /// an application call is one, with the engine's exit code (a WAL push that exited 0
    /// there would tell PostgreSQL a segment was archived when it was not).
    #[test]
    fn a_broken_pipe_is_a_success_only_for_standard_output() {
        assert!(is_broken_pipe(&anyhow::Error::from(broken_pipe())));
        let storage =
            || EngineError::Storage(StorageError::from_io("write", "wal/ab", broken_pipe()));
        for e in [
            anyhow::Error::from(storage()),
            anyhow::Error::from(strata_app::AppError::Engine(storage())),
        ] {
            assert!(!is_broken_pipe(&e), "{e:#}");
            assert_eq!(exit_code_for(&e), exit::FATAL);
        }
        let locked = strata_app::AppError::Engine(EngineError::Locked {
            message: "locked".into(),
            holder: None,
        });
        assert_eq!(exit_code_for(&anyhow::Error::from(locked)), exit::LOCKED);
    }
}
