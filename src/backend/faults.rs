//! Fault injection: the fault spec (YAML/JSON), its validation against the
//! [`APPLICABILITY`] table, and the engine that decides which faults fire at one
//! fault point in one region. What the effects then do to data is
//! the `distort` module's.
//!
//! `docs/mock-backend.md` has the table of what each effect does on each operation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::yaml::values::check_duration;
use crate::yaml::{self, FileErrors};

/// Resurrect re-adds the user this long after the leave when the fault sets no `delay`.
pub(super) const DEFAULT_RESURRECT_DELAY: Duration = Duration::from_secs(1);
/// A delivery held back by `reorder` waits at most this long for the next one to overtake it
/// when the fault sets no `delay`.
pub(super) const DEFAULT_REORDER_HOLD: Duration = Duration::from_millis(50);
/// Status answered by `error` when the fault sets no `status`.
pub(super) const DEFAULT_ERROR_STATUS: u16 = 503;
/// Longest fault `name`, in bytes.
pub(super) const MAX_FAULT_NAME_BYTES: usize = 128;
/// Fault names whose fired counts are kept; beyond it, installing faults forgets
/// the counts of names no longer installed.
pub(super) const FIRED_NAMES_KEPT: usize = 1024;

label_enum! {
    /// A point where a fault can hit: an operation of the service, named as in a
    /// fault's `operations` (**contract** names), in the order
    /// `docs/mock-backend.md` lists them.
    #[derive(Deserialize)]
    FaultPoint {
        Login => "login", "`POST /api/v1/login`";
        Connect => "connect", "opening the WebSocket push stream";
        Send => "send", "`POST /api/v1/groups/{id}/messages`";
        Deliver => "deliver", "pushing one event to one device";
        Sync => "sync", "`GET /api/v1/sync`";
        Leave => "leave", "`POST /api/v1/groups/{id}/leave`";
        ListGroups => "list_groups", "`GET /api/v1/groups`";
        EditSettings => "edit_settings", "`PATCH /api/v1/groups/{id}`";
        ReadGroup => "read_group", "`GET /api/v1/groups/{id}`";
        AddMember => "add_member", "`POST /api/v1/groups/{id}/members`";
    }
}

label_enum! {
    /// What a fault does when it fires (**contract** names), in the order
    /// `docs/mock-backend.md` describes them.
    #[derive(Deserialize)]
    Effect {
        Error => "error", "answer an error status";
        Delay => "delay", "add latency";
        Timeout => "timeout", "hold the request open without answering";
        Drop => "drop", "acknowledge but never deliver";
        Duplicate => "duplicate", "deliver twice";
        Reorder => "reorder", "swap consecutive deliveries";
        Corrupt => "corrupt", "alter the body";
        Stale => "stale", "answer success without applying, or serve an old view";
        Resurrect => "resurrect", "apply a leave, then re-add the user later";
        Disconnect => "disconnect", "drop push connections";
    }
}

impl Effect {
    /// The fault points this effect has a meaning on: its row of [`APPLICABILITY`].
    pub(crate) fn points(self) -> &'static [FaultPoint] {
        APPLICABILITY
            .iter()
            .find(|(effect, _)| *effect == self)
            .map_or(&[], |(_, points)| points)
    }

    /// Whether this effect has a meaning on `point`; validation rejects every other pair.
    pub(crate) fn applies_to(self, point: FaultPoint) -> bool {
        self.points().contains(&point)
    }
}

