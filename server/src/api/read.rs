//! Reading: projects with their health, snapshots across the config's repositories, one
//! directory level of a snapshot, health, the audit log, statistics and metrics. Every
//! route needs at least a viewer; the engine and the catalog are called on blocking
//! threads.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_app::catalog::{self, Catalog, Entry, LogFilter};
use strata_app::config::Config;
use strata_app::health::{self, HealthReport, StorageProbe};
use strata_app::ops::{History, Nothing, Query as CatalogQuery, RecordKind, Status};
use strata_engine::snapshots::{self, SnapshotList};
use strata_engine::treewalk::{self, Found};
use strata_engine::Operation;
use strata_format::id::SnapshotId;
use strata_format::snapshot::{SnapshotFile, SourceKind};
use strata_format::tree::{Node, NodeKind};

use crate::auth::Principal;
use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects", get(projects))
        .route("/projects/{project}", get(project))
        .route("/snapshots", get(list_snapshots))
        .route("/snapshots/{id}", get(one_snapshot))
        .route("/snapshots/{id}/tree", get(tree))
        .route("/health", get(health_report))
        .route("/log", get(log))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
}

/// `2026-12-07T03:30:00Z` (UTC, to the second), as the CLI's JSON writes times.
pub fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The catalog of the config's state directory, read only; none yet is an empty history.
fn history(cfg: &Config) -> Result<Box<dyn History>, ApiError> {
    Ok(match Catalog::open_read_only(&cfg.state_dir)? {
        Some(c) => Box::new(c),
        None => Box::new(Nothing),
    })
}

/// The health of every project of the config, now.
pub fn evaluate(state: &AppState) -> Result<(HealthReport, Box<dyn History>), ApiError> {
    let cfg = state.config();
    let history = history(cfg)?;
    let report = health::evaluate(
        cfg,
        history.as_ref(),
        state.now_ns(),
        &StorageProbe::new(cfg),
    );
    Ok((report, history))
}

/// The kind of a snapshot as the dashboard names it: files, postgres, mysql, sqlite or
/// command (a command's output is a standard input snapshot).
pub fn kind(s: &SnapshotFile) -> &'static str {
    match s.source {
        SourceKind::Stdin { .. } => "command",
        ref other => strata_db::kind_name(other),
    }
}

/// One snapshot as the API shows it (a documented contract: add fields, never rename).
pub fn snapshot_json(
    repository: &str,
    id: &SnapshotId,
    s: &SnapshotFile,
    now_ns: i64,
    with_meta: bool,
) -> Value {
    let held = s.keep_until_ns.filter(|u| *u > now_ns);
    let mut v = json!({
        "repository": repository,
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": rfc3339(s.time_ns),
        "time_ns": s.time_ns,
        "kind": kind(s),
        "host": s.hostname,
        "project": s.project,
        "paths": s.paths,
        "tags": s.tags,
        "size": s.summary.size(),
        "added": s.summary.bytes_added,
        "held": held.is_some(),
        "held_until": held.map(rfc3339),
        "parent": s.parent.map(|p| p.to_hex()),
        "summary": s.summary,
    });
    if with_meta {
        let meta: BTreeMap<&str, &str> = s
            .source_meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        v["source_meta"] = json!(meta);
        v["original"] = json!(s.original.map(|o| o.to_hex()));
    }
    v
}

/// The repository names a request covers: the one named (404 when the config has none of
/// that name), else every repository of the config.
pub fn repositories(state: &AppState, named: Option<&str>) -> Result<Vec<String>, ApiError> {
    let all = &state.config().repositories;
    match named {
        Some(name) if all.contains_key(name) => Ok(vec![name.to_string()]),
        Some(name) => Err(ApiError::not_found(format!("no repository named {name}"))),
        None => Ok(all.keys().cloned().collect()),
    }
}

/// The snapshots of each repository a request has listed so far (each listed once).
pub type Listed = BTreeMap<String, Result<SnapshotList, ApiError>>;

