//! `strata serve` jobs (issue #17): a backup run now, restores, restore tests, forget and
//! hold, through the real server.

use std::io::{BufRead, BufReader};

use serde_json::{json, Value};

use crate::serve::{json_of, Served};

/// The events of `GET /jobs/{id}/events` as `role`, read until the stream ends:
/// `(event, data)`.
fn events(s: &Served, id: &str, role: &str) -> Vec<(String, Value)> {
    let resp = s.get(&format!("/jobs/{id}/events"), Some(role));
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut out = Vec::new();
    let mut event = String::new();
    for line in BufReader::new(resp).lines() {
        let line = line.unwrap();
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            let data = serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}"));
            out.push((std::mem::take(&mut event), data));
        }
    }
    out
}

/// The job a POST started (202), followed to its end: `(job id, events)`.
fn follow(
    s: &Served,
    resp: reqwest::blocking::Response,
    role: &str,
) -> (String, Vec<(String, Value)>) {
    let body = json_of(resp, 202);
    let id = body["job"]["id"].as_str().unwrap().to_string();
    let evs = events(s, &id, role);
    (id, evs)
}

/// The catalog's records of `kind`, as `strata log --json` shows them.
pub(crate) fn log_of(s: &Served, kind: &str) -> Vec<Value> {
    let out = s.strata(["log", "--kind", kind, "--json"]).success();
    match out.json() {
        Value::Array(a) => a,
        other => panic!("log --json is not an array: {other}"),
    }
}

/// An operator runs the project now: a job whose events start with its state, name the
/// runner's steps and end with the result; a new snapshot exists, the run is recorded and
/// the request audited. A viewer may not; another operator's job is an admin's to see.
#[test]
fn run_now_is_a_job_that_ends_with_its_result() {
    let s = Served::start("");
    let before = s.env.snapshots().len();
    let denied = json_of(
        s.post("/projects/site/run", Some("viewer"), &json!({})),
        403,
    );
    assert_eq!(denied["error"]["code"], "forbidden", "{denied}");
    let missing = json_of(
        s.post("/projects/nope/run", Some("operator"), &json!({})),
        404,
    );
    assert_eq!(missing["error"]["code"], "not_found", "{missing}");

    let (id, evs) = follow(
        &s,
        s.post("/projects/site/run", Some("operator"), &json!({})),
        "operator",
    );
    let names: Vec<&str> = evs.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"state"), "{names:?}");
    assert_eq!(names.last(), Some(&"result"), "{evs:?}");
    assert!(
        evs.iter()
            .any(|(e, d)| e == "phase" && d["phase"].as_str().unwrap().contains("backing up")),
        "{evs:?}"
    );
    let result = &evs.last().unwrap().1;
    assert_eq!(result["project"]["status"], "ok", "{result}");
    let made = result["project"]["snapshots"][0]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let after = s.env.snapshots();
    assert_eq!(after.len(), before + 1);
    assert!(after.iter().any(|v| v["id"] == made.as_str()), "{after:?}");

    // The job as it ended; a late subscriber gets its state and its end at once.
    let job = json_of(s.get(&format!("/jobs/{id}"), Some("operator")), 200);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "run");
    assert_eq!(job["user"], "operator");
    assert!(job["finished"].is_string(), "{job}");
    let late = events(&s, &id, "operator");
    assert_eq!(late.len(), 2, "{late:?}");
    assert_eq!(late[0].0, "state");
    assert_eq!(late[0].1["state"], "succeeded");
    assert_eq!(late[1], ("result".to_string(), result.clone()));

    // Only its owner and admins see it.
    let hidden = json_of(s.get(&format!("/jobs/{id}"), Some("viewer")), 404);
    assert_eq!(hidden["error"]["code"], "not_found", "{hidden}");
    json_of(s.get(&format!("/jobs/{id}"), Some("admin")), 200);
    json_of(s.get("/jobs/0123456789abcdef01234567", Some("admin")), 404);

    let runs = log_of(&s, "run");
    assert!(
        runs.iter()
            .any(|r| r["project"] == "site" && r["body"]["trigger"] == "api"),
        "{runs:?}"
    );
    let access = log_of(&s, "access");
    assert!(
        access
            .iter()
            .any(|r| r["body"]["action"] == "run" && r["user"] == "operator" && r["ok"] == true),
        "{access:?}"
    );
}

/// A project whose run lock another run holds: 409 `locked` at once, audited, and no
/// job.
#[test]
fn run_now_of_a_locked_project_is_409() {
    let s = Served::start("");
    let dir = s.env.root.join("state/locks");
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("site.lock"))
        .unwrap();
    let _held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let body = json_of(
        s.post("/projects/site/run", Some("operator"), &json!({})),
        409,
    );
    assert_eq!(body["error"]["code"], "locked", "{body}");
    let access = log_of(&s, "access");
    assert!(
        access
            .iter()
            .any(|r| r["body"]["action"] == "run" && r["ok"] == false),
        "{access:?}"
    );
}
