//! The `gatehoused` service glue: options, the `ProcessID` lock, start-up and shutdown.

pub mod lock;
pub mod options;