/// A project as `GET /projects` shows it and the dashboard draws it (a documented contract:
/// add fields, never rename).
#[derive(Debug, Clone, Serialize)]
pub struct ProjectSummary {
    pub name: String,
    pub repositories: Vec<String>,
    /// The worst status of its health items.
    pub status: Status,
    pub health: Vec<health::Item>,
    pub last_backup: Vec<LastBackup>,
}

/// A project's newest backup in one of its repositories.
#[derive(Debug, Clone, Serialize)]
pub struct LastBackup {
    pub repository: String,
    /// The newest snapshot of the project in the repository itself (backups made outside
    /// `strata run` too).
    pub last_snapshot: Option<SnapshotRef>,
    /// The last successful backup the catalog recorded.
    pub last_success: Option<String>,
    /// Why the repository could not be listed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRef {
    pub id: String,
    pub time: String,
    pub kind: &'static str,
    #[serde(skip)]
    pub time_ns: i64,
    #[serde(skip)]
    pub size: u64,
}

/// The project `name` of the config with its health (from `report`) and its newest backup
/// per repository; `None` when the config has no such project. Repositories are listed
/// into `listed`, once per request.
pub fn project_summary(
    state: &AppState,
    name: &str,
    report: &HealthReport,
    history: &dyn History,
    listed: &mut Listed,
) -> Option<ProjectSummary> {
    let project = state.config().projects.get(name)?;
    let health: Vec<health::Item> = report
        .items
        .iter()
        .filter(|i| i.project == name)
        .cloned()
        .collect();
    let status = health.iter().map(|i| i.status).max().unwrap_or(Status::Ok);
    let mut last_backup = Vec::new();
    for repo in &project.repositories {
        let q = CatalogQuery {
            project: Some(name.to_string()),
            repository: Some(repo.clone()),
            kind: Some(RecordKind::Backup),
            ok_only: true,
            since_ns: None,
            limit: Some(1),
        };
        let recorded = history.last(&q).ok().flatten();
        let list = listed
            .entry(repo.clone())
            .or_insert_with(|| state.snapshots(repo));
        let newest = list.as_ref().map(|list| {
            list.iter()
                .rev()
                .find(|(_, s)| s.project.as_deref() == Some(name))
        });
        let (last_snapshot, error) = match newest {
            Ok(Some((id, s))) => (
                Some(SnapshotRef {
                    id: id.to_hex(),
                    time: rfc3339(s.time_ns),
                    kind: kind(s),
                    time_ns: s.time_ns,
                    size: s.summary.size(),
                }),
                None,
            ),
            Ok(None) => (None, None),
            Err(e) => (None, Some(e.message.clone())),
        };
        last_backup.push(LastBackup {
            repository: repo.clone(),
            last_snapshot,
            last_success: recorded.map(|r| rfc3339(r.time_ns)),
            error,
        });
    }
    Some(ProjectSummary {
        name: name.to_string(),
        repositories: project.repositories.clone(),
        status,
        health,
        last_backup,
    })
}

/// Every project of the config (in the order of their names) with its health, and the
/// repositories listed on the way. Call it on a blocking thread.
pub fn all_projects(state: &AppState) -> Result<(Vec<ProjectSummary>, Listed), ApiError> {
    let (report, history) = evaluate(state)?;
    let mut listed = Listed::new();
    let out = state
        .config()
        .projects
        .keys()
        .filter_map(|name| project_summary(state, name, &report, history.as_ref(), &mut listed))
        .collect();
    Ok((out, listed))
}

/// `GET /projects`: each project of the config with its health and last backup per
/// repository.
async fn projects(
    State(state): State<AppState>,
    _p: Principal,
) -> Result<Json<Vec<ProjectSummary>>, ApiError> {
    blocking(move || Ok(Json(all_projects(&state)?.0))).await
}

