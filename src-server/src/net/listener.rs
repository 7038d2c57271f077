//! TCP/IP Listener: one per module, with several sockets, remote address restrictions, a limit on
//! connections from the same address, a total channel limit and secure (TLS-on-connect) sockets.
//!
//! Guide: guide.txt:4614-4757 (TCP/IP Listeners), 4041-4076 (secure sockets), 773-918 (a bind
//! failure is logged and the server keeps running), 11529-11534 (Channels: past the limit new
//! connections are refused). Port offset: DESIGN.md `--port-offset`.
//!
//! Behaviour:
//! - Each socket has a port, a local address (all or one IP), the "Init SSL/TLS" flag and a
//!   Grant/Deny restriction with an IP list. The guide's table puts the restriction on each socket
//!   row ("a listener socket to accept connections only from ...", guide.txt:4697), so it is per
//!   socket here, not per listener.
//! - A refused connection (restriction, per-address limit, channel limit) is closed at once, with
//!   no greeting (guide.txt:4713-4721). Nothing is read from it.
//! - "Max Connections from same Address" counts across all the listener's sockets (guide.txt:4738).
//! - A bind failure is reported through the event callback and is not fatal: the other sockets run.
//! - [`Listener::update`] rebinds only sockets whose port or local address changed (or that failed
//!   before); TLS flag and restriction changes apply to the next accepted connection.
//!
//! Security: the peer's address is the only input from the network used here; TLS handshakes run
//! in the connection's own task under [`super::tls::HANDSHAKE_TIMEOUT`] while holding its slot, so
//! slow handshakes count against the limits and never block accepting.
//!
//! Port 0 in a [`SocketSettings`] asks the OS for a free port (tests); the settings-file form drops
//! port-0 rows, following the guide's table idiom (port 0 deletes a socket, guide.txt:4652-4655).
//!
//! Settings form ([`ListenerSettings::from_value`] / [`ListenerSettings::to_value`]), keys named
//! after the guide's Listener table columns (guide.txt:4650) and options:
//!
//! ```text
//! { Sockets = ( { Port = 25; Address = all; SSL = No; Restrict = Deny; Addresses = ""; },
//!               { Port = 465; Address = 192.168.1.5; SSL = Yes; Restrict = Grant;
//!                 Addresses = "192.168.1.0-192.168.1.255 ; LAN\e"; } );
//!   MaxPerAddress = unlimited; }
//! ```
//!
//! `Port`: the port before the offset (0 drops the row). `Address`: `all` or one local IP.
//! `SSL`: "Init SSL/TLS", `Yes`/`No`. `Restrict`: `Grant`/`Deny` (default `Deny`). `Addresses`:
//! the restriction's IP list text ([`IpList`]). `MaxPerAddress`: "Max Connections from same
//! Address", a number or `unlimited`. Missing keys take these defaults; unknown keys are ignored.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use super::iplist::IpList;
use super::tls::TlsSetup;
use crate::format::{dict, Value};

/// A byte stream a session runs on: plain TCP or TLS over TCP.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// An accepted connection handed to the module.
pub struct Connection {
    /// The stream, already past the TLS handshake on a secure socket.
    pub stream: Box<dyn AsyncStream>,
    /// The remote address (IPv4-mapped IPv6 addresses are given as IPv4).
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// True when the socket is a secure (TLS-on-connect) socket.
    pub tls: bool,
}

/// The module's session entry point. The listener runs the returned future in its own task and
/// counts the connection until the future completes.
pub type Handler =
    Arc<dyn Fn(Connection) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Receives listener events; the server glue turns them into log records.
pub type EventSink = Arc<dyn Fn(ListenerEvent) + Send + Sync>;

