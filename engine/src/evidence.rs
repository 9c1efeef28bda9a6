//! Evidence files (`evidence/<id>`, spec/evidence.md): run summaries and restore-test
//! reports stored in the repository, so that an offsite copy carries them and the audit
//! catalog can be rebuilt from repositories.
//!
//! Crash order: the caller writes evidence only after the snapshots it names are durable;
//! [`write`] returns once the evidence itself is (backends write atomically and durably).
//! Evidence names snapshots, so it is written only under a lock that is still held, like a
//! snapshot.

use strata_format::evidence::EvidenceFile;
use strata_format::id::EvidenceId;
use strata_storage::FileType;

use crate::{EngineError, Repository, Result};

/// Stores `evidence`, encrypted; returns its id. Durable when it returns.
pub fn write(repo: &Repository, evidence: &EvidenceFile) -> Result<EvidenceId> {
    repo.save_object(FileType::Evidence, evidence)
        .map(EvidenceId)
}

/// The evidence files of the repository, by id. A file whose name is not an id is left
/// out (it is no evidence file Strata wrote; `check` reports it with [`read_all`]).
pub fn list(repo: &Repository) -> Result<Vec<EvidenceId>> {
    Ok(repo
        .block_on(repo.backend().list(FileType::Evidence))?
        .into_iter()
        .filter_map(|(name, _)| name.parse().ok())
        .collect())
}

/// Reads, verifies against its name, decrypts and decodes one evidence file.
pub fn read(repo: &Repository, id: &EvidenceId) -> Result<EvidenceFile> {
    repo.load_object(FileType::Evidence, &id.to_hex())
}

/// Every evidence file: those that read, and for each that does not (damaged, not
/// decodable, a name that is no id) its name and why.
pub fn read_all(repo: &Repository) -> Result<ReadAll> {
    let mut out = ReadAll::default();
    let mut names = Vec::new();
    for (name, size) in repo.block_on(repo.backend().list(FileType::Evidence))? {
        if name.parse::<EvidenceId>().is_err() {
            out.damaged.push((
                name.clone(),
                EngineError::Damaged(format!(
                    "{} is not an evidence file Strata wrote: its name is not an id",
                    FileType::Evidence.path(&name)
                )),
            ));
            continue;
        }
        if let Err(e) = crate::stored::check_size(FileType::Evidence, &name, size) {
            out.damaged.push((name, e));
            continue;
        }
        names.push(name);
    }
    for (name, bytes) in names
        .iter()
        .zip(repo.read_many_verified(FileType::Evidence, &names))
    {
        let decoded = bytes.and_then(|b| {
            <EvidenceFile as strata_format::envelope::EncryptedObject>::decode(repo.key(), &b)
                .map_err(|e| EngineError::format(FileType::Evidence.path(name), e))
        });
        match decoded {
            Ok(ev) => out.files.push((name.parse().expect("checked above"), ev)),
            Err(e) => out.damaged.push((name.clone(), e)),
        }
    }
    Ok(out)
}

/// What [`read_all`] found.
#[derive(Debug, Default)]
pub struct ReadAll {
    pub files: Vec<(EvidenceId, EvidenceFile)>,
    /// Name and failure of each evidence file that could not be read.
    pub damaged: Vec<(String, EngineError)>,
}

#[cfg(test)]
mod tests {
    use strata_format::evidence::{CatalogHead, EvidenceKind};
    use strata_format::id::{Digest, SnapshotId};

    use super::*;
    use crate::test_support::{memory_repository, PASSWORD};

    fn sample(n: u8) -> EvidenceFile {
        EvidenceFile {
            kind: EvidenceKind::RunSummary,
            time_ns: i64::from(n),
            hostname: "web1".into(),
            project: Some("shop".into()),
            snapshots: vec![SnapshotId(Digest([n; 32]))],
            catalog_head: Some(CatalogHead {
                seq: u64::from(n),
                hash: [n; 32],
            }),
            records: vec![format!("{{\"n\":{n}}}")],
        }
    }

    #[test]
    fn evidence_is_written_listed_read_and_damage_is_found() {
        let backend = memory_repository();
        let repo = Repository::open(backend.clone(), PASSWORD).unwrap();
        let a = write(&repo, &sample(1)).unwrap();
        let b = write(&repo, &sample(2)).unwrap();
        let mut ids = list(&repo).unwrap();
        ids.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(ids, want);
        assert_eq!(read(&repo, &a).unwrap(), sample(1));
        // One file damaged in storage, one stray name.
        let name = b.to_hex();
        let mut bytes = repo
            .block_on(backend.read(FileType::Evidence, &name))
            .unwrap()
            .to_vec();
        bytes[30] ^= 1;
        repo.block_on(backend.delete(FileType::Evidence, &name))
            .unwrap();
        repo.block_on(backend.write(FileType::Evidence, &name, bytes.into()))
            .unwrap();
        repo.block_on(backend.write(FileType::Evidence, "stray", vec![1u8].into()))
            .unwrap();
        let all = read_all(&repo).unwrap();
        assert_eq!(all.files, vec![(a, sample(1))]);
        let mut damaged: Vec<&str> = all.damaged.iter().map(|(n, _)| n.as_str()).collect();
        damaged.sort();
        assert_eq!(damaged, [name.as_str(), "stray"]);
        assert!(read(&repo, &b).is_err());
        // `check` reports both.
        let report = crate::checker::check(&repo, &crate::progress::NoProgress).unwrap();
        let found: Vec<_> = report
            .errors
            .iter()
            .filter(|f| f.kind == crate::report::FindingKind::DamagedEvidence)
            .map(|f| f.object.clone())
            .collect();
        assert_eq!(found.len(), 2, "{:?}", report.errors);
        assert!(found.contains(&Some(crate::report::ObjectRef::Evidence { id: b })));
    }
}
