//! The status page in a real browser: `chatprobe demo` with a fault on one
//! region, read by headless Chromium (`--dump-dom`), and the shipped
//! group-outage replay going red in one region and recovering, with a
//! screenshot of the page mid-outage.
//!
//! Set `CHATPROBE_UPDATE_SCREENSHOT=1` to copy that screenshot to
//! `docs/status.png` (the one the README shows).

use std::collections::{BTreeMap, BTreeSet};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::harness::binary::{Running, start_demo};
use crate::harness::browser::Browser;
use crate::harness::fixtures::{fixture_path, repo_file};

/// The region both tests' faults hit; the other two must stay green.
const FAULTED: &str = "ap-south";
const HEALTHY: [&str; 2] = ["eu-west", "us-east"];

/// Sends from ap-south are acknowledged but never delivered, from the start.
const SEND_DROP: &str = "faults/ap-south-send-drop.yaml";

/// How long a state the tests wait for may take to show (the replay lasts about a minute).
const PATIENCE: Duration = Duration::from_secs(150);

/// One `<td class="cell">` of the grid (or one entry of `cells` in the JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cell {
    probe: String,
    region: String,
    state: String,
    reasons: Vec<String>,
}

/// Every cell of a status page.
#[derive(Debug, Default)]
struct Grid(Vec<Cell>);

impl Grid {
    /// The cells in a DOM dump, from their `data-*` attributes.
    fn from_dom(dom: &str) -> Grid {
        let cells = dom
            .split("<td ")
            .skip(1)
            .filter_map(|tag| tag.split_once('>').map(|(attributes, _)| attributes))
            .map(attributes)
            .filter(|attrs| attrs.get("class").is_some_and(|class| class == "cell"))
            .map(|attrs| {
                let get = |name: &str| attrs.get(name).cloned().unwrap_or_default();
                Cell {
                    probe: get("data-probe"),
                    region: get("data-region"),
                    state: get("data-state"),
                    reasons: get("data-reasons")
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect(),
                }
            })
            .collect();
        Grid(cells)
    }

