//! Selection: the filter, ids beside a filter, `latest` among matches, groups.

use std::sync::Arc;

use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;
use strata_storage::FileType;

use super::*;
use crate::test_support::{memory_repository, PASSWORD};

fn snap(
    time_ns: i64,
    host: &str,
    project: Option<&str>,
    paths: &[&str],
    tags: &[&str],
) -> SnapshotFile {
    SnapshotFile {
        time_ns,
        hostname: host.into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        paths: paths.iter().map(|p| p.to_string()).collect(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        project: project.map(Into::into),
        excludes: Vec::new(),
        source: strata_format::snapshot::SourceKind::Files,
        source_meta: Vec::new(),
        tree: Default::default(),
        parent: None,
        program_version: String::new(),
        summary: Default::default(),
        keep_until_ns: None,
        original: None,
        rewrites: Vec::new(),
    }
}

fn paths(p: &[&str]) -> Filter {
    Filter {
        paths: p.iter().map(|p| p.to_string()).collect(),
        ..Filter::default()
    }
}

#[test]
fn a_path_filter_wants_every_given_path_among_the_snapshots_paths() {
    let s = snap(1, "h", None, &["/srv/a", "/srv/b"], &[]);
    assert!(paths(&["/srv/a"]).matches(&s));
    assert!(paths(&["/srv/b", "/srv/a"]).matches(&s));
    assert!(paths(&["/srv/a/", "//srv/./b"]).matches(&s), "normalized");
    assert!(!paths(&["/srv"]).matches(&s), "not a parent");
    assert!(!paths(&["/srv/a/x"]).matches(&s), "not a child");
    assert!(!paths(&["/srv/a", "/srv/c"]).matches(&s), "all of them");
    let db = snap(1, "h", None, &["postgres://u@db/shop"], &[]);
    assert!(paths(&["postgres://u@db/shop"]).matches(&db));
    assert_eq!(normal_path("/srv/a/../b/"), "/srv/b");
    assert_eq!(normal_path("/"), "/");
    assert_eq!(normal_path("///"), "/");
}

#[test]
fn every_criterion_narrows_and_tags_are_any_of() {
    let s = snap(1, "web1", Some("blog"), &["/srv/blog"], &["daily"]);
    let f = Filter {
        host: Some("web1".into()),
        project: Some("blog".into()),
        tags: vec!["weekly".into(), "daily".into()],
        paths: vec!["/srv/blog".into()],
    };
    assert!(f.matches(&s));
    for other in [
        Filter {
            host: Some("web2".into()),
            ..f.clone()
        },
        Filter {
            project: Some("shop".into()),
            ..f.clone()
        },
        Filter {
            tags: vec!["weekly".into()],
            ..f.clone()
        },
        Filter {
            paths: vec!["/srv/shop".into()],
            ..f.clone()
        },
    ] {
        assert!(!other.matches(&s), "{other:?}");
    }
    assert!(Filter::default().matches(&s));
    assert_eq!(
        f.describe(),
        "of host web1, of project blog, tagged weekly or daily, with path /srv/blog"
    );
}

#[test]
fn ids_beside_a_filter_are_refused_naming_both() {
    let f = Filter {
        tags: vec!["nightly".into()],
        ..Filter::default()
    };
    assert!(f.check_specs(&["latest"]).is_ok());
    assert!(f.check_specs::<&str>(&[]).is_ok());
    assert!(Filter::default().check_specs(&["abc123", "latest"]).is_ok());
    let e = f.check_specs(&["latest", "abc123"]).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Invalid);
    let msg = e.to_string();
    assert!(
        msg.contains("abc123") && msg.contains("tagged nightly"),
        "{msg}"
    );
    assert!(!msg.contains("latest,"), "{msg}");
}

#[test]
fn groups_are_sorted_by_key_and_latest_keeps_the_newest_of_each() {
    let list: Vec<(SnapshotId, SnapshotFile)> = [(3, "a"), (1, "b"), (5, "a"), (2, "b"), (4, "a")]
        .iter()
        .enumerate()
        .map(|(i, (t, p))| {
            (
                SnapshotId(strata_format::id::Digest([i as u8; 32])),
                snap(*t, "h", Some(p), &["/x"], &[]),
            )
        })
        .collect();
    let by = GroupBy::parse("project").unwrap();
    let all = group(list.clone(), by, None);
    let times = |g: &SnapshotGroup| {
        g.snapshots
            .iter()
            .map(|(_, s)| s.time_ns)
            .collect::<Vec<_>>()
    };
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].key.project, Some(Some("a".into())));
    assert_eq!(times(&all[0]), [3, 4, 5]);
    assert_eq!(times(&all[1]), [1, 2]);
    let newest = group(list, by, Some(1));
    assert_eq!(
        newest.iter().map(times).collect::<Vec<_>>(),
        [vec![5], vec![2]]
    );
}

