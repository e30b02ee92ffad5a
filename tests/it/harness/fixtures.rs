//! Files the tests read: fixtures under `tests/data/` (some templated with
//! `{KEY}` placeholders), the repository's shipped files, and the agent
//! config and probe files written from those fixtures.

use std::path::{Path, PathBuf};

use super::dir::TempDir;

/// `PATH` in the repository (e.g. `config/agent.yaml`, `dashboards/rules.yml`).
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The path of the fixture `tests/data/NAME`.
pub fn fixture_path(name: &str) -> PathBuf {
    repo_file("tests/data").join(name)
}

/// The text of the fixture `tests/data/NAME`.
pub fn fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// The errors a bad fixture at `path` must produce: each line with a
/// `# error: TEXT` comment, as its 1-based number and `TEXT`.
pub fn expected_errors(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let (_, expected) = line.split_once("# error: ")?;
            Some((index + 1, expected.trim().to_string()))
        })
        .collect()
}

/// The fixture `tests/data/NAME` with each `{KEY}` replaced by its value;
/// every key must occur in it.
pub fn filled_fixture(name: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(fixture(name), |text, (key, value)| {
        let placeholder = format!("{{{key}}}");
        assert!(text.contains(&placeholder), "{name} has no {placeholder}");
        text.replace(&placeholder, value)
    })
}

/// A test probe file of `kind` named after it (`tests/data/probe.yaml`):
/// short timeouts, small groups, two devices an account for `device_sync`.
pub fn probe_file(kind: &str) -> String {
    let devices = if kind == "device_sync" { "2" } else { "1" };
    filled_fixture("probe.yaml", &[("kind", kind), ("devices", devices)])
}

/// An agent config written for a test: its text and where it is.
pub struct AgentConfig {
    /// The YAML as first written.
    pub text: String,
    /// `agent-REGION.yaml` in the test's directory.
    pub path: PathBuf,
}

impl AgentConfig {
    /// Writes into `dir` a test probe file of each of `kinds` (in `probes/`)
    /// and an agent config (`tests/data/agent.yaml`) for `region` probing the
    /// mock backend at `backend_url` with them every `interval` (e.g. `1s`),
    /// endpoints on an ephemeral port.
    pub fn write(
        dir: &TempDir,
        region: &str,
        backend_url: &str,
        interval: &str,
        kinds: &[&str],
    ) -> AgentConfig {
        for kind in kinds {
            dir.write(&format!("probes/{kind}.yaml"), &probe_file(kind));
        }
        let probes = dir.join("probes");
        let text = filled_fixture(
            "agent.yaml",
            &[
                ("region", region),
                ("url", backend_url),
                ("probes", &probes.display().to_string()),
                ("interval", interval),
            ],
        );
        let path = dir.write(&format!("agent-{region}.yaml"), &text);
        AgentConfig { text, path }
    }

    /// Replaces the config file's content with `text` (for a reload).
    pub fn rewrite(&self, text: &str) {
        std::fs::write(&self.path, text)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", self.path.display()));
    }
}