    /// The cells of an `/api/status` answer.
    fn from_json(status: &serde_json::Value) -> Grid {
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
        let cells = status["cells"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let cells = cells
            .iter()
            .map(|cell| Cell {
                probe: text(&cell["probe"]),
                region: text(&cell["region"]),
                state: text(&cell["state"]),
                reasons: cell["reasons"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(text)
                    .collect(),
            })
            .collect();
        Grid(cells)
    }

    fn in_region<'a>(&'a self, region: &'a str) -> impl Iterator<Item = &'a Cell> {
        self.0.iter().filter(move |cell| cell.region == region)
    }

    /// Every probe has a cell with data in every region.
    fn complete(&self) -> Result<(), String> {
        let probes: BTreeSet<&str> = self.0.iter().map(|c| c.probe.as_str()).collect();
        let known = self.0.iter().filter(|c| c.state != "unknown").count();
        if probes.is_empty() || known != probes.len() * (HEALTHY.len() + 1) {
            return Err(format!("not every probe has run in every region: {self:?}"));
        }
        Ok(())
    }

    /// `region` has cells, all green.
    fn all_green(&self, region: &str) -> Result<(), String> {
        if self.in_region(region).next().is_none() {
            return Err(format!("no cell for {region}"));
        }
        match self.in_region(region).find(|cell| cell.state != "green") {
            Some(cell) => Err(format!("{region} is not all green: {cell:?}")),
            None => Ok(()),
        }
    }

    /// The healthy regions have cells, all green.
    fn healthy_regions_green(&self) -> Result<(), String> {
        HEALTHY.iter().try_for_each(|region| self.all_green(region))
    }

    /// At least `count` cells of the faulted region are red, each naming a reason.
    fn faulted_red(&self, count: usize) -> Result<(), String> {
        let red: Vec<&Cell> = self
            .in_region(FAULTED)
            .filter(|c| c.state == "red")
            .collect();
        if red.len() < count || red.iter().any(|cell| cell.reasons.is_empty()) {
            return Err(format!(
                "want {count} red {FAULTED} cells with reasons: {self:?}"
            ));
        }
        Ok(())
    }

    /// The cell of `probe` in `region` is red with `reason`.
    fn red_with(&self, probe: &str, region: &str, reason: &str) -> Result<(), String> {
        let cell = self
            .0
            .iter()
            .find(|c| c.probe == probe && c.region == region);
        match cell {
            Some(cell) if cell.state == "red" && cell.reasons.iter().any(|r| r == reason) => Ok(()),
            other => Err(format!(
                "{probe} in {region} is not red with {reason}: {other:?}"
            )),
        }
    }
}

/// `name="value"` pairs of one tag (values as written; the demo's need no unescaping).
fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut rest = tag;
    while let Some((name, after)) = rest.split_once("=\"") {
        let Some((value, remainder)) = after.split_once('"') else {
            break;
        };
        found.insert(name.trim().to_owned(), value.to_owned());
        rest = remainder;
    }
    found
}

/// Calls `check` every `pause` until it passes or [`PATIENCE`] runs out
/// (counted from `since`); what it returned last.
fn retry<T>(
    since: Instant,
    pause: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    loop {
        let result = check();
        if result.is_ok() || since.elapsed() > PATIENCE {
            return result;
        }
        sleep(pause);
    }
}

/// The grid as the browser sees it.
fn seen_grid(browser: &Browser, url: &str) -> Grid {
    Grid::from_dom(&browser.dom(url))
}

/// The grid from the demo's `/api/status` (empty if it did not answer).
fn json_grid(demo: &Running) -> Grid {
    let (_, body) = demo.get("/api/status");
    serde_json::from_str(&body)
        .map(|status| Grid::from_json(&status))
        .unwrap_or_default()
}

#[test]
fn a_one_region_fault_turns_only_that_region_red_in_the_browser() {
    let Some(browser) = Browser::find("browser-fault") else {
        return;
    };
    let scenario = fixture_path(SEND_DROP);
    let demo = start_demo(&scenario);
    let url = format!("http://{}/", demo.addr);

    // Runs are periodic: wait (bounded) until every probe ran everywhere and
    // the fault shows, as the browser sees the page.
    let shown = retry(Instant::now(), Duration::from_secs(1), || {
        let grid = seen_grid(&browser, &url);
        grid.complete()?;
        grid.red_with("group_message", FAULTED, "not_delivered")?;
        grid.healthy_regions_green()
    });
    assert_eq!(shown, Ok(()), "demo log:\n{}", demo.log());
}

#[test]
fn the_group_outage_replay_goes_red_in_one_region_then_recovers() {
    let Some(browser) = Browser::find("browser-replay") else {
        return;
    };
    let scenario = repo_file("config/scenarios/group-outage.yaml");
    let demo = start_demo(&scenario);
    let url = format!("http://{}/", demo.addr);
    let started = Instant::now();
    let mut reasons_seen = BTreeSet::new();
    let mut watch = |grid: Grid| {
        for cell in grid.in_region(FAULTED) {
            reasons_seen.extend(cell.reasons.iter().cloned());
        }
        grid
    };

    // Mid-outage: several ap-south cells red, the other regions green, in the browser.
    let outage = retry(started, Duration::from_millis(500), || {
        let grid = watch(json_grid(&demo));
        grid.faulted_red(3)?;
        grid.healthy_regions_green()?;
        let seen = seen_grid(&browser, &url);
        seen.faulted_red(3)?;
        seen.healthy_regions_green()
    });
    assert_eq!(outage, Ok(()), "demo log:\n{}", demo.log());
    browser.screenshot(&url, (1280, 1600), "status-replay.png", "status.png");

    // After the scenario's last fault ends, every cell turns green again.
    let recovered = retry(started, Duration::from_millis(500), || {
        let grid = watch(json_grid(&demo));
        grid.complete()?;
        grid.all_green(FAULTED)?;
        grid.healthy_regions_green()?;
        let seen = seen_grid(&browser, &url);
        seen.complete()?;
        seen.all_green(FAULTED)?;
        seen.healthy_regions_green()
    });
    assert_eq!(recovered, Ok(()), "demo log:\n{}", demo.log());

    // The reasons the replay's faults must produce on the way.
    for reason in [
        "http_error",
        "leave_rejected",
        "settings_rejected",
        "member_add_failed",
    ] {
        assert!(
            reasons_seen.contains(reason),
            "{FAULTED} never showed {reason}; it showed {reasons_seen:?}"
        );
    }
}

#[test]
fn cells_are_read_from_a_dom_dump_and_from_json() {
    let dom = r#"<table><tr><td class="cell" data-probe="group_message" data-region="ap-south" data-target="mock" data-state="red" data-reasons="not_delivered timeout" title="x"><div>failing</div></td><td>other</td></tr></table>"#;
    let json = serde_json::json!({"cells": [{
        "probe": "group_message", "region": "ap-south", "target": "mock",
        "state": "red", "reasons": ["not_delivered", "timeout"],
    }]});
    for grid in [Grid::from_dom(dom), Grid::from_json(&json)] {
        assert_eq!(grid.0.len(), 1);
        assert_eq!(grid.red_with("group_message", FAULTED, "timeout"), Ok(()));
        assert!(
            grid.red_with("group_message", FAULTED, "duplicate")
                .is_err()
        );
        assert!(grid.healthy_regions_green().is_err(), "no cells there yet");
        assert!(grid.complete().is_err());
    }
}
