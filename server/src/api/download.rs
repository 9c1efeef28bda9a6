//! Downloads (operator or above; each one recorded in the audit catalog with its outcome):
//! `GET /snapshots/{id}/download?path=&repository=&gzip=`
//! - a file: its content with `Content-Length`, `Accept-Ranges: bytes` and one `Range`
//!   (206 with `Content-Range`; 416 when it cannot be satisfied; several ranges are
//!   answered with the whole file);
//! - a directory (`/` or no path: the whole snapshot) as a `.tar.gz` (see
//!   `strata_app::export::tar`);
//! - a database or command snapshot without a path: its one file, the SQL dump;
//! - `gzip=1` (a file): gzipped, as `NAME.gz` (no length, no ranges).
//!
//! `HEAD` answers the same status and headers without reading any content (see [`head`]).
//!
//! The content is read on a blocking thread and sent through a bounded channel as the
//! client takes it: no file is held in memory. Every blob is checked against its content
//! id as the restorer checks it (`restorer::write_content`); a failure after the headers
//! went out breaks the connection, so the client never takes a short body for a whole one.

use std::io::Write;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use strata_engine::restorer;
use strata_engine::treewalk::{self, Found};
use strata_engine::{Operation, Repository};
use strata_format::id::BlobId;
use strata_format::snapshot::SourceKind;
use strata_format::tree::{Node, NodeKind};
use tokio::sync::mpsc;

use crate::api::read::{locate, snapshot_path, Located};
use crate::audit::Access;
use crate::auth::{Principal, Role};
use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/snapshots/{id}/download", get(download).head(head))
}

/// Bytes sent to the client per message, and messages in flight: the memory a download
/// holds is at most about their product.
const CHUNK: usize = 64 << 10;
const IN_FLIGHT: usize = 8;

#[derive(Debug, Deserialize)]
struct DownloadQuery {
    path: Option<String>,
    repository: Option<String>,
    gzip: Option<String>,
}

/// What a download sends.
enum Plan {
    /// A file's content, whole or one range of it.
    File {
        node: Node,
        range: Option<(u64, u64)>,
    },
    /// A file gzipped.
    Gzip { node: Node },
    /// A directory (or the whole snapshot: `dir` is `None`) as a `.tar.gz`.
    Tar {
        dir: Option<(Vec<u8>, Node)>,
        root: BlobId,
    },
}

/// The client's one byte range of a file of `size` bytes: `Ok(None)` for the whole file
/// (no `Range`, one that is not `bytes=`, malformed, or several ranges, which a server may
/// ignore), `Ok(Some((first, last)))` inclusive, `Err(())` when it cannot be satisfied.
fn range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => Ok(None),
            Some(0) => Err(()),
            Some(_) if size == 0 => Err(()),
            Some(n) => Ok(Some((size.saturating_sub(n), size - 1))),
        },
        (first, last) => {
            let Some(first) = number(first) else {
                return Ok(None);
            };
            let last = if last.is_empty() {
                u64::MAX
            } else {
                match number(last) {
                    Some(l) if l >= first => l,
                    _ => return Ok(None),
                }
            };
            if first >= size {
                return Err(());
            }
            Ok(Some((first, last.min(size - 1))))
        }
    }
}

