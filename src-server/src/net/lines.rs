//! The one line reader of the line-based protocols (PWD, POP): CRLF- or LF-terminated lines with
//! a length cap. A line longer than the cap is skipped whole and reported once as
//! [`Line::TooLong`], so a client that sends too much gets an error and the session goes on.

use tokio::io::{AsyncRead, AsyncReadExt};

/// What [`LineReader::next`] read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line without its line end.
    Text(Vec<u8>),
    /// A line longer than the cap (its bytes are dropped).
    TooLong,
    /// The peer closed the connection.
    Eof,
}

/// A buffered line reader over any stream.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    skipping: bool,
}

impl LineReader {
    /// The next line of at most `max` bytes.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        max: usize,
    ) -> std::io::Result<Line> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                if std::mem::take(&mut self.skipping) {
                    return Ok(Line::TooLong);
                }
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(line));
            }
            if self.buf.len() > max {
                self.skipping = true;
                self.buf.clear();
            }
            let n = r.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Line::Eof);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Drops whatever was read but not yet returned: after STARTTLS, bytes a client sent before
    /// the handshake must not be taken as commands (RFC 3207 §4.2 and its POP/IMAP equivalents).
    pub fn discard_buffered(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_caps_and_eof() {
        let input = b"one\r\ntwo\nxxxxxxxxxxxxxxxxxxxx\r\nthree\r\n".to_vec();
        for chunk in [1usize, 3, 7, 64] {
            let (mut client, mut server) = tokio::io::duplex(chunk);
            let data = input.clone();
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for part in data.chunks(chunk) {
                    client.write_all(part).await.expect("write");
                }
            });
            let mut r = LineReader::default();
            assert_eq!(
                r.next(&mut server, 10).await.expect("read"),
                Line::Text(b"one".to_vec())
            );
            assert_eq!(
                r.next(&mut server, 10).await.expect("read"),
                Line::Text(b"two".to_vec())
            );
            assert_eq!(r.next(&mut server, 10).await.expect("read"), Line::TooLong);
            assert_eq!(
                r.next(&mut server, 10).await.expect("read"),
                Line::Text(b"three".to_vec())
            );
            writer.await.expect("writer");
            assert_eq!(r.next(&mut server, 10).await.expect("read"), Line::Eof);
        }
    }
}
