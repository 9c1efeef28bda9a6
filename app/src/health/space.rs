//! Free space as the repositories' storage reports it ([`strata_storage::Backend::free_space`]).

use std::time::Duration;

use super::{FreeSpace, PitrFacts, SpaceProbe};
use crate::config::Config;

/// How long asking one repository may take (an SFTP server that does not answer).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks each repository's storage (local disks, SFTP servers), without its password: the
/// storage is opened, not the repository. A repository that cannot be asked has no
/// free-space item (logged).
#[derive(Debug)]
pub struct StorageProbe<'a> {
    cfg: &'a Config,
}

impl<'a> StorageProbe<'a> {
    pub fn new(cfg: &'a Config) -> Self {
        StorageProbe { cfg }
    }
}

impl SpaceProbe for StorageProbe<'_> {
    fn free_space(&self, repository: &str) -> Option<FreeSpace> {
        let spec = self.cfg.repositories.get(repository)?;
        let backend = match crate::repo::backend(spec, false) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("free space of {repository}: {e}");
                return None;
            }
        };
        // On a thread and a runtime of its own: the caller may be inside a runtime.
        let asked = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    tokio::time::timeout(PROBE_TIMEOUT, backend.free_space())
                        .await
                        .map_err(|_| format!("no answer within {} s", PROBE_TIMEOUT.as_secs()))?
                        .map_err(|e| e.to_string())
                })
            })
            .join()
            .unwrap_or_else(|_| Err("the probe failed".to_string()))
        });
        match asked {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!("free space of {repository}: {e}");
                None
            }
        }
    }

    /// Reads the project's WAL archive as `pg verify` does (its password, no lock), on a
    /// thread of its own: the caller may be inside a runtime.
    fn pitr(&self, project: &str) -> Option<Result<PitrFacts, String>> {
        let read = std::thread::scope(|s| {
            s.spawn(|| {
                let mut facts = crate::pitr::verify(self.cfg, project)
                    .map(|r| PitrFacts::of_report(&r))
                    .map_err(|e| e.to_string())?;
                // The server's own word on its archive_command, when it can be asked.
                match crate::pitr::check::archiver_status(self.cfg, project) {
                    Ok(status) if status.failing() => {
                        facts.archiver_failing = Some(crate::pitr::check::failures(&status));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!("{project}: pg_stat_archiver not read: {e}"),
                }
                Ok(facts)
            })
            .join()
            .unwrap_or_else(|_| Err("reading the WAL archive failed".to_string()))
        });
        Some(read)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::RepoSpec;

    fn cfg(repos: &[(&str, String)]) -> Config {
        Config {
            file: PathBuf::from("/test/strata.toml"),
            state_dir: PathBuf::from("/test/state"),
            repositories: repos
                .iter()
                .map(|(n, l)| (n.to_string(), RepoSpec::new(l.clone())))
                .collect(),
            notifications: BTreeMap::new(),
            server: Default::default(),
            projects: BTreeMap::new(),
        }
    }

    #[test]
    fn a_local_repository_tells_its_disk_and_others_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = cfg(&[
            ("hot", tmp.path().display().to_string()),
            ("mem", "memory://".to_string()),
        ]);
        let probe = StorageProbe::new(&cfg);
        let free = probe.free_space("hot").expect("a local disk tells");
        assert!(
            free.total_bytes > 0 && free.free_bytes <= free.total_bytes,
            "{free:?}"
        );
        assert_eq!(probe.free_space("mem"), None);
        assert_eq!(probe.free_space("undefined"), None);
        // From inside a runtime too (a server).
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(async { probe.free_space("hot") }).is_some());
    }
}
