//! Protocol modules; each has its own `//!` header.

pub mod pwd;
pub mod smtp;