/// `name` as an attachment: an ASCII fallback and the exact name (RFC 6266, 5987).
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// A `Write` that sends what is written to the response, `CHUNK` bytes at a time, waiting
/// while the client is behind; a client gone is a broken pipe.
struct ToClient {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ToClient {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for ToClient {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Passes on bytes `[skip, skip + take)` of what is written to it, then stops the writer
/// (an error the caller recognises by `done`).
struct Window<W> {
    inner: W,
    skip: u64,
    take: u64,
    done: bool,
}

impl<W: Write> Write for Window<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.take == 0 {
            self.done = true;
            return Err(std::io::Error::other("the range is complete"));
        }
        let skipped = self.skip.min(data.len() as u64) as usize;
        self.skip -= skipped as u64;
        let rest = &data[skipped..];
        let n = (rest.len() as u64).min(self.take) as usize;
        self.inner.write_all(&rest[..n])?;
        self.take -= n as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes what `plan` sends to `out`.
fn write(repo: &Repository, plan: Plan, out: ToClient) -> Result<(), ApiError> {
    match plan {
        Plan::File { node, range: None } => {
            let mut out = out;
            let written = restorer::write_content(repo, &node, &mut out)?;
            if written != node.size {
                return Err(ApiError::internal(format!(
                    "the snapshot says {} bytes, the content has {written}",
                    node.size
                )));
            }
            out.flush().map_err(gone)
        }
        Plan::File {
            node,
            range: Some((first, last)),
        } => {
            let (node, skip) = covering(repo, node, first, last);
            let mut w = Window {
                inner: out,
                skip,
                take: last - first + 1,
                done: false,
            };
            match restorer::write_content(repo, &node, &mut w) {
                Ok(_) if w.take == 0 => {}
                Ok(_) => {
                    return Err(ApiError::internal(
                        "the content ended before the range did".to_string(),
                    ))
                }
                Err(_) if w.done => {}
                Err(e) => return Err(e.into()),
            }
            w.inner.flush().map_err(gone)
        }
        Plan::Gzip { node } => {
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            restorer::write_content(repo, &node, &mut gz)?;
            gz.finish().map_err(gone)?.flush().map_err(gone)
        }
        Plan::Tar { dir, root } => {
            let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            let gz = strata_app::export::tar(repo, dir, root, gz)?;
            gz.finish().map_err(gone)?.flush().map_err(gone)
        }
    }
}

/// The part of file `node` that holds bytes `first..=last`: a node of only the chunks that
/// cover them (their lengths from the index, so a range near the end of a large file
/// reads only its end), and where `first` is in that part. The whole file (and `first`)
/// when a chunk is not in the index (reading it then fails as a restore would).
fn covering(repo: &Repository, node: Node, first: u64, last: u64) -> (Node, u64) {
    let NodeKind::File { content } = &node.kind else {
        return (node, first);
    };
    let index = repo.index();
    let (mut start, mut from) = (0u64, None);
    for (i, id) in content.iter().enumerate() {
        let Some(loc) = index.get(id) else {
            return (node, first);
        };
        let end = start + u64::from(loc.raw_length);
        if from.is_none() && first < end {
            from = Some((i, start));
        }
        if let Some((i0, s0)) = from {
            if last < end {
                let part = Node {
                    kind: NodeKind::File {
                        content: content[i0..=i].to_vec(),
                    },
                    size: end - s0,
                    ..node.clone()
                };
                return (part, first - s0);
            }
        }
        start = end;
    }
    (node, first)
}

fn gone(e: std::io::Error) -> ApiError {
    ApiError::unavailable(format!("sending the download failed: {e}"))
}

/// The last component of a snapshot path, as a file name (the snapshot's short id for
/// its root).
fn base_name(path: &[u8], fallback: &str) -> String {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
    if name.is_empty() {
        fallback.to_string()
    } else {
        String::from_utf8_lossy(name).into_owned()
    }
}

/// The checked parameters of a download.
struct Asked {
    /// The snapshot id or prefix, as given.
    id: String,
    repository: Option<String>,
    /// The snapshot path (`/` when none was given).
    path: String,
    /// Whether `path` was given (a database snapshot without one is its dump).
    explicit: bool,
    gzip: bool,
}

/// What a download will send, found (trees only: no file content is read).
struct Prepared {
    located: Located,
    plan: Plan,
    name: String,
    kind: &'static str,
    size: Option<Size>,
}

/// Checks a download's role and parameters (a refusal is audited as a download when
/// `audit`).
fn ask(
    state: &AppState,
    p: &Principal,
    id: &str,
    q: &DownloadQuery,
    audit: bool,
) -> Result<Asked, ApiError> {
    let target = format!("{id}:{}", q.path.as_deref().unwrap_or("/"));
    let refuse = |e: ApiError| {
        if !audit {
            return e;
        }
        state.audit(
            Some(p),
            p.address,
            Access {
                action: "download",
                target: target.clone(),
                project: None,
                repository: q.repository.clone(),
            },
            Err(&e.message),
        );
        e
    };
    p.require(Role::Operator, "downloading").map_err(refuse)?;
    let path = snapshot_path(q.path.as_deref())
        .map_err(refuse)?
        .to_string();
    let gzip = match q.gzip.as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(refuse(ApiError::invalid(format!(
                "gzip={other:?}: give 1 or 0"
            ))))
        }
    };
    Ok(Asked {
        id: id.to_string(),
        repository: q.repository.clone(),
        path,
        explicit: q.path.is_some(),
        gzip,
    })
}

/// Finds what `asked` sends: the snapshot, the file or directory, its name, type and
/// length. Reads trees only. Call it on a blocking thread.
fn prepare(st: &AppState, asked: &Asked, headers: &HeaderMap) -> Result<Prepared, ApiError> {
    let (id, path, gzip) = (&asked.id, &asked.path, asked.gzip);
    let l = locate(st, id, asked.repository.as_deref(), Operation::Dump)?;
    let snap = &l.snapshot;
    let short = l.id.short();
    let repo = &l.opened.repo;
    let single = strata_db::is_database(snap) || matches!(snap.source, SourceKind::Stdin { .. });
    let (plan, name, kind, size) = if single && !asked.explicit {
        let node =
            strata_db::dump_node(repo, snap).map_err(|e| ApiError::invalid(e.to_string()))?;
        let name = String::from_utf8_lossy(&node.name).into_owned();
        file_plan(node, name, gzip, headers)?
    } else {
        match treewalk::resolve(repo, &snap.tree, path.as_bytes())? {
            Found::Root(root) => (
                Plan::Tar { dir: None, root },
                format!("{short}.tar.gz"),
                "application/gzip",
                None,
            ),
            Found::Node { path: at, node } => match node.kind {
                NodeKind::Dir { .. } => (
                    Plan::Tar {
                        dir: Some((at.clone(), node)),
                        root: BlobId::default(),
                    },
                    format!("{}.tar.gz", base_name(&at, &short)),
                    "application/gzip",
                    None,
                ),
                NodeKind::File { .. } => {
                    let name = base_name(&at, &short);
                    file_plan(node, name, gzip, headers)?
                }
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{path} is a {}: only files and directories can be downloaded",
                        node.kind.name()
                    )))
                }
            },
        }
    };
    Ok(Prepared {
        located: l,
        plan,
        name,
        kind,
        size,
    })
}

