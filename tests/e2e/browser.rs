//! The dashboard in a real browser (issue #17): Debian's headless Chromium driven by
//! chromedriver over WebDriver (the fantoccini crate).
//!
//! [`Browser`] is one test's browser: its own chromedriver on a free port, its own profile
//! and download directory, closed (and its processes killed) when the test ends. Its
//! methods are synchronous (each runs the WebDriver call on the browser's own runtime) and
//! wait, within [`WAIT`], for what a page needs to show: a page that refreshes itself
//! (a running job's) is polled, never slept on for a fixed time.
//!
//! Every test writes screenshots of the pages it visits (PNG) to [`artifacts`]:
//! `$STRATA_ARTIFACTS/screenshots`, else `target/tmp/screenshots`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::serve::Served;
use crate::util::*;

/// How long a page may take to show what a test waits for (a safety net, not a timing
/// assertion).
pub const WAIT: Duration = Duration::from_secs(60);

/// Where screenshots go.
pub fn artifacts() -> PathBuf {
    let dir = match std::env::var_os("STRATA_ARTIFACTS") {
        Some(d) => PathBuf::from(d).join("screenshots"),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A headless Chromium for one test.
#[allow(dead_code)] // helpers the page tests of #17 use as they come
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// The test's name: screenshots are `NAME-STEP.png`.
    name: String,
    /// Where the browser saves downloads.
    pub downloads: PathBuf,
    _profile: tempfile::TempDir,
}

#[allow(dead_code)]
impl Browser {
    /// Starts chromedriver and a browser session (a window of 1280×900).
    pub fn start(name: &str) -> Browser {
        require("/usr/bin/chromium", "chromium");
        require("/usr/bin/chromedriver", "chromium-driver");
        let port = free_port();
        let mut cmd = Command::new("/usr/bin/chromedriver");
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().expect("chromedriver starts");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        });
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        // WebDriver speaks plain HTTP here, but fantoccini's client needs a TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(async {
                ClientBuilder::rustls()
                    .expect("rustls")
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
            })
            .expect("a Chromium session");
        let mut b = Browser {
            rt,
            client: Some(client),
            driver,
            name: name.to_string(),
            downloads,
            _profile: profile,
        };
        b.window(1280, 900);
        b
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Resizes the window (390×844 is a phone).
    pub fn window(&mut self, w: u32, h: u32) {
        let c = self.client.as_ref().unwrap();
        self.rt.block_on(c.set_window_size(w, h)).unwrap();
    }

    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).unwrap();
    }

    /// The page's address now.
    pub fn url(&self) -> String {
        self.rt
            .block_on(self.c().current_url())
            .unwrap()
            .to_string()
    }

    /// The page's HTML now.
    pub fn source(&self) -> String {
        self.rt.block_on(self.c().source()).unwrap()
    }

    /// The element `css` selects, waiting for it to appear.
    pub fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.rt.block_on(self.c().find(Locator::Css(css))) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no {css} on {} within {WAIT:?}; page:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the page shows `css` now (no waiting).
    pub fn exists(&self, css: &str) -> bool {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    /// How many elements `css` selects now.
    pub fn count(&self, css: &str) -> usize {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// The text of every element `css` selects now.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let all = self
            .rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .unwrap_or_default();
        all.into_iter()
            .filter_map(|e| self.rt.block_on(e.text()).ok())
            .collect()
    }

    /// The visible text of `css` (waiting for it).
    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.rt.block_on(e.text()).unwrap()
    }

    /// An attribute of `css` (waiting for the element).
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css);
        self.rt.block_on(e.attr(name)).unwrap()
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.rt.block_on(e.click()).unwrap();
    }

    /// Replaces the value of the input `css` with `text`.
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.rt.block_on(e.clear()).unwrap();
        self.rt.block_on(e.send_keys(text)).unwrap();
    }

    /// Picks the option whose value is `value` in the select `css`.
    pub fn select(&self, css: &str, value: &str) {
        let e = self.find(css);
        self.rt.block_on(e.select_by_value(value)).unwrap();
    }

    /// Accepts the dialog the page opened (a `data-confirm` form's question), waiting for
    /// it; returns its text.
    pub fn accept_dialog(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(text) = self.rt.block_on(self.c().get_alert_text()) {
                self.rt.block_on(self.c().accept_alert()).unwrap();
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no dialog opened within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the text of `css` satisfies `pred` (re-reading it as the page changes or
    /// reloads itself); returns that text.
    pub fn wait_text(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self
                .rt
                .block_on(async {
                    let e = self.c().find(Locator::Css(css)).await?;
                    e.text().await
                })
                .ok();
            if let Some(t) = &now {
                if pred(t) {
                    return t.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css} never became {what} on {} (last: {now:?})",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes a screenshot of the window as `artifacts()/NAME-STEP.png`.
    pub fn screenshot(&self, step: &str) -> PathBuf {
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let path = artifacts().join(format!("{}-{step}.png", self.name));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Waits for a download named `name` to be complete in [`Browser::downloads`].
    pub fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.join(name);
        let partial = self.downloads.join(format!("{name}.crdownload"));
        let deadline = Instant::now() + WAIT;
        loop {
            if path.exists() && !partial.exists() {
                return std::fs::read(&path).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{name} was not downloaded; the download directory holds {:?}",
                std::fs::read_dir(&self.downloads)
                    .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Logs in through the login page of `s` and waits for the overview.
    pub fn login(&self, s: &Served, user: &str, password: &str) {
        self.goto(&format!("{}/login", s.base));
        self.fill("#user", user);
        self.fill("#password", password);
        self.click("#login button[type=submit]");
        self.find("#logout");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
        // chromedriver and whatever it started.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.driver.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.driver.wait();
    }
}

/// A file's bytes, for comparing a download with its source.
#[allow(dead_code)]
pub fn bytes_of(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
