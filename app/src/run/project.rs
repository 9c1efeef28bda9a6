//! One project's run, from its lock to its notices (the steps are in the module docs of
//! [`super`]).

use std::time::Instant;

use strata_engine::archiver::BackupOptions;
use strata_engine::progress::NoProgress;
use strata_engine::{copy, snapshots, Operation};
use strata_format::evidence::{CatalogHead, EvidenceFile, EvidenceKind};
use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;

use super::context::{Problems, ProjectRun};
use super::hooks::run_hook;
use super::lock::{self, LockError};
use super::report::{
    CopyItem, HookItem, MaintenanceItem, ProjectReport, ProjectStatus, SnapshotReport,
};
use super::{maintenance, retention, sources};
use crate::config::Project;
use crate::ops::{Event, Query, Record, RecordBody, RecordKind};

impl ProjectRun<'_> {
    pub fn run(&self, project: &Project) -> ProjectReport {
        let name = project.name.as_str();
        let started = Instant::now();
        let started_ns = self.env.clock.now_ns();
        let mut report = ProjectReport::new(name);
        let _lock = if self.sel.dry_run {
            None
        } else {
            match lock::acquire(&self.cfg.state_dir, name, started_ns, self.run_id) {
                Ok(l) => Some(l),
                // From the scheduler (`--due`), a project still running its last slot is
                // not due again: skipped, not an error every few minutes of a long run.
                // Named on the command line, it is exit 11 with the message.
                Err(LockError::Held(message)) => {
                    report.status = if self.sel.due {
                        ProjectStatus::Skipped
                    } else {
                        ProjectStatus::Locked
                    };
                    report.error = Some(message);
                    return report;
                }
                Err(LockError::Io(message)) => {
                    report.status = ProjectStatus::Failed;
                    report.error = Some(format!("project {name}: run lock: {message}"));
                    return report;
                }
            }
        };
        if self.sel.due && !super::project_due(project.schedule.as_ref(), name, self.env) {
            report.status = ProjectStatus::Skipped;
            return report;
        }
        if !self.sel.dry_run {
            self.notify(
                project,
                Event::Start,
                None,
                &report,
                format!("{name}: backup started"),
            );
        }
        let mut problems = Problems::default();
        let mut partial = false;
        let env_vars = [
            ("STRATA_PROJECT", name),
            ("STRATA_RUN_ID", self.run_id.as_str()),
        ];

        let hook_timeout = project
            .timeout
            .unwrap_or(super::hooks::DEFAULT_HOOK_TIMEOUT);
        let before_ok = match (&project.before, self.sel.dry_run) {
            (Some(cmd), false) => {
                self.env.observer.step(name, "before hook");
                let hook = run_hook("before", cmd, &env_vars, hook_timeout);
                self.record_hook(name, &hook);
                let ok = hook.ok;
                if !ok {
                    problems.add(hook.failure());
                }
                report.hooks.push(hook);
                ok
            }
            _ => true,
        };

        if before_ok {
            let made = self.back_up(project, &mut report, &mut problems, &mut partial);
            self.copy(project, &made, &mut report, &mut problems);
            self.retention(project, &mut report, &mut problems);
            maintenance::run(self, project, &mut report, &mut problems);
        }

        if let (Some(cmd), false) = (&project.after, self.sel.dry_run) {
            self.env.observer.step(name, "after hook");
            let status = if problems.is_empty() { "ok" } else { "failed" };
            let mut vars = env_vars.to_vec();
            vars.push(("STRATA_RUN_STATUS", status));
            let hook = run_hook("after", cmd, &vars, hook_timeout);
            self.record_hook(name, &hook);
            if !hook.ok {
                problems.add(hook.failure());
            }
            report.hooks.push(hook);
        }

        report.error = problems.joined();
        report.status = if report.error.is_some() {
            ProjectStatus::Failed
        } else if partial {
            ProjectStatus::Partial
        } else {
            ProjectStatus::Ok
        };
        report.duration_s = started.elapsed().as_secs_f64();
        if !self.sel.dry_run {
            self.finish(project, started_ns, &report);
        }
        report
    }

    /// Backs up every source into the primary; returns the snapshots made. The primary
    /// stays open (for the copies) only inside this call.
    fn back_up(
        &self,
        project: &Project,
        report: &mut ProjectReport,
        problems: &mut Problems,
        partial: &mut bool,
    ) -> Vec<(SnapshotId, SnapshotFile)> {
        let name = project.name.as_str();
        let primary = project.primary();
        let mut made = Vec::new();
        let planned =
            |source: &crate::config::Source, status: &str, error: Option<String>| SnapshotReport {
                repository: primary.to_string(),
                source: source.label(),
                kind: sources::kind_name(source).to_string(),
                snapshot_id: None,
                bytes_read: 0,
                bytes_total: 0,
                bytes_added: 0,
                files: 0,
                status: status.to_string(),
                error,
            };
        if self.sel.dry_run {
            for s in &project.sources {
                report.snapshots.push(planned(s, "planned", None));
            }
            return made;
        }
        let opened = match self.open(primary, Operation::Backup) {
            Ok(o) => o,
            Err(e) => {
                for s in &project.sources {
                    report.snapshots.push(planned(s, "failed", Some(e.clone())));
                    self.record_backup(name, primary, s, None, Some(&e), 0);
                }
                problems.add(e);
                return made;
            }
        };
        let mut tags = vec![format!("strata-run:{}", self.run_id)];
        tags.extend(self.sel.tags.iter().cloned());
        let env_vars = [
            ("STRATA_PROJECT", name),
            ("STRATA_RUN_ID", self.run_id.as_str()),
        ];
        for source in &project.sources {
            let label = source.label();
            self.env.observer.step(name, &format!("backing up {label}"));
            let opts = BackupOptions {
                tags: tags.clone(),
                hostname: self.env.host.clone(),
                project: Some(name.to_string()),
                time_ns: Some(self.env.clock.now_ns()),
                ..BackupOptions::default()
            };
            let t = Instant::now();
            let result = sources::back_up(
                &opened.repo,
                source,
                &opts,
                project.timeout,
                &env_vars,
                &NoProgress,
            );
            let took = t.elapsed().as_nanos() as i64;
            match result {
                Ok(r) => {
                    let s = &r.snapshot.summary;
                    let unreadable = r.errors.len() as u64;
                    let mut item = planned(source, "ok", None);
                    item.snapshot_id = Some(r.snapshot_id.to_hex());
                    item.bytes_read = s.bytes_read;
                    item.bytes_total = s.bytes_total;
                    item.bytes_added = s.bytes_added;
                    item.files = s.files_new + s.files_changed + s.files_unchanged;
                    if unreadable > 0 {
                        *partial = true;
                        item.status = "partial".into();
                        item.error = Some(format!(
                            "{unreadable} source entries could not be read: {}",
                            r.errors
                                .iter()
                                .take(3)
                                .map(|f| f.message.clone())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ));
                    }
                    self.record(Record {
                        time_ns: self.env.clock.now_ns(),
                        project: Some(name.to_string()),
                        repository: Some(primary.to_string()),
                        run_id: Some(self.run_id.clone()),
                        ok: true,
                        error: item.error.clone(),
                        user: None,
                        body: RecordBody::Backup {
                            source: label.clone(),
                            source_kind: item.kind.clone(),
                            snapshot_id: item.snapshot_id.clone(),
                            bytes_read: s.bytes_read,
                            bytes_total: s.bytes_total,
                            bytes_added: s.bytes_added,
                            stored_bytes: s.bytes_added,
                            files: item.files,
                            duration_ns: took,
                            unreadable,
                        },
                    });
                    report.snapshots.push(item);
                    made.push((r.snapshot_id, r.snapshot));
                }
                Err(e) => {
                    let e = format!("{label}: {e}");
                    self.record_backup(name, primary, source, None, Some(&e), took);
                    report
                        .snapshots
                        .push(planned(source, "failed", Some(e.clone())));
                    problems.add(e);
                }
            }
        }
        // Copies read the primary after its lock is given back; they take their own.
        drop(opened);
        made
    }

    /// Copies `made` from the primary to every other repository.
    fn copy(
        &self,
        project: &Project,
        made: &[(SnapshotId, SnapshotFile)],
        report: &mut ProjectReport,
        problems: &mut Problems,
    ) {
        let name = project.name.as_str();
        let primary = project.primary();
        let others = &project.repositories[1..];
        if others.is_empty() {
            return;
        }
        if self.sel.dry_run {
            for to in others {
                report.copies.push(CopyItem {
                    from: primary.to_string(),
                    to: to.clone(),
                    snapshot_id: "(the new snapshots)".to_string(),
                    dest_id: None,
                    bytes_added: 0,
                });
            }
            return;
        }
        // A cluster's WAL goes to every target on each run, new snapshots or not.
        if made.is_empty() && project.pitr.is_none() {
            return;
        }
        let from = match self.open(primary, Operation::CopyFrom) {
            Ok(f) => f,
            Err(e) => {
                problems.add(format!("copying: {e}"));
                return;
            }
        };
        for to_name in others {
            self.env
                .observer
                .step(name, &format!("copying to {to_name}"));
            let to = match self.open(to_name, Operation::CopyTo) {
                Ok(t) => t,
                Err(e) => {
                    problems.add(format!("copying to {to_name}: {e}"));
                    for (id, _) in made {
                        self.record_copy(name, primary, to_name, id, None, 0, Some(&e));
                    }
                    continue;
                }
            };
            let mut wal_copy_failed = false;
            if project.pitr.is_some() {
                // Before the snapshots: a base backup in the target needs its WAL there.
                self.env
                    .observer
                    .step(name, &format!("copying WAL to {to_name}"));
                // Only what the target's base backups (those there and those copied now)
                // need: what its expiry dropped is not copied again.
                let bases = snapshots::list_readable(&to.repo).map(|mut there| {
                    there.extend(made.iter().cloned());
                    crate::pitr::base::of_project(&there, name).0
                });
                let needed = bases.ok().and_then(|b| crate::pitr::expire::needed_by(&b));
                let wanted = |n: &str| needed.as_ref().is_none_or(|f| f(n));
                let r = strata_engine::wal::copy_archive(&from.repo, &to.repo, name, &wanted)
                    .map_err(|e| e.to_string());
                wal_copy_failed |= r.is_err();
                if let Err(e) = &r {
                    problems.add(format!("copying WAL to {to_name}: {e}"));
                }
                report.maintenance.push(MaintenanceItem {
                    repository: to_name.clone(),
                    what: "wal-copy".to_string(),
                    ok: r.is_ok(),
                    error: r.err(),
                });
            }
            let mut todo = catch_up(&from.repo, &to.repo, name, made);
            if wal_copy_failed {
                // A base backup there without its WAL could not even start: it waits for
                // a run whose WAL copy succeeds.
                todo.retain(|(_, s)| !s.tags.iter().any(|t| t == crate::pitr::base::TAG));
            }
            for entry in &todo {
                let id = entry.0;
                match copy::copy(
                    &from.repo,
                    &to.repo,
                    std::slice::from_ref(entry),
                    &NoProgress,
                ) {
                    Ok(r) => {
                        let dest = r.copied.first().map(|(_, d)| *d);
                        self.record_copy(name, primary, to_name, &id, dest, r.bytes_added, None);
                        report.copies.push(CopyItem {
                            from: primary.to_string(),
                            to: to_name.clone(),
                            snapshot_id: id.to_hex(),
                            dest_id: dest.map(|d| d.to_hex()),
                            bytes_added: r.bytes_added,
                        });
                    }
                    Err(e) => {
                        let e = format!("copying {} to {to_name}: {e}", id.short());
                        self.record_copy(name, primary, to_name, &id, None, 0, Some(&e));
                        problems.add(e);
                    }
                }
            }
        }
    }

    /// Each repository's retention.
    fn retention(&self, project: &Project, report: &mut ProjectReport, problems: &mut Problems) {
        let name = project.name.as_str();
        for repo_name in &project.repositories {
            let Some(policy) = project.retention.get(repo_name) else {
                continue;
            };
            if policy.keep.is_empty() {
                continue;
            }
            self.env
                .observer
                .step(name, &format!("retention in {repo_name}"));
            let op = if self.sel.dry_run {
                Operation::Snapshots
            } else {
                Operation::Forget
            };
            let outcome = self.open(repo_name, op).and_then(|o| {
                retention::apply(
                    &o.repo,
                    repo_name,
                    name,
                    policy,
                    self.env.clock.now_ns(),
                    self.sel.dry_run,
                )
            });
            match outcome {
                Ok(out) => {
                    for f in out.forgotten {
                        if !self.sel.dry_run {
                            self.record_retention(
                                name,
                                repo_name,
                                &f.snapshot_id,
                                "forget",
                                &f.reasons,
                                None,
                            );
                        }
                        report.forgotten.push(f);
                    }
                    for (h, until) in out.held {
                        if !self.sel.dry_run {
                            self.record_retention(
                                name,
                                repo_name,
                                &h.new_id,
                                "hold",
                                &h.reasons,
                                Some(until),
                            );
                        }
                        report.held.push(h);
                    }
                }
                Err(e) => problems.add(format!("retention in {repo_name}: {e}")),
            }
        }
    }

    /// The run's record and notices.
    fn finish(&self, project: &Project, started_ns: i64, report: &ProjectReport) {
        let name = project.name.as_str();
        let previous = self
            .env
            .history
            .last(&Query {
                project: Some(name.to_string()),
                kind: Some(RecordKind::Run),
                ..Query::default()
            })
            .unwrap_or_else(|e| {
                tracing::warn!("reading the history of {name}: {e}");
                None
            });
        let ok = report.status != ProjectStatus::Failed;
        let mut ids: Vec<String> = report
            .snapshots
            .iter()
            .filter_map(|s| s.snapshot_id.clone())
            .collect();
        ids.extend(report.copies.iter().filter_map(|c| c.dest_id.clone()));
        self.record(Record {
            time_ns: self.env.clock.now_ns(),
            project: Some(name.to_string()),
            repository: Some(project.primary().to_string()),
            run_id: Some(self.run_id.clone()),
            ok,
            error: report.error.clone(),
            user: None,
            body: RecordBody::Run {
                trigger: self.sel.trigger.clone(),
                started_ns,
                exit_code: super::exit_code([report.status]),
                snapshots: ids,
                pid: std::process::id(),
            },
        });
        self.write_evidence(project, report);
        if ok {
            let summary = format!("{name}: backup {}", report.status.name());
            self.notify(project, Event::Success, None, report, summary.clone());
            if previous.is_some_and(|r| !r.ok) {
                self.notify(
                    project,
                    Event::Recovered,
                    None,
                    report,
                    format!("{name}: recovered"),
                );
            }
        } else {
            let first = report
                .error
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("");
            self.notify(
                project,
                Event::Failure,
                None,
                report,
                format!("{name}: backup failed: {first}"),
            );
        }
    }

    /// The run's summary (its records and the catalog's head) written into every
    /// repository that got a snapshot, naming that repository's snapshots: the offsite copy
    /// carries the evidence, and `strata log --rebuild` reads it back. The snapshots are
    /// durable by now; a repository that cannot take it gets a warning, never a failure.
    fn write_evidence(&self, project: &Project, report: &ProjectReport) {
        let records = match self.records.lock() {
            Ok(r) => r.clone(),
            Err(_) => return,
        };
        let head = self
            .env
            .recorder
            .head()
            .map(|(seq, hash)| CatalogHead { seq, hash });
        let mut by_repo: Vec<(String, Vec<SnapshotId>)> = Vec::new();
        let mut add = |repo: &str, id: Option<&String>| {
            let Some(id) = id.and_then(|i| i.parse::<SnapshotId>().ok()) else {
                return;
            };
            match by_repo.iter_mut().find(|(r, _)| r == repo) {
                Some((_, ids)) => ids.push(id),
                None => by_repo.push((repo.to_string(), vec![id])),
            }
        };
        for s in &report.snapshots {
            add(&s.repository, s.snapshot_id.as_ref());
        }
        // A copy is named by its identity, the primary's id (which it keeps as `original`
        // through holds and rewrites), as every evidence file names snapshots.
        for c in report.copies.iter().filter(|c| c.dest_id.is_some()) {
            add(&c.to, Some(&c.snapshot_id));
        }
        let evidence = |snapshots: Vec<SnapshotId>| EvidenceFile {
            kind: EvidenceKind::RunSummary,
            time_ns: self.env.clock.now_ns(),
            hostname: self
                .env
                .host
                .clone()
                .unwrap_or_else(strata_engine::hostname),
            project: Some(project.name.clone()),
            snapshots,
            catalog_head: head,
            records: records
                .iter()
                .filter_map(|r| serde_json::to_string(r).ok())
                .collect(),
        };
        for (repo, ids) in by_repo {
            let written = self.open(&repo, Operation::Evidence).and_then(|o| {
                strata_engine::evidence::write(&o.repo, &evidence(ids))
                    .map_err(|e| format!("repository {repo}: {e}"))
            });
            if let Err(e) = written {
                tracing::warn!("{}: the run's evidence was not written: {e}", project.name);
            }
        }
    }

    fn record_hook(&self, project: &str, hook: &HookItem) {
        self.record(Record {
            time_ns: self.env.clock.now_ns(),
            project: Some(project.to_string()),
            repository: None,
            run_id: Some(self.run_id.clone()),
            ok: hook.ok,
            error: (!hook.ok).then(|| hook.failure()),
            user: None,
            body: RecordBody::Hook {
                which: hook.which.clone(),
                exit_code: hook.exit_code,
                stderr_tail: hook.stderr_tail.clone(),
            },
        });
    }

    fn record_backup(
        &self,
        project: &str,
        repo: &str,
        source: &crate::config::Source,
        id: Option<String>,
        error: Option<&str>,
        took: i64,
    ) {
        self.record(Record {
            time_ns: self.env.clock.now_ns(),
            project: Some(project.to_string()),
            repository: Some(repo.to_string()),
            run_id: Some(self.run_id.clone()),
            ok: error.is_none(),
            error: error.map(str::to_string),
            user: None,
            body: RecordBody::Backup {
                source: source.label(),
                source_kind: sources::kind_name(source).to_string(),
                snapshot_id: id,
                bytes_read: 0,
                bytes_total: 0,
                bytes_added: 0,
                stored_bytes: 0,
                files: 0,
                duration_ns: took,
                unreadable: 0,
            },
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn record_copy(
        &self,
        project: &str,
        from: &str,
        to: &str,
        id: &SnapshotId,
        dest: Option<SnapshotId>,
        bytes_added: u64,
        error: Option<&str>,
    ) {
        self.record(Record {
            time_ns: self.env.clock.now_ns(),
            project: Some(project.to_string()),
            repository: Some(to.to_string()),
            run_id: Some(self.run_id.clone()),
            ok: error.is_none(),
            error: error.map(str::to_string),
            user: None,
            body: RecordBody::Copy {
                from: from.to_string(),
                snapshot_id: id.to_hex(),
                dest_id: dest.map(|d| d.to_hex()),
                bytes_added,
            },
        });
    }

    fn record_retention(
        &self,
        project: &str,
        repo: &str,
        id: &str,
        action: &str,
        reasons: &[String],
        until: Option<i64>,
    ) {
        self.record(Record {
            time_ns: self.env.clock.now_ns(),
            project: Some(project.to_string()),
            repository: Some(repo.to_string()),
            run_id: Some(self.run_id.clone()),
            ok: true,
            error: None,
            user: None,
            body: RecordBody::Retention {
                snapshot_id: id.to_string(),
                action: action.to_string(),
                reasons: reasons.to_vec(),
                hold_until_ns: until,
            },
        });
    }
}

/// The newest snapshot of `project` in `repo` whose paths are `paths`.
/// What goes to a destination: the snapshots made now, and before them those of the
/// project the primary holds that are newer than the destination's newest (a run whose copy
/// failed, the destination down for a day), so that copies catch up. Older snapshots are
/// not sent again: the destination's own retention may have forgotten them.
fn catch_up(
    from: &strata_engine::Repository,
    to: &strata_engine::Repository,
    project: &str,
    made: &[(SnapshotId, SnapshotFile)],
) -> Vec<(SnapshotId, SnapshotFile)> {
    let of_project = |repo| -> Vec<(SnapshotId, SnapshotFile)> {
        snapshots::list(repo)
            .map(|l| {
                l.into_iter()
                    .filter(|(_, s)| s.project.as_deref() == Some(project))
                    .collect()
            })
            .unwrap_or_else(|e| {
                tracing::warn!("{project}: listing snapshots to catch copies up: {e}");
                Vec::new()
            })
    };
    let there = of_project(to);
    let Some(newest_there) = there.iter().map(|(_, s)| s.time_ns).max() else {
        return made.to_vec();
    };
    let identities: std::collections::HashSet<SnapshotId> = there
        .iter()
        .map(|(id, s)| s.original.unwrap_or(*id))
        .collect();
    let mut todo: Vec<(SnapshotId, SnapshotFile)> = of_project(from)
        .into_iter()
        .filter(|(id, s)| {
            s.time_ns > newest_there
                && !identities.contains(&s.original.unwrap_or(*id))
                && !made.iter().any(|(m, _)| m == id)
        })
        .collect();
    todo.sort_by_key(|(_, s)| s.time_ns);
    todo.extend(made.iter().cloned());
    todo
}
