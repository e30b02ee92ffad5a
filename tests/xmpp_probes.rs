//! Every probe kind, unchanged, against a real Prosody: 100 healthy runs in
//! all (every kind in turn, concurrently), and the number of rooms each probe
//! account has bookmarked stays flat.

mod common;
mod prosody;

use std::sync::Arc;
use std::time::Duration;

use chatprobe::client::xmpp::{Transport, XmppOptions, XmppService};
use chatprobe::client::{Account, ChatService};
use chatprobe::probe::{self, ProbeKind, ProbeSetup, ProbeSpec};
use common::probes::assert_passed;
use prosody::Prosody;

/// Runs of every kind (100 runs in all).
const RUNS: usize = 20;

fn service(server: &str) -> Arc<XmppService> {
    let options = XmppOptions {
        server: server.to_owned(),
        domain: prosody::DOMAIN.into(),
        muc_service: prosody::MUC_SERVICE.into(),
        transport: Transport::Plain,
        register: true,
        region: "eu-west".into(),
        request_timeout: Duration::from_secs(20),
    };
    Arc::new(XmppService::new(options).expect("service builds"))
}

/// A spec of `kind` with deadlines generous enough for a loaded machine.
fn spec(kind: ProbeKind) -> ProbeSpec {
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

fn accounts(spec: &ProbeSpec) -> Vec<Account> {
    (0..probe::accounts_needed(spec))
        .map(|index| Account {
            user: format!("probe-{}-{index}", spec.name),
            password: format!("secret-{}-{index}", spec.name),
        })
        .collect()
}

/// How many rooms each account has bookmarked, read by a separate login.
async fn rooms_per_account(service: &XmppService, accounts: &[Account]) -> Vec<usize> {
    let mut counts = Vec::new();
    for account in accounts {
        let device = service.login(account).await.expect("inspection login");
        counts.push(device.list_groups().await.expect("bookmarked rooms").len());
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_passes_and_leaves_no_room_behind() {
    let Some(prosody) = Prosody::start().await else {
        return;
    };
    let mut runners = Vec::new();
    for &kind in ProbeKind::ALL {
        let service = service(&prosody.server);
        runners.push(tokio::spawn(async move {
            let spec = spec(kind);
            let accounts = accounts(&spec);
            let mut probe = probe::build(ProbeSetup {
                spec,
                service: service.clone(),
                accounts: accounts.clone(),
            });
            let mut after_first = Vec::new();
            for index in 0..RUNS {
                let outcome = probe.run().await;
                assert_passed(kind, index, &outcome);
                if index == 0 {
                    after_first = rooms_per_account(&service, &accounts).await;
                }
            }
            let after_last = rooms_per_account(&service, &accounts).await;
            assert_eq!(
                after_first, after_last,
                "{kind:?}: rooms per account after run 1 and run {RUNS}"
            );
            // group_message keeps one room between healthy runs; shutdown
            // must leave every account in no room at all.
            probe.shutdown().await;
            let after_shutdown = rooms_per_account(&service, &accounts).await;
            assert!(
                after_shutdown.iter().all(|&rooms| rooms == 0),
                "{kind:?}: rooms per account after shutdown: {after_shutdown:?}"
            );
        }));
    }
    for runner in runners {
        if let Err(failed) = runner.await {
            panic!("probe task: {failed}\n{}", prosody.log_tail());
        }
    }
    drop(prosody);
}
