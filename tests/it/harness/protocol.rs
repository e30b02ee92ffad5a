//! What every real-server protocol test does, once for every protocol: the
//! client through the `ChatService` / `Device` traits, the binary with the
//! shipped config, and every probe kind. Each protocol's server harness
//! (`harness/synapse.rs`, `harness/prosody.rs`) implements [`RealServer`];
//! [`real_server_tests!`](crate::real_server_tests) declares these bodies as
//! the tests of one protocol's module.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatprobe::client::{Account, ChatService, ClientError, Device, Event, GroupSettings};
use chatprobe::probe::{self, ProbeKind, ProbeSetup, ProbeSpec};

use crate::harness::binary::{self, start_agent};
use crate::harness::dir::TempDir;
use crate::harness::fixtures::repo_file;
use crate::harness::http::metric;
use crate::harness::probes::assert_passed;
use crate::harness::server::ServerChild;

/// Generous bound for anything to arrive on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A real chat server run by a test, and what differs between protocols.
pub trait RealServer: Sized + 'static {
    /// The target name in the shipped config (`synapse`, `prosody`).
    const TARGET: &'static str;
    /// The protocol (`matrix`, `xmpp`): names `config/<protocol>.yaml`, and
    /// its accounts' passwords start with `chatprobe-<protocol>`.
    const PROTOCOL: &'static str;
    /// The line of the shipped config naming the server's address.
    const SHIPPED_ADDRESS_LINE: &'static str;
    /// The address on that line, replaced by the test server's.
    const SHIPPED_ADDRESS: &'static str;
    /// True when one settings change is one event carrying both name and
    /// notice (XMPP), false when each is its own event (Matrix).
    const SETTINGS_IN_ONE_EVENT: bool;
    /// What `list_groups` lists, for failure messages.
    const LISTED_GROUPS: &'static str;

    /// Starts the server, `None` (test skipped loudly) when not installed.
    fn start_server() -> impl Future<Output = Option<Self>>;
    /// The server's child process.
    fn child(&self) -> &ServerChild;
    /// The server's child process, to stop or restart it.
    fn child_mut(&mut self) -> &mut ServerChild;
    /// Polls the server until it answers, bounded (panics with its logs).
    fn wait_until_ready(&mut self) -> impl Future<Output = ()>;
    /// Kills the server.
    fn stop_server(&mut self) {
        self.child_mut().stop();
    }
    /// Starts the stopped server again on its address with its data (accounts
    /// kept), waiting until it answers.
    fn restart_server(&mut self) -> impl Future<Output = ()> {
        async {
            self.child_mut().restart();
            self.wait_until_ready().await;
        }
    }
    /// The last lines of the server's logs, for failure messages.
    fn logs(&self) -> String {
        self.child().log_tail()
    }
    /// The address clients and the shipped config use.
    fn address(&self) -> &str;
    /// A client of this server acting from `region`.
    fn service(&self, region: &str, request_timeout: Duration) -> Arc<dyn ChatService>;
    /// How a user id of account `user` begins.
    fn user_id_prefix(user: &str) -> String;
}

/// The client used by the client tests (10 s request timeout).
pub fn test_service<S: RealServer>(server: &S) -> Arc<dyn ChatService> {
    server.service("test-region", Duration::from_secs(10))
}

/// The test account of `user`.
pub fn account(user: &str) -> Account {
    Account {
        user: user.into(),
        password: format!("{user}-secret-password"),
    }
}

/// Logs `user` in and opens push.
pub async fn login(service: &dyn ChatService, user: &str) -> Box<dyn Device> {
    let mut device = service.login(&account(user)).await.expect("login");
    device.connect().await.expect("connect");
    device
}

/// Reads pushed events until one satisfies `wanted`; panics after [`PATIENCE`].
pub async fn wait_for(
    device: &mut Box<dyn Device>,
    what: &str,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    let until = Instant::now() + PATIENCE;
    loop {
        match device.next_event(until).await {
            Ok(Some(delivered)) if wanted(&delivered.event) => return delivered.event,
            Ok(Some(_other)) => continue,
            Ok(None) => panic!("{} never saw {what}", device.device_id()),
            Err(error) => panic!(
                "{} lost push while waiting for {what}: {error}",
                device.device_id()
            ),
        }
    }
}

