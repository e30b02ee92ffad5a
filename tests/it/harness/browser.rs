//! Headless Chromium for the tests that look at a page as a browser does:
//! its DOM after parsing (`--dump-dom`) and screenshots.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::dir::TempDir;
use super::fixtures::repo_file;

/// How long one Chromium run may take.
const BROWSER_DEADLINE: Duration = Duration::from_secs(60);

/// Headless Chromium with a fresh profile for every run.
pub struct Browser {
    binary: PathBuf,
    scratch: TempDir,
}

impl Browser {
    /// Chromium (found by `tests/setup.sh` or on `PATH`), or `None` to skip.
    pub fn find(tag: &str) -> Option<Browser> {
        let binary = super::tool("CHATPROBE_CHROMIUM", "chromium", "apt-get install chromium")?;
        Some(Browser {
            binary,
            scratch: TempDir::new(tag),
        })
    }

    /// Runs Chromium on `url` with `args`; its stdout, or `None` if it failed
    /// or outran [`BROWSER_DEADLINE`] (then it is killed).
    fn run(&self, args: &[&str], url: &str) -> Option<String> {
        let profile = self.scratch.join("profile");
        let _ = fs::remove_dir_all(&profile);
        let stdout_path = self.scratch.join("chromium.out");
        let stdout = File::create(&stdout_path).ok()?;
        let stderr = File::create(self.scratch.join("chromium.log")).ok()?;
        let mut child = Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start chromium");
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < BROWSER_DEADLINE => {
                    sleep(Duration::from_millis(100))
                }
                _ => break None,
            }
        };
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status.filter(|status| status.success())?;
        fs::read_to_string(&stdout_path).ok()
    }

    /// The DOM of `url` as the browser built it (empty if it failed).
    pub fn dom(&self, url: &str) -> String {
        self.run(&["--dump-dom"], url).unwrap_or_default()
    }

    /// A screenshot of `url` in a window of `width` × `height` pixels, under
    /// `target/` named `name`, copied to `docs/DOCS_NAME` when
    /// `CHATPROBE_UPDATE_SCREENSHOT=1`.
    pub fn screenshot(
        &self,
        url: &str,
        (width, height): (u32, u32),
        name: &str,
        docs_name: &str,
    ) -> PathBuf {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = fs::remove_file(&path);
        let target = format!("--screenshot={}", path.display());
        let size = format!("--window-size={width},{height}");
        self.run(&[&target, &size], url)
            .expect("chromium takes a screenshot");
        let png = fs::read(&path).expect("screenshot written");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        if std::env::var_os("CHATPROBE_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
            let docs = repo_file("docs");
            fs::create_dir_all(&docs).expect("create docs/");
            fs::copy(&path, docs.join(docs_name)).expect("copy the screenshot to docs/");
        }
        path
    }
}