/// Which effects have a meaning on which fault points (the tables of `docs/mock-backend.md`
/// as data): one row per effect, in [`Effect::ALL`] order. A fault pairing an effect
/// with a point outside its row is invalid: either it has no meaning there, or it
/// is one of the [`UNOBSERVABLE`] pairs no probe could ever see.
pub const APPLICABILITY: [(Effect, &[FaultPoint]); 10] = {
    use FaultPoint::*;
    [
        (Effect::Error, FaultPoint::ALL),
        (Effect::Delay, FaultPoint::ALL),
        (Effect::Timeout, FaultPoint::ALL),
        (
            Effect::Drop,
            &[
                Login,
                Connect,
                Send,
                Deliver,
                Sync,
                Leave,
                ListGroups,
                EditSettings,
                ReadGroup,
            ],
        ),
        (Effect::Duplicate, &[Connect, Send, Deliver, Sync]),
        (Effect::Reorder, &[Deliver, Sync]),
        (
            Effect::Corrupt,
            &[Send, Deliver, Sync, EditSettings, ReadGroup],
        ),
        (
            Effect::Stale,
            &[Sync, Leave, ListGroups, EditSettings, ReadGroup, AddMember],
        ),
        (Effect::Resurrect, &[Leave]),
        (Effect::Disconnect, FaultPoint::ALL),
    ]
};

/// Pairs that have a meaning but that no probe can ever see, so a fault
/// with them would stay silently green: validation refuses them, saying why.
pub(super) const UNOBSERVABLE: [(Effect, FaultPoint, &str); 7] = [
    (
        Effect::Duplicate,
        FaultPoint::Leave,
        "the member-left event pushed twice changes no state a member reads",
    ),
    (
        Effect::Duplicate,
        FaultPoint::EditSettings,
        "the settings event pushed twice changes no state a member reads",
    ),
    (
        Effect::Duplicate,
        FaultPoint::AddMember,
        "the member-joined event pushed twice changes no state a member reads",
    ),
    (
        Effect::Duplicate,
        FaultPoint::ListGroups,
        "a group listed twice is still listed, the same to every probe",
    ),
    (
        Effect::Duplicate,
        FaultPoint::ReadGroup,
        "a member listed twice is still a member",
    ),
    (
        Effect::Drop,
        FaultPoint::AddMember,
        "only the member-joined event is lost, and no probe waits for it",
    ),
    (
        Effect::Corrupt,
        FaultPoint::ListGroups,
        "only names and notices are altered, and a list is read for its ids",
    ),
];

/// One fault as written in a faults file, the backend config or `PUT /admin/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    /// Free text, shown in logs, `/admin/faults` and `/admin/stats`.
    pub(crate) name: String,
    /// Fault points the fault hits (the key is `operations` in files).
    pub(crate) operations: Vec<FaultPoint>,
    /// Regions the fault hits; empty means every region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) regions: Vec<String>,
    /// Chance that a matching operation is hit, 0.0 to 1.0.
    #[serde(default = "default_probability")]
    pub(crate) probability: f64,
    /// Active from this long after the backend start (or after the `PUT` installing it).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) after: Option<Duration>,
    /// Active for this long; absent means until removed.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) duration: Option<Duration>,
    /// What the fault does.
    pub(crate) effect: Effect,
    /// Status answered by `error` (default 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// Latency added by `delay`; longest hold of `reorder` (default 50ms); re-add delay of
    /// `resurrect` (default 1s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) delay: Option<Duration>,
}

fn default_probability() -> f64 {
    1.0
}

/// A validated fault. Deserializing validates, so a bad fault is an error that
/// names its position in the file or request body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "FaultSpec")]
pub struct Fault(FaultSpec);

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FaultVisitor)
    }
}

/// Validates inside the mapping, so the YAML error carries the fault's own line.
struct FaultVisitor;

impl<'de> Visitor<'de> for FaultVisitor {
    type Value = Fault;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a fault: a mapping with name, operations, effect and options")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Fault, A::Error> {
        let spec = FaultSpec::deserialize(MapAccessDeserializer::new(map))?;
        Fault::new(spec).map_err(de::Error::custom)
    }
}

impl Fault {
    /// Validate a spec.
    pub(crate) fn new(spec: FaultSpec) -> Result<Fault, String> {
        validate(&spec).map_err(|problem| format!("fault `{}`: {problem}", spec.name))?;
        Ok(Fault(spec))
    }

