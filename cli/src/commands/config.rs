//! `strata config check|show`: read strata.toml, report every problem in it, or show what
//! it amounts to (defaults merged, retention per repository, max-age), secrets redacted.

use anyhow::Result;
use serde::Serialize;
use strata_app::config::{self, ConfigError};

use crate::exit;
use crate::output::json;
use crate::Cli;

/// A bad config is the user's input: exit code 2, as for a bad option.
const BAD_CONFIG: u8 = 2;

/// Check strata.toml, or show it with every secret redacted.
///
/// The file is --config FILE (STRATA_CONFIG), else /etc/strata/strata.toml for root, else
/// $XDG_CONFIG_HOME/strata/strata.toml. Problems are printed one per line as
/// `FILE:LINE:COLUMN: key: message`, all of them, and give exit code 2.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Check the config: prints "FILE: ok (N projects, M repositories)", or every problem
    /// found (exit code 2).
    ///
    /// With --json: {"file", "ok": true, "projects", "repositories"}, or {"file",
    /// "ok": false, "errors": [{"file", "line", "column", "key", "message"}]}.
    Check {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective config: the defaults merged into every project, each
    /// repository's retention resolved, max-age and the check schedule filled in. Secrets
    /// written into the file are shown as <redacted>, URLs without their passwords and
    /// queries, Slack and ping URLs as scheme and host only; references to secrets
    /// (password-file, password-command, password-env) are shown.
    Show {
        /// Print it as JSON (the same keys as the file) instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct CheckReport<'a> {
    file: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    projects: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repositories: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [ConfigError]>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let file = cli.config.clone().unwrap_or_else(config::default_path);
    let file = std::path::absolute(&file).unwrap_or(file);
    let loaded = config::load(Some(&file));
    let (json_out, show) = match args.command {
        Sub::Check { json } => (json, false),
        Sub::Show { json } => (json, true),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(errors) => {
            if json_out && !show {
                json(&CheckReport {
                    file: file.display().to_string(),
                    ok: false,
                    projects: None,
                    repositories: None,
                    errors: Some(&errors.0),
                })?;
            } else {
                for e in &errors.0 {
                    eprintln!("{}", crate::output::printable(e.to_string().as_bytes()));
                }
            }
            return Ok(BAD_CONFIG);
        }
    };
    if show {
        let value = config::show::effective(&config);
        if json_out {
            json(&value)?;
        } else {
            print!("{}", config::show::to_toml(&value));
        }
        return Ok(exit::OK);
    }
    if json_out {
        json(&CheckReport {
            file: config.file.display().to_string(),
            ok: true,
            projects: Some(config.projects.len()),
            repositories: Some(config.repositories.len()),
            errors: None,
        })?;
    } else {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        println!(
            "{}: ok ({}, {})",
            config.file.display(),
            plural(config.projects.len(), "project", "projects"),
            plural(config.repositories.len(), "repository", "repositories"),
        );
    }
    Ok(exit::OK)
}
