//! Where the store is: `sqlite:PATH` or `postgres://USER@HOST:PORT/DB`
//! (`postgresql://` too), checked before anything connects.

use std::fmt;
use std::path::PathBuf;

use super::{Dialect, StoreError};

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    /// An SQLite file, created on first start.
    Sqlite(PathBuf),
    /// A PostgreSQL database, as its URL (password, TLS mode and options included).
    Postgres(String),
}

/// Bytes a path keeps unencoded in the driver's URL: the unreserved set and `/`.
fn keeps(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'-' | b'_' | b'.' | b'~')
}

impl StoreUrl {
    /// Parses `text`.
    pub(crate) fn parse(text: &str) -> Result<StoreUrl, StoreError> {
        let error = |message: &str| StoreError::Url {
            url: text.to_string(),
            message: message.to_string(),
        };
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() || path.contains('?') {
                return Err(error(
                    "write `sqlite:PATH`, a file path without `?` options",
                ));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let url = reqwest::Url::parse(text).map_err(|err| error(&err.to_string()))?;
            if url.host_str().is_none_or(str::is_empty) || url.path().len() < 2 {
                return Err(error("write `postgres://USER@HOST:PORT/DB`"));
            }
            return Ok(StoreUrl::Postgres(text.to_string()));
        }
        Err(error(
            "a store is `sqlite:PATH` or `postgres://USER@HOST:PORT/DB`",
        ))
    }

    /// Which database it is.
    pub(super) fn dialect(&self) -> Dialect {
        match self {
            StoreUrl::Sqlite(_) => Dialect::Sqlite,
            StoreUrl::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The URL the driver is given: an SQLite path made absolute,
    /// percent-encoded and opened read-write-create.
    pub(super) fn driver_url(&self) -> String {
        match self {
            StoreUrl::Sqlite(path) => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                let mut url = String::from("sqlite://");
                for byte in absolute.as_os_str().as_encoded_bytes() {
                    if keeps(*byte) {
                        url.push(char::from(*byte));
                    } else {
                        url.push_str(&format!("%{byte:02X}"));
                    }
                }
                url.push_str("?mode=rwc");
                url
            }
            StoreUrl::Postgres(url) => url.clone(),
        }
    }
}

impl fmt::Display for StoreUrl {
    /// The URL without a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreUrl::Postgres(url) => match reqwest::Url::parse(url) {
                Ok(mut parsed) if parsed.password().is_some() => {
                    let _ = parsed.set_password(Some("***"));
                    write!(f, "{parsed}")
                }
                _ => f.write_str(url),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_and_postgres_urls_parse_and_others_are_refused() {
        assert_eq!(
            StoreUrl::parse("sqlite:chatprobe-status.db").ok(),
            Some(StoreUrl::Sqlite("chatprobe-status.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/x.db").ok(),
            Some(StoreUrl::Sqlite("/var/lib/x.db".into()))
        );
        let postgres = "postgres://chatprobe@127.0.0.1:5432/status";
        assert_eq!(
            StoreUrl::parse(postgres).ok(),
            Some(StoreUrl::Postgres(postgres.into()))
        );
        for bad in [
            "",
            "sqlite:",
            "mysql://a@b/c",
            "postgres://",
            "sqlite:x.db?mode=ro",
            "x.db",
        ] {
            let error = StoreUrl::parse(bad).err().map(|e| e.to_string());
            assert!(error.is_some_and(|e| e.contains("store")), "{bad}");
        }
    }

    #[test]
    fn the_driver_url_is_absolute_and_encoded_and_hides_no_password_in_logs() {
        let url = StoreUrl::Sqlite("/tmp/a b#?.db".into());
        assert_eq!(url.driver_url(), "sqlite:///tmp/a%20b%23%3F.db?mode=rwc");
        let hidden = StoreUrl::Postgres("postgres://u:secret@h:1/d".into()).to_string();
        assert!(!hidden.contains("secret"), "{hidden}");
    }
}
