//! `[projects.NAME]` and `[defaults]`: each read into a [`RawProject`] (every key
//! optional, checked where it stands), the project laid over the defaults key by key, then
//! resolved into a [`Project`].
//!
//! Merging, key by key: a key the project gives wins over the defaults' (lists are
//! replaced, not joined). Retention merges per rule: the project's `[retention]` over the
//! defaults' `[retention]`, each repository's table (`[retention.REPO]`) the project's over
//! the defaults'; a repository's effective retention is its table over the general one. So
//! a rule in `[defaults.retention.offsite]` beats the same rule in a project's general
//! `[projects.shop.retention]` for the offsite repository: the more specific table wins.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use strata_engine::retention::{CalendarSpan, KeepPolicy};

use super::context::{Cx, PASSWORD};
use super::model::*;
use super::reader::{Sv, Table, Val};

/// The names defined at the top of the file, for the projects' references.
pub(crate) struct Names {
    pub repositories: BTreeSet<String>,
    pub notifications: BTreeSet<String>,
}

const RULES: [KeepRule; 6] = [
    KeepRule::Last,
    KeepRule::Hourly,
    KeepRule::Daily,
    KeepRule::Weekly,
    KeepRule::Monthly,
    KeepRule::Yearly,
];
const KEEP_KEYS: [&str; 6] = [
    "keep-last",
    "keep-hourly",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
];
const HOLD_KEYS: [&str; 6] = [
    "hold-last",
    "hold-hourly",
    "hold-daily",
    "hold-weekly",
    "hold-monthly",
    "hold-yearly",
];

/// One retention table, every rule optional.
#[derive(Clone, Debug, Default)]
struct RawKeep {
    counts: [Option<u32>; 6],
    within: Option<CalendarSpan>,
    tags: Option<Vec<String>>,
    holds: [Option<Sv<CalendarSpan>>; 6],
}

impl RawKeep {
    fn over(&self, under: &RawKeep) -> RawKeep {
        let mut out = self.clone();
        for i in 0..6 {
            out.counts[i] = out.counts[i].or(under.counts[i]);
            if out.holds[i].is_none() {
                out.holds[i] = under.holds[i].clone();
            }
        }
        out.within = out.within.or(under.within);
        if out.tags.is_none() {
            out.tags = under.tags.clone();
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.counts.iter().all(Option::is_none)
            && self.within.is_none()
            && self.tags.is_none()
            && self.holds.iter().all(Option::is_none)
    }
}

/// A `[retention.REPO]` table and where it was written (None: in the defaults).
#[derive(Clone, Debug, Default)]
struct RepoKeep {
    keep: RawKeep,
    written: Option<Sv<()>>,
}

#[derive(Clone, Debug, Default)]
struct RawRetention {
    all: RawKeep,
    repos: BTreeMap<String, RepoKeep>,
}

/// A project (or the defaults) as written: every key optional.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawProject {
    schedule: Option<Schedule>,
    paths: Option<Vec<PathBuf>>,
    exclude: Option<Vec<String>>,
    databases: Option<Vec<DatabaseSource>>,
    commands: Option<Vec<(Sv<String>, String)>>,
    repositories: Option<Sv<Vec<String>>>,
    notify: Option<Vec<String>>,
    max_age: Option<Duration>,
    restore_test: Option<Schedule>,
    check: Option<Schedule>,
    prune: Option<Schedule>,
    before: Option<String>,
    after: Option<String>,
    timeout: Option<Duration>,
    pitr: Option<PitrCluster>,
    retention: RawRetention,
}

