//! The tray icon: the service's state at a glance (icon colour and tooltip) and a menu with Open
//! manager, Wake up now, Start/Stop service, Open WebAdmin and Quit.
//!
//! The state comes from a poller thread ([`spawn_poller`]) that asks `GetServerStatus` every few
//! seconds over the shared connection, and from the outcome of the menu's own actions. The menu
//! is handled by [`handle_menu`], a plain function that Tauri's mock runtime can drive in tests;
//! it blocks (CLI calls, `systemctl`), so the tray's event callback runs it on its own thread.
//!
//! Security: the only programs started are `systemctl start|stop gatehoused` (only when the
//! unit is installed and systemd runs; systemd/polkit decide whether the user may) and
//! `xdg-open` with an `http://` URL built from the connection's host.
//!
//! Without a tray host the icon is simply not shown; every action stays reachable from the window.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use gatehouse::format::Value;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{App, AppHandle, Manager, Runtime};

use crate::conn::CallError;
use crate::{Shared, MAIN_WINDOW};

/// Id of the tray icon.
pub const TRAY_ID: &str = "gatehouse";
/// Menu id of "Open manager".
pub const MENU_OPEN: &str = "open";
/// Menu id of "Wake up now".
pub const MENU_WAKE: &str = "wake";
/// Menu id of "Start service" / "Stop service".
pub const MENU_SERVICE: &str = "service";
/// Menu id of "Open WebAdmin in the browser".
pub const MENU_WEBADMIN: &str = "webadmin";
/// Menu id of "Quit".
pub const MENU_QUIT: &str = "quit";
/// How often the poller asks for the server's status.
const POLL_EVERY: Duration = Duration::from_secs(5);
/// The systemd unit the installer puts in place (installer/gatehoused.service).
pub const UNIT: &str = "gatehoused";
/// Where a packaged unit may live.
const UNIT_PATHS: &[&str] = &[
    "/lib/systemd/system/gatehoused.service",
    "/usr/lib/systemd/system/gatehoused.service",
    "/etc/systemd/system/gatehoused.service",
];

/// What a tray menu item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    /// Show, unminimize and focus the manager's window.
    OpenManager,
    /// Ask the server to start its dial-up activity now (`WakeUpNow`).
    WakeUpNow,
    /// Start the service when it is down, stop it when it is up (systemctl).
    ToggleService,
    /// Open WebAdmin in the default browser.
    OpenWebAdmin,
    /// Exit the app.
    Quit,
}

impl MenuAction {
    /// The action of the menu item with this id, if it is one of ours.
    pub fn from_id(id: &str) -> Option<MenuAction> {
        match id {
            MENU_OPEN => Some(MenuAction::OpenManager),
            MENU_WAKE => Some(MenuAction::WakeUpNow),
            MENU_SERVICE => Some(MenuAction::ToggleService),
            MENU_WEBADMIN => Some(MenuAction::OpenWebAdmin),
            MENU_QUIT => Some(MenuAction::Quit),
            _ => None,
        }
    }
}

/// Whether the manager can start and stop the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceControl {
    /// The `gatehoused` unit is installed and systemd runs.
    Systemd,
    /// It cannot; the reason, as the menu item shows it.
    Unavailable(String),
}

impl ServiceControl {
    /// Looks at this machine: is the unit installed, does systemd run?
    pub fn detect() -> ServiceControl {
        if !UNIT_PATHS.iter().any(|p| std::path::Path::new(p).is_file()) {
            return ServiceControl::Unavailable("gatehoused is not installed as a service".into());
        }
        if !std::path::Path::new("/run/systemd/system").is_dir() {
            return ServiceControl::Unavailable("systemd is not running here".into());
        }
        ServiceControl::Systemd
    }
}

/// What the tray shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrayState {
    /// Whether the service answered the last poll; `None` before the first answer or while no
    /// password is known.
    pub up: Option<bool>,
    /// Whether the dial-up window is open, when the server reports it.
    pub dialup_open: Option<bool>,
    /// Messages in the queue, when the server reports it.
    pub queued: Option<u64>,
    /// The last error met: a failed poll or menu action.
    pub last_error: Option<String>,
    /// Whether `last_error` came from a poll (a later good poll clears it; an action's stays).
    pub error_from_poll: bool,
}

impl TrayState {
    /// Takes in a `GetServerStatus` answer.
    pub fn status_ok(&mut self, status: &Value) {
        self.up = Some(true);
        if self.error_from_poll {
            self.last_error = None;
            self.error_from_poll = false;
        }
        self.queued = status.get_text("QueueSize").and_then(|q| q.parse().ok());
        self.dialup_open =
            status
                .get_text("DialupWindow")
                .and_then(|w| match w.to_ascii_lowercase().as_str() {
                    "open" | "yes" => Some(true),
                    "closed" | "no" => Some(false),
                    _ => None,
                });
    }

