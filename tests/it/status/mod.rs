//! The status pages: the agent's board, page and HTTP endpoints, the page in
//! headless Chromium, the fleet status page over a real Prometheus (its
//! stack in [`stack`]), a user's report on the public page confirming an
//! outage ([`report_flow`]), and its config file.

mod board;
mod browser;
mod config;
mod fleet_live;
mod fleet_page;
mod http;
mod report_flow;
mod stack;
