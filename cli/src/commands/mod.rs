//! One module per subcommand.

pub mod backup;
pub mod cache;
pub mod cat;
pub mod check;
pub mod config;
pub mod copy;
pub mod diff;
pub mod dump;
mod dump_zip;
pub mod find;
pub mod forget;
pub mod generate;
pub mod health;
pub mod hold;
pub mod init;
pub mod key;
pub mod list;
pub mod log;
pub mod ls;
pub mod migrate;
pub mod mount;
pub mod notify;
pub mod pg;
pub mod pg_restore;
pub mod prune;
pub mod repair;
mod repair_config;
pub mod restore;
pub mod rewrite;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod snapshots;
pub mod stats;
pub mod tag;
pub mod unlock;
pub mod verify;
pub mod version;

use anyhow::Result;

use crate::{Cli, Command};

/// The help heading of the snapshot filters.
const FILTERS: &str =
    "Snapshot filters (with SNAPSHOT: they choose which one `latest` is; not with ids)";

/// `--host`, `--project`, `--tag`, `--path`: which snapshots a command considers. With
/// snapshot arguments they only narrow `latest` (the newest match); beside an id they are a
/// usage error (see `strata_engine::snapshots::Filter::check_specs`).
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotFilter {
    /// Only snapshots of this host.
    #[arg(long, help_heading = FILTERS)]
    host: Option<String>,
    /// Only snapshots of this project.
    #[arg(long, help_heading = FILTERS)]
    project: Option<String>,
    /// Only snapshots with this tag (repeatable: any of them).
    #[arg(long = "tag", help_heading = FILTERS)]
    tags: Vec<String>,
    /// Only snapshots whose backed-up paths include PATH (repeatable: all of them), as
    /// restic's --path: the path given to backup, not a file inside it.
    #[arg(long = "path", value_name = "PATH", help_heading = FILTERS)]
    paths: Vec<String>,
}

impl SnapshotFilter {
    /// The engine's filter. A relative --path is taken from the current directory, as
    /// backup records its paths (a database location, `scheme://…`, is kept as it is).
    pub fn engine(&self) -> strata_engine::snapshots::Filter {
        let paths = self
            .paths
            .iter()
            .map(|p| {
                if p.starts_with('/') || p.contains("://") {
                    return p.clone();
                }
                std::path::absolute(p)
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| p.clone())
            })
            .collect();
        strata_engine::snapshots::Filter {
            host: self.host.clone(),
            project: self.project.clone(),
            tags: self.tags.clone(),
            paths,
        }
    }

    /// The engine's filter for a command given `specs`: ids beside a filter are a usage
    /// error (exit code 2), before anything is opened.
    pub fn for_specs<S: AsRef<str>>(&self, specs: &[S]) -> strata_engine::snapshots::Filter {
        let filter = self.engine();
        if let Err(e) = filter.check_specs(specs) {
            crate::usage_error(e);
        }
        filter
    }
}

/// Records what a command did in the audit catalog of strata.toml (`--config`, or the
/// default file when it exists), best effort: without a config, or when the catalog cannot
/// be written, the command's result stands and a warning says why. The repository is named
/// as the config names it, else by its location.
pub fn audit(cli: &Cli, ok: bool, error: Option<String>, body: strata_app::ops::RecordBody) {
    let path = cli
        .config
        .clone()
        .unwrap_or_else(strata_app::config::default_path);
    if cli.config.is_none() && !path.exists() {
        return;
    }
    let cfg = match strata_app::config::load(Some(&path)) {
        Ok(cfg) => cfg,
        Err(e) => {
            tracing::warn!("not recorded in the audit catalog: {e}");
            return;
        }
    };
    let location = crate::open::location(cli).ok().map(str::to_string);
    let named = location.as_ref().and_then(|l| {
        cfg.repositories
            .iter()
            .find(|(_, spec)| &spec.location == l)
            .map(|(name, _)| name.clone())
    });
    let record = strata_app::ops::Record {
        time_ns: cli.clock().now_ns(),
        project: None,
        repository: named.or(location),
        run_id: None,
        ok,
        error,
        user: nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name),
        body,
    };
    strata_app::catalog::record_best_effort(&cfg.state_dir, &record);
}

/// Runs the chosen command; returns the exit code.
pub fn run(cli: &Cli) -> Result<u8> {
    crate::output::use_utc(cli.utc);
    match &cli.command {
        Command::Init(a) => init::run(cli, a),
        Command::Key(a) => key::run(cli, a),
        Command::Backup(a) => backup::run(cli, a),
        Command::Snapshots(a) => snapshots::run(cli, a),
        Command::Ls(a) => ls::run(cli, a),
        Command::Mount(a) => mount::run(cli, a),
        Command::Restore(a) => restore::run(cli, a),
        Command::Dump(a) => dump::run(cli, a),
        Command::Cat(a) => cat::run(cli, a),
        Command::Check(a) => check::run(cli, a),
        Command::Copy(a) => copy::run(cli, a),
        Command::Forget(a) => forget::run(cli, a),
        Command::Hold(a) => hold::run(cli, a),
        Command::Prune(a) => prune::run(cli, a),
        Command::Repair(a) => repair::run(cli, a),
        Command::Unlock(a) => unlock::run(cli, a),
        Command::Find(a) => find::run(cli, a),
        Command::Diff(a) => diff::run(cli, a),
        Command::Stats(a) => stats::run(cli, a),
        Command::Verify(a) => verify::run(cli, a),
        Command::Version(a) => version::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Tag(a) => tag::run(cli, a),
        Command::Rewrite(a) => rewrite::run(cli, a),
        Command::List(a) => list::run(cli, a),
        Command::Cache(a) => cache::run(cli, a),
        Command::Run(a) => run::run(cli, a),
        Command::Config(a) => config::run(cli, a),
        Command::Schedule(a) => schedule::run(cli, a),
        Command::Health(a) => health::run(cli, a),
        Command::Serve(a) => serve::run(cli, a),
        Command::Log(a) => log::run(cli, a),
        Command::Notify(a) => notify::run(cli, a),
        Command::Pg(a) => pg::run(cli, a),
        Command::Migrate(a) => migrate::run(cli, a),
    }
}
