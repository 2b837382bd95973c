//! A real browser for end-to-end tests of the pages Lockspire and its hosts render.
//!
//! HTTP clients such as `reqwest` do not behave like browsers: browsers label every request
//! with `Origin` and `Sec-Fetch-*` headers shaped by the page's referrer policy, send cookies
//! according to `SameSite`, enforce Content Security Policy (which decides whether an
//! auto-submitting `form_post` page runs at all) and only submit forms a user could submit. A
//! form that works from `reqwest` can still be broken for every user, so each page is also
//! driven here: headless Chromium, over W3C WebDriver through `chromedriver`.
//!
//! ```no_run
//! # async fn example() -> Result<(), lockspire_browser::BrowserError> {
//! use lockspire_browser::Browser;
//!
//! // `None`: no browser on this machine, and the run does not require one (a loud message
//! // has been printed).
//! let Some(mut browser) = Browser::launch("target/screenshots/sign-in".into()).await? else {
//!     return Ok(());
//! };
//! browser.goto("http://127.0.0.1:4000/login").await?;
//! browser.fill("#username", "alice").await?;
//! browser.fill("#password", "alice-password").await?;
//! browser.click("button[type=submit]").await?;
//! browser.wait_for_path("/").await?;
//! browser.screenshot("signed-in").await?;
//! browser.close().await;
//! # Ok(()) }
//! ```
//!
//! Finding the browser: `LOCKSPIRE_CHROMIUM` and `LOCKSPIRE_CHROMEDRIVER` name the executables;
//! otherwise `chromium` (Debian's package, also `chromium-browser` or `google-chrome`) and
//! `chromedriver` are looked up on `PATH`. When they are missing the launch returns `None`
//! after a message on the terminal, unless `LOCKSPIRE_BROWSER_TESTS=require` (set by CI), which
//! makes a missing browser an error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use fantoccini;
pub use url::Url;

/// How long a page, an element or a navigation may take before a step fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// The browser window's size in CSS pixels: a laptop screen.
const WINDOW: (u32, u32) = (1100, 900);

/// The environment variable that makes a missing browser an error instead of a skip.
pub const REQUIRE_ENV: &str = "LOCKSPIRE_BROWSER_TESTS";

/// Why a browser step failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// No browser is installed, and this run requires one.
    #[error("{0}")]
    Missing(String),
    /// `chromedriver` could not be started, or did not say where it listens.
    #[error("starting chromedriver: {0}")]
    Driver(String),
    /// The WebDriver session could not be opened (boxed: the driver's error is large, and every
    /// browser call returns this type).
    #[error("opening a browser session: {0}")]
    Session(#[source] Box<fantoccini::error::NewSessionError>),
    /// A WebDriver command failed (no such element, navigation error, …).
    #[error("{context}: {source}")]
    Command {
        /// What the test was doing.
        context: String,
        /// What the driver answered (boxed, as for `Session`).
        source: Box<fantoccini::error::CmdError>,
    },
    /// A wait ran out.
    #[error("timed out after {timeout:?}: {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
    },
    /// Reading or writing a local file (the profile, a screenshot).
    #[error("{context}: {source}")]
    Io {
        /// Which file.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl From<fantoccini::error::NewSessionError> for BrowserError {
    fn from(e: fantoccini::error::NewSessionError) -> Self {
        Self::Session(Box::new(e))
    }
}

/// Attaches what was being done to a WebDriver error.
trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, BrowserError>;
}

impl<T> Context<T> for Result<T, fantoccini::error::CmdError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, BrowserError> {
        self.map_err(|source| BrowserError::Command {
            context: context(),
            source: Box::new(source),
        })
    }
}

