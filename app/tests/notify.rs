//! Notifications against real receivers started here: an HTTP server on 127.0.0.1 (webhook,
//! Slack, pings) and a real SMTP server (aiosmtpd, plain and STARTTLS).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use strata_app::config::{Channel, Config, Email, Notification};
use strata_app::notify::{self, Dispatcher};
use strata_app::ops::{Event, Notice, Notifier, Record, RecordBody, Recorder, RunId};
use strata_app::SecretRef;

// ---------------------------------------------------------------------------------------
// helpers

/// Waits between attempts, scaled down: 10, 40, 160 ms.
fn fast_backoff() {
    std::env::set_var(notify::BACKOFF_VAR, "10");
}

#[derive(Default)]
struct Records(Mutex<Vec<Record>>);

impl Recorder for Records {
    fn record(&self, record: Record) -> strata_app::Result<()> {
        self.0.lock().unwrap().push(record);
        Ok(())
    }
}

impl Records {
    fn all(&self) -> Vec<Record> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP server answering each request with the next status of `statuses` (the last one
/// repeats), keeping what it received.
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(statuses: Vec<u16>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let status = *statuses.get(i).or(statuses.last()).unwrap_or(&200);
                serve(stream, status, &seen);
            }
        });
        Receiver { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request, keeps it, then answers (so that a sender that has its answer finds
/// the request kept).
fn serve(stream: TcpStream, status: u16, seen: &Mutex<Vec<Request>>) -> Option<()> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    seen.lock().unwrap().push(Request {
        method,
        path,
        headers,
        body,
    });
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    Some(())
}

fn config(channels: Vec<(&str, Channel, Vec<Event>)>) -> Config {
    Config {
        file: PathBuf::from("/test/strata.toml"),
        state_dir: PathBuf::from("/test/state"),
        repositories: BTreeMap::new(),
        server: Default::default(),
        notifications: channels
            .into_iter()
            .map(|(name, channel, on)| {
                (
                    name.to_string(),
                    Notification {
                        name: name.to_string(),
                        channel,
                        on,
                    },
                )
            })
            .collect(),
        projects: BTreeMap::new(),
    }
}

fn notice(event: Event) -> Notice {
    Notice {
        event,
        project: "shop".into(),
        repository: Some("hot".into()),
        run_id: Some(RunId("20261207T030002Z-beef".into())),
        snapshot_ids: vec!["a1b2c3".into(), "d4e5f6".into()],
        bytes_read: 123_456,
        bytes_added: 789,
        duration_ns: 2_500_000_000,
        error: (event == Event::Failure).then(|| "postgres:kanbu: pg_dump exited 1".into()),
        summary: format!("shop: {}", event.name()),
        time_ns: 1_796_612_402_000_000_000,
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn write_secret(dir: &Path, name: &str, content: &str) -> SecretRef {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    SecretRef::File(p)
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------
// HTTP channels

#[test]
fn a_webhook_is_signed_and_retried_until_it_is_accepted() {
    fast_backoff();
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(vec![500, 500, 200]);
    let secret = write_secret(tmp.path(), "hook.key", "k3y\n");
    let cfg = config(vec![(
        "app",
        Channel::Webhook {
            url: rx.url("/hooks/backup"),
            secret: Some(secret),
        },
        vec![Event::Failure],
    )]);
    let records = Arc::new(Records::default());
    let d = Dispatcher::new(&cfg, records.clone());
    d.notify(&names(&["app"]), &notice(Event::Failure));

    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3, "two refusals and one success");
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks/backup");
        assert_eq!(r.headers["x-strata-event"], "failure");
        assert!(
            r.headers["user-agent"].starts_with("strata/"),
            "{:?}",
            r.headers
        );
        assert_eq!(r.headers["content-type"], "application/json");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k3y").unwrap();
        mac.update(&r.body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(r.headers["x-strata-signature"], want);
    }
    let body: serde_json::Value = serde_json::from_slice(&reqs[2].body).unwrap();
    assert_eq!(body["event"], "failure");
    assert_eq!(body["project"], "shop");
    assert_eq!(body["repository"], "hot");
    assert_eq!(body["run_id"], "20261207T030002Z-beef");
    assert_eq!(
        body["snapshot_ids"],
        serde_json::json!(["a1b2c3", "d4e5f6"])
    );
    assert_eq!(body["bytes_read"], 123_456);
    assert_eq!(body["bytes_added"], 789);
    assert_eq!(body["duration_s"], 2.5);
    assert_eq!(body["error"], "postgres:kanbu: pg_dump exited 1");
    assert_eq!(body["summary"], "shop: failure");
    assert_eq!(body["time"], "2026-12-07T03:00:02Z");

    let recs = records.all();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert!(r.ok, "{r:?}");
    assert_eq!(r.project.as_deref(), Some("shop"));
    assert_eq!(
        r.body,
        RecordBody::Notify {
            channel: "app".into(),
            event: Event::Failure,
            attempts: 3
        }
    );
}

#[test]
fn an_unsigned_webhook_has_no_signature_header() {
    fast_backoff();
    let rx = Receiver::start(vec![204]);
    let cfg = config(vec![(
        "app",
        Channel::Webhook {
            url: rx.url("/h"),
            secret: None,
        },
        vec![Event::Success],
    )]);
    let records = Arc::new(Records::default());
    Dispatcher::new(&cfg, records.clone()).notify(&names(&["app"]), &notice(Event::Success));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    assert!(!reqs[0].headers.contains_key("x-strata-signature"));
    assert!(records.all()[0].ok, "204 is a success");
}

#[test]
fn slack_gets_the_text_at_the_url_its_secret_names() {
    fast_backoff();
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(vec![200]);
    let url = write_secret(
        tmp.path(),
        "slack.url",
        &format!("{}\n", rx.url("/services/T0/B0/XYZ")),
    );
    let cfg = config(vec![(
        "team",
        Channel::Slack { webhook_url: url },
        Event::default_on(),
    )]);
    let records = Arc::new(Records::default());
    Dispatcher::new(&cfg, records.clone()).notify(&names(&["team"]), &notice(Event::Failure));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/services/T0/B0/XYZ");
    let body: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("[strata] shop: failure"), "{text}");
    assert!(text.contains("pg_dump exited 1"), "{text}");
    assert!(records.all()[0].ok);
}

#[test]
fn pings_go_to_start_the_url_and_fail_and_nothing_else_is_pinged() {
    fast_backoff();
    let rx = Receiver::start(vec![200]);
    let cfg = config(vec![(
        "deadman",
        Channel::Ping {
            url: rx.url("/0b1c-uuid"),
        },
        Event::ALL.to_vec(),
    )]);
    let records = Arc::new(Records::default());
    let d = Dispatcher::new(&cfg, records.clone());
    for e in [
        Event::Start,
        Event::Success,
        Event::Failure,
        Event::Warning,
        Event::Recovered,
        Event::Restore,
    ] {
        d.notify(&names(&["deadman"]), &notice(e));
    }
    let paths: Vec<String> = rx.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/0b1c-uuid/start",
            "/0b1c-uuid",
            "/0b1c-uuid/fail",
            "/0b1c-uuid"
        ]
    );
    let fail = &rx.requests()[2];
    assert!(String::from_utf8_lossy(&fail.body).contains("pg_dump exited 1"));
    assert_eq!(records.all().len(), 4, "events not pinged are not recorded");
}

