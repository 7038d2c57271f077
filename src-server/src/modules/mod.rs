//! Protocol modules; each has its own `//!` header.

pub mod pipe;
pub mod pwd;
