//! `chatprobe bench notify`: "Notify me" at scale. N subscribers, each
//! confirmed and asking to hear when incidents end, are added to a fresh
//! SQLite store through the store's own code (the double opt-in flow would
//! take minutes at its rate limits); a real local SMTP server, aiosmtpd
//! writing a Maildir, takes the mail over real sockets; a child
//! `chatprobe status-page` on that store mails through it. An operator's
//! `incident_resolved` statement (`POST /api/statements`, the same
//! recording and fan-out as the page's own resolved statement) queues one
//! "back online" mail per subscriber; the benchmark prints the seconds
//! from the statement until the server accepted the last mail (the newest
//! file in the Maildir), mails per second, and the page's RSS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};
use clap::Args;

use super::proc::rss_kib_of;
use super::status_page::{BenchDir, ChildProcess, free_port};
use super::targets::{client, wait_until};
use crate::config::status_page::StoreLocation;
use crate::metrics::ReportMetrics;
use crate::notify::choices::Choices;
use crate::notify::subscriptions;
use crate::store::Store;

/// The operator token the benchmark gives the page.
const OPERATOR_TOKEN: &str = "operator-token-of-the-benchmark";
/// Longest wait for a server to listen.
const STARTUP: Duration = Duration::from_secs(60);
/// Longest wait for every mail.
const PATIENCE: Duration = Duration::from_secs(900);
/// How often the Maildir is counted.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Options of `chatprobe bench notify`.
#[derive(Debug, Clone, Args)]
pub struct NotifyBenchArgs {
    /// Confirmed subscribers, each mailed once.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) subscribers: usize,
    /// The page's SMTP connections (`notify.smtp.connections`; default: the config's).
    #[arg(long)]
    pub(crate) connections: Option<u32>,
    /// The Python that has aiosmtpd (default: `$CHATPROBE_AIOSMTPD_PYTHON`, else `/usr/bin/python3`).
    #[arg(long, value_name = "FILE")]
    pub(crate) python: Option<PathBuf>,
}

/// Run the benchmark and print its numbers.
pub(super) async fn run(args: NotifyBenchArgs) -> anyhow::Result<()> {
    ensure!(args.subscribers > 0, "--subscribers must be at least 1");
    let dir = BenchDir::create("notify")?;
    let maildir = dir.path.join("mail");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub))?;
    }
    let store_file = dir.path.join("store.db");
    let seeded = Instant::now();
    let added = add_subscribers(&store_file, args.subscribers).await?;
    ensure!(
        added == args.subscribers as u64,
        "added {added} of {} subscribers",
        args.subscribers
    );
    println!(
        "subscribers:                 {added} confirmed, added to the store in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );
    let smtp = aiosmtpd(&args, &dir, &maildir)?;
    wait_until("aiosmtpd listening", STARTUP, || async {
        smtp.check_alive()?;
        Ok(std::net::TcpStream::connect(&smtp.base).is_ok())
    })
    .await?;
    let page = status_page(&dir, &smtp.base, args.connections)?;
    let http = &client()?;
    wait_until("the status page answering", STARTUP, || async {
        page.check_alive()?;
        let answer = http.get(format!("{}/healthz", page.base)).send().await;
        Ok(answer.is_ok_and(|answer| answer.status().is_success()))
    })
    .await?;
    let pid = page.pid();
    let idle_rss = rss_kib_of(&pid)?;
    let stated = SystemTime::now();
    let queued = resolve(http, &page.base).await?;
    ensure!(
        queued == args.subscribers as u64,
        "the statement queued {queued} mails for {} subscribers",
        args.subscribers
    );
    println!(
        "statement recorded:          {queued} mails queued in {:.0} ms; {} SMTP connections",
        elapsed_since(stated).as_secs_f64() * 1000.0,
        args.connections
            .map_or("the default".to_owned(), |count| count.to_string())
    );
    let mut max_rss = idle_rss;
    let deadline = Instant::now() + PATIENCE;
    let mut count = 0;
    while count < args.subscribers {
        if Instant::now() > deadline {
            bail!("{count} of {} mails after {PATIENCE:?}", args.subscribers);
        }
        tokio::time::sleep(LOOK_EVERY).await;
        page.check_alive()?;
        smtp.check_alive()?;
        max_rss = max_rss.max(rss_kib_of(&pid)?);
        count = std::fs::read_dir(maildir.join("new"))?.count();
    }
    let last = newest_mail(&maildir.join("new"))?;
    let seconds = last
        .duration_since(stated)
        .unwrap_or_default()
        .as_secs_f64();
    println!("last mail accepted:          {seconds:.1} s after the statement");
    println!(
        "mails:                       {:.0}/s",
        args.subscribers as f64 / seconds.max(0.001)
    );
    // A repeated mail would arrive after the last one: give it a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = std::fs::read_dir(maildir.join("new"))?.count();
    println!(
        "mails accepted:              {total} for {} subscribers",
        args.subscribers
    );
    println!(
        "status page RSS:             {:.1} MiB idle, {:.1} MiB max while sending",
        idle_rss as f64 / 1024.0,
        max_rss as f64 / 1024.0
    );
    drop(page);
    drop(smtp);
    Ok(())
}

