//! The safety snapshot: what a restore replaces or deletes, backed up (through the
//! archiver, at the entries' real absolute paths) before it is touched.

use std::path::PathBuf;

use strata_format::id::SnapshotId;

use super::{RestorePlan, SAFETY_TAG};
use crate::archiver::BackupOptions;
use crate::progress::Progress;
use crate::{EngineError, Repository, Result};

/// Backs up what `plan` replaces or deletes (nothing when it replaces and deletes
/// nothing) into a snapshot tagged [`SAFETY_TAG`]; returns its id. Any entry it could not
/// back up fails it: nothing may then be touched.
pub(super) fn snapshot(
    repo: &Repository,
    plan: &RestorePlan,
    labels: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Option<SnapshotId>> {
    let paths: Vec<PathBuf> = plan.at_risk().map(|e| e.path.clone()).collect();
    if paths.is_empty() {
        return Ok(None);
    }
    let opts = labels.for_safety_snapshot(SAFETY_TAG);
    let failed = |kind: crate::ErrorKind, why: String| EngineError::Stopped {
        kind,
        message: format!(
            "the safety snapshot of the {} entries this restore would replace or delete \
             failed: {why}; nothing was restored, replaced or deleted",
            paths.len()
        ),
    };
    let saved = crate::archiver::backup_paths(repo, &paths, &opts, progress)
        .map_err(|e| failed(e.kind(), e.to_string()))?;
    if let Some(first) = saved.errors.first() {
        return Err(failed(
            crate::ErrorKind::Invalid,
            format!(
                "{} entries could not be read (the first: {}); snapshot {} is incomplete",
                saved.errors.len(),
                first.message,
                saved.snapshot_id.short()
            ),
        ));
    }
    Ok(Some(saved.snapshot_id))
}
