//! The status pages: the agent's board, page and HTTP endpoints, the page in
//! headless Chromium, and the fleet status page over a real Prometheus.

mod board;
mod browser;
mod fleet_live;
mod fleet_page;
mod http;
