//! `make chaos`: the plan of events it sends and the verdict it reaches (`src/bin/chaos.rs` drives).

pub mod plan;
pub mod verdict;