/// True for the message `id` with `body`.
pub fn is_message(id: &str, body: &str) -> impl Fn(&Event) -> bool {
    move |event| matches!(event, Event::Message(message) if message.id == id && message.body == body)
}

/// Waits until `device` sees the settings change to "renamed" / "second notice".
async fn wait_for_edited_settings<S: RealServer>(device: &mut Box<dyn Device>) {
    if S::SETTINGS_IN_ONE_EVENT {
        wait_for(device, "the new name and notice", |event| {
            matches!(event, Event::SettingsChanged { name: Some(name), notice: Some(notice), .. }
                if name == "renamed" && notice == "second notice")
        })
        .await;
        return;
    }
    wait_for(device, "the new name", |event| {
        matches!(event, Event::SettingsChanged { name: Some(name), .. } if name == "renamed")
    })
    .await;
    wait_for(device, "the new notice", |event| {
        matches!(event, Event::SettingsChanged { notice: Some(notice), .. } if notice == "second notice")
    })
    .await;
}

/// Groups, messages, devices, settings and membership through the traits.
pub async fn groups_messages_devices_settings_and_membership<S: RealServer>() {
    let Some(server) = S::start_server().await else {
        return;
    };
    let service = test_service(&server);
    let service = service.as_ref();

    // Two devices of one user (registered by the first login), one of another.
    let mut phone = login(service, "alice").await;
    let mut desktop = login(service, "alice").await;
    let mut bob = login(service, "bob").await;
    assert_eq!(phone.user_id(), desktop.user_id());
    assert_ne!(phone.device_id(), desktop.device_id());
    assert!(
        phone.user_id().starts_with(&S::user_id_prefix("alice")),
        "{}",
        phone.user_id()
    );

    let settings = GroupSettings {
        name: "probe room".into(),
        notice: "first notice".into(),
    };
    let group = phone
        .create_group(&settings, &[bob.user_id().to_owned()])
        .await
        .expect("create group");
    let bob_id = bob.user_id().to_owned();
    wait_for(&mut bob, "the invitation", |event| {
        matches!(event, Event::MemberJoined { group: g, user } if *g == group && *user == bob_id)
    })
    .await;
    bob.join_group(&group).await.expect("bob joins");
    wait_for(&mut phone, "bob joining", |event| {
        matches!(event, Event::MemberJoined { group: g, user } if *g == group && *user == bob_id)
    })
    .await;

    // Send: idempotent per transaction id, pushed to every device, in catch-up sync too.
    let id = phone.send(&group, "txn-1", "hello 1").await.expect("send");
    let again = phone
        .send(&group, "txn-1", "hello 1")
        .await
        .expect("send again");
    assert_eq!(id, again, "same transaction id, same message");
    for device in [&mut phone, &mut desktop, &mut bob] {
        wait_for(device, "the message", is_message(&id, "hello 1")).await;
    }
    let caught_up = bob.sync().await.expect("catch-up sync");
    let copies = caught_up
        .iter()
        .filter(|delivered| is_message(&id, "hello 1")(&delivered.event))
        .count();
    assert_eq!(
        copies, 1,
        "catch-up sync carries the message once: {caught_up:?}"
    );
    let later = bob.sync().await.expect("second catch-up sync");
    assert!(
        !later
            .iter()
            .any(|delivered| is_message(&id, "hello 1")(&delivered.event)),
        "the catch-up cursor advanced"
    );

    // List and read.
    assert_eq!(bob.list_groups().await.expect("list"), vec![group.clone()]);
    let info = bob.read_group(&group).await.expect("read group");
    assert_eq!(info.settings, settings);
    let mut members = vec![phone.user_id().to_owned(), bob_id.clone()];
    members.sort();
    assert_eq!(info.members, members);

    // Settings: read back, and seen by the others.
    let edited = GroupSettings {
        name: "renamed".into(),
        notice: "second notice".into(),
    };
    phone
        .edit_settings(&group, &edited)
        .await
        .expect("edit settings");
    assert_eq!(
        desktop.read_group(&group).await.expect("read").settings,
        edited
    );
    for device in [&mut bob, &mut desktop] {
        wait_for_edited_settings::<S>(device).await;
    }

    // Add a member: after joining, they get the next message.
    // (User ids are lower case; the account name is mapped onto one.)
    let mut carol = login(service, "Carol").await;
    bob.add_member(&group, carol.user_id())
        .await
        .expect("add carol");
    carol.join_group(&group).await.expect("carol joins");
    let next = phone
        .send(&group, "txn-2", "hello 2")
        .await
        .expect("send next");
    wait_for(&mut carol, "the next message", is_message(&next, "hello 2")).await;

    // Leave + forget: gone from the list; the others see it.
    bob.leave(&group).await.expect("leave");
    assert!(
        bob.list_groups()
            .await
            .expect("list after leave")
            .is_empty()
    );
    wait_for(&mut phone, "bob leaving", |event| {
        matches!(event, Event::MemberLeft { group: g, user } if *g == group && *user == bob_id)
    })
    .await;
    let info = phone.read_group(&group).await.expect("read after leave");
    assert!(!info.members.contains(&bob_id), "{info:?}");
    drop(server);
}

