//! Backing up one [`Source`] as one snapshot: paths with the archiver, databases with
//! `strata-db`, commands as a stream of their standard output. A source that runs past
//! its timeout is stopped: the engine is cancelled, and the dump tool's or command's whole
//! process group is killed (a child blocked without output too).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use strata_db::{backup_database_with, Database, DbPassword, ToolOptions};
use strata_engine::archiver::{self, BackupOptions, BackupResult, StreamBackup, StreamFile};
use strata_engine::progress::{CancelToken, Cancellable, Progress};
use strata_engine::Repository;
use strata_format::snapshot::SourceKind;

use super::hooks::tail;
use crate::config::{DatabaseSource, DbKind, Source};

/// The kind a report and a record give a source: `files`, `postgres`, `mysql`, `sqlite`,
/// `command`.
pub(crate) fn kind_name(source: &Source) -> &'static str {
    match source {
        Source::Paths { .. } => "files",
        Source::Database(d) => d.kind.name(),
        Source::Command { .. } => "command",
        Source::PgCluster(_) => crate::pitr::base::TAG,
    }
}

/// Backs up `source` into `repo` with `opts` (tags, project, time), stopped after
/// `timeout`. The error is one line for people.
pub(crate) fn back_up(
    repo: &Repository,
    source: &Source,
    opts: &BackupOptions,
    timeout: Option<Duration>,
    env: &[(&str, &str)],
    progress: &dyn Progress,
) -> Result<BackupResult, String> {
    let started = Instant::now();
    let token = CancelToken::new();
    let watchdog = Watchdog::start(timeout, token.clone());
    let progress = Cancellable {
        inner: progress,
        token,
    };
    let result = match source {
        Source::Paths { paths, exclude } => {
            let opts = BackupOptions {
                excludes: exclude.clone(),
                ..opts.clone()
            };
            archiver::backup_paths(repo, paths, &opts, &progress).map_err(|e| e.to_string())
        }
        Source::Database(d) => back_up_database(repo, d, opts, timeout, &progress),
        Source::Command { name, run } => {
            back_up_command(repo, name, run, opts, env, &watchdog, &progress)
        }
        Source::PgCluster(c) => match opts.project.as_deref() {
            Some(project) => crate::pitr::basebackup::take(repo, project, c, opts, &progress)
                .map(|(r, _)| r)
                .map_err(|e| e.to_string()),
            None => Err("a base backup belongs to a project".to_string()),
        },
    };
    let timed_out =
        watchdog.fired() || timeout.is_some_and(|t| result.is_err() && started.elapsed() >= t);
    match (result, timeout) {
        (Err(_), Some(t)) if timed_out => {
            Err(format!("timed out after {}", humantime::format_duration(t)))
        }
        (r, _) => r,
    }
}

/// The database a source names, with its password.
pub(crate) fn database(d: &DatabaseSource) -> Result<Database, String> {
    let mut db = match d.kind {
        DbKind::Postgres => Database::postgres(&d.location),
        DbKind::Mysql => Database::mysql(&d.location),
        DbKind::Sqlite => Database::sqlite(std::path::Path::new(&d.location)),
    }
    .map_err(|e| e.to_string())?;
    if let Some(secret) = &d.password {
        let pw = secret
            .read("database password")
            .map_err(|e| e.to_string())?;
        let pw = String::from_utf8(pw.into_bytes())
            .map_err(|_| "the database password is not UTF-8".to_string())?;
        if let Some(server) = db.server_mut() {
            server.set_password(DbPassword::new(pw));
        }
    }
    let has_password = db.server_mut().is_some_and(|s| s.password().is_some());
    strata_db::check_prefix(&d.exec_prefix, has_password)
        .map_err(|e| format!("{}: {e}", db.display()))?;
    Ok(db)
}

fn back_up_database(
    repo: &Repository,
    d: &DatabaseSource,
    opts: &BackupOptions,
    timeout: Option<Duration>,
    progress: &dyn Progress,
) -> Result<BackupResult, String> {
    let db = database(d)?;
    let tools = ToolOptions {
        exec_prefix: d.exec_prefix.clone(),
        deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
    };
    backup_database_with(repo, &db, opts, progress, &tools).map_err(|e| e.to_string())
}

/// `sh -c RUN`'s standard output as the stream `name`; the snapshot is written only when
/// the command exited successfully.
fn back_up_command(
    repo: &Repository,
    name: &str,
    run: &str,
    opts: &BackupOptions,
    env: &[(&str, &str)],
    watchdog: &Watchdog,
    progress: &dyn Progress,
) -> Result<BackupResult, String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(run)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("command {name}: could not start sh: {e}"))?;
    watchdog.set_group(Some(child.id()));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let collector = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all);
        all
    });
    let backup = StreamBackup::new(repo, opts, progress).map_err(|e| e.to_string());
    let read = backup.as_ref().map_err(Clone::clone).and_then(|b| {
        b.read(
            &mut stdout,
            repo.config().chunker,
            &format!("command {name}"),
        )
        .map_err(|e| e.to_string())
    });
    drop(stdout);
    if read.is_err() {
        kill_group(child.id());
    }
    let status = child.wait();
    watchdog.set_group(None);
    let said = tail(&collector.join().unwrap_or_default());
    let status = status.map_err(|e| format!("command {name}: {e}"))?;
    let (content, size) = read?;
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let last = said.lines().last().unwrap_or_default();
        return Err(if last.is_empty() {
            format!("command {name} failed ({how})")
        } else {
            format!("command {name} failed ({how}): {last}")
        });
    }
    backup?
        .finish(
            StreamFile {
                name: name.to_string(),
                content,
                size,
            },
            SourceKind::Stdin {
                filename: name.to_string(),
            },
            vec![format!("/{name}")],
            Vec::new(),
        )
        .map_err(|e| e.to_string())
}

fn kill_group(pgid: u32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Stops a source at its timeout: cancels the engine and kills the process group it was
/// told of. Dropped, it stands down.
struct Watchdog {
    _stop: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    group: Arc<Mutex<Option<u32>>>,
}

impl Watchdog {
    fn start(timeout: Option<Duration>, token: CancelToken) -> Watchdog {
        let fired = Arc::new(AtomicBool::new(false));
        let group = Arc::new(Mutex::new(None::<u32>));
        let stop = timeout.map(|t| {
            let (tx, rx) = mpsc::channel::<()>();
            let (fired, group) = (fired.clone(), group.clone());
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(t) {
                    fired.store(true, Ordering::SeqCst);
                    token.cancel();
                    if let Some(pgid) = *group.lock().unwrap_or_else(|e| e.into_inner()) {
                        kill_group(pgid);
                    }
                }
            });
            tx
        });
        Watchdog {
            _stop: stop,
            fired,
            group,
        }
    }

    /// The process group to kill at the timeout (None once it has been waited for).
    fn set_group(&self, pgid: Option<u32>) {
        *self.group.lock().unwrap_or_else(|e| e.into_inner()) = pgid;
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}
