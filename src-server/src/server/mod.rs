//! The `gatehoused` service glue: start-up, the modules' listeners, status, and shutdown.
//!
//! Start-up order (DESIGN.md §Contracts, guide.txt:2334-2361, 2555-2579): create the base
//! directory, take the `ProcessID` lock (a second server on the same base stops here), open the
//! store (it creates the layout), open the System Log, create the postmaster on first start, load
//! or make the TLS certificate, open the queue (resubmitting every queued message) and start the
//! Dequeuer, then start each module's listener from its settings. Shutdown
//! (SIGTERM, SIGINT or the CLI `Shutdown`) stops the listeners, flushes the log and removes
//! `ProcessID`.
//!
//! Each module's settings (its `Log` level and its `Listener`) live in `Settings/<Module>.settings`
//! and are read and changed with `GetModule`/`UpdateModule`; a change applies at once.

pub mod lock;
pub mod options;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use tokio::sync::Notify;

use crate::cli::{self, CliContext, LogAccess, ModuleDecl};
use crate::dialup::{Link, QueueFlush};
use crate::format::{dict, Dict, Value};
use crate::kernel::clock::{SharedClock, SystemClock, TestClock};
use crate::kernel::log::{Level, LogQuery, LogSettings, Logger, RecordId};
use crate::kernel::mail::Route;
use crate::kernel::queue::group::GroupChannel;
use crate::kernel::queue::{self, ChannelKind, Dequeuer, Enqueuer, Queue, QueueSettings};
use crate::kernel::router::Router;
use crate::mailbox::MailboxManager;
use crate::modules::pipe::{Pipe, PipeSettings};
use crate::modules::{http, imap, local, pop, pwd, rpop, smtp};
use crate::net::listener::{Handler, Listener, ListenerEvent, ListenerSettings, SocketStatus};
use crate::net::tls::TlsSetup;
use crate::store::settings::SettingDecl;
use crate::store::{AccountType, Store};

use lock::ProcessLock;
use options::Options;

/// How often the TCP Activity Schedule is looked at for a window opening or closing, and the
/// wake-up actions for work due.
const SCHEDULE_CHECK: Duration = Duration::from_secs(1);

/// The version every greeting and `GetServerStatus` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The running service.
pub struct Server {
    /// The base directory store.
    pub store: Store,
    /// The System Log.
    pub logger: Logger,
    /// The one TLS setup.
    pub tls: TlsSetup,
    /// The CLI command layer's context (PWD, WebAdmin and the manager all go through it).
    pub cli: Arc<CliContext>,
    /// The one Mailbox Manager: Local Delivery, the CLI and the access modules share it, so
    /// sessions on one mailbox are synchronised (mailbox module header).
    pub mailboxes: Arc<MailboxManager>,
    /// The Enqueuer: every entry point submits messages through it.
    pub enqueuer: Arc<Enqueuer>,
    /// The Dequeuer: plug the Router and the delivery channels in with `set_router`/`set_channel`.
    pub dequeuer: Arc<Dequeuer>,
    /// The Router, for the Dequeuer and for SMTP's RCPT checks.
    pub router: Arc<dyn Route>,
    /// The PIPE module: the `Submitted/` folder and delivery to programs.
    pub pipe: Arc<Pipe>,
    /// The dial-up link and its TCP Activity Schedule.
    pub link: Arc<Link>,
    /// Hold Mail for Domains and the ETRN/ATRN releases (SMTP serving side).
    pub holds: Arc<smtp::etrn::Holds>,
    /// ETRN/ATRN wake-ups of the backup server (SMTP client side).
    pub wakeups: Arc<smtp::wakeup::Wakeups>,
    /// The Local Delivery channel for `Target::Local` (the Dequeuer calls it).
    pub local: Arc<local::LocalDelivery>,
    port_offset: u16,
    started: Instant,
    listeners: Mutex<Vec<(String, Arc<Listener>)>>,
    stop: Notify,
    lock: Mutex<Option<ProcessLock>>,
}