/// Something a listener reports.
#[derive(Debug)]
pub enum ListenerEvent {
    /// A socket is listening.
    Bound { listener: String, local: SocketAddr },
    /// A socket could not be bound (port in use, no such local address, no permission).
    BindFailed {
        listener: String,
        local: String,
        error: io::Error,
    },
    /// accept() failed (e.g. out of file descriptors); the socket keeps trying.
    AcceptFailed {
        listener: String,
        local: SocketAddr,
        error: io::Error,
    },
    /// The socket's Grant/Deny restriction refused the peer.
    Restricted {
        listener: String,
        peer: SocketAddr,
        local: SocketAddr,
    },
    /// The peer already has "Max Connections from same Address" connections.
    TooManyFromAddress {
        listener: String,
        peer: SocketAddr,
        limit: usize,
    },
    /// All channels are busy.
    ChannelsBusy {
        listener: String,
        peer: SocketAddr,
        limit: usize,
    },
    /// The TLS handshake on a secure socket failed or timed out.
    TlsFailed {
        listener: String,
        peer: SocketAddr,
        error: String,
    },
}

/// Remote address restriction kind (guide.txt:4697-4705).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestrictKind {
    /// Accept only the listed addresses.
    Grant,
    /// Refuse the listed addresses (an empty Deny list accepts everybody).
    #[default]
    Deny,
}

/// One listener socket row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSettings {
    /// TCP port before the port offset; 0 asks the OS for a free port.
    pub port: u16,
    /// Local address; `None` means all addresses.
    pub address: Option<IpAddr>,
    /// "Init SSL/TLS": negotiate TLS as soon as the connection is accepted.
    pub tls: bool,
    /// Grant or Deny.
    pub restrict: RestrictKind,
    /// The restriction's address list.
    pub addresses: IpList,
}

impl SocketSettings {
    /// A clear-text socket on all addresses, open to everybody.
    pub fn new(port: u16) -> SocketSettings {
        SocketSettings {
            port,
            address: None,
            tls: false,
            restrict: RestrictKind::Deny,
            addresses: IpList::default(),
        }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        match self.restrict {
            RestrictKind::Grant => self.addresses.contains(ip),
            RestrictKind::Deny => !self.addresses.contains(ip),
        }
    }
}

/// A listener's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListenerSettings {
    /// The sockets.
    pub sockets: Vec<SocketSettings>,
    /// "Max Connections from same Address"; 0 means no limit.
    pub max_per_address: usize,
}

impl ListenerSettings {
    /// Check the guide's socket conflicts (guide.txt:4628-4635): no two sockets on the same port
    /// and local address, and a socket on all addresses excludes every other socket on its port.
    pub fn validate(&self) -> Result<(), String> {
        for (i, a) in self.sockets.iter().enumerate() {
            for b in &self.sockets[i + 1..] {
                if a.port != 0
                    && a.port == b.port
                    && (a.address.is_none() || b.address.is_none() || a.address == b.address)
                {
                    return Err(format!("two sockets on port {} conflict", a.port));
                }
            }
        }
        Ok(())
    }
}

/// A required-or-default text value of a settings dictionary.
fn text_or(v: &Value, key: &str, default: &str) -> Result<String, String> {
    match v.get(key) {
        None => Ok(default.to_string()),
        Some(x) => x
            .as_text()
            .map(|t| t.trim().to_string())
            .ok_or_else(|| format!("{key} must be a string")),
    }
}

fn yes_no(t: &str, key: &str) -> Result<bool, String> {
    match t.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("{key} must be Yes or No, not '{t}'")),
    }
}

