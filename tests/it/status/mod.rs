//! The status pages: the agent's board, page and HTTP endpoints, the page in
//! headless Chromium, the fleet status page over a real Prometheus, and its
//! config file.

mod board;
mod browser;
mod config;
mod fleet_live;
mod fleet_page;
mod http;
