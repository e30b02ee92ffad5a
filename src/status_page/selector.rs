//! Label matchers that narrow a query to some cells: a set of probe ×
//! region × target keys becomes `{target=~"…", region=~"…", probe=~"…"}`
//! selectors of at most [`TARGETS_PER_SELECTOR`] targets each, so that a
//! query about a few failing cells reads their series only, not the fleet's.
//!
//! A selector may match more cells than asked (the product of its targets,
//! regions and probes); [`CellSet::contains`] filters the answers.

use std::collections::BTreeSet;

use crate::outcome::ProbeKey;

/// The most targets one selector names (keeps a query's URL a few kB long).
const TARGETS_PER_SELECTOR: usize = 100;

/// Some cells, by key.
pub(crate) type CellSet = BTreeSet<ProbeKey>;

/// The matchers (without braces) that select at least the cells of `cells`,
/// in groups of at most [`TARGETS_PER_SELECTOR`] targets; none for no cells.
pub(crate) fn matchers(cells: &CellSet) -> Vec<String> {
    let targets: BTreeSet<&str> = cells.iter().map(|key| key.target.as_str()).collect();
    let targets: Vec<&str> = targets.into_iter().collect();
    targets
        .chunks(TARGETS_PER_SELECTOR)
        .map(|group| {
            let wanted: BTreeSet<&str> = group.iter().copied().collect();
            let in_group = cells
                .iter()
                .filter(|key| wanted.contains(key.target.as_str()));
            let regions: BTreeSet<&str> = in_group.clone().map(|key| key.region.as_str()).collect();
            let probes: BTreeSet<&str> = in_group.map(|key| key.probe.as_str()).collect();
            format!(
                "target=~{},region=~{},probe=~{}",
                any_of(wanted),
                any_of(regions),
                any_of(probes)
            )
        })
        .collect()
}

/// A PromQL string literal holding a regular expression that matches
/// exactly the given values.
fn any_of<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let pattern: Vec<String> = values.into_iter().map(regex_literal).collect();
    string_literal(&pattern.join("|"))
}

/// `value` as a regular expression matching only itself (RE2 syntax).
fn regex_literal(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        if "\\.+*?()|[]{}^$".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// `text` as a double-quoted PromQL string.
fn string_literal(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(region: &str, target: &str, probe: &str) -> ProbeKey {
        ProbeKey {
            region: region.into(),
            target: target.into(),
            probe: probe.into(),
        }
    }

    #[test]
    fn cells_become_one_selector_per_group_of_targets() {
        let cells: CellSet = [
            key("ap-south", "shard-1", "group_message"),
            key("eu-west", "shard-2", "leave_group"),
        ]
        .into();
        assert_eq!(
            matchers(&cells),
            [
                r#"target=~"shard-1|shard-2",region=~"ap-south|eu-west",probe=~"group_message|leave_group""#
            ]
        );
        assert!(matchers(&CellSet::new()).is_empty());
        let many: CellSet = (0..250)
            .map(|index| key("eu-west", &format!("t{index:03}"), "group_message"))
            .collect();
        let groups = matchers(&many);
        assert_eq!(groups.len(), 3);
        assert!(groups[2].starts_with(r#"target=~"t200|"#), "{}", groups[2]);
    }

    #[test]
    fn values_are_matched_literally_and_quoted() {
        let cells: CellSet = [key("r", r#"a.b|"c\d"#, "p")].into();
        assert_eq!(
            matchers(&cells),
            [r#"target=~"a\\.b\\|\"c\\\\d",region=~"r",probe=~"p""#]
        );
    }
}
