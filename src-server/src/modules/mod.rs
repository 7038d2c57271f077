//! Protocol modules; each has its own `//!` header.

pub mod http;
pub mod imap;
pub mod local;
pub mod pipe;
pub mod pop;
pub mod pwd;
pub mod rpop;
pub mod smtp;