/// 130 messages between two catch-up syncs (more than one page of the
/// server's history): every one arrives, once and in order.
pub async fn catch_up_sync_fills_a_long_timeline_gap<S: RealServer>() {
    const SENT: usize = 130;
    let Some(server) = S::start_server().await else {
        return;
    };
    let service = test_service(&server);
    let sender = login(service.as_ref(), "gap-sender").await;
    let mut reader = login(service.as_ref(), "gap-reader").await;
    let settings = GroupSettings {
        name: "gap".into(),
        notice: String::new(),
    };
    let group = sender
        .create_group(&settings, &[reader.user_id().to_owned()])
        .await
        .expect("create group");
    reader.join_group(&group).await.expect("reader joins");
    reader.sync().await.expect("catch-up sync up to the join");

    let mut sent = Vec::with_capacity(SENT);
    for index in 0..SENT {
        let body = format!("gap {index}");
        let txn = format!("gap-{index}");
        sent.push(sender.send(&group, &txn, &body).await.expect("send"));
    }
    let caught_up: Vec<String> = reader
        .sync()
        .await
        .expect("catch-up sync over the gap")
        .into_iter()
        .filter_map(|delivered| match delivered.event {
            Event::Message(message) if message.group == group => Some(message.id),
            _ => None,
        })
        .collect();
    assert_eq!(caught_up.len(), SENT, "every message, once");
    assert_eq!(caught_up, sent, "in the order sent");
    drop(server);
}

/// A wrong password is an auth error; a stopped server makes logins, calls,
/// push and reconnecting connect errors.
pub async fn wrong_password_and_stopped_server<S: RealServer>() {
    let Some(mut server) = S::start_server().await else {
        return;
    };
    let service = test_service(&server);
    let mut device = login(service.as_ref(), "dave").await;

    let wrong = Account {
        user: "dave".into(),
        password: "not-the-password".into(),
    };
    match service.login(&wrong).await {
        Err(ClientError::Auth(_)) => {}
        other => panic!(
            "wrong password must be an auth error, got {:?}",
            other.map(|d| d.device_id().to_owned())
        ),
    }

    server.stop_server();
    match service.login(&account("dave")).await {
        Err(ClientError::Connect(_)) => {}
        other => panic!(
            "stopped server must be a connect error, got {:?}",
            other.map(|d| d.device_id().to_owned())
        ),
    }
    assert!(
        matches!(device.list_groups().await, Err(ClientError::Connect(_))),
        "calls fail with connect errors"
    );
    // The push loop reports the lost connection instead of hanging.
    let until = Instant::now() + PATIENCE + PATIENCE;
    let mut outcome = device.next_event(until).await;
    while let Ok(Some(_)) = outcome {
        outcome = device.next_event(until).await;
    }
    assert!(
        matches!(outcome, Err(ClientError::Connect(_))),
        "push: {outcome:?}"
    );
    assert!(matches!(
        device.next_event(until).await,
        Err(ClientError::Connect(_))
    ));
    // Reopening push needs the server.
    assert!(matches!(
        device.connect().await,
        Err(ClientError::Connect(_))
    ));
}