/// Time since `then` (0 if the clock went back).
fn elapsed_since(then: SystemTime) -> Duration {
    SystemTime::now().duration_since(then).unwrap_or_default()
}

/// Creates the store at `file` and adds `count` confirmed subscribers who
/// want to hear of ended incidents of every feature; how many it added.
async fn add_subscribers(file: &Path, count: usize) -> anyhow::Result<u64> {
    let store = Store::open(
        &StoreLocation::Sqlite(file.to_path_buf()),
        ReportMetrics::default(),
    )
    .await
    .with_context(|| format!("creating the store {}", file.display()))?;
    let choices = Choices::new(&[], &["resolved".to_owned()]).map_err(anyhow::Error::msg)?;
    let emails: Vec<String> = (0..count)
        .map(|index| format!("subscriber-{index:06}@example.org"))
        .collect();
    let now = crate::notify::unix_now();
    Ok(subscriptions::add_confirmed(&store, &emails, &choices, now).await?)
}

/// aiosmtpd on a free port of 127.0.0.1, writing each mail into `maildir`.
fn aiosmtpd(
    args: &NotifyBenchArgs,
    dir: &BenchDir,
    maildir: &Path,
) -> anyhow::Result<ChildProcess> {
    let python = args
        .python
        .clone()
        .or_else(|| std::env::var_os("CHATPROBE_AIOSMTPD_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"));
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut command = Command::new(&python);
    command
        .args(["-m", "aiosmtpd", "-n", "-l", &addr])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir);
    ChildProcess::spawn("aiosmtpd", dir, &mut command, addr)
        .with_context(|| format!("(Python with aiosmtpd: {})", python.display()))
}

/// `chatprobe status-page` on the store in `dir`, mailing through `smtp`
/// (`HOST:PORT`) in clear over `connections`.
fn status_page(
    dir: &BenchDir,
    smtp: &str,
    connections: Option<u32>,
) -> anyhow::Result<ChildProcess> {
    std::fs::write(dir.path.join("operator-token"), OPERATOR_TOKEN)?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let connections =
        connections.map_or(String::new(), |count| format!("    connections: {count}\n"));
    let config = dir.path.join("status-page.yaml");
    std::fs::write(
        &config,
        format!(
            "prometheus: {{url: 'http://127.0.0.1:1'}}\nlisten: {addr}\nstore: sqlite:store.db\n\
             operator_token_file: operator-token\nnotify:\n  base_url: https://status.example\n  \
             smtp:\n    server: {smtp}\n    tls: plain\n    from: 'Status <status@example.com>'\n\
             {connections}"
        ),
    )?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["status-page", "--config"]).arg(&config);
    ChildProcess::spawn("status-page", dir, &mut command, format!("http://{addr}"))
}

/// Posts the operators' `incident_resolved` statement; the mails it queued.
async fn resolve(http: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let body = serde_json::json!({
        "probe": "group_message", "started_at": "2025-12-06T05:46:40Z",
        "event": "incident_resolved", "regions": ["ap-south"],
        "text": "Sending messages works again in Asia (South).",
    });
    let answer = http
        .post(format!("{base}/api/statements"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await
        .context("POST /api/statements")?;
    let status = answer.status();
    let text = answer.text().await?;
    ensure!(
        status.as_u16() == 201,
        "POST /api/statements: {status} {text}"
    );
    let answer: serde_json::Value = serde_json::from_str(&text)?;
    answer["notifications"]
        .as_u64()
        .with_context(|| format!("no `notifications` in {text}"))
}

/// When the newest mail in the Maildir folder `new` was written.
fn newest_mail(new: &Path) -> anyhow::Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(new).with_context(|| format!("reading {}", new.display()))? {
        newest = newest.max(entry?.metadata()?.modified()?);
    }
    Ok(newest)
}