    /// Takes in a failed poll.
    pub fn status_err(&mut self, e: &CallError) {
        match e {
            CallError::Down(_) => {
                self.up = Some(false);
                self.queued = None;
                self.dialup_open = None;
            }
            CallError::NoPassword(_) => self.up = None,
            // It answered: the service runs, the login or the command is the problem.
            CallError::Login(_) | CallError::Unavailable(_) | CallError::Failed(_) => {
                self.up = Some(true)
            }
        }
        self.last_error = Some(e.to_string());
        self.error_from_poll = true;
    }

    /// Takes in a failed menu action.
    pub fn action_err(&mut self, e: String) {
        self.last_error = Some(e);
        self.error_from_poll = false;
    }
}

/// The tooltip for a state: one line per fact, facts the server does not report left out.
pub fn tooltip(s: &TrayState) -> String {
    let mut lines = vec![match s.up {
        Some(true) => "Gatehouse: service running".to_string(),
        Some(false) => "Gatehouse: service down".to_string(),
        None => "Gatehouse: not connected".to_string(),
    }];
    if let Some(open) = s.dialup_open {
        lines.push(format!(
            "Dial-up window: {}",
            if open { "open" } else { "closed" }
        ));
    }
    if let Some(q) = s.queued {
        lines.push(format!(
            "{q} message{} queued",
            if q == 1 { "" } else { "s" }
        ));
    }
    if let Some(e) = &s.last_error {
        lines.push(format!("Last error: {e}"));
    }
    lines.join("\n")
}

/// The label of the service item for a state and a service control.
pub fn service_label(s: &TrayState, control: &ServiceControl) -> (String, bool) {
    match control {
        ServiceControl::Unavailable(why) => (format!("Start/Stop service: {why}"), false),
        ServiceControl::Systemd if s.up == Some(true) => ("Stop service".into(), true),
        ServiceControl::Systemd => ("Start service".into(), true),
    }
}

/// The WebAdmin address for a PWD server address: the same host, and the WebAdmin port moved by
/// the same offset as the PWD port (106 → 8010; 10106 → 18010 under `--port-offset 10000`).
pub fn webadmin_url(host: &str, pwd_port: Option<u16>) -> String {
    let offset = pwd_port.map_or(0, |p| p.saturating_sub(106));
    let port = 8010u16.saturating_add(offset);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!("http://{host}:{port}/")
}

/// Icon colours: running, running with an error, down, unknown.
fn badge_colour(s: &TrayState) -> [u8; 3] {
    match (s.up, &s.last_error) {
        (Some(true), None) => [0x2e, 0xa0, 0x43],
        (Some(true), Some(_)) => [0xe0, 0x9b, 0x1a],
        (Some(false), _) => [0xd1, 0x24, 0x2f],
        (None, _) => [0x8c, 0x95, 0x9f],
    }
}

/// The app icon with a coloured dot in its lower right corner.
pub fn badged_icon(base: &Image<'_>, s: &TrayState) -> Image<'static> {
    let (w, h) = (base.width(), base.height());
    let mut rgba = base.rgba().to_vec();
    let colour = badge_colour(s);
    let r = (w.min(h) as f32) * 0.22;
    let (cx, cy) = (w as f32 - r - 1.0, h as f32 - r - 1.0);
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            let i = ((y * w + x) * 4) as usize;
            let Some(px) = rgba.get_mut(i..i + 4) else {
                continue;
            };
            if d <= r {
                px[..3].copy_from_slice(&colour);
                px[3] = 255;
            } else if d <= r + 1.5 {
                // A white ring keeps the dot visible on any panel colour.
                px.copy_from_slice(&[255, 255, 255, 255]);
            }
        }
    }
    Image::new_owned(rgba, w, h)
}

/// Menu items whose text changes with the state.
pub struct TrayMenu<R: Runtime> {
    service: MenuItem<R>,
}

