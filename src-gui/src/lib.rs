//! Gatehouse Manager: the desktop manager's shell — one window (the static page in `ui/`) and a
//! tray icon whose menu opens that window or quits.
//!
//! Security: the window loads only the embedded `ui/` files; its capability (`capabilities/default.json`)
//! grants Tauri's core defaults and nothing else. The manager never opens the base directory
//! (DESIGN.md); the views that talk to `gatehoused` over the CLI channel come with the desktop-manager issue.
//!
//! Implementation notes: the window is shown at start and closing it quits the app, because a desktop
//! without a tray host (plain X11 window managers, Xvfb) shows no tray icon, and a manager hidden
//! there could be neither reopened nor quit. The tray menu is handled by [`handle_menu`], a plain
//! function so that tests can drive it with Tauri's mock runtime.

use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{App, AppHandle, Manager, Runtime};

/// Label of the manager's window (`tauri.conf.json`, `capabilities/default.json`).
pub const MAIN_WINDOW: &str = "main";
/// Menu id of the tray's "Open manager" item.
pub const MENU_OPEN: &str = "open";
/// Menu id of the tray's "Quit" item.
pub const MENU_QUIT: &str = "quit";

/// What a tray menu item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    /// Show, unminimize and focus the manager's window.
    OpenManager,
    /// Exit the app.
    Quit,
}

impl MenuAction {
    /// The action of the menu item with this id, if it is one of ours.
    pub fn from_id(id: &str) -> Option<MenuAction> {
        match id {
            MENU_OPEN => Some(MenuAction::OpenManager),
            MENU_QUIT => Some(MenuAction::Quit),
            _ => None,
        }
    }
}

/// Runs the tray menu item `id`; returns the action taken (`None` for an id that is not ours).
pub fn handle_menu<R: Runtime>(app: &AppHandle<R>, id: &str) -> tauri::Result<Option<MenuAction>> {
    let action = MenuAction::from_id(id);
    match action {
        Some(MenuAction::OpenManager) => {
            if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
                window.unminimize()?;
                window.show()?;
                window.set_focus()?;
            }
        }
        Some(MenuAction::Quit) => app.exit(0),
        None => {}
    }
    Ok(action)
}

/// Builds the tray icon and its menu. Without a tray host this succeeds and the icon is just not shown.
fn build_tray<R: Runtime>(app: &App<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, MENU_OPEN, "Open manager", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, MENU_QUIT, "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &quit])?;
    let mut tray = TrayIconBuilder::with_id("gatehouse")
        .tooltip("Gatehouse Manager")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| {
            if let Err(err) = handle_menu(app, event.id().as_ref()) {
                eprintln!(
                    "gatehouse-manager: tray menu {:?}: {err}",
                    event.id().as_ref()
                );
            }
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}

/// Starts the manager and runs its event loop until the app exits.
pub fn run() -> tauri::Result<()> {
    tauri::Builder::default()
        .setup(|app| {
            build_tray(app)?;
            Ok(())
        })
        .run(tauri::generate_context!())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tauri::test::{mock_app, MockRuntime};
    use tauri::{WebviewUrl, WebviewWindowBuilder};

    fn app_with_main_window() -> tauri::App<MockRuntime> {
        let app = mock_app();
        WebviewWindowBuilder::new(&app, MAIN_WINDOW, WebviewUrl::default())
            .visible(false)
            .build()
            .expect("mock window");
        app
    }

    #[test]
    fn menu_ids_map_to_actions() {
        assert_eq!(MenuAction::from_id("open"), Some(MenuAction::OpenManager));
        assert_eq!(MenuAction::from_id("quit"), Some(MenuAction::Quit));
        assert_eq!(MenuAction::from_id("Quit"), None);
        assert_eq!(MenuAction::from_id(""), None);
    }

    #[test]
    fn open_shows_the_main_window() {
        let app = app_with_main_window();
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
        let app = app_with_main_window();
        assert_eq!(
            handle_menu(app.handle(), "settings").expect("ignored"),
            None
        );
        assert_eq!(app.webview_windows().len(), 1);
    }

    #[test]
    fn quit_asks_the_runtime_to_exit() {
        // The mock runtime has no event loop to stop: its `request_exit` is `unimplemented!()`.
        // Reaching that panic is the proof that Quit asked the runtime to exit.
        let app = app_with_main_window();
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
