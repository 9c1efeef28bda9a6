//! The repository named on the command line, opened through `strata-app` for an
//! operation: this module only turns flags and environment into a [`RepoSpec`] and a
//! password (a prompt is the command line's own), and application errors into ones the
//! exit codes understand.
//!
//! The location comes from `-r/--repo LOCATION` or `--repo-file FILE` (its first line) on
//! the command line, else from `STRATA_REPOSITORY` or `STRATA_REPOSITORY_FILE`. As with
//! passwords, the command line wins over the environment, and two sources at the same
//! level are a usage error.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use strata_app::repo::{self, OpenOptions, Opened, RepoSpec};
use strata_app::SecretRef;
use strata_engine::lock::LockGuard;
use strata_engine::{Operation, Repository};
use strata_storage::{Backend, RemoteOptions};

use crate::Cli;

// The password functions live in their own module; commands reach them here.
pub use crate::password::{password, password_from};

/// Chooses the repository location and password sources (see the module docs of this
/// module and of `password`): the location ends up in `cli.repo`. A usage error exits 2;
/// a repository file that cannot be read is an error.
pub fn resolve_sources(cli: &mut Cli, matches: &ArgMatches) -> Result<()> {
    crate::password::resolve(cli, matches).unwrap_or_else(|msg| crate::usage_error(msg));
    let from_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let (repo_flag, file_flag) = (from_command_line("repo"), from_command_line("repo_file"));
    let use_file = match (cli.repo.is_some(), cli.repo_file.is_some()) {
        (true, true) if repo_flag && file_flag => {
            crate::usage_error("-r/--repo and --repo-file each give the repository: give only one")
        }
        (true, true) if repo_flag => false,
        (true, true) if file_flag => true,
        (true, true) => crate::usage_error(
            "STRATA_REPOSITORY and STRATA_REPOSITORY_FILE are both set, and each gives the \
             repository: unset one (or give -r/--repo, which wins over the environment)",
        ),
        (_, has_file) => has_file,
    };
    if use_file {
        let file = cli
            .repo_file
            .as_deref()
            .expect("use_file: a repository file is given");
        cli.repo = Some(read_location(file)?);
    }
    Ok(())
}

/// The repository location in `file`: its first line, without surrounding blanks.
fn read_location(file: &Path) -> Result<String> {
    let text = std::fs::read(file)
        .with_context(|| format!("reading the repository file {}", file.display()))?;
    let text = String::from_utf8(text)
        .map_err(|_| anyhow::anyhow!("the repository file {} is not UTF-8 text", file.display()))?;
    let location = text.lines().next().unwrap_or("").trim();
    if location.is_empty() {
        bail!(
            "the repository file {} is empty: its first line should be the repository \
             location",
            file.display()
        );
    }
    Ok(location.to_string())
}

/// The `-r/--repo` location.
pub fn location(cli: &Cli) -> Result<&str> {
    match cli.repo.as_deref() {
        Some(l) => Ok(l),
        None => bail!(
            "no repository given: use -r/--repo or --repo-file, or set STRATA_REPOSITORY or \
             STRATA_REPOSITORY_FILE"
        ),
    }
}

/// A repository at `location` with the global options; its password from `file` or
/// `command`, else from the global source (when there is none, a prompt, read by
/// [`password_from`]).
pub fn spec_at(cli: &Cli, location: &str, file: Option<&Path>, command: Option<&str>) -> RepoSpec {
    RepoSpec {
        location: location.to_string(),
        password: match (file, command) {
            (Some(f), _) => Some(SecretRef::File(f.to_path_buf())),
            (None, Some(c)) => Some(SecretRef::Command(c.to_string())),
            (None, None) => cli.password_source.clone(),
        },
        remote: RemoteOptions {
            s3_endpoint: cli.s3_endpoint.clone(),
            s3_region: cli.s3_region.clone(),
            ssh_key: cli.ssh_key.clone(),
        },
        connections: cli.connections,
        verify_uploads: cli.verify_uploads,
        cache: cli.cache_place(),
        limit_upload_kib: cli.limit_upload,
        limit_download_kib: cli.limit_download,
    }
}

/// The storage of `-r/--repo` (`cache`: reads may use the local cache).
pub fn backend(cli: &Cli, cache: bool) -> Result<Arc<dyn Backend>> {
    let spec = spec_at(cli, location(cli)?, None, None);
    repo::backend(&spec, cache).map_err(crate::app_error)
}

/// Opens `-r/--repo` for `op`, with the global password options.
pub fn open(cli: &Cli, op: Operation) -> Result<(Repository, Option<LockGuard>)> {
    let spec = spec_at(cli, location(cli)?, None, None);
    open_spec(cli, &spec, op)
}

/// Opens a repository for `op` (its password from the spec, or a prompt).
pub fn open_spec(
    cli: &Cli,
    spec: &RepoSpec,
    op: Operation,
) -> Result<(Repository, Option<LockGuard>)> {
    let pw = password_from(cli, spec.password.as_ref(), false)?;
    let opts = OpenOptions {
        wait: cli.retry_lock.map(Into::into).unwrap_or_default(),
        no_lock: cli.no_lock,
        runtime: None,
    };
    let Opened { repo, lock } = repo::open(spec, &pw, op, &opts).map_err(crate::app_error)?;
    Ok((repo, lock))
}
