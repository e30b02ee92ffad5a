//! How a fault becomes a reason, for every pair of effect and operation the
//! backend accepts (`APPLICABILITY`): the table [`VERDICTS`]
//! (`src/backend/verdicts.rs`) says which probe kinds report which reason on
//! which operation; the section "How a fault becomes a reason" of
//! `docs/mock-backend.md` is generated from it (and checked here;
//! `CHATPROBE_UPDATE_DOCS=1` rewrites it);
//! and the fault matrix runs every pair against a real mock backend, the
//! fault scoped to one region, in three variants (see [`Variant`]):
//! - active from the start: exactly the table's failures, kind by kind,
//!   within two runs;
//! - starting mid-stream (installed with `after` once the devices are
//!   connected and a run passed): some failure of the table within two
//!   runs, none outside it;
//! - with probability 0.5, installed once a run passed: runs count from
//!   the first run in which the backend counted the fault firing (its
//!   `faults_fired` in `/admin/stats`); runs before it pass, and some
//!   failure of the table, none outside it, shows within two runs of it.
//!   The random draws are not seeded (the order in which concurrent probes
//!   reach the fault is not reproducible anyway): counting from the first
//!   firing makes the assertion hold whatever they are. Only where a fault
//!   may also fire where nobody looks by design (a cleanup's leave, a
//!   sender's push connection, the connection of a device retired before
//!   its loss reached it) is the bound a number of firing runs (see
//!   [`by_chance`]).
//!
//! In every variant the involved kinds also run in a second region of the
//! same backend and must report nothing; in the mid-stream and probability
//! variants, once the fault is removed, the faulted region passes again
//! within a few runs.
//!
//! In the partial variants a message lost on every device (`not_delivered`)
//! may be lost on some only (`partial_delivery`), on the same operation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatprobe::backend::{Effect, FaultPoint, Kinds, Report, VERDICTS, Verdict};
use chatprobe::outcome::{Operation, Reason};
use chatprobe::probe::{Probe, ProbeKind, ProbeSpec};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::harness::backend::TestBackend;
use crate::harness::probes::{build, failures, fast_spec};

use Effect as E;
use FaultPoint as P;
use Operation as Op;
use ProbeKind::DeviceSync;
use Reason as R;

/// The region the fault hits.
const FAULTED: &str = "ap-south";
/// A region on the same backend the fault must not touch.
const HEALTHY: &str = "eu-west";
/// Cases run at once (most of a case's time is waiting for deadlines).
const PARALLEL: usize = 12;
/// How long after it is installed the mid-stream fault begins.
const AFTER: Duration = Duration::from_millis(100);
/// Runs with the fault active in the exact and mid-stream variants.
const RUNS: usize = 2;
/// Most runs of the probability variant: its window must be over by then.
/// The fault has one operation a run or more to fire at, each with even
/// odds; a fault on login or connect meets the first logins and connects,
/// then one renewal every second passing run (every run after a failed one),
/// so it fires in a run with odds of 1 in 4 or better.
const CHANCE_RUNS: usize = 32;
/// Runs in which a fault that may fire unseen fired, before the probability
/// variant must have named it (for a leave, missed by chance once in 3^8).
const UNSEEN_FIRING_RUNS: usize = 8;
/// Most runs after the fault is removed before one must pass: enough for
/// every device (2 members × 2 devices, one renewed every run after a
/// failed one) to be renewed,
/// so a push connection a `connect` fault made silent or doubling is gone.
const RECOVERY_RUNS: usize = 5;