/// A module with a listener: its settings declaration (the guide's module name is also its log
/// tag and settings file), its session entry point, and its default sockets in the data format
/// (the manual's ports, DESIGN.md §Default ports).
struct ListenerModule {
    decl: fn() -> ModuleDecl,
    handler: fn(&Arc<Server>) -> Handler,
    default_listener: &'static str,
}

/// Every module that listens.
const LISTENER_MODULES: &[ListenerModule] = &[
    ListenerModule {
        decl: smtp::module_decl,
        handler: |server| {
            smtp::handler(Arc::new(smtp::Config::new(
                server.cli.clone(),
                server.enqueuer.clone(),
                server.router.clone(),
                Some(server.tls.clone()),
                server.logger.clone(),
                server.port_offset,
            ).with_holds(server.holds.clone())))
        },
        default_listener: smtp::DEFAULT_LISTENER,
    },
    ListenerModule {
        decl: pwd::module_decl,
        handler: |server| pwd::handler(server.cli.clone()),
        default_listener: "{Sockets=({Port=106;Address=all;SSL=No;});MaxPerAddress=unlimited;}",
    },
    ListenerModule {
        decl: http::module_decl,
        handler: |server| {
            http::handler(Arc::new(http::WebAdmin {
                cli: server.cli.clone(),
                logger: server.logger.clone(),
                sessions: http::Sessions::default(),
            }))
        },
        default_listener: "{Sockets=({Port=8010;Address=all;SSL=No;},{Port=9010;Address=all;SSL=Yes;});MaxPerAddress=unlimited;}",
    },
    ListenerModule {
        decl: http::webuser::module_decl,
        handler: |server| {
            http::webuser::handler(Arc::new(http::webuser::WebUser::new(
                server.cli.clone(),
                server.mailboxes.clone(),
                server.enqueuer.clone(),
                server.logger.clone(),
            )))
        },
        // guide.txt:2947-2951: 8100 clear and 9100 TLS.
        default_listener: "{Sockets=({Port=8100;Address=all;SSL=No;},{Port=9100;Address=all;SSL=Yes;});MaxPerAddress=unlimited;}",
    },
    ListenerModule {
        decl: pop::module_decl,
        handler: |server| {
            let mut ctx = pop::PopContext::new(
                server.cli.clone(),
                server.mailboxes.clone(),
                server.logger.clone(),
            );
            ctx.tls = Some(server.tls.clone());
            pop::handler(Arc::new(ctx))
        },
        // DESIGN.md §Default ports: 995 is on too (the guide leaves it off, guide.txt:14491-14492).
        default_listener: "{Sockets=({Port=110;Address=all;SSL=No;},{Port=995;Address=all;SSL=Yes;});MaxPerAddress=unlimited;}",
    },
    ListenerModule {
        decl: imap::module_decl,
        handler: |server| {
            let mut ctx = imap::ImapContext::new(
                server.cli.clone(),
                server.mailboxes.clone(),
                server.logger.clone(),
            );
            ctx.tls = Some(server.tls.clone());
            imap::handler(Arc::new(ctx))
        },
        // guide.txt:14746-14747: 143 clear and 993 TLS, both on by default.
        default_listener: "{Sockets=({Port=143;Address=all;SSL=No;},{Port=993;Address=all;SSL=Yes;});MaxPerAddress=unlimited;}",
    },
];

