//! The server kernel: components shared by every module (logs, clock; later the queue, router,
//! dequeuer, rules and resolver).

pub mod clock;
pub mod log;
pub mod mail;
pub mod rules;
