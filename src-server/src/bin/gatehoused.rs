//! `gatehoused`: the Gatehouse background service (DESIGN.md §Contracts).

use std::process::ExitCode;

use gatehouse::server::options::{Options, USAGE};
use gatehouse::server::Server;

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("gatehoused: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    fixed_mmap_threshold();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehoused: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match Server::start(&opts).await {
            Ok(server) => {
                server.run_until_stopped().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gatehoused: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Large buffers (an Argon2 password check takes 19 MiB) are always mapped and unmapped, never
/// kept in malloc's arenas: glibc's sliding threshold otherwise moves them into the arenas of the
/// blocking threads, where they stay. Measured with `gatehouse-bench imap-idle`: 200 hashed logins
/// grew the resident size from 56 MB to 3.6 GB with the sliding threshold, to 24 MB without.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_mmap_threshold() {
    // SAFETY: mallopt only changes an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}
