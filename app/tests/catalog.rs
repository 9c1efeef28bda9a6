//! The audit catalog: appends and queries, the hash chain's verification against edits and
//! deletions (made with a raw SQLite connection, as a person with the file would), file
//! modes, concurrent writers in separate processes, and `stats --project`'s arithmetic.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use strata_app::catalog::{self, Catalog, CATALOG_FILE, HEAD_FILE};
use strata_app::ops::{History, Query, Record, RecordBody, RecordKind, Recorder, RunId};

const DAY: i64 = 86_400_000_000_000;

fn backup(time_ns: i64, project: &str, repo: &str, ok: bool, bytes_read: u64) -> Record {
    Record {
        time_ns,
        project: Some(project.into()),
        repository: Some(repo.into()),
        run_id: Some(RunId(format!("run-{time_ns}"))),
        ok,
        error: (!ok).then(|| "dump failed".into()),
        user: None,
        body: RecordBody::Backup {
            source: "paths".into(),
            source_kind: "files".into(),
            snapshot_id: Some(format!("{time_ns:064x}")),
            bytes_read,
            bytes_total: bytes_read,
            bytes_added: bytes_read / 10,
            stored_bytes: bytes_read / 20,
            files: 3,
            duration_ns: 1_000_000_000,
            unreadable: 0,
        },
    }
}

fn copy(time_ns: i64, project: &str, repo: &str) -> Record {
    Record {
        time_ns,
        project: Some(project.into()),
        repository: Some(repo.into()),
        run_id: None,
        ok: true,
        error: None,
        user: None,
        body: RecordBody::Copy {
            from: "hot".into(),
            snapshot_id: "ab".repeat(32),
            dest_id: Some("cd".repeat(32)),
            bytes_added: 7,
        },
    }
}

fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(CATALOG_FILE)).unwrap()
}

fn problems(cat: &Catalog) -> Vec<(u64, String)> {
    cat.verify()
        .unwrap()
        .problems
        .into_iter()
        .map(|p| (p.seq, p.what))
        .collect()
}

/// Ten records: backups and copies of two projects in two repositories over ten days.
fn ten(dir: &Path) -> Catalog {
    let cat = Catalog::open(dir).unwrap();
    for day in 0..10 {
        let t = 1_700_000_000_000_000_000 + day * DAY;
        let project = if day % 2 == 0 { "shop" } else { "blog" };
        let rec = if day % 3 == 0 {
            copy(t, project, "offsite")
        } else {
            backup(t, project, "hot", day != 4, 1000 * day as u64)
        };
        cat.record(rec).unwrap();
    }
    cat
}

#[test]
fn records_come_back_newest_first_narrowed_by_every_query_field() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    let t0 = 1_700_000_000_000_000_000;
    let times = |q: Query| -> Vec<i64> {
        cat.query(&q)
            .unwrap()
            .iter()
            .map(|r| (r.time_ns - t0) / DAY)
            .collect()
    };
    assert_eq!(times(Query::default()), vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    let shop = || Some("shop".to_string());
    assert_eq!(
        times(Query {
            project: shop(),
            ..Query::default()
        }),
        vec![8, 6, 4, 2, 0]
    );
    assert_eq!(
        times(Query {
            repository: Some("offsite".into()),
            ..Query::default()
        }),
        vec![9, 6, 3, 0]
    );
    assert_eq!(
        times(Query {
            kind: Some(RecordKind::Copy),
            ..Query::default()
        }),
        vec![9, 6, 3, 0]
    );
    assert_eq!(
        times(Query {
            project: shop(),
            kind: Some(RecordKind::Backup),
            ..Query::default()
        }),
        vec![8, 4, 2]
    );
    assert_eq!(
        times(Query {
            project: shop(),
            kind: Some(RecordKind::Backup),
            ok_only: true,
            ..Query::default()
        }),
        vec![8, 2]
    );
    assert_eq!(
        times(Query {
            since_ns: Some(t0 + 7 * DAY),
            ..Query::default()
        }),
        vec![9, 8, 7]
    );
    assert_eq!(
        times(Query {
            limit: Some(2),
            ..Query::default()
        }),
        vec![9, 8]
    );
    let last = cat
        .last(&Query {
            project: Some("blog".into()),
            ..Query::default()
        })
        .unwrap()
        .unwrap();
    assert_eq!(last, copy(t0 + 9 * DAY, "blog", "offsite"));
    // The whole record survives the round trip, and entries carry their chain place.
    let entries = cat.entries(&Query::default()).unwrap();
    assert_eq!(entries[0].seq, 10);
    assert_eq!(entries[9].seq, 1);
    assert_eq!(
        entries[5].record,
        backup(t0 + 4 * DAY, "shop", "hot", false, 4000)
    );
    assert!(cat.verify().unwrap().is_intact());
    assert_eq!(cat.verify().unwrap().records, 10);
}