impl Server {
    /// Starts the service; returns once every listener has been tried.
    pub async fn start(opts: &Options) -> Result<Arc<Server>, String> {
        let base = opts.base_dir()?;
        std::fs::create_dir_all(&base)
            .map_err(|e| format!("cannot create the base directory {}: {e}", base.display()))?;
        let lock = ProcessLock::acquire(&base)?;
        let main_domain = opts.main_domain.clone().unwrap_or_else(options::host_name);
        let store = Store::open(&base, &main_domain).map_err(|e| e.to_string())?;
        let log_settings = LogSettings {
            log_all: opts.log_all,
            log_to_console: opts.log_to_console,
            ..log_engine_settings(&store)
        };
        let logger = Logger::open(base.join("SystemLogs"), log_settings, SystemClock::shared())
            .map_err(|e| format!("cannot open the System Log: {e}"))?;
        logger.log(
            Level::Major,
            "SYSTEM",
            format_args!(
                "Gatehouse {VERSION} starting; base directory {}, main domain {}",
                base.display(),
                store.main_domain()
            ),
        );
        if let Some(password) = first_start(&store, opts)? {
            // Printed once: the only place a generated password is ever shown.
            println!("gatehoused: first start; the postmaster password is: {password}");
            logger.log(
                Level::Major,
                "SYSTEM",
                "first start: created postmaster with a generated password (printed on the console)",
            );
        }
        let tls = TlsSetup::load_or_create(&base.join("Settings"), &store.main_domain())
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let certificates = store.clone();
        tls.set_domain_source(Arc::new(move |name: &str| {
            let domain = certificates.resolve_domain(name)?;
            let settings = certificates.domain_settings(&domain).ok()?;
            let pem = |k: &str| Some(settings.get(k.as_bytes())?.as_text()?.into_owned());
            Some((pem("SSLCertificate")?, pem("SSLPrivateKey")?))
        }));
        let mailboxes = Arc::new(MailboxManager::new());
        let local = Arc::new(local::LocalDelivery::new(
            store.clone(),
            mailboxes.clone(),
            logger.clone(),
            store.main_domain(),
        ));
        let mut cli = CliContext::new(store.clone(), store.main_domain());
        cli.log = Some(Arc::new(logger.clone()));
        cli.mailboxes = mailboxes.clone();
        cli.modules.register(local::module_decl(logger.clone()));
        let router: Arc<dyn Route> = Arc::new(Router::new(store.clone(), Some(logger.clone())));
        cli.router = Some(router.clone());
        let queue_decl = queue::settings::module_decl();
        let queue_settings =
            QueueSettings::from_dict(&cli::effective_module_settings(&cli, &queue_decl))
                .unwrap_or_else(|e| {
                    logger.log(
                        Level::Failures,
                        queue::DEQUEUER,
                        format_args!(
                            "the stored Queue settings are not usable ({e}); using the defaults"
                        ),
                    );
                    QueueSettings::default()
                });
        let queue = Queue::open(
            &base,
            &store.main_domain(),
            SystemClock::shared(),
            logger.clone(),
            queue_settings.clone(),
        )
        .map_err(|e| format!("cannot open the queue: {e}"))?;
        queue.set_settings(queue_settings);
        let enqueuer = Arc::new(Enqueuer::new(queue.clone()).with_server_rules(store.clone()));
        let dequeuer = Dequeuer::new(queue.clone(), enqueuer.clone());
        dequeuer.set_channel(
            ChannelKind::List,
            Arc::new(GroupChannel::new(
                store.clone(),
                enqueuer.clone(),
                &store.main_domain(),
            )),
        );
        dequeuer.set_router(router.clone());
        let pipe = Pipe::new(
            &base,
            store.main_domain(),
            logger.clone(),
            enqueuer.clone(),
            PipeSettings::default(),
        );
        dequeuer.set_channel(ChannelKind::Pipe, pipe.clone());
        local.set_submitter(enqueuer.clone());
        dequeuer.set_channel(ChannelKind::Local, local.clone());
        let test_clock = opts.test_clock.map(TestClock::starting);
        let link_clock: SharedClock = match &test_clock {
            Some(c) => c.clone(),
            None => SystemClock::shared(),
        };
        let link = Arc::new(Link::new(store.clone(), link_clock));
        link.add_wake_up(Arc::new(QueueFlush(queue.clone())));
        let rpop = rpop::Rpop::new(
            store.clone(),
            enqueuer.clone(),
            router.clone(),
            logger.clone(),
            link.clone(),
            tokio::runtime::Handle::current(),
        );
        link.add_wake_up(rpop.clone());
        cli.modules.register(rpop::module_decl(logger.clone()));
        let holds = Arc::new(smtp::etrn::Holds::from_store(queue.clone(), store.clone()));
        dequeuer.set_channel(
            ChannelKind::Smtp,
            Arc::new(
                smtp::client::SmtpChannel::from_store(
                    tokio::runtime::Handle::current(),
                    store.clone(),
                    logger.clone(),
                )
                .with_link(link.clone())
                .with_holds(holds.clone())
                .with_queue(queue.clone()),
            ),
        );
        cli.queue = Some(queue);
        cli.link = Some(link.clone());
        cli.test_clock = test_clock;
        let server = Arc::new_cyclic(|weak: &std::sync::Weak<Server>| {
            let status_of = weak.clone();
            cli.status = Some(Arc::new(move || {
                status_of.upgrade().map(|s| s.status()).unwrap_or_default()
            }));
            let stop_of = weak.clone();
            cli.shutdown = Some(Arc::new(move || {
                if let Some(s) = stop_of.upgrade() {
                    s.stop.notify_one();
                }
            }));
            let cli = Arc::new(cli);
            // The ATRN client serves the turned-around connection as an ordinary SMTP session.
            let wakeups = Arc::new(smtp::wakeup::Wakeups::new(
                Arc::new(
                    smtp::Config::new(
                        cli.clone(),
                        enqueuer.clone(),
                        router.clone(),
                        Some(tls.clone()),
                        logger.clone(),
                        opts.port_offset,
                    )
                    .with_holds(holds.clone()),
                ),
                store.clone(),
                tokio::runtime::Handle::current(),
                link.clone(),
            ));
            // dialup wake-ups: ETRN/ATRN to the backup server, a link session action.
            link.add_wake_up(wakeups.clone());
            Server {
                store,
                logger,
                tls,
                cli,
                mailboxes,
                local,
                enqueuer,
                dequeuer,
                router,
                pipe,
                link,
                holds,
                wakeups,
                port_offset: opts.port_offset,
                started: Instant::now(),
                listeners: Mutex::new(Vec::new()),
                stop: Notify::new(),
                lock: Mutex::new(Some(lock)),
            }
        });
        server.register_log_module();
        server.register_queue_module(queue_decl);
        server.dequeuer.start();
        server.pipe.start(&server.cli);
        server.watch_schedule();
        for module in LISTENER_MODULES {
            server.start_module(module).await;
        }
        Ok(server)
    }

