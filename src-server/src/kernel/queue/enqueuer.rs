//! The Enqueuer: the one door into the queue for every entry point (SMTP, PIPE, WebMail, RPOP,
//! LIST, Rules, DSNs; guide.txt:9851-9932, DESIGN.md §Mail flow).
//!
//! `submit` checks the envelope (at least one recipient) and the hop count (`Received:` fields
//! above `MaxHops` mean a mail loop, RFC 5321 §6.3), writes `<id>.tmp` (envelope, end marker,
//! message), fsyncs it, renames it to `<id>.msg`, fsyncs the directory, and only then returns the
//! id and wakes the Dequeuer. An empty `<id>.sta` is created first so the same directory fsync
//! makes its name durable too. Concurrent submits share directory fsyncs (group commit): a
//! submit returns once an fsync that started after its rename has finished, never later than its
//! own would.
//!
//! Security: the message bytes are stored as given; only the header section is scanned, bounded
//! by the message itself.
//!
//! Server-Wide Rules (guide.txt:9896-9899) run here, before the message is stored
//! ([`Enqueuer::with_server_rules`]).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::file::{self, Envelope};
use super::{Queue, ENQUEUER};

/// Log tag of the Server-Wide Rules (guide.txt:9927-9930).
const ENQUEUER_RULES: &str = "ENQUEUERRULES";
use crate::kernel::log::Level;
use crate::kernel::mail::{EnqueueError, MessageId, Source, Submission, Submit};
use crate::kernel::rules::{self, Disposition, Effect, EnvelopeRecipient, MessageView};
use crate::store::fsutil::sync_dir;
use crate::store::Store;

/// Stores submitted messages in the queue (implements [`Submit`]).
pub struct Enqueuer {
    queue: Arc<Queue>,
    dir_sync: GroupSync,
    /// Where the Server-Wide Rules are read from; `None` runs no rules (tests, benchmarks).
    rules: Option<Store>,
}

/// Directory fsyncs shared by concurrent callers.
#[derive(Default)]
struct GroupSync {
    /// (tickets issued, tickets covered by a finished fsync, an fsync is running)
    state: Mutex<(u64, u64, bool)>,
    done: Condvar,
}