/// The shipped probes with deadlines generous enough for a loaded machine
/// (leave_group looks again `latency_objective` after a leave).
fn patient_probes(scratch: &TempDir, kinds: &[&str]) {
    for kind in kinds {
        let shipped = std::fs::read_to_string(repo_file(&format!("probes/{kind}.yaml")))
            .expect("shipped probe file");
        let patient: Vec<String> = shipped
            .lines()
            .map(|line| match line.split(':').next() {
                Some("step_timeout") => "step_timeout: 20s".to_string(),
                Some("delivery_deadline") => "delivery_deadline: 30s".to_string(),
                Some("latency_objective") => "latency_objective: 5s".to_string(),
                _ => line.to_string(),
            })
            .collect();
        scratch.write(&format!("probes/{kind}.yaml"), &patient.join("\n"));
    }
}

/// `config/<protocol>.yaml` pointed at `server`, the scratch probes and an
/// ephemeral listen port, plus `extra` lines.
fn shipped_config<S: RealServer>(scratch: &TempDir, server: &S, extra: &str) -> PathBuf {
    let name = format!("{}.yaml", S::PROTOCOL);
    let text = std::fs::read_to_string(repo_file(&format!("config/{name}"))).expect(&name);
    assert!(text.contains(S::SHIPPED_ADDRESS_LINE), "{text}");
    let text = text
        .replace(S::SHIPPED_ADDRESS, server.address())
        .replace("listen: 127.0.0.1:9464", "listen: 127.0.0.1:0")
        .replace(
            "- ../probes",
            &format!("- {}", scratch.join("probes").display()),
        );
    scratch.write(&name, &format!("{text}{extra}"))
}

/// Starts the server on a runtime of its own, for tests of the binary.
fn start_blocking<S: RealServer>() -> Option<(tokio::runtime::Runtime, S)> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(S::start_server())?;
    Some((runtime, server))
}

/// Every probe kind's name.
fn kinds() -> Vec<&'static str> {
    ProbeKind::ALL.iter().map(|kind| kind.as_str()).collect()
}

/// The password prefix of the shipped config's accounts, never to be shown.
fn shipped_password<S: RealServer>() -> String {
    format!("chatprobe-{}", S::PROTOCOL)
}

/// `chatprobe once` with the shipped config passes every shipped probe.
pub fn once_passes_every_shipped_probe<S: RealServer>() {
    let Some((_runtime, server)) = start_blocking::<S>() else {
        return;
    };
    let scratch = TempDir::new(&format!("{}-once", S::PROTOCOL));
    patient_probes(&scratch, &kinds());
    let config = shipped_config(&scratch, &server, "");
    let finished = binary::run("once", &config);
    let table = &finished.stdout;
    assert!(
        finished.success,
        "{table}\n{}\n{}",
        finished.stderr,
        server.logs()
    );
    for kind in kinds() {
        assert!(
            table.lines().any(|line| line.starts_with(kind)
                && line.contains(S::TARGET)
                && line.contains("pass")),
            "{kind} did not pass:\n{table}"
        );
    }
    assert!(
        !table.contains(&shipped_password::<S>()),
        "the password leaked:\n{table}"
    );
}

/// `chatprobe_probe_runs_total` of `group_message` on the server's target with `result`.
fn group_message_runs<S: RealServer>(text: &str, result: &str) -> f64 {
    let series = format!(
        "chatprobe_probe_runs_total{{probe=\"group_message\",region=\"eu-west\",result=\"{result}\",target=\"{}\"}}",
        S::TARGET
    );
    metric(text, &series).unwrap_or(0.0)
}