    /// The fault's fields.
    pub(crate) fn spec(&self) -> &FaultSpec {
        &self.0
    }
}

impl From<Fault> for FaultSpec {
    fn from(fault: Fault) -> FaultSpec {
        fault.0
    }
}

fn validate(spec: &FaultSpec) -> Result<(), String> {
    if spec.name.trim().is_empty() {
        return Err("`name` must not be empty".into());
    }
    if spec.name.len() > MAX_FAULT_NAME_BYTES {
        return Err(format!(
            "`name` must be at most {MAX_FAULT_NAME_BYTES} bytes, not {}",
            spec.name.len()
        ));
    }
    check_durations(spec)?;
    if spec.operations.is_empty() {
        return Err("`operations` must name at least one operation".into());
    }
    if !(0.0..=1.0).contains(&spec.probability) {
        return Err(format!(
            "`probability` must be between 0.0 and 1.0, not {}",
            spec.probability
        ));
    }
    if let Some(point) = spec
        .operations
        .iter()
        .find(|point| !spec.effect.applies_to(**point))
    {
        let why = UNOBSERVABLE
            .iter()
            .find(|(effect, refused, _)| *effect == spec.effect && refused == point)
            .map_or(String::new(), |(_, _, why)| {
                format!(": no probe could see it ({why})")
            });
        return Err(format!(
            "effect `{}` does not apply to operation `{}`{why}",
            spec.effect.as_str(),
            point.as_str()
        ));
    }
    match (spec.effect, spec.status) {
        (Effect::Error, Some(status)) if !(400..=599).contains(&status) => {
            return Err(format!("`status` must be 400 to 599, not {status}"));
        }
        (Effect::Error, _) | (_, None) => {}
        (effect, Some(_)) => {
            return Err(format!(
                "`status` is only for effect `error`, not `{}`",
                effect.as_str()
            ));
        }
    }
    match (spec.effect, spec.delay) {
        (Effect::Delay, None) => Err("effect `delay` needs a `delay`".into()),
        (Effect::Delay | Effect::Resurrect | Effect::Reorder, _) | (_, None) => Ok(()),
        (effect, Some(_)) => Err(format!(
            "`delay` is only for effects `delay`, `reorder` and `resurrect`, not `{}`",
            effect.as_str()
        )),
    }
}

/// Refuse a window or delay beyond [`crate::yaml::values::LONGEST_DURATION`], naming the field.
fn check_durations(spec: &FaultSpec) -> Result<(), String> {
    let durations = [
        ("after", spec.after),
        ("duration", spec.duration),
        ("delay", spec.delay),
    ];
    for (field, value) in durations {
        if let Some(value) = value {
            check_duration(value).map_err(|problem| format!("`{field}` {problem}"))?;
        }
    }
    Ok(())
}

/// Load a faults file: a YAML list of faults. Errors name the file, line and field.
pub fn load_faults(path: &Path) -> Result<Vec<Fault>, FileErrors> {
    yaml::load(path)
}

/// What the faults that fired at one fault point ask for, all together.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Effects {
    /// Answer this status instead of doing the operation.
    pub(crate) error: Option<u16>,
    /// Latency to add first.
    pub(crate) delay: Duration,
    /// Never answer.
    pub(crate) timeout: bool,
    /// Acknowledge, deliver nothing.
    pub(crate) drop: bool,
    /// Deliver twice.
    pub(crate) duplicate: bool,
    /// Hold back until the next delivery overtakes it, at most this long.
    pub(crate) reorder: Option<Duration>,
    /// Alter the body.
    pub(crate) corrupt: bool,
    /// Do not apply / serve an old view.
    pub(crate) stale: bool,
    /// Re-add the leaving user after this long.
    pub(crate) resurrect: Option<Duration>,
    /// Drop push connections.
    pub(crate) disconnect: bool,
}

