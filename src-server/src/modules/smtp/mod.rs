//! The SMTP module, receiving side: the ESMTP server on ports 25, 465 (TLS on connect) and 587
//! (submission), with the Protection rules that keep it from being an open relay.
//!
//! Standards: RFC 5321, RFC 1870 SIZE, RFC 2920 PIPELINING, RFC 6152 8BITMIME, RFC 3461 DSN,
//! RFC 1985 ETRN, RFC 2645 ATRN/ODMR, RFC 2034 ENHANCEDSTATUSCODES, RFC 3207 STARTTLS,
//! RFC 4954 AUTH (PLAIN, LOGIN, CRAM-MD5 through `net::sasl`), RFC 6409 submission (AUTH before
//! MAIL on 587), RFC 3848 (`with ESMTPSA`).
//! Guide: receiving guide.txt:11511-11609, relaying 11748-11786, routing 11887-11954,
//! Protection 3141-3607 (Client IP Addresses, relaying, Return-Path verification, Blacklisted IP
//! Addresses, spam traps, Banned lines).
//!
//! Parts: [`proto`] is the pure codec; [`session`] runs one connection against an
//! `Arc<dyn Submit>` (the Enqueuer) and an `Arc<dyn Route>` (the Router).
//!
//! Settings: the module's own (`Settings/SMTP.settings`, declared in [`module_decl`]) and the
//! server-wide Protection files `ClientIPs`, `BlacklistedIPs` (IP list text) and `Banned`
//! (`{Header = (lines); Body = (lines);}`). They are read once per connection ([`Policy`]), so a
//! change applies to the next connection.
//!
//! Security: the session never opens files; it calls the Router, the Enqueuer and the credential
//! check, each off the async threads. Relaying (a recipient routed to SMTP or PIPE) needs a
//! Client IP Address, an authenticated session or a `Relay:` route — there is no setting that
//! opens the relay.
//!
//! Dial-up: [`etrn`] serves ETRN, ATRN (also on port 366, where AUTH is required) and wake-up
//! e-mails and holds the queues of Hold Mail for Domains; [`wakeup`] sends ETRN/ATRN to our own
//! backup server. TURN is refused.
//!
//! DNS-based Protection (RBL, Blacklist/UnBlacklist/Detect Clients by DNS Name, the DNS part of
//! HELO and Return-Path verification) is [`dns`].
//!
//! todo: Relay to Clients "simple addresses" and Relay to Hosts We Backup; Read-then-Send
//! temporary clients; "Reject all Logins from Non-Client IP Addresses"; the 591 blacklist flow
//! through the Router (guide.txt:11799-11885); the Protection page of WebAdmin shows the IP lists
//! only, not the DNS options (set them with SetProtection); DIGEST-MD5 and NTLM.
//!
//! Sending is [`client`]: the `Channel` the Dequeuer calls for `Target::Smtp`.

pub mod client;
pub mod dns;
pub mod etrn;
pub mod proto;
pub mod session;
pub mod suspend;
pub mod wakeup;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{self, CliContext, ModuleDecl};
use crate::format::{Dict, Value};
use crate::kernel::log::Logger;
use crate::kernel::mail::{Route, Submit};
use crate::net::{Connection, Handler, IpList, TlsSetup};
use crate::store::settings::SettingDecl;
use crate::store::Store;

/// The module (and log component) name.
pub const NAME: &str = "SMTP";

/// The listener's default sockets (guide.txt:11537-11546, DESIGN.md §Default ports): 25, 465 with
/// TLS on connect, 587 for submission (see `SubmissionPort`).
/// Port 366 serves ODMR (RFC 2645 §6, guide.txt:11725-11727): AUTH is required there.
pub const DEFAULT_LISTENER: &str = "{Sockets=({Port=25;Address=all;SSL=No;},{Port=465;Address=all;SSL=Yes;},{Port=587;Address=all;SSL=No;},{Port=366;Address=all;SSL=No;});MaxPerAddress=unlimited;}";

/// The ODMR port (RFC 2645 §6), before the port offset.
pub const ODMR_PORT: u16 = 366;

/// Who an option applies to (guide.txt:11558-11609: "Non-Clients", "Nobody").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whom {
    /// Every client.
    Everybody,
    /// Clients not in Client IP Addresses.
    NonClients,
    /// Nobody.
    Nobody,
}

impl Whom {
    fn parse(key: &str, v: &str) -> Result<Whom, String> {
        match v.to_ascii_lowercase().as_str() {
            "everybody" | "all" => Ok(Whom::Everybody),
            "non-clients" | "nonclients" => Ok(Whom::NonClients),
            "nobody" => Ok(Whom::Nobody),
            _ => Err(format!(
                "{key}: {v:?} is not Everybody, Non-Clients or Nobody"
            )),
        }
    }

