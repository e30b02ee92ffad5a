//! Backend configuration (`config/backend.yaml`): every field, its default, its validation.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::faults::Fault;
use crate::yaml::{self, FileError, FileErrors};

/// Configuration of the mock backend. Unknown keys are errors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer token required by `/admin/*`; none means the admin API is open, which
    /// is allowed only when `listen` is a loopback address.
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
    /// Users kept; a login of an unknown user beyond it is answered 403.
    #[serde(default = "default_max_users")]
    pub max_users: usize,
    /// Groups one user may be in at once; creating or adding beyond it is answered 403.
    #[serde(default = "default_max_groups_per_user")]
    pub max_groups_per_user: usize,
    /// Groups others put one user in that it has not joined (`POST
    /// /groups/{id}/join`) yet; creating or adding beyond it is answered 403.
    #[serde(default = "default_max_unaccepted_groups_per_user")]
    pub max_unaccepted_groups_per_user: usize,
    /// Open push connections per device; a connect beyond it is answered 429.
    #[serde(default = "default_max_sockets_per_device")]
    pub max_sockets_per_device: usize,
    /// Jobs waiting on the timer (`delay` and `reorder` on `deliver`,
    /// `resurrect` re-adds); beyond it a delayed push is not made (sync still
    /// has the event), a reordered one is pushed at once, a re-add does not
    /// happen.
    #[serde(default = "default_max_delayed_deliveries")]
    pub max_delayed_deliveries: usize,
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

fn default_max_users() -> usize {
    100_000
}

fn default_max_groups_per_user() -> usize {
    1_000
}

fn default_max_unaccepted_groups_per_user() -> usize {
    100
}

fn default_max_sockets_per_device() -> usize {
    8
}

fn default_max_delayed_deliveries() -> usize {
    100_000
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
            max_users: default_max_users(),
            max_groups_per_user: default_max_groups_per_user(),
            max_unaccepted_groups_per_user: default_max_unaccepted_groups_per_user(),
            max_sockets_per_device: default_max_sockets_per_device(),
            max_delayed_deliveries: default_max_delayed_deliveries(),
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
    pub fn load(path: &Path) -> Result<Self, FileErrors> {
        let config: BackendConfig = yaml::load(path)?;
        config
            .validate()
            .map_err(|(field, message)| FileError::new(path, Some(field.into()), message))?;
        Ok(config)
    }

    /// Check the values together; the error names the offending field. The
    /// backend refuses to start with a config that fails this.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes),
            ("event_log_limit", self.event_log_limit),
            ("max_devices_per_user", self.max_devices_per_user),
            ("max_users", self.max_users),
            ("max_groups_per_user", self.max_groups_per_user),
            (
                "max_unaccepted_groups_per_user",
                self.max_unaccepted_groups_per_user,
            ),
            ("max_sockets_per_device", self.max_sockets_per_device),
            ("max_delayed_deliveries", self.max_delayed_deliveries),
        ];
        if let Some((field, _)) = positive.into_iter().find(|(_, value)| *value == 0) {
            return Err((field, "must be greater than 0".into()));
        }
        match self.admin_token.as_deref().map(str::trim) {
            Some("") => Err(("admin_token", "must not be empty".into())),
            None if !self.listen.ip().is_loopback() => Err((
                "admin_token",
                format!(
                    "is required when `listen` ({}) is not a loopback address: \
                     without it anyone who reaches the port can install faults",
                    self.listen
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening_on(addr: &str, admin_token: Option<&str>) -> BackendConfig {
        BackendConfig {
            listen: addr.parse().expect("literal address"),
            admin_token: admin_token.map(str::to_string),
            ..BackendConfig::default()
        }
    }

    #[test]
    fn the_admin_api_is_open_only_on_loopback() {
        assert!(listening_on("127.0.0.1:0", None).validate().is_ok());
        assert!(listening_on("[::1]:0", None).validate().is_ok());
        let (field, message) = listening_on("0.0.0.0:8080", None).validate().unwrap_err();
        assert_eq!(field, "admin_token");
        assert!(message.contains("not a loopback address"), "{message}");
        assert!(
            listening_on("0.0.0.0:8080", Some("s3cret"))
                .validate()
                .is_ok()
        );
        let (field, _) = listening_on("127.0.0.1:0", Some(" "))
            .validate()
            .unwrap_err();
        assert_eq!(field, "admin_token");
    }

    #[tokio::test]
    async fn start_refuses_an_open_admin_api_off_loopback() {
        let error = crate::backend::start(listening_on("0.0.0.0:0", None))
            .await
            .err()
            .expect("refused");
        assert!(error.to_string().contains("field `admin_token`"), "{error}");
    }
}
