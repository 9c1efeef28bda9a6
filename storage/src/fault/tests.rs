//! Fault injection over the in-memory backend.

use super::*;
use crate::{ErrorKind, OpendalBackend};

fn memory() -> Arc<dyn Backend> {
    Arc::new(OpendalBackend::memory().unwrap())
}

fn plan(spec: &str) -> FaultPlan {
    FaultPlan::parse(spec).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn fail_fails_exactly_the_nth_mutation() {
    rt().block_on(async {
        let inner = memory();
        let fb = FaultBackend::new(inner.clone(), plan("fail=2"));
        fb.write(FileType::Key, "a", Bytes::from_static(b"1"))
            .await
            .unwrap();
        let err = fb
            .write(FileType::Key, "b", Bytes::from_static(b"2"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Other);
        assert_eq!(err.op, "write");
        assert_eq!(err.path, "keys/b");
        assert!(err.to_string().contains("injected fault"), "{err}");
        // Nothing of the failed write happened.
        assert_eq!(inner.stat(FileType::Key, "b").await.unwrap(), None);
        // Later mutations run normally.
        fb.write(FileType::Key, "c", Bytes::from_static(b"3"))
            .await
            .unwrap();
        fb.delete(FileType::Key, "a").await.unwrap();
        let names: Vec<String> = inner
            .list(FileType::Key)
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["c"]);
        assert_eq!(fb.mutations(), 4);
    });
}

#[test]
fn failed_delete_and_write_file_do_nothing() {
    rt().block_on(async {
        let inner = memory();
        let fb = FaultBackend::new(inner.clone(), plan("fail=1"));
        inner
            .write(FileType::Index, "x", Bytes::from_static(b"x"))
            .await
            .unwrap();
        let err = fb.delete(FileType::Index, "x").await.unwrap_err();
        assert_eq!((err.op, err.kind), ("delete", ErrorKind::Other));
        assert_eq!(inner.stat(FileType::Index, "x").await.unwrap(), Some(1));

        let fb = FaultBackend::new(inner.clone(), plan("fail=1"));
        let dir = tempfile::tempdir().unwrap();
        let spooled = dir.path().join("pack");
        std::fs::write(&spooled, b"pack bytes").unwrap();
        let err = fb
            .write_file(FileType::Pack, "abcd", &spooled)
            .await
            .unwrap_err();
        assert_eq!((err.op, err.path.as_str()), ("write_file", "data/ab/abcd"));
        assert_eq!(inner.stat(FileType::Pack, "abcd").await.unwrap(), None);
        assert!(
            !spooled.exists(),
            "the spooled file is consumed on error too"
        );

        // The next write_file goes through.
        std::fs::write(&spooled, b"pack bytes").unwrap();
        fb.write_file(FileType::Pack, "abcd", &spooled)
            .await
            .unwrap();
        assert_eq!(
            inner.read(FileType::Pack, "abcd").await.unwrap(),
            &b"pack bytes"[..]
        );
    });
}

#[test]
fn counts_mutations_not_other_operations() {
    rt().block_on(async {
        let fb = FaultBackend::new(memory(), FaultPlan::default());
        let shared = fb.clone();
        fb.create_layout().await.unwrap();
        fb.write(FileType::Snapshot, "s", Bytes::from_static(b"s"))
            .await
            .unwrap();
        fb.read(FileType::Snapshot, "s").await.unwrap();
        fb.read_range(FileType::Snapshot, "s", 0, 1).await.unwrap();
        fb.stat(FileType::Snapshot, "s").await.unwrap();
        fb.list(FileType::Snapshot).await.unwrap();
        fb.delete(FileType::Snapshot, "s").await.unwrap();
        fb.delete(FileType::Snapshot, "missing").await.unwrap();
        assert_eq!(shared.mutations(), 3);
        assert_eq!(shared.reads(), 2);
        assert_eq!(fb.location(), "memory://");
    });
}

#[test]
fn every_nth_read_fails_as_transient() {
    rt().block_on(async {
        let inner = memory();
        inner
            .write(FileType::Index, "i", Bytes::from_static(b"index"))
            .await
            .unwrap();
        let fb = FaultBackend::new(inner, plan("fail-reads-every=3"));
        let mut failed = Vec::new();
        for n in 1..=7u64 {
            let r = if n % 2 == 0 {
                fb.read(FileType::Index, "i").await
            } else {
                fb.read_range(FileType::Index, "i", 1, 2).await
            };
            if let Err(e) = r {
                assert_eq!(e.kind, ErrorKind::Transient);
                assert!(e.to_string().contains("injected fault"), "{e}");
                failed.push(n);
            }
        }
        assert_eq!(failed, [3, 6]);
        assert_eq!(fb.mutations(), 0);
    });
}

#[test]
fn log_has_one_line_per_mutation() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("faults.log");
        let plan = FaultPlan {
            fail_at_mutation: Some(2),
            log: Some(log.clone()),
            ..FaultPlan::default()
        };
        let fb = FaultBackend::new(memory(), plan);
        fb.write(FileType::Pack, "abcd", Bytes::from_static(b"p"))
            .await
            .unwrap();
        fb.delete(FileType::Lock, "l").await.unwrap_err();
        fb.write(FileType::Config, "", Bytes::from_static(b"c"))
            .await
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text,
            "1 write data/ab/abcd\n2 delete locks/l\n3 write config\n"
        );
    });
}

