//! Graphs: a builder that records typed ops with static shapes and named values, a planner
//! that packs intermediate buffers into one arena by liveness, and an executor that replays
//! the plan on any [`Backend`](crate::backend::Backend).

mod builder;
mod executor;
mod op;
mod planner;
mod profile;
mod shape_infer;

pub use builder::{Graph, GraphBuilder, Node, Value, ValueId, ValueSource};
pub use executor::{Executor, ExecutorOptions, ReplayState};
pub use op::{GeluKind, Op};
pub use planner::{Placement, Plan};