/// The fault of a verdict, scoped to [`FAULTED`], with the options its
/// effect needs.
fn fault(verdict: &Verdict) -> Value {
    let (effect, point) = (verdict.effect.as_str(), verdict.point.as_str());
    let mut fault = json!({
        "name": format!("{effect}-{point}"),
        "operations": [point],
        "regions": [FAULTED],
        "effect": effect,
    });
    match (verdict.effect, verdict.point) {
        (E::Delay, P::Deliver) => fault["delay"] = json!("2s"),
        (E::Reorder, P::Deliver) => fault["delay"] = json!("1s"),
        (E::Delay, _) => fault["delay"] = json!("5s"),
        (E::Resurrect, _) => fault["delay"] = json!("1s"),
        _ => {}
    }
    fault
}

/// Failures found, per kind.
type Found = BTreeMap<&'static str, BTreeSet<(Operation, Reason)>>;

/// What the table says each kind reports for `verdict`.
fn expected(verdict: &Verdict) -> Found {
    let mut found: Found = ProbeKind::ALL
        .iter()
        .map(|kind| (kind.as_str(), BTreeSet::new()))
        .collect();
    add(&mut found, verdict.reports);
    found
}

/// Adds `reports` to `found`.
fn add(found: &mut Found, reports: &[Report]) {
    for (kinds, operation, reason) in reports {
        for kind in kinds.resolve() {
            found
                .entry(kind.as_str())
                .or_default()
                .insert((*operation, *reason));
        }
    }
}

/// What the partial variants may report: the table's failures, those it
/// names for a fault that hits only some operations, and a loss on some
/// devices wherever a loss on all is documented (for device_sync a loss on
/// the account's own devices is their disagreement).
fn allowed(verdict: &Verdict) -> Found {
    let mut found = expected(verdict);
    add(&mut found, verdict.partly);
    for (kind, failures) in found.iter_mut() {
        let lost_somewhere = failures.contains(&(Op::Deliver, R::NotDelivered));
        if lost_somewhere {
            failures.insert((Op::Deliver, R::PartialDelivery));
        }
        if lost_somewhere && *kind == DeviceSync.as_str() {
            failures.insert((Op::DeviceSync, R::DeviceDesync));
        }
    }
    found
}

/// The probe timing of this test: short, yet generous for a loaded
/// machine. Two members and two messages, the least each kind needs (two
/// messages can overtake each other), keep the load low.
fn spec(kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        group_size: 2,
        messages: 2,
        step_timeout: Duration::from_secs(2),
        delivery_deadline: Duration::from_secs(3),
        latency_objective: Duration::from_millis(1500),
        ..fast_spec(kind)
    }
}

/// Probes of every kind in `kinds` acting from `region`.
fn probes(base: &str, region: &str, kinds: &[ProbeKind], tag: &str) -> Probes {
    kinds
        .iter()
        .map(|&kind| {
            (
                kind,
                build(base, region, spec(kind), &format!("{tag}-{region}")),
            )
        })
        .collect()
}

/// Probes of one region, each with its kind.
type Probes = Vec<(ProbeKind, Box<dyn Probe>)>;

/// Runs every probe once, all at once; what each reported.
async fn run_once(probes: Probes) -> (Probes, Found) {
    let runners: Vec<_> = probes
        .into_iter()
        .map(|(kind, mut probe)| {
            tokio::spawn(async move {
                let outcome = probe.run().await;
                (kind, probe, failures(&outcome))
            })
        })
        .collect();
    let mut probes = Vec::new();
    let mut found = Found::new();
    for runner in runners {
        let (kind, probe, failures) = runner.await.expect("probe task");
        found.entry(kind.as_str()).or_default().extend(failures);
        probes.push((kind, probe));
    }
    (probes, found)
}

fn merge(into: &mut Found, more: Found) {
    for (kind, failures) in more {
        into.entry(kind).or_default().extend(failures);
    }
}

fn no_failures(found: &Found) -> bool {
    found.values().all(BTreeSet::is_empty)
}

/// Kinds the table names for `verdict`.
fn involved(verdict: &Verdict) -> Vec<ProbeKind> {
    ProbeKind::ALL
        .iter()
        .copied()
        .filter(|kind| {
            verdict
                .reports
                .iter()
                .any(|(kinds, _, _)| kinds.resolve().contains(kind))
        })
        .collect()
}