#[test]
fn read_log_has_one_line_per_read_and_none_per_mutation() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("reads.log");
        let plan = FaultPlan {
            read_log: Some(log.clone()),
            ..FaultPlan::default()
        };
        let fb = FaultBackend::new(memory(), plan);
        fb.write(FileType::Pack, "abcd", Bytes::from_static(b"packdata"))
            .await
            .unwrap();
        fb.read(FileType::Pack, "abcd").await.unwrap();
        let part = fb.read_range(FileType::Pack, "abcd", 2, 3).await.unwrap();
        assert_eq!(&part[..], b"ckd");
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "read data/ab/abcd\nread data/ab/abcd 2 3\n");
    });
}

#[test]
fn spool_dir_is_the_inner_one() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Backend> = Arc::new(OpendalBackend::fs(dir.path()).unwrap());
    let fb = FaultBackend::new(inner.clone(), FaultPlan::default());
    assert!(fb.spool_dir().is_some());
    assert_eq!(fb.spool_dir(), inner.spool_dir());
    assert_eq!(
        FaultBackend::new(memory(), FaultPlan::default()).spool_dir(),
        None
    );
}

#[test]
fn parses_the_syntax() {
    assert_eq!(plan(""), FaultPlan::default());
    assert_eq!(
        plan("kill-before=3"),
        FaultPlan {
            kill_at_mutation: Some((3, When::Before)),
            ..FaultPlan::default()
        }
    );
    assert_eq!(
        plan(" kill-after = 7 , fail=2,fail-reads-every=5"),
        FaultPlan {
            kill_at_mutation: Some((7, When::After)),
            fail_at_mutation: Some(2),
            fail_reads_every: Some(5),
            fail_percent: None,
            truncate_write: None,
            delay_ms: None,
            fail_pack_listing_after: None,
            log: None,
            read_log: None,
        }
    );
}

#[test]
fn rejects_bad_syntax() {
    for (bad, needle) in [
        ("kill=3", "unknown item"),
        ("fail", "not KEY=N"),
        ("fail=0", "not a number"),
        ("fail=-1", "not a number"),
        ("fail=x", "not a number"),
        ("fail=", "not a number"),
        ("fail=1,", "not KEY=N"),
        ("fail=1,fail=2", "repeats"),
        ("kill-before=1,kill-after=2", "repeats"),
    ] {
        let err = FaultPlan::parse(bad).unwrap_err();
        assert!(err.contains(needle), "{bad:?}: {err}");
    }
}

#[test]
fn fail_percent_parses_within_range() {
    assert_eq!(
        FaultPlan::parse("fail-percent=10").unwrap().fail_percent,
        Some(10)
    );
    assert!(FaultPlan::parse("fail-percent=101").is_err());
    assert!(FaultPlan::parse("fail-percent=0").is_err());
}

#[test]
fn truncate_and_delay_parse() {
    let plan = FaultPlan::parse("truncate=3,delay-ms=20").unwrap();
    assert_eq!(plan.truncate_write, Some(3));
    assert_eq!(plan.delay_ms, Some(20));
}

/// The chosen write stores half the object and reports success; the others are whole.
#[tokio::test]
async fn truncate_keeps_half_of_one_write() {
    let inner = memory();
    let faulty = FaultBackend::new(
        inner.clone(),
        FaultPlan {
            truncate_write: Some(2),
            ..FaultPlan::default()
        },
    );
    for name in ["a", "b", "c"] {
        faulty
            .write(FileType::Key, name, Bytes::from(vec![7u8; 100]))
            .await
            .unwrap();
    }
    let sizes: Vec<u64> = inner
        .list(FileType::Key)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(sizes, vec![100, 50, 100]);
}