    /// Whether the option applies to a peer that is (or is not) a client.
    pub fn applies(self, client: bool) -> bool {
        match self {
            Whom::Everybody => true,
            Whom::NonClients => !client,
            Whom::Nobody => false,
        }
    }
}

/// The SMTP module's settings (see [`module_decl`] for keys and defaults).
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `MessageSizeLimit`: bytes; `None` = unlimited.
    pub size_limit: Option<u64>,
    /// `MessageRecipientsLimit`.
    pub recipients_limit: usize,
    /// `AdvertiseAUTH`.
    pub advertise_auth: Whom,
    /// `Advertise8BITMIME`.
    pub advertise_8bitmime: bool,
    /// `VerifyReturnPath`.
    pub verify_return_path: Whom,
    /// `ForceAUTH`.
    pub force_auth: Whom,
    /// `ErrorsBeforeDisconnect`.
    pub max_errors: u32,
    /// `CommandTimeout`.
    pub command_timeout: Duration,
    /// `DataTimeout`.
    pub data_timeout: Duration,
    /// `SubmissionPort`: the port (before the offset) on which AUTH is required before MAIL.
    pub submission_port: u16,
}

impl Default for SmtpSettings {
    fn default() -> SmtpSettings {
        SmtpSettings {
            size_limit: Some(10 << 20),
            recipients_limit: 100,
            advertise_auth: Whom::Everybody,
            advertise_8bitmime: true,
            // Nobody: verifying needs DNS traffic, which a dial-up site does not want for every
            // message (guide.txt:11563-11568); a site on a permanent link sets Non-Clients.
            verify_return_path: Whom::Nobody,
            force_auth: Whom::Nobody,
            max_errors: 10,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            submission_port: 587,
        }
    }
}

/// The settings declaration for `GetModule SMTP` (guide.txt:11517-11609).
pub fn module_decl() -> ModuleDecl {
    let s = |key, default, doc| SettingDecl { key, default, doc };
    let mut settings = vec![
            s("LogLevel", "2", "Log: what the SMTP module records in the System Log (tag SMTP), 0-5"),
            s("Channels", "20", "Channels: most simultaneous incoming SMTP connections; 0 closes the listener (guide.txt:11529-11534)"),
            s("MessageSizeLimit", "10M", "Message Size Limit: larger messages are refused; bytes with K, M or G, or unlimited (guide.txt:11549-11551)"),
            s("MessageRecipientsLimit", "100", "Message Recipients Limit: most recipients of one message (guide.txt:11553-11556)"),
            s("AdvertiseAUTH", "Everybody", "Advertise AUTH capability to: Everybody, Non-Clients or Nobody; AUTH itself stays available (guide.txt:11572-11578)"),
            s("Advertise8BITMIME", "Yes", "Advertise 8BITMIME: Yes or No; 8-bit messages pass unchanged either way (guide.txt:11590-11597)"),
            s("VerifyReturnPath", "Nobody", "Verify HELO and Return-Path for: Everybody, Non-Clients or Nobody; a qualified HELO name must resolve, and the Return-Path domain is checked in the DNS (DNSServers) unless the Router knows the address (guide.txt:11558-11570, 3406-3448)"),
            s("ForceAUTH", "Nobody", "Force AUTH for: Everybody, Non-Clients or Nobody; a local Return-Path needs AUTH (guide.txt:11599-11609)"),
            s("ErrorsBeforeDisconnect", "10", "protocol errors after which the connection is closed"),
            s("CommandTimeout", "300", "seconds to wait for a command (RFC 5321 §4.5.3.2)"),
            s("DataTimeout", "600", "seconds to wait for each block of message data (RFC 5321 §4.5.3.2)"),
            s("SubmissionPort", "587", "the listener port (before the port offset) that requires AUTH before MAIL (RFC 6409)"),
    ];
    settings.extend(client::setting_decls());
    settings.extend(etrn::setting_decls());
    ModuleDecl {
        name: NAME.into(),
        settings,
        validate: Some(Arc::new(|eff: &Dict| {
            settings_from(eff)?;
            etrn::dialup_settings_from(eff)?;
            client::send_settings_from(eff).map(|_| ())
        })),
        changed: None,
    }
}

/// The module's effective settings as stored in `Settings/SMTP.settings` over the declared
/// defaults (for the parts that run outside a session: sending, holds, wake-ups).
pub(crate) fn stored_settings(store: &Store) -> Dict {
    let mut eff: Dict = module_decl()
        .settings
        .iter()
        .map(|d| (d.key.as_bytes().to_vec(), Value::str(d.default)))
        .collect();
    if let Ok(Value::Dict(stored)) = store.server_settings(NAME) {
        eff.extend(stored);
    }
    eff
}