/// Problems with `found` against the partial variants' rule: something of
/// the table, nothing outside what it allows.
fn partial_problems(verdict: &Verdict, found: &Found) -> Vec<String> {
    let allowed = allowed(verdict);
    let mut problems = Vec::new();
    for (kind, failures) in found {
        let outside: Vec<_> = failures.difference(&allowed[kind]).collect();
        if !outside.is_empty() {
            problems.push(format!("{kind} reported {outside:?}, not in the table"));
        }
    }
    if no_failures(found) {
        problems.push("no failure reported".into());
    }
    problems
}

/// When a case's fault is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// From before the first run: exactly the table's failures, kind by
    /// kind (every kind runs), within [`RUNS`] runs.
    FromStart,
    /// From [`AFTER`] after it is installed, once a run passed with the
    /// devices connected: some failure of the table within [`RUNS`] runs.
    MidStream,
    /// With probability 0.5, once a run passed (a first run also lists the
    /// accounts' groups to reconcile, which nobody checks): some failure of
    /// the table within two runs of the first run it fired in.
    ByChance,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::FromStart, Variant::MidStream, Variant::ByChance];

    fn name(self) -> &'static str {
        match self {
            Variant::FromStart => "from-start",
            Variant::MidStream => "mid-stream",
            Variant::ByChance => "by-chance",
        }
    }

    /// The fault of `verdict` as this variant installs it.
    fn fault(self, verdict: &Verdict) -> Value {
        let mut fault = fault(verdict);
        match self {
            Variant::FromStart => {}
            Variant::MidStream => {
                fault["after"] = json!(humantime::format_duration(AFTER).to_string());
            }
            Variant::ByChance => fault["probability"] = json!(0.5),
        }
        fault
    }

    /// The kinds that run in the faulted region: all in the exact variant,
    /// else those involved.
    fn kinds(self, verdict: &Verdict) -> Vec<ProbeKind> {
        match self {
            Variant::FromStart => ProbeKind::ALL.to_vec(),
            Variant::MidStream | Variant::ByChance => involved(verdict),
        }
    }
}

/// One case's probes: those of the faulted and of the healthy region of one
/// backend, run side by side while the fault is installed; the healthy
/// region's failures accumulate (there must be none). The healthy region
/// runs the kinds the fault involves: a fault leaking out of its region
/// shows there.
struct Regions {
    faulted: Probes,
    healthy: Probes,
    found_healthy: Found,
}

impl Regions {
    fn new(base: &str, variant: Variant, verdict: &Verdict, tag: &str) -> Regions {
        Regions {
            faulted: probes(base, FAULTED, &variant.kinds(verdict), tag),
            healthy: probes(base, HEALTHY, &involved(verdict), tag),
            found_healthy: Found::new(),
        }
    }

    /// Runs the faulted region alone (while no fault is installed); what it
    /// reported.
    async fn run_faulted(&mut self) -> Found {
        let (faulted, found) = run_once(std::mem::take(&mut self.faulted)).await;
        self.faulted = faulted;
        found
    }

    /// Runs both regions once; what the faulted region reported.
    async fn run(&mut self) -> Found {
        let faulted = std::mem::take(&mut self.faulted);
        let healthy = std::mem::take(&mut self.healthy);
        let ((faulted, found), (healthy, found_healthy)) =
            tokio::join!(run_once(faulted), run_once(healthy));
        (self.faulted, self.healthy) = (faulted, healthy);
        merge(&mut self.found_healthy, found_healthy);
        found
    }

    /// Runs both regions `runs` times; what the faulted region reported.
    async fn run_times(&mut self, runs: usize) -> Found {
        let mut found = Found::new();
        for _ in 0..runs {
            merge(&mut found, self.run().await);
        }
        found
    }
}

