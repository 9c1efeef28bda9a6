//! `strata log --verify`: walks the chain in seq order and compares its end with the head
//! file.

use serde::Serialize;

use super::chain::{self, record_hash, Hash, Head, GENESIS};
use super::Catalog;
use crate::Result;

/// What [`Catalog::verify`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records in the catalog.
    pub records: u64,
    /// The last record, as the chain has it.
    pub head: Option<Head>,
    /// Everything wrong, in seq order (the head file's findings last).
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no record was found deleted, edited or unlinked.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One thing wrong with the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The record it concerns (for missing records: the first missing one; 0: the catalog
    /// as a whole).
    pub seq: u64,
    pub what: String,
}

struct Row {
    seq: i64,
    time_ns: i64,
    kind: String,
    project: Option<String>,
    repository: Option<String>,
    run_id: Option<String>,
    ok: bool,
    body: String,
    prev: Vec<u8>,
    hash: Vec<u8>,
}

pub(super) fn verify(cat: &Catalog) -> Result<VerifyReport> {
    let conn = cat.conn();
    let mut stmt = conn
        .prepare(
            "SELECT seq, time_ns, kind, project, repository, run_id, ok, body, prev, hash \
             FROM records ORDER BY seq",
        )
        .map_err(|e| cat.fail("reading", e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Row {
                seq: r.get(0)?,
                time_ns: r.get(1)?,
                kind: r.get(2)?,
                project: r.get(3)?,
                repository: r.get(4)?,
                run_id: r.get(5)?,
                ok: r.get(6)?,
                body: r.get(7)?,
                prev: r.get(8)?,
                hash: r.get(9)?,
            })
        })
        .map_err(|e| cat.fail("reading", e))?;
    let mut problems = Vec::new();
    let mut records = 0u64;
    let mut expected: u64 = 1;
    let mut prev_hash: Hash = GENESIS;
    let mut last: Option<Head> = None;
    let mut hashes = std::collections::HashMap::new();
    for row in rows {
        let row = row.map_err(|e| cat.fail("reading", e))?;
        records += 1;
        let seq = row.seq.max(0) as u64;
        let mut problem = |what: String| problems.push(Problem { seq, what });
        if seq != expected {
            problem(if seq == expected + 1 {
                format!("record {expected} is missing (deleted)")
            } else {
                format!("records {expected} to {} are missing (deleted)", seq - 1)
            });
        } else if row.prev[..] != prev_hash[..] {
            problem(format!(
                "does not link to record {} (its prev is not that record's hash)",
                seq.saturating_sub(1)
            ));
        }
        let computed = record_hash(
            &row.prev.clone().try_into().unwrap_or([0xff; 32]),
            seq,
            &row.kind,
            row.time_ns,
            &row.body,
        );
        if row.prev.len() != 32 || row.hash[..] != computed[..] {
            problem("edited: its hash does not match its content".into());
        }
        if let Some(what) = columns_disagree(&row) {
            problem(format!("edited: {what}"));
        }
        let stored: Hash = row.hash.try_into().unwrap_or(computed);
        hashes.insert(seq, stored);
        prev_hash = stored;
        expected = seq + 1;
        last = Some(Head { seq, hash: stored });
    }
    match chain::read_head(cat.state_dir()) {
        Err(what) => problems.push(Problem { seq: 0, what }),
        Ok(None) if records > 0 => problems.push(Problem {
            seq: 0,
            what: format!(
                "there is no head file ({}), so records deleted at the end could not be seen",
                chain::HEAD_FILE
            ),
        }),
        Ok(None) => {}
        Ok(Some(head)) => {
            let last_seq = last.map_or(0, |h| h.seq);
            if head.seq > last_seq {
                problems.push(Problem {
                    seq: last_seq + 1,
                    what: if head.seq == last_seq + 1 {
                        format!(
                            "record {} is missing (deleted at the end; the head file names it)",
                            head.seq
                        )
                    } else {
                        format!(
                            "records {} to {} are missing (deleted at the end; the head file \
                             names record {})",
                            last_seq + 1,
                            head.seq,
                            head.seq
                        )
                    },
                });
            } else if hashes.get(&head.seq).is_some_and(|h| *h != head.hash) {
                problems.push(Problem {
                    seq: head.seq,
                    what: "its hash differs from the one in the head file (the chain was \
                           rewritten)"
                        .into(),
                });
            }
        }
    }
    Ok(VerifyReport {
        records,
        head: last,
        problems,
    })
}

/// What the filterable columns say that the body does not (an edit that would hide a
/// record from queries without touching the hashed body).
fn columns_disagree(row: &Row) -> Option<String> {
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&row.body) else {
        return Some("its body is not JSON".into());
    };
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let checks: [(&str, bool); 6] = [
        ("time_ns", body["time_ns"].as_i64() == Some(row.time_ns)),
        (
            "kind",
            body["body"]["kind"].as_str() == Some(row.kind.as_str()),
        ),
        ("project", text(&body["project"]) == row.project),
        ("repository", text(&body["repository"]) == row.repository),
        ("run_id", text(&body["run_id"]) == row.run_id),
        ("ok", body["ok"].as_bool() == Some(row.ok)),
    ];
    let bad: Vec<&str> = checks
        .iter()
        .filter(|(_, same)| !same)
        .map(|(c, _)| *c)
        .collect();
    (!bad.is_empty()).then(|| format!("column {} disagrees with its body", bad.join(", ")))
}
