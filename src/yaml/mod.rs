//! Loading YAML files into typed config, with errors that name the file, the
//! line and column, and the field path.

pub(crate) mod values;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config or data file that could not be read or does not fit its schema.
#[derive(Debug, thiserror::Error)]
pub struct FileError {
    /// The file.
    pub(crate) path: PathBuf,
    /// 1-based line, when known.
    pub(crate) line: Option<usize>,
    /// 1-based column, when known.
    pub(crate) column: Option<usize>,
    /// Dotted path of the offending field (`probes[2].interval`), when known.
    pub(crate) field: Option<String>,
    /// What is wrong.
    pub(crate) message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl FileError {
    /// An error about the file as a whole (or about a field without a position).
    pub(crate) fn new(path: &Path, field: Option<String>, message: impl Into<String>) -> Self {
        FileError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            field,
            message: message.into(),
        }
    }
}

/// Read `path` and deserialize it as YAML into `T`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| FileError::new(path, None, format!("cannot read: {err}")))?;
    parse(path, &text)
}

/// Deserialize YAML `text` (read from `path`, which errors name) into `T`.
pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, FileError> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        let location = inner.location();
        FileError {
            path: path.to_path_buf(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            field: (field != ".").then_some(field),
            message: strip_location(&inner.to_string()),
        }
    })
}

/// serde_yaml_ng appends " at line L column C" to messages; the location is
/// already shown in front, so drop the tail.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        size: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        items: Vec<Inner>,
    }

    #[test]
    fn error_names_line_and_field() {
        let text = "name: x\nitems:\n  - size: 1\n  - size: many\n";
        let err = parse::<Outer>(Path::new("f.yaml"), text).unwrap_err();
        assert_eq!(err.line, Some(4));
        assert_eq!(err.field.as_deref(), Some("items[1].size"));
        let shown = err.to_string();
        assert!(shown.starts_with("f.yaml:4:"), "{shown}");
        assert!(shown.contains("items[1].size"), "{shown}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let text = "name: x\nitems: []\ncolour: red\n";
        let err = parse::<Outer>(Path::new("f.yaml"), text).unwrap_err();
        assert!(err.message.contains("unknown field `colour`"), "{err}");
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn missing_file_is_named() {
        let err = load::<Outer>(Path::new("/nonexistent/x.yaml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/x.yaml: cannot read")
        );
    }
}