#[test]
fn an_intact_catalog_verifies_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    drop(ten(dir.path()));
    let cat = Catalog::open(dir.path()).unwrap();
    cat.record(copy(1, "shop", "offsite")).unwrap();
    let report = cat.verify().unwrap();
    assert_eq!(report.records, 11);
    assert_eq!(report.problems, vec![]);
    assert_eq!(report.head.unwrap().seq, 11);
    let ro = Catalog::open_read_only(dir.path()).unwrap().unwrap();
    assert_eq!(ro.len().unwrap(), 11);
    assert!(ro.verify().unwrap().is_intact());
    assert!(ro.record(copy(2, "shop", "hot")).is_err());
}

#[test]
fn verify_finds_an_edited_body() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    raw(dir.path())
        .execute(
            "UPDATE records SET body = replace(body, '\"bytes_read\":5000', '\"bytes_read\":6000') \
             WHERE seq = 6",
            [],
        )
        .unwrap();
    let found = problems(&cat);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, 6);
    assert!(found[0].1.contains("hash does not match"), "{found:?}");
}

#[test]
fn verify_finds_an_edited_column_that_would_hide_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    // Day 4 (seq 5) is a failed backup: marking it ok leaves the hashed body alone.
    raw(dir.path())
        .execute("UPDATE records SET ok = 1, project = 'x' WHERE seq = 5", [])
        .unwrap();
    let found = problems(&cat);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, 5);
    assert!(
        found[0].1.contains("column project, ok disagrees"),
        "{found:?}"
    );
}

#[test]
fn verify_finds_a_deleted_middle_record() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    raw(dir.path())
        .execute("DELETE FROM records WHERE seq IN (4, 5)", [])
        .unwrap();
    let found = problems(&cat);
    assert_eq!(
        found,
        vec![(6, "records 4 to 5 are missing (deleted)".to_string())]
    );
}

#[test]
fn verify_finds_a_renumbered_deletion_as_a_broken_link() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    let conn = raw(dir.path());
    conn.execute("DELETE FROM records WHERE seq = 4", [])
        .unwrap();
    conn.execute("UPDATE records SET seq = seq - 1 WHERE seq > 4", [])
        .unwrap();
    let found = problems(&cat);
    assert!(
        found
            .iter()
            .any(|(s, w)| *s == 4 && w.contains("does not link")),
        "{found:?}"
    );
}

#[test]
fn verify_finds_a_deleted_tail_by_the_head_file() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    raw(dir.path())
        .execute("DELETE FROM records WHERE seq >= 9", [])
        .unwrap();
    let found = problems(&cat);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, 9);
    assert!(
        found[0].1.contains("records 9 to 10 are missing"),
        "{found:?}"
    );
    // Without the head file, that is said too.
    std::fs::remove_file(dir.path().join(HEAD_FILE)).unwrap();
    let found = problems(&cat);
    assert!(found[0].1.contains("no head file"), "{found:?}");
}

#[test]
fn verify_finds_a_rewritten_chain_by_the_head_file() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    // Rewrite the last record and recompute its hash: the chain alone is intact again.
    let conn = raw(dir.path());
    let (prev, time_ns, body): (Vec<u8>, i64, String) = conn
        .query_row(
            "SELECT prev, time_ns, body FROM records WHERE seq = 10",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let body = body.replace("\"bytes_added\":7", "\"bytes_added\":8");
    let hash = catalog::record_hash(&prev.try_into().unwrap(), 10, "copy", time_ns, &body);
    conn.execute(
        "UPDATE records SET body = ?1, hash = ?2 WHERE seq = 10",
        rusqlite::params![body, &hash[..]],
    )
    .unwrap();
    let found = problems(&cat);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].1.contains("differs from the one in the head file"),
        "{found:?}"
    );
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/strata");
    let cat = Catalog::open(&state).unwrap();
    cat.record(copy(1, "shop", "hot")).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    for f in [
        CATALOG_FILE,
        "catalog.sqlite-wal",
        "catalog.sqlite-shm",
        HEAD_FILE,
    ] {
        assert_eq!(mode(&state.join(f)), 0o600, "{f}");
    }
}

