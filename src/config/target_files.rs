//! `target_files:`: files of targets found by globs, like Prometheus'
//! `file_sd`. Each file is a YAML list of targets shaped like `targets[]`.
//! [`TargetSet`] holds the config's own targets and each file's last good
//! content; [`TargetSet::poll`] reads the files again and says when the
//! merged list changed. A file that cannot be read or parsed, or that would
//! give two targets one name, is logged and its previous content kept.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::targets::TargetConfig;
use crate::yaml::{self, FileError, FileErrors};

/// Where a target is written: its file, the line of its `name`, its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// The file.
    pub(crate) path: PathBuf,
    /// The 1-based line of the target's `name:`, when found.
    pub(crate) line: Option<usize>,
    /// The target's `name` field (`targets[2].name`, `[0].name`).
    pub(crate) field: String,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, " (`{}`)", self.field)
    }
}

/// A target and where it is written.
#[derive(Debug, Clone)]
pub(crate) struct PlacedTarget {
    /// The target.
    pub(crate) target: TargetConfig,
    /// Where it is written.
    pub(crate) place: Place,
}

/// The targets of one file, as `text` (its content) gives them.
#[derive(Debug)]
struct FileTargets {
    text: String,
    targets: Vec<PlacedTarget>,
}

/// A file's content that was refused, so it is logged once, not every poll.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    /// This content did not parse.
    Invalid(String),
    /// This content gave a target a name another target has; tried again
    /// after the next accepted change (which may have freed the name).
    Clash(String),
    /// The file could not be read, with this error.
    Unreadable(String),
}

/// Every target the agent probes: the config's own and those of its target
/// files, each file as last read successfully.
#[derive(Debug, Clone)]
pub(crate) struct TargetSet {
    /// Absolute glob patterns (relative ones resolved against the config's folder).
    patterns: Vec<String>,
    inline: Vec<PlacedTarget>,
    files: BTreeMap<PathBuf, Arc<FileTargets>>,
    refused: BTreeMap<PathBuf, Refused>,
}

