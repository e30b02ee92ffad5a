//! Backend configuration (`config/backend.yaml`): every field, its default, its validation.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::faults::Fault;
use crate::yaml::{self, FileError};

/// Configuration of the mock backend. Unknown keys are errors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer token required by `/admin/*`; none means the admin API is open.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Largest accepted request body; larger ones are answered 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Whether the first login of an unknown user creates it.
    #[serde(default = "default_registration")]
    pub registration: bool,
    /// Events kept per device for catch-up sync; older ones are forgotten.
    #[serde(default = "default_event_log_limit")]
    pub event_log_limit: usize,
    /// Devices kept per user; a login beyond it logs the user's oldest device out.
    #[serde(default = "default_max_devices_per_user")]
    pub max_devices_per_user: usize,
    /// Faults active from start (windows relative to start).
    #[serde(default)]
    pub faults: Vec<Fault>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}

fn default_registration() -> bool {
    true
}

fn default_event_log_limit() -> usize {
    10_000
}

fn default_max_devices_per_user() -> usize {
    100
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            listen: default_listen(),
            admin_token: None,
            max_body_bytes: default_max_body_bytes(),
            registration: default_registration(),
            event_log_limit: default_event_log_limit(),
            max_devices_per_user: default_max_devices_per_user(),
            faults: Vec::new(),
        }
    }
}

impl BackendConfig {
    /// A config listening on `127.0.0.1:0` with every other field at its default.
    pub fn ephemeral() -> Self {
        BackendConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..BackendConfig::default()
        }
    }

    /// Load and validate a config file; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let config: BackendConfig = yaml::load(path)?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), FileError> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes),
            ("event_log_limit", self.event_log_limit),
            ("max_devices_per_user", self.max_devices_per_user),
        ];
        match positive.into_iter().find(|(_, value)| *value == 0) {
            Some((field, _)) => Err(FileError::new(
                path,
                Some(field.into()),
                "must be greater than 0",
            )),
            None => Ok(()),
        }
    }
}
