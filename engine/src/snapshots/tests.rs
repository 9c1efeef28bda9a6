//! Selection: the filter, ids beside a filter, `latest` among matches, groups.

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