    /// Runs until SIGTERM, SIGINT or `Shutdown`, then stops gracefully.
    pub async fn run_until_stopped(self: Arc<Self>) {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            _ => {
                self.logger.log(
                    Level::Failures,
                    "SYSTEM",
                    "cannot install the signal handlers",
                );
                return self.shutdown().await;
            }
        };
        let why = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = self.stop.notified() => "the Shutdown command",
        };
        self.logger
            .log(Level::Major, "SYSTEM", format_args!("stopping on {why}"));
        self.shutdown().await;
    }

    async fn shutdown(&self) {
        let listeners = std::mem::take(
            &mut *self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (_, l) in &listeners {
            l.stop().await;
        }
        // Sessions end with the process; give the ones mid-command a moment to answer.
        let deadline = Instant::now() + Duration::from_secs(3);
        while listeners.iter().any(|(_, l)| l.connections() > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.pipe.stop();
        let dequeuer = self.dequeuer.clone();
        let _ = tokio::task::spawn_blocking(move || dequeuer.stop()).await;
        self.logger.log(Level::Major, "SYSTEM", "stopped");
        self.logger.shutdown();
        // Sessions still hold the server, so the lock is released here rather than on drop.
        drop(
            self.lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    /// The `GetServerStatus` dictionary.
    fn status(&self) -> Dict {
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut connections = 0;
        let mut per_module = Dict::new();
        for (name, l) in listeners.iter() {
            connections += l.connections();
            let sockets = l
                .state()
                .into_iter()
                .map(|s| {
                    let (state, address) = match s.status {
                        SocketStatus::Bound(a) => ("listening", a.to_string()),
                        SocketStatus::Failed(e) => ("failed", e),
                    };
                    dict([
                        ("Port", Value::from(s.settings.port.to_string())),
                        (
                            "TLS",
                            Value::from(if s.settings.tls { "Yes" } else { "No" }),
                        ),
                        ("State", Value::from(state)),
                        ("Address", Value::from(address)),
                    ])
                })
                .collect::<Vec<_>>();
            per_module.insert(
                name.as_bytes().to_vec(),
                dict([
                    ("Connections", Value::from(l.connections().to_string())),
                    ("Sockets", Value::Array(sockets)),
                ]),
            );
        }
        // Messages, not files: each has a .msg beside its .sta (and .tmp while composed).
        let queued = std::fs::read_dir(self.store.base().join("Queue"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".msg"))
                    .count()
            })
            .unwrap_or(0);
        let mut out = Dict::new();
        out.insert(b"Version".to_vec(), Value::from(VERSION));
        out.insert(
            b"MainDomain".to_vec(),
            Value::from(self.store.main_domain()),
        );
        out.insert(
            b"Uptime".to_vec(),
            Value::from(self.started.elapsed().as_secs().to_string()),
        );
        out.insert(
            b"Connections".to_vec(),
            Value::from(connections.to_string()),
        );
        out.insert(b"QueueSize".to_vec(), Value::from(queued.to_string()));
        out.insert(b"Listeners".to_vec(), Value::Dict(per_module));
        let open = self.link.is_open();
        out.insert(
            b"DialupWindow".to_vec(),
            Value::from(if open { "Open" } else { "Closed" }),
        );
        if let (false, Some(next)) = (open, self.link.next_open()) {
            out.insert(
                b"NextWindow".to_vec(),
                Value::from(next.format("%Y-%m-%d %H:%M").to_string()),
            );
        }
        if let Some(last) = self.link.last_session() {
            out.insert(
                b"LastSession".to_vec(),
                Value::from(last.format("%Y-%m-%d %H:%M:%S").to_string()),
            );
        }
        out.insert(b"RemoteServers".to_vec(), Value::Dict(self.link.remotes()));
        out.insert(
            b"QueuedPerDomain".to_vec(),
            Value::Dict(queued_per_domain(self.dequeuer.queue())),
        );
        out
    }
}

impl Server {
    /// Watches the TCP Activity Schedule and starts link sessions (dialup module header): when a
    /// window opens, when mail waited for the link, or when a wake-up action is due, at most once
    /// per Pause (guide.txt:5253-5303). Openings, closings and sessions are logged with `TCP`.
    fn watch_schedule(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut was_open = None;
            // A window opened (or mail waited) and its session is still to come.
            let mut pending_all = false;
            loop {
                let Some(server) = weak.upgrade() else { return };
                let link = server.link.clone();
                let (open, started) = tokio::task::spawn_blocking(move || {
                    let open = link.is_open();
                    (open, open.then_some(link))
                })
                .await
                .unwrap_or((true, None));
                if let Some(link) = started {
                    if was_open == Some(false) {
                        server.logger.log(
                            Level::Major,
                            "TCP",
                            "a TCP Activity Schedule window is open",
                        );
                        pending_all = true;
                    }
                    // Mail waited for a closed link that is open again (possibly a schedule
                    // change between two looks): it goes with the next session.
                    pending_all |= link.take_held();
                    let run = tokio::task::spawn_blocking(move || {
                        ((pending_all || link.any_due()) && link.session_allowed())
                            .then(|| link.start_session(pending_all))
                    })
                    .await
                    .unwrap_or(None);
                    if let Some(actions) = run {
                        server.logger.log(
                            Level::Major,
                            "TCP",
                            format_args!(
                                "link session started{}: {}",
                                if pending_all { " (everything)" } else { "" },
                                actions.join(", ")
                            ),
                        );
                        pending_all = false;
                    }
                } else if was_open == Some(true) {
                    server.logger.log(
                        Level::Major,
                        "TCP",
                        "the link is closed by the TCP Activity Schedule",
                    );
                }
                was_open = Some(open);
                drop(server);
                tokio::time::sleep(SCHEDULE_CHECK).await;
            }
        });
    }

    /// Registers a listening module's settings, with `Listener` added, and starts its listener.
    async fn start_module(self: &Arc<Self>, module: &ListenerModule) {
        let mut decl = (module.decl)();
        decl.settings.push(SettingDecl {
            key: "Listener",
            default: module.default_listener,
            doc: "Listener: the module's sockets, address restrictions and per-address limit (guide.txt:4614-4757)",
        });
        let name = decl.name.clone();
        let events = {
            let logger = self.logger.clone();
            Arc::new(move |e: ListenerEvent| log_listener_event(&logger, e))
        };
        let listener = Arc::new(Listener::new(
            &name,
            self.port_offset,
            Some(self.tls.clone()),
            (module.handler)(self),
            events,
        ));
        let own_validate = decl.validate.take();
        decl.validate = Some(Arc::new(move |eff: &Dict| {
            module_settings_from(eff)?;
            own_validate.as_ref().map_or(Ok(()), |v| v(eff))
        }));
        let own_changed = decl.changed.take();
        let weak = Arc::downgrade(self);
        let changed_listener = listener.clone();
        let changed_name = name.clone();
        decl.changed = Some(Arc::new(move |eff: &Dict| {
            if let Some(server) = weak.upgrade() {
                let listener = changed_listener.clone();
                if let Some(settings) = server.apply_module_settings(&changed_name, eff, &listener)
                {
                    tokio::spawn(async move { listener.update(settings).await });
                }
            }
            if let Some(c) = &own_changed {
                c(eff);
            }
        }));
        self.cli.modules.register(decl.clone());
        let effective = cli::effective_module_settings(&self.cli, &decl);
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name.clone(), listener.clone()));
        // Bound before start() returns, so "started" means "listening".
        if let Some(settings) = self.apply_module_settings(&name, &effective, &listener) {
            listener.update(settings).await;
        }
    }

    /// Applies a module's effective settings: its log level and channel limit now; returns the
    /// listener settings for the caller to bind. Broken stored settings are logged and the
    /// defaults stay in force.
    fn apply_module_settings(
        &self,
        name: &str,
        eff: &Dict,
        listener: &Listener,
    ) -> Option<ListenerSettings> {
        match module_settings_from(eff) {
            Ok((level, channels, settings)) => {
                let mut s = self.logger.settings();
                s.levels.insert(name.to_string(), level);
                self.logger.set_settings(s);
                listener.set_channels(channels);
                Some(settings)
            }
            Err(e) => {
                self.logger.log(
                    Level::Failures,
                    name,
                    format_args!("the stored module settings are not usable: {e}"),
                );
                None
            }
        }
    }

    /// Registers the `Queue` module settings; a change applies at once (more Processors start).
    fn register_queue_module(self: &Arc<Self>, mut decl: ModuleDecl) {
        let weak = Arc::downgrade(self);
        decl.changed = Some(Arc::new(move |eff: &Dict| {
            let Some(server) = weak.upgrade() else { return };
            if let Ok(s) = QueueSettings::from_dict(eff) {
                server.dequeuer.queue().set_settings(s);
                server.dequeuer.start();
                server.pipe.start(&server.cli);
            }
        }));
        self.cli.modules.register(decl);
    }

    /// Registers the Log Engine settings (module `Log`, guide.txt:3022-3140).
    fn register_log_module(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let decl = ModuleDecl {
            name: "Log".to_string(),
            settings: vec![
                SettingDecl {
                    key: "SystemLog",
                    default: "Major",
                    doc: "level of the System Internals Log, tag SYSTEM (guide.txt:2378)",
                },
                SettingDecl {
                    key: "StartNewFileEvery",
                    default: "day",
                    doc: "start a new log file every: day, or a number of hours",
                },
                SettingDecl {
                    key: "MaxFileSize",
                    default: "unlimited",
                    doc: "or if larger than: bytes, with K or M, or unlimited",
                },
                SettingDecl {
                    key: "DeleteOldFilesIn",
                    default: "never",
                    doc: "delete log files older than this many days, or never",
                },
            ],
            validate: Some(Arc::new(|eff: &Dict| log_engine_from(eff).map(|_| ()))),
            changed: Some(Arc::new(move |eff: &Dict| {
                let Some(server) = weak.upgrade() else { return };
                if let Ok(engine) = log_engine_from(eff) {
                    let mut s = server.logger.settings();
                    s.default_level = engine.default_level;
                    s.start_new_file_every = engine.start_new_file_every;
                    s.max_file_size = engine.max_file_size;
                    s.delete_old_files_in = engine.delete_old_files_in;
                    server.logger.set_settings(s);
                }
            })),
        };
        self.cli.modules.register(decl);
    }
}