/// Reads the module's effective settings.
pub fn settings_from(eff: &Dict) -> Result<SmtpSettings, String> {
    let text = |k: &str| {
        eff.get(k.as_bytes())
            .and_then(Value::as_text)
            .map(|t| t.trim().to_string())
    };
    let d = SmtpSettings::default();
    let num = |k: &str, def: u64| -> Result<u64, String> {
        match text(k) {
            None => Ok(def),
            Some(t) => t
                .parse::<u64>()
                .map_err(|_| format!("{k}: {t:?} is not a number")),
        }
    };
    let whom = |k: &str, def: Whom| text(k).map_or(Ok(def), |t| Whom::parse(k, &t));
    let size_limit = match text("MessageSizeLimit") {
        None => d.size_limit,
        Some(t) if t.eq_ignore_ascii_case("unlimited") => None,
        Some(t) => {
            Some(parse_size(&t).ok_or_else(|| format!("MessageSizeLimit: {t:?} is not a size"))?)
        }
    };
    let advertise_8bitmime = match text("Advertise8BITMIME") {
        None => d.advertise_8bitmime,
        Some(t) => match t.to_ascii_lowercase().as_str() {
            "yes" => true,
            "no" => false,
            _ => return Err(format!("Advertise8BITMIME: {t:?} is not Yes or No")),
        },
    };
    let port = num("SubmissionPort", 587)?;
    Ok(SmtpSettings {
        size_limit,
        recipients_limit: usize::try_from(num("MessageRecipientsLimit", 100)?)
            .unwrap_or(usize::MAX)
            .max(1),
        advertise_auth: whom("AdvertiseAUTH", d.advertise_auth)?,
        advertise_8bitmime,
        verify_return_path: whom("VerifyReturnPath", d.verify_return_path)?,
        force_auth: whom("ForceAUTH", d.force_auth)?,
        max_errors: u32::try_from(num("ErrorsBeforeDisconnect", 10)?)
            .unwrap_or(u32::MAX)
            .max(1),
        command_timeout: Duration::from_secs(num("CommandTimeout", 300)?.max(1)),
        data_timeout: Duration::from_secs(num("DataTimeout", 600)?.max(1)),
        submission_port: u16::try_from(port)
            .map_err(|_| format!("SubmissionPort: {port} is not a port"))?,
    })
}

