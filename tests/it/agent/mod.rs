//! The agent as a user runs it: the binary's commands, the agent in-process,
//! the demo, target files, and the agent under faults and bad servers.

mod binary;
mod check;
mod demo;
mod fault_tolerance;
mod in_process;
mod once;
mod target_files;