/// `GET /projects/{p}`.
async fn project(
    State(state): State<AppState>,
    _p: Principal,
    Path(name): Path<String>,
) -> Result<Json<ProjectSummary>, ApiError> {
    blocking(move || {
        let (report, history) = evaluate(&state)?;
        project_summary(&state, &name, &report, history.as_ref(), &mut Listed::new())
            .map(Json)
            .ok_or_else(|| ApiError::not_found(format!("no project named {name:?}")))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct SnapshotsQuery {
    project: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
    /// Pagination (all optional; without them the whole list, oldest first).
    #[serde(flatten)]
    page: PageQuery,
}

/// `GET /snapshots?project=&repository=&tag=&order=&offset=&limit=`: oldest first (or
/// newest first with `order=newest`), across the config's repositories unless one is
/// named; `offset` and `limit` cut one page out of that order. The response carries the
/// number of matching snapshots in `X-Total-Count`.
async fn list_snapshots(
    State(state): State<AppState>,
    _p: Principal,
    Query(q): Query<SnapshotsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let names = repositories(&state, q.repository.as_deref())?;
    let page = q.page.parse()?;
    blocking(move || {
        let now = state.now_ns();
        let lists = names
            .iter()
            .map(|name| Ok((name, state.snapshots(name)?)))
            .collect::<Result<Vec<_>, ApiError>>()?;
        let mut all = Vec::new();
        for (name, list) in &lists {
            for (id, s) in list.iter() {
                if q.project
                    .as_ref()
                    .is_some_and(|p| s.project.as_ref() != Some(p))
                {
                    continue;
                }
                if q.tag.as_ref().is_some_and(|t| !s.tags.contains(t)) {
                    continue;
                }
                all.push((s.time_ns, name, id, s));
            }
        }
        // Stable: snapshots of the same time keep their repository's order (the id),
        // so pages never overlap or skip.
        all.sort_by_key(|(t, _, _, _)| *t);
        let total = all.len();
        let (skip, take) = page.window(total);
        if page.newest_first {
            all.reverse();
        }
        let list: Vec<Value> = all
            .iter()
            .skip(skip)
            .take(take)
            .map(|(_, name, id, s)| snapshot_json(name, id, s, now, false))
            .collect();
        Ok((
            [(
                header::HeaderName::from_static("x-total-count"),
                total.to_string(),
            )],
            Json(json!(list)),
        ))
    })
    .await
}

/// The pagination parameters of a list, as the client wrote them (checked by
/// [`PageQuery::parse`], so a bad number is a `422` that names it).
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    order: Option<String>,
    offset: Option<String>,
    limit: Option<String>,
}

/// One page of a list: the order, how many to skip, how many at most to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    newest_first: bool,
    offset: usize,
    limit: Option<usize>,
}

impl PageQuery {
    fn parse(&self) -> Result<Page, ApiError> {
        let newest_first = match self.order.as_deref() {
            None | Some("oldest") => false,
            Some("newest") => true,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "order={other:?}: give `oldest` (the default) or `newest`"
                )))
            }
        };
        let number = |name: &str, v: &Option<String>| -> Result<Option<usize>, ApiError> {
            v.as_deref()
                .map(|s| {
                    s.parse::<usize>().map_err(|_| {
                        ApiError::invalid(format!(
                            "{name}={s:?}: give a whole number of snapshots (0 or more)"
                        ))
                    })
                })
                .transpose()
        };
        Ok(Page {
            newest_first,
            offset: number("offset", &self.offset)?.unwrap_or(0),
            limit: number("limit", &self.limit)?,
        })
    }
}

impl Page {
    /// How many of `total` to skip, and how many to take after them.
    fn window(&self, total: usize) -> (usize, usize) {
        let skip = self.offset.min(total);
        let take = self.limit.unwrap_or(usize::MAX).min(total - skip);
        (skip, take)
    }
}