impl Effects {
    fn add(&mut self, spec: &FaultSpec) {
        match spec.effect {
            Effect::Error => {
                self.error
                    .get_or_insert(spec.status.unwrap_or(DEFAULT_ERROR_STATUS));
            }
            Effect::Delay => self.delay = self.delay.saturating_add(spec.delay.unwrap_or_default()),
            Effect::Timeout => self.timeout = true,
            Effect::Drop => self.drop = true,
            Effect::Duplicate => self.duplicate = true,
            Effect::Reorder => {
                self.reorder
                    .get_or_insert(spec.delay.unwrap_or(DEFAULT_REORDER_HOLD));
            }
            Effect::Corrupt => self.corrupt = true,
            Effect::Stale => self.stale = true,
            Effect::Resurrect => {
                self.resurrect
                    .get_or_insert(spec.delay.unwrap_or(DEFAULT_RESURRECT_DELAY));
            }
            Effect::Disconnect => self.disconnect = true,
        }
    }
}

/// A fault installed at `epoch` (backend start or the `PUT`), so windows are relative to it.
#[derive(Debug)]
struct Installed {
    fault: Fault,
    epoch: Instant,
}

impl Installed {
    fn active_at(&self, now: Instant) -> bool {
        let spec = self.fault.spec();
        // Validation bounds both to a year; a window beyond what `Instant` holds never opens.
        let Some(start) = self.epoch.checked_add(spec.after.unwrap_or_default()) else {
            return false;
        };
        now >= start
            && spec
                .duration
                .is_none_or(|duration| start.checked_add(duration).is_none_or(|end| now < end))
    }

    fn matches(&self, point: FaultPoint, region: &str) -> bool {
        let spec = self.fault.spec();
        spec.operations.contains(&point)
            && (spec.regions.is_empty() || spec.regions.iter().any(|r| r == region))
    }
}

/// The active faults, their windows, and counts of how often each fired.
#[derive(Debug, Default)]
pub(super) struct FaultEngine {
    installed: RwLock<Arc<Vec<Installed>>>,
    fired: Mutex<BTreeMap<String, u64>>,
}

impl FaultEngine {
    /// An engine with `faults` installed at `epoch`.
    pub(super) fn new(faults: Vec<Fault>, epoch: Instant) -> FaultEngine {
        let engine = FaultEngine::default();
        engine.replace(faults, epoch);
        engine
    }

    /// Replace every fault; windows of the new ones start at `epoch`.
    pub(super) fn replace(&self, faults: Vec<Fault>, epoch: Instant) {
        for fault in &faults {
            tracing::info!(fault = %fault.spec().name, effect = fault.spec().effect.as_str(), "fault installed");
        }
        let installed = faults
            .into_iter()
            .map(|fault| Installed { fault, epoch })
            .collect();
        let installed: Arc<Vec<Installed>> = Arc::new(installed);
        self.forget_counts_beyond_cap(&installed);
        *self
            .installed
            .write()
            .unwrap_or_else(PoisonError::into_inner) = installed;
    }

    /// Keep at most [`FIRED_NAMES_KEPT`] names: past it, drop the counts of
    /// names `installed` does not hold.
    fn forget_counts_beyond_cap(&self, installed: &[Installed]) {
        let mut fired = self.fired.lock().unwrap_or_else(PoisonError::into_inner);
        if fired.len() >= FIRED_NAMES_KEPT {
            fired.retain(|name, _| {
                installed
                    .iter()
                    .any(|fault| fault.fault.spec().name == *name)
            });
        }
    }

    /// The installed faults, in order.
    pub(super) fn list(&self) -> Vec<Fault> {
        self.snapshot()
            .faults
            .iter()
            .map(|installed| installed.fault.clone())
            .collect()
    }

