//! `/snapshots/{id}?repository=&path=&offset=`: the snapshot browser. The snapshot's facts,
//! the breadcrumbs of the path, one directory level (directories first, then by name;
//! [`PER_PAGE`] entries a page, with next and previous links, so a directory of 100,000
//! entries renders one page), links to download a file or a directory (`.tar.gz`) from
//! the API and to start the restore wizard there (operators), and a database snapshot's
//! tables with their row counts and its `.sql`/`.sql.gz` downloads.
//!
//! Paths are snapshot paths, checked as the API checks them (`..` or a relative path is a
//! 422 page; a path the snapshot does not hold, a 404 page).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use strata_format::id::SnapshotId;
use strata_format::tree::NodeKind;

use super::{age, bytes, q, render, see_other, when, Nav, Page, PageResult, Params};
use crate::api::read::{self, child_path, kind, list_dir, snapshot_path, DirOrder, DirPage};
use crate::blocking::blocking;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/snapshots/{id}", get(snapshot))
}

/// Entries a page shows of one directory.
pub const PER_PAGE: usize = 500;

/// An entry of the directory shown.
pub struct EntryRow {
    pub name: String,
    pub kind: &'static str,
    pub size: String,
    pub modified: String,
    /// Into a directory.
    pub open: Option<String>,
    /// A file, or a directory as `.tar.gz` (operators).
    pub download: Option<String>,
    /// The restore wizard for it (operators).
    pub restore: String,
    pub link_target: Option<String>,
}

