//! Protocol modules; each has its own `//!` header.

pub mod local;
pub mod pwd;
