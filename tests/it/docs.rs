//! The tables of the contract vocabulary in `docs/metrics.md` say what the code says:
//! every `operation` and every `reason`, in declaration order, with the words
//! the code gives them (`outcome.rs` is the one source of those words), and
//! every `reason` a report is refused for (`metrics/reports.rs`), and the
//! notifications' channels, events and failure reasons (`metrics/notify.rs`).

use chatprobe::metrics::{Channel, Event, Failure, Refused};
use chatprobe::outcome::{Operation, Reason};

/// The rows of the `docs/metrics.md` table whose header row starts with
/// `| {first} |`: each row's first cell (without backticks) and second cell.
fn metrics_table(first: &str) -> Vec<(String, String)> {
    section_table("", first)
}

/// As [`metrics_table`], for the first such table after the line
/// `heading` of `docs/metrics.md` (`""`: anywhere).
pub fn section_table(heading: &str, first: &str) -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md is readable");
    let header = format!("| {first} |");
    let mut lines = doc
        .lines()
        .skip_while(|line| !heading.is_empty() && *line != heading)
        .skip_while(|line| !line.starts_with(&header));
    assert!(
        lines.next().is_some(),
        "docs/metrics.md has no table headed {header} after {heading:?}"
    );
    lines
        .skip(1)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            (
                cells[0].trim().trim_matches('`').to_string(),
                cells[1].trim().to_string(),
            )
        })
        .collect()
}

#[test]
fn metrics_doc_reason_table_is_the_codes_reasons_and_words() {
    let code: Vec<(String, String)> = Reason::ALL
        .iter()
        .map(|reason| (reason.to_string(), reason.meaning().to_string()))
        .collect();
    assert_eq!(metrics_table("reason"), code);
}

#[test]
fn metrics_doc_operation_table_is_the_codes_operations_and_words() {
    let code: Vec<(String, String)> = Operation::ALL
        .iter()
        .map(|operation| (operation.to_string(), operation.meaning().to_string()))
        .collect();
    assert_eq!(metrics_table("operation"), code);
}

#[test]
fn metrics_doc_refused_reason_table_is_the_codes_reasons_and_words() {
    let code: Vec<(String, String)> = Refused::ALL
        .iter()
        .map(|reason| (reason.to_string(), reason.meaning().to_string()))
        .collect();
    assert_eq!(metrics_table("refused reason"), code);
}

#[test]
fn metrics_doc_notification_tables_are_the_codes_labels_and_words() {
    let words = |all: Vec<(String, String)>| all;
    let channels = words(
        Channel::ALL
            .iter()
            .map(|c| (c.to_string(), c.meaning().to_string()))
            .collect(),
    );
    let events = words(
        Event::ALL
            .iter()
            .map(|e| (e.to_string(), e.meaning().to_string()))
            .collect(),
    );
    let failures = words(
        Failure::ALL
            .iter()
            .map(|f| (f.to_string(), f.meaning().to_string()))
            .collect(),
    );
    assert_eq!(metrics_table("channel"), channels);
    assert_eq!(metrics_table("event"), events);
    assert_eq!(metrics_table("failure reason"), failures);
}
