//! `/`: every project with its health (and why), its last backup per repository, its size
//! over time, its next scheduled run and a "Back up now" button; `/jobs/{id}`: a job's
//! progress (the page refreshes itself while it runs) and its result.

use askama::Template;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use strata_app::ops::Status;

use super::{age, bytes, render, see_other, when, Nav, Page, PageError, PageResult};
use crate::api::jobs::{Job, JobState};
use crate::api::read::{all_projects, Listed};
use crate::api::runs::start_run;
use crate::blocking::blocking;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/projects/{project}/run", post(run_now))
        .route("/jobs/{id}", get(job))
}

/// One project on the overview.
pub struct Card {
    pub name: String,
    /// `ok`, `warning`, `critical`, `unknown`.
    pub status: &'static str,
    /// What is not ok, for people.
    pub reasons: Vec<String>,
    pub repositories: Vec<RepoLine>,
    /// An inline SVG of the size of its snapshots over time (numbers only).
    pub chart: String,
    /// `in 3 h (2026-12-07 03:00 UTC)`, or `not scheduled`.
    pub next_run: String,
}

/// A project's last backup in one repository.
pub struct RepoLine {
    pub repository: String,
    /// `3 h ago`, or `never`.
    pub age: String,
    pub when: String,
    pub kind: &'static str,
    pub size: String,
    pub snapshot: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    nav: Nav,
    cards: Vec<Card>,
    /// The worst status over every project.
    status: &'static str,
}

async fn overview(State(state): State<AppState>, page: Page) -> PageResult {
    let cards = blocking(move || {
        let (projects, listed) = all_projects(&state)?;
        let now = state.now_ns();
        let tz = jiff::tz::TimeZone::system();
        Ok(projects
            .into_iter()
            .map(|p| {
                let reasons = p
                    .health
                    .iter()
                    .filter(|i| i.status != Status::Ok)
                    .map(|i| i.message.clone())
                    .collect();
                let repositories = p
                    .last_backup
                    .iter()
                    .map(|b| match &b.last_snapshot {
                        Some(s) => RepoLine {
                            repository: b.repository.clone(),
                            age: age(now, s.time_ns),
                            when: when(s.time_ns),
                            kind: s.kind,
                            size: bytes(s.size),
                            snapshot: Some(s.id.clone()),
                            error: None,
                        },
                        None => RepoLine {
                            repository: b.repository.clone(),
                            age: "never".into(),
                            when: String::new(),
                            kind: "",
                            size: String::new(),
                            snapshot: None,
                            error: b.error.clone(),
                        },
                    })
                    .collect();
                let next_run = state
                    .config()
                    .projects
                    .get(&p.name)
                    .and_then(|c| c.schedule.as_ref())
                    .map(|s| match s.next_slot(now, &tz) {
                        Some(t) => format!("{} ({}, {})", age(now, t), when(t), s.text),
                        None => format!("none within fifty years ({})", s.text),
                    })
                    .unwrap_or_else(|| "not scheduled".into());
                Card {
                    chart: size_chart(&sizes(&listed, &p.name, p.repositories.first())),
                    name: p.name,
                    status: p.status.name(),
                    reasons,
                    repositories,
                    next_run,
                }
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let status = ["unknown", "critical", "warning"]
        .into_iter()
        .find(|s| cards.iter().any(|c| c.status == *s))
        .unwrap_or("ok");
    Ok(render(&Overview {
        nav: page.nav.at("overview"),
        cards,
        status,
    }))
}

/// The (time, size) of `project`'s snapshots in `repository`, oldest first.
pub fn sizes(listed: &Listed, project: &str, repository: Option<&String>) -> Vec<(i64, u64)> {
    let Some(Ok(list)) = repository.and_then(|r| listed.get(r)) else {
        return Vec::new();
    };
    list.iter()
        .filter(|(_, s)| s.project.as_deref() == Some(project))
        .map(|(_, s)| (s.time_ns, s.summary.size()))
        .collect()
}

/// An inline SVG line chart of sizes over time (its text is made of numbers only; the
/// page states the latest size in words beside it). Empty for no snapshot.
pub fn size_chart(points: &[(i64, u64)]) -> String {
    const W: f64 = 240.0;
    const H: f64 = 48.0;
    if points.is_empty() {
        return String::new();
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let span = (t1 - t0).max(1) as f64;
    let xy: Vec<String> = points
        .iter()
        .map(|(t, v)| {
            let x = if points.len() == 1 {
                W / 2.0
            } else {
                (*t - t0) as f64 / span * (W - 4.0) + 2.0
            };
            let y = H - 2.0 - (*v as f64 / max) * (H - 6.0);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let dots: String = xy
        .iter()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            format!(r#"<circle cx="{x}" cy="{y}" r="2"/>"#)
        })
        .collect();
    format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="size of {n} snapshots over time, largest {max}"><title>size over time ({n} snapshots, largest {max})</title><polyline points="{pts}"/>{dots}</svg>"#,
        n = points.len(),
        max = bytes(max as u64),
        pts = xy.join(" "),
    )
}

/// "Back up now" (an operator's form post): the run starts as a job, and the browser goes
/// to its page.
async fn run_now(
    State(state): State<AppState>,
    page: Page,
    Path(project): Path<String>,
) -> PageResult {
    let who = page.who.clone();
    let job = blocking(move || start_run(&state, &who, &project)).await?;
    Ok(see_other(&format!("/jobs/{}", job.id)))
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    nav: Nav,
    job: Job,
    done: bool,
    state: &'static str,
    /// `1.2 GiB of 3.4 GiB`, or `1.2 GiB`.
    progress: String,
    /// Percent done, when the total is known.
    percent: Option<u64>,
    /// The result as JSON, indented, for a person to read.
    result: String,
    /// What the job left to look at: a snapshot it made or restored, a project.
    links: Vec<(String, String)>,
}

/// `/jobs/{id}`: the job's state, phase and progress; the page reloads itself every
/// second until the job is done (no script needed).
async fn job(State(state): State<AppState>, page: Page, Path(id): Path<String>) -> PageResult {
    let job = state.jobs().get(&id, &page.who).map_err(PageError)?;
    let p = job.progress;
    let progress = match p.total {
        Some(t) => format!("{} of {}, {} files", bytes(p.bytes), bytes(t), p.files),
        None => format!("{}, {} files", bytes(p.bytes), p.files),
    };
    let percent = p
        .total
        .filter(|t| *t > 0)
        .map(|t| (p.bytes.min(t) * 100) / t);
    let result = job
        .result
        .as_ref()
        .and_then(|r| serde_json::to_string_pretty(r).ok())
        .unwrap_or_default();
    let mut links = Vec::new();
    if let Some(project) = &job.project {
        links.push((
            format!("/projects/{}", super::q(project)),
            format!("project {project}"),
        ));
    }
    if let Some(r) = &job.result {
        // A snapshot id is of the job's repository (the same backup copied elsewhere has
        // another id, but say which).
        let of = r
            .get("repository")
            .and_then(|v| v.as_str())
            .map(|name| format!("?repository={}", super::q(name)))
            .unwrap_or_default();
        for key in ["snapshot", "safety_snapshot"] {
            if let Some(id) = r.get(key).and_then(|v| v.as_str()) {
                links.push((
                    format!("/snapshots/{id}{of}"),
                    format!("{key} {id:.8}").replace('_', " "),
                ));
            }
        }
    }
    let state_name = match job.state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
    };
    Ok(render(&JobPage {
        nav: page.nav,
        done: job.state.is_done(),
        state: state_name,
        progress,
        percent,
        result,
        links,
        job,
    }))
}
