//! Jobs: work that outlives its request (a backup run now, a restore, a restore test),
//! started by a POST that returns `202 {"job": {...}}` and followed by `GET /jobs/{id}` and
//! `GET /jobs/{id}/events` (server-sent events: `state`, `phase`, `progress`, then `result`
//! or `error` as the last).
//!
//! The registry is in memory: a restart forgets the jobs (each also ends in the audit
//! catalog). The work runs on a tokio blocking thread ([`Jobs::start`]) and reports through
//! its [`JobHandle`] (an engine [`Progress`] and a runner [`RunObserver`]); every change of
//! the job is made under its mutex and sent on its broadcast channel under that same lock,
//! so a subscriber that takes the current state and subscribes at once (under the lock)
//! misses nothing and sees nothing twice. Progress events are throttled (one per
//! [`PROGRESS_EVERY`]); the last event (`result` or `error`) is never throttled.
//!
//! A job is visible to the user (or token) that started it and to admins; to anybody else
//! it does not exist (404).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use strata_app::run::RunObserver;
use strata_engine::progress::{Phase, Progress, Totals};
use tokio::sync::broadcast;

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// At most one `progress` event per this long.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How many jobs the registry keeps: past it, the oldest finished ones are forgotten (the
/// catalog keeps what they did).
pub const KEEP_JOBS: usize = 1000;

/// How many events a slow subscriber may fall behind before it is resynchronised from
/// the job's state.
const CHANNEL: usize = 256;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn is_done(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

/// Bytes and files done so far; `total` when known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobProgress {
    pub bytes: u64,
    pub total: Option<u64>,
    pub files: u64,
}

/// Why a job failed: a stable code (as [`ApiError`]'s) and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// A job as `GET /jobs/{id}` shows it.
/// Whether `who` started `job` (the same name, and the same kind of caller).
fn owns(job: &Job, who: &Principal) -> bool {
    job.user == who.name && job.by_token == (who.via == crate::auth::Via::Token)
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    /// `run`, `restore`, `restore-test`.
    pub kind: String,
    pub project: Option<String>,
    /// Who started it (a user or a token's name).
    pub user: String,
    /// Whether a token started it (a token and a user may share a name; the job is only
    /// the one that started it's to see).
    #[serde(skip)]
    pub by_token: bool,
    pub state: JobState,
    /// What it is doing now (`backing up /srv/site`, `restoring`, ...).
    pub phase: Option<String>,
    pub progress: JobProgress,
    /// What it produced, once succeeded (its shape depends on the kind).
    pub result: Option<Value>,
    pub error: Option<JobError>,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: Option<String>,
    /// When it finished, for the registry's order.
    #[serde(skip)]
    pub finished_ns: Option<i64>,
}

/// What the events stream says, besides the first `state`.
#[derive(Debug, Clone)]
enum JobEvent {
    Phase(String),
    Progress(JobProgress),
    Result(Value),
    Error(JobError),
}

impl JobEvent {
    fn sse(&self) -> Event {
        let (name, data) = match self {
            JobEvent::Phase(p) => ("phase", serde_json::json!({ "phase": p })),
            JobEvent::Progress(p) => ("progress", serde_json::json!(p)),
            JobEvent::Result(r) => ("result", r.clone()),
            JobEvent::Error(e) => ("error", serde_json::json!(e)),
        };
        Event::default().event(name).data(data.to_string())
    }

    fn is_last(&self) -> bool {
        matches!(self, JobEvent::Result(_) | JobEvent::Error(_))
    }
}

struct Entry {
    job: Mutex<Job>,
    tx: broadcast::Sender<JobEvent>,
    /// When the last progress event was sent.
    last_progress: Mutex<Option<Instant>>,
}

impl Entry {
    fn lock(&self) -> MutexGuard<'_, Job> {
        // A panic while holding it leaves a job that is still worth showing.
        self.job.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the job and sends `event`, under the job's lock.
    fn update(&self, event: Option<JobEvent>, change: impl FnOnce(&mut Job)) {
        let mut job = self.lock();
        change(&mut job);
        if let Some(e) = event {
            // No subscriber is no error.
            let _ = self.tx.send(e);
        }
    }
}

/// How many jobs run at once; more wait their turn, `queued` (a backup and a restore at
/// once on a small machine is already plenty).
pub const RUNNING_AT_ONCE: usize = 2;

/// The jobs of the running server (in memory; each also ends in the audit catalog).
pub struct Jobs {
    jobs: Mutex<HashMap<String, Arc<Entry>>>,
    /// Permits to run ([`RUNNING_AT_ONCE`]).
    slots: Arc<tokio::sync::Semaphore>,
    /// Jobs started and not yet finished (queued or running).
    active: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            jobs: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(RUNNING_AT_ONCE)),
            active: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

