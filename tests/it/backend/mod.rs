//! The mock backend over real sockets: its model, its faults, bad input, and
//! its benchmark.

mod bench;
mod faults;
mod input;
mod model;
