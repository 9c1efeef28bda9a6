//! Evidence files (`evidence/<id>`): run summaries and restore-test reports kept in the
//! repository beside the snapshots they concern, so that an offsite copy carries the proof
//! that backups ran and restored, and the audit catalog can be rebuilt from repositories.
//!
//! The format does not interpret the records: each is the JSON text of one catalog record
//! (the application's `ops::Record`), kept as written so that a newer record kind never
//! makes an evidence file undecodable.

use serde::{Deserialize, Serialize};

use crate::envelope::EncryptedObject;
use crate::id::SnapshotId;
use crate::FormatError;

/// What an evidence file proves. Postcard stores the variant's index: append new kinds at
/// the end, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EvidenceKind {
    /// The records of one project's run (backups, copies, retention, hooks, the run).
    RunSummary,
    /// A restore test and its report.
    RestoreTest,
}

impl EvidenceKind {
    pub fn name(self) -> &'static str {
        match self {
            EvidenceKind::RunSummary => "run-summary",
            EvidenceKind::RestoreTest => "restore-test",
        }
    }
}

/// The end of the writer's catalog chain when the evidence was written: the last record's
/// seq and hash (a catalog whose tail was deleted or rewritten no longer has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// One evidence file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceFile {
    pub kind: EvidenceKind,
    /// When it was written, Unix nanoseconds (UTC).
    pub time_ns: i64,
    pub hostname: String,
    pub project: Option<String>,
    /// The snapshots it concerns, in this repository. Prune deletes the evidence once
    /// every one of them is gone; evidence naming none is kept.
    pub snapshots: Vec<SnapshotId>,
    /// The writer's catalog head, when it had a catalog.
    pub catalog_head: Option<CatalogHead>,
    /// The catalog records, each the UTF-8 JSON text of one record, oldest first.
    pub records: Vec<String>,
}

/// Most records one evidence file may carry (a run of a large project records a few
/// hundred retention decisions); a reader refuses more rather than trusting a count.
pub const MAX_RECORDS: usize = 100_000;

impl EncryptedObject for EvidenceFile {
    const KIND: &'static str = "evidence";
    const OBJECT: &'static str = "evidence";
    /// Never reuse a number.
    const VERSION: u16 = 1;

    fn validate(&self) -> Result<(), FormatError> {
        if self.records.len() > MAX_RECORDS {
            return Err(FormatError::malformed(
                Self::OBJECT,
                format!("{} records, more than {MAX_RECORDS}", self.records.len()),
            ));
        }
        Ok(())
    }
}