impl SocketSettings {
    /// Read one socket row; `Ok(None)` for a port-0 row (deleted, guide.txt:4652-4655).
    pub fn from_value(v: &Value) -> Result<Option<SocketSettings>, String> {
        if v.as_dict().is_none() {
            return Err("a socket must be a dictionary".into());
        }
        let port = text_or(v, "Port", "0")?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("Port '{port}' is not a number 0-65535"))?;
        if port == 0 {
            return Ok(None);
        }
        let address = text_or(v, "Address", "all")?;
        let address = if address.eq_ignore_ascii_case("all") {
            None
        } else {
            Some(
                address
                    .parse()
                    .map_err(|_| format!("Address '{address}' is not 'all' or an IP address"))?,
            )
        };
        let tls = yes_no(&text_or(v, "SSL", "No")?, "SSL")?;
        let restrict = match text_or(v, "Restrict", "Deny")?
            .to_ascii_lowercase()
            .as_str()
        {
            "grant" => RestrictKind::Grant,
            "deny" => RestrictKind::Deny,
            other => return Err(format!("Restrict must be Grant or Deny, not '{other}'")),
        };
        let addresses =
            IpList::parse(&text_or(v, "Addresses", "")?).map_err(|e| format!("Addresses: {e}"))?;
        Ok(Some(SocketSettings {
            port,
            address,
            tls,
            restrict,
            addresses,
        }))
    }

    /// The socket row in settings form.
    pub fn to_value(&self) -> Value {
        dict([
            ("Port", Value::from(self.port.to_string())),
            (
                "Address",
                Value::from(self.address.map_or("all".to_string(), |a| a.to_string())),
            ),
            ("SSL", Value::from(if self.tls { "Yes" } else { "No" })),
            (
                "Restrict",
                Value::from(match self.restrict {
                    RestrictKind::Grant => "Grant",
                    RestrictKind::Deny => "Deny",
                }),
            ),
            ("Addresses", Value::from(self.addresses.to_string())),
        ])
    }
}

impl ListenerSettings {
    /// Read the settings form (see the module header); checks socket conflicts too.
    pub fn from_value(v: &Value) -> Result<ListenerSettings, String> {
        if v.as_dict().is_none() {
            return Err("listener settings must be a dictionary".into());
        }
        let sockets = match v.get("Sockets") {
            None => Vec::new(),
            Some(s) => {
                let rows = s.as_array().ok_or("Sockets must be an array")?;
                let mut sockets = Vec::with_capacity(rows.len());
                for (i, row) in rows.iter().enumerate() {
                    if let Some(s) = SocketSettings::from_value(row)
                        .map_err(|e| format!("socket {}: {e}", i + 1))?
                    {
                        sockets.push(s);
                    }
                }
                sockets
            }
        };
        let max = text_or(v, "MaxPerAddress", "unlimited")?;
        let max_per_address = if max.eq_ignore_ascii_case("unlimited") {
            0
        } else {
            max.parse()
                .map_err(|_| format!("MaxPerAddress must be a number or unlimited, not '{max}'"))?
        };
        let settings = ListenerSettings {
            sockets,
            max_per_address,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// The settings form (see the module header).
    pub fn to_value(&self) -> Value {
        let max = if self.max_per_address == 0 {
            "unlimited".to_string()
        } else {
            self.max_per_address.to_string()
        };
        dict([
            (
                "Sockets",
                Value::from(
                    self.sockets
                        .iter()
                        .map(SocketSettings::to_value)
                        .collect::<Vec<_>>(),
                ),
            ),
            ("MaxPerAddress", Value::from(max)),
        ])
    }
}

/// Where a socket stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketStatus {
    /// Listening on this address.
    Bound(SocketAddr),
    /// The bind failed with this error text.
    Failed(String),
}

/// One socket's state as reported by [`Listener::state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketState {
    /// The socket's settings.
    pub settings: SocketSettings,
    /// Bound or failed.
    pub status: SocketStatus,
}

struct Limits {
    max_per_address: usize,
    channels: usize,
}

/// State shared by the listener's accept tasks and the permits of its live connections.
struct Shared {
    name: String,
    tls: Option<TlsSetup>,
    handler: Handler,
    events: EventSink,
    limits: RwLock<Limits>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    live: AtomicUsize,
}

/// A live connection's slot; dropping it frees the slot and the per-address count.
struct Permit {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.shared.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// Take a slot for `peer`, or report why not.
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Permit> {
        let (max_per, channels) = {
            let l = self.limits.read().unwrap_or_else(|e| e.into_inner());
            (l.max_per_address, l.channels)
        };
        let ip = peer.ip();
        let mut map = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        // The count only changes under the per-address lock, so the check and the increment agree.
        if self.live.load(Ordering::SeqCst) >= channels {
            drop(map);
            self.report(ListenerEvent::ChannelsBusy {
                listener: self.name.clone(),
                peer,
                limit: channels,
            });
            return None;
        }
        let n = map.entry(ip).or_insert(0);
        if max_per != 0 && *n >= max_per {
            drop(map);
            self.report(ListenerEvent::TooManyFromAddress {
                listener: self.name.clone(),
                peer,
                limit: max_per,
            });
            return None;
        }
        *n += 1;
        self.live.fetch_add(1, Ordering::SeqCst);
        Some(Permit {
            shared: self.clone(),
            ip,
        })
    }

