//! Command framing: bytes in, whole commands (lines with their literals) out.
//!
//! RFC 3501 §7.5 / §4.3: a command is a line; a line ending in `{n}` announces a literal of `n`
//! octets that follows after the server's `+` continuation; `{n+}` (RFC 7888 LITERAL+) needs no
//! continuation. Bounds: each line at most [`MAX_LINE`] octets, each literal at most the
//! framer's `literal_cap`, the whole command at most `literal_cap` plus [`MAX_LINE`] times
//! [`MAX_LITERALS`].

/// Longest command line (without its literals).
pub const MAX_LINE: usize = 8 * 1024;
/// Most literals in one command.
pub const MAX_LITERALS: usize = 16;

/// What the framer has for the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole command: its lines joined by CRLF with each literal after its `{n}` CRLF.
    Command(Vec<u8>),
    /// A synchronizing literal was announced: send `+` and keep feeding.
    Continue,
    /// A line longer than [`MAX_LINE`] was skipped whole.
    TooLong,
    /// A synchronizing literal above the cap was refused; the command (whose tag this is) is dropped.
    LiteralTooBig(Vec<u8>),
    /// A non-synchronizing literal above the cap: the client will send it anyway, so the
    /// connection cannot be resynchronised and must close (RFC 7888 §4).
    Fatal,
}

/// Incremental command framer.
pub struct Framer {
    buf: Vec<u8>,
    cmd: Vec<u8>,
    literal_left: usize,
    literals: usize,
    skipping: bool,
    literal_cap: usize,
}

impl Framer {
    /// A framer accepting literals up to `literal_cap` octets.
    pub fn new(literal_cap: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            cmd: Vec::new(),
            literal_left: 0,
            literals: 0,
            skipping: false,
            literal_cap,
        }
    }

    /// Add received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Forget everything buffered (after STARTTLS: RFC 3501 §6.2.1 and RFC 2595 §3.1).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.cmd.clear();
        self.literal_left = 0;
        self.literals = 0;
        self.skipping = false;
    }

    /// True when a command has started but is not complete.
    pub fn in_command(&self) -> bool {
        !self.cmd.is_empty() || self.literal_left > 0
    }

    /// One raw line (AUTHENTICATE answers, IDLE's DONE), without its line end; `Some(Err(()))`
    /// for a line over `max` octets (skipped).
    pub fn raw_line(&mut self, max: usize) -> Option<Result<Vec<u8>, ()>> {
        let pos = match self.buf.iter().position(|&b| b == b'\n') {
            Some(p) => p,
            None => {
                if self.buf.len() > max {
                    self.skipping = true;
                    self.buf.clear();
                }
                return None;
            }
        };
        let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
        if std::mem::take(&mut self.skipping) {
            return Some(Err(()));
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > max {
            return Some(Err(()));
        }
        Some(Ok(line))
    }

    /// The next event, or `None` when more input is needed.
    pub fn poll(&mut self) -> Option<Event> {
        loop {
            if self.literal_left > 0 {
                let n = self.literal_left.min(self.buf.len());
                self.cmd.extend(self.buf.drain(..n));
                self.literal_left -= n;
                if self.literal_left > 0 {
                    return None;
                }
            }
            let line = match self.raw_line(MAX_LINE)? {
                Ok(l) => l,
                Err(()) => {
                    self.drop_command();
                    return Some(Event::TooLong);
                }
            };
            self.cmd.extend_from_slice(&line);
            match literal_suffix(&line) {
                None => {
                    self.literals = 0;
                    return Some(Event::Command(std::mem::take(&mut self.cmd)));
                }
                Some((n, plus)) => {
                    self.literals += 1;
                    let too_big = usize::try_from(n).map_or(true, |n| n > self.literal_cap);
                    if too_big || self.literals > MAX_LITERALS {
                        let tag = self
                            .cmd
                            .split(|&b| b == b' ')
                            .next()
                            .unwrap_or_default()
                            .to_vec();
                        self.drop_command();
                        return Some(if plus {
                            Event::Fatal
                        } else {
                            Event::LiteralTooBig(tag)
                        });
                    }
                    self.cmd.extend_from_slice(b"\r\n");
                    self.literal_left = usize::try_from(n).unwrap_or(0);
                    if !plus {
                        return Some(Event::Continue);
                    }
                }
            }
        }
    }

    fn drop_command(&mut self) {
        self.cmd.clear();
        self.literal_left = 0;
        self.literals = 0;
    }
}

/// `{n}` or `{n+}` at the end of a line: the literal's size and whether it is non-synchronizing.
pub fn literal_suffix(line: &[u8]) -> Option<(u64, bool)> {
    let rest = line.strip_suffix(b"}")?;
    let open = rest.iter().rposition(|&b| b == b'{')?;
    let inner = &rest[open + 1..];
    let (digits, plus) = match inner.strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (inner, false),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, plus))
}
