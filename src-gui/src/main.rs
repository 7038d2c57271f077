//! `gatehouse-manager`: the Gatehouse desktop manager (see the library for what it is).

// No console window behind the manager on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Err(err) = gatehouse_manager::run() {
        eprintln!("gatehouse-manager: {err}");
        std::process::exit(1);
    }
}