/// One case: `verdict`'s fault in `variant`. Whatever the variant, the
/// healthy region reports nothing while the fault is installed. In the
/// variants that begin with a passing run, once the fault is removed the
/// faulted region passes again within [`RECOVERY_RUNS`] runs (the
/// exact variant leaves recovery to them, to keep the matrix fast).
async fn case(verdict: &Verdict, variant: Variant, tag: &str) -> Vec<String> {
    let backend = TestBackend::start().await;
    let mut regions = Regions::new(&backend.base, variant, verdict, tag);
    let mut problems = Vec::new();
    if variant != Variant::FromStart {
        let before = regions.run_faulted().await;
        if !no_failures(&before) {
            problems.push(format!("failed before the fault: {before:?}"));
        }
    }
    backend.set_faults(json!([variant.fault(verdict)])).await;
    match variant {
        Variant::FromStart => {
            let found = regions.run_times(RUNS).await;
            let wanted = expected(verdict);
            if found != wanted {
                problems.push(format!("found {found:?}, expected {wanted:?}"));
            }
        }
        Variant::MidStream => {
            // The window opens `AFTER` from when the backend took the fault,
            // which was before its answer: from here on, it is active.
            tokio::time::sleep_until((Instant::now() + AFTER).into()).await;
            let found = regions.run_times(RUNS).await;
            problems.extend(partial_problems(verdict, &found));
        }
        Variant::ByChance => problems.extend(by_chance(&backend, &mut regions, verdict).await),
    }
    backend.set_faults(json!([])).await;
    if variant != Variant::FromStart {
        problems.extend(recovery(&mut regions).await);
    }
    if !no_failures(&regions.found_healthy) {
        let found = &regions.found_healthy;
        problems.push(format!("{HEALTHY} (not faulted) failed: {found:?}"));
    }
    backend.handle.shutdown().await.expect("backend stops");
    problems
}

/// How often the fault named `name` fired so far (`GET /admin/stats`).
async fn fired(backend: &TestBackend, name: &str) -> u64 {
    let stats = backend.stats().await;
    stats["faults_fired"][name].as_u64().unwrap_or(0)
}

/// The probability variant's window. Which runs a fault of probability 0.5
/// hits is chance, so runs count from the first in which the backend
/// counted it firing (`faults_fired` of `/admin/stats`): runs before it
/// must pass, and a failure of the table must show in that run or the next
/// (a stale listing, a late copy, show a run after they fire), nothing
/// outside the table. Where it may fire unseen by design
/// ([`Verdict::fires_unseen`]), only runs in which it fired count, up to
/// [`UNSEEN_FIRING_RUNS`]: a run it fires in hits what a probe checks with
/// fair odds (2 in 3 for `leave_group`'s leave, one of two leaves a run). The fault
/// has an operation or more a run to fire at, so its window not being over
/// within [`CHANCE_RUNS`] runs is a failure too.
async fn by_chance(backend: &TestBackend, regions: &mut Regions, verdict: &Verdict) -> Vec<String> {
    let name = fault(verdict)["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let window = if verdict.fires_unseen {
        UNSEEN_FIRING_RUNS
    } else {
        2
    };
    let mut problems = Vec::new();
    let (mut found, mut counted, mut fired_before) = (Found::new(), 0, 0);
    for run in 0..CHANCE_RUNS {
        let failures = regions.run().await;
        let fired_now = fired(backend, &name).await;
        let fired_in_run = fired_now > fired_before;
        fired_before = fired_now;
        if fired_now == 0 {
            if !no_failures(&failures) {
                problems.push(format!(
                    "run {run} failed before the fault fired: {failures:?}"
                ));
            }
            continue;
        }
        merge(&mut found, failures);
        if fired_in_run || !verdict.fires_unseen {
            counted += 1;
        }
        if !no_failures(&found) || counted == window {
            problems.extend(partial_problems(verdict, &found));
            return problems;
        }
    }
    problems.push(format!(
        "fired {fired_before} times, in {counted} of {CHANCE_RUNS} runs counted; {window} needed"
    ));
    problems
}