impl RawProject {
    /// Reads a project's table (`defaults`: the defaults' table, whose repository
    /// tables in `retention` need not be repositories of any one project).
    pub(crate) fn read(cx: &mut Cx, mut t: Table, names: &Names, defaults: bool) -> RawProject {
        let mut p = RawProject::default();
        if let Some(v) = t.get("schedule") {
            p.schedule = cx.schedule(&v);
        }
        if let Some(v) = t.get("paths") {
            p.paths = v
                .strings(&mut cx.sink)
                .map(|paths| paths.into_iter().map(|s| cx.base.join(s.v)).collect());
        }
        if let Some(v) = t.get("exclude") {
            p.exclude = v
                .strings(&mut cx.sink)
                .map(|s| s.into_iter().map(|s| s.v).collect());
        }
        if let Some(v) = t.get("databases") {
            p.databases = v
                .items(&mut cx.sink)
                .map(|items| items.iter().filter_map(|item| database(cx, item)).collect());
        }
        if let Some(v) = t.get("commands") {
            p.commands = v
                .items(&mut cx.sink)
                .map(|items| items.iter().filter_map(|item| command(cx, item)).collect());
        }
        if let Some(v) = t.get("repositories") {
            if let Some(list) = v.strings(&mut cx.sink) {
                let mut seen = BTreeSet::new();
                for name in &list {
                    if !names.repositories.contains(&name.v) {
                        undefined(cx, name, "repository", &names.repositories);
                    } else if !seen.insert(name.v.clone()) {
                        cx.sink.error(&name.span, &name.key, "named twice");
                    }
                }
                if list.is_empty() {
                    cx.sink.error(
                        &v.span(),
                        &v.key,
                        "name at least one repository (the first is the primary)",
                    );
                }
                p.repositories = Some(Sv {
                    v: list.into_iter().map(|s| s.v).collect(),
                    key: v.key.clone(),
                    span: v.span(),
                });
            }
        }
        if let Some(v) = t.get("notify") {
            if let Some(list) = v.strings(&mut cx.sink) {
                for name in &list {
                    if !names.notifications.contains(&name.v) {
                        undefined(cx, name, "notification", &names.notifications);
                    }
                }
                let mut notify: Vec<String> = Vec::new();
                for s in list {
                    if !notify.contains(&s.v) {
                        notify.push(s.v);
                    }
                }
                p.notify = Some(notify);
            }
        }
        if let Some(v) = t.get("max-age") {
            p.max_age = cx.duration(&v);
        }
        if let Some(v) = t.get("restore-test") {
            p.restore_test = cx.schedule(&v);
        }
        if let Some(v) = t.get("check") {
            p.check = cx.schedule(&v);
        }
        if let Some(v) = t.get("prune") {
            p.prune = cx.schedule(&v);
        }
        if let Some(v) = t.get("before") {
            p.before = v.text(&mut cx.sink).map(|s| s.v);
        }
        if let Some(v) = t.get("after") {
            p.after = v.text(&mut cx.sink).map(|s| s.v);
        }
        if let Some(v) = t.get("timeout") {
            p.timeout = cx.duration(&v);
        }
        if let Some(v) = t.get("pitr") {
            p.pitr = pitr(cx, &v, defaults);
        }
        if let Some(v) = t.get("retention") {
            if let Some(r) = v.table(&mut cx.sink) {
                p.retention = retention(cx, r, names, defaults);
            }
        }
        t.finish(&mut cx.sink);
        p
    }

    /// This project over `defaults`, key by key (see the module docs).
    pub(crate) fn over(self, d: &RawProject) -> RawProject {
        let mut repos = d.retention.repos.clone();
        for (name, mine) in self.retention.repos {
            let merged = match repos.get(&name) {
                Some(under) => RepoKeep {
                    keep: mine.keep.over(&under.keep),
                    written: mine.written,
                },
                None => mine,
            };
            repos.insert(name, merged);
        }
        RawProject {
            schedule: self.schedule.or_else(|| d.schedule.clone()),
            paths: self.paths.or_else(|| d.paths.clone()),
            exclude: self.exclude.or_else(|| d.exclude.clone()),
            databases: self.databases.or_else(|| d.databases.clone()),
            commands: self.commands.or_else(|| d.commands.clone()),
            repositories: self.repositories.or_else(|| d.repositories.clone()),
            notify: self.notify.or_else(|| d.notify.clone()),
            max_age: self.max_age.or(d.max_age),
            restore_test: self.restore_test.or_else(|| d.restore_test.clone()),
            check: self.check.or_else(|| d.check.clone()),
            prune: self.prune.or_else(|| d.prune.clone()),
            before: self.before.or_else(|| d.before.clone()),
            after: self.after.or_else(|| d.after.clone()),
            timeout: self.timeout.or(d.timeout),
            // A cluster is one project's: never inherited from the defaults.
            pitr: self.pitr,
            retention: RawRetention {
                all: self.retention.all.over(&d.retention.all),
                repos,
            },
        }
    }

