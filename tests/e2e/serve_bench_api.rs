//! The API the server's benchmarks lean on (issue #17): `GET /snapshots` in pages, and
//! `HEAD` of a download (its headers without its content). Against the real server.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::serve::{json_of, Served};
use crate::util::*;

/// `GET /api/v1/snapshots{query}` as a viewer: the ids in the order answered, and the
/// `X-Total-Count` header.
fn ids(s: &Served, query: &str) -> (Vec<String>, String) {
    let resp = s.get(&format!("/snapshots{query}"), Some("viewer"));
    let total = resp
        .headers()
        .get("x-total-count")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let list = json_of(resp, 200);
    let ids = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    (ids, total)
}

/// 30 snapshots in pages of 10: every snapshot exactly once, in the list's order (oldest
/// first, or newest first with `order=newest`); past the end an empty page; the total in
/// `X-Total-Count`; the filters still apply; a bad number is a `422` that names it.
#[test]
fn serve_snapshots_in_pages() {
    let s = Served::start("");
    let site = s.env.path("site");
    for i in 1..30 {
        write_file(&site.join("n.txt"), format!("{i}\n").as_bytes());
        let tag = if i % 3 == 0 { "third" } else { "other" };
        s.strata([
            "backup",
            "--project",
            "site",
            "--tag",
            tag,
            site.to_str().unwrap(),
        ])
        .success();
    }
    let (all, total) = ids(&s, "");
    assert_eq!(all.len(), 30);
    assert_eq!(total, "30");
    let cli: Vec<String> = s
        .strata(["snapshots", "--json"])
        .success()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>(),
        cli.iter().collect::<BTreeSet<_>>()
    );

    let mut paged = Vec::new();
    for offset in [0, 10, 20] {
        let (page, total) = ids(&s, &format!("?offset={offset}&limit=10"));
        assert_eq!(page.len(), 10, "offset {offset}");
        assert_eq!(total, "30");
        paged.extend(page);
    }
    assert_eq!(paged, all, "pages of 10 cover the list once, in order");
    let (past, total) = ids(&s, "?offset=30&limit=10");
    assert!(past.is_empty(), "{past:?}");
    assert_eq!(total, "30");
    let (last, _) = ids(&s, "?offset=25&limit=10");
    assert_eq!(last, all[25..]);

    // Newest first: the same snapshots reversed, page by page.
    let mut newest = Vec::new();
    for offset in [0, 10, 20] {
        newest.extend(ids(&s, &format!("?order=newest&offset={offset}&limit=10")).0);
    }
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(newest, reversed);
    assert_eq!(ids(&s, "?order=newest&limit=1").0, vec![all[29].clone()]);
    assert_eq!(ids(&s, "?order=oldest&limit=1").0, vec![all[0].clone()]);

    // Times ascend through the pages.
    let times: Vec<i64> = json_of(s.get("/snapshots?offset=5&limit=20", Some("viewer")), 200)
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["time_ns"].as_i64().unwrap())
        .collect();
    assert_eq!(times.len(), 20);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // Filters first, then the page: the total is of the matching snapshots.
    let (third, total) = ids(&s, "?tag=third");
    assert_eq!(third.len(), 9);
    assert_eq!(total, "9");
    let (page, total) = ids(&s, "?tag=third&offset=3&limit=4");
    assert_eq!(total, "9");
    assert_eq!(page, third[3..7]);

    // Bad numbers and orders: 422 naming the parameter.
    for (query, name) in [
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
        ("?limit=", "limit"),
        ("?order=sideways", "order"),
    ] {
        let e = json_of(s.get(&format!("/snapshots{query}"), Some("viewer")), 422);
        assert_eq!(e["error"]["code"], "invalid", "{query}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(name), "{query}: {msg}");
    }
}

