//! `strata generate`

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::{exit, Cli};

/// Write shell completions or man pages.
///
/// `--completion SHELL` prints the completion script for bash, zsh, fish, elvish or
/// powershell (install.sh and the Debian package put them where the shells look).
/// `--man DIR` writes a man page for strata and one for each subcommand (strata.1,
/// strata-backup.1, strata-key-add.1, …) into DIR, creating it; `--man -` prints strata.1.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["completion", "man"])))]
pub struct Args {
    /// Print the completion script for this shell.
    #[arg(long, value_name = "SHELL")]
    completion: Option<Shell>,
    /// Write the man pages into this directory (`-`: print strata.1 to standard output).
    #[arg(long, value_name = "DIR")]
    man: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut stdout = std::io::stdout().lock();
    if let Some(shell) = args.completion {
        clap_complete::generate(shell, &mut cmd, "strata", &mut stdout);
    }
    match args.man.as_deref() {
        Some(dir) if dir.as_os_str() == "-" => {
            // As generate_to makes it: no `help` subcommand in the list.
            cmd = cmd.disable_help_subcommand(true);
            cmd.build();
            clap_mangen::Man::new(cmd)
                .render(&mut stdout)
                .context("writing the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing the man pages into {}", dir.display()))?;
        }
        None => {}
    }
    Ok(exit::OK)
}
