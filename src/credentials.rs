//! Credentials for outgoing HTTP requests, read from an environment
//! variable or a file: a bearer token or `USER:PASSWORD` for basic
//! authentication. Read again before every request, so a rotated file (a
//! Kubernetes Secret) is picked up. Remote write's receivers and the fleet
//! status page's Prometheus both authenticate this way.

use std::path::PathBuf;

/// Where a credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Secret {
    /// A file holding it (a trailing newline is ignored).
    File(PathBuf),
    /// An environment variable holding it.
    Env(String),
}

/// How requests authenticate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer TOKEN`.
    Bearer(Secret),
    /// HTTP basic authentication; the secret holds `USER:PASSWORD`.
    Basic(Secret),
}

/// Why a credential could not be read now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CredentialError {
    /// Its file could not be read.
    #[error("cannot read {from}: {reason}")]
    Unreadable {
        /// Where it comes from ([`Secret::source`]).
        from: String,
        /// The I/O error.
        reason: String,
    },
    /// Its environment variable is not set (or not Unicode).
    #[error("{from} is not set")]
    Unset {
        /// Where it comes from.
        from: String,
    },
    /// It is empty.
    #[error("{from} is empty")]
    Empty {
        /// Where it comes from.
        from: String,
    },
}

impl Secret {
    /// The credential now, a trailing newline dropped; an error naming its
    /// source when it cannot be read or is empty.
    pub(crate) fn read(&self) -> Result<String, CredentialError> {
        let from = self.source();
        let text = match self {
            Secret::File(path) => {
                std::fs::read_to_string(path).map_err(|err| CredentialError::Unreadable {
                    from: from.clone(),
                    reason: err.to_string(),
                })?
            }
            Secret::Env(name) => {
                std::env::var(name).map_err(|_| CredentialError::Unset { from: from.clone() })?
            }
        };
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            return Err(CredentialError::Empty { from });
        }
        Ok(text.to_string())
    }

    /// Where it comes from, for messages (`file /run/token`, `environment variable `TOKEN``).
    pub(crate) fn source(&self) -> String {
        match self {
            Secret::File(path) => format!("file {}", path.display()),
            Secret::Env(name) => format!("environment variable `{name}`"),
        }
    }
}

impl Auth {
    /// `request` with this credential read now and set (`Authorization`);
    /// a basic-auth secret without a `:` is a user with an empty password.
    pub(crate) fn apply(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, CredentialError> {
        Ok(match self {
            Auth::None => request,
            Auth::Bearer(secret) => request.bearer_auth(secret.read()?),
            Auth::Basic(secret) => {
                let pair = secret.read()?;
                let (user, password) = pair.split_once(':').unwrap_or((&pair, ""));
                request.basic_auth(user, Some(password))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(auth: &Auth) -> Result<Option<String>, CredentialError> {
        crate::client::init_tls();
        let client = reqwest::Client::new();
        let request = auth.apply(client.get("http://127.0.0.1:9/"))?;
        let built = request.build().expect("a request to a valid URL builds");
        let header = built.headers().get(reqwest::header::AUTHORIZATION);
        Ok(header
            .and_then(|value| value.to_str().ok())
            .map(str::to_string))
    }

    #[test]
    fn a_file_is_read_each_time_and_sets_the_header() {
        let dir =
            std::env::temp_dir().join(format!("chatprobe-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "t0ken\n").unwrap();
        let bearer = Auth::Bearer(Secret::File(path.clone()));
        assert_eq!(header_of(&bearer), Ok(Some("Bearer t0ken".to_string())));
        std::fs::write(&path, "rotated").unwrap();
        assert_eq!(header_of(&bearer), Ok(Some("Bearer rotated".to_string())));
        std::fs::write(&path, "user:pass\r\n").unwrap();
        let basic = Auth::Basic(Secret::File(path.clone()));
        assert_eq!(
            header_of(&basic),
            Ok(Some("Basic dXNlcjpwYXNz".to_string()))
        );
        std::fs::write(&path, "\n").unwrap();
        let err = header_of(&bearer).unwrap_err();
        assert_eq!(err.to_string(), format!("file {} is empty", path.display()));
        std::fs::remove_dir_all(&dir).unwrap();
        let err = header_of(&bearer).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read file {}: ", path.display())),
            "{err}"
        );
        assert_eq!(header_of(&Auth::None), Ok(None));
    }

    #[test]
    fn an_unset_variable_is_named() {
        let secret = Secret::Env("CHATPROBE_TEST_CREDENTIAL_NEVER_SET".to_string());
        assert_eq!(
            secret.read().unwrap_err().to_string(),
            "environment variable `CHATPROBE_TEST_CREDENTIAL_NEVER_SET` is not set"
        );
    }
}