#[test]
fn a_channel_gets_only_the_events_of_its_on_list() {
    fast_backoff();
    let rx = Receiver::start(vec![200]);
    let cfg = config(vec![(
        "app",
        Channel::Webhook {
            url: rx.url("/h"),
            secret: None,
        },
        vec![Event::Failure, Event::Recovered],
    )]);
    let records = Arc::new(Records::default());
    let d = Dispatcher::new(&cfg, records.clone());
    d.notify(&names(&["app"]), &notice(Event::Success));
    d.notify(&names(&["app"]), &notice(Event::Start));
    assert!(rx.requests().is_empty());
    d.notify(&names(&["app"]), &notice(Event::Recovered));
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(records.all().len(), 1);
}

#[test]
fn a_dead_receiver_fails_after_the_retries_is_recorded_and_shows_no_secret() {
    fast_backoff();
    let port = dead_port();
    let cfg = config(vec![(
        "app",
        Channel::Webhook {
            url: format!("http://user:pa55@127.0.0.1:{port}/hooks/s3cret?token=t0k"),
            secret: None,
        },
        vec![Event::Failure],
    )]);
    let records = Arc::new(Records::default());
    let started = Instant::now();
    Dispatcher::new(&cfg, records.clone()).notify(&names(&["app"]), &notice(Event::Failure));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let recs = records.all();
    assert_eq!(recs.len(), 1);
    assert!(!recs[0].ok);
    assert!(
        matches!(recs[0].body, RecordBody::Notify { attempts: 4, .. }),
        "{recs:?}"
    );
    let err = recs[0].error.as_deref().unwrap();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    for secret in ["s3cret", "t0k", "pa55", "user"] {
        assert!(!err.contains(secret), "{secret} in {err}");
    }
}