impl TargetSet {
    /// The set of `inline` targets and of every file the `globs` match now
    /// (relative ones resolved against `base`); every error, each naming its
    /// file, line and field (a glob's is `target_files[i]` in `config_path`).
    pub(super) fn load(
        config_path: &Path,
        base: &Path,
        inline: Vec<PlacedTarget>,
        globs: &[String],
    ) -> Result<TargetSet, Vec<FileError>> {
        let mut patterns = Vec::new();
        let mut errors = Vec::new();
        for (index, glob) in globs.iter().enumerate() {
            match absolute_pattern(base, glob) {
                Ok(pattern) => patterns.push(pattern),
                Err(message) => errors.push(FileError::new(
                    config_path,
                    Some(format!("target_files[{index}]")),
                    message,
                )),
            }
        }
        let mut files = BTreeMap::new();
        for path in matched_files(&patterns).map_err(|err| vec![err])? {
            match read_file(&path) {
                Ok(Some(file)) => {
                    files.insert(path, Arc::new(file));
                }
                Ok(None) => {}
                Err(found) => errors.extend(found.0),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let set = TargetSet {
            patterns,
            inline,
            files,
            refused: BTreeMap::new(),
        };
        set.check_names().map_err(|err| vec![err])?;
        Ok(set)
    }

    /// A set of `targets` built in code (no file), each placed at `origin`.
    pub(crate) fn built(origin: &Path, targets: Vec<TargetConfig>) -> TargetSet {
        TargetSet {
            patterns: Vec::new(),
            inline: place_targets(origin, "", targets, "targets"),
            files: BTreeMap::new(),
            refused: BTreeMap::new(),
        }
    }

    /// Every target, the config's own first, then each file's in path order.
    pub(crate) fn placed(&self) -> impl Iterator<Item = &PlacedTarget> {
        self.inline
            .iter()
            .chain(self.files.values().flat_map(|file| &file.targets))
    }

    /// Every target, as [`TargetSet::placed`] orders them (for tests).
    #[cfg(test)]
    pub(crate) fn targets(&self) -> Vec<TargetConfig> {
        self.placed().map(|placed| placed.target.clone()).collect()
    }

    /// The target files read now.
    pub(crate) fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    /// Whether the config names target files at all.
    pub(crate) fn has_patterns(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// Reads the files the globs match now; true when the merged list of
    /// targets changed. A file that cannot be read or parsed, or that gives
    /// a target a name another one has, is logged (once per content) and its
    /// previous content kept.
    pub(crate) fn poll(&mut self) -> bool {
        let paths = match matched_files(&self.patterns) {
            Ok(paths) => paths,
            Err(err) => {
                tracing::error!("target files: {err}");
                return false;
            }
        };
        let mut files = BTreeMap::new();
        for path in paths {
            let previous = self.files.get(&path).cloned();
            match self.reread(&path, previous.as_deref()) {
                Reread::Same => files.extend(previous.map(|previous| (path, previous))),
                Reread::Removed => {}
                Reread::New(file) => {
                    files.insert(path, Arc::new(file));
                }
            }
        }
        if same_contents(&files, &self.files) {
            return false;
        }
        let previous = std::mem::replace(&mut self.files, files);
        if let Err(err) = self.check_names() {
            tracing::error!("target files: change refused, the previous targets stay: {err}");
            for (path, file) in std::mem::replace(&mut self.files, previous) {
                let kept = self
                    .files
                    .get(&path)
                    .is_some_and(|old| Arc::ptr_eq(old, &file));
                if !kept {
                    self.refused.insert(path, Refused::Clash(file.text.clone()));
                }
            }
            return false;
        }
        self.refused
            .retain(|_, refused| !matches!(refused, Refused::Clash(_)));
        true
    }

    /// What reading `path` again gives, against its `previous` content;
    /// a refused content is logged and remembered in `refused`.
    fn reread(&mut self, path: &Path, previous: Option<&FileTargets>) -> Reread {
        let refused = &mut self.refused;
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Reread::Removed,
            Err(err) => {
                let seen = Refused::Unreadable(err.to_string());
                if refused.get(path) != Some(&seen) {
                    tracing::error!(
                        "target file {}: cannot read: {err}; its previous targets stay",
                        path.display()
                    );
                    refused.insert(path.to_path_buf(), seen);
                }
                return Reread::Same;
            }
        };
        if previous.is_some_and(|file| file.text == text) {
            refused.remove(path);
            return Reread::Same;
        }
        let seen = refused.get(path);
        if seen.is_some_and(
            |seen| matches!(seen, Refused::Invalid(old) | Refused::Clash(old) if *old == text),
        ) {
            return Reread::Same;
        }
        match parse_file(path, &text) {
            Ok(targets) => {
                refused.remove(path);
                Reread::New(FileTargets { text, targets })
            }
            Err(err) => {
                tracing::error!("target file refused, its previous targets stay: {err}");
                refused.insert(path.to_path_buf(), Refused::Invalid(text));
                Reread::Same
            }
        }
    }

    /// Checks that no two targets share a name; the error is on the second,
    /// naming the first.
    fn check_names(&self) -> Result<(), FileError> {
        let mut first_places: BTreeMap<&str, &Place> = BTreeMap::new();
        for placed in self.placed() {
            let name = placed.target.name();
            if let Some(first) = first_places.insert(name, &placed.place) {
                let place = &placed.place;
                return Err(FileError {
                    line: place.line,
                    ..FileError::new(
                        &place.path,
                        Some(place.field.clone()),
                        format!("two targets are named `{name}`: the other is at {first}"),
                    )
                });
            }
        }
        Ok(())
    }
}

/// What reading one target file again gave.
enum Reread {
    /// Its content is the one kept (unchanged, or refused and logged).
    Same,
    /// It is gone.
    Removed,
    /// New content, parsed.
    New(FileTargets),
}

/// Whether both maps hold the same files with the same content.
fn same_contents(
    one: &BTreeMap<PathBuf, Arc<FileTargets>>,
    other: &BTreeMap<PathBuf, Arc<FileTargets>>,
) -> bool {
    one.len() == other.len()
        && one
            .iter()
            .zip(other)
            .all(|((path, file), (other_path, other_file))| {
                path == other_path && file.text == other_file.text
            })
}

/// `glob` resolved against `base` when relative, checked as a glob pattern.
fn absolute_pattern(base: &Path, glob: &str) -> Result<String, String> {
    let joined = base.join(glob);
    let pattern = joined
        .to_str()
        .ok_or_else(|| format!("`{}` is not valid UTF-8", joined.display()))?
        .to_string();
    glob::Pattern::new(&pattern).map_err(|err| format!("`{glob}` is not a glob: {err}"))?;
    Ok(pattern)
}

/// Every regular file the `patterns` match, each once, in path order.
fn matched_files(patterns: &[String]) -> Result<BTreeSet<PathBuf>, FileError> {
    let mut paths = BTreeSet::new();
    for pattern in patterns {
        let matches = glob::glob(pattern).map_err(|err| {
            FileError::new(Path::new(pattern), None, format!("not a glob: {err}"))
        })?;
        // A path the glob cannot look into (a folder without permission) is skipped.
        paths.extend(matches.flatten().filter(|path| path.is_file()));
    }
    Ok(paths)
}

/// The targets of the file at `path`; `None` when it vanished since the glob matched it.
fn read_file(path: &Path) -> Result<Option<FileTargets>, FileErrors> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            let error = FileError::new(path, None, format!("cannot read: {err}"));
            return Err(error.into());
        }
    };
    let targets = parse_file(path, &text)?;
    Ok(Some(FileTargets { text, targets }))
}

