//! The fleet's status page (`chatprobe status-page`): every region's and
//! target's health, incidents, 90-day uptime and an Atom feed, built only
//! from Prometheus' query API.

pub mod incidents;
pub mod prometheus;
pub mod samples;
pub mod board;
pub mod uptime;
pub mod feed;
pub mod notes;
pub mod sections;