#[derive(Template)]
#[template(path = "snapshot.html")]
struct SnapshotPage {
    nav: Nav,
    short: String,
    repository: String,
    facts: Vec<(&'static str, String)>,
    project: Option<(String, String)>,
    parent: Option<(String, String)>,
    /// (link, name) from the root down to the directory shown (its own has no link).
    crumbs: Vec<(String, String)>,
    path: String,
    entries: Vec<EntryRow>,
    /// `entries 501–1000 of 100000`, empty when everything is on one page.
    range: String,
    prev: Option<String>,
    next: Option<String>,
    /// This directory as `.tar.gz`, and the restore wizard for it (operators).
    download_dir: String,
    restore_dir: String,
    database: Option<Database>,
}

/// What a database snapshot recorded, and its dump's downloads.
pub struct Database {
    pub name: String,
    /// (table, rows) as recorded when the dump streamed.
    pub tables: Vec<(String, String)>,
    pub sql: String,
    pub sql_gz: String,
}

#[derive(Debug, Deserialize)]
struct BrowseQuery {
    repository: Option<String>,
    path: Option<String>,
    offset: Option<usize>,
}

async fn snapshot(
    State(state): State<AppState>,
    page: Page,
    Path(spec): Path<String>,
    Params(query): Params<BrowseQuery>,
) -> PageResult {
    let path = snapshot_path(query.path.as_deref())?.to_string();
    let offset = query.offset.unwrap_or(0);
    let nav = page.nav;
    let shown = blocking(move || {
        let dir = match list_dir(
            &state,
            &spec,
            query.repository.as_deref(),
            &path,
            DirOrder::DirsFirst,
            offset,
            Some(PER_PAGE),
        ) {
            Ok(dir) => dir,
            // A link kept from before a hold or a tag change names the snapshot's old id:
            // the same backup lives on under a new one, which records the old as its
            // `original`.
            Err(e) if e.status == StatusCode::NOT_FOUND => {
                match rewritten(&state, &spec, query.repository.as_deref()) {
                    Some((repo, id)) => {
                        return Ok(Err(format!(
                            "/snapshots/{id}?repository={}&path={}",
                            q(&repo),
                            q(&path)
                        )))
                    }
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        Ok(Ok(view(nav, &dir, state.now_ns())))
    })
    .await?;
    match shown {
        Ok(view) => Ok(render(&view)),
        Err(to) => Ok(see_other(&to)),
    }
}

/// The snapshot that replaced the one of full id `spec` (a hold, a tag change or a
/// rewrite writes a new snapshot whose `original` is the first id): its repository and id.
/// None when the snapshot itself is still there (the page was not found for its path), and
/// unless exactly one repository has a replacement (a copy elsewhere also names it as its
/// `original`: name the repository to be led to it).
fn rewritten(state: &AppState, spec: &str, repository: Option<&str>) -> Option<(String, String)> {
    let old: SnapshotId = spec.parse().ok()?;
    let mut found = Vec::new();
    for name in read::repositories(state, repository).ok()? {
        let Ok(list) = state.snapshots(&name) else {
            continue;
        };
        if list.iter().any(|(id, _)| *id == old) {
            return None;
        }
        if let Some((id, _)) = list.iter().rev().find(|(_, s)| s.original == Some(old)) {
            found.push((name, id.to_hex()));
        }
    }
    match found.len() {
        1 => found.pop(),
        _ => None,
    }
}

fn view(nav: Nav, dir: &DirPage, now: i64) -> SnapshotPage {
    let l = &dir.located;
    let s = &l.snapshot;
    let id = l.id.to_hex();
    let repo = q(&l.repository);
    let here = |path: &str| format!("/snapshots/{id}?repository={repo}&path={}", q(path));
    let download = |path: &str| {
        format!(
            "/api/v1/snapshots/{id}/download?repository={repo}&path={}",
            q(path)
        )
    };
    let restore = |path: &str| format!("/restore?snapshot={id}&repository={repo}&path={}", q(path));

    let sum = &s.summary;
    let mut facts = vec![
        (
            "Time",
            format!("{} ({})", when(s.time_ns), age(now, s.time_ns)),
        ),
        ("Kind", kind(s).to_string()),
        ("Host", format!("{} (user {})", s.hostname, s.username)),
        ("Paths", s.paths.join(", ")),
        (
            "Tags",
            if s.tags.is_empty() {
                "none".into()
            } else {
                s.tags.join(", ")
            },
        ),
        (
            "Read",
            format!(
                "{} in {} files ({} new, {} changed, {} unchanged) and {} directories",
                bytes(sum.bytes_read),
                sum.files_new + sum.files_changed + sum.files_unchanged,
                sum.files_new,
                sum.files_changed,
                sum.files_unchanged,
                sum.dirs
            ),
        ),
        (
            "Added",
            format!("{} in {:.1} s", bytes(sum.bytes_added), sum.duration_secs),
        ),
        (
            "Hold",
            match s.keep_until_ns.filter(|u| *u > now) {
                Some(u) => format!("held until {}", when(u)),
                None => "none".into(),
            },
        ),
        ("Id", id.clone()),
        ("Repository", l.repository.clone()),
    ];
    if sum.errors > 0 {
        facts.push((
            "Unreadable",
            format!(
                "{} files could not be read (a partial snapshot)",
                sum.errors
            ),
        ));
    }

    let mut crumbs = vec![(here("/"), l.id.short())];
    let mut at = String::new();
    for comp in dir.path.split('/').filter(|c| !c.is_empty()) {
        at.push('/');
        at.push_str(comp);
        crumbs.push((here(&at), comp.to_string()));
    }

    let entries = dir
        .entries
        .iter()
        .map(|n| {
            let name = String::from_utf8_lossy(&n.name).into_owned();
            let path = child_path(&dir.path, &name);
            let is_dir = matches!(n.kind, NodeKind::Dir { .. });
            let is_file = matches!(n.kind, NodeKind::File { .. });
            EntryRow {
                kind: n.kind.name(),
                size: if is_dir { String::new() } else { bytes(n.size) },
                modified: when(n.mtime_ns),
                open: is_dir.then(|| here(&path)),
                download: (is_dir || is_file).then(|| download(&path)),
                restore: restore(&path),
                link_target: match &n.kind {
                    NodeKind::Symlink { target } => {
                        Some(String::from_utf8_lossy(target).into_owned())
                    }
                    _ => None,
                },
                name,
            }
        })
        .collect();

    let page_link = |offset: usize| format!("{}&offset={offset}", here(&dir.path));
    let (range, prev, next) = if dir.offset == 0 && dir.next_offset().is_none() {
        (String::new(), None, None)
    } else {
        let first = dir.offset.min(dir.total);
        (
            format!(
                "entries {}–{} of {}",
                first + 1,
                first + dir.entries.len(),
                dir.total
            ),
            (dir.offset > 0).then(|| page_link(dir.offset.saturating_sub(PER_PAGE))),
            dir.next_offset().map(page_link),
        )
    };

    let database = strata_db::is_database(s).then(|| Database {
        name: strata_db::meta(s, "database").unwrap_or("").to_string(),
        tables: strata_db::recorded_rows(s)
            .into_iter()
            .map(|(t, n)| (t, n.map(|n| n.to_string()).unwrap_or_else(|| "?".into())))
            .collect(),
        sql: format!("/api/v1/snapshots/{id}/download?repository={repo}"),
        sql_gz: format!("/api/v1/snapshots/{id}/download?repository={repo}&gzip=1"),
    });

    SnapshotPage {
        short: l.id.short(),
        repository: l.repository.clone(),
        facts,
        project: s
            .project
            .as_ref()
            .map(|p| (format!("/projects/{}", q(p)), p.clone())),
        parent: s.parent.map(|p| {
            (
                format!("/snapshots/{}?repository={repo}", p.to_hex()),
                p.short(),
            )
        }),
        crumbs,
        download_dir: download(&dir.path),
        restore_dir: restore(&dir.path),
        path: dir.path.clone(),
        entries,
        range,
        prev,
        next,
        database,
        nav,
    }
}
