//! `target_files:` end to end: an `agent` process against the mock backend
//! follows its target files without SIGHUP (a file added: its target probed,
//! its series and `chatprobe_target_info` with its labels appear; a target
//! removed: its series leave `/metrics` and its groups leave the backend; a
//! bad file or a clashing name: logged naming file, line and field, the
//! previous targets kept), `check` names file, line and field of target
//! file errors, and an agent whose targets need more open files than its
//! hard limit allows says so.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::backend::TestBackend;
use crate::harness::binary::{run, start_agent};
use crate::harness::dir::TempDir;
use crate::harness::fixtures::probe_file;
use crate::harness::http::{get_text, http_client, metric, wait_for};
use crate::harness::process::Process;

const PASSWORD: &str = "target-files-pw";
const LIMIT: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_millis(100);

/// A target file's entry: mock target `name` at `url`, accounts prefixed
/// `name`, with `labels` (a YAML flow map, or empty).
fn target(name: &str, url: &str, labels: &str) -> String {
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("  labels: {labels}\n")
    };
    format!(
        "- kind: mock\n  name: {name}\n  url: {url}\n  request_timeout: 5s\n{labels}  accounts:\n    prefix: {name}\n    password: {PASSWORD}\n"
    )
}

/// An agent config in `dir` with no target of its own, reading `shards/*.yaml`.
fn write_config(dir: &TempDir) -> std::path::PathBuf {
    dir.write("probes/group_message.yaml", &probe_file("group_message"));
    let probes = dir.join("probes");
    dir.write(
        "agent.yaml",
        &format!(
            "region: eu-west\nlisten: 127.0.0.1:0\ntargets: []\ntarget_files: [\"shards/*.yaml\"]\n\
             target_files_refresh: 200ms\nprobes: [{}]\ninterval: 500ms\nrun_timeout: 30s\n",
            probes.display()
        ),
    )
}

/// Replaces the file `name` in `dir` by `text` at once (written beside it,
/// then renamed), as tools that write target files should: the agent never
/// reads it half written.
fn replace(dir: &TempDir, name: &str, text: &str) {
    let staged = dir.write(&format!("{name}.tmp"), text);
    std::fs::rename(&staged, dir.join(name))
        .unwrap_or_else(|error| panic!("cannot rename {}: {error}", staged.display()));
}

fn runs(target: &str) -> String {
    format!(
        "chatprobe_probe_runs_total{{probe=\"group_message\",region=\"eu-west\",result=\"success\",target=\"{target}\"}}"
    )
}

/// Successful runs of `target` in the agent's `/metrics`, or why not yet.
async fn passed_runs(http: &reqwest::Client, metrics: &str, target: &str) -> Result<f64, String> {
    let text = get_text(http, metrics).await?;
    metric(&text, &runs(target)).ok_or_else(|| format!("no runs of {target} yet"))
}

/// Waits until `target` has passed at least `count` runs; the metrics text then.
async fn wait_runs(http: &reqwest::Client, metrics: &str, target: &str, count: f64) -> String {
    wait_for(
        &format!("{count} runs of {target}"),
        LIMIT,
        EVERY,
        || async {
            let text = get_text(http, metrics).await?;
            match metric(&text, &runs(target)) {
                Some(passed) if passed >= count => Ok(text),
                other => Err(format!("{other:?} runs")),
            }
        },
    )
    .await
}