#[test]
fn latest_is_the_newest_match_and_no_match_names_the_filter_and_the_count() {
    let repo = crate::Repository::open(memory_repository(), PASSWORD).unwrap();
    let save = |s: &SnapshotFile| SnapshotId(repo.save_object(FileType::Snapshot, s).unwrap());
    let old_blog = save(&snap(10, "web1", Some("blog"), &["/srv/blog"], &[]));
    let shop = save(&snap(20, "web1", Some("shop"), &["/srv/shop"], &[]));
    let new_blog = save(&snap(
        30,
        "web2",
        Some("blog"),
        &["/srv/blog"],
        &["nightly"],
    ));
    let newest = save(&snap(40, "web1", Some("wiki"), &["/srv/wiki"], &[]));

    let latest_of = |f: Filter| find_in(&repo, "latest", &f).map(|(id, _)| id);
    assert_eq!(latest_of(Filter::default()).unwrap(), newest);
    let blog = Filter {
        project: Some("blog".into()),
        ..Filter::default()
    };
    assert_eq!(latest_of(blog.clone()).unwrap(), new_blog);
    let web1_blog = Filter {
        host: Some("web1".into()),
        ..blog.clone()
    };
    assert_eq!(latest_of(web1_blog).unwrap(), old_blog);
    assert_eq!(latest_of(paths(&["/srv/shop/"])).unwrap(), shop);

    let e = latest_of(Filter {
        host: Some("web3".into()),
        ..Filter::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::NotFound);
    let msg = e.to_string();
    assert!(
        msg.contains("of host web3") && msg.contains("4 snapshots"),
        "{msg}"
    );

    // An id names its snapshot; beside a filter it is refused, in `select` as in `find_in`.
    let short = &shop.to_hex()[..8];
    assert_eq!(find_in(&repo, short, &Filter::default()).unwrap().0, shop);
    let e = select(&repo, &["latest".into(), short.into()], &blog).unwrap_err();
    assert!(e.to_string().contains(short), "{e}");
    assert_eq!(
        find_in(&repo, short, &blog).unwrap_err().kind(),
        crate::ErrorKind::Invalid
    );

    // No specs: every match, oldest first.
    let ids: Vec<SnapshotId> = select(&repo, &[], &blog)
        .unwrap()
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ids, [old_blog, new_blog]);
}

#[test]
fn the_cache_reads_only_new_files_drops_gone_ones_and_retries_unreadable_ones() {
    let repo = crate::Repository::open(memory_repository(), PASSWORD).unwrap();
    let save = |s: &SnapshotFile| SnapshotId(repo.save_object(FileType::Snapshot, s).unwrap());
    let ids_of = |l: &SnapshotList| l.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    let cache = SnapshotCache::default();
    let a = save(&snap(10, "h", Some("p"), &["/a"], &[]));
    let b = save(&snap(20, "h", Some("p"), &["/b"], &[]));

    let (first, r) = cache.list_counted(&repo).unwrap();
    assert_eq!(ids_of(&first), [a, b]);
    assert_eq!(
        r,
        Refresh {
            read: 2,
            unreadable: 0
        }
    );
    let (again, r) = cache.list_counted(&repo).unwrap();
    assert_eq!(r.read, 0, "nothing new: nothing read");
    assert!(
        Arc::ptr_eq(&first, &again),
        "the same list handed out again"
    );

    // A new snapshot older than the others: read alone, sorted into place.
    let c = save(&snap(5, "h", Some("p"), &["/c"], &[]));
    let (l, r) = cache.list_counted(&repo).unwrap();
    assert_eq!(ids_of(&l), [c, a, b]);
    assert_eq!(r.read, 1);

    // A hold rewrites `a` under a new name: the new file is read, the old one dropped.
    let a_snap = load(&repo, &a).unwrap();
    let (a2, _) = hold(&repo, &a, &a_snap, Some(i64::MAX), None).unwrap();
    let (l, r) = cache.list_counted(&repo).unwrap();
    assert_eq!(ids_of(&l), [c, a2, b]);
    assert_eq!(l[1].1.keep_until_ns, Some(i64::MAX));
    assert_eq!(r.read, 1);
    forget(&repo, &[c]).unwrap();
    let (l, r) = cache.list_counted(&repo).unwrap();
    assert_eq!(ids_of(&l), [a2, b]);
    assert_eq!(r.read, 0);

    // An unreadable file (its name fits its bytes, which are no snapshot) is skipped and
    // not kept: every listing tries it again, and reads nothing else.
    let junk = bytes::Bytes::from_static(b"not a snapshot");
    let junk_name = strata_format::id::Digest::of_stored(&junk).to_hex();
    repo.block_on(repo.backend().write(FileType::Snapshot, &junk_name, junk))
        .unwrap();
    for _ in 0..2 {
        let (l, r) = cache.list_counted(&repo).unwrap();
        assert_eq!(ids_of(&l), [a2, b]);
        assert_eq!(
            r,
            Refresh {
                read: 1,
                unreadable: 1
            }
        );
    }
    repo.block_on(repo.backend().delete(FileType::Snapshot, &junk_name))
        .unwrap();
    let (_, r) = cache.list_counted(&repo).unwrap();
    assert_eq!(r, Refresh::default(), "the readable ones stayed cached");

    // The same cache handed another repository starts over.
    let other = crate::Repository::open(memory_repository(), PASSWORD).unwrap();
    let o = SnapshotId(
        other
            .save_object(FileType::Snapshot, &snap(1, "h", None, &["/o"], &[]))
            .unwrap(),
    );
    let (l, r) = cache.list_counted(&other).unwrap();
    assert_eq!(ids_of(&l), [o]);
    assert_eq!(r.read, 1);
    // And agrees with the uncached listing.
    assert_eq!(
        ids_of(&cache.list_readable(&repo).unwrap()),
        ids_of(&Arc::new(list_readable(&repo).unwrap()))
    );
}
