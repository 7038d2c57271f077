//! Fuzz the IMAP codec: the framer fed in arbitrary chunks, and the command parser on every
//! framed command and on the raw input. Neither may panic; the framer's output stays bounded.
#![no_main]

use gatehouse::modules::imap::proto::{self, frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = proto::parse_command(data);
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut f = frame::Framer::new(4096);
    for piece in data.chunks(chunk) {
        f.feed(piece);
        while let Some(e) = f.poll() {
            if let frame::Event::Command(cmd) = e {
                assert!(cmd.len() <= 4096 * frame::MAX_LITERALS + frame::MAX_LINE * (frame::MAX_LITERALS + 1) + 64);
                let _ = proto::parse_command(&cmd);
            }
        }
    }
});
