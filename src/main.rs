//! The `tailcast` command line.

fn main() {}
