//! `strata stats --project`: a project's runs over time and each source's growth, from the
//! backup and run records of the catalog.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ops::{History, Query, RecordBody, RecordKind};
use crate::Result;

/// What [`project_stats`] finds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProjectStats {
    pub project: String,
    /// Oldest first.
    pub runs: Vec<RunStats>,
    /// By source name.
    pub sources: Vec<SourceTrend>,
}

/// The backups of one run (the records sharing a run id; a backup recorded without one
/// is a run of its own).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunStats {
    pub run_id: Option<String>,
    /// When the run started (Unix ns).
    pub time_ns: i64,
    /// The primary repository the sources were read into.
    pub repository: Option<String>,
    /// Sources backed up (successfully or not).
    pub sources: u64,
    /// Whether every source succeeded.
    pub ok: bool,
    /// The logical size: bytes read from the sources.
    pub bytes_read: u64,
    /// New data, before compression.
    pub bytes_added: u64,
    /// What the new packs took in the repository.
    pub stored_bytes: u64,
    /// Logical bytes per new byte (`bytes_read / bytes_added`); None when nothing was new.
    pub dedup_ratio: Option<f64>,
    /// The run's duration (its run record's), else the sum of its backups'.
    pub duration_ns: i64,
}

/// One source's size over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceTrend {
    pub source: String,
    /// Successful backups of it, oldest first.
    pub sizes: Vec<SizePoint>,
    /// Growth per day (least squares over `sizes`); None with fewer than two sizes at
    /// different times.
    pub bytes_per_day: Option<f64>,
}

/// A source's logical size (bytes read) at one backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SizePoint {
    pub time_ns: i64,
    pub bytes_read: u64,
}

const DAY_NS: f64 = 86_400e9;

/// The runs and source trends of `project` since `since_ns` (None: all), from `history`.
pub fn project_stats(
    history: &dyn History,
    project: &str,
    since_ns: Option<i64>,
) -> Result<ProjectStats> {
    let q = |kind| Query {
        project: Some(project.to_string()),
        kind: Some(kind),
        since_ns,
        ..Query::default()
    };
    let mut backups = history.query(&q(RecordKind::Backup))?;
    backups.reverse(); // oldest first
    let mut run_durations = BTreeMap::new();
    for r in history.query(&q(RecordKind::Run))? {
        if let (Some(id), RecordBody::Run { started_ns, .. }) = (&r.run_id, &r.body) {
            run_durations.insert(id.0.clone(), (*started_ns, r.time_ns - started_ns));
        }
    }
    let mut runs: Vec<RunStats> = Vec::new();
    let mut by_run: BTreeMap<String, usize> = BTreeMap::new();
    let mut sizes: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    for rec in &backups {
        let RecordBody::Backup {
            source,
            bytes_read,
            bytes_added,
            stored_bytes,
            duration_ns,
            ..
        } = &rec.body
        else {
            continue;
        };
        if rec.ok {
            sizes
                .entry(source.clone())
                .or_default()
                .push((rec.time_ns, *bytes_read));
        }
        let started = rec.time_ns - duration_ns;
        let slot = match rec.run_id.as_ref().and_then(|id| by_run.get(&id.0)) {
            Some(&i) => i,
            None => {
                runs.push(RunStats {
                    run_id: rec.run_id.as_ref().map(|id| id.0.clone()),
                    time_ns: started,
                    repository: rec.repository.clone(),
                    sources: 0,
                    ok: true,
                    bytes_read: 0,
                    bytes_added: 0,
                    stored_bytes: 0,
                    dedup_ratio: None,
                    duration_ns: 0,
                });
                if let Some(id) = &rec.run_id {
                    by_run.insert(id.0.clone(), runs.len() - 1);
                }
                runs.len() - 1
            }
        };
        let run = &mut runs[slot];
        run.time_ns = run.time_ns.min(started);
        run.sources += 1;
        run.ok &= rec.ok;
        run.bytes_read += bytes_read;
        run.bytes_added += bytes_added;
        run.stored_bytes += stored_bytes;
        run.duration_ns += duration_ns;
    }
    for run in &mut runs {
        if let Some((started, duration)) = run.run_id.as_ref().and_then(|id| run_durations.get(id))
        {
            run.time_ns = *started;
            run.duration_ns = *duration;
        }
        run.dedup_ratio =
            (run.bytes_added > 0).then(|| run.bytes_read as f64 / run.bytes_added as f64);
    }
    runs.sort_by_key(|r| r.time_ns);
    let sources = sizes
        .into_iter()
        .map(|(source, sizes)| SourceTrend {
            bytes_per_day: slope_per_day(&sizes),
            source,
            sizes: sizes
                .into_iter()
                .map(|(time_ns, bytes_read)| SizePoint {
                    time_ns,
                    bytes_read,
                })
                .collect(),
        })
        .collect();
    Ok(ProjectStats {
        project: project.to_string(),
        runs,
        sources,
    })
}

/// The least-squares slope of bytes over time, in bytes per day.
fn slope_per_day(points: &[(i64, u64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let t0 = points[0].0;
    let xs: Vec<f64> = points.iter().map(|p| (p.0 - t0) as f64 / DAY_NS).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1 as f64).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    Some(sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_is_bytes_per_day() {
        let day = 86_400_000_000_000i64;
        assert_eq!(slope_per_day(&[(0, 100)]), None);
        assert_eq!(slope_per_day(&[(5, 100), (5, 200)]), None);
        let s = slope_per_day(&[(0, 100), (day, 200), (2 * day, 300)]).unwrap();
        assert!((s - 100.0).abs() < 1e-9, "{s}");
    }
}