/// Queued messages per recipient domain (a message counts once in each domain it still has a
/// recipient in), for `GetServerStatus`.
fn queued_per_domain(queue: &Queue) -> Dict {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for item in queue.list(None) {
        let mut domains: Vec<String> = item
            .recipients
            .iter()
            .filter_map(|r| r.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()))
            .collect();
        domains.sort();
        domains.dedup();
        for d in domains {
            *counts.entry(d).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(d, n)| (d.into_bytes(), Value::from(n.to_string())))
        .collect()
}

/// The settings every listening module has: `LogLevel`, `Channels` (0 closes the listener,
/// guide.txt:15880-15893) and `Listener`.
fn module_settings_from(eff: &Dict) -> Result<(Level, usize, ListenerSettings), String> {
    let text = |k: &str| crate::store::settings::text(eff, k);
    let level = text("LogLevel");
    let level = level
        .parse::<Level>()
        .map_err(|_| format!("LogLevel: {level:?} is not a log level"))?;
    let channels = match text("Channels").as_str() {
        "" | "unlimited" => usize::MAX,
        c => c
            .parse::<usize>()
            .map_err(|_| format!("Channels: {c:?} is not a number"))?,
    };
    let listener = eff
        .get(b"Listener".as_slice())
        .ok_or("Listener is missing")?;
    let listener = ListenerSettings::from_value(listener)?;
    listener.validate()?;
    let listener = if channels == 0 {
        ListenerSettings {
            sockets: Vec::new(),
            ..listener
        }
    } else {
        listener
    };
    Ok((level, channels, listener))
}

