//! The agent's open-files limit: every push-connected device holds a socket,
//! so an agent probing many targets needs many. At start the agent raises
//! its soft `RLIMIT_NOFILE` to the hard limit, and warns, naming the numbers,
//! when its targets need more sockets than that.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::config::AgentConfig;
use crate::probe;

/// Files the agent holds besides its devices' sockets: standard streams,
/// the endpoints' listener and connections, the runtime's own, HTTP
/// connections to each service (shared by its probes), name lookups.
pub(crate) const BASE_FILES: u64 = 64;

/// The open-files limit before and after [`raise_to_hard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileLimit {
    /// The soft limit the process started with (`None`: unlimited).
    pub(crate) started_with: Option<u64>,
    /// The soft limit now: what the process may open.
    pub(crate) soft: Option<u64>,
    /// The hard limit: the most the soft one may be raised to.
    pub(crate) hard: Option<u64>,
}

/// Raises the soft open-files limit to the hard one.
pub(crate) fn raise_to_hard() -> std::io::Result<FileLimit> {
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if limit.current != limit.maximum {
        setrlimit(Resource::Nofile, raised)?;
    }
    Ok(FileLimit {
        started_with: limit.current,
        soft: limit.maximum,
        hard: limit.maximum,
    })
}

/// Open files the targets and probes of `config` need at most: for each
/// probe × target, each account's devices (each holds a push socket), the
/// one device renewed per run and the probe's HTTP connection (a probe makes
/// one request at a time; a target's probes share its idle connections),
/// plus [`BASE_FILES`].
pub(crate) fn files_needed(config: &AgentConfig) -> u64 {
    let per_target: u64 = config
        .probes
        .iter()
        .map(|loaded| {
            let spec = &loaded.spec;
            (probe::accounts_needed(spec) * spec.devices_per_account + 2) as u64
        })
        .sum();
    let targets = config.targets.placed().count() as u64;
    BASE_FILES + targets * per_target
}

/// The warning when `needed` open files exceed the soft limit of `limit`.
pub(crate) fn shortage(limit: &FileLimit, needed: u64) -> Option<String> {
    let soft = limit.soft?;
    (needed > soft).then(|| {
        format!(
            "the configured targets need about {needed} open files (a socket per probe device and HTTP connection, \
             targets × devices, plus {BASE_FILES}) but the open-files limit is {soft} \
             (hard limit {}): probes will fail to connect; raise the hard limit \
             (systemd `LimitNOFILE=`, `ulimit -Hn`, the container runtime's `nofile`)",
            limit
                .hard
                .map_or("unlimited".to_string(), |hard| hard.to_string())
        )
    })
}

/// Raises the limit and logs it; `None` (logged) when it cannot be read or raised.
pub(crate) fn raise_and_log() -> Option<FileLimit> {
    match raise_to_hard() {
        Ok(limit) => {
            let shown =
                |value: Option<u64>| value.map_or("unlimited".to_string(), |v| v.to_string());
            tracing::info!(
                soft_before = %shown(limit.started_with),
                soft = %shown(limit.soft),
                hard = %shown(limit.hard),
                "open-files limit raised to the hard limit"
            );
            Some(limit)
        }
        Err(err) => {
            tracing::warn!("cannot raise the open-files limit to the hard limit: {err}");
            None
        }
    }
}

/// Warns when the targets and probes of `config` need more open files than `limit` allows.
pub(crate) fn warn_if_short(limit: Option<&FileLimit>, config: &AgentConfig) {
    let needed = files_needed(config);
    if let Some(warning) = limit.and_then(|limit| shortage(limit, needed)) {
        tracing::warn!(needed, "{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_to_hard().unwrap();
        assert_eq!(limit.soft, limit.hard);
        assert_eq!(getrlimit(Resource::Nofile).current, limit.hard);
    }

    #[test]
    fn a_shortage_names_both_numbers() {
        let limit = FileLimit {
            started_with: Some(1024),
            soft: Some(4096),
            hard: Some(4096),
        };
        assert_eq!(shortage(&limit, 4096), None);
        let warning = shortage(&limit, 5064).unwrap();
        assert!(warning.contains("need about 5064 open files"), "{warning}");
        assert!(
            warning.contains("limit is 4096 (hard limit 4096)"),
            "{warning}"
        );
        let unlimited = FileLimit {
            soft: None,
            ..limit
        };
        assert_eq!(shortage(&unlimited, u64::MAX), None);
    }
}