    fn report(&self, e: ListenerEvent) {
        (self.events)(e);
    }
}

/// A running socket: its settings (shared with its accept task) and its task.
struct Running {
    settings: Arc<RwLock<SocketSettings>>,
    status: SocketStatus,
    task: Option<JoinHandle<()>>,
}

/// One module's listener.
pub struct Listener {
    shared: Arc<Shared>,
    port_offset: u16,
    sockets: Mutex<Vec<Running>>,
    update_lock: tokio::sync::Mutex<()>,
}

impl Listener {
    /// A listener named `name` (the module name, used in events) with no sockets yet; call
    /// [`Listener::update`] to bind. `tls` is needed by secure sockets; without it their
    /// connections are dropped and reported.
    pub fn new(
        name: &str,
        port_offset: u16,
        tls: Option<TlsSetup>,
        handler: Handler,
        events: EventSink,
    ) -> Listener {
        Listener {
            shared: Arc::new(Shared {
                name: name.to_string(),
                tls,
                handler,
                events,
                limits: RwLock::new(Limits {
                    max_per_address: 0,
                    channels: usize::MAX,
                }),
                per_address: Mutex::new(HashMap::new()),
                live: AtomicUsize::new(0),
            }),
            port_offset,
            sockets: Mutex::new(Vec::new()),
            update_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Set the module's Channels limit: connections past it are refused. `usize::MAX` means none.
    pub fn set_channels(&self, channels: usize) {
        self.shared
            .limits
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .channels = channels;
    }

    /// Live connections (including those still in the TLS handshake).
    pub fn connections(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Apply new settings: close sockets no longer wanted, keep the ones whose port and address
    /// are unchanged (updating their TLS flag and restriction), bind the new and the failed ones.
    /// Bind failures are reported and kept in [`Listener::state`]. Returns when every removed
    /// socket is closed.
    pub async fn update(&self, settings: ListenerSettings) {
        let _serial = self.update_lock.lock().await;
        self.shared
            .limits
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .max_per_address = settings.max_per_address;
        let old = std::mem::take(&mut *self.sockets.lock().unwrap_or_else(|e| e.into_inner()));
        let mut old: Vec<Option<Running>> = old.into_iter().map(Some).collect();
        let mut new = Vec::with_capacity(settings.sockets.len());
        let mut to_bind = Vec::new();
        for (i, want) in settings.sockets.into_iter().enumerate() {
            // Port 0 (OS-chosen) sockets never match: each update binds them afresh.
            let keep = old.iter_mut().find(|r| {
                r.as_ref().is_some_and(|r| {
                    let s = r.settings.read().unwrap_or_else(|e| e.into_inner());
                    want.port != 0
                        && s.port == want.port
                        && s.address == want.address
                        && matches!(r.status, SocketStatus::Bound(_))
                })
            });
            match keep.and_then(Option::take) {
                Some(r) => {
                    *r.settings.write().unwrap_or_else(|e| e.into_inner()) = want;
                    new.push(r);
                }
                None => {
                    to_bind.push(i);
                    new.push(Running {
                        settings: Arc::new(RwLock::new(want)),
                        status: SocketStatus::Failed("not bound yet".into()),
                        task: None,
                    });
                }
            }
        }
        close_all(old.into_iter().flatten().collect()).await;
        for i in to_bind {
            let settings = new[i].settings.clone();
            let want = settings.read().unwrap_or_else(|e| e.into_inner()).clone();
            let local = self.local_addr(&want);
            let bound = match local {
                Ok(addr) => bind(addr).await.map_err(|e| (addr.to_string(), e)),
                Err(e) => Err((format!("port {}+{}", want.port, self.port_offset), e)),
            };
            match bound {
                Ok(l) => {
                    let addr = l
                        .local_addr()
                        .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
                    self.shared.report(ListenerEvent::Bound {
                        listener: self.shared.name.clone(),
                        local: addr,
                    });
                    new[i].status = SocketStatus::Bound(addr);
                    new[i].task = Some(tokio::spawn(accept_loop(
                        self.shared.clone(),
                        l,
                        addr,
                        settings,
                    )));
                }
                Err((local, error)) => {
                    new[i].status = SocketStatus::Failed(error.to_string());
                    self.shared.report(ListenerEvent::BindFailed {
                        listener: self.shared.name.clone(),
                        local,
                        error,
                    });
                }
            }
        }
        *self.sockets.lock().unwrap_or_else(|e| e.into_inner()) = new;
    }

    /// Stop accepting on every socket; returns when they are closed. Live sessions go on.
    pub async fn stop(&self) {
        let _serial = self.update_lock.lock().await;
        let old = std::mem::take(&mut *self.sockets.lock().unwrap_or_else(|e| e.into_inner()));
        close_all(old).await;
    }

    /// Each socket's settings and whether it is bound.
    pub fn state(&self) -> Vec<SocketState> {
        let sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        sockets
            .iter()
            .map(|r| SocketState {
                settings: r.settings.read().unwrap_or_else(|e| e.into_inner()).clone(),
                status: r.status.clone(),
            })
            .collect()
    }

    fn local_addr(&self, s: &SocketSettings) -> io::Result<SocketAddr> {
        let port = if s.port == 0 {
            0
        } else {
            s.port.checked_add(self.port_offset).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "port plus port offset is above 65535",
                )
            })?
        };
        // "all" is the IPv6 wildcard, which on Linux also accepts IPv4 (bind() falls back below).
        Ok(SocketAddr::new(
            s.address.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            port,
        ))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let sockets = self.sockets.get_mut().unwrap_or_else(|e| e.into_inner());
        for r in sockets.iter() {
            if let Some(t) = &r.task {
                t.abort();
            }
        }
    }
}