/// A headless Chromium with its own fresh profile (no cookies, no cache), and the
/// `chromedriver` that drives it. Both processes end when the value is dropped.
pub struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    screenshots: PathBuf,
    shots_taken: usize,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("screenshots", &self.screenshots)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium. Screenshots go to `screenshots`, which is
    /// emptied of earlier ones first.
    ///
    /// `Ok(None)` when no browser is installed and [`REQUIRE_ENV`] is not `require`; a message
    /// saying so is written straight to the terminal (not the test's captured output).
    pub async fn launch(screenshots: PathBuf) -> Result<Option<Self>, BrowserError> {
        let (chromium, chromedriver) = match (find_chromium(), find_chromedriver()) {
            (Some(chromium), Some(chromedriver)) => (chromium, chromedriver),
            (chromium, _) => {
                let missing = if chromium.is_none() {
                    "chromium"
                } else {
                    "chromedriver"
                };
                let message = format!(
                    "no {missing} found: browser tests cannot run. Install Debian's `chromium` and \
                     `chromium-driver` packages (apt-get install chromium chromium-driver), or set \
                     LOCKSPIRE_CHROMIUM and LOCKSPIRE_CHROMEDRIVER"
                );
                if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "require") {
                    return Err(BrowserError::Missing(message));
                }
                shout(&format!("SKIPPED: {message}"));
                return Ok(None);
            }
        };
        prepare_screenshot_dir(&screenshots)?;
        let profile = tempfile::tempdir().map_err(|source| BrowserError::Io {
            context: "creating a browser profile directory".into(),
            source,
        })?;
        let (driver, port) = start_driver(&chromedriver).await?;
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&chromium, profile.path()))
            .connect(&format!("http://127.0.0.1:{port}"))
            .await?;
        client
            .set_window_size(WINDOW.0, WINDOW.1)
            .await
            .context(|| "sizing the window".into())?;
        Ok(Some(Self {
            client,
            driver,
            _profile: profile,
            screenshots,
            shots_taken: 0,
        }))
    }

    /// The WebDriver client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigates to `url` and waits for the page (after any redirects) to load.
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.client
            .goto(url)
            .await
            .context(|| format!("opening {url}"))
    }

    /// The address of the page shown now.
    pub async fn url(&self) -> Result<Url, BrowserError> {
        self.client
            .current_url()
            .await
            .context(|| "reading the current URL".into())
    }

    /// Waits until the page shown is at `path` (on whatever origin), e.g. after a click that
    /// submits a form and follows redirects.
    pub async fn wait_for_path(&self, path: &str) -> Result<Url, BrowserError> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let url = self.url().await?;
            if url.path() == path {
                return Ok(url);
            }
            if Instant::now() > deadline {
                return Err(BrowserError::Timeout {
                    what: format!("the browser to reach {path}; it is at {url}"),
                    timeout: STEP_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the field matched by the CSS selector, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) -> Result<(), BrowserError> {
        let field = self.find(css).await?;
        field.clear().await.context(|| format!("clearing {css}"))?;
        field
            .send_keys(text)
            .await
            .context(|| format!("typing into {css}"))
    }

    /// Clicks the element matched by the CSS selector, as a user would (a trusted event).
    pub async fn click(&self, css: &str) -> Result<(), BrowserError> {
        self.find(css)
            .await?
            .click()
            .await
            .context(|| format!("clicking {css}"))
    }

    /// The rendered text of the element matched by the CSS selector.
    pub async fn text(&self, css: &str) -> Result<String, BrowserError> {
        self.find(css)
            .await?
            .text()
            .await
            .context(|| format!("reading the text of {css}"))
    }

    /// The value of attribute `name` of the element matched by the CSS selector.
    pub async fn attr(&self, css: &str, name: &str) -> Result<Option<String>, BrowserError> {
        self.find(css)
            .await?
            .attr(name)
            .await
            .context(|| format!("reading {name} of {css}"))
    }

    /// The element matched by the CSS selector, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Result<fantoccini::elements::Element, BrowserError> {
        let url = self.url().await.map(String::from).unwrap_or_default();
        self.client
            .wait()
            .at_most(STEP_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .context(|| format!("finding {css} on {url}"))
    }

    /// Directs the following commands into the `index`th frame of the page.
    pub async fn enter_frame(&self, index: u16) -> Result<(), BrowserError> {
        self.client
            .enter_frame(index)
            .await
            .context(|| format!("entering frame {index}"))
    }

    /// Directs the following commands back to the top-level page, also after the frame they
    /// were in has gone (a frame that navigated the whole page, say).
    pub async fn leave_frames(&self) -> Result<(), BrowserError> {
        let window = self
            .client
            .window()
            .await
            .context(|| "reading the window handle".into())?;
        self.client
            .switch_to_window(window)
            .await
            .context(|| "returning to the top-level page".into())
    }

    /// The page's current DOM as HTML.
    pub async fn source(&self) -> Result<String, BrowserError> {
        self.client
            .source()
            .await
            .context(|| "reading the page source".into())
    }

    /// Saves a PNG of the whole page as `NN-name.png` in the screenshot directory and returns
    /// its path. Numbered in the order taken, so the directory reads as the story of the test.
    pub async fn screenshot(&mut self, name: &str) -> Result<PathBuf, BrowserError> {
        // WebDriver captures the viewport only: grow the window to the page for the shot.
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", Vec::new())
            .await
            .context(|| "measuring the page".into())?
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(WINDOW.1);
        let tall = height.clamp(WINDOW.1, 8_000);
        self.client
            .set_window_size(WINDOW.0, tall)
            .await
            .context(|| "growing the window".into())?;
        let png = self.client.screenshot().await;
        self.client
            .set_window_size(WINDOW.0, WINDOW.1)
            .await
            .context(|| "restoring the window".into())?;
        let png = png.context(|| format!("taking screenshot {name}"))?;
        self.shots_taken += 1;
        let path = self
            .screenshots
            .join(format!("{:02}-{name}.png", self.shots_taken));
        std::fs::write(&path, png).map_err(|source| BrowserError::Io {
            context: format!("writing {}", path.display()),
            source,
        })?;
        Ok(path)
    }

    /// Ends the session (Chromium exits) and stops the driver.
    pub async fn close(mut self) {
        // Best effort: whatever is left is killed when `self` drops.
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver runs in a process group of its own with the Chromium it started, so a
        // test that fails half-way leaves no browser behind.
        if let Some(pid) = self.driver.id() {
            kill_group(pid);
        }
    }
}

/// Kills process group `pgid` (SIGKILL). A plain `kill` of chromedriver would leave Chromium's
/// processes running.
fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of this process; a negative
    // pid addresses the process group this harness created for the driver.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Starts `chromedriver` on a port of its choosing (in a new process group) and reads the port
/// from its banner.
async fn start_driver(chromedriver: &Path) -> Result<(Child, u16), BrowserError> {
    let mut driver = Command::new(chromedriver)
        .arg("--port=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BrowserError::Driver(format!("{}: {e}", chromedriver.display())))?;
    let stdout = driver
        .stdout
        .take()
        .ok_or_else(|| BrowserError::Driver("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let port = tokio::time::timeout(STEP_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            // "ChromeDriver was started successfully on port 38921."
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                return rest.trim_end_matches('.').trim().parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| BrowserError::Driver("it did not report a port".into()))?;
    // Keep reading, so the driver never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((driver, port))
}

/// Headless Chromium with a fresh profile. The flags keep it from reaching out to the
/// network on its own (updates, sync, field trials), which a closed test network refuses, and
/// `--no-sandbox` lets it run as root, as CI does.
fn capabilities(chromium: &Path, profile: &Path) -> Capabilities {
    let caps = json!({
        "browserName": "chrome",
        "pageLoadStrategy": "normal",
        "timeouts": { "pageLoad": 30_000, "script": 10_000, "implicit": 0 },
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--password-store=basic",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    match caps {
        serde_json::Value::Object(map) => map,
        _ => Capabilities::new(),
    }
}

fn find_chromium() -> Option<PathBuf> {
    from_env("LOCKSPIRE_CHROMIUM").or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|n| on_path(n))
    })
}

fn find_chromedriver() -> Option<PathBuf> {
    from_env("LOCKSPIRE_CHROMEDRIVER").or_else(|| on_path("chromedriver"))
}

fn from_env(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

/// The first executable called `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Creates the screenshot directory and removes the PNGs of an earlier run.
fn prepare_screenshot_dir(dir: &Path) -> Result<(), BrowserError> {
    let io = |source| BrowserError::Io {
        context: format!("preparing {}", dir.display()),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "png") {
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    Ok(())
}

/// Writes to the terminal directly: the test harness captures `eprintln!` of passing tests, and
/// a skipped browser test must not pass unnoticed.
fn shout(message: &str) {
    let line = "=".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{line}\nlockspire-browser: {message}\n{line}\n"
    );
}