#[cfg(test)]
mod page_tests {
    use super::{Page, PageQuery};

    fn page(order: Option<&str>, offset: Option<&str>, limit: Option<&str>) -> Page {
        PageQuery {
            order: order.map(String::from),
            offset: offset.map(String::from),
            limit: limit.map(String::from),
        }
        .parse()
        .unwrap()
    }

    #[test]
    fn pages_cut_a_list() {
        assert_eq!(page(None, None, None).window(30), (0, 30));
        assert_eq!(page(None, Some("10"), Some("10")).window(30), (10, 10));
        assert_eq!(page(None, Some("25"), Some("10")).window(30), (25, 5));
        assert_eq!(page(None, Some("30"), Some("10")).window(30), (30, 0));
        assert_eq!(page(None, Some("99"), None).window(30), (30, 0));
        assert_eq!(page(None, None, Some("0")).window(30), (0, 0));
        assert!(page(Some("newest"), None, None).newest_first);
        assert!(!page(Some("oldest"), None, None).newest_first);
    }

    #[test]
    fn bad_page_parameters_are_refused() {
        for (order, offset, limit) in [
            (Some("new"), None, None),
            (None, Some("-1"), None),
            (None, None, Some("ten")),
            (None, None, Some("")),
            (None, Some("1e3"), None),
        ] {
            let q = PageQuery {
                order: order.map(String::from),
                offset: offset.map(String::from),
                limit: limit.map(String::from),
            };
            assert_eq!(q.parse().unwrap_err().code, "invalid", "{q:?}");
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct OneQuery {
    pub repository: Option<String>,
}

/// A snapshot found by id or unique prefix, with the repository it is in.
pub struct Located {
    pub repository: String,
    pub id: SnapshotId,
    pub snapshot: SnapshotFile,
    pub opened: strata_app::Opened,
}

/// Finds the snapshot `spec` (an id or a unique hex prefix) in the named repository or in
/// every repository of the config, opened for `op`: not hex → 422 `invalid`, none → 404,
/// more than one → 409 `conflict`. Call it on a blocking thread.
pub fn locate(
    state: &AppState,
    spec: &str,
    repository: Option<&str>,
    op: Operation,
) -> Result<Located, ApiError> {
    if spec.is_empty() || spec.len() > 64 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(format!(
            "{spec:?} is not a snapshot id: give an id or a hex prefix of one"
        )));
    }
    let spec = spec.to_ascii_lowercase();
    let mut found: Vec<(String, SnapshotId, strata_app::Opened)> = Vec::new();
    for name in repositories(state, repository)? {
        let opened = state.open(&name, op)?;
        match snapshots::resolve(&opened.repo, &spec) {
            Ok(id) => found.push((name, id, opened)),
            Err(e) if e.kind() == strata_engine::ErrorKind::NotFound => {}
            // The spec is hex, so the one refusal left is an ambiguous prefix.
            Err(e) if e.kind() == strata_engine::ErrorKind::Invalid => {
                return Err(ApiError::conflict(e.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|(n, _, _)| n.as_str()).collect();
        return Err(ApiError::conflict(format!(
            "snapshot {spec} is in several repositories ({}): name one with ?repository=",
            names.join(", ")
        )));
    }
    let Some((repository, id, opened)) = found.pop() else {
        return Err(ApiError::not_found(format!("no snapshot matches {spec}")));
    };
    let snapshot = snapshots::load(&opened.repo, &id)?;
    Ok(Located {
        repository,
        id,
        snapshot,
        opened,
    })
}

/// `GET /snapshots/{id}?repository=`: one snapshot, with what its source recorded.
async fn one_snapshot(
    State(state): State<AppState>,
    _p: Principal,
    Path(id): Path<String>,
    Query(q): Query<OneQuery>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let l = locate(&state, &id, q.repository.as_deref(), Operation::Snapshots)?;
        Ok(Json(snapshot_json(
            &l.repository,
            &l.id,
            &l.snapshot,
            state.now_ns(),
            true,
        )))
    })
    .await
}

/// A snapshot path from a request: absolute, normalised (no empty, `.` or `..`
/// component, no trailing `/` but the root's), no NUL. Anything else is 422 `invalid`: a
/// path in a request names a place in a snapshot, never on the host.
pub fn snapshot_path(path: Option<&str>) -> Result<&str, ApiError> {
    let path = path.unwrap_or("/");
    let bad = |why: &str| {
        Err(ApiError::invalid(format!(
            "{path:?} is not a snapshot path: {why}"
        )))
    };
    if path.contains('\0') {
        return bad("it holds a NUL byte");
    }
    if !path.starts_with('/') {
        return bad("it must start with /");
    }
    if path == "/" {
        return Ok(path);
    }
    for comp in path[1..].split('/') {
        match comp {
            "" => return bad("empty components and a trailing / are not allowed"),
            "." | ".." => return bad("`.` and `..` are not allowed"),
            _ => {}
        }
    }
    Ok(path)
}

#[derive(Debug, Deserialize)]
struct TreeQuery {
    path: Option<String>,
    repository: Option<String>,
    /// At most this many entries (default: all).
    limit: Option<usize>,
    /// Skip this many entries first (default: 0).
    offset: Option<usize>,
}

fn node_kind(node: &Node) -> &'static str {
    node.kind.name()
}

/// `name` under the snapshot directory `parent`.
pub fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn entry_json(parent: &str, node: &Node) -> Value {
    let name = String::from_utf8_lossy(&node.name).into_owned();
    let path = child_path(parent, &name);
    let mut v = json!({
        "name": name,
        "path": path,
        "type": node_kind(node),
        "size": node.size,
        "mtime": rfc3339(node.mtime_ns),
        "mtime_ns": node.mtime_ns,
        "mode": node.mode,
    });
    if let NodeKind::Symlink { target } = &node.kind {
        v["link_target"] = json!(String::from_utf8_lossy(target));
    }
    v
}

/// The order of a directory's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirOrder {
    /// By name (raw bytes), as the tree stores them: the API's order.
    Name,
    /// Directories first, each group by name: the dashboard's.
    DirsFirst,
}

