//! Gatehouse: a messaging server for small offices and dial-up sites, with the feature set of the
//! CommuniGate Pro 3.5 guide. This crate holds the service (`gatehoused`), its modules, and the
//! CLI client library used by `gatehouse` and the desktop manager.

pub mod cli;
pub mod dialup;
pub mod format;
pub mod kernel;
pub mod mailbox;
pub mod modules;
pub mod net;
pub mod server;
pub mod store;
