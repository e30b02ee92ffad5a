//! Loading YAML files into typed config, with errors that name the file, the
//! line and column, and the field path.

mod every_error;
pub(crate) mod values;

pub(crate) use every_error::read;

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

/// Every error of one or more files, each on a line of its own when shown.
#[derive(Debug, thiserror::Error)]
pub struct FileErrors(pub(crate) Vec<FileError>);

impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&shown.join("\n"))
    }
}

impl From<FileError> for FileErrors {
    fn from(error: FileError) -> Self {
        FileErrors(vec![error])
    }
}

impl From<FileErrors> for Vec<FileError> {
    fn from(errors: FileErrors) -> Self {
        errors.0
    }
}

/// Read `path` and deserialize it as YAML into `T`; every error, or the value.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, FileErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| FileError::new(path, None, format!("cannot read: {err}")))?;
    parse(path, &text)
}

/// Deserialize YAML `text` (read from `path`, which errors name) into `T`;
/// every error, or the value.
pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, FileErrors> {
    let read = every_error::read(path, text);
    match read.value {
        Some(value) if read.errors.is_empty() => Ok(value),
        _ => Err(FileErrors(read.errors)),
    }
}

/// A serde_yaml_ng error of the file at `path`, with its line and column.
fn file_error(path: &Path, error: serde_yaml_ng::Error) -> FileError {
    let location = error.location();
    FileError {
        path: path.to_path_buf(),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        field: None,
        message: strip_location(&error.to_string()),
    }
}

/// Sorts `errors` by line within each file, the files in the order they
/// first appear.
pub(crate) fn sort_by_line(errors: &mut [FileError]) {
    let mut files: Vec<PathBuf> = Vec::new();
    for error in errors.iter() {
        if !files.contains(&error.path) {
            files.push(error.path.clone());
        }
    }
    errors.sort_by_key(|error| {
        let file = files.iter().position(|path| *path == error.path);
        (file, error.line, error.column)
    });
}

/// The errors of one file being loaded: those of reading it, then those of
/// the checks run on what was read.
pub(crate) struct ErrorList<'t> {
    path: &'t Path,
    text: &'t str,
    errors: Vec<FileError>,
    /// The top-level keys of the file with an error of reading: what was
    /// read of them is a default or a part, so checks on them say nothing.
    unread_keys: Vec<String>,
}

impl<'t> ErrorList<'t> {
    /// The errors of the file at `path` whose content is `text`, starting
    /// with those of reading it.
    pub(crate) fn new(path: &'t Path, text: &'t str, read_errors: Vec<FileError>) -> Self {
        let unread_keys = read_errors
            .iter()
            .filter_map(|error| error.field.as_deref().map(top_key))
            .map(str::to_string)
            .collect();
        ErrorList {
            path,
            text,
            errors: read_errors,
            unread_keys,
        }
    }

    /// An error about `field` of this file (on the line of its top-level
    /// key), unless that key had an error of reading.
    pub(crate) fn field(&mut self, field: &str, message: impl Into<String>) {
        self.push(field_error(self.path, self.text, field, message.into()));
    }

    /// An error of this file or another, unless it is about a top-level key
    /// of this file that had an error of reading.
    pub(crate) fn push(&mut self, error: FileError) {
        let about_unread = error.path == self.path
            && error
                .field
                .as_deref()
                .is_some_and(|field| self.unread_keys.iter().any(|key| key == top_key(field)));
        if !about_unread {
            self.errors.push(error);
        }
    }

    /// Each of `errors`, as [`ErrorList::push`] takes them.
    pub(crate) fn extend(&mut self, errors: impl IntoIterator<Item = FileError>) {
        for error in errors {
            self.push(error);
        }
    }

    /// Every error, sorted by line within each file; `Ok` when there is none.
    pub(crate) fn finish(self) -> Result<(), Vec<FileError>> {
        let errors = self.into_errors();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Every error, sorted by line within each file.
    pub(crate) fn into_errors(self) -> Vec<FileError> {
        let mut errors = self.errors;
        sort_by_line(&mut errors);
        errors
    }
}

/// The top-level key a field path starts with (`probes` of `probes[2]`).
fn top_key(field: &str) -> &str {
    field.split(['[', '.']).next().unwrap_or(field)
}

/// An error about `field` of the file at `path` whose text is `text`, with
/// the line of its key when it is written there in block style.
pub(crate) fn field_error(path: &Path, text: &str, field: &str, message: String) -> FileError {
    FileError {
        line: key_line(text, field),
        ..FileError::new(path, Some(field.to_string()), message)
    }
}

/// The 1-based line of the key named by `field` (`prometheus.url` looks for
/// `prometheus:` at the start of a line, then for `url:` below it; indices
/// are passed over): the deepest key found, `None` when the top one is not.
fn key_line(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut keys = field
        .split(['.', '['])
        .filter(|step| !step.is_empty() && !step.ends_with(']'));
    let top = keys.next()?;
    let is_key = |line: &str, key: &str| {
        line.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    let mut found = lines.iter().position(|line| is_key(line, top))?;
    for key in keys {
        let below = lines[found + 1..].iter().position(|line| {
            let entry = line.trim_start().trim_start_matches("- ").trim_start();
            is_key(entry, key)
        });
        match below {
            Some(offset) => found += 1 + offset,
            None => break,
        }
    }
    Some(found + 1)
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
        let errors = parse::<Outer>(Path::new("f.yaml"), text).unwrap_err().0;
        let err = &errors[0];
        assert_eq!(err.line, Some(4));
        assert_eq!(err.field.as_deref(), Some("items[1].size"));
        let shown = err.to_string();
        assert!(shown.starts_with("f.yaml:4:"), "{shown}");
        assert!(shown.contains("items[1].size"), "{shown}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let text = "name: x\nitems: []\ncolour: red\n";
        let errors = parse::<Outer>(Path::new("f.yaml"), text).unwrap_err().0;
        let err = &errors[0];
        assert!(err.message.contains("unknown field `colour`"), "{err}");
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn a_nested_field_is_found_on_its_own_line() {
        let text = "title: t\nprometheus:\n  # the query API\n  url: x\npublic:\n  regions:\n    eu-west: {name: EU}\n";
        assert_eq!(key_line(text, "prometheus.url"), Some(4));
        assert_eq!(key_line(text, "public.regions.eu-west.name"), Some(7));
        assert_eq!(key_line(text, "prometheus.token"), Some(2));
        assert_eq!(key_line(text, "store"), None);
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
