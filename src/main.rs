//! The `chatprobe` command line.
#![forbid(unsafe_code)]

fn main() {}