/// Builds the tray icon and its menu. Without a tray host this succeeds and the icon is just not shown.
pub fn build_tray<R: Runtime>(app: &App<R>) -> tauri::Result<()> {
    let shared = app.state::<Arc<Shared>>();
    let state = shared.tray_state();
    let (label, enabled) = service_label(&state, &shared.service);
    let open = MenuItem::with_id(app, MENU_OPEN, "Open manager", true, None::<&str>)?;
    let wake = MenuItem::with_id(app, MENU_WAKE, "Wake up now", true, None::<&str>)?;
    let service = MenuItem::with_id(app, MENU_SERVICE, label, enabled, None::<&str>)?;
    let web = MenuItem::with_id(
        app,
        MENU_WEBADMIN,
        "Open WebAdmin in the browser",
        true,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(app, MENU_QUIT, "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &wake, &service, &web, &quit])?;
    let mut tray = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip(tooltip(&state))
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| {
            let app = app.clone();
            let id = event.id().as_ref().to_string();
            std::thread::spawn(move || {
                if let Err(err) = handle_menu(&app, &id) {
                    eprintln!("gatehouse-manager: tray menu {id:?}: {err}");
                }
            });
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(badged_icon(icon, &state));
    }
    tray.build(app)?;
    app.manage(TrayMenu { service });
    Ok(())
}

/// Shows the current state on the tray icon, its tooltip and the service item (if there is a tray).
pub fn refresh<R: Runtime>(app: &AppHandle<R>) {
    let Some(shared) = app.try_state::<Arc<Shared>>() else {
        return;
    };
    let state = shared.tray_state();
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_tooltip(Some(tooltip(&state)));
        if let Some(icon) = app.default_window_icon() {
            let _ = tray.set_icon(Some(badged_icon(icon, &state)));
        }
    }
    if let Some(menu) = app.try_state::<TrayMenu<R>>() {
        let (label, enabled) = service_label(&state, &shared.service);
        let _ = menu.service.set_text(label);
        let _ = menu.service.set_enabled(enabled);
    }
}

/// Asks the server for its status once and updates the tray state.
pub fn poll_status(shared: &Shared) {
    let result = shared.conn.call("GetServerStatus");
    let mut state = shared.tray.lock().unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(v) => state.status_ok(&v.unwrap_or_else(Value::empty_dict)),
        Err(e) => state.status_err(&e),
    }
}

/// Starts the thread that polls the server's status and refreshes the tray.
pub fn spawn_poller<R: Runtime>(app: AppHandle<R>) {
    std::thread::spawn(move || loop {
        if let Some(shared) = app.try_state::<Arc<Shared>>() {
            poll_status(&shared);
        }
        refresh(&app);
        std::thread::sleep(POLL_EVERY);
    });
}