/// What a job's work reports through: its phase and progress.
#[derive(Clone)]
pub struct JobHandle {
    entry: Arc<Entry>,
    now: fn() -> i64,
}

impl JobHandle {
    /// Says what the job does now (an event `phase`).
    pub fn phase(&self, what: &str) {
        self.entry
            .update(Some(JobEvent::Phase(what.to_string())), |j| {
                j.phase = Some(what.to_string())
            });
    }

    /// Changes the progress; sends an event at most every [`PROGRESS_EVERY`].
    fn progress(&self, change: impl FnOnce(&mut JobProgress)) {
        let mut job = self.entry.lock();
        change(&mut job.progress);
        let mut last = self
            .entry
            .last_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            *last = Some(Instant::now());
            let _ = self.entry.tx.send(JobEvent::Progress(job.progress));
        }
    }

    fn finish(&self, outcome: Result<Value, ApiError>) {
        let finished_ns = (self.now)();
        let finished = rfc3339(finished_ns);
        let progress = self.entry.lock().progress;
        // The final counts, whatever the throttle held back.
        let _ = self.entry.tx.send(JobEvent::Progress(progress));
        match outcome {
            Ok(v) => self
                .entry
                .update(Some(JobEvent::Result(v.clone())), move |j| {
                    j.state = JobState::Succeeded;
                    j.result = Some(v);
                    j.finished = Some(finished);
                    j.finished_ns = Some(finished_ns);
                }),
            Err(e) => {
                let err = JobError {
                    code: e.code.to_string(),
                    message: e.message,
                };
                self.entry
                    .update(Some(JobEvent::Error(err.clone())), move |j| {
                        j.state = JobState::Failed;
                        j.error = Some(err);
                        j.finished = Some(finished);
                        j.finished_ns = Some(finished_ns);
                    })
            }
        }
    }
}

impl Progress for JobHandle {
    fn phase(&self, phase: Phase) {
        let name = serde_json::to_value(phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{phase:?}"));
        JobHandle::phase(self, &name.replace('_', " "));
    }

    fn set_total(&self, bytes: u64) {
        self.progress(|p| p.total = Some(bytes));
    }

    fn set_totals(&self, totals: Totals) {
        if totals.complete {
            self.set_total(totals.bytes);
        }
    }

    fn add_bytes(&self, n: u64) {
        self.progress(|p| p.bytes = p.bytes.saturating_add(n));
    }

    fn add_item(&self) {
        self.progress(|p| p.files += 1);
    }

    fn file_done(&self, _path: &Path, _status: strata_engine::progress::FileStatus) {}
}

impl RunObserver for JobHandle {
    fn step(&self, project: &str, what: &str) {
        self.phase(&format!("{project}: {what}"));
    }
}

impl Jobs {
    /// Registers a job of `kind` for `who` and runs `work` on a blocking thread; returns
    /// the job as it is at the start. A panic in `work` fails the job (`internal`), never
    /// the server.
    pub fn start<F>(&self, kind: &str, project: Option<String>, who: &Principal, work: F) -> Job
    where
        F: FnOnce(&JobHandle) -> Result<Value, ApiError> + Send + 'static,
    {
        let id = hex::encode(rand::random::<[u8; 12]>());
        let job = Job {
            id: id.clone(),
            kind: kind.to_string(),
            project,
            user: who.name.clone(),
            by_token: who.via == crate::auth::Via::Token,
            state: JobState::Queued,
            phase: None,
            progress: JobProgress::default(),
            result: None,
            error: None,
            started: rfc3339(strata_engine::now_ns()),
            finished: None,
            finished_ns: None,
        };
        let (tx, _) = broadcast::channel(CHANNEL);
        let entry = Arc::new(Entry {
            job: Mutex::new(job.clone()),
            tx,
            last_progress: Mutex::new(None),
        });
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            if jobs.len() >= KEEP_JOBS {
                forget_oldest_finished(&mut jobs, KEEP_JOBS / 10);
            }
            jobs.insert(id, entry.clone());
        }
        let handle = JobHandle {
            entry,
            now: strata_engine::now_ns,
        };
        let slots = self.slots.clone();
        let active = self.active.clone();
        active.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Queued until a slot is free, then on a blocking thread (the engine is synchronous).
        tokio::spawn(async move {
            let permit = slots.acquire_owned().await;
            let done = tokio::task::spawn_blocking(move || {
                let outcome = match permit {
                    Ok(_permit) => {
                        handle.entry.update(None, |j| j.state = JobState::Running);
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&handle)))
                            .unwrap_or_else(|_| {
                                tracing::error!("a job's work panicked");
                                Err(ApiError::internal(
                                    "the job's work failed; see the server's log",
                                ))
                            })
                    }
                    Err(_) => Err(ApiError::unavailable("the server is stopping")),
                };
                handle.finish(outcome);
            });
            let _ = done.await;
            active.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
        job
    }

    /// The job `id` as `who` may see it: their own, or anybody's for an admin.
    fn entry(&self, id: &str, who: &Principal) -> Result<Arc<Entry>, ApiError> {
        let entry = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        match entry {
            Some(e) if who.role >= Role::Admin || owns(&e.lock(), who) => Ok(e),
            // Another user's job does not exist for this caller.
            _ => Err(ApiError::not_found(format!("no job {id}"))),
        }
    }

    /// Refuses jobs from now on: queued ones fail with `unavailable` ("the server is
    /// stopping") instead of starting; running ones go on.
    pub fn close(&self) {
        self.slots.close();
    }

    /// How many jobs are queued or running.
    pub fn active(&self) -> usize {
        self.active.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Returns once no job is queued or running.
    pub async fn idle(&self) {
        while self.active() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The job `id` now, as `who` may see it.
    pub fn get(&self, id: &str, who: &Principal) -> Result<Job, ApiError> {
        Ok(self.entry(id, who)?.lock().clone())
    }
}

/// Removes up to `n` finished jobs, those that finished first.
fn forget_oldest_finished(jobs: &mut HashMap<String, Arc<Entry>>, n: usize) {
    let mut done: Vec<(i64, String)> = jobs
        .iter()
        .filter_map(|(id, e)| e.lock().finished_ns.map(|f| (f, id.clone())))
        .collect();
    done.sort();
    for (_, id) in done.into_iter().take(n) {
        jobs.remove(&id);
    }
}

fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs/{id}", get(show))
        .route("/jobs/{id}/events", get(events))
}

