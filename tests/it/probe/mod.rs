//! Probes built in-process against the mock backend: the client they use,
//! the shipped probe files, healthy runs and their lifecycle.

mod client;
mod files;
mod healthy;
mod lifecycle;
