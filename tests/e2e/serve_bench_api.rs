//! The API the server's benchmarks lean on (issue #17): `GET /snapshots` in pages.
//! Against the real server.

use std::collections::BTreeSet;

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