/// Runs the tray menu item `id`; returns the action taken (`None` for an id that is not ours).
/// Blocking (CLI calls, programs): call it off the event loop's thread.
pub fn handle_menu<R: Runtime>(app: &AppHandle<R>, id: &str) -> tauri::Result<Option<MenuAction>> {
    let action = MenuAction::from_id(id);
    let shared = app.try_state::<Arc<Shared>>().map(|s| Arc::clone(&s));
    let outcome: Result<(), String> = match (action, &shared) {
        (Some(MenuAction::OpenManager), _) => {
            if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
                window.unminimize()?;
                window.show()?;
                window.set_focus()?;
            }
            Ok(())
        }
        (Some(MenuAction::Quit), _) => {
            app.exit(0);
            Ok(())
        }
        (Some(MenuAction::WakeUpNow), Some(s)) => s
            .conn
            .call("WakeUpNow")
            .map(drop)
            .map_err(|e| e.to_string()),
        (Some(MenuAction::ToggleService), Some(s)) => match &s.service {
            ServiceControl::Unavailable(why) => {
                Err(format!("cannot start or stop the service: {why}"))
            }
            ServiceControl::Systemd => {
                let verb = if s.tray_state().up == Some(true) {
                    "stop"
                } else {
                    "start"
                };
                (s.launcher)(&["systemctl", verb, UNIT])
                    .map_err(|e| format!("systemctl {verb} {UNIT}: {e}"))
            }
        },
        (Some(MenuAction::OpenWebAdmin), Some(s)) => {
            let t = s.conn.target();
            let url = webadmin_url(t.host(), t.port());
            (s.launcher)(&["xdg-open", &url]).map_err(|e| format!("cannot open {url}: {e}"))
        }
        (Some(_), None) | (None, _) => Ok(()),
    };
    if let Some(s) = &shared {
        match outcome {
            // Show the service's new state at once rather than at the next poll.
            Ok(()) if action == Some(MenuAction::ToggleService) => poll_status(s),
            Ok(()) => {}
            Err(e) => s
                .tray
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .action_err(e),
        }
        refresh(app);
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{Conn, Secret, Target};
    use std::sync::Mutex;
    use tauri::test::{mock_app, MockRuntime};
    use tauri::{WebviewUrl, WebviewWindowBuilder};

    type Calls = Arc<Mutex<Vec<Vec<String>>>>;

    /// A mock app with the main window and a Shared whose launcher records the programs run;
    /// its connection points at a port nobody listens on.
    fn app(service: ServiceControl) -> (tauri::App<MockRuntime>, Calls) {
        let app = mock_app();
        WebviewWindowBuilder::new(&app, MAIN_WINDOW, WebviewUrl::default())
            .visible(false)
            .build()
            .expect("mock window");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let calls: Calls = Arc::default();
        let seen = Arc::clone(&calls);
        let shared = Shared::new(
            Conn::new(Target {
                server: format!("127.0.0.1:{port}"),
                user: "postmaster".into(),
                password: Some(Secret(b"pw".to_vec())),
            }),
            None,
            service,
            Box::new(move |argv: &[&str]| {
                seen.lock()
                    .expect("calls")
                    .push(argv.iter().map(|a| a.to_string()).collect());
                Ok(())
            }),
        );
        app.manage(Arc::new(shared));
        (app, calls)
    }

    fn state(app: &tauri::App<MockRuntime>) -> TrayState {
        app.state::<Arc<Shared>>().tray_state()
    }

    #[test]
    fn menu_ids_map_to_actions() {
        assert_eq!(MenuAction::from_id("open"), Some(MenuAction::OpenManager));
        assert_eq!(MenuAction::from_id("wake"), Some(MenuAction::WakeUpNow));
        assert_eq!(
            MenuAction::from_id("service"),
            Some(MenuAction::ToggleService)
        );
        assert_eq!(
            MenuAction::from_id("webadmin"),
            Some(MenuAction::OpenWebAdmin)
        );
        assert_eq!(MenuAction::from_id("quit"), Some(MenuAction::Quit));
        assert_eq!(MenuAction::from_id("Quit"), None);
        assert_eq!(MenuAction::from_id(""), None);
    }

    #[test]
    fn tooltip_shows_what_is_known() {
        assert_eq!(tooltip(&TrayState::default()), "Gatehouse: not connected");
        let s = TrayState {
            up: Some(true),
            dialup_open: Some(false),
            queued: Some(3),
            ..TrayState::default()
        };
        assert_eq!(
            tooltip(&s),
            "Gatehouse: service running\nDial-up window: closed\n3 messages queued"
        );
        let s = TrayState {
            up: Some(false),
            last_error: Some("The Gatehouse service cannot be reached".into()),
            ..TrayState::default()
        };
        assert_eq!(
            tooltip(&s),
            "Gatehouse: service down\nLast error: The Gatehouse service cannot be reached"
        );
    }

    #[test]
    fn status_answers_drive_the_state() {
        let mut s = TrayState::default();
        s.status_ok(&gatehouse::format::parse(b"{QueueSize=1;DialupWindow=open;}").expect("v"));
        assert_eq!(
            (s.up, s.queued, s.dialup_open),
            (Some(true), Some(1), Some(true))
        );
        assert_eq!(
            tooltip(&s),
            "Gatehouse: service running\nDial-up window: open\n1 message queued"
        );
        // A server that does not report the dial-up window: the line is left out.
        s.status_ok(&gatehouse::format::parse(b"{QueueSize=0;}").expect("v"));
        assert_eq!(tooltip(&s), "Gatehouse: service running\n0 messages queued");
        s.status_err(&CallError::Down("down".into()));
        assert_eq!((s.up, s.queued), (Some(false), None));
        s.status_err(&CallError::Login("bad password".into()));
        assert_eq!(s.up, Some(true));
        assert_eq!(s.last_error.as_deref(), Some("bad password"));
        // A good poll clears a poll's error, not an action's.
        s.status_ok(&Value::empty_dict());
        assert_eq!(s.last_error, None);
        s.action_err("systemctl start gatehoused: denied".into());
        s.status_ok(&Value::empty_dict());
        assert_eq!(
            s.last_error.as_deref(),
            Some("systemctl start gatehoused: denied")
        );
    }

    #[test]
    fn service_item_says_why_it_is_unavailable() {
        let up = TrayState {
            up: Some(true),
            ..TrayState::default()
        };
        assert_eq!(
            service_label(&up, &ServiceControl::Systemd),
            ("Stop service".to_string(), true)
        );
        assert_eq!(
            service_label(&TrayState::default(), &ServiceControl::Systemd),
            ("Start service".to_string(), true)
        );
        let (label, enabled) = service_label(
            &up,
            &ServiceControl::Unavailable("gatehoused is not installed as a service".into()),
        );
        assert_eq!(
            label,
            "Start/Stop service: gatehoused is not installed as a service"
        );
        assert!(!enabled);
    }

    #[test]
    fn webadmin_follows_the_port_offset() {
        assert_eq!(
            webadmin_url("127.0.0.1", Some(106)),
            "http://127.0.0.1:8010/"
        );
        assert_eq!(
            webadmin_url("mail.lan", Some(10106)),
            "http://mail.lan:18010/"
        );
        assert_eq!(webadmin_url("::1", None), "http://[::1]:8010/");
    }

    #[test]
    fn badge_keeps_the_size_and_colours_the_corner() {
        let base = Image::new_owned(vec![0; 32 * 32 * 4], 32, 32);
        let s = TrayState {
            up: Some(false),
            ..TrayState::default()
        };
        let icon = badged_icon(&base, &s);
        assert_eq!((icon.width(), icon.height()), (32, 32));
        let corner = ((25 * 32 + 25) * 4) as usize;
        assert_eq!(&icon.rgba()[corner..corner + 4], &[0xd1, 0x24, 0x2f, 255]);
        assert_eq!(&icon.rgba()[..4], &[0, 0, 0, 0]);
    }

    #[test]
    fn open_shows_the_main_window() {
        let (app, _) = app(ServiceControl::Systemd);
        let done = handle_menu(app.handle(), MENU_OPEN).expect("open");
        assert_eq!(done, Some(MenuAction::OpenManager));
        let window = app.get_webview_window(MAIN_WINDOW).expect("window kept");
        assert!(window.is_visible().expect("visibility"));
    }

    #[test]
    fn open_without_a_window_does_nothing() {
        let app = mock_app();
        let done = handle_menu(app.handle(), MENU_OPEN).expect("open");
        assert_eq!(done, Some(MenuAction::OpenManager));
        assert!(app.webview_windows().is_empty());
    }

    #[test]
    fn unknown_ids_are_ignored() {
        let (app, calls) = app(ServiceControl::Systemd);
        assert_eq!(
            handle_menu(app.handle(), "settings").expect("ignored"),
            None
        );
        assert_eq!(app.webview_windows().len(), 1);
        assert!(calls.lock().expect("calls").is_empty());
        assert_eq!(state(&app).last_error, None);
    }

    #[test]
    fn wake_up_with_the_service_down_reports_it() {
        let (app, _) = app(ServiceControl::Systemd);
        let done = handle_menu(app.handle(), MENU_WAKE).expect("wake");
        assert_eq!(done, Some(MenuAction::WakeUpNow));
        let err = state(&app).last_error.expect("error recorded");
        assert!(err.contains("cannot be reached"), "{err}");
    }

    #[test]
    fn service_item_starts_a_down_service_with_systemctl() {
        let (app, calls) = app(ServiceControl::Systemd);
        handle_menu(app.handle(), MENU_SERVICE).expect("service");
        assert_eq!(
            *calls.lock().expect("calls"),
            vec![vec!["systemctl", "start", "gatehoused"]]
        );
        // The poll after the action saw the service still down.
        assert_eq!(state(&app).up, Some(false));
    }

    #[test]
    fn service_item_without_a_unit_runs_nothing_and_says_why() {
        let (app, calls) = app(ServiceControl::Unavailable(
            "gatehoused is not installed as a service".into(),
        ));
        handle_menu(app.handle(), MENU_SERVICE).expect("service");
        assert!(calls.lock().expect("calls").is_empty());
        assert_eq!(
            state(&app).last_error.as_deref(),
            Some("cannot start or stop the service: gatehoused is not installed as a service")
        );
    }

    #[test]
    fn webadmin_opens_the_browser() {
        let (app, calls) = app(ServiceControl::Systemd);
        handle_menu(app.handle(), MENU_WEBADMIN).expect("webadmin");
        let calls = calls.lock().expect("calls");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0][0], "xdg-open");
        assert!(
            calls[0][1].starts_with("http://127.0.0.1:"),
            "{:?}",
            calls[0]
        );
    }

    #[test]
    fn quit_asks_the_runtime_to_exit() {
        // The mock runtime has no event loop to stop: its `request_exit` is `unimplemented!()`.
        // Reaching that panic is the proof that Quit asked the runtime to exit.
        let (app, _) = app(ServiceControl::Systemd);
        let handle = app.handle().clone();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle_menu(&handle, MENU_QUIT)
        }));
        let payload = outcome.expect_err("Quit must reach the runtime's exit request");
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(
            message.contains("not implemented"),
            "unexpected panic: {message}"
        );
    }
}
