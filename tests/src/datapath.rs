//! Loading the datapath for tests (the agent's own loader).
pub use vpc_agent::datapath::Datapath;