/// The Log Engine part of [`LogSettings`] from the `Log` module's effective settings.
fn log_engine_from(eff: &Dict) -> Result<LogSettings, String> {
    let text = |k: &str| crate::store::settings::text(eff, k);
    let system = text("SystemLog");
    let default_level = if system.is_empty() {
        Level::Major
    } else {
        system
            .parse::<Level>()
            .map_err(|_| format!("SystemLog: {system} is not a log level"))?
    };
    let every = text("StartNewFileEvery");
    let start_new_file_every = match every.as_str() {
        "" | "day" => None,
        h => Some(Duration::from_secs(
            3600 * h
                .parse::<u64>()
                .map_err(|_| format!("StartNewFileEvery: {h} is not day or a number of hours"))?,
        )),
    };
    let size = text("MaxFileSize");
    let max_file_size = match size.as_str() {
        "" | "unlimited" => None,
        s => Some(parse_size(s).ok_or_else(|| format!("MaxFileSize: {s} is not a size"))?),
    };
    let age = text("DeleteOldFilesIn");
    let delete_old_files_in = match age.as_str() {
        "" | "never" => None,
        d => Some(
            d.parse::<u32>()
                .map_err(|_| format!("DeleteOldFilesIn: {d} is not a number of days"))?,
        ),
    };
    Ok(LogSettings {
        default_level,
        start_new_file_every,
        max_file_size,
        delete_old_files_in,
        ..LogSettings::default()
    })
}

