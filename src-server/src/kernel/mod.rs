//! The server kernel: components shared by every module (logs, clock, router, rules, queue, the
//! session registry).

pub mod clock;
pub mod log;
pub mod mail;
pub mod queue;
pub mod router;
pub mod rules;
pub mod sessions;