#[test]
fn a_missing_catalog_is_none_read_only_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Catalog::open_read_only(dir.path()).unwrap().is_none());
    assert!(!dir.path().join(CATALOG_FILE).exists());
}

#[test]
fn a_catalog_of_a_newer_strata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(ten(dir.path()));
    raw(dir.path())
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let e = Catalog::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("schema version 99, newer than this strata"),
        "{e}"
    );
    let e = Catalog::open_read_only(dir.path()).unwrap_err().to_string();
    assert!(e.contains("schema version 99"), "{e}");
}

#[test]
fn recording_best_effort_never_fails_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    assert!(!catalog::record_best_effort(&file, &copy(1, "shop", "hot")));
    assert!(catalog::record_best_effort(
        dir.path(),
        &copy(1, "shop", "hot")
    ));
    assert_eq!(Catalog::open(dir.path()).unwrap().len().unwrap(), 1);
}

/// The child half of `two_processes_appending_at_once_leave_one_chain`.
#[test]
fn append_100_when_asked_by_the_parent() {
    let Some(dir) = std::env::var_os("STRATA_TEST_CATALOG_CHILD") else {
        return;
    };
    let cat = Catalog::open(Path::new(&dir)).unwrap();
    for i in 0..100 {
        cat.record(copy(i, &format!("p{}", std::process::id()), "hot"))
            .unwrap();
    }
}

#[test]
fn two_processes_appending_at_once_leave_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "append_100_when_asked_by_the_parent",
                    "--test-threads=1",
                ])
                .env("STRATA_TEST_CATALOG_CHILD", dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // And a thread of this process with a connection of its own, at the same time.
    let here = dir.path().to_path_buf();
    let thread = std::thread::spawn(move || {
        let cat = Catalog::open(&here).unwrap();
        for i in 0..100 {
            cat.record(backup(i, "thread", "hot", true, 1)).unwrap();
        }
    });
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    thread.join().unwrap();
    let cat = Catalog::open(dir.path()).unwrap();
    let report = cat.verify().unwrap();
    assert_eq!(report.records, 300);
    assert_eq!(report.problems, vec![]);
    assert_eq!(report.head.unwrap().seq, 300);
    let projects: std::collections::BTreeSet<_> = cat
        .query(&Query::default())
        .unwrap()
        .into_iter()
        .filter_map(|r| r.project)
        .collect();
    assert_eq!(projects.len(), 3, "{projects:?}");
}

#[test]
fn project_stats_sum_each_run_and_fit_each_source() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(dir.path()).unwrap();
    let t0 = 1_700_000_000_000_000_000;
    for day in 0..3i64 {
        let t = t0 + day * DAY;
        let run = RunId(format!("run{day}"));
        for (source, size) in [("paths", 1000 + day as u64 * 100), ("mysql:shop", 5000)] {
            let mut b = backup(t + 2_000_000_000, "shop", "hot", true, size);
            b.run_id = Some(run.clone());
            if let RecordBody::Backup { source: s, .. } = &mut b.body {
                *s = source.into();
            }
            cat.record(b).unwrap();
        }
        cat.record(Record {
            time_ns: t + 10_000_000_000,
            project: Some("shop".into()),
            repository: None,
            run_id: Some(run),
            ok: true,
            error: None,
            user: None,
            body: RecordBody::Run {
                trigger: "due".into(),
                started_ns: t,
                exit_code: 0,
                snapshots: vec![],
                pid: 1,
            },
        })
        .unwrap();
    }
    cat.record(backup(t0, "blog", "hot", true, 1)).unwrap();
    let s = catalog::project_stats(&cat, "shop", None).unwrap();
    assert_eq!(s.runs.len(), 3);
    let r1 = &s.runs[1];
    assert_eq!(r1.run_id.as_deref(), Some("run1"));
    assert_eq!(r1.time_ns, t0 + DAY);
    assert_eq!(r1.duration_ns, 10_000_000_000);
    assert_eq!(r1.sources, 2);
    assert_eq!(r1.bytes_read, 6100);
    assert_eq!(r1.bytes_added, 110 + 500);
    assert_eq!(r1.stored_bytes, 55 + 250);
    assert!((r1.dedup_ratio.unwrap() - 6100.0 / 610.0).abs() < 1e-9);
    let names: Vec<_> = s.sources.iter().map(|t| t.source.as_str()).collect();
    assert_eq!(names, ["mysql:shop", "paths"]);
    assert!((s.sources[1].bytes_per_day.unwrap() - 100.0).abs() < 1e-6);
    assert_eq!(s.sources[0].bytes_per_day, Some(0.0));
    let since = catalog::project_stats(&cat, "shop", Some(t0 + DAY)).unwrap();
    assert_eq!(since.runs.len(), 2);
}

