//! `gatehouse-manager`: the Gatehouse desktop manager (see the library for what it is).
//!
//! ```text
//! gatehouse-manager [--server HOST:PORT] [--user NAME] [--password-file FILE]
//! ```

// No console window behind the manager on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Err(err) = gatehouse_manager::run(std::env::args().skip(1).collect()) {
        eprintln!("gatehouse-manager: {err}");
        eprintln!(
            "usage: gatehouse-manager [--server HOST:PORT] [--user NAME] [--password-file FILE]"
        );
        std::process::exit(1);
    }
}
