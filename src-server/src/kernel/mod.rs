//! The server kernel: components shared by every module (logs, clock, router; later the queue,
//! dequeuer, rules and resolver).

pub mod clock;
pub mod log;
pub mod mail;
pub mod router;
pub mod rules;
