//! Protocol modules; each has its own `//!` header.

pub mod pop;
pub mod pwd;