impl GroupSync {
    /// Returns once an fsync of `dir` that started after this call began has succeeded.
    fn sync(&self, dir: &Path) -> std::io::Result<()> {
        let mut g = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        g.0 += 1;
        let mine = g.0;
        loop {
            if g.1 >= mine {
                return Ok(());
            }
            if !g.2 {
                // Lead: this fsync covers every ticket issued so far (their renames are done).
                g.2 = true;
                let covers = g.0;
                drop(g);
                let r = sync_dir(dir);
                g = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                g.2 = false;
                if r.is_ok() {
                    g.1 = g.1.max(covers);
                }
                self.done.notify_all();
                r?;
                continue;
            }
            g = self.done.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The number of `Received:` fields in the message header.
pub fn hop_count(message: &[u8]) -> usize {
    file::header_values(message, "Received").len()
}

impl Enqueuer {
    /// An Enqueuer writing into `queue`.
    pub fn new(queue: Arc<Queue>) -> Enqueuer {
        Enqueuer {
            queue,
            dir_sync: GroupSync::default(),
            rules: None,
        }
    }

    /// The same Enqueuer, applying the Server-Wide Rules stored in `store` to every message.
    pub fn with_server_rules(self, store: Store) -> Enqueuer {
        Enqueuer {
            rules: Some(store),
            ..self
        }
    }

    /// guide.txt:9896-9932: the Enqueuer applies the Server-Wide Rules to every message. Their
    /// copies (Redirect, Mirror, Reply ...) are submitted here; the message itself is refused,
    /// dropped, or kept with the rules' added header fields. Messages the rules made themselves
    /// (and delivery reports) are not run through them again, so rules cannot loop.
    /// Returns `None` when the message is to be dropped.
    fn server_rules(
        &self,
        sub: &Submission,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>, EnqueueError> {
        let Some(store) = &self.rules else {
            return Ok(Some(message.to_vec()));
        };
        if matches!(sub.source, Source::Rules(_) | Source::Dsn) {
            return Ok(Some(message.to_vec()));
        }
        let q = &self.queue;
        let recipients = sub
            .recipients
            .iter()
            .map(|r| EnvelopeRecipient {
                orcpt: r.orcpt.clone(),
                ..EnvelopeRecipient::new(r.address.clone())
            })
            .collect();
        let view = MessageView::new(
            message,
            sub.return_path.clone(),
            recipients,
            sub.source.clone(),
        );
        let outcome = match rules::server_rules(store, q.clock().as_ref(), q.host(), &view) {
            Ok(o) => o,
            Err(e) => {
                // Broken rules must not stop the mail: the message goes on unfiltered.
                q.logger().log(
                    Level::Failures,
                    ENQUEUER_RULES,
                    format_args!("Server-Wide Rules not applied: {e}"),
                );
                return Ok(Some(message.to_vec()));
            }
        };
        for name in &outcome.applied {
            q.logger().log(
                Level::LowLevel,
                ENQUEUER_RULES,
                format_args!("rule {name} applied"),
            );
        }
        for note in &outcome.notes {
            q.logger().log(Level::LowLevel, ENQUEUER_RULES, note);
        }
        for effect in outcome.effects {
            match effect {
                Effect::Submit {
                    action,
                    submission,
                    message,
                } => {
                    if let Err(e) = self.submit(submission, &message) {
                        q.logger().log(
                            Level::Problems,
                            ENQUEUER_RULES,
                            format_args!("{action}: copy not queued: {e}"),
                        );
                    }
                }
                Effect::Log(text) => q.logger().log(Level::Major, ENQUEUER_RULES, text),
                // Storing, programs and the external filter act for an account or the content
                // filter; Server-Wide Rules here only route, mark and refuse.
                other => q.logger().log(
                    Level::Problems,
                    ENQUEUER_RULES,
                    format_args!("not carried out in Server-Wide Rules: {other:?}"),
                ),
            }
        }
        match outcome.disposition {
            Disposition::Reject(text) => Err(EnqueueError::Rejected(text)),
            Disposition::Discard => Ok(None),
            Disposition::Deliver => {
                let mut out = outcome.headers.into_bytes();
                out.extend_from_slice(message);
                Ok(Some(out))
            }
        }
    }

    /// The queue it fills.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    fn write(&self, env: &Envelope, message: &[u8]) -> std::io::Result<()> {
        let q = &self.queue;
        let id = env.id;
        let tmp = q.tmp_path(id);
        let result = (|| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(q.sta_path(id))?;
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(&file::encode_envelope(env, message.len()))?;
            f.write_all(message)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, q.msg_path(id))?;
            self.dir_sync.sync(q.dir())
        })();
        if result.is_err() {
            // guide.txt:9868-9871: a failed composition is discarded.
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(q.sta_path(id));
        }
        result
    }
}

impl Submit for Enqueuer {
    fn submit(&self, sub: Submission, message: &[u8]) -> Result<MessageId, EnqueueError> {
        if sub.recipients.is_empty() {
            return Err(EnqueueError::NoRecipients);
        }
        if sub.recipients.len() > file::MAX_RECIPIENTS {
            return Err(EnqueueError::TooLarge);
        }
        let q = &self.queue;
        let settings = q.settings();
        let hops = hop_count(message);
        if hops > settings.max_hops {
            q.logger().log(
                Level::Problems,
                ENQUEUER,
                format_args!(
                    "message from <{}> refused: {hops} Received fields (mail loop)",
                    sub.return_path
                ),
            );
            return Err(EnqueueError::TooManyHops);
        }
        let Some(message) = self.server_rules(&sub, message)? else {
            let id = q.new_id();
            q.logger().log(
                Level::LowLevel,
                ENQUEUER_RULES,
                format_args!(
                    "{id} from <{}> discarded by the Server-Wide Rules",
                    sub.return_path
                ),
            );
            return Ok(id);
        };
        let message = message.as_slice();
        let env = Envelope {
            id: q.new_id(),
            arrived: q.now(),
            source: sub.source,
            return_path: sub.return_path,
            env_id: sub.env_id,
            ret: sub.ret,
            recipients: sub.recipients,
        };
        if let Err(e) = self.write(&env, message) {
            q.logger().log(
                Level::Failures,
                ENQUEUER,
                format_args!("cannot store message {}: {e}", env.id),
            );
            return Err(EnqueueError::Io(e));
        }
        let id = env.id;
        q.logger().log(
            Level::AllInfo,
            ENQUEUER,
            format_args!(
                "{id} from <{}> ({}) to {} recipient(s), {} bytes",
                env.return_path,
                env.source,
                env.recipients.len(),
                message.len()
            ),
        );
        q.insert(env, message.len() as u64);
        Ok(id)
    }
}
