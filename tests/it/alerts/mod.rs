//! The shipped dashboards, recording and alert rules: promtool, a real
//! Prometheus over real agents, and the alerting end to end with Alertmanager.

mod alerting_e2e;
pub mod dashboards;
