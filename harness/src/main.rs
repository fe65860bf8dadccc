//! `qus-harness`.

fn main() {}