/// The targets of a target file whose content is `text`. An empty file is
/// an error, not an empty list: it is what a file written in place looks
/// like halfway (an empty list is `[]`).
fn parse_file(path: &Path, text: &str) -> Result<Vec<PlacedTarget>, FileErrors> {
    if text.trim().is_empty() {
        let message = "the file is empty; write `[]` for no targets";
        return Err(FileError::new(path, None, message).into());
    }
    let targets: Vec<TargetConfig> = yaml::parse(path, text)?;
    Ok(place_targets(path, text, targets, ""))
}

/// `targets` read from the list at `list_field` (`targets`, or `` for a
/// target file) of the file at `path` whose content is `text`, each with
/// its place.
pub(super) fn place_targets(
    path: &Path,
    text: &str,
    targets: Vec<TargetConfig>,
    list_field: &str,
) -> Vec<PlacedTarget> {
    targets
        .into_iter()
        .enumerate()
        .map(|(index, target)| {
            let place = Place {
                path: path.to_path_buf(),
                line: name_line(text, target.name()),
                field: format!("{list_field}[{index}].name"),
            };
            PlacedTarget { target, place }
        })
        .collect()
}

/// The 1-based line of the first `name: NAME` in `text` (quoted or not,
/// after a list dash or not).
fn name_line(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let entry = line.trim_start().trim_start_matches('-').trim_start();
            entry
                .strip_prefix("name")
                .and_then(|rest| rest.trim_start().strip_prefix(':'))
                .map(|value| value.trim().trim_matches(['"', '\'']))
                == Some(name)
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::TempDir;

    fn target(name: &str) -> String {
        format!(
            "- kind: mock\n  name: {name}\n  url: http://127.0.0.1:8080\n  accounts: {{password: pw}}\n"
        )
    }

    fn names(set: &TargetSet) -> Vec<String> {
        set.placed()
            .map(|placed| placed.target.name().to_string())
            .collect()
    }

    fn load(dir: &TempDir) -> TargetSet {
        let config = dir.write("a.yaml", "");
        let base = config.parent().unwrap();
        TargetSet::load(&config, base, Vec::new(), &["shards/*.yaml".into()]).unwrap()
    }

    #[test]
    fn a_changed_file_changes_the_set_and_an_unchanged_one_does_not() {
        let dir = TempDir::new("target-files-poll");
        std::fs::create_dir_all(dir.0.join("shards")).unwrap();
        dir.write(
            "shards/a.yaml",
            &format!("{}{}", target("a1"), target("a2")),
        );
        let mut set = load(&dir);
        assert_eq!(names(&set), ["a1", "a2"]);
        assert!(!set.poll());
        dir.write("shards/b.yaml", &target("b1"));
        assert!(set.poll(), "a new file is a change");
        assert_eq!(names(&set), ["a1", "a2", "b1"]);
        dir.write("shards/a.yaml", &target("a2"));
        assert!(set.poll(), "a shrunk file is a change");
        assert_eq!(names(&set), ["a2", "b1"]);
        std::fs::remove_file(dir.0.join("shards/b.yaml")).unwrap();
        assert!(set.poll(), "a removed file is a change");
        assert_eq!(names(&set), ["a2"]);
    }

    #[test]
    fn a_bad_file_keeps_its_previous_targets_and_is_refused_once() {
        let dir = TempDir::new("target-files-bad");
        std::fs::create_dir_all(dir.0.join("shards")).unwrap();
        dir.write("shards/a.yaml", &target("a1"));
        let mut set = load(&dir);
        dir.write(
            "shards/a.yaml",
            "- kind: mock\n  name: a1\n  url: ftp://x\n",
        );
        assert!(!set.poll());
        assert_eq!(names(&set), ["a1"]);
        assert!(set.refused.contains_key(&dir.0.join("shards/a.yaml")));
        dir.write("shards/a.yaml", "");
        assert!(!set.poll(), "an empty file is refused too");
        assert_eq!(names(&set), ["a1"]);
        dir.write("shards/a.yaml", &target("a3"));
        assert!(set.poll(), "a good file applies");
        assert_eq!(names(&set), ["a3"]);
        assert!(set.refused.is_empty());
    }

    #[test]
    fn a_name_taken_elsewhere_is_refused_naming_both_places() {
        let dir = TempDir::new("target-files-dup");
        std::fs::create_dir_all(dir.0.join("shards")).unwrap();
        dir.write("shards/a.yaml", &target("x"));
        let mut set = load(&dir);
        dir.write("shards/b.yaml", &format!("{}{}", target("y"), target("x")));
        assert!(!set.poll());
        assert_eq!(names(&set), ["x"]);
        assert!(!set.poll());
        let err = TargetSet::load(
            &dir.0.join("a.yaml"),
            &dir.0,
            Vec::new(),
            &["shards/*.yaml".into()],
        )
        .unwrap_err()
        .remove(0);
        let shown = err.to_string();
        dir.write("shards/a.yaml", &target("z"));
        assert!(set.poll(), "freeing the name lets the clashing file in");
        assert_eq!(names(&set), ["z"]);
        assert!(
            set.poll(),
            "the clashing file is tried again after a change"
        );
        assert_eq!(names(&set), ["z", "y", "x"]);
        assert!(shown.contains("b.yaml:6: field `[1].name`"), "{shown}");
        assert!(shown.contains("a.yaml:2 (`[0].name`)"), "{shown}");
    }

    #[test]
    fn the_name_line_is_found_quoted_or_after_a_dash() {
        let text = "- kind: mock\n  name: a\n- name: 'b'\n  kind: mock\n";
        assert_eq!(name_line(text, "a"), Some(2));
        assert_eq!(name_line(text, "b"), Some(3));
        assert_eq!(name_line(text, "c"), None);
    }
}
