//! The `reports:` section of the status page's config: who may be trusted
//! for the client's address and region, the crowd signal's window and floor,
//! retention, the limits, the secret, and the problems users can report,
//! each with the features (probes) it concerns. Every key has a default;
//! each value is checked where it is read (so an error names its line and
//! field), and what spans fields is checked once the section is read.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::yaml::values::{Label, Period, ScalarVisitor, checked_scalar};

/// The feature a problem names to concern every feature.
pub(crate) const ALL_FEATURES: &str = "all";

/// The `reports:` section, checked ([`ReportsSection::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportsConfig {
    /// Peers whose `X-Forwarded-For` (and region header) are believed.
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// A header a trusted proxy sets to the client's region (lower case).
    pub(crate) region_header: Option<String>,
    /// How long one reporter's report of one problem counts once, and the
    /// span the crowd signal counts distinct reporters over.
    pub(crate) window: Duration,
    /// Fewer distinct reporters than this never raise the level.
    pub(crate) min_reporters: u32,
    /// How long raw reports are kept (hourly counts: [`HOURLY_RETENTION`]).
    pub(crate) retention: Duration,
    /// What users can report.
    pub(crate) problems: Vec<Problem>,
    /// Rate limits and caps.
    pub(crate) limits: Limits,
    /// Where the configured secret comes from; `None`: the store keeps one.
    pub(crate) secret: Option<SecretSource>,
}

/// How long hourly counts are kept: a year and a month of trend and baseline.
pub(crate) const HOURLY_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);

/// A problem users can report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Problem {
    /// Its id in forms, the API and the `problem` label.
    pub(crate) id: ProblemId,
    /// What a user reads.
    pub(crate) name: Name,
    /// The probes (features) it concerns, or `all`.
    pub(crate) features: Vec<Label>,
}

/// A problem id: a lower-case letter, then lower-case letters, digits or
/// `_`, at most 64 (safe in a URL, a label and HTML as they are).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ProblemId(pub(crate) String);

impl TryFrom<String> for ProblemId {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let mut characters = value.chars();
        let first_ok = characters.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = characters.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !first_ok || !rest_ok || value.len() > 64 {
            return Err(format!(
                "`{value}` must be a lower-case letter, then up to 63 lower-case letters, digits or `_`"
            ));
        }
        Ok(ProblemId(value))
    }
}

/// A problem's name: 1 to 120 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name(pub(crate) String);

impl TryFrom<String> for Name {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let length = value.chars().count();
        if value.trim().is_empty() || length > 120 || value.chars().any(char::is_control) {
            return Err("a name is 1 to 120 characters without control characters".into());
        }
        Ok(Name(value))
    }
}

/// A trusted proxy: a CIDR (`10.0.0.0/8`) or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr(pub(crate) IpNet);

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        if let Ok(address) = value.parse::<IpAddr>() {
            return Ok(Cidr(IpNet::from(address)));
        }
        value
            .parse::<IpNet>()
            .map(Cidr)
            .map_err(|_| format!("`{value}` is neither a CIDR (`10.0.0.0/8`) nor an address"))
    }
}

/// A header name (the region header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderName(pub(crate) String);

impl TryFrom<String> for HeaderName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        axum::http::HeaderName::try_from(value.as_str())
            .map(|name| HeaderName(name.as_str().to_string()))
            .map_err(|_| format!("`{value}` is not a header name"))
    }
}

checked_scalar!(ProblemId, Name, Cidr, HeaderName);

/// Rate limits and caps (`reports.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    /// Reports one reporter may send per minute (a burst of as many); beyond: 429.
    pub(crate) per_reporter_per_minute: u32,
    /// Reports the page takes per second from everyone together; beyond: 429.
    pub(crate) per_second: u32,
    /// Reports stored per hour; beyond: not stored, counted as `sampled`.
    pub(crate) stored_per_hour: u32,
    /// The largest request body taken; beyond: 413.
    pub(crate) max_body_bytes: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_reporter_per_minute: 10,
            per_second: 10_000,
            stored_per_hour: 100_000,
            max_body_bytes: 4096,
        }
    }
}

/// Where a configured secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecretSource {
    /// A file holding it.
    File(PathBuf),
    /// An environment variable holding it.
    Env(String),
}

/// The section as written: each value checked as it is read; the checks
/// that span fields are [`ReportsSection::check`]'s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ReportsSection {
    trusted_proxies: Vec<Cidr>,
    region_header: Option<HeaderName>,
    window: Period,
    min_reporters: u32,
    retention: Period,
    problems: Vec<Problem>,
    limits: Limits,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
}

impl Default for ReportsSection {
    fn default() -> ReportsSection {
        ReportsSection {
            trusted_proxies: Vec::new(),
            region_header: None,
            window: Period(Duration::from_secs(15 * 60)),
            min_reporters: 10,
            retention: Period(Duration::from_secs(90 * 24 * 3600)),
            problems: default_problems(),
            limits: Limits::default(),
            secret_file: None,
            secret_env: None,
        }
    }
}