/// Abort the accept tasks and wait until their sockets are closed.
async fn close_all(sockets: Vec<Running>) {
    for r in sockets {
        if let Some(t) = r.task {
            t.abort();
            // The task's future (and its TcpListener) is dropped once this resolves.
            let _ = t.await;
        }
    }
}

/// Bind a listening socket with SO_REUSEADDR (restart while old connections are in TIME_WAIT).
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    fn open(addr: SocketAddr) -> io::Result<TcpListener> {
        let s = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        s.set_reuseaddr(true)?;
        s.bind(addr)?;
        s.listen(1024)
    }
    match open(addr) {
        // A host without IPv6: "all addresses" falls back to the IPv4 wildcard.
        Err(e)
            if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                && e.kind() != io::ErrorKind::AddrInUse =>
        {
            open(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                addr.port(),
            ))
        }
        r => r,
    }
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    local: SocketAddr,
    settings: Arc<RwLock<SocketSettings>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(error) => {
                shared.report(ListenerEvent::AcceptFailed {
                    listener: shared.name.clone(),
                    local,
                    error,
                });
                // Out of descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = canonical(peer);
        let (allowed, tls) = {
            let s = settings.read().unwrap_or_else(|e| e.into_inner());
            (s.allows(peer.ip()), s.tls)
        };
        if !allowed {
            // guide.txt:4713-4716: closed immediately, no greeting.
            drop(stream);
            shared.report(ListenerEvent::Restricted {
                listener: shared.name.clone(),
                peer,
                local,
            });
            continue;
        }
        let Some(permit) = shared.admit(peer) else {
            continue;
        };
        let conn_local = stream.local_addr().map(canonical).unwrap_or(local);
        tokio::spawn(session(
            shared.clone(),
            permit,
            stream,
            peer,
            conn_local,
            tls,
        ));
    }
}