    /// How often each fault fired, by name, since start (see [`FIRED_NAMES_KEPT`]).
    pub(super) fn fired_counts(&self) -> BTreeMap<String, u64> {
        self.fired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The faults as they are now; cheap, for deciding many deliveries at once.
    pub(super) fn snapshot(&self) -> FaultSnapshot<'_> {
        let faults = self
            .installed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        FaultSnapshot {
            faults,
            engine: self,
        }
    }

    fn count(&self, name: &str) {
        let mut fired = self.fired.lock().unwrap_or_else(PoisonError::into_inner);
        match fired.get_mut(name) {
            Some(count) => *count = count.saturating_add(1),
            None => {
                fired.insert(name.to_string(), 1);
            }
        }
    }
}

/// The installed faults at one moment.
pub(super) struct FaultSnapshot<'a> {
    faults: Arc<Vec<Installed>>,
    engine: &'a FaultEngine,
}

impl FaultSnapshot<'_> {
    /// Whether any installed fault names `point` (regardless of window and region).
    pub(super) fn touches(&self, point: FaultPoint) -> bool {
        self.faults
            .iter()
            .any(|installed| installed.fault.spec().operations.contains(&point))
    }

    /// Decide which faults fire at `point` in `region` now.
    pub(super) fn fire(&self, point: FaultPoint, region: &str) -> Effects {
        self.fire_only(point, region, |_| true)
    }

    /// Like [`FaultSnapshot::fire`], considering only faults whose effect passes `wanted`.
    pub(super) fn fire_only(
        &self,
        point: FaultPoint,
        region: &str,
        wanted: impl Fn(Effect) -> bool,
    ) -> Effects {
        let mut effects = Effects::default();
        if self.faults.is_empty() {
            return effects;
        }
        let now = Instant::now();
        for installed in self.faults.iter() {
            let spec = installed.fault.spec();
            if !wanted(spec.effect)
                || !installed.matches(point, region)
                || !installed.active_at(now)
                || (spec.probability < 1.0 && rand::random::<f64>() >= spec.probability)
            {
                continue;
            }
            tracing::debug!(
                fault = %spec.name,
                operation = point.as_str(),
                region,
                effect = spec.effect.as_str(),
                "fault fired"
            );
            self.engine.count(&spec.name);
            effects.add(spec);
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::values::LONGEST_DURATION;

    fn spec(effect: Effect, operations: Vec<FaultPoint>) -> FaultSpec {
        FaultSpec {
            name: "f".into(),
            operations,
            regions: vec![],
            probability: 1.0,
            after: None,
            duration: None,
            effect,
            status: None,
            delay: None,
        }
    }

    #[test]
    fn resurrect_only_on_leave() {
        assert!(Fault::new(spec(Effect::Resurrect, vec![FaultPoint::Leave])).is_ok());
        let err = Fault::new(spec(Effect::Resurrect, vec![FaultPoint::Send])).unwrap_err();
        assert!(err.contains("does not apply to operation `send`"), "{err}");
    }

    #[test]
    fn applicability_has_one_row_per_effect_in_order() {
        let rows: Vec<Effect> = APPLICABILITY.iter().map(|(effect, _)| *effect).collect();
        assert_eq!(rows, Effect::ALL);
        let pairs: usize = Effect::ALL.iter().map(|effect| effect.points().len()).sum();
        assert_eq!(pairs, 67);
        assert!(
            UNOBSERVABLE
                .iter()
                .all(|(effect, point, _)| !effect.applies_to(*point))
        );
        assert!(!Effect::Duplicate.applies_to(FaultPoint::Login));
        assert!(Effect::Reorder.applies_to(FaultPoint::Sync));
        assert!(!Effect::Corrupt.applies_to(FaultPoint::Leave));
        assert!(Effect::Stale.applies_to(FaultPoint::AddMember));
    }

    #[test]
    fn durations_beyond_a_year_are_refused_naming_the_field() {
        let mut slow = spec(Effect::Delay, vec![FaultPoint::Send]);
        slow.delay = Some(Duration::from_secs(300_000_000_000 * 31_557_600 / 1000));
        let err = Fault::new(slow).unwrap_err();
        assert!(err.contains("`delay`") && err.contains("one year"), "{err}");
        let mut late = spec(Effect::Drop, vec![FaultPoint::Send]);
        late.after = Some(LONGEST_DURATION + Duration::from_secs(1));
        let err = Fault::new(late).unwrap_err();
        assert!(err.contains("`after`"), "{err}");
        let mut long = spec(Effect::Drop, vec![FaultPoint::Send]);
        long.duration = Some(LONGEST_DURATION);
        assert!(Fault::new(long).is_ok());
    }

    #[test]
    fn fired_counts_keep_a_bounded_number_of_names() {
        let engine = FaultEngine::default();
        for round in 0..FIRED_NAMES_KEPT + 10 {
            let mut named = spec(Effect::Drop, vec![FaultPoint::Send]);
            named.name = format!("fault-{round}");
            engine.replace(vec![Fault::new(named).unwrap()], Instant::now());
            engine.snapshot().fire(FaultPoint::Send, "default");
        }
        assert!(engine.fired_counts().len() <= FIRED_NAMES_KEPT);
        let last = format!("fault-{}", FIRED_NAMES_KEPT + 9);
        assert_eq!(engine.fired_counts().get(&last), Some(&1));
    }

    #[test]
    fn an_unobservable_pair_is_refused_saying_why() {
        let err = Fault::new(spec(Effect::Duplicate, vec![FaultPoint::Leave])).unwrap_err();
        assert!(
            err.contains("no probe could see it (the member-left event"),
            "{err}"
        );
    }

    #[test]
    fn delay_needs_a_delay() {
        let err = Fault::new(spec(Effect::Delay, vec![FaultPoint::Send])).unwrap_err();
        assert!(err.contains("needs a `delay`"), "{err}");
    }

    #[test]
    fn window_and_region_decide_firing() {
        let mut windowed = spec(Effect::Drop, vec![FaultPoint::Send]);
        windowed.regions = vec!["ap-south".into()];
        windowed.after = Some(Duration::from_secs(10));
        windowed.duration = Some(Duration::from_secs(5));
        let epoch = Instant::now();
        let installed = Installed {
            fault: Fault::new(windowed).unwrap(),
            epoch,
        };
        assert!(!installed.active_at(epoch + Duration::from_secs(9)));
        assert!(installed.active_at(epoch + Duration::from_secs(12)));
        assert!(!installed.active_at(epoch + Duration::from_secs(15)));
        assert!(installed.matches(FaultPoint::Send, "ap-south"));
        assert!(!installed.matches(FaultPoint::Send, "eu-west"));
        assert!(!installed.matches(FaultPoint::Leave, "ap-south"));
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn invalid_fault_in_a_file_names_its_line_and_index() {
        let text = "- name: ok\n  operations: [send]\n  effect: drop\n- name: bad\n  operations: [send]\n  effect: resurrect\n";
        let errors = yaml::parse::<Vec<Fault>>(Path::new("faults.yaml"), text).unwrap_err();
        let err = &errors.0[0];
        assert_eq!(err.line, Some(4), "{err}");
        assert_eq!(err.field.as_deref(), Some("[1]"));
        assert!(err.message.contains("fault `bad`"), "{err}");
    }

    #[test]
    fn faults_round_trip_with_humantime_durations() {
        let text = "- name: slow\n  operations: [deliver]\n  effect: delay\n  delay: 250ms\n  after: 1m30s\n";
        let faults = yaml::parse::<Vec<Fault>>(Path::new("faults.yaml"), text).unwrap();
        let json = serde_json::to_value(&faults).unwrap();
        assert_eq!(json[0]["delay"], "250ms");
        assert_eq!(json[0]["after"], "1m 30s");
        let back: Vec<Fault> = serde_json::from_value(json).unwrap();
        assert_eq!(back, faults);
    }
}