#[test]
fn an_unknown_channel_is_recorded_as_failed_and_others_still_get_the_notice() {
    fast_backoff();
    let rx = Receiver::start(vec![200]);
    let cfg = config(vec![(
        "app",
        Channel::Webhook {
            url: rx.url("/h"),
            secret: None,
        },
        vec![Event::Failure],
    )]);
    let records = Arc::new(Records::default());
    Dispatcher::new(&cfg, records.clone())
        .notify(&names(&["nope", "app"]), &notice(Event::Failure));
    assert_eq!(rx.requests().len(), 1);
    let recs = records.all();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs.iter().filter(|r| r.ok).count(), 1);
}

#[test]
fn notify_works_inside_a_runtime_and_notify_async_on_it() {
    fast_backoff();
    let rx = Receiver::start(vec![200]);
    let cfg = config(vec![(
        "app",
        Channel::Webhook {
            url: rx.url("/h"),
            secret: None,
        },
        vec![Event::Failure],
    )]);
    let records = Arc::new(Records::default());
    let d = Dispatcher::new(&cfg, records.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        d.notify(&names(&["app"]), &notice(Event::Failure));
        d.notify_async(&names(&["app"]), &notice(Event::Failure))
            .await;
        // Dropped inside the runtime: must not panic.
        drop(d);
    });
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(records.all().len(), 2);
}

#[test]
fn send_test_sends_now_and_reports_the_error() {
    fast_backoff();
    let rx = Receiver::start(vec![200]);
    let cfg = config(vec![
        (
            "app",
            Channel::Webhook {
                url: rx.url("/h"),
                secret: None,
            },
            vec![Event::Success],
        ),
        (
            "dead",
            Channel::Webhook {
                url: format!("http://127.0.0.1:{}/secret-path", dead_port()),
                secret: None,
            },
            vec![Event::Success],
        ),
    ]);
    notify::send_test(&cfg, "app", Event::Failure).unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1, "sent whatever the on list says");
    let body: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body["event"], "failure");
    let e = notify::send_test(&cfg, "dead", Event::Failure)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("notification dead:"), "{e}");
    assert!(!e.contains("secret-path"), "{e}");
    let e = notify::send_test(&cfg, "nope", Event::Failure)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no notification named \"nope\""), "{e}");
    assert!(e.contains("app, dead"), "{e}");
}

// ---------------------------------------------------------------------------------------
// email, through a real SMTP server

const PYTHON: &str = "/var/tmp/strata-venv/bin/python3";