/// One page of the entries directly in a directory of a snapshot.
pub struct DirPage {
    pub located: Located,
    /// The directory (a normalised snapshot path).
    pub path: String,
    /// How many entries the directory holds.
    pub total: usize,
    /// Where in them this page starts.
    pub offset: usize,
    pub entries: Vec<Node>,
}

impl DirPage {
    /// Where the next page starts, when there is one.
    pub fn next_offset(&self) -> Option<usize> {
        let end = self.offset.saturating_add(self.entries.len());
        (end < self.total).then_some(end)
    }
}

/// Entries `offset..offset + limit` (all from `offset` without a limit) of directory
/// `path` (a checked [`snapshot_path`]) of snapshot `spec`, in `order`: a path not in the
/// snapshot is 404, one that is not a directory 422 `invalid`. The directory's tree is
/// read whole (one blob); only the page is returned. Call it on a blocking thread.
pub fn list_dir(
    state: &AppState,
    spec: &str,
    repository: Option<&str>,
    path: &str,
    order: DirOrder,
    offset: usize,
    limit: Option<usize>,
) -> Result<DirPage, ApiError> {
    let l = locate(state, spec, repository, Operation::Ls)?;
    let repo = &l.opened.repo;
    let tree_id = match treewalk::resolve(repo, &l.snapshot.tree, path.as_bytes())? {
        Found::Root(t) => t,
        Found::Node { node, .. } => match node.kind {
            NodeKind::Dir { subtree } => subtree,
            _ => {
                return Err(ApiError::invalid(format!(
                    "{path} is a {}, not a directory",
                    node.kind.name()
                )))
            }
        },
    };
    let mut nodes = repo.load_tree(&tree_id)?.nodes;
    if order == DirOrder::DirsFirst {
        // Stable: each group stays in name order.
        nodes.sort_by_key(|n| !matches!(n.kind, NodeKind::Dir { .. }));
    }
    let total = nodes.len();
    let entries = nodes
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    Ok(DirPage {
        located: l,
        path: path.to_string(),
        total,
        offset,
        entries,
    })
}