/// One connection's task: TLS handshake on a secure socket, then the module's handler.
async fn session(
    shared: Arc<Shared>,
    permit: Permit,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    tls: bool,
) {
    let _permit = permit;
    let stream: Box<dyn AsyncStream> = if tls {
        let result = match &shared.tls {
            Some(t) => t.upgrade(stream).await.map_err(|e| e.to_string()),
            None => Err("no TLS setup for a secure socket".to_string()),
        };
        match result {
            Ok(s) => Box::new(s),
            Err(error) => {
                shared.report(ListenerEvent::TlsFailed {
                    listener: shared.name.clone(),
                    peer,
                    error,
                });
                return;
            }
        }
    } else {
        Box::new(stream)
    };
    (shared.handler)(Connection {
        stream,
        peer,
        local,
        tls,
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A handler that greets with "hi\n", then echoes lines until EOF.
    fn greeter() -> Handler {
        Arc::new(|mut c: Connection| {
            Box::pin(async move {
                let _ = c.stream.write_all(b"hi\n").await;
                let mut buf = [0u8; 64];
                while let Ok(n) = c.stream.read(&mut buf).await {
                    if n == 0 || c.stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            })
        })
    }

    fn collector() -> (EventSink, Arc<Mutex<Vec<ListenerEvent>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let e2 = events.clone();
        (Arc::new(move |e| e2.lock().unwrap().push(e)), events)
    }

    fn loopback(port: u16) -> SocketSettings {
        SocketSettings {
            address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ..SocketSettings::new(port)
        }
    }

    fn bound(l: &Listener) -> Vec<SocketAddr> {
        l.state()
            .into_iter()
            .filter_map(|s| match s.status {
                SocketStatus::Bound(a) => Some(a),
                SocketStatus::Failed(_) => None,
            })
            .collect()
    }

    /// Connect and read the first bytes: "hi\n" when accepted, "" when closed without a greeting.
    async fn greeting(addr: SocketAddr) -> (TcpStream, String) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 3];
        let mut got = Vec::new();
        while got.len() < 3 {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .unwrap()
            {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        (s, String::from_utf8(got).unwrap())
    }

    async fn wait_for(mut f: impl FnMut() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test]
    async fn accepts_and_counts() {
        let (events, log) = collector();
        let l = Listener::new("TEST", 0, None, greeter(), events);
        l.update(ListenerSettings {
            sockets: vec![loopback(0), loopback(0)],
            max_per_address: 0,
        })
        .await;
        let addrs = bound(&l);
        assert_eq!(addrs.len(), 2);
        let (mut a, g) = greeting(addrs[0]).await;
        assert_eq!(g, "hi\n");
        let (b, g) = greeting(addrs[1]).await;
        assert_eq!(g, "hi\n");
        assert_eq!(l.connections(), 2);
        a.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        drop((a, b));
        wait_for(|| l.connections() == 0).await;
        let n = log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, ListenerEvent::Bound { .. }))
            .count();
        assert_eq!(n, 2);
    }

    #[tokio::test]
    async fn deny_and_grant_close_without_greeting() {
        let (events, log) = collector();
        let l = Listener::new("TEST", 0, None, greeter(), events);
        let mut deny = loopback(0);
        deny.addresses = IpList::parse("127.0.0.0-127.0.0.255 ; loopback").unwrap();
        let mut grant = loopback(0);
        grant.restrict = RestrictKind::Grant;
        grant.addresses = IpList::parse("10.0.0.1").unwrap();
        let mut grant_ok = loopback(0);
        grant_ok.restrict = RestrictKind::Grant;
        grant_ok.addresses = IpList::parse("127.0.0.1").unwrap();
        l.update(ListenerSettings {
            sockets: vec![deny, grant, grant_ok],
            max_per_address: 0,
        })
        .await;
        let addrs = bound(&l);
        assert_eq!(greeting(addrs[0]).await.1, "");
        assert_eq!(greeting(addrs[1]).await.1, "");
        assert_eq!(greeting(addrs[2]).await.1, "hi\n");
        let n = log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, ListenerEvent::Restricted { .. }))
            .count();
        assert_eq!(n, 2);
    }

    #[tokio::test]
    async fn per_address_limit_across_sockets_and_channels() {
        let (events, log) = collector();
        let l = Listener::new("TEST", 0, None, greeter(), events);
        l.update(ListenerSettings {
            sockets: vec![loopback(0), loopback(0)],
            max_per_address: 2,
        })
        .await;
        let addrs = bound(&l);
        let (a, g1) = greeting(addrs[0]).await;
        let (_b, g2) = greeting(addrs[1]).await;
        let (_c, g3) = greeting(addrs[0]).await;
        assert_eq!(
            (g1.as_str(), g2.as_str(), g3.as_str()),
            ("hi\n", "hi\n", "")
        );
        assert!(log
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ListenerEvent::TooManyFromAddress { limit: 2, .. })));
        // Ending a session frees its slot.
        drop(a);
        wait_for(|| l.connections() == 1).await;
        let (_d, g4) = greeting(addrs[1]).await;
        assert_eq!(g4, "hi\n");
        // The channel limit refuses past the total.
        l.set_channels(2);
        assert_eq!(greeting(addrs[0]).await.1, "");
        assert!(log
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ListenerEvent::ChannelsBusy { .. })));
    }

    #[tokio::test]
    async fn bind_failure_is_reported_and_not_fatal() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let (events, log) = collector();
        let l = Listener::new("TEST", 0, None, greeter(), events);
        l.update(ListenerSettings {
            sockets: vec![loopback(port), loopback(0)],
            max_per_address: 0,
        })
        .await;
        let state = l.state();
        assert!(matches!(state[0].status, SocketStatus::Failed(_)));
        let SocketStatus::Bound(addr) = state[1].status else {
            panic!("second socket not bound: {state:?}");
        };
        assert_eq!(greeting(addr).await.1, "hi\n");
        assert!(log.lock().unwrap().iter().any(|e| matches!(
            e,
            ListenerEvent::BindFailed { error, .. } if error.kind() == io::ErrorKind::AddrInUse
        )));
        // Once the port is free, update() retries the failed socket.
        drop(busy);
        l.update(ListenerSettings {
            sockets: vec![loopback(port), loopback(0)],
            max_per_address: 0,
        })
        .await;
        assert!(bound(&l).contains(&SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
    }

    #[tokio::test]
    async fn port_offset_and_conflicts() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let (events, _) = collector();
        let l = Listener::new("TEST", 1, None, greeter(), events);
        l.update(ListenerSettings {
            sockets: vec![loopback(port - 1)],
            max_per_address: 0,
        })
        .await;
        assert_eq!(
            bound(&l),
            vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))]
        );
        let over = Listener::new("TEST", 2, None, greeter(), collector().0);
        over.update(ListenerSettings {
            sockets: vec![loopback(65535)],
            max_per_address: 0,
        })
        .await;
        assert!(matches!(over.state()[0].status, SocketStatus::Failed(_)));
        let all = SocketSettings::new(25);
        let one = loopback(25);
        let s = |v: Vec<SocketSettings>| ListenerSettings {
            sockets: v,
            max_per_address: 0,
        };
        assert!(s(vec![all.clone(), one.clone()]).validate().is_err());
        assert!(s(vec![one.clone(), one.clone()]).validate().is_err());
        let other = SocketSettings {
            address: Some("127.0.0.2".parse().unwrap()),
            ..loopback(25)
        };
        assert!(s(vec![one, other, SocketSettings::new(26)])
            .validate()
            .is_ok());
    }

    #[test]
    fn settings_form() {
        let text = br#"{ Sockets = ( { Port = 25; Address = all; SSL = No; },
            { Port = 0; Address = all; },
            { Port = 465; Address = 192.168.1.5; SSL = Yes; Restrict = Grant;
              Addresses = "192.168.1.0-192.168.1.255 ; LAN\e10.0.0.1\e"; } );
            MaxPerAddress = 10; }"#;
        let v = crate::format::parse(text).unwrap();
        let s = ListenerSettings::from_value(&v).unwrap();
        assert_eq!(s.sockets.len(), 2);
        assert_eq!(s.sockets[0], SocketSettings::new(25));
        assert_eq!(s.sockets[1].address, Some("192.168.1.5".parse().unwrap()));
        assert!(s.sockets[1].tls);
        assert_eq!(s.sockets[1].restrict, RestrictKind::Grant);
        assert!(s.sockets[1].addresses.contains("10.0.0.1".parse().unwrap()));
        assert_eq!(s.max_per_address, 10);
        let back = s.to_value();
        assert_eq!(ListenerSettings::from_value(&back).unwrap(), s);
        let empty = ListenerSettings::from_value(&crate::format::parse(b"{}").unwrap()).unwrap();
        assert_eq!(empty, ListenerSettings::default());
        assert_eq!(
            String::from_utf8(crate::format::to_bytes(&empty.to_value())).unwrap(),
            "{Sockets=();MaxPerAddress=unlimited;}"
        );
        for bad in [
            &b"{Sockets=({Port=70000;});}"[..],
            b"{Sockets=({Port=25;Address=nowhere;});}",
            b"{Sockets=({Port=25;SSL=maybe;});}",
            b"{Sockets=({Port=25;Restrict=Allow;});}",
            b"{Sockets=({Port=25;Addresses=\"1.2.3.x\";});}",
            b"{Sockets=({Port=25;},{Port=25;Address=127.0.0.1;});}",
            b"{MaxPerAddress=many;}",
            b"{Sockets=x;}",
            b"(1)",
        ] {
            let v = crate::format::parse(bad).unwrap();
            assert!(
                ListenerSettings::from_value(&v).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn tls_on_connect() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsSetup::load_or_create(dir.path(), "main.test").unwrap();
        let (events, log) = collector();
        let handler: Handler = Arc::new(|mut c: Connection| {
            Box::pin(async move {
                let msg = format!("tls={}\n", c.tls);
                let _ = c.stream.write_all(msg.as_bytes()).await;
                let _ = c.stream.shutdown().await;
            })
        });
        let l = Listener::new("TEST", 0, Some(tls.clone()), handler, events);
        let mut secure = loopback(0);
        secure.tls = true;
        l.update(ListenerSettings {
            sockets: vec![secure],
            max_per_address: 0,
        })
        .await;
        let addr = bound(&l)[0];
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connector = crate::net::tls::tests::connector(&tls.server_certificate_pem());
        let mut c = connector.connect(name, tcp).await.unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "tls=true\n");
        // A clear-text client fails the handshake, which is reported.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain.write_all(b"EHLO x\r\n").await.unwrap();
        let mut buf = Vec::new();
        let _ = plain.read_to_end(&mut buf).await;
        wait_for(|| {
            log.lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, ListenerEvent::TlsFailed { .. }))
        })
        .await;
    }

    #[tokio::test]
    async fn update_rebinds_only_changes_and_stop_closes() {
        let (events, log) = collector();
        let l = Listener::new("TEST", 0, None, greeter(), events);
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        l.update(ListenerSettings {
            sockets: vec![loopback(port), loopback(0)],
            max_per_address: 0,
        })
        .await;
        let before = bound(&l);
        assert_eq!(before.len(), 2);
        // A live session survives the update and the stop.
        let (mut live, g) = greeting(before[0]).await;
        assert_eq!(g, "hi\n");
        // Same port: kept (no new Bound event), restriction applies at once. The port-0 row is
        // replaced by a fresh socket.
        let mut denied = loopback(port);
        denied.addresses = IpList::parse("127.0.0.1").unwrap();
        l.update(ListenerSettings {
            sockets: vec![denied],
            max_per_address: 0,
        })
        .await;
        assert_eq!(bound(&l), vec![before[0]]);
        let bound_events = log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, ListenerEvent::Bound { .. }))
            .count();
        assert_eq!(bound_events, 2);
        assert_eq!(greeting(before[0]).await.1, "");
        assert!(TcpStream::connect(before[1]).await.is_err());
        l.stop().await;
        assert!(l.state().is_empty());
        assert!(TcpStream::connect(before[0]).await.is_err());
        live.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        live.read_exact(&mut b).await.unwrap();
        assert_eq!(l.connections(), 1);
    }
}