/// Failed runs after the server answers again before the first pass: the run
/// in flight when it came back, and one more.
const RUNS_TO_RECOVER: f64 = 2.0;

/// The agent reports `connect_error` while the server is down and stays up;
/// once the server is started again (same address, same data), the same
/// agent passes within [`RUNS_TO_RECOVER`] failed runs, and it exits cleanly
/// on SIGTERM.
pub fn agent_reports_connect_error_while_down_and_passes_once_back<S: RealServer>() {
    let Some((runtime, mut server)) = start_blocking::<S>() else {
        return;
    };
    let scratch = TempDir::new(&format!("{}-down", S::PROTOCOL));
    patient_probes(&scratch, &["group_message"]);
    let config = shipped_config(&scratch, &server, "interval: 1s\n");
    let mut agent = start_agent(&config);
    let (_, text) = agent.poll("/metrics", |_, text| {
        group_message_runs::<S>(text, "success") >= 1.0
    });
    assert!(
        group_message_runs::<S>(&text, "success") >= 1.0,
        "{text}\n{}",
        agent.log()
    );

    server.stop_server();
    let target = format!("target=\"{}\"", S::TARGET);
    let connect_errors = |text: &str| {
        text.lines()
            .filter(|line| line.starts_with("chatprobe_operation_failures_total{"))
            .filter(|line| line.contains("reason=\"connect_error\"") && line.contains(&target))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let (_, text) = agent.poll("/metrics", |_, text| connect_errors(text) >= 1.0);
    assert!(
        connect_errors(&text) >= 1.0,
        "no connect_error:\n{text}\n{}",
        agent.log()
    );
    assert_eq!(agent.get("/healthz").0, 200, "the agent stays up");

    runtime.block_on(server.restart_server());
    let back = agent.get("/metrics").1;
    let (passed, failed) = (
        group_message_runs::<S>(&back, "success"),
        group_message_runs::<S>(&back, "failure"),
    );
    let (_, text) = agent.poll("/metrics", |_, text| {
        group_message_runs::<S>(text, "success") > passed
    });
    assert!(
        group_message_runs::<S>(&text, "success") > passed,
        "no pass after the server came back:\n{text}\n{}\n{}",
        agent.log(),
        server.logs()
    );
    let failed_meanwhile = group_message_runs::<S>(&text, "failure") - failed;
    assert!(
        failed_meanwhile <= RUNS_TO_RECOVER,
        "{failed_meanwhile} runs failed after the server came back before one passed:\n{}",
        agent.log()
    );
    assert!(
        !agent.log().contains(&shipped_password::<S>()),
        "the password leaked"
    );

    agent.signal("TERM");
    let exited = agent.wait_exit(Duration::from_secs(30));
    assert!(
        exited.is_some_and(|(status, _)| status.success()),
        "no clean exit after SIGTERM:\n{}",
        agent.log()
    );
}

/// Runs of every kind in [`every_kind_passes_and_leaves_no_group_behind`] (100 in all).
const RUNS: usize = 20;

/// A spec of `kind` with deadlines generous enough for a loaded machine.
pub fn patient_spec(kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        name: kind.as_str().to_string(),
        kind,
        interval: Duration::from_secs(1),
        step_timeout: Duration::from_secs(20),
        delivery_deadline: Duration::from_secs(20),
        // leave_group looks again this long after a leave: keep it short.
        latency_objective: match kind {
            ProbeKind::LeaveGroup => Duration::from_secs(1),
            _ => Duration::from_secs(20),
        },
        group_size: 3,
        devices_per_account: 2,
        messages: 3,
    }
}

/// The accounts a probe of `spec` acts as.
pub fn probe_accounts(spec: &ProbeSpec) -> Vec<Account> {
    (0..probe::accounts_needed(spec))
        .map(|index| Account {
            user: format!("probe-{}-{index}", spec.name),
            password: format!("secret-{}-{index}", spec.name),
        })
        .collect()
}

