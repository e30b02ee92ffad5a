//! The status pages: the agent's board, page and HTTP endpoints, the page in
//! headless Chromium, the fleet status page over a real Prometheus (its
//! stack in [`stack`]), a user's report on the public page confirming an
//! outage ([`report_flow`]), a visitor's "Notify me" hearing of an outage
//! and its end ([`notify_flow`]), and its config file.

mod board;
mod browser;
mod config;
mod fleet_live;
mod fleet_page;
mod http;
mod notify_flow;
mod report_flow;
mod stack;
