//! strata.toml: reading the issue's example into the model, defaults, every error with its
//! place, redaction in `show`, no panic on any input; schedules and their arithmetic.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use proptest::prelude::*;
use strata_app::config::{self, Channel, DbKind, KeepRule, Schedule, Source};
use strata_app::ops::Event;
use strata_app::SecretRef;
use strata_engine::retention::parse_span;

/// A directory with the secret files the example names (mode 0600) and `strata.toml`.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().unwrap();
        for name in ["hot.pw", "smtp.pw", "slack.url", "hook.key", "shop-db.pw"] {
            secret_file(&dir.path().join(name), 0o600);
        }
        Dir { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self) -> PathBuf {
        self.path().join("strata.toml")
    }

    fn load(&self, text: &str) -> Result<config::Config, config::ConfigErrors> {
        std::fs::write(self.file(), text).unwrap();
        config::load(Some(&self.file()))
    }

    /// The errors of `text`, one per line, with the directory shown as `DIR`.
    fn errors(&self, text: &str) -> Vec<String> {
        let errors = self.load(text).expect_err("the config should not load");
        errors
            .to_string()
            .replace(&self.path().display().to_string(), "DIR")
            .lines()
            .map(String::from)
            .collect()
    }
}

fn secret_file(path: &Path, mode: u32) {
    std::fs::write(path, "s3cret-in-file\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The issue's config contract, with relative secret files.
const EXAMPLE: &str = r#"
state-dir = "state"

[repositories.hot]
url = "/srv/backup/strata"
password-file = "hot.pw"

[repositories.offsite]
url = "sftp://u1234@u1234.your-storagebox.de:23/./strata"
password-command = "pass show strata/offsite"
connections = 4
limit-upload = 2048

[notifications.ops-mail]
email = { smtp = "smtp://mail.example.com:587", starttls = true, user = "backup",
          password-file = "smtp.pw", from = "backup@example.com", to = ["ops@example.com"] }
on = ["failure", "warning", "recovered"]

[notifications.team-slack]
slack = { webhook-url-file = "slack.url" }

[notifications.app]
webhook = { url = "https://shop.example.com/hooks/backup", secret-file = "hook.key" }
on = ["success", "failure", "restore", "restore-test"]

[notifications.deadman]
ping = { url = "https://hc-ping.com/0b1c-very-secret-uuid" }

[projects.shop]
schedule = "daily 03:00"
paths = ["/srv/shop/storage/app", "/srv/shop/.env"]
exclude = ["*.log", "/srv/shop/storage/app/cache"]
databases = [
  { mysql = "mysql://shop@127.0.0.1/shop", password-file = "shop-db.pw" },
  { postgres = "postgres://kanbu@/kanbu", exec-prefix = ["docker", "exec", "-i", "kanbu-postgres"] },
  { sqlite = "db/jobs.sqlite" },
]
commands = [ { name = "redis.rdb", run = "redis-cli --rdb -" } ]
repositories = ["hot", "offsite"]
notify = ["ops-mail", "team-slack", "app", "deadman"]
max-age = "26h"
restore-test = "monthly"
prune = "weekly"
before = "php /srv/shop/artisan backup:prepare"
after = "echo done"
timeout = "2h"

[projects.shop.retention]
keep-daily = 30
[projects.shop.retention.offsite]
keep-daily = 7
keep-monthly = 84
keep-tag = ["pre-deploy"]
hold-monthly = "7y"
"#;

#[test]
fn the_issues_example_reads_into_the_model() {
    let d = Dir::new();
    let c = d.load(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.file, d.file());
    assert_eq!(c.state_dir, d.path().join("state"));

    let hot = &c.repositories["hot"];
    assert_eq!(hot.location, "/srv/backup/strata");
    assert_eq!(hot.password, Some(SecretRef::File(d.path().join("hot.pw"))));
    let offsite = &c.repositories["offsite"];
    assert_eq!(
        offsite.password,
        Some(SecretRef::Command("pass show strata/offsite".into()))
    );
    assert_eq!(offsite.connections, Some(4));
    assert_eq!(offsite.limit_upload_kib, Some(2048));

    let mail = &c.notifications["ops-mail"];
    assert_eq!(mail.on, [Event::Failure, Event::Warning, Event::Recovered]);
    let Channel::Email(e) = &mail.channel else {
        panic!("{mail:?}")
    };
    assert_eq!(e.smtp, "smtp://mail.example.com:587");
    assert!(e.starttls);
    assert_eq!(e.user.as_deref(), Some("backup"));
    assert_eq!(e.password, Some(SecretRef::File(d.path().join("smtp.pw"))));
    assert_eq!(e.to, ["ops@example.com"]);
    // Default events: failure and recovered; a ping also start and success.
    assert_eq!(
        c.notifications["team-slack"].on,
        [Event::Failure, Event::Recovered]
    );
    assert!(matches!(
        &c.notifications["team-slack"].channel,
        Channel::Slack { webhook_url: SecretRef::File(f) } if f == &d.path().join("slack.url")
    ));
    assert_eq!(
        c.notifications["deadman"].on,
        [
            Event::Start,
            Event::Failure,
            Event::Recovered,
            Event::Success
        ]
    );
    assert!(matches!(
        &c.notifications["app"].channel,
        Channel::Webhook { url, secret: Some(SecretRef::File(_)) } if url.ends_with("/hooks/backup")
    ));

    let p = &c.projects["shop"];
    assert_eq!(p.name, "shop");
    assert_eq!(p.schedule.as_ref().unwrap().text, "daily 03:00");
    let labels: Vec<String> = p.sources.iter().map(Source::label).collect();
    assert_eq!(
        labels,
        [
            "paths",
            "mysql:shop",
            "postgres:kanbu",
            "sqlite:jobs.sqlite",
            "command:redis.rdb"
        ]
    );
    let Source::Paths { paths, exclude } = &p.sources[0] else {
        panic!()
    };
    assert_eq!(paths.len(), 2);
    assert_eq!(exclude, &["*.log", "/srv/shop/storage/app/cache"]);
    let Source::Database(pg) = &p.sources[2] else {
        panic!()
    };
    assert_eq!(pg.kind, DbKind::Postgres);
    assert_eq!(pg.exec_prefix, ["docker", "exec", "-i", "kanbu-postgres"]);
    let Source::Database(sqlite) = &p.sources[3] else {
        panic!()
    };
    // Relative to the config's directory.
    assert_eq!(
        sqlite.location,
        d.path().join("db/jobs.sqlite").display().to_string()
    );
    assert_eq!(p.repositories, ["hot", "offsite"]);
    assert_eq!(p.primary(), "hot");
    assert_eq!(p.notify, ["ops-mail", "team-slack", "app", "deadman"]);
    assert_eq!(p.max_age, Some(Duration::from_secs(26 * 3600)));
    assert_eq!(p.timeout, Some(Duration::from_secs(2 * 3600)));
    assert_eq!(p.restore_test.as_ref().unwrap().text, "monthly");
    // check defaults to weekly for a scheduled project.
    assert_eq!(p.check.as_ref().unwrap().text, "weekly");
    assert_eq!(
        p.before.as_deref(),
        Some("php /srv/shop/artisan backup:prepare")
    );

    // Retention: the project's for hot; offsite's table over it.
    let hot = &p.retention["hot"];
    assert_eq!(hot.keep.daily, 30);
    assert_eq!(hot.keep.monthly, 0);
    assert!(hot.holds.is_empty());
    let off = &p.retention["offsite"];
    assert_eq!(off.keep.daily, 7);
    assert_eq!(off.keep.monthly, 84);
    assert_eq!(off.keep.tags, ["pre-deploy"]);
    assert_eq!(off.holds.len(), 1);
    assert_eq!(off.holds[0].rule, KeepRule::Monthly);
    assert_eq!(off.holds[0].span, parse_span("7y").unwrap());
}

#[test]
fn defaults_fill_every_project_key_by_key() {
    let d = Dir::new();
    for table in ["[defaults]", "[projects.defaults]"] {
        let text = format!(
            r#"
[repositories.hot]
url = "/r/hot"
password-file = "hot.pw"
[repositories.off]
url = "/r/off"
password-env = "OFF_PW"

{table}
schedule = "hourly"
repositories = ["hot", "off"]
timeout = "1h"
[{table_name}.retention]
keep-daily = 10
keep-weekly = 4
[{table_name}.retention.off]
keep-monthly = 12

[projects.a]
paths = ["/a"]

[projects.b]
paths = ["/b"]
schedule = "daily"
repositories = ["off"]
[projects.b.retention]
keep-daily = 3
[projects.b.retention.off]
keep-yearly = 7
"#,
            table_name = table.trim_matches(['[', ']'])
        );
        let c = d.load(&text).unwrap_or_else(|e| panic!("{table}: {e}"));
        assert_eq!(c.projects.len(), 2, "{table}: defaults is no project");
        let a = &c.projects["a"];
        assert_eq!(a.schedule.as_ref().unwrap().text, "hourly");
        assert_eq!(a.repositories, ["hot", "off"]);
        assert_eq!(a.timeout, Some(Duration::from_secs(3600)));
        // max-age from the schedule: 2 × 1h + 1h.
        assert_eq!(a.max_age, Some(Duration::from_secs(3 * 3600)));
        assert_eq!(a.retention["hot"].keep.daily, 10);
        assert_eq!(a.retention["off"].keep.daily, 10);
        assert_eq!(a.retention["off"].keep.monthly, 12);
        let b = &c.projects["b"];
        assert_eq!(b.schedule.as_ref().unwrap().text, "daily");
        assert_eq!(b.max_age, Some(Duration::from_secs(49 * 3600)));
        assert_eq!(b.repositories, ["off"]);
        assert!(!b.retention.contains_key("hot"));
        let off = &b.retention["off"].keep;
        // Per rule: the project's daily, the defaults' weekly, both repository tables.
        assert_eq!(
            (off.daily, off.weekly, off.monthly, off.yearly),
            (3, 4, 12, 7),
            "{table}"
        );
    }
}

#[test]
fn a_project_without_schedule_has_no_max_age_check_or_retention() {
    let d = Dir::new();
    let c = d
        .load(
            "[repositories.hot]\nurl = \"/r\"\npassword-file = \"hot.pw\"\n\
             [projects.x]\ncommands = [{ name = \"n\", run = \"true\" }]\nrepositories = [\"hot\"]\n",
        )
        .unwrap();
    let x = &c.projects["x"];
    assert!(x.schedule.is_none() && x.max_age.is_none() && x.check.is_none());
    assert!(x.retention.is_empty());
}

/// Every error of a bad config, all at once, each at its place and naming its key.
#[test]
fn every_error_is_reported_with_file_line_column_and_key() {
    let d = Dir::new();
    secret_file(&d.path().join("open.pw"), 0o644);
    let text = r#"[repositories.hot]
url = "/r"
password-file = "hot.pw"
pasword-command = "x"

[repositories.two]
url = "/r2"
password-file = "missing.pw"

[repositories.open]
url = "/r3"
password-file = "open.pw"

[repositories.both]
url = "/r4"
password-file = "hot.pw"
password-env = "PW"

[notifications.n]
ping = { url = "https://hc-ping.com/x" }
on = ["failure", "exploded"]

[projects.shop]
schedule = "daily 25:00"
paths = ["/srv"]
repositories = ["hot", "nowhere"]
notify = ["n", "pager"]
max-age = "soon"
timeout = 5
databases = [ { mysql = "mysql://a/b", postgres = "postgres://c/d" } ]

[projects.empty]
paths = ["/x"]
repositories = []

[projects.cron]
paths = ["/x"]
repositories = ["hot"]
schedule = "0 0 31 2 *"
[projects.cron.retention.hot]
hold-monthly = "7 years"
"#;
    let errors = d.errors(text);
    let want = [
        "DIR/strata.toml:4:1: repositories.hot.pasword-command: unknown key (did you mean `password-command`?)",
        "DIR/strata.toml:8:17: repositories.two.password-file: DIR/missing.pw does not exist",
        "DIR/strata.toml:12:17: repositories.open.password-file: DIR/open.pw is open to its group or others (mode 0644); it holds a secret: chmod 600 DIR/open.pw",
        "DIR/strata.toml:17:16: repositories.both.password-env: give only one of password-file, password-command, password-env",
        "DIR/strata.toml:21:18: notifications.n.on[1]: unknown event `exploded`; the events are start, failure, warning, recovered, success, restore, restore-test",
        "DIR/strata.toml:24:12: projects.shop.schedule: bad schedule: `25:00` is no time of day: write it as HH:MM (03:00)",
        "DIR/strata.toml:26:24: projects.shop.repositories[1]: no repository `nowhere` is defined (defined: both, hot, open, two)",
        "DIR/strata.toml:27:16: projects.shop.notify[1]: no notification `pager` is defined (defined: n)",
        "DIR/strata.toml:28:11: projects.shop.max-age: `soon` is no duration (expected number at 0); write it as `26h`, `90m` or `2h 30m`",
        "DIR/strata.toml:29:11: projects.shop.timeout: expected a string, found an integer",
        "DIR/strata.toml:30:51: projects.shop.databases[0].postgres: a database is one of mysql, postgres or sqlite: list each in `databases` on its own",
        "DIR/strata.toml:34:16: projects.empty.repositories: name at least one repository (the first is the primary)",
        "DIR/strata.toml:39:12: projects.cron.schedule: bad schedule: `0 0 31 2 *` never happens (no such day in any month)",
        "DIR/strata.toml:41:16: projects.cron.retention.hot.hold-monthly: unknown unit ` ` in span `7 years`; write a span as numbers with units y (years), m (months), d (days), h (hours) in that order, such as `30d`, `1y2m` or `12h`",
    ];
    assert_eq!(errors, want, "\n{}", errors.join("\n"));
}

#[test]
fn a_hold_without_its_keep_rule_and_a_foreign_repository_table_are_errors() {
    let d = Dir::new();
    let text = r#"[repositories.hot]
url = "/r"
password-file = "hot.pw"
[repositories.off]
url = "/o"
password-file = "hot.pw"
[projects.p]
paths = ["/p"]
repositories = ["hot"]
[projects.p.retention]
keep-daily = 3
hold-monthly = "7y"
kept-daily = 1
[projects.p.retention.off]
keep-daily = 1
"#;
    let errors = d.errors(text);
    assert_eq!(
        errors,
        [
            "DIR/strata.toml:12:16: projects.p.retention.hold-monthly: hold-monthly holds what keep-monthly keeps, and keep-monthly is not set for repository `hot`",
            "DIR/strata.toml:13:1: projects.p.retention.kept-daily: unknown key; the keys here are keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly, hold-last, hold-hourly, hold-daily, hold-weekly, hold-monthly, hold-yearly, keep-within, keep-tag and a table per repository",
            "DIR/strata.toml:14:23: projects.p.retention.off: `off` is not one of this project's repositories (hot)",
        ],
        "\n{}",
        errors.join("\n")
    );
}

#[test]
fn missing_parts_are_named() {
    let d = Dir::new();
    let text = "[repositories.r]\nurl = \"/r\"\n\n[notifications.x]\non = []\n\n\
                [notifications.mail]\nemail = { smtp = \"smtp://mail.example.com\", starttls = false, from = \"a@b\", to = [\"c@d\"] }\n\n\
                [projects.p]\nrepositories = [\"r\"]\n";
    let errors = d.errors(text);
    assert_eq!(
        errors,
        [
            "DIR/strata.toml:1:1: repositories.r: needs a password: give one of password-file, password-command, password-env",
            "DIR/strata.toml:4:1: notifications.x: give one of email, slack, webhook or ping",
            "DIR/strata.toml:8:56: notifications.mail.email.starttls: starttls = false would send mail (and the password) to mail.example.com in the clear; only a server on this machine may go without TLS: set starttls = true, or use smtps://",
            "DIR/strata.toml:10:1: projects.p: nothing to back up: give paths, databases or commands",
        ],
        "\n{}",
        errors.join("\n")
    );
}

#[test]
fn a_syntax_error_has_its_place_and_a_missing_file_its_path() {
    let d = Dir::new();
    let errors = d.errors("[repositories.hot]\nurl = \"/r\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    // Where the closing quote is missing: the end of line 2.
    assert_eq!(
        errors,
        ["DIR/strata.toml:2:10: invalid basic string, expected `\"`"]
    );
    let missing = d.path().join("nope.toml");
    let err = config::load(Some(&missing)).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: no such file", missing.display())),
        "{err}"
    );
}

#[test]
fn show_redacts_every_inline_secret_and_keeps_the_references() {
    let d = Dir::new();
    let text = r#"
[repositories.hot]
url = "sftp://u1:repo-url-pass@box.example/strata"
password-file = "hot.pw"
[notifications.slack]
slack = { webhook-url = "https://hooks.slack.com/services/T0/B0/slack-token-xyz" }
[notifications.hook]
webhook = { url = "https://user:hook-url-pass@app.example/hook?token=query-token", secret = "hmac-key-abc" }
[notifications.ping]
ping = { url = "https://hc-ping.com/ping-uuid-123" }
[projects.p]
databases = [ { postgres = "postgres://app:db-url-pass@db/app", password-command = "pass show db" } ]
repositories = ["hot"]
notify = ["slack", "hook", "ping"]
"#;
    let c = d.load(text).unwrap_or_else(|e| panic!("{e}"));
    let value = config::show::effective(&c);
    let shown = format!(
        "{}\n{}",
        serde_json::to_string_pretty(&value).unwrap(),
        config::show::to_toml(&value)
    );
    for secret in [
        "repo-url-pass",
        "slack-token-xyz",
        "services/T0",
        "hook-url-pass",
        "query-token",
        "hmac-key-abc",
        "ping-uuid-123",
        "db-url-pass",
        "s3cret-in-file",
    ] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    for reference in [
        "hot.pw",
        "pass show db",
        "https://hooks.slack.com/…",
        "https://hc-ping.com/…",
        "\"secret\": \"<redacted>\"",
        "sftp://u1:<redacted>@box.example/strata",
    ] {
        assert!(shown.contains(reference), "{reference} not shown:\n{shown}");
    }
    // Debug of the model does not show them either (a log line of a whole config).
    let debug = format!("{c:?}");
    for secret in ["slack-token-xyz", "hmac-key-abc"] {
        assert!(!debug.contains(secret), "{secret} in Debug");
    }
}

#[test]
fn show_prints_toml_that_reads_back() {
    let d = Dir::new();
    let c = d.load(EXAMPLE).unwrap();
    let toml_text = config::show::to_toml(&config::show::effective(&c));
    let back: toml::Table =
        toml::from_str(&toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    let shop = &back["projects"]["shop"];
    assert_eq!(shop["max-age"].as_str(), Some("1day 2h"));
    assert_eq!(shop["check"].as_str(), Some("weekly"));
    assert_eq!(
        shop["retention"]["offsite"]["keep-monthly"].as_integer(),
        Some(84)
    );
    assert_eq!(
        shop["retention"]["offsite"]["hold-monthly"].as_str(),
        Some("7y")
    );
    assert_eq!(
        shop["retention"]["hot"]["keep-daily"].as_integer(),
        Some(30)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Nothing panics on any text.
    #[test]
    fn no_text_makes_the_reader_panic(text in "\\PC{0,300}") {
        let _ = config::parse(Path::new("/nonexistent/strata.toml"), &text);
    }

    /// Nor on the example with a few bytes changed, cut or inserted.
    #[test]
    fn no_mutation_of_a_valid_config_makes_it_panic(
        edits in prop::collection::vec((0usize..EXAMPLE.len(), 0u8..3, any::<char>()), 1..6)
    ) {
        let mut text = EXAMPLE.to_string();
        for (at, how, c) in edits {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match how {
                0 => text.insert(at, c),
                1 => { if at < text.len() { let ch = text[at..].chars().next().unwrap(); text.replace_range(at..at + ch.len_utf8(), ""); } }
                _ => text.truncate(at),
            }
        }
        let _ = config::parse(Path::new("/nonexistent/strata.toml"), &text);
    }
}

// ---- schedules ----

fn berlin() -> TimeZone {
    TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
}

/// `YYYY-MM-DD HH:MM` wall time in `tz` (first occurrence) as Unix ns.
fn at(s: &str, tz: &TimeZone) -> i64 {
    let dt: jiff::civil::DateTime = s.parse().unwrap();
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .unwrap()
        .as_nanosecond() as i64
}

/// Unix ns as `YYYY-MM-DDTHH:MM+OFFSET` in `tz`.
fn show(ns: i64, tz: &TimeZone) -> String {
    let z = jiff::Timestamp::from_nanosecond(i128::from(ns))
        .unwrap()
        .to_zoned(tz.clone());
    z.strftime("%Y-%m-%dT%H:%M%:z").to_string()
}

#[test]
fn next_and_prev_slots_of_expressions_and_aliases() {
    let utc = TimeZone::UTC;
    // (schedule, from, next after, latest at or before)
    let table = [
        (
            "hourly",
            "2026-03-01 10:30",
            "2026-03-01T11:00+00:00",
            "2026-03-01T10:00+00:00",
        ),
        (
            "daily",
            "2026-03-01 10:30",
            "2026-03-02T00:00+00:00",
            "2026-03-01T00:00+00:00",
        ),
        (
            "daily 03:00",
            "2026-03-01 03:00",
            "2026-03-02T03:00+00:00",
            "2026-03-01T03:00+00:00",
        ),
        // Monday 00:00: 2026-03-01 is a Sunday.
        (
            "weekly",
            "2026-03-01 10:30",
            "2026-03-02T00:00+00:00",
            "2026-02-23T00:00+00:00",
        ),
        (
            "weekly fri 18:30",
            "2026-03-01 10:30",
            "2026-03-06T18:30+00:00",
            "2026-02-27T18:30+00:00",
        ),
        (
            "monthly",
            "2026-03-01 10:30",
            "2026-04-01T00:00+00:00",
            "2026-03-01T00:00+00:00",
        ),
        (
            "*/15 * * * *",
            "2026-03-01 10:31",
            "2026-03-01T10:45+00:00",
            "2026-03-01T10:30+00:00",
        ),
        (
            "0 9-17/4 * * mon-fri",
            "2026-02-27 18:00",
            "2026-03-02T09:00+00:00",
            "2026-02-27T17:00+00:00",
        ),
        (
            "30 2 29 2 *",
            "2026-03-01 00:00",
            "2028-02-29T02:30+00:00",
            "2024-02-29T02:30+00:00",
        ),
        // Vixie: both restricted, either matches (the 13th, or any Friday).
        (
            "0 0 13 * fri",
            "2026-03-01 10:30",
            "2026-03-06T00:00+00:00",
            "2026-02-27T00:00+00:00",
        ),
        (
            "0 0 13 * fri",
            "2026-03-12 10:30",
            "2026-03-13T00:00+00:00",
            "2026-03-06T00:00+00:00",
        ),
        // One field starting with `*`: both must match (Sundays on odd days; with the
        // either-rule the 3rd would come next).
        (
            "0 0 */2 * 0",
            "2026-03-01 10:30",
            "2026-03-15T00:00+00:00",
            "2026-03-01T00:00+00:00",
        ),
        // February 29 on a Sunday: 2032, then 2060.
        (
            "0 0 29 2 */7",
            "2026-03-01 10:30",
            "2032-02-29T00:00+00:00",
            "2004-02-29T00:00+00:00",
        ),
        (
            "0 12 1 jan,jul *",
            "2026-03-01 10:30",
            "2026-07-01T12:00+00:00",
            "2026-01-01T12:00+00:00",
        ),
    ];
    for (expr, from, next, prev) in table {
        let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let t = at(from, &utc);
        assert_eq!(
            show(s.next_slot(t, &utc).unwrap(), &utc),
            next,
            "{expr} next after {from}"
        );
        assert_eq!(
            show(s.prev_slot(t, &utc).unwrap(), &utc),
            prev,
            "{expr} prev at {from}"
        );
    }
}

#[test]
fn daylight_saving_changes_run_each_slot_once() {
    let tz = berlin();
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST. A 02:30 slot runs once, when the gap ends.
    let s = Schedule::parse("30 2 * * *").unwrap();
    let next = s.next_slot(at("2026-03-29 00:00", &tz), &tz).unwrap();
    assert_eq!(show(next, &tz), "2026-03-29T03:00+02:00");
    assert_eq!(
        show(s.next_slot(next, &tz).unwrap(), &tz),
        "2026-03-30T02:30+02:00"
    );
    // Every 15 minutes through the gap: the four slots of 02:xx are one run at 03:00, and
    // 03:00 itself is the same instant.
    let q = Schedule::parse("*/15 * * * *").unwrap();
    let mut t = at("2026-03-29 01:40", &tz);
    let mut seen = Vec::new();
    for _ in 0..4 {
        t = q.next_slot(t, &tz).unwrap();
        seen.push(show(t, &tz));
    }
    assert_eq!(
        seen,
        [
            "2026-03-29T01:45+01:00",
            "2026-03-29T03:00+02:00",
            "2026-03-29T03:15+02:00",
            "2026-03-29T03:30+02:00"
        ]
    );
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET. A 02:30 slot runs once, the first time.
    let first = s.next_slot(at("2026-10-25 00:00", &tz), &tz).unwrap();
    assert_eq!(show(first, &tz), "2026-10-25T02:30+02:00");
    assert_eq!(
        show(s.next_slot(first, &tz).unwrap(), &tz),
        "2026-10-26T02:30+01:00"
    );
    // Seen from inside the repeated hour (02:40 CET, the second time round), the latest
    // slot is the first 02:30, an hour and ten minutes ago.
    let second_0240 = first + Duration::from_secs(3600 + 600).as_nanos() as i64;
    assert_eq!(show(second_0240, &tz), "2026-10-25T02:40+01:00");
    assert_eq!(s.prev_slot(second_0240, &tz), Some(first));
    // An hourly schedule gets 02:00 once in the fold and 03:00 after it.
    let h = Schedule::parse("hourly").unwrap();
    let mut t = at("2026-10-25 01:30", &tz);
    let mut seen = Vec::new();
    for _ in 0..3 {
        t = h.next_slot(t, &tz).unwrap();
        seen.push(show(t, &tz));
    }
    assert_eq!(
        seen,
        [
            "2026-10-25T02:00+02:00",
            "2026-10-25T03:00+01:00",
            "2026-10-25T04:00+01:00"
        ]
    );
}

#[test]
fn a_missed_run_is_caught_up_once() {
    let tz = berlin();
    let s = Schedule::parse("daily 03:00").unwrap();
    // Never run: due.
    assert!(s.is_due(None, at("2026-06-01 12:00", &tz), &tz));
    // Ran at 03:00:10 on June 1; the machine was off until June 5 noon.
    let last = at("2026-06-01 03:00", &tz) + 10_000_000_000;
    assert!(!s.is_due(Some(last), at("2026-06-02 02:59", &tz), &tz));
    let back = at("2026-06-05 12:00", &tz);
    assert!(s.is_due(Some(last), back, &tz));
    // The catch-up run at noon: not due again until the next 03:00.
    assert!(!s.is_due(Some(back), back + 60_000_000_000, &tz));
    assert!(!s.is_due(Some(back), at("2026-06-06 02:59", &tz), &tz));
    assert!(s.is_due(Some(back), at("2026-06-06 03:00", &tz), &tz));
}

#[test]
fn intervals_are_the_longest_gap_and_give_max_age() {
    let h = |n: u64| Duration::from_secs(n * 3600);
    for (expr, interval) in [
        ("hourly", h(1)),
        ("daily 03:00", h(24)),
        ("weekly", h(7 * 24)),
        ("monthly", h(31 * 24)),
        ("*/5 * * * *", Duration::from_secs(300)),
        // Weekdays: the weekend's gap, so Monday morning is not critical.
        ("0 3 * * 1-5", h(72)),
        ("0 9-17 * * *", h(16)),
        ("0 0 29 2 */7", h(10227 * 24)),
    ] {
        let s = Schedule::parse(expr).unwrap();
        assert_eq!(s.interval(), interval, "{expr}");
        assert_eq!(s.default_max_age(), interval * 2 + h(1), "{expr}");
    }
}

#[test]
fn bad_schedules_say_why() {
    for (expr, needle) in [
        ("", "empty"),
        ("0 0 31 2 *", "never happens"),
        ("0 0 30 2 *", "never happens"),
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("* * * *", "5 fields"),
        ("daily 3pm", "no time of day"),
        ("weekly someday", "no day of the week"),
        ("0 0 * * 8", "out of range"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("0 0 * foo *", "neither a number nor a name"),
    ] {
        let err = Schedule::parse(expr).expect_err(expr);
        assert!(err.contains(needle), "{expr:?}: {err}");
    }
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (0u32..70).prop_map(|n| n.to_string()),
        (0u32..40, 0u32..40).prop_map(|(a, b)| format!("{a}-{b}")),
        (1u32..30).prop_map(|s| format!("*/{s}")),
        (0u32..40, 1u32..10).prop_map(|(a, s)| format!("{a}/{s}")),
        Just("mon-fri".to_string()),
        Just("jan,jul".to_string()),
        "[0-9*/,a-z-]{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Any expression: parsing never panics; a schedule that parses has slots on both
    /// sides of any time (within the calendar), in order, and they agree.
    #[test]
    fn schedules_never_panic_and_their_slots_agree(
        f in prop::collection::vec(field(), 5),
        secs in -2_000_000_000i64..4_000_000_000,
        berlin_zone in any::<bool>(),
    ) {
        let expr = f.join(" ");
        let tz = if berlin_zone { berlin() } else { TimeZone::UTC };
        let t = secs * 1_000_000_000;
        if let Ok(s) = Schedule::parse(&expr) {
            let next = s.next_slot(t, &tz);
            let prev = s.prev_slot(t, &tz);
            if let Some(n) = next {
                prop_assert!(n > t, "{expr}: next {n} <= {t}");
                prop_assert_eq!(s.prev_slot(n, &tz), Some(n), "{}", expr);
            }
            if let Some(p) = prev {
                prop_assert!(p <= t, "{expr}: prev {p} > {t}");
                prop_assert_eq!(s.next_slot(p, &tz), next, "{}", expr);
            }
            prop_assert!(next.is_some() && prev.is_some(), "{expr}: no slot near {t}");
            prop_assert!(!s.is_due(Some(t), t, &tz));
        }
    }

    #[test]
    fn no_schedule_text_panics(text in "\\PC{0,40}") {
        let _ = Schedule::parse(&text);
    }
}

// ---- the timer ----

#[test]
fn the_systemd_units_are_written_into_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let units = config::timer::systemd_units(
        Path::new("/usr/bin/strata"),
        Path::new("/etc/strata/strata.toml"),
    );
    let written = config::timer::install_systemd(dir.path(), &units, false).unwrap();
    assert_eq!(
        written,
        [
            dir.path().join("strata.service"),
            dir.path().join("strata.timer")
        ]
    );
    let service = std::fs::read_to_string(dir.path().join("strata.service")).unwrap();
    assert!(service.contains("Type=oneshot\n"), "{service}");
    assert!(
        service.contains("ExecStart=/usr/bin/strata --config /etc/strata/strata.toml run --due\n"),
        "{service}"
    );
    let timer = std::fs::read_to_string(dir.path().join("strata.timer")).unwrap();
    for line in [
        "OnCalendar=*:0/5\n",
        "Persistent=true\n",
        "RandomizedDelaySec=30\n",
        "WantedBy=timers.target\n",
    ] {
        assert!(timer.contains(line), "{line} missing:\n{timer}");
    }
    let mode = std::fs::metadata(dir.path().join("strata.timer"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    // A directory that does not exist: an error naming it, nothing panics.
    let err =
        config::timer::install_systemd(&dir.path().join("no/such"), &units, false).unwrap_err();
    assert!(err.to_string().contains("no/such/strata.service"), "{err}");
}

#[test]
fn the_cron_line_runs_strata_every_five_minutes() {
    let line = config::timer::cron_line(
        Path::new("/usr/bin/strata"),
        Path::new("/etc/strata/strata.toml"),
        "root",
    );
    assert_eq!(
        line,
        "*/5 * * * * root /usr/bin/strata --config /etc/strata/strata.toml run --due\n"
    );
}

/// An error about a value that is a secret does not quote it.
#[test]
fn errors_about_secret_values_do_not_quote_them() {
    let d = Dir::new();
    let text = r#"
[notifications.slack]
slack = { webhook-url = "http://hooks.example/leak-slack" }
[notifications.hook]
webhook = { url = "htp://user:leak-hook@app.example/x", secret = "" }
[notifications.ping]
ping = { url = "hc-ping.com/leak-ping" }
"#;
    let errors = d.errors(text).join("\n");
    assert_eq!(errors.lines().count(), 4, "{errors}");
    assert!(!errors.contains("leak"), "{errors}");
    assert!(
        errors.contains(
            "notifications.slack.slack.webhook-url: a Slack webhook URL starts with https://"
        ),
        "{errors}"
    );
    assert!(
        errors.contains("notifications.hook.webhook.secret: must not be empty"),
        "{errors}"
    );
}

/// ssh is an exec-prefix for a database without a password (one it could not pass on);
/// with one, the config names the line.
#[test]
fn ssh_is_an_exec_prefix_without_a_password() {
    let d = Dir::new();
    let head = "[repositories.r]\nurl = \"/r\"\npassword-env = \"PW\"\n\n\
                [projects.p]\nrepositories = [\"r\"]\n";
    let without = format!(
        "{head}databases = [ {{ postgres = \"postgres://app@/app\", exec-prefix = [\"/usr/bin/ssh\", \"db1\"] }} ]\n"
    );
    let config = d.load(&without).unwrap();
    let Source::Database(db) = &config.projects["p"].sources[0] else {
        panic!("{:?}", config.projects["p"].sources);
    };
    assert_eq!(db.exec_prefix, ["/usr/bin/ssh", "db1"]);
    let with = format!(
        "{head}databases = [ {{ postgres = \"postgres://app@/app\", password-env = \"DBPW\", exec-prefix = [\"/usr/bin/ssh\", \"db1\"] }} ]\n"
    );
    let errors = d.errors(&with);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("DIR/strata.toml:7:")
            && errors[0].contains("exec-prefix: a password cannot go through an ssh exec-prefix"),
        "{errors:?}"
    );
}

/// `[server]`: where to listen, where restores may write, who may log in; a bad role or a
/// password that is not an argon2id hash names its line.
#[test]
fn the_server_table() {
    let d = Dir::new();
    let head = "[repositories.r]\nurl = \"/r\"\npassword-env = \"PW\"\n";
    let good = format!(
        "{head}[server]\nlisten = \"127.0.0.1:9090\"\nrestore-roots = [\"restores\", \"/srv\"]\nsession-ttl = \"2h\"\n\
         [server.users.alice]\npassword-hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\"\nrole = \"admin\"\n"
    );
    let c = d.load(&good).unwrap();
    assert_eq!(c.server.listen, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(
        c.server.restore_roots,
        [d.path().join("restores"), PathBuf::from("/srv")]
    );
    assert_eq!(c.server.session_ttl, Duration::from_secs(7200));
    assert_eq!(c.server.users["alice"].role, "admin");
    let none = d.load(head).unwrap();
    assert!(none.server.users.is_empty() && none.server.restore_roots.is_empty());
    assert_eq!(none.server.session_ttl, config::DEFAULT_SESSION_TTL);
    let bad = format!(
        "{head}[server]\nlisten = \"everywhere\"\n[server.users.bob]\npassword-hash = \"hunter2\"\nrole = \"root\"\n\
         [server.users.carol]\nrole = \"viewer\"\n"
    );
    let errors = d.errors(&bad);
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors[0].starts_with("DIR/strata.toml:5:") && errors[0].contains("server.listen"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("DIR/strata.toml:7:") && errors[1].contains("argon2id"),
        "{errors:?}"
    );
    assert!(!errors.iter().any(|e| e.contains("hunter2")), "{errors:?}");
    assert!(
        errors[2].starts_with("DIR/strata.toml:8:")
            && errors[2].contains("viewer, operator or admin"),
        "{errors:?}"
    );
    assert!(
        errors[3].contains("needs password-hash and role"),
        "{errors:?}"
    );
}

#[test]
fn a_pitr_table_reads_into_the_project_and_its_mistakes_are_named() {
    let d = Dir::new();
    let base = "[repositories.hot]\nurl = \"/r\"\npassword-file = \"hot.pw\"\n\
                [projects.p]\npaths = [\"/p\"]\nrepositories = [\"hot\"]\n";
    let cfg = d
        .load(&format!(
            "{base}[projects.p.pitr]\ndata-dir = \"/var/lib/postgresql/15/main\"\n\
             password-file = \"shop-db.pw\"\nmax-wal-age = \"15m\"\nprefetch = 0\n"
        ))
        .unwrap();
    let c = cfg.projects["p"].pitr.as_ref().unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/postgresql/15/main"));
    assert_eq!(c.url, "postgres:///postgres");
    assert_eq!(c.stop_timeout, Duration::from_secs(300));
    assert_eq!(c.max_wal_age, Some(Duration::from_secs(900)));
    assert_eq!(c.prefetch, 0);
    assert_eq!(
        c.password,
        Some(SecretRef::File(d.path().join("shop-db.pw")))
    );
    let shown = config::show::effective(&cfg).to_string();
    assert!(
        shown.contains("\"data-dir\":\"/var/lib/postgresql/15/main\""),
        "{shown}"
    );
    assert!(shown.contains("\"stop-timeout\":\"5m\""), "{shown}");

    let errors = d.errors(&format!(
        "{base}[projects.p.pitr]\ndata-dir = \"main\"\nurl = \"mysql://x@y/z\"\nstop-timeout = \"soon\"\nprefetch = 5000\n\
         [defaults.pitr]\ndata-dir = \"/d\"\n"
    ));
    assert_eq!(
        errors,
        [
            "DIR/strata.toml:9:7: projects.p.pitr.url: a postgres:// URL (libpq's form: postgres://USER@HOST/DATABASE)",
            "DIR/strata.toml:10:16: projects.p.pitr.stop-timeout: `soon` is no duration (expected number at 0); write it as `26h`, `90m` or `2h 30m`",
            "DIR/strata.toml:11:12: projects.p.pitr.prefetch: expected an integer from 0 to 1024",
            "DIR/strata.toml:12:1: defaults.pitr: a cluster belongs to one project: give [projects.NAME.pitr], not a default",
        ],
        "\n{}",
        errors.join("\n")
    );
}
