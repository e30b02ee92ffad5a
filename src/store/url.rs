//! The URL the database driver is given for a store the config names
//! ([`StoreLocation`], checked there: an SQLite path, or a PostgreSQL user,
//! host, port and database without a password, which comes from the
//! environment, `PGPASSWORD` or `~/.pgpass`, as for every PostgreSQL client).

use std::path::Path;

use super::Dialect;
use crate::config::status_page::StoreLocation;

/// Which database `location` is.
pub(super) fn dialect(location: &StoreLocation) -> Dialect {
    match location {
        StoreLocation::Sqlite(_) => Dialect::Sqlite,
        StoreLocation::Postgres(_) => Dialect::Postgres,
    }
}

/// Bytes a path keeps unencoded in the driver's URL: the unreserved set and `/`.
fn keeps(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'-' | b'_' | b'.' | b'~')
}

/// The driver's URL for `location`: an SQLite path made absolute,
/// percent-encoded and opened read-write-create; PostgreSQL's parts as the
/// config read them (still URL-encoded).
pub(super) fn driver_url(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Sqlite(path) => sqlite_url(path),
        StoreLocation::Postgres(url) => format!(
            "postgres://{}@{}:{}/{}",
            url.user, url.host, url.port, url.database
        ),
    }
}

/// `sqlite:///ABSOLUTE?mode=rwc` for `path`.
fn sqlite_url(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::status_page::store_flag;

    #[test]
    fn the_driver_url_is_absolute_and_encoded() {
        let url = StoreLocation::Sqlite("/tmp/a b#?.db".into());
        assert_eq!(driver_url(&url), "sqlite:///tmp/a%20b%23%3F.db?mode=rwc");
        let postgres = store_flag("postgresql://page@db.internal/status").expect("a store URL");
        assert_eq!(
            driver_url(&postgres),
            "postgres://page@db.internal:5432/status"
        );
        assert_eq!(dialect(&postgres), Dialect::Postgres);
    }
}