/// aiosmtpd delivering into a Maildir; killed when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl SmtpServer {
    /// `tls`: (certificate, key, implicit): STARTTLS offered and required, or, when
    /// implicit, TLS from the first byte (SMTPS).
    fn start(dir: &Path, tls: Option<(&Path, &Path, bool)>) -> SmtpServer {
        assert!(
            Path::new(PYTHON).exists(),
            "{PYTHON} is missing: .ci/run installs aiosmtpd into /var/tmp/strata-venv"
        );
        let port = dead_port();
        let maildir = dir.join("Maildir");
        let mut cmd = Command::new(PYTHON);
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"]);
        match tls {
            Some((cert, key, false)) => {
                cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
            }
            Some((cert, key, true)) => {
                cmd.arg("--smtpscert").arg(cert).arg("--smtpskey").arg(key);
            }
            None => {}
        }
        cmd.arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer {
            child,
            port,
            maildir,
        }
    }

    fn mails(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        dir.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn email(smtp: String, starttls: bool, ca_file: Option<PathBuf>) -> Email {
    Email {
        smtp,
        starttls,
        user: None,
        password: None,
        from: "backup@example.com".into(),
        to: vec!["ops@example.com".into(), "boss@example.com".into()],
        ca_file,
    }
}

fn assert_mail(mail: &str) {
    assert!(mail.contains("Subject: [strata] shop: failure"), "{mail}");
    assert!(mail.contains("From: backup@example.com"), "{mail}");
    assert!(mail.contains("ops@example.com"), "{mail}");
    assert!(mail.contains("boss@example.com"), "{mail}");
    for field in [
        "shop: failure",
        "repository: hot",
        "run:        20261207T030002Z-beef",
        "snapshots:  a1b2c3 d4e5f6",
        "read:       123456 bytes",
        "time:       2026-12-07T03:00:02Z",
        "pg_dump exited 1",
    ] {
        assert!(mail.contains(field), "{field:?} not in {mail}");
    }
}

#[test]
fn mail_arrives_through_a_real_smtp_server() {
    fast_backoff();
    let tmp = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(tmp.path(), None);
    let cfg = config(vec![(
        "ops-mail",
        Channel::Email(email(
            format!("smtp://127.0.0.1:{}", server.port),
            false,
            None,
        )),
        Event::default_on(),
    )]);
    let records = Arc::new(Records::default());
    Dispatcher::new(&cfg, records.clone()).notify(&names(&["ops-mail"]), &notice(Event::Failure));
    let recs = records.all();
    assert!(recs[0].ok, "{recs:?}");
    let mails = server.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_mail(&mails[0]);
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with openssl.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=strata test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn mail_over_starttls_trusts_the_ca_file() {
    fast_backoff();
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(tmp.path());
    let server = SmtpServer::start(tmp.path(), Some((&cert, &key, false)));
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let cfg = config(vec![
        (
            "trusting",
            Channel::Email(email(url.clone(), true, Some(ca))),
            Event::default_on(),
        ),
        (
            "untrusting",
            Channel::Email(email(url, true, None)),
            Event::default_on(),
        ),
    ]);
    let records = Arc::new(Records::default());
    let d = Dispatcher::new(&cfg, records.clone());
    d.notify(&names(&["trusting"]), &notice(Event::Failure));
    let recs = records.all();
    assert!(recs[0].ok, "{recs:?}");
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert_mail(&mails[0]);

    // Without the CA the server's certificate is not trusted: nothing is sent in clear.
    d.notify(&names(&["untrusting"]), &notice(Event::Failure));
    let recs = records.all();
    assert!(!recs[1].ok, "{recs:?}");
    assert_eq!(server.mails().len(), 1);
}

#[test]
fn a_plain_connection_to_another_host_is_refused() {
    fast_backoff();
    let cfg = config(vec![(
        "ops-mail",
        Channel::Email(email("smtp://mail.example.com:25".into(), false, None)),
        Event::default_on(),
    )]);
    let e = notify::send_test(&cfg, "ops-mail", Event::Failure)
        .unwrap_err()
        .to_string();
    assert!(e.contains("starttls = true"), "{e}");
}

#[test]
fn mail_over_smtps_trusts_the_ca_file() {
    fast_backoff();
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(tmp.path());
    let server = SmtpServer::start(tmp.path(), Some((&cert, &key, true)));
    let cfg = config(vec![(
        "ops-mail",
        Channel::Email(email(
            format!("smtps://127.0.0.1:{}", server.port),
            false,
            Some(ca),
        )),
        Event::default_on(),
    )]);
    notify::send_test(&cfg, "ops-mail", Event::Failure).unwrap();
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: [strata] test: failure"),
        "{}",
        mails[0]
    );
}

#[test]
fn starttls_required_sends_nothing_to_a_server_without_it() {
    fast_backoff();
    let tmp = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(tmp.path(), None);
    let cfg = config(vec![(
        "ops-mail",
        Channel::Email(email(
            format!("smtp://127.0.0.1:{}", server.port),
            true,
            None,
        )),
        Event::default_on(),
    )]);
    let e = notify::send_test(&cfg, "ops-mail", Event::Failure).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("notification ops-mail: smtp 127.0.0.1:"),
        "{e}"
    );
    assert!(server.mails().is_empty(), "nothing may go in clear");
}