/// After the fault's window: within [`RECOVERY_RUNS`] runs, every kind of
/// the faulted region passes.
async fn recovery(regions: &mut Regions) -> Vec<String> {
    let mut last = Found::new();
    for _ in 0..RECOVERY_RUNS {
        let found = regions.run_faulted().await;
        if no_failures(&found) {
            return Vec::new();
        }
        last = found;
    }
    vec![format!("no recovery after the fault: {last:?}")]
}

/// Every pair in every variant, [`PARALLEL`] cases at once; what was wrong.
async fn run_matrix() -> Vec<String> {
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut checks = Vec::new();
    for variant in Variant::ALL {
        for verdict in VERDICTS {
            let gate = Arc::clone(&gate);
            checks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore open");
                let name = fault(verdict)["name"].as_str().unwrap_or("?").to_string();
                let tag = format!("{}-{name}", variant.name());
                let problems = case(verdict, variant, &tag).await;
                (tag, problems)
            }));
        }
    }
    let mut wrong = Vec::new();
    for check in checks {
        let (name, problems) = check.await.expect("case task");
        if !problems.is_empty() {
            wrong.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    wrong
}

/// Reports in the docs' words: "`reason` on `operation`: probes".
fn describe(reports: &[Report]) -> Vec<String> {
    reports
        .iter()
        .map(|(kinds, operation, reason)| {
            let who = if matches!(kinds, Kinds::All) {
                "every probe".to_string()
            } else {
                let names: Vec<&str> = kinds.resolve().iter().map(|kind| kind.as_str()).collect();
                names.join(", ")
            };
            format!("`{reason}` on `{operation}`: {who}")
        })
        .collect()
}

/// The docs section's rows, generated from [`VERDICTS`].
fn doc_rows() -> String {
    let mut rows =
        String::from("| effect | operation | reason, on operation: probes |\n|---|---|---|\n");
    for verdict in VERDICTS {
        let mut cell = describe(verdict.reports).join("; ");
        if !verdict.partly.is_empty() {
            cell.push_str(&format!(
                "; when it hits only some operations, also {}",
                describe(verdict.partly).join("; ")
            ));
        }
        rows.push_str(&format!(
            "| `{}` | `{}` | {cell} |\n",
            verdict.effect.as_str(),
            verdict.point.as_str(),
        ));
    }
    rows
}

#[test]
fn the_docs_section_is_the_table() {
    let path = crate::harness::fixtures::repo_file("docs/mock-backend.md");
    let doc = std::fs::read_to_string(&path).expect("docs/mock-backend.md");
    let begin = "<!-- verdicts: generated by the fault matrix test -->\n";
    let end = "<!-- verdicts end -->";
    let start = doc.find(begin).map(|at| at + begin.len());
    let stop = doc.find(end);
    let section = match (start, stop) {
        (Some(start), Some(stop)) if start <= stop => &doc[start..stop],
        _ => "",
    };
    let rows = doc_rows();
    if section != rows {
        if std::env::var_os("CHATPROBE_UPDATE_DOCS").is_some() {
            let updated = match (start, stop) {
                (Some(start), Some(stop)) => format!("{}{rows}{}", &doc[..start], &doc[stop..]),
                _ => panic!("docs/mock-backend.md lacks the verdict markers"),
            };
            std::fs::write(&path, updated).expect("docs/mock-backend.md written");
        }
        panic!(
            "docs/mock-backend.md's \"How a fault becomes a reason\" differs from the table; rerun with CHATPROBE_UPDATE_DOCS=1:\n{rows}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_pair_is_named_from_the_start_mid_stream_and_by_chance() {
    let wrong = run_matrix().await;
    assert!(
        wrong.is_empty(),
        "{} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