#[test]
fn a_file_that_is_not_a_catalog_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CATALOG_FILE), vec![0x5a; 4096]).unwrap();
    let e = Catalog::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains(CATALOG_FILE) && e.contains("not a database"),
        "{e}"
    );
    let e = Catalog::open_read_only(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a database"), "{e}");
}

#[test]
fn damaged_rows_are_left_out_of_answers_and_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    let conn = raw(dir.path());
    conn.execute("UPDATE records SET body = 'not json' WHERE seq = 3", [])
        .unwrap();
    conn.execute("UPDATE records SET hash = x'00' WHERE seq = 10", [])
        .unwrap();
    assert_eq!(cat.query(&Query::default()).unwrap().len(), 8);
    let found = problems(&cat);
    assert!(
        found
            .iter()
            .any(|(s, w)| *s == 3 && w.contains("body is not JSON")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(s, w)| *s == 10 && w.contains("hash does not match")),
        "{found:?}"
    );
    // Appending after a damaged last hash says so instead of chaining to garbage.
    let e = cat.record(copy(1, "shop", "hot")).unwrap_err().to_string();
    assert!(e.contains("record 10 has a damaged hash"), "{e}");
}

/// A repository in memory (cheap key derivation) holding `evidence`, opened.
fn repository_with(
    evidence: &[strata_format::evidence::EvidenceFile],
) -> strata_engine::Repository {
    use std::sync::Arc;
    let backend: Arc<dyn strata_storage::Backend> =
        Arc::new(strata_storage::OpendalBackend::memory().unwrap());
    let opts = strata_engine::InitOptions {
        kdf: strata_format::keyfile::KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        ..Default::default()
    };
    strata_engine::Repository::init(backend.clone(), b"pw", &opts).unwrap();
    let repo = strata_engine::Repository::open(backend, b"pw").unwrap();
    for e in evidence {
        strata_engine::evidence::write(&repo, e).unwrap();
    }
    repo
}

fn config_of(dir: &Path, names: &[&str]) -> strata_app::config::Config {
    strata_app::config::Config {
        file: dir.join("strata.toml"),
        state_dir: dir.join("state"),
        repositories: names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    strata_app::RepoSpec::new(format!("/srv/{n}")),
                )
            })
            .collect(),
        notifications: Default::default(),
        server: Default::default(),
        projects: Default::default(),
    }
}

