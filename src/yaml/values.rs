//! Scalar values of YAML files checked while they are read: [`Label`], [`HttpUrl`],
//! [`PlainHttpUrl`], [`Jitter`], [`Period`]. A value that fails its check is an error on its
//! own line and field.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A label value (region, target name, account prefix): letters, digits, `_`, `-`, `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Label(pub String);

impl TryFrom<String> for Label {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        check_label(&value)?;
        Ok(Label(value))
    }
}

/// Checks that `value` may be a label value.
pub(crate) fn check_label(value: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if value.is_empty() || value.len() > 64 || !value.chars().all(allowed) {
        return Err(format!(
            "`{value}` must be 1 to 64 letters, digits, `_`, `-` or `.`"
        ));
    }
    Ok(())
}

/// An `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl(pub String);

impl TryFrom<String> for HttpUrl {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let url = reqwest::Url::parse(&value).map_err(|err| format!("`{value}`: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!("`{value}` must be an http:// or https:// URL"));
        }
        Ok(HttpUrl(value))
    }
}

/// An `http://` URL: for a service that speaks no TLS (the mock backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlainHttpUrl(pub String);

impl TryFrom<String> for PlainHttpUrl {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let HttpUrl(url) = HttpUrl::try_from(value)?;
        if !url.starts_with("http://") {
            return Err(format!(
                "`{url}` must be an http:// URL (the mock backend serves no TLS)"
            ));
        }
        Ok(PlainHttpUrl(url))
    }
}

/// A jitter fraction between 0 and 0.5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Jitter(pub(crate) f64);

impl TryFrom<String> for Jitter {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let fraction: f64 = value
            .parse()
            .map_err(|_| format!("`{value}` is not a number"))?;
        if !(0.0..=0.5).contains(&fraction) {
            return Err(format!("{value} must be between 0 and 0.5"));
        }
        Ok(Jitter(fraction))
    }
}

/// The longest duration any file or API body may set: one year. Longer ones make
/// no sense for a prober or a fault window, and near `Duration::MAX` they overflow
/// `Instant + Duration`.
pub(crate) const LONGEST_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Checks that `value` is at most [`LONGEST_DURATION`].
pub(crate) fn check_duration(value: Duration) -> Result<(), String> {
    if value > LONGEST_DURATION {
        return Err(format!(
            "`{}` is longer than one year (365 days), the longest allowed",
            humantime::format_duration(value)
        ));
    }
    Ok(())
}

/// A humantime duration (`250ms`, `1m30s`) of at least 100ms and at most one year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Period(pub(crate) Duration);

impl TryFrom<String> for Period {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let duration =
            humantime::parse_duration(&value).map_err(|err| format!("`{value}`: {err}"))?;
        if duration < Duration::from_millis(100) {
            return Err(format!("`{value}` must be at least 100ms"));
        }
        check_duration(duration)?;
        Ok(Period(duration))
    }
}

/// Implements `Deserialize` for types checked from their scalar text, with the
/// check run while the scalar is read, so an error carries its line.
macro_rules! checked_scalar {
    ($($name:ident),+) => {$(
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(ScalarVisitor(std::marker::PhantomData))
            }
        }
    )+};
}

checked_scalar!(Label, HttpUrl, PlainHttpUrl, Jitter, Period);
pub(crate) use checked_scalar;

/// Turns any scalar into text and checks it with `T::try_from`.
pub(crate) struct ScalarVisitor<T>(pub(crate) std::marker::PhantomData<T>);

impl<T: TryFrom<String, Error = String>> serde::de::Visitor<'_> for ScalarVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar value")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<T, E> {
        T::try_from(value.to_string()).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }
}
