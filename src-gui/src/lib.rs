//! Gatehouse Manager: the office admin's desktop tool — one window (the static pages in `ui/`)
//! with the Dashboard, Domains, Accounts, Dial-up, Logs and Queue views, and a tray icon showing
//! the service's state (DESIGN.md; issue 10).
//!
//! It talks to `gatehoused` only over the CLI channel (docs/cli.md) through
//! `gatehouse::cli::client`, on one shared connection ([`conn::Conn`]); the window's
//! `#[tauri::command]`s ([`commands`]) are thin: each builds one CLI line and returns the data.
//!
//! Security: the window loads only the embedded `ui/` files; its capability
//! (`capabilities/default.json`) grants Tauri's core defaults, and the app's own commands are
//! the CLI operations listed in [`commands`]. The manager never opens the base directory. The
//! server checks every command against the login's rights, so the manager can do no more than
//! the `gatehouse` client with the same login.
//!
//! Implementation notes: the window is shown at start and closing it quits the app, because a
//! desktop without a tray host (plain X11 window managers, Xvfb) shows no tray icon, and a manager
//! hidden there could be neither reopened nor quit.

pub mod commands;
pub mod conn;
pub mod tray;

use std::sync::{Arc, Mutex, PoisonError};

use conn::{Args, Conn, Saved, Target};
use tray::{ServiceControl, TrayState};

pub use tray::{handle_menu, MenuAction};

/// Label of the manager's window (`tauri.conf.json`, `capabilities/default.json`).
pub const MAIN_WINDOW: &str = "main";

/// Runs a program with arguments to its end; `Err` with what went wrong.
pub type Launcher = Box<dyn Fn(&[&str]) -> Result<(), String> + Send + Sync>;

/// The app's shared state: the connection, where it is saved, and what the tray shows.
pub struct Shared {
    /// The one connection to the service.
    pub conn: Conn,
    /// Where the connect dialog saves the connection (`None`: nowhere to save).
    pub saved: Option<Saved>,
    /// Whether the connection came from the command line.
    pub from_args: bool,
    /// What the tray shows.
    pub tray: Mutex<TrayState>,
    /// Whether Start/Stop service can work here.
    pub service: ServiceControl,
    /// Starts `systemctl` and `xdg-open` (replaced in tests).
    pub launcher: Launcher,
}

impl Shared {
    /// Shared state over a connection.
    pub fn new(
        conn: Conn,
        saved: Option<Saved>,
        service: ServiceControl,
        launcher: Launcher,
    ) -> Shared {
        Shared {
            conn,
            saved,
            from_args: false,
            tray: Mutex::new(TrayState::default()),
            service,
            launcher,
        }
    }

    /// A copy of the tray state.
    pub fn tray_state(&self) -> TrayState {
        self.tray
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Runs a program and waits for it; a non-zero exit is an error carrying its stderr.
fn run_program(argv: &[&str]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("no program")?;
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if err.is_empty() {
            out.status.to_string()
        } else {
            err
        })
    }
}

/// The connection to use: the command line's if it names one, else the saved one, else the default.
fn initial_target(args: &Args, saved: Option<&Saved>) -> Result<Target, String> {
    if args.given() {
        let password = match &args.password_file {
            Some(p) => Some(conn::read_password_file(p)?),
            None => None,
        };
        let d = Target::default();
        return Ok(Target {
            server: args.server.clone().unwrap_or(d.server),
            user: args.user.clone().unwrap_or(d.user),
            password,
        });
    }
    Ok(saved.and_then(Saved::load).unwrap_or_default())
}

/// Starts the manager with these command-line arguments and runs its event loop until the app exits.
pub fn run(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(argv)?;
    let saved = Saved::user_default();
    let target = initial_target(&args, saved.as_ref())?;
    let mut shared = Shared::new(
        Conn::new(target),
        saved,
        ServiceControl::detect(),
        Box::new(run_program),
    );
    shared.from_args = args.given();
    tauri::Builder::default()
        .manage(Arc::new(shared))
        .invoke_handler(commands::handler())
        .setup(|app| {
            tray::build_tray(app)?;
            tray::spawn_poller(app.handle().clone());
            Ok(())
        })
        .run(tauri::generate_context!())
        .map_err(|e| e.to_string())
}