/// `GET /jobs/{id}`.
async fn show(
    State(state): State<AppState>,
    p: Principal,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.jobs().get(&id, &p)?))
}

/// What the events stream still has to send.
struct Stream {
    entry: Arc<Entry>,
    /// Sent before anything from the channel: the state, and the last event of a job
    /// that had already ended.
    queued: std::collections::VecDeque<Event>,
    rx: broadcast::Receiver<JobEvent>,
    done: bool,
}

/// The current state of the job as the first events (and its end, when it has ended),
/// with a receiver subscribed under the same lock.
fn snapshot(
    entry: &Arc<Entry>,
) -> (
    std::collections::VecDeque<Event>,
    bool,
    broadcast::Receiver<JobEvent>,
) {
    let job = entry.lock();
    let rx = entry.tx.subscribe();
    let mut queued = std::collections::VecDeque::new();
    queued.push_back(
        Event::default()
            .event("state")
            .data(serde_json::to_string(&*job).unwrap_or_default()),
    );
    let last = match (&job.result, &job.error) {
        (_, Some(e)) if job.state.is_done() => Some(JobEvent::Error(e.clone())),
        (Some(r), _) if job.state.is_done() => Some(JobEvent::Result(r.clone())),
        _ => None,
    };
    let done = last.is_some();
    if let Some(e) = last {
        queued.push_back(e.sse());
    }
    (queued, done, rx)
}

