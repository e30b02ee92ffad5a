//! A probe definition (one YAML file in `probes/`): its kind, timing and size,
//! with every default and every validation rule in one place.

use std::time::Duration;

use serde::Deserialize;

use super::ProbeKind;
use crate::yaml::values::check_duration;

/// The offending field of a probe definition and what is wrong with it.
pub type SpecError = (&'static str, String);

/// One probe definition, as read from a probe file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// The probe's name: its `probe` label.
    pub name: String,
    /// What it checks.
    pub kind: ProbeKind,
    /// Time between the starts of two runs.
    #[serde(with = "humantime_serde", default = "defaults::interval")]
    pub interval: Duration,
    /// Longest wait for any single request.
    #[serde(with = "humantime_serde", default = "defaults::step_timeout")]
    pub step_timeout: Duration,
    /// Longest wait for a message or change to reach every device.
    #[serde(with = "humantime_serde", default = "defaults::delivery_deadline")]
    pub delivery_deadline: Duration,
    /// Deliveries slower than this (but within the deadline) are `late_delivery`.
    #[serde(with = "humantime_serde", default = "defaults::latency_objective")]
    pub latency_objective: Duration,
    /// Members of the run's group, the sender included.
    #[serde(default = "defaults::group_size")]
    pub group_size: usize,
    /// Devices logged in per account.
    #[serde(default = "defaults::devices_per_account")]
    pub devices_per_account: usize,
    /// Messages sent per run.
    #[serde(default = "defaults::messages")]
    pub messages: usize,
}

/// Defaults of every optional probe field.
mod defaults {
    use std::time::Duration;

    pub(super) fn interval() -> Duration {
        Duration::from_secs(30)
    }
    pub(super) fn step_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub(super) fn delivery_deadline() -> Duration {
        Duration::from_secs(10)
    }
    pub(super) fn latency_objective() -> Duration {
        Duration::from_secs(2)
    }
    pub(super) fn group_size() -> usize {
        4
    }
    pub(super) fn devices_per_account() -> usize {
        1
    }
    pub(super) fn messages() -> usize {
        3
    }
}

impl ProbeSpec {
    /// Check the values together, by the rules every kind shares and then by
    /// the kind's own; the error names the offending field.
    pub fn validate(&self) -> Result<(), SpecError> {
        let fail = |field, message: &str| Err((field, message.to_string()));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return fail("name", "must be non-empty letters, digits, `_` or `-`");
        }
        let durations = [
            ("interval", self.interval),
            ("step_timeout", self.step_timeout),
            ("delivery_deadline", self.delivery_deadline),
            ("latency_objective", self.latency_objective),
        ];
        for (field, value) in durations {
            check_duration(value).map_err(|problem| (field, problem))?;
        }
        if self.interval < Duration::from_millis(100) {
            return fail("interval", "must be at least 100ms");
        }
        if self.step_timeout.is_zero() {
            return fail("step_timeout", "must be more than zero");
        }
        if self.latency_objective > self.delivery_deadline {
            return fail(
                "latency_objective",
                "must not exceed delivery_deadline (late deliveries would count as lost)",
            );
        }
        if !(2..=50).contains(&self.group_size) {
            return fail("group_size", "must be between 2 and 50");
        }
        if !(1..=10).contains(&self.devices_per_account) {
            return fail("devices_per_account", "must be between 1 and 10");
        }
        if !(1..=100).contains(&self.messages) {
            return fail("messages", "must be between 1 and 100");
        }
        self.kind.validate(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_fill_a_minimal_spec() {
        let spec: ProbeSpec =
            crate::yaml::parse(Path::new("p.yaml"), "name: gm\nkind: group_message\n").unwrap();
        assert_eq!(spec.interval, Duration::from_secs(30));
        assert_eq!(spec.group_size, 4);
        assert_eq!(spec.messages, 3);
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn humantime_durations_parse() {
        let text = "name: gm\nkind: device_sync\ninterval: 1m30s\nstep_timeout: 250ms\ndevices_per_account: 2\n";
        let spec: ProbeSpec = crate::yaml::parse(Path::new("p.yaml"), text).unwrap();
        assert_eq!(spec.interval, Duration::from_secs(90));
        assert_eq!(spec.step_timeout, Duration::from_millis(250));
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn validation_names_the_field() {
        let text = "name: ds\nkind: device_sync\n";
        let spec: ProbeSpec = crate::yaml::parse(Path::new("p.yaml"), text).unwrap();
        assert_eq!(spec.validate().unwrap_err().0, "devices_per_account");
    }

    #[test]
    fn durations_beyond_a_year_are_refused() {
        let text = "name: gm\nkind: group_message\ndelivery_deadline: 400days\n";
        let spec: ProbeSpec = crate::yaml::parse(Path::new("p.yaml"), text).unwrap();
        let (field, message) = spec.validate().unwrap_err();
        assert_eq!(field, "delivery_deadline");
        assert!(message.contains("longer than one year"), "{message}");
    }
}
