//! Networking shared by every module: TCP/IP Listeners (multi-socket, Grant/Deny, per-address
//! limits), the one TLS setup (rustls) and the guide's IP address list format.
//!
//! Guide: guide.txt:4614-4757 (Listeners), 4041-4379 (SSL/TLS, certificates), 3449-3479 and
//! 4697-4712 (IP lists). SASL mechanisms and APOP for every login: `sasl`.

pub mod iplist;
pub mod lines;
pub mod listener;
pub mod sasl;
pub mod tls;

pub use iplist::IpList;
pub use listener::{
    AsyncStream, Connection, EventSink, Handler, Listener, ListenerEvent, ListenerSettings,
    RestrictKind, SocketSettings, SocketState, SocketStatus,
};
pub use tls::TlsSetup;