/// The response a download sends, `body` after the headers.
fn response(body: Body, name: &str, kind: &'static str, size: Option<Size>) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_DISPOSITION, disposition(name));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    match size {
        None => {}
        Some(Size::Whole(n)) => {
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        Some(Size::Part { first, last, of }) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = resp.headers_mut();
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(last - first + 1));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{of}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
        }
    }
    resp
}

/// `GET /snapshots/{id}/download?path=&repository=&gzip=1`.
async fn download(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asked = ask(&state, &p, &id, &q, true)?;
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let st = state.clone();
    let who = p.clone();
    // One blocking task finds what to send, reports the response's head, then streams.
    tokio::task::spawn_blocking(move || {
        let path = &asked.path;
        let access = |l: Option<&Located>| Access {
            action: "download",
            target: match l {
                Some(l) => format!("{}:{path}", l.id.to_hex()),
                None => format!("{}:{path}", asked.id),
            },
            project: l.and_then(|l| l.snapshot.project.clone()),
            repository: l.map(|l| l.repository.clone()).or(asked.repository.clone()),
        };
        let prepared = match prepare(&st, &asked, &headers) {
            Ok(x) => x,
            Err(e) => {
                st.audit(Some(&who), who.address, access(None), Err(&e.message));
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let Prepared {
            located: l,
            plan,
            name,
            kind,
            size,
        } = prepared;
        let _ = ready_tx.send(Ok((name, kind, size)));
        let out = ToClient {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let outcome = write(&l.opened.repo, plan, out);
        match &outcome {
            Ok(()) => st.audit(Some(&who), who.address, access(Some(&l)), Ok(())),
            Err(e) => {
                tracing::warn!("a download of {} failed: {e}", access(Some(&l)).target);
                st.audit(Some(&who), who.address, access(Some(&l)), Err(&e.message));
                let _ = tx.blocking_send(Err(std::io::Error::other(e.message.clone())));
            }
        }
    });
    let head = ready_rx
        .await
        .map_err(|_| ApiError::internal("the download failed; see the server's log"))?;
    let (name, kind, size) = head?;
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Ok(response(body, &name, kind, size))
}

/// `HEAD /snapshots/{id}/download?path=&repository=&gzip=1`: the status and headers the
/// `GET` would answer, without a body and without reading the file's content (only the
/// snapshot's trees). `Range` is ignored, as RFC 9110 asks of every method but `GET`:
/// `Content-Length` is the whole file's. Not audited, refused or not: no content leaves
/// the server, and what a `HEAD` tells (a name, a type, a length) is what `GET /tree`
/// tells a viewer, which is not audited either.
async fn head(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let asked = ask(&state, &p, &id, &q, false)?;
    let st = state.clone();
    let (name, kind, size) = blocking(move || {
        let p = prepare(&st, &asked, &HeaderMap::new())?;
        Ok((p.name, p.kind, p.size))
    })
    .await?;
    Ok(response(Body::empty(), &name, kind, size))
}

/// What the response says of its length.
enum Size {
    Whole(u64),
    Part { first: u64, last: u64, of: u64 },
}

/// A file's download: whole, one range (416 when it cannot be satisfied), or gzipped.
#[allow(clippy::type_complexity)]
fn file_plan(
    node: Node,
    name: String,
    gzip: bool,
    headers: &HeaderMap,
) -> Result<(Plan, String, &'static str, Option<Size>), ApiError> {
    let kind = if name.ends_with(".sql") {
        "application/sql"
    } else {
        "application/octet-stream"
    };
    if gzip {
        return Ok((
            Plan::Gzip { node },
            format!("{name}.gz"),
            "application/gzip",
            None,
        ));
    }
    let size = node.size;
    match range(headers, size) {
        Ok(None) => Ok((
            Plan::File { node, range: None },
            name,
            kind,
            Some(Size::Whole(size)),
        )),
        Ok(Some((first, last))) => Ok((
            Plan::File {
                node,
                range: Some((first, last)),
            },
            name,
            kind,
            Some(Size::Part {
                first,
                last,
                of: size,
            }),
        )),
        Err(()) => {
            let mut e = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file has {size} bytes: the range asked for is not in it"),
            );
            // RFC 9110: a 416 says how long the file is.
            if let Ok(v) = axum::http::HeaderValue::from_str(&format!("bytes */{size}")) {
                e.headers.push((axum::http::header::CONTENT_RANGE, v));
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        range(&h, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range(&HeaderMap::new(), 10), Ok(None));
        assert_eq!(r("bytes=0-0", 10), Ok(Some((0, 0))));
        assert_eq!(r("bytes=2-5", 10), Ok(Some((2, 5))));
        assert_eq!(r("bytes=2-", 10), Ok(Some((2, 9))));
        assert_eq!(r("bytes=2-100", 10), Ok(Some((2, 9))));
        assert_eq!(r("bytes=-3", 10), Ok(Some((7, 9))));
        assert_eq!(r("bytes=-30", 10), Ok(Some((0, 9))));
        assert_eq!(r("bytes=10-", 10), Err(()));
        assert_eq!(r("bytes=10-20", 10), Err(()));
        assert_eq!(r("bytes=-0", 10), Err(()));
        assert_eq!(r("bytes=0-", 0), Err(()));
        // Ignored: whole file.
        assert_eq!(r("bytes=5-2", 10), Ok(None));
        assert_eq!(r("bytes=0-1,4-5", 10), Ok(None));
        assert_eq!(r("items=0-1", 10), Ok(None));
        assert_eq!(r("bytes=a-b", 10), Ok(None));
        assert_eq!(r("bytes=18446744073709551616-", 10), Ok(None));
    }

    #[test]
    fn names() {
        assert_eq!(
            disposition("a b.txt"),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            disposition("x\"\\é\n.sql"),
            "attachment; filename=\"x____.sql\"; filename*=UTF-8''x%22%5C%C3%A9%0A.sql"
        );
    }
}