/// `HEAD /api/v1{path}` as `role`, with extra headers.
fn head(
    s: &Served,
    path: &str,
    role: &str,
    headers: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let mut req = s
        .http
        .head(format!("{}/api/v1{path}", s.base))
        .bearer_auth(&s.tokens[role]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().unwrap()
}

fn q(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The download records of the audit log (`None` while the catalog is being made: a
/// reader that opens it between its creation and its first table is answered 503).
fn downloads(s: &Served) -> Option<Vec<Value>> {
    let resp = s.get("/log?kind=access", Some("viewer"));
    if resp.status().as_u16() == 503 {
        return None;
    }
    Some(
        json_of(resp, 200)
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["body"]["action"] == "download")
            .cloned()
            .collect(),
    )
}

/// Waits until the audit log holds `n` download records (a download is recorded once its
/// last byte went out), and a little longer to see that no more come.
fn downloads_settle(s: &Served, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        if downloads(s).is_some_and(|d| d.len() >= n) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    downloads(s).expect("the catalog can be read")
}

/// `HEAD` of a download answers the headers the `GET` does (length, type, ranges, name)
/// with no body; it ignores `Range`; a directory is its `.tar.gz` head; a viewer gets the
/// `403`, a missing path the `404`; it is not audited; and it reads no file content: with
/// the file's data packs gone, the `HEAD` still answers while the `GET` fails.
#[test]
fn serve_download_head() {
    let s = Served::start("");
    let site = s.env.path("site");
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let big: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    write_file(&site.join("data/big file.bin"), &big);
    write_file(&site.join("dump.sql"), b"select 1;\n");
    s.strata(["backup", "--project", "site", site.to_str().unwrap()])
        .success();
    let list = s.strata(["snapshots", "--json"]).success().json();
    let id = list.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let site_dir = site.to_str().unwrap().to_string();
    let url = |p: &str| {
        format!(
            "/snapshots/{id}/download?path={}",
            q(&format!("{site_dir}{p}"))
        )
    };
    let big_url = url("/data/big file.bin");

    // The GET's headers, and its content.
    let get = s
        .http
        .get(format!("{}/api/v1{big_url}", s.base))
        .bearer_auth(&s.tokens["operator"])
        .send()
        .unwrap();
    assert_eq!(get.status().as_u16(), 200);
    let get_headers = get.headers().clone();
    assert!(get.bytes().unwrap()[..] == big[..]);
    assert_eq!(downloads_settle(&s, 1).len(), 1);

    let resp = head(&s, &big_url, "operator", &[]);
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers().clone();
    for name in [
        "content-length",
        "content-type",
        "accept-ranges",
        "content-disposition",
        "cache-control",
        "x-content-type-options",
    ] {
        assert_eq!(h.get(name), get_headers.get(name), "{name}");
    }
    assert_eq!(h["content-length"], big.len().to_string().as_str());
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"big file.bin\"; filename*=UTF-8''big%20file.bin"
    );
    assert!(resp.bytes().unwrap().is_empty());

    // A Range is ignored: the whole file's length, 200.
    let resp = head(&s, &big_url, "operator", &[("range", "bytes=0-9")]);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-length"],
        big.len().to_string().as_str()
    );
    assert!(resp.headers().get("content-range").is_none());

    // A .sql file's type; a directory as its .tar.gz (no length: it is made as it goes).
    let resp = head(&s, &url("/dump.sql"), "operator", &[]);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/sql");
    assert_eq!(resp.headers()["content-length"], "10");
    let resp = head(&s, &url("/data"), "operator", &[]);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"data.tar.gz\"; filename*=UTF-8''data.tar.gz"
    );
    assert!(resp.headers().get("accept-ranges").is_none());

    // The GET's refusals.
    assert_eq!(head(&s, &big_url, "viewer", &[]).status().as_u16(), 403);
    assert_eq!(
        head(&s, &url("/no such file"), "operator", &[])
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        head(
            &s,
            &format!("/snapshots/{id}/download?path=a/../b"),
            "operator",
            &[]
        )
        .status()
        .as_u16(),
        422
    );
    assert_eq!(
        head(
            &s,
            &format!("/snapshots/{id}/download?gzip=maybe"),
            "operator",
            &[]
        )
        .status()
        .as_u16(),
        422
    );

    // Not one of the HEADs is in the audit log: only the GET.
    assert_eq!(downloads_settle(&s, 2).len(), 1, "a HEAD was audited");

    // No content read: the data packs of the big file gone, HEAD still answers, GET fails.
    let mut removed = 0;
    let mut stack = vec![s.env.repo.join("data")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.len() > 1_000_000 {
                std::fs::remove_file(e.path()).unwrap();
                removed += 1;
            }
        }
    }
    assert!(removed > 0, "no data pack of the big file found");
    let resp = head(&s, &big_url, "operator", &[]);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-length"],
        big.len().to_string().as_str()
    );
    let get = s
        .http
        .get(format!("{}/api/v1{big_url}", s.base))
        .bearer_auth(&s.tokens["operator"])
        .send()
        .unwrap();
    assert!(
        get.bytes().is_err(),
        "the GET should fail without the file's data"
    );
    // The failed GET is audited as failed; the HEADs still are not.
    let d = downloads_settle(&s, 2);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[1]["ok"], false, "{d:?}");
}