#[test]
fn rebuild_recreates_the_history_from_the_evidence_in_repositories() {
    use strata_format::evidence::EvidenceKind;
    let dir = tempfile::tempdir().unwrap();
    // The history as a first host recorded it, and the evidence it wrote: the run summary
    // of days 0 and 1 into `hot`, copied to `offsite` with the copies' evidence too.
    let first = Catalog::open(&dir.path().join("first")).unwrap();
    let day0 = [
        backup(DAY, "shop", "hot", true, 10),
        copy(DAY + 5, "shop", "offsite"),
    ];
    let day1 = [backup(2 * DAY, "shop", "hot", false, 20)];
    for r in day0.iter().chain(&day1) {
        first.record(r.clone()).unwrap();
    }
    let ev0 = first
        .evidence_file(
            EvidenceKind::RunSummary,
            DAY + 6,
            Some("shop"),
            vec![],
            &day0,
        )
        .unwrap();
    let ev1 = first
        .evidence_file(
            EvidenceKind::RunSummary,
            2 * DAY,
            Some("shop"),
            vec![],
            &day1,
        )
        .unwrap();
    assert_eq!(ev1.catalog_head.unwrap().seq, 3);
    let mut odd = ev0.clone();
    odd.records.push("{\"kind\":\"from-the-future\"}".into());
    let repos = std::collections::BTreeMap::from([
        ("hot", repository_with(&[ev0.clone(), ev1.clone()])),
        ("offsite", repository_with(&[odd])),
    ]);
    let cfg = config_of(dir.path(), &["hot", "offsite", "gone"]);
    let cat = Catalog::open(&cfg.state_dir).unwrap();
    let stats = cat
        .rebuild(&cfg, |name, _spec| match repos.get(name) {
            Some(repo) => Ok(strata_engine::evidence::read_all(repo)?
                .files
                .into_iter()
                .map(|(_, e)| e)
                .collect()),
            None => Err(strata_app::AppError::Invalid(format!(
                "no repository {name}"
            ))),
        })
        .unwrap();
    assert_eq!(stats.repositories, 2);
    assert_eq!(stats.evidence_files, 3);
    assert_eq!(stats.records, 3);
    assert_eq!(stats.duplicates, 2);
    assert_eq!(stats.unreadable, 1);
    assert_eq!(stats.failed.len(), 1);
    let mut got = cat.query(&Query::default()).unwrap();
    got.reverse();
    let want: Vec<Record> = day0.iter().chain(&day1).cloned().collect();
    assert_eq!(got, want);
    assert!(cat.verify().unwrap().is_intact());
    // A second rebuild into the now non-empty catalog is refused.
    let e = cat
        .rebuild(&cfg, |_, _| Ok(vec![]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not empty"), "{e}");
}

/// The audit log's pages: failures only, one user's records, and the page after a record
/// (records of one instant are told apart by their seq), each one query with a limit.
#[test]
fn log_filters_select_failures_a_user_and_the_page_after_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    let t0 = 1_700_000_000_000_000_000;
    // Two records of olga's at the same instant as day 9's copy.
    for _ in 0..2 {
        let mut r = copy(t0 + 9 * DAY, "blog", "offsite");
        r.user = Some("olga".into());
        cat.record(r).unwrap();
    }
    let seqs = |q: Query, f: catalog::LogFilter| -> Vec<u64> {
        cat.entries_filtered(&q, &f)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    };
    let failed = catalog::LogFilter {
        failed_only: true,
        ..Default::default()
    };
    assert_eq!(seqs(Query::default(), failed), vec![5]);
    let olga = catalog::LogFilter {
        user: Some("olga".into()),
        ..Default::default()
    };
    assert_eq!(seqs(Query::default(), olga), vec![12, 11]);
    let page = |before| {
        seqs(
            Query {
                limit: Some(3),
                ..Query::default()
            },
            catalog::LogFilter {
                before,
                ..Default::default()
            },
        )
    };
    assert_eq!(page(None), vec![12, 11, 10]);
    assert_eq!(page(Some((t0 + 9 * DAY, 11))), vec![10, 9, 8]);
    assert_eq!(page(Some((t0 + 7 * DAY, 8))), vec![7, 6, 5]);
    assert_eq!(page(Some((t0, 1))), Vec::<u64>::new());
    // The default filter is `entries`.
    assert_eq!(
        seqs(Query::default(), catalog::LogFilter::default()),
        (1..=12).rev().collect::<Vec<_>>()
    );
}

/// Paging goes on past a record that cannot be read: it takes its place in its page (the
/// page shows one record fewer), and the next page starts after it, so every readable
/// record is on some page and none on two.
#[test]
fn log_pages_go_on_past_an_unreadable_record() {
    let dir = tempfile::tempdir().unwrap();
    let cat = ten(dir.path());
    // seq 9 is in the first page of three (10, 9, 8).
    raw(dir.path())
        .execute("UPDATE records SET body = 'not json' WHERE seq = 9", [])
        .unwrap();
    let mut before = None;
    let mut pages = Vec::new();
    loop {
        let f = catalog::LogFilter {
            before,
            ..Default::default()
        };
        let (entries, older) = cat.entries_page(&Query::default(), &f, 3).unwrap();
        pages.push(entries.iter().map(|e| e.seq).collect::<Vec<_>>());
        match older {
            Some(place) => before = Some(place),
            None => break,
        }
        assert!(pages.len() < 10, "paging never ends: {pages:?}");
    }
    assert_eq!(
        pages,
        vec![vec![10, 8], vec![7, 6, 5], vec![4, 3, 2], vec![1]]
    );
}