    /// The project named `name` (its table is `key` at `span`), or None after reporting
    /// what is wrong.
    pub(crate) fn resolve(
        self,
        cx: &mut Cx,
        name: &str,
        key: &str,
        span: &Range<usize>,
    ) -> Option<Project> {
        let mut ok = true;
        let repositories = match self.repositories {
            Some(r) if !r.v.is_empty() => r.v,
            Some(_) => return None,
            None => {
                cx.sink.error(
                    span,
                    key,
                    "no repositories: give `repositories = [\"...\"]` (the first is the \
                     primary), here or in [defaults]",
                );
                return None;
            }
        };
        let mut sources = Vec::new();
        if let Some(paths) = self.paths.filter(|p| !p.is_empty()) {
            sources.push(Source::Paths {
                paths,
                exclude: self.exclude.unwrap_or_default(),
            });
        }
        sources.extend(
            self.databases
                .unwrap_or_default()
                .into_iter()
                .map(Source::Database),
        );
        let mut command_names = BTreeSet::new();
        for (cmd_name, run) in self.commands.unwrap_or_default() {
            if !command_names.insert(cmd_name.v.clone()) {
                cx.sink.error(
                    &cmd_name.span,
                    &cmd_name.key,
                    format!("two commands named `{}`", cmd_name.v),
                );
                ok = false;
            }
            sources.push(Source::Command {
                name: cmd_name.v,
                run,
            });
        }
        if let Some(c) = &self.pitr {
            sources.push(Source::PgCluster(c.clone()));
        }
        if sources.is_empty() {
            cx.sink.error(
                span,
                key,
                "nothing to back up: give paths, databases or commands",
            );
            ok = false;
        }
        let mut labels = BTreeSet::new();
        for s in &sources {
            let label = s.label();
            if matches!(s, Source::Database(_)) && !labels.insert(label.clone()) {
                cx.sink.error(
                    span,
                    &format!("{key}.databases"),
                    format!(
                        "two databases are both `{label}`: each source needs a name of its \
                         own (its snapshots are told apart by it)"
                    ),
                );
                ok = false;
            }
        }
        // Retention: every repository's table over the general one.
        let mut retention = BTreeMap::new();
        for (repo, keep) in &self.retention.repos {
            if let Some(w) = &keep.written {
                if !repositories.contains(repo) {
                    cx.sink.error(
                        &w.span,
                        &w.key,
                        format!(
                            "`{repo}` is not one of this project's repositories ({})",
                            repositories.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        for repo in &repositories {
            let keep = match self.retention.repos.get(repo) {
                Some(r) => r.keep.over(&self.retention.all),
                None => self.retention.all.clone(),
            };
            if keep.is_empty() {
                continue;
            }
            match effective(cx, &keep, repo) {
                Some(r) => {
                    retention.insert(repo.clone(), r);
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let max_age = self
            .max_age
            .or_else(|| self.schedule.as_ref().map(Schedule::default_max_age));
        let check = self.check.or_else(|| {
            self.schedule
                .as_ref()
                .map(|_| Schedule::parse("weekly").expect("`weekly` is a schedule"))
        });
        Some(Project {
            name: name.to_string(),
            schedule: self.schedule,
            sources,
            repositories,
            retention,
            notify: self.notify.unwrap_or_default(),
            max_age,
            restore_test: self.restore_test,
            check,
            prune: self.prune,
            before: self.before,
            after: self.after,
            timeout: self.timeout,
            pitr: self.pitr,
        })
    }
}

/// The retention of one repository; a hold without the rule it holds is an error.
fn effective(cx: &mut Cx, keep: &RawKeep, repo: &str) -> Option<Retention> {
    let c = |i: usize| keep.counts[i].unwrap_or(0);
    let policy = KeepPolicy {
        last: c(0),
        hourly: c(1),
        daily: c(2),
        weekly: c(3),
        monthly: c(4),
        yearly: c(5),
        within: keep.within,
        tags: keep.tags.clone().unwrap_or_default(),
    };
    let mut holds = Vec::new();
    let mut ok = true;
    for (i, hold) in keep.holds.iter().enumerate() {
        let Some(hold) = hold else {
            continue;
        };
        if c(i) == 0 {
            cx.sink.error(
                &hold.span,
                &hold.key,
                format!(
                    "{} holds what {} keeps, and {} is not set for repository `{repo}`",
                    HOLD_KEYS[i], KEEP_KEYS[i], KEEP_KEYS[i]
                ),
            );
            ok = false;
        }
        holds.push(HoldRule {
            rule: RULES[i],
            span: hold.v,
        });
    }
    ok.then_some(Retention {
        keep: policy,
        holds,
    })
}

fn undefined(cx: &mut Cx, name: &Sv<String>, what: &str, defined: &BTreeSet<String>) {
    let table = if what == "repository" {
        "repositories"
    } else {
        "notifications"
    };
    let list = if defined.is_empty() {
        format!("none is: add [{table}.{}]", name.v)
    } else {
        format!(
            "defined: {}",
            defined.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    cx.sink.error(
        &name.span,
        &name.key,
        format!("no {what} `{}` is defined ({list})", name.v),
    );
}

/// `[retention]`: the rules, and a table per repository.
fn retention(cx: &mut Cx, mut t: Table, names: &Names, defaults: bool) -> RawRetention {
    let all = keep_rules(cx, &mut t);
    let mut repos = BTreeMap::new();
    for (name, v) in t.rest() {
        if !v.v.get_ref().is_table() {
            // Not a table: a misspelt rule, most likely.
            let known: Vec<&str> = KEEP_KEYS
                .iter()
                .chain(&HOLD_KEYS)
                .chain(&["keep-within", "keep-tag"])
                .copied()
                .collect();
            cx.sink.error(
                &name.span,
                &name.key,
                format!(
                    "unknown key; the keys here are {} and a table per repository",
                    known.join(", ")
                ),
            );
            continue;
        }
        if !names.repositories.contains(&name.v) {
            undefined(cx, &name, "repository", &names.repositories);
            continue;
        }
        let Some(mut rt) = v.table(&mut cx.sink) else {
            continue;
        };
        let keep = keep_rules(cx, &mut rt);
        rt.finish(&mut cx.sink);
        let written = (!defaults).then(|| name.clone().map(|_| ()));
        repos.insert(name.v, RepoKeep { keep, written });
    }
    t.finish(&mut cx.sink);
    RawRetention { all, repos }
}

fn keep_rules(cx: &mut Cx, t: &mut Table) -> RawKeep {
    let mut k = RawKeep::default();
    for (i, &key) in KEEP_KEYS.iter().enumerate() {
        if let Some(v) = t.get(key) {
            k.counts[i] = v
                .int(&mut cx.sink, 0..u64::from(u32::MAX))
                .map(|n| n.v as u32);
        }
    }
    for (i, &key) in HOLD_KEYS.iter().enumerate() {
        if let Some(v) = t.get(key) {
            k.holds[i] = cx.span(&v);
        }
    }
    if let Some(v) = t.get("keep-within") {
        k.within = cx.span(&v).map(|s| s.v);
    }
    if let Some(v) = t.get("keep-tag") {
        k.tags = v
            .strings(&mut cx.sink)
            .map(|s| s.into_iter().map(|s| s.v).collect());
    }
    k
}

fn database(cx: &mut Cx, v: &Val) -> Option<DatabaseSource> {
    let mut t = v.table(&mut cx.sink)?;
    let kinds: Vec<(DbKind, Val)> = [
        ("mysql", DbKind::Mysql),
        ("postgres", DbKind::Postgres),
        ("sqlite", DbKind::Sqlite),
    ]
    .into_iter()
    .filter_map(|(k, kind)| t.get(k).map(|v| (kind, v)))
    .collect();
    let password = cx.secret(&mut t, PASSWORD);
    let exec_prefix: Option<Vec<String>> = match t.get("exec-prefix") {
        Some(v) => {
            let span = v.span();
            let key = v.key.clone();
            let words: Option<Vec<String>> = v
                .strings(&mut cx.sink)
                .map(|s| s.into_iter().map(|s| s.v).collect());
            if let Some(w) = &words {
                if let Err(e) = strata_db::check_prefix(w, matches!(password, Ok(Some(_)))) {
                    cx.sink.error(&span, &key, &e);
                }
            }
            words
        }
        None => None,
    };
    let scratch = t.get("scratch").and_then(|v| v.text(&mut cx.sink));
    let source = match kinds.as_slice() {
        [] => {
            cx.sink.error(
                &t.span,
                &t.key,
                "give one of mysql = \"URL\", postgres = \"URL\" or sqlite = \"FILE\"",
            );
            None
        }
        [(kind, v)] => {
            let location = if *kind == DbKind::Sqlite {
                cx.path(v).map(|p| p.to_string_lossy().into_owned())
            } else {
                v.text(&mut cx.sink).map(|s| s.v)
            };
            if *kind == DbKind::Sqlite && matches!(password, Ok(Some(_))) {
                cx.sink
                    .error(&t.span, &t.key, "a SQLite database has no password");
            }
            location.map(|location| DatabaseSource {
                kind: *kind,
                location,
                password: None,
                exec_prefix: exec_prefix.unwrap_or_default(),
                scratch: scratch.map(|s| s.v),
            })
        }
        [_, (_, second), ..] => {
            cx.sink.error(
                &second.span(),
                &second.key,
                "a database is one of mysql, postgres or sqlite: list each in `databases` on \
                 its own",
            );
            None
        }
    };
    t.finish(&mut cx.sink);
    let mut source = source?;
    source.password = password.ok()?;
    Some(source)
}

/// `[projects.NAME.pitr]`: the PostgreSQL cluster of point-in-time recovery.
fn pitr(cx: &mut Cx, v: &Val, defaults: bool) -> Option<PitrCluster> {
    let mut t = v.table(&mut cx.sink)?;
    if defaults {
        cx.sink.error(
            &t.span,
            &t.key,
            "a cluster belongs to one project: give [projects.NAME.pitr], not a default",
        );
    }
    let password = cx.secret(&mut t, PASSWORD);
    // A relative path is the config file's directory's, as every path here.
    let data_dir = cx.required(&mut t, "data-dir").and_then(|v| cx.path(&v));
    let url = match t.get("url") {
        Some(v) => v.text(&mut cx.sink).and_then(|s| {
            if s.v.starts_with("postgres://") || s.v.starts_with("postgresql://") {
                Some(s.v)
            } else {
                cx.sink.error(
                    &s.span,
                    &s.key,
                    "a postgres:// URL (libpq's form: postgres://USER@HOST/DATABASE)",
                );
                None
            }
        }),
        None => Some(PitrCluster::DEFAULT_URL.to_string()),
    };
    let stop_timeout = match t.get("stop-timeout") {
        Some(v) => cx.duration(&v),
        None => Some(PitrCluster::DEFAULT_STOP_TIMEOUT),
    };
    let max_wal_age = match t.get("max-wal-age") {
        Some(v) => cx.duration(&v).map(Some),
        None => Some(None),
    };
    let prefetch = match t.get("prefetch") {
        Some(v) => v.int(&mut cx.sink, 0..1025).map(|n| n.v as usize),
        None => Some(crate::pitr::DEFAULT_PREFETCH),
    };
    t.finish(&mut cx.sink);
    if defaults {
        return None;
    }
    Some(PitrCluster {
        data_dir: data_dir?,
        url: url?,
        password: password.ok()?,
        stop_timeout: stop_timeout?,
        max_wal_age: max_wal_age?,
        prefetch: prefetch?,
    })
}

fn command(cx: &mut Cx, v: &Val) -> Option<(Sv<String>, String)> {
    let mut t = v.table(&mut cx.sink)?;
    let name = cx
        .required(&mut t, "name")
        .and_then(|v| v.text(&mut cx.sink));
    let run = cx
        .required(&mut t, "run")
        .and_then(|v| v.text(&mut cx.sink));
    t.finish(&mut cx.sink);
    let name = name?;
    if name.v.contains('/') || name.v.chars().any(char::is_control) {
        cx.sink.error(
            &name.span,
            &name.key,
            "a command's name names its stream: no `/` and no control characters",
        );
        return None;
    }
    Some((name, run?.v))
}