/// The shipped problems: what users reported in the December outage.
fn default_problems() -> Vec<Problem> {
    let problem = |id: &str, name: &str, features: &[&str]| Problem {
        id: ProblemId(id.to_string()),
        name: Name(name.to_string()),
        features: features.iter().map(|f| Label(f.to_string())).collect(),
    };
    let messages = ["group_message", "device_sync"];
    vec![
        problem("not_sending", "Messages are not sending", &messages),
        problem("not_received", "Messages sent but not received", &messages),
        problem(
            "out_of_sync",
            "My devices are out of sync",
            &["device_sync"],
        ),
        problem("cannot_leave", "I cannot leave a group", &["leave_group"]),
        problem(
            "groups_reappear",
            "Groups I left came back",
            &["leave_group"],
        ),
        problem(
            "settings_fail",
            "I cannot change group settings",
            &["edit_settings"],
        ),
        problem(
            "cannot_add",
            "I cannot add people to a group",
            &["add_member"],
        ),
        problem("cannot_login", "I cannot log in", &[ALL_FEATURES]),
    ]
}

/// A failed check: the field (within the section) and what is wrong.
pub(crate) type FieldProblem = (String, String);

impl ReportsSection {
    /// The checked settings, or every failed check that spans fields.
    pub(crate) fn check(self) -> Result<ReportsConfig, Vec<FieldProblem>> {
        let mut problems = cross_checks(&self);
        let secret = match (self.secret_file, self.secret_env) {
            (Some(_), Some(_)) => {
                problems.push((
                    "secret_env".into(),
                    "set `secret_file` or `secret_env`, not both".into(),
                ));
                None
            }
            (Some(file), None) => Some(SecretSource::File(file)),
            (None, Some(variable)) => Some(SecretSource::Env(variable)),
            (None, None) => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ReportsConfig {
            trusted_proxies: self.trusted_proxies.iter().map(|cidr| cidr.0).collect(),
            region_header: self.region_header.map(|header| header.0),
            window: self.window.0,
            min_reporters: self.min_reporters,
            retention: self.retention.0,
            problems: self.problems,
            limits: self.limits,
            secret,
        })
    }
}

/// The checks that span fields, every failure.
fn cross_checks(section: &ReportsSection) -> Vec<FieldProblem> {
    let mut errors: Vec<FieldProblem> = Vec::new();
    let mut fail =
        |field: &str, message: &str| errors.push((field.to_string(), message.to_string()));
    let window = section.window.0;
    if !(Duration::from_secs(60)..=Duration::from_secs(3600)).contains(&window) {
        fail("window", "must be between 1m and 1h");
    }
    if section.retention.0 < Duration::from_secs(24 * 3600) {
        fail("retention", "must be at least 1d");
    }
    if section.min_reporters == 0 {
        fail("min_reporters", "must be at least 1");
    }
    if section.region_header.is_some() && section.trusted_proxies.is_empty() {
        fail(
            "region_header",
            "is only believed from `trusted_proxies`: name them",
        );
    }
    let limits = section.limits;
    for (name, value) in [
        (
            "limits.per_reporter_per_minute",
            limits.per_reporter_per_minute,
        ),
        ("limits.per_second", limits.per_second),
        ("limits.stored_per_hour", limits.stored_per_hour),
    ] {
        if value == 0 {
            fail(name, "must be at least 1");
        }
    }
    if !(256..=1_048_576).contains(&limits.max_body_bytes) {
        fail("limits.max_body_bytes", "must be between 256 and 1048576");
    }
    if section.problems.is_empty() {
        fail("problems", "must name at least one problem");
    }
    for (index, problem) in section.problems.iter().enumerate() {
        if section.problems[..index].iter().any(|p| p.id == problem.id) {
            fail(
                &format!("problems[{index}].id"),
                &format!("`{}` is a duplicate", problem.id.0),
            );
        }
        if problem.features.is_empty() {
            fail(
                &format!("problems[{index}].features"),
                "must name a probe or `all`",
            );
        }
    }
    errors
}

impl Default for ReportsConfig {
    fn default() -> ReportsConfig {
        // The defaults pass every check (a unit test holds them to it).
        ReportsSection::default()
            .check()
            .unwrap_or_else(|problems| {
                unreachable!("the default reports section is invalid: {problems:?}")
            })
    }
}

impl ReportsConfig {
    /// The problem with id `id`.
    pub(crate) fn problem(&self, id: &str) -> Option<&Problem> {
        self.problems.iter().find(|problem| problem.id.0 == id)
    }

