//! Network plumbing shared by the protocol modules.

pub mod sasl;
