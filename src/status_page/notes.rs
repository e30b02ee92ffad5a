//! The operator's statement (`--notes FILE`): plain text or a small subset
//! of Markdown (`#` headings, `-`/`*` lists, paragraphs, `` `code` ``,
//! `**bold**`), read again whenever the file changes, shown at the top of
//! the page and as an entry of the feed.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::status::Timestamp;
use crate::status::html::Escaped;

/// The statement as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// The file's text, trimmed.
    pub(crate) text: String,
    /// When the file was last changed.
    pub(crate) updated: Timestamp,
}

/// A notes file, re-read when its modification time changes.
#[derive(Debug)]
pub(crate) struct NotesFile {
    path: PathBuf,
    cache: Mutex<Option<(SystemTime, Note)>>,
}

impl NotesFile {
    /// The notes in `path` (which may not exist yet).
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            cache: Mutex::new(None),
        }
    }

    /// The current statement: `None` when the file is missing, unreadable
    /// (logged) or empty.
    pub(crate) fn current(&self) -> Option<Note> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|meta| meta.modified())
            .ok()?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, note)) = cache.as_ref()
            && *seen == modified
        {
            return Some(note.clone()).filter(|note| !note.text.is_empty());
        }
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().to_owned(),
            Err(error) => {
                tracing::warn!(
                    "cannot read the notes file {}: {error}",
                    self.path.display()
                );
                return None;
            }
        };
        let note = Note {
            text,
            updated: Timestamp::from_system(modified),
        };
        *cache = Some((modified, note.clone()));
        Some(note).filter(|note| !note.text.is_empty())
    }
}

/// The statement as HTML, every piece of its text escaped.
pub(crate) fn to_html(text: &str) -> String {
    let mut html = String::new();
    for block in text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        let lines: Vec<&str> = block.lines().map(str::trim).collect();
        if let Some(heading) = lines[0].strip_prefix('#') {
            let heading = heading.trim_start_matches('#').trim();
            let _ = write!(html, "<h3>{}</h3>", inline(heading));
            let rest = lines[1..].join(" ");
            if !rest.is_empty() {
                let _ = write!(html, "<p>{}</p>", inline(&rest));
            }
        } else if lines.iter().all(|line| list_item(line).is_some()) {
            html.push_str("<ul>");
            for item in lines.iter().filter_map(|line| list_item(line)) {
                let _ = write!(html, "<li>{}</li>", inline(item));
            }
            html.push_str("</ul>");
        } else {
            let _ = write!(html, "<p>{}</p>", inline(&lines.join(" ")));
        }
    }
    html
}

fn list_item(line: &str) -> Option<&str> {
    line.strip_prefix("- ").or_else(|| line.strip_prefix("* "))
}

/// One line's text escaped, with `` `code` `` and `**bold**` marked up.
fn inline(text: &str) -> String {
    let mut html = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['`', '*']) {
        let (marker, tag) = match rest[at..].starts_with("**") {
            true => ("**", "strong"),
            false if rest[at..].starts_with('`') => ("`", "code"),
            false => ("*", ""),
        };
        let after = &rest[at + marker.len()..];
        match after.find(marker).filter(|_| !tag.is_empty()) {
            Some(end) => {
                let _ = write!(
                    html,
                    "{}<{tag}>{}</{tag}>",
                    Escaped(&rest[..at]),
                    Escaped(&after[..end])
                );
                rest = &after[end + marker.len()..];
            }
            None => {
                let _ = write!(html, "{}", Escaped(&rest[..at + marker.len()]));
                rest = after;
            }
        }
    }
    let _ = write!(html, "{}", Escaped(rest));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_blocks_become_headings_lists_and_paragraphs() {
        let html = to_html(
            "# Group messages delayed\nin ap-south\n\n- sends fail\n* fix rolling out\n\nNext update at **17:00** UTC, see `status`.",
        );
        assert_eq!(
            html,
            "<h3>Group messages delayed</h3><p>in ap-south</p><ul><li>sends fail</li><li>fix rolling out</li></ul><p>Next update at <strong>17:00</strong> UTC, see <code>status</code>.</p>"
        );
    }

    #[test]
    fn plain_text_is_escaped_and_kept() {
        assert_eq!(
            to_html("<script>alert(1)</script> 2 * 3 & `x"),
            "<p>&lt;script&gt;alert(1)&lt;/script&gt; 2 * 3 &amp; `x</p>"
        );
    }

    #[test]
    fn the_file_is_read_again_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("chatprobe-notes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("notes.md");
        let notes = NotesFile::new(path.clone());
        assert_eq!(notes.current(), None);
        std::fs::write(&path, "first\n").expect("write");
        assert_eq!(notes.current().map(|n| n.text), Some("first".to_owned()));
        std::fs::write(&path, "second").expect("write");
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(later))
            .expect("set mtime");
        assert_eq!(notes.current().map(|n| n.text), Some("second".to_owned()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
