//! Protocol modules; each has its own `//!` header.

pub mod http;
pub mod pwd;
pub mod smtp;