/// `GET /snapshots/{id}/tree?path=&limit=&offset=`: the entries directly in one directory
/// of a snapshot (all of them unless `limit` is given).
async fn tree(
    State(state): State<AppState>,
    _p: Principal,
    Path(id): Path<String>,
    Query(q): Query<TreeQuery>,
) -> Result<Json<Value>, ApiError> {
    let path = snapshot_path(q.path.as_deref())?.to_string();
    blocking(move || {
        let page = list_dir(
            &state,
            &id,
            q.repository.as_deref(),
            &path,
            DirOrder::Name,
            q.offset.unwrap_or(0),
            q.limit,
        )?;
        let entries: Vec<Value> = page.entries.iter().map(|n| entry_json(&path, n)).collect();
        Ok(Json(json!({
            "repository": page.located.repository,
            "snapshot": page.located.id.to_hex(),
            "path": path,
            "total": page.total,
            "offset": page.offset,
            "next_offset": page.next_offset(),
            "entries": entries,
        })))
    })
    .await
}

/// `GET /health`: the report as `strata health --json` prints it; 200 whatever the status
/// (the status is in the body).
async fn health_report(State(state): State<AppState>, _p: Principal) -> Json<Value> {
    let r = blocking(move || Ok(evaluate(&state)?.0)).await;
    match r.and_then(|r| serde_json::to_value(r).map_err(|e| ApiError::internal(e.to_string()))) {
        Ok(v) => Json(v),
        Err(e) => Json(json!({"status": "unknown", "error": e.message, "items": []})),
    }
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    project: Option<String>,
    repository: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
    failed: Option<bool>,
}

/// A time `since` names: a span back from `now_ns` (`30d`, `12h`) or a time (UTC unless
/// it names a zone or offset).
pub fn since_ns(since: &str, now_ns: i64) -> Result<i64, ApiError> {
    use strata_engine::retention::{parse_span, parse_time, subtract_span};
    let utc = jiff::tz::TimeZone::UTC;
    if let Ok(span) = parse_span(since) {
        return Ok(subtract_span(now_ns, span, &utc));
    }
    parse_time(since, &utc).map_err(|e| {
        ApiError::invalid(format!(
            "since={since:?}: neither a span such as `30d` or `12h` nor a time ({e})"
        ))
    })
}

/// The record kind named `k` (422 `invalid` naming the kinds there are).
pub fn record_kind(k: &str) -> Result<RecordKind, ApiError> {
    RecordKind::parse(k).ok_or_else(|| {
        let all: Vec<&str> = RecordKind::ALL.iter().map(|k| k.name()).collect();
        ApiError::invalid(format!(
            "kind={k:?} is not a kind of record (kinds: {})",
            all.join(", ")
        ))
    })
}

/// The audit log's records `query` and `filter` select, newest first (at most
/// `query.limit`), as `GET /log` and the dashboard's `/log` read them; none without a
/// catalog. Call it on a blocking thread.
pub fn read_log(
    state: &AppState,
    query: &CatalogQuery,
    filter: &LogFilter,
) -> Result<Vec<Entry>, ApiError> {
    match Catalog::open_read_only(&state.config().state_dir)? {
        Some(cat) => Ok(cat.entries_filtered(query, filter)?),
        None => Ok(Vec::new()),
    }
}