/// `123`, `64K`, `10M`, `1G` (the guide's size notation).
fn parse_size(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The Log Engine settings stored in `Settings/Log.settings` (defaults when absent or broken;
/// a broken file is reported once the log is open).
fn log_engine_settings(store: &Store) -> LogSettings {
    match store.server_settings("Log") {
        Ok(Value::Dict(d)) => log_engine_from(&d).unwrap_or_default(),
        _ => LogSettings::default(),
    }
}

/// Creates the postmaster on first start (guide.txt:2330-2331): in the main domain, with the
/// Master right and the given or a random password. Returns the password when it was generated.
fn first_start(store: &Store, opts: &Options) -> Result<Option<String>, String> {
    let main = store.main_domain();
    if store.lookup(&main, "postmaster").is_some() {
        return Ok(None);
    }
    let (password, generated) = match &opts.postmaster_password {
        Some(p) if !p.is_empty() => (p.clone(), false),
        _ => (
            rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(16)
                .map(char::from)
                .collect::<String>(),
            true,
        ),
    };
    let settings: Dict = [(b"Password".to_vec(), Value::from(password.as_str()))]
        .into_iter()
        .collect();
    store
        .create_account(&main, "postmaster", AccountType::MultiMailbox, settings)
        .and_then(|_| store.set_account_rights(&main, "postmaster", vec!["Master".to_string()]))
        .map_err(|e| format!("cannot create the postmaster account: {e}"))?;
    Ok(generated.then_some(password))
}

/// Turns a listener event into a log record with the module's tag.
fn log_listener_event(logger: &Logger, e: ListenerEvent) {
    match e {
        ListenerEvent::Bound { listener, local } => logger.log(
            Level::Major,
            &listener,
            format_args!("listening on {local}"),
        ),
        ListenerEvent::BindFailed {
            listener,
            local,
            error,
        } => logger.log(
            Level::Failures,
            &listener,
            format_args!("cannot listen on {local}: {error}"),
        ),
        ListenerEvent::AcceptFailed {
            listener,
            local,
            error,
        } => logger.log(
            Level::Problems,
            &listener,
            format_args!("accept on {local} failed: {error}"),
        ),
        ListenerEvent::Restricted {
            listener,
            peer,
            local,
        } => logger.log(
            Level::LowLevel,
            &listener,
            format_args!("connection from {peer} to {local} refused by the address restrictions"),
        ),
        ListenerEvent::TooManyFromAddress {
            listener,
            peer,
            limit,
        } => logger.log(
            Level::Problems,
            &listener,
            format_args!(
                "connection from {peer} refused: {limit} connections from that address already"
            ),
        ),
        ListenerEvent::ChannelsBusy {
            listener,
            peer,
            limit,
        } => logger.log(
            Level::Problems,
            &listener,
            format_args!("connection from {peer} refused: all {limit} channels are busy"),
        ),
        ListenerEvent::TlsFailed {
            listener,
            peer,
            error,
        } => logger.log(
            Level::Problems,
            &listener,
            format_args!("TLS handshake with {peer} failed: {error}"),
        ),
    }
}

/// `WriteLog` and `ReadLog` over the System Log.
impl LogAccess for Logger {
    fn write(&self, level: u8, text: &str) {
        let level = Level::from_number(u32::from(level)).unwrap_or(Level::Major);
        self.log(level, "SYSTEM", text);
    }

    fn read(&self, q: &cli::LogQuery) -> Result<Vec<cli::LogRecord>, String> {
        let day = match &q.day {
            Some(d) => Some(
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| format!("DAY: {d} is not a yyyy-mm-dd date"))?,
            ),
            None => None,
        };
        let after = match &q.after {
            Some(a) => Some(
                a.parse::<RecordId>()
                    .map_err(|_| format!("AFTER: {a} is not a record id"))?,
            ),
            None => None,
        };
        // FROM/TO are times of the queried day (today when no DAY is given).
        let date = day.unwrap_or_else(|| chrono::Local::now().date_naive());
        let at = |t: &Option<String>| {
            t.as_deref()
                .and_then(cli::time_of_day)
                .map(|t| date.and_time(t))
        };
        let query = LogQuery {
            day,
            from: at(&q.from),
            to: at(&q.to),
            max_level: q.level.and_then(|l| Level::from_number(u32::from(l))),
            tag_prefix: q.tag.clone(),
            text: q.text.clone(),
            after,
            limit: q.limit.unwrap_or(1000),
            last: q.last,
            ..LogQuery::default()
        };
        let records =
            Logger::read(self, &query).map_err(|e| format!("cannot read the log: {e}"))?;
        Ok(records
            .into_iter()
            .map(|r| cli::LogRecord {
                id: r.id.to_string(),
                time: r.time.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                level: r.level.number(),
                tag: r.tag,
                text: r.text,
            })
            .collect())
    }
}