/// `GET /jobs/{id}/events`: server-sent events. First `state` (the job as
/// `GET /jobs/{id}` shows it), then `phase`, `progress` (throttled) and, last, `result` or
/// `error`; the stream ends after the last.
async fn events(
    State(state): State<AppState>,
    p: Principal,
    UrlPath(id): UrlPath<String>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let entry = state.jobs().entry(&id, &p)?;
    let (queued, done, rx) = snapshot(&entry);
    let start = Stream {
        entry,
        queued,
        rx,
        done,
    };
    let stream = futures::stream::unfold(start, |mut s| async move {
        loop {
            if let Some(e) = s.queued.pop_front() {
                return Some((Ok(e), s));
            }
            if s.done {
                return None;
            }
            match s.rx.recv().await {
                Ok(e) => {
                    s.done = e.is_last();
                    return Some((Ok(e.sse()), s));
                }
                // Fallen behind: start again from the job's state.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let (queued, done, rx) = snapshot(&s.entry);
                    s.queued = queued;
                    s.done = done;
                    s.rx = rx;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Via;

    fn who(name: &str) -> Principal {
        Principal {
            name: name.into(),
            role: Role::Operator,
            via: Via::Token,
            address: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        }
    }

    async fn finished(jobs: &Jobs, id: &str, p: &Principal) -> Job {
        for _ in 0..500 {
            let j = jobs.get(id, p).unwrap();
            if j.state.is_done() {
                return j;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {id} did not finish");
    }

    /// A job's work ends in its result or error; a panic is a failed job, not a crash;
    /// another operator does not see it.
    #[tokio::test(flavor = "multi_thread")]
    async fn jobs_end_in_a_result_or_an_error() {
        let jobs = Jobs::default();
        let p = who("op");
        let ok = jobs.start("run", None, &p, |h| {
            h.add_bytes(5);
            Ok(serde_json::json!({"done": true}))
        });
        let bad = jobs.start("run", None, &p, |_| Err(ApiError::locked("held")));
        let boom = jobs.start("run", None, &p, |_| panic!("boom"));
        let j = finished(&jobs, &ok.id, &p).await;
        assert_eq!(j.state, JobState::Succeeded);
        assert_eq!(j.result, Some(serde_json::json!({"done": true})));
        assert_eq!(j.progress.bytes, 5);
        let j = finished(&jobs, &bad.id, &p).await;
        assert_eq!(j.state, JobState::Failed);
        assert_eq!(j.error.unwrap().code, "locked");
        let j = finished(&jobs, &boom.id, &p).await;
        assert_eq!(j.error.unwrap().code, "internal");
        assert_eq!(
            jobs.get(&ok.id, &who("other")).unwrap_err().code,
            "not_found"
        );
        // A user with the token's name is somebody else.
        let user = Principal {
            via: Via::Session { csrf: "x".into() },
            ..who("op")
        };
        assert_eq!(jobs.get(&ok.id, &user).unwrap_err().code, "not_found");
    }

    /// At most [`RUNNING_AT_ONCE`] jobs run; the next waits `queued` until a slot frees. Once
    /// the server stops ([`Jobs::close`]), a queued job fails instead of starting, and the
    /// running ones finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_beyond_the_limit_wait_queued_and_a_stop_fails_them() {
        let jobs = Jobs::default();
        let p = who("op");
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        // Opens the gate however the test ends: a failed assertion must fail the test, not
        // leave its jobs blocked (and the runtime waiting for them) forever.
        struct OpenOnDrop(Arc<(Mutex<bool>, std::sync::Condvar)>);
        impl Drop for OpenOnDrop {
            fn drop(&mut self) {
                let (open, cv) = &*self.0;
                *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
                cv.notify_all();
            }
        }
        let _release = OpenOnDrop(gate.clone());
        let blocked = |gate: Arc<(Mutex<bool>, std::sync::Condvar)>| {
            move |_: &JobHandle| {
                let (open, cv) = &*gate;
                let mut o = open.lock().unwrap();
                while !*o {
                    o = cv.wait(o).unwrap();
                }
                Ok(serde_json::json!({}))
            }
        };
        let running: Vec<Job> = (0..RUNNING_AT_ONCE)
            .map(|_| jobs.start("run", None, &p, blocked(gate.clone())))
            .collect();
        for j in &running {
            for _ in 0..500 {
                if jobs.get(&j.id, &p).unwrap().state == JobState::Running {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(jobs.get(&j.id, &p).unwrap().state, JobState::Running);
        }
        let waiting = jobs.start("run", None, &p, blocked(gate.clone()));
        // Every slot is held until the gate opens: it cannot have started.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(jobs.get(&waiting.id, &p).unwrap().state, JobState::Queued);
        assert_eq!(jobs.active(), RUNNING_AT_ONCE + 1);
        jobs.close();
        let j = finished(&jobs, &waiting.id, &p).await;
        assert_eq!(j.error.unwrap().code, "unavailable");
        {
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        for j in &running {
            assert_eq!(finished(&jobs, &j.id, &p).await.state, JobState::Succeeded);
        }
        jobs.idle().await;
        assert_eq!(jobs.active(), 0);
    }

    /// Past [`KEEP_JOBS`], the oldest finished jobs are forgotten; running ones never.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_registry_forgets_the_oldest_finished_jobs() {
        let jobs = Jobs::default();
        let p = who("op");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let running = jobs.start("run", None, &p, move |_| {
            let _ = rx.recv();
            Ok(Value::Null)
        });
        let mut ids = Vec::new();
        for _ in 0..KEEP_JOBS {
            let j = jobs.start("run", None, &p, |_| Ok(Value::Null));
            finished(&jobs, &j.id, &p).await;
            ids.push(j.id);
        }
        assert!(jobs.get(&running.id, &p).is_ok());
        assert!(jobs.get(&ids[0], &p).is_err(), "the oldest is forgotten");
        assert!(jobs.get(ids.last().unwrap(), &p).is_ok());
        assert!(jobs.jobs.lock().unwrap().len() <= KEEP_JOBS);
        tx.send(()).unwrap();
    }
}