/// How many groups each account is in, read by a separate login.
async fn groups_per_account(
    service: &dyn ChatService,
    accounts: &[Account],
    listed: &str,
) -> Vec<usize> {
    let mut counts = Vec::new();
    for account in accounts {
        let device = service.login(account).await.expect("inspection login");
        counts.push(device.list_groups().await.expect(listed).len());
    }
    counts
}

/// Every probe kind, concurrently, [`RUNS`] healthy runs each; the groups
/// per account stay flat, and shutdown leaves none behind.
pub async fn every_kind_passes_and_leaves_no_group_behind<S: RealServer>() {
    let Some(server) = S::start_server().await else {
        return;
    };
    let mut runners = Vec::new();
    for &kind in ProbeKind::ALL {
        let service = server.service("eu-west", Duration::from_secs(20));
        runners.push(tokio::spawn(async move {
            let spec = patient_spec(kind);
            let accounts = probe_accounts(&spec);
            let mut probe = probe::build(ProbeSetup {
                spec,
                service: service.clone(),
                accounts: accounts.clone(),
            });
            let count = || groups_per_account(service.as_ref(), &accounts, S::LISTED_GROUPS);
            let mut after_first = Vec::new();
            for index in 0..RUNS {
                let outcome = probe.run().await;
                assert_passed(kind, index, &outcome);
                if index == 0 {
                    after_first = count().await;
                }
            }
            let after_last = count().await;
            assert_eq!(
                after_first, after_last,
                "{kind:?}: rooms per account after run 1 and run {RUNS}"
            );
            // group_message keeps one room between healthy runs; shutdown
            // must leave every account in no room at all.
            probe.shutdown().await;
            let after_shutdown = count().await;
            assert!(
                after_shutdown.iter().all(|&rooms| rooms == 0),
                "{kind:?}: rooms per account after shutdown: {after_shutdown:?}"
            );
        }));
    }
    for runner in runners {
        if let Err(failed) = runner.await {
            panic!("probe task: {failed}\n{}", server.logs());
        }
    }
    drop(server);
}

/// Declares, in the calling module, every test that each real-server protocol
/// shares (the bodies above and the ignored benchmark), run against `$server`.
#[macro_export]
macro_rules! real_server_tests {
    ($server:ty) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn groups_messages_devices_settings_and_membership() {
            $crate::harness::protocol::groups_messages_devices_settings_and_membership::<$server>()
                .await;
        }

        /// More messages than one catch-up answer carries between two
        /// catch-up syncs: the client pages through the rest, so every one
        /// arrives, once and in order.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn catch_up_sync_fills_a_long_timeline_gap() {
            $crate::harness::protocol::catch_up_sync_fills_a_long_timeline_gap::<$server>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn wrong_password_and_stopped_server() {
            $crate::harness::protocol::wrong_password_and_stopped_server::<$server>().await;
        }

        #[test]
        fn once_passes_every_shipped_probe() {
            $crate::harness::protocol::once_passes_every_shipped_probe::<$server>();
        }

        #[test]
        fn agent_reports_connect_error_while_down_and_passes_once_back() {
            $crate::harness::protocol::agent_reports_connect_error_while_down_and_passes_once_back::<
                $server,
            >();
        }

        /// Every probe kind, unchanged: 100 healthy runs in all (every kind
        /// in turn, concurrently), and the number of groups each probe
        /// account is in stays flat.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn every_kind_passes_and_leaves_no_group_behind() {
            $crate::harness::protocol::every_kind_passes_and_leaves_no_group_behind::<$server>()
                .await;
        }

        /// Benchmark: the shipped `group_message` probe against the server
        /// and against the mock backend, in one run (`cargo test --release
        /// --test it -- --ignored --nocapture group_message_against`).
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "benchmark: run with --release -- --ignored --nocapture"]
        async fn group_message_against_the_server_and_the_mock() {
            $crate::harness::server_bench::group_message_against_the_server_and_the_mock::<$server>()
                .await;
        }
    };
}
