//! A blocking CLI client over the PWD protocol, used by the `gatehouse` program and the desktop
//! manager (spec B §2; the server side is `modules::pwd`).
//!
//! Security: the server's replies are parsed with the bounded `format` parser; a data reply
//! longer than [`MAX_REPLY`] is refused. The password is sent in clear text (USER/PASS), as the
//! guide's PWD protocol does; use it over loopback or a TLS listener.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::format::{self, Value};

/// Largest data reply accepted.
pub const MAX_REPLY: usize = 64 * 1024 * 1024;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or broke.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// The server said something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused the login (its text).
    #[error("login failed: {0}")]
    Login(String),
    /// The command failed (the server's text after the code).
    #[error("{0}")]
    Command(String),
}

/// A connection to a PWD/CLI server.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    greeting: String,
}

impl Client {
    /// Connects to `addr` (`host:port`) and reads the greeting; `timeout` bounds connecting and
    /// every read and write.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Client, ClientError> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    let writer = stream.try_clone()?;
                    let mut c = Client {
                        reader: BufReader::new(stream),
                        writer,
                        greeting: String::new(),
                    };
                    let g = c.read_line()?;
                    if !g.starts_with("200 ") {
                        return Err(ClientError::Protocol(format!("unexpected greeting: {g}")));
                    }
                    c.greeting = g;
                    return Ok(c);
                }
                Err(e) => last = e,
            }
        }
        Err(last.into())
    }

    /// The server's greeting line.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    fn read_line(&mut self) -> Result<String, ClientError> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY as u64)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn send(&mut self, line: &[u8]) -> Result<(), ClientError> {
        if line.contains(&b'\n') || line.contains(&b'\r') {
            return Err(ClientError::Command("a command must be on one line".into()));
        }
        let mut out = line.to_vec();
        out.extend_from_slice(b"\r\n");
        self.writer.write_all(&out)?;
        Ok(())
    }

    /// Logs in with USER/PASS.
    pub fn login(&mut self, user: &str, password: &[u8]) -> Result<(), ClientError> {
        self.send(format!("USER {user}").as_bytes())?;
        let r = self.read_line()?;
        if !r.starts_with("300") {
            return Err(ClientError::Login(code_text(&r)));
        }
        let mut line = b"PASS ".to_vec();
        line.extend_from_slice(password);
        self.send(&line)?;
        let r = self.read_line()?;
        if r.starts_with("200") {
            Ok(())
        } else {
            Err(ClientError::Login(code_text(&r)))
        }
    }

    /// Sends one CLI command line; returns its data, if any.
    pub fn command(&mut self, line: &str) -> Result<Option<Value>, ClientError> {
        self.send(line.as_bytes())?;
        let r = self.read_line()?;
        if !r.starts_with("200") {
            return Err(ClientError::Command(code_text(&r)));
        }
        if r != "200 data follow" {
            return Ok(None);
        }
        // One object follows; it may span lines (guide.txt:5385-5386), so read until it parses.
        let mut data = String::new();
        loop {
            data.push_str(&self.read_line()?);
            match format::parse(data.as_bytes()) {
                Ok(v) => return Ok(Some(v)),
                Err(e) if e.offset >= data.len() && data.len() < MAX_REPLY => data.push('\n'),
                Err(e) => {
                    return Err(ClientError::Protocol(format!(
                        "bad data from the server: {e}"
                    )))
                }
            }
        }
    }

    /// Says QUIT and closes the connection.
    pub fn quit(mut self) -> Result<(), ClientError> {
        self.send(b"QUIT")?;
        self.read_line().map(drop)
    }
}

/// The text after a reply's code.
fn code_text(reply: &str) -> String {
    reply.split_once(' ').map_or(reply, |(_, t)| t).to_string()
}

/// A string as one CLI argument: unchanged when the lenient parser reads it back as itself,
/// quoted otherwise.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b >= 0x80 || (b > b' ' && b != 0x7f && !b"\"(){},;=\\".contains(&b)));
    if plain {
        return s.to_string();
    }
    let mut out = Vec::new();
    format::write_string(s.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Joins command-line arguments into one CLI line: arguments that already are data-format
/// objects (`{...}`, `(...)`, `"..."`) pass unchanged, others go through [`quote`].
pub fn join_args<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            let object = matches!(a.as_bytes().first(), Some(b'{' | b'(' | b'"'))
                && format::parse(a.as_bytes()).is_ok();
            if object {
                a.to_string()
            } else {
                quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("user1@client1.com"), "user1@client1.com");
        assert_eq!(quote("hello world"), "\"hello world\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(
            join_args(&[
                "UpdateAccountSettings",
                "u",
                "{RealName=\"A B\";}",
                "x y",
                "{broken"
            ]),
            "UpdateAccountSettings u {RealName=\"A B\";} \"x y\" \"{broken\""
        );
    }
}
