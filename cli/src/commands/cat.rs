//! `strata cat`

use anyhow::Result;
use strata_engine::Operation;
use strata_format::id::IndexId;
use strata_format::index::IndexFile;
use strata_storage::FileType;

use crate::output::json;
use crate::{exit, open, Cli};

/// Print a decrypted repository object as JSON (for debugging).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The repository config.
    Config,
    /// A snapshot (`latest`, an id or a unique prefix).
    Snapshot {
        id: String,
        /// Which snapshot `latest` means: the newest of this host, project, tag or path.
        #[command(flatten)]
        filter: super::SnapshotFilter,
    },
    /// An index file (full id).
    Index { id: String },
    /// A tree blob (full id).
    Tree { id: String },
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    match &args.what {
        What::Config => {
            let repo = open::open(cli, Operation::CatObject)?.0;
            json(repo.config())?;
        }
        What::Snapshot { id, filter } => {
            let filter = filter.for_specs(&[id]);
            let repo = open::open(cli, Operation::CatObject)?.0;
            let (_, snap) = strata_engine::snapshots::find_in(&repo, id, &filter)?;
            json(&snap)?;
        }
        What::Index { id } => {
            let repo = open::open(cli, Operation::CatObject)?.0;
            let id: IndexId = id.parse()?;
            let index: IndexFile = repo.load_object(FileType::Index, &id.to_hex())?;
            json(&index)?;
        }
        What::Tree { id } => {
            let (repo, _lock) = open::open(cli, Operation::CatBlob)?;
            let tree = repo.load_tree(&id.parse()?)?;
            json(&tree)?;
        }
    }
    Ok(exit::OK)
}