/// A catalog entry as `strata log --json` prints it.
fn entry_of(e: &Entry) -> Value {
    let mut v = serde_json::to_value(&e.record).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("seq".into(), json!(e.seq));
        m.insert("hash".into(), json!(hex::encode(e.hash)));
        m.insert("time".into(), json!(rfc3339(e.record.time_ns)));
        m.insert("kind".into(), json!(e.record.kind().name()));
    }
    v
}

/// The most records `GET /log` answers with (and its default `limit`).
pub const LOG_LIMIT: usize = 1000;

/// `GET /log?project=&repository=&kind=&since=&limit=&failed=`: the catalog's records,
/// oldest first (the newest `limit`).
async fn log(
    State(state): State<AppState>,
    _p: Principal,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = q.kind.as_deref().map(record_kind).transpose()?;
    let since = q
        .since
        .as_deref()
        .map(|s| since_ns(s, state.now_ns()))
        .transpose()?;
    blocking(move || {
        // The newest LOG_LIMIT at most: a catalog of years is not one response.
        let query = CatalogQuery {
            project: q.project,
            repository: q.repository,
            kind,
            ok_only: false,
            since_ns: since,
            limit: Some(q.limit.unwrap_or(LOG_LIMIT).min(LOG_LIMIT)),
        };
        let filter = LogFilter {
            failed_only: q.failed.unwrap_or(false),
            ..LogFilter::default()
        };
        let mut entries = read_log(&state, &query, &filter)?;
        entries.reverse();
        Ok(Json(json!(entries
            .iter()
            .map(entry_of)
            .collect::<Vec<_>>())))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    project: Option<String>,
    since: Option<String>,
}

/// `GET /stats?project=&since=`: the project's runs from the catalog, as `strata stats
/// --project P --json` prints them.
async fn stats(
    State(state): State<AppState>,
    _p: Principal,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let Some(project) = q.project else {
        return Err(ApiError::invalid("name the project: /stats?project=NAME"));
    };
    if !state.config().projects.contains_key(&project) {
        return Err(ApiError::not_found(format!("no project named {project:?}")));
    }
    let since = q
        .since
        .as_deref()
        .map(|s| since_ns(s, state.now_ns()))
        .transpose()?;
    blocking(move || {
        let stats = match Catalog::open_read_only(&state.config().state_dir)? {
            Some(cat) => catalog::project_stats(&cat, &project, since)?,
            None => catalog::ProjectStats {
                project: project.clone(),
                runs: Vec::new(),
                sources: Vec::new(),
            },
        };
        let runs: Vec<Value> = stats
            .runs
            .iter()
            .map(|run| {
                let mut v = serde_json::to_value(run).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("time".into(), json!(rfc3339(run.time_ns)));
                }
                v
            })
            .collect();
        Ok(Json(json!({
            "project": project,
            "runs": runs,
            "sources": stats.sources,
        })))
    })
    .await
}

/// `GET /metrics`: Prometheus text, as `strata health --prometheus FILE` writes it.
async fn metrics(
    State(state): State<AppState>,
    _p: Principal,
) -> Result<impl IntoResponse, ApiError> {
    let text = blocking(move || {
        let (report, history) = evaluate(&state)?;
        Ok(health::render(&report, history.as_ref()))
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

#[cfg(test)]
mod tests {
    use super::snapshot_path;

    #[test]
    fn snapshot_paths_are_normalised_and_absolute() {
        for ok in ["/", "/a", "/a/b.txt", "/a b/..c", "/.hidden"] {
            assert_eq!(snapshot_path(Some(ok)).unwrap(), ok);
        }
        assert_eq!(snapshot_path(None).unwrap(), "/");
        for bad in [
            "",
            "a",
            "../etc",
            "/..",
            "/a/..",
            "/a/../b",
            "/./a",
            "/a/",
            "//a",
            "/a//b",
            "/a\0b",
            "etc/passwd",
        ] {
            let e = snapshot_path(Some(bad)).unwrap_err();
            assert_eq!(e.code, "invalid", "{bad:?}");
        }
    }
}