/// The groups the first account of `target`'s group_message probe is in,
/// asked on the backend's API as that account.
async fn groups_of(backend: &TestBackend, target: &str) -> Vec<Value> {
    let user = format!("{target}-eu-west-group_message-0");
    let body = json!({"user": user, "password": PASSWORD});
    let (status, login) = backend
        .request(Method::POST, "/api/v1/login", None, "eu-west", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "login as {user}: {login}");
    let token = login["token"].as_str().expect("a token");
    let (status, list) = backend
        .request(Method::GET, "/api/v1/groups", Some(token), "eu-west", None)
        .await;
    assert_eq!(status, StatusCode::OK, "groups of {user}: {list}");
    list["groups"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_follows_its_target_files_without_sighup() {
    let backend = TestBackend::start().await;
    let url = &backend.base;
    let dir = TempDir::new("target-files-agent");
    let config = write_config(&dir);
    let a_text = target("shard-a", url, "{shard: a, cell: c1}");
    dir.write("shards/a.yaml", &a_text);
    let mut agent = start_agent(&config);
    assert!(
        agent
            .log()
            .contains("open-files limit raised to the hard limit"),
        "{}",
        agent.log()
    );
    let http = http_client();
    let metrics = format!("{}/metrics", agent.url());

    let text = wait_runs(&http, &metrics, "shard-a", 1.0).await;
    let info_a =
        "chatprobe_target_info{region=\"eu-west\",target=\"shard-a\",cell=\"c1\",shard=\"a\"}";
    assert_eq!(metric(&text, info_a), Some(1.0), "{text}");

    // A file added: its target is probed, with its info series.
    replace(&dir, "shards/b.yaml", &target("shard-b", url, ""));
    let text = wait_runs(&http, &metrics, "shard-b", 1.0).await;
    let info_b = "chatprobe_target_info{region=\"eu-west\",target=\"shard-b\"}";
    assert_eq!(metric(&text, info_b), Some(1.0), "{text}");
    assert!(!groups_of(&backend, "shard-b").await.is_empty());

    // The file changed: shard-b gone from /metrics and from the backend.
    replace(&dir, "shards/b.yaml", "[]\n");
    wait_for("shard-b's series to go", LIMIT, EVERY, || async {
        let text = get_text(&http, &metrics).await?;
        match text
            .lines()
            .find(|line| line.contains("target=\"shard-b\""))
        {
            Some(line) => Err(line.to_string()),
            None => Ok(()),
        }
    })
    .await;
    wait_for("shard-b's groups to be left", LIMIT, EVERY, || async {
        let groups = groups_of(&backend, "shard-b").await;
        if groups.is_empty() {
            Ok(())
        } else {
            Err(format!("{groups:?}"))
        }
    })
    .await;
    assert!(!groups_of(&backend, "shard-a").await.is_empty());

    // A bad file: logged with file, line and field; shard-a keeps running.
    replace(
        &dir,
        "shards/a.yaml",
        &a_text.replace("url: http", "url: ftp"),
    );
    let refused = agent.wait_for_line(|line| line.contains("target file refused"));
    let refused = refused.unwrap_or_else(|| panic!("no refusal logged:\n{}", agent.log()));
    assert!(
        refused.contains("a.yaml:3:") && refused.contains("field `[0].url`"),
        "{refused}"
    );
    let before = passed_runs(&http, &metrics, "shard-a").await.unwrap();
    wait_runs(&http, &metrics, "shard-a", before + 2.0).await;

    // A name another file has: refused naming both places; shard-a runs on.
    replace(&dir, "shards/c.yaml", &target("shard-a", url, ""));
    let clash = agent.wait_for_line(|line| line.contains("two targets are named `shard-a`"));
    let clash = clash.unwrap_or_else(|| panic!("no clash logged:\n{}", agent.log()));
    assert!(
        clash.contains("c.yaml:2: field `[0].name`") && clash.contains("a.yaml:2 (`[0].name`)"),
        "{clash}"
    );
    let before = passed_runs(&http, &metrics, "shard-a").await.unwrap();
    let text = wait_runs(&http, &metrics, "shard-a", before + 2.0).await;
    assert_eq!(metric(&text, info_a), Some(1.0), "{text}");
    assert_eq!(agent.get("/healthz").0, 200);

    agent.stop_cleanly("TERM");
}

#[test]
fn check_names_file_line_and_field_in_target_files() {
    let dir = TempDir::new("target-files-check");
    let config = write_config(&dir);
    let url = "http://127.0.0.1:9";
    dir.write("shards/a.yaml", &target("shard-a", url, "{shard: a}"));
    let checked = run("check", &config);
    assert!(checked.success, "{}", checked.stderr);
    assert!(
        checked.stdout.contains("targets: shard-a"),
        "{}",
        checked.stdout
    );
    assert!(
        checked.stdout.contains("shards/a.yaml"),
        "{}",
        checked.stdout
    );

    // A bad second file, and every text its error must hold.
    let bad_files: [(String, &[&str]); 3] = [
        (
            target("shard-b", "ftp://x", ""),
            &["b.yaml:3:", "field `[0].url`"],
        ),
        (
            target("shard-a", url, ""),
            &[
                "b.yaml:2: field `[0].name`: two targets are named `shard-a`: the other is at",
                "a.yaml:2 (`[0].name`)",
            ],
        ),
        (
            target("shard-b", url, "{region: x}"),
            &["b.yaml:", "field `[0].labels`", "`region` is reserved"],
        ),
    ];
    for (content, expected) in bad_files {
        dir.write("shards/b.yaml", &content);
        let checked = run("check", &config);
        assert!(!checked.success, "{content}");
        assert!(
            expected.iter().all(|text| checked.stderr.contains(text)),
            "{}",
            checked.stderr
        );
    }
}

#[test]
fn an_agent_warns_when_its_targets_need_more_files_than_allowed() {
    let dir = TempDir::new("target-files-nofile");
    let config = write_config(&dir);
    let url = "http://127.0.0.1:9";
    let shards: String = (0..30)
        .map(|index| target(&format!("shard-{index}"), url, ""))
        .collect();
    dir.write("shards/many.yaml", &shards);
    // 30 targets × (3 accounts × 1 device + a renewed one + an HTTP connection) + 64 = 214
    // files, over a hard limit of 150.
    let script =
        "ulimit -Sn 100 && ulimit -Hn 150 && exec \"$0\" --log-format json agent --config \"$1\"";
    let mut agent = Process::spawn(
        "agent-nofile",
        std::process::Command::new("sh")
            .args(["-c", script, env!("CARGO_BIN_EXE_chatprobe")])
            .arg(&config),
    );
    let raised = agent.wait_for_line(|line| line.contains("open-files limit raised"));
    let raised = raised.unwrap_or_else(|| panic!("no limit logged:\n{}", agent.log()));
    assert!(
        raised.contains("\"soft_before\":\"100\"") && raised.contains("\"soft\":\"150\""),
        "{raised}"
    );
    let warning = agent.wait_for_line(|line| line.contains("need about"));
    let warning = warning.unwrap_or_else(|| panic!("no warning logged:\n{}", agent.log()));
    assert!(
        warning.contains("need about 214 open files") && warning.contains("limit is 150"),
        "{warning}"
    );
}
