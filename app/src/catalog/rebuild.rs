//! `strata log --rebuild`: the catalog's history recreated from the evidence files of the
//! repositories (spec/evidence.md), and the evidence files a writer stores.

use std::collections::HashSet;

use strata_format::evidence::{CatalogHead, EvidenceFile, EvidenceKind};
use strata_format::id::SnapshotId;

use super::Catalog;
use crate::config::Config;
use crate::ops::Record;
use crate::{AppError, RepoSpec, Result};

/// What [`Catalog::rebuild`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RebuildStats {
    /// Repositories whose evidence was read.
    pub repositories: u64,
    /// Evidence files read.
    pub evidence_files: u64,
    /// Records appended.
    pub records: u64,
    /// Records found more than once (the same record in a repository and its copies).
    pub duplicates: u64,
    /// Records that are not a record this strata reads (a newer strata's), left out.
    pub unreadable: u64,
    /// Repositories that could not be read: name and why (the others are still read).
    pub failed: Vec<(String, String)>,
}

impl Catalog {
    /// Recreates the history into this catalog, which must be empty: reads the evidence of
    /// every repository of `cfg` with `read_evidence` (name, spec → its evidence files),
    /// and appends their records in time order. A record kept in several repositories
    /// (copies carry the evidence) is appended once: records are the same when they are
    /// equal in every field. A repository that cannot be read is reported, not fatal.
    pub fn rebuild(
        &self,
        cfg: &Config,
        mut read_evidence: impl FnMut(&str, &RepoSpec) -> Result<Vec<EvidenceFile>>,
    ) -> Result<RebuildStats> {
        if !self.is_empty()? {
            return Err(AppError::Catalog(format!(
                "catalog {}: not empty; a rebuild goes into an empty catalog",
                self.path().display()
            )));
        }
        let mut stats = RebuildStats::default();
        let mut records = Vec::new();
        for (name, spec) in &cfg.repositories {
            match read_evidence(name, spec) {
                Ok(files) => {
                    stats.repositories += 1;
                    stats.evidence_files += files.len() as u64;
                    for text in files.iter().flat_map(|f| &f.records) {
                        match serde_json::from_str::<Record>(text) {
                            Ok(r) => records.push(r),
                            Err(_) => stats.unreadable += 1,
                        }
                    }
                }
                Err(e) => stats.failed.push((name.clone(), e.to_string())),
            }
        }
        records.sort_by_key(|r| r.time_ns);
        let mut seen = HashSet::new();
        for r in records {
            let key = serde_json::to_string(&r).expect("a record serializes");
            if !seen.insert(key) {
                stats.duplicates += 1;
                continue;
            }
            self.append(&r)?;
            stats.records += 1;
        }
        Ok(stats)
    }

    /// An evidence file of `records` about `snapshots`, carrying this catalog's head, for a
    /// writer to store in a repository (`strata_engine::evidence::write`) once the snapshots
    /// are durable.
    pub fn evidence_file(
        &self,
        kind: EvidenceKind,
        time_ns: i64,
        project: Option<&str>,
        snapshots: Vec<SnapshotId>,
        records: &[Record],
    ) -> Result<EvidenceFile> {
        let head = self.last_head()?;
        Ok(EvidenceFile {
            kind,
            time_ns,
            hostname: strata_engine::hostname(),
            project: project.map(str::to_string),
            snapshots,
            catalog_head: head.map(|h| CatalogHead {
                seq: h.seq,
                hash: h.hash,
            }),
            records: records
                .iter()
                .map(|r| serde_json::to_string(r).expect("a record serializes"))
                .collect(),
        })
    }

    /// The last record's seq and hash, if any.
    pub(crate) fn last_head(&self) -> Result<Option<super::Head>> {
        let last = self
            .conn()
            .query_row(
                "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(|e| self.fail("reading", e))?;
        Ok(last.and_then(|(seq, hash)| {
            Some(super::Head {
                seq: seq as u64,
                hash: hash.try_into().ok()?,
            })
        }))
    }
}

/// The evidence files of the repository `spec` names (opened with its password source,
/// under a shared lock), for [`Catalog::rebuild`]. Damaged ones are left out with a warning
/// (`strata check` reports them).
pub fn read_repository_evidence(spec: &RepoSpec) -> Result<Vec<EvidenceFile>> {
    let password = crate::repo::password(spec)?;
    let opened = crate::repo::open(
        spec,
        password.as_bytes(),
        strata_engine::Operation::Snapshots,
        &crate::OpenOptions::default(),
    )?;
    let all = strata_engine::evidence::read_all(&opened.repo)?;
    for (name, e) in &all.damaged {
        tracing::warn!(
            "{}: evidence/{name} left out: {e}",
            crate::config::show::redact_url(&spec.location)
        );
    }
    Ok(all.files.into_iter().map(|(_, e)| e).collect())
}