    /// Whether `address` is one of the trusted proxies.
    pub(crate) fn is_trusted(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`) as IPv4, so IPv4
/// CIDRs match it on a dual-stack socket.
pub(crate) fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The section in `text`, read and checked.
    fn parse(text: &str) -> Result<ReportsConfig, String> {
        let section: ReportsSection = crate::yaml::parse(Path::new("reports.yaml"), text)
            .map_err(|errors| errors.to_string())?;
        section.check().map_err(|problems| format!("{problems:?}"))
    }

    /// The first error of reading `text`.
    fn read_error(text: &str) -> crate::yaml::FileError {
        let read = crate::yaml::parse::<ReportsSection>(Path::new("reports.yaml"), text);
        let errors = read.err().map(|errors| errors.0).unwrap_or_default();
        errors
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no error reading {text}"))
    }

    #[test]
    fn the_defaults_are_the_designs() {
        let config = ReportsConfig::default();
        assert_eq!(parse("{}").ok().as_ref(), Some(&config));
        assert_eq!(config.window, Duration::from_secs(900));
        assert_eq!(config.min_reporters, 10);
        assert_eq!(config.retention, Duration::from_secs(90 * 86400));
        let features = |id: &str| -> Vec<String> {
            let problem = config.problem(id).expect("a default problem");
            problem.features.iter().map(|f| f.0.clone()).collect()
        };
        assert_eq!(features("not_sending"), ["group_message", "device_sync"]);
        assert_eq!(features("not_received"), ["group_message", "device_sync"]);
        assert_eq!(features("out_of_sync"), ["device_sync"]);
        assert_eq!(features("cannot_leave"), ["leave_group"]);
        assert_eq!(features("groups_reappear"), ["leave_group"]);
        assert_eq!(features("settings_fail"), ["edit_settings"]);
        assert_eq!(features("cannot_add"), ["add_member"]);
        assert_eq!(features("cannot_login"), ["all"]);
        assert_eq!(config.problems.len(), 8);
    }

    #[test]
    fn a_section_reads_its_values_and_trusts_mapped_ipv4() {
        let text = "trusted_proxies: [10.0.0.0/8, 192.0.2.7]\nregion_header: X-Region\n\
                    window: 5m\nmin_reporters: 3\nretention: 30d\n\
                    problems:\n  - {id: slow, name: It is slow, features: [group_message]}\n";
        let config = parse(text).expect("a valid section");
        assert_eq!(config.region_header.as_deref(), Some("x-region"));
        assert_eq!(config.window, Duration::from_secs(300));
        assert!(config.is_trusted("10.1.2.3".parse().expect("an address")));
        assert!(config.is_trusted("::ffff:192.0.2.7".parse().expect("an address")));
        assert!(!config.is_trusted("192.0.2.8".parse().expect("an address")));
        assert_eq!(config.problems.len(), 1);
    }

    #[test]
    fn bad_values_name_their_field_and_line() {
        for (text, field, line, words) in [
            ("window: soon\n", "window", 1, "soon"),
            (
                "trusted_proxies: [10.0.0.0/33]\n",
                "trusted_proxies[0]",
                1,
                "CIDR",
            ),
            (
                "problems:\n  - {id: Bad-Id, name: x, features: [all]}\n",
                "problems[0].id",
                2,
                "lower-case",
            ),
            (
                "problems:\n  - {id: a, name: x, features: [all], colour: red}\n",
                "problems[0].colour",
                2,
                "colour",
            ),
            ("region_header: \"a b\"\n", "region_header", 1, "header"),
        ] {
            let error = read_error(text);
            assert_eq!(error.field.as_deref(), Some(field), "{text}: {error}");
            assert_eq!(error.line, Some(line), "{text}: {error}");
            assert!(error.message.contains(words), "{text}: {error}");
        }
    }

    #[test]
    fn checks_across_fields_come_all_at_once() {
        let text = "region_header: x-region\nwindow: 2h\nmin_reporters: 0\n\
                    problems:\n  - {id: a, name: A, features: []}\n  - {id: a, name: B, features: [all]}\n";
        let section: ReportsSection =
            crate::yaml::parse(Path::new("reports.yaml"), text).expect("every value reads");
        let problems = section.check().expect_err("the checks fail");
        let fields: Vec<&str> = problems.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "window",
                "min_reporters",
                "region_header",
                "problems[0].features",
                "problems[1].id"
            ]
        );
        assert!(problems[4].1.contains("duplicate"), "{problems:?}");
    }

    #[test]
    fn the_configuration_doc_lists_the_shipped_problems() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let doc = std::fs::read_to_string(path).expect("docs/configuration.md is readable");
        let rows: Vec<(String, String, String)> = doc
            .lines()
            .skip_while(|line| !line.starts_with("| id | name | features |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
                let features = cells[2]
                    .split(", ")
                    .map(|f| f.trim_matches('`'))
                    .collect::<Vec<_>>();
                (
                    cells[0].trim_matches('`').to_string(),
                    cells[1].to_string(),
                    features.join(","),
                )
            })
            .collect();
        let shipped: Vec<(String, String, String)> = ReportsConfig::default()
            .problems
            .iter()
            .map(|problem| {
                let features: Vec<&str> = problem.features.iter().map(|f| f.0.as_str()).collect();
                (
                    problem.id.0.clone(),
                    problem.name.0.clone(),
                    features.join(","),
                )
            })
            .collect();
        assert_eq!(rows, shipped);
    }
}