/// `123`, `64K`, `10M`, `1G` (the guide's size notation).
fn parse_size(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let mult: u64 = match s[split..].to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Banned header and body lines (guide.txt:3580-3607): case-sensitive, `*` wildcards.
#[derive(Debug, Clone, Default)]
pub struct Banned {
    /// Banned Header Lines; a folded field is matched whole, its line ends as `\n`.
    pub header: Vec<String>,
    /// Banned Body Lines.
    pub body: Vec<String>,
}

impl Banned {
    /// Reads the `Banned` server settings: `Header` and `Body`, each an array of strings or one
    /// string with a line per pattern.
    pub fn from_dict(d: &Dict) -> Banned {
        let list = |k: &str| -> Vec<String> {
            match d.get(k.as_bytes()) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_text().map(|t| t.into_owned()))
                    .filter(|t| !t.is_empty())
                    .collect(),
                Some(v) => v
                    .as_text()
                    .map(|t| {
                        t.lines()
                            .filter(|l| !l.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                None => Vec::new(),
            }
        };
        Banned {
            header: list("Header"),
            body: list("Body"),
        }
    }

    /// The first banned line the message contains, if any.
    pub fn check(&self, message: &[u8]) -> Option<&str> {
        if self.header.is_empty() && self.body.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(message);
        let (head, body) = match text.find("\r\n\r\n") {
            Some(i) => (&text[..i + 2], &text[i + 4..]),
            None => (&text[..], ""),
        };
        let mut fields: Vec<String> = Vec::new();
        for line in head.split("\r\n").filter(|l| !l.is_empty()) {
            match fields.last_mut() {
                Some(f) if line.starts_with([' ', '\t']) => {
                    f.push('\n');
                    f.push_str(line);
                }
                _ => fields.push(line.to_string()),
            }
        }
        for f in &fields {
            if let Some(p) = self.header.iter().find(|p| wildcard(p, f)) {
                return Some(p);
            }
        }
        for line in body.split("\r\n") {
            if let Some(p) = self.body.iter().find(|p| wildcard(p, line)) {
                return Some(p);
            }
        }
        None
    }
}

/// `*` wildcard match, case-sensitive (banned lines, guide.txt:3580-3607).
pub fn wildcard(pattern: &str, text: &str) -> bool {
    crate::kernel::rules::pattern::wildcard(pattern.as_bytes(), text.as_bytes(), |a, b| a == b)
}

/// What a connection is held to: the module settings and the Protection lists, read when it
/// starts.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The module's settings.
    pub settings: SmtpSettings,
    /// Client IP Addresses (guide.txt:3154-3189).
    pub client_ips: IpList,
    /// Blacklisted IP Addresses (guide.txt:3449-3479).
    pub blacklisted: IpList,
    /// UnBlacklistable (White Hole) IP Addresses (guide.txt:3515-3551).
    pub white_holes: IpList,
    /// Banned lines.
    pub banned: Banned,
    /// Holding, ETRN and wake-up settings.
    pub dialup: etrn::DialupSettings,
    /// The DNS options of the `Protection` settings (RBL, names).
    pub protection: dns::Protection,
    /// `DNSServers`: empty = the system's resolv.conf.
    pub dns_servers: Vec<std::net::SocketAddr>,
}

/// Reads the policy from the store; broken lists read as empty (they were checked when set).
pub fn policy_from_store(ctx: &CliContext, store: &Store) -> Policy {
    let eff = cli::effective_module_settings(ctx, &module_decl());
    let list = |name: &str| match store.server_settings(name) {
        Ok(v) => v
            .as_text()
            .and_then(|t| IpList::parse(&t).ok())
            .unwrap_or_default(),
        Err(_) => IpList::default(),
    };
    Policy {
        settings: settings_from(&eff).unwrap_or_default(),
        dialup: etrn::dialup_settings_from(&eff).unwrap_or_default(),
        dns_servers: client::send_settings_from(&eff)
            .map(|s| s.dns_servers)
            .unwrap_or_default(),
        protection: match store.server_settings("Protection") {
            Ok(Value::Dict(d)) => dns::Protection::from_dict(&d).unwrap_or_default(),
            _ => dns::Protection::default(),
        },
        client_ips: list("ClientIPs"),
        blacklisted: list("BlacklistedIPs"),
        white_holes: list("WhiteHoleIPs"),
        banned: match store.server_settings("Banned") {
            Ok(Value::Dict(d)) => Banned::from_dict(&d),
            _ => Banned::default(),
        },
    }
}

/// Gives a session its policy (read from the store in the server, fixed in tests).
pub type PolicySource = Arc<dyn Fn() -> Policy + Send + Sync>;

/// Everything the SMTP sessions share.
pub struct Config {
    /// The name in the greeting and Received headers (the main domain).
    pub host: String,
    /// The Enqueuer.
    pub submit: Arc<dyn Submit>,
    /// The Router.
    pub route: Arc<dyn Route>,
    /// Credentials, failed-login counter and login limits.
    pub auth: Arc<CliContext>,
    /// TLS for STARTTLS (and knowing 465 connections are already encrypted).
    pub tls: Option<TlsSetup>,
    /// The System Log.
    pub logger: Logger,
    /// The policy, read per connection (blocking).
    pub policy: PolicySource,
    /// The listener's port offset, to recognise the submission port.
    pub port_offset: u16,
    /// Held queues and ATRN connections (ETRN and ATRN are refused without).
    pub holds: Option<Arc<etrn::Holds>>,
    /// The resolver for DNS-based Protection, with its answer cache.
    pub dns: Arc<dns::Dns>,
}

impl Config {
    /// The configuration the server glue builds: policy from the store behind `auth`.
    pub fn new(
        auth: Arc<CliContext>,
        submit: Arc<dyn Submit>,
        route: Arc<dyn Route>,
        tls: Option<TlsSetup>,
        logger: Logger,
        port_offset: u16,
    ) -> Config {
        let ctx = Arc::clone(&auth);
        Config {
            host: auth.host.clone(),
            submit,
            route,
            tls,
            dns: Arc::new(dns::Dns::new(logger.clone())),
            logger,
            policy: Arc::new(move || policy_from_store(&ctx, &ctx.store)),
            port_offset,
            auth,
            holds: None,
        }
    }

    /// The same configuration serving ETRN and ATRN over `holds`.
    pub fn with_holds(self, holds: Arc<etrn::Holds>) -> Config {
        Config {
            holds: Some(holds),
            ..self
        }
    }
}

/// The listener entry point: serves each accepted connection with [`session::serve`].
pub fn handler(config: Arc<Config>) -> Handler {
    Arc::new(move |conn: Connection| {
        let config = Arc::clone(&config);
        Box::pin(async move {
            let endpoint = session::Endpoint {
                peer: conn.peer,
                local: conn.local,
                tls: conn.tls,
            };
            // An I/O error ends the session; the session logged what it knew.
            let _ = session::serve(conn.stream, endpoint, config).await;
        })
    })
}
