//! The `gatehoused` command line (DESIGN.md §Contracts; guide.txt:2465-2554).
//!
//! Option names are case-insensitive, as the guide's are, so `--Base`, `--CGateBase` and
//! `--LogToConsole` work beside the house spellings `--base` and `--log-to-console`.
//!
//! `--test-clock TIME` (RFC 3339) is for end-to-end tests and left out of the usage text: the
//! dial-up link (TCP Activity Schedule, sessions, RPOP polls) then runs on a clock that starts at
//! `TIME` and that the CLI command `SetTestClock` moves (docs/cli.md). The log and the queue keep
//! the system clock.

use std::path::PathBuf;

/// What `gatehoused` was started with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--base DIR`: the base directory; `None` picks the default (see [`default_base`]).
    pub base: Option<PathBuf>,
    /// `--port-offset N`: added to every default listener port.
    pub port_offset: u16,
    /// `--main-domain NAME`: the main domain name on first start.
    pub main_domain: Option<String>,
    /// `--postmaster-password PW` or `GATEHOUSE_POSTMASTER_PASSWORD`: the postmaster password on first start.
    pub postmaster_password: Option<String>,
    /// `--log-to-console`: mirror the log to stderr.
    pub log_to_console: bool,
    /// `--LogAll`: record everything, whatever the Log settings say (guide.txt:2478).
    pub log_all: bool,
    /// `--test-clock TIME`: the dial-up link's clock starts at `TIME` and `SetTestClock` moves it.
    pub test_clock: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// The usage text printed for `--help` and after a bad option.
pub const USAGE: &str = "usage: gatehoused [--base DIR] [--port-offset N] [--main-domain NAME]
                  [--postmaster-password PW] [--log-to-console] [--log-all]

  --base DIR               base directory (also --Base, --CGateBase); default: /var/lib/gatehouse
                           when run as root, else the user's data directory
  --port-offset N          add N to every default port (10000: SMTP 10025, PWD 10106, ...)
  --main-domain NAME       main domain name on first start (default: the host name)
  --postmaster-password PW postmaster password on first start (or GATEHOUSE_POSTMASTER_PASSWORD);
                           without it a random one is made and printed once
  --log-to-console         copy every log record to stderr (also --LogToConsole)
  --log-all                record everything whatever the Log settings (also --LogAll)
";

impl Options {
    /// Reads the options from the arguments after the program name, and the environment.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut o = Options {
            postmaster_password: std::env::var("GATEHOUSE_POSTMASTER_PASSWORD").ok(),
            ..Options::default()
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let key = name
                .trim_start_matches('-')
                .to_ascii_lowercase()
                .replace('-', "");
            let mut value = |what: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs {what}"))
            };
            match key.as_str() {
                "base" | "cgatebase" => o.base = Some(PathBuf::from(value("a directory")?)),
                "portoffset" => {
                    let v = value("a number")?;
                    o.port_offset = v.parse().map_err(|_| {
                        format!("--port-offset: {v:?} is not a number from 0 to 65535")
                    })?;
                }
                "maindomain" => o.main_domain = Some(value("a domain name")?),
                "postmasterpassword" => o.postmaster_password = Some(value("a password")?),
                "logtoconsole" => o.log_to_console = true,
                "logall" => o.log_all = true,
                "testclock" => {
                    let v = value("an RFC 3339 time")?;
                    o.test_clock = Some(
                        chrono::DateTime::parse_from_rfc3339(&v)
                            .map_err(|_| format!("--test-clock: {v:?} is not an RFC 3339 time"))?,
                    );
                }
                "help" | "h" => return Err(String::new()),
                _ => return Err(format!("unknown option {arg:?}")),
            }
        }
        Ok(o)
    }

    /// The base directory to use: the option, else the default for this user.
    pub fn base_dir(&self) -> Result<PathBuf, String> {
        match &self.base {
            Some(b) => Ok(b.clone()),
            None => default_base(),
        }
    }
}

/// `/var/lib/gatehouse` for root, else the user's data directory (e.g. `~/.local/share/gatehouse`).
pub fn default_base() -> Result<PathBuf, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/var/lib/gatehouse"));
    }
    directories::ProjectDirs::from("", "", "gatehouse")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            "no home directory to put the base directory in; give --base DIR".to_string()
        })
}

/// The host name, the main domain's name on first start when none is given (guide.txt:2371).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_ascii_lowercase(),
        _ => "localhost".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn guide_and_house_spellings() {
        let o = parse(&["--Base", "/b", "--port-offset", "10000", "--LogToConsole"]).unwrap();
        assert_eq!(o.base, Some(PathBuf::from("/b")));
        assert_eq!(o.port_offset, 10000);
        assert!(o.log_to_console);
        let o = parse(&[
            "--CGateBase=/c",
            "--log-to-console",
            "--main-domain",
            "x.test",
        ])
        .unwrap();
        assert_eq!(o.base, Some(PathBuf::from("/c")));
        assert_eq!(o.main_domain.as_deref(), Some("x.test"));
        assert!(o.log_to_console);
        assert!(parse(&["--LOGALL"]).unwrap().log_all);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(&["--port-offset", "99999"]).is_err());
        assert!(parse(&["--base"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
    }
}
