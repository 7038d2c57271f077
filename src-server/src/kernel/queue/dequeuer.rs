//! The Dequeuer: worker threads (`Processors`) that take due messages, route each open recipient
//! through the Router, hand it to the channel of its target, record the outcome durably, apply
//! the retry schedule, and send delivery reports (guide.txt:9934-10008).
//!
//! Each recipient's new state is appended to the message's sidecar and fsynced before the next
//! recipient is tried; for the last open recipient of a message with nothing to report, the
//! removal of the `.msg` file is the record (one fsync fewer per message). A target whose
//! channel is not plugged in stays deferred with the text "no <MODULE> module" and is retried on
//! the schedule. SYSTEM NULL is delivered, SYSTEM ERROR fails (guide.txt:10283-10324).
//!
//! Reports (RFC 3461/3464): never for a `<>` return-path or NOTIFY=NEVER; failures when NOTIFY
//! is absent or has FAILURE; successes with SUCCESS ("delivered", or "relayed" when the next
//! hop takes no DSN request, RFC 3461 §5.2.2; none when it took the request on, §5.2.1); one delay notice per recipient after `Send
//! Warnings After` when NOTIFY is absent or has DELAY. A report waits up to `Reporting Delay` to
//! cover more recipients and goes at once when the last recipient is done. A report is submitted
//! before it is recorded as sent, so a crash may repeat it but never lose it.
//!
//! Implementation: a channel call runs outside every lock; a channel that panics defers the
//! recipient instead of killing the worker.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::dsn::{self, Action, Item};
use super::file::{Envelope, RcptState, RcptStatus, StateRecord};
use super::settings::{OnFailureReturn, QueueSettings};
use super::{Queue, ReadError, Taken, DEQUEUER};
use crate::kernel::log::Level;
use crate::kernel::mail::{
    Channel, Job, JobDsn, MessageId, NewRecipient, Outcome, Ret, Route, Routed, Source, Submission,
    Submit, Target,
};

/// The delivery modules a target can go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Local Delivery.
    Local,
    /// The SMTP module.
    Smtp,
    /// The PIPE module.
    Pipe,
    /// The LIST module (groups).
    List,
}

impl ChannelKind {
    /// The channel a target goes to (`None` for SYSTEM targets, handled by the kernel).
    pub fn of(t: &Target) -> Option<ChannelKind> {
        match t {
            Target::Local { .. } => Some(ChannelKind::Local),
            Target::Smtp { .. } => Some(ChannelKind::Smtp),
            Target::Pipe { .. } => Some(ChannelKind::Pipe),
            Target::List { .. } => Some(ChannelKind::List),
            Target::Discard | Target::Error(_) => None,
        }
    }

    /// The module's name as the guide writes it.
    pub fn module(self) -> &'static str {
        match self {
            ChannelKind::Local => "LOCAL",
            ChannelKind::Smtp => "SMTP",
            ChannelKind::Pipe => "PIPE",
            ChannelKind::List => "LIST",
        }
    }
}

/// The queue's delivery side.
pub struct Dequeuer {
    queue: Arc<Queue>,
    submit: Arc<dyn Submit>,
    router: RwLock<Option<Arc<dyn Route>>>,
    channels: RwLock<HashMap<ChannelKind, Arc<dyn Channel>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    running: AtomicUsize,
    reports: AtomicU64,
}

/// What one worker turn did with a message.
enum Turn {
    /// Look at it again at this time.
    Again(i64),
    /// Every recipient is done and reported.
    Done,
    /// Its file is damaged and was quarantined.
    Bad,
}

impl Dequeuer {
    /// A Dequeuer over `queue` that submits its reports through `submit` (the Enqueuer).
    pub fn new(queue: Arc<Queue>, submit: Arc<dyn Submit>) -> Arc<Dequeuer> {
        Arc::new(Dequeuer {
            queue,
            submit,
            router: RwLock::new(None),
            channels: RwLock::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            reports: AtomicU64::new(0),
        })
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// Plugs in the Router.
    pub fn set_router(&self, router: Arc<dyn Route>) {
        *self.router.write().unwrap_or_else(PoisonError::into_inner) = Some(router);
        self.queue.release(None);
    }

    /// Plugs in (or replaces) the channel for one kind of target; deferred recipients are
    /// retried at once.
    pub fn set_channel(&self, kind: ChannelKind, channel: Arc<dyn Channel>) {
        self.channels
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kind, channel);
        self.queue.release(None);
    }

    /// Starts worker threads up to the `Processors` setting (call again after a change).
    pub fn start(self: &Arc<Self>) {
        let want = self.queue.settings().processors;
        let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        while workers.len() < want {
            let me = self.clone();
            let n = workers.len();
            let spawned = std::thread::Builder::new()
                .name(format!("dequeuer-{n}"))
                .spawn(move || me.worker(n));
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => {
                    self.queue.logger().log(
                        Level::Failures,
                        DEQUEUER,
                        format_args!("cannot start a Dequeuer processor: {e}"),
                    );
                    break;
                }
            }
        }
        self.running.store(workers.len(), Ordering::SeqCst);
    }

    /// Stops the workers and waits up to 10 seconds for them. Channels are told to stop, so a
    /// delivery waiting on the network (DNS, connect, a slow server) ends at once as
    /// [`Outcome::Interrupted`] and its recipient stays queued unchanged; one stuck anyway is
    /// left to end with the process, which is safe too: its recipient is tried after restart.
    pub fn stop(&self) {
        self.queue.stop();
        let channels: Vec<Arc<dyn Channel>> = self
            .channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for c in channels {
            c.stop();
        }
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for w in workers {
            while !w.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
    }

    fn worker(&self, n: usize) {
        while !self.queue.stopping() {
            // Processors may have been lowered: extra workers idle.
            if n >= self.queue.settings().processors {
                self.queue.wait(Duration::from_secs(1));
                continue;
            }
            if !self.run_one() {
                self.queue.wait(Duration::from_secs(1));
            }
        }
    }

    /// Processes every message due now in the calling thread; returns how many turns it took.
    pub fn run_due(&self) -> usize {
        let mut n = 0;
        while self.run_one() {
            n += 1;
        }
        n
    }

    fn run_one(&self) -> bool {
        let now = self.queue.now();
        let Some((id, mut taken)) = self.queue.take_due(now) else {
            return false;
        };
        match self.turn(id, &mut taken) {
            Turn::Again(due) => self.queue.finish(id, taken, Some(due)),
            Turn::Done => self.queue.finish(id, taken, None),
            Turn::Bad => {}
        }
        true
    }

    fn turn(&self, id: MessageId, t: &mut Taken) -> Turn {
        let q = &self.queue;
        let s = q.settings();
        let message = match q.read_message(id) {
            Ok(m) => m,
            Err(ReadError::Bad(why)) => {
                q.quarantine(id, &why);
                return Turn::Bad;
            }
            Err(ReadError::Io(e)) => {
                q.logger().log(
                    Level::Failures,
                    DEQUEUER,
                    format_args!("cannot read queued message {id}: {e}"),
                );
                return Turn::Again(q.now() + s.retry_every);
            }
        };
        let env = t.env.clone();
        for i in 0..env.recipients.len() {
            if q.stopping() {
                break;
            }
            let now = q.now();
            let due = match &t.status[i].state {
                RcptState::Pending => true,
                RcptState::Deferred { next_try, .. } => *next_try <= now,
                _ => false,
            };
            if !due {
                continue;
            }
            let (outcome, queue_name) = self.deliver(id, &env, &message, i);
            if let Some(name) = queue_name {
                t.targets[i] = Some(name);
            }
            let attempts = t.status[i].attempts.saturating_add(1);
            let state = match outcome {
                Outcome::Delivered => RcptState::Delivered,
                Outcome::Relayed => RcptState::Relayed,
                Outcome::PassedOn => RcptState::PassedOn,
                Outcome::Failed(text) => RcptState::Failed(text),
                Outcome::Deferred(text) => match s.next_try(env.arrived, now) {
                    Some(next_try) => RcptState::Deferred { text, next_try },
                    None => {
                        RcptState::Failed(format!("{text} (gave up after {attempts} attempts)"))
                    }
                },
                // Stopping: not an attempt, nothing recorded; the recipient is tried after
                // restart.
                Outcome::Interrupted => {
                    q.logger().log(
                        Level::Major,
                        DEQUEUER,
                        format_args!(
                            "{id} <{}> interrupted by the shutdown; it stays queued",
                            env.recipients[i].address
                        ),
                    );
                    break;
                }
            };
            self.log_state(id, &env.recipients[i].address, &state);
            let rec = StateRecord::State {
                rcpt: i,
                state: state.clone(),
                time: now,
                attempts,
            };
            // The last open recipient, with nothing left to report: removing the .msg file is
            // its durable record, so the sidecar write (an fsync) is skipped.
            let last = state.is_final()
                && !wants_final(&env, i, &state)
                && t.status.iter().enumerate().all(|(j, x)| {
                    j == i
                        || (x.state.is_final() && (x.reported || !wants_final(&env, j, &x.state)))
                });
            if last {
                let st = &mut t.status[i];
                st.state = state;
                st.since = now;
                st.attempts = attempts;
                continue;
            }
            if let Err(e) = q.record(id, &rec) {
                // Not durable: the recipient is tried again later (at least once).
                q.logger().log(
                    Level::Failures,
                    DEQUEUER,
                    format_args!("cannot record the state of message {id}: {e}"),
                );
                return Turn::Again(now + s.retry_every);
            }
            let st = &mut t.status[i];
            st.state = state;
            st.since = now;
            st.attempts = attempts;
        }
        self.reports(id, &env, &message, &mut t.status, &s)
    }

    fn log_state(&self, id: MessageId, address: &str, state: &RcptState) {
        let (level, what) = match state {
            RcptState::Delivered => (Level::Major, "delivered".to_string()),
            RcptState::Relayed => (Level::Major, "relayed".to_string()),
            RcptState::PassedOn => (Level::Major, "relayed (the next hop reports)".to_string()),
            RcptState::Failed(t) => (Level::Major, format!("failed: {t}")),
            RcptState::Deferred { text, .. } => (Level::Problems, format!("deferred: {text}")),
            RcptState::Pending => (Level::AllInfo, "pending".to_string()),
        };
        self.queue
            .logger()
            .log(level, DEQUEUER, format_args!("{id} <{address}> {what}"));
    }

    /// Routes and delivers recipient `i`; also returns the queue name it was routed to.
    fn deliver(
        &self,
        id: MessageId,
        env: &Envelope,
        message: &[u8],
        i: usize,
    ) -> (Outcome, Option<String>) {
        let address = env.recipients[i].address.as_str();
        let router = self
            .router
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(router) = router else {
            return (Outcome::Deferred("no Router".into()), None);
        };
        let routed: Routed = match catch_unwind(AssertUnwindSafe(|| router.route(address))) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return (Outcome::Failed(e.to_string()), None),
            Err(_) => {
                return (
                    Outcome::Deferred("internal error in the Router".into()),
                    None,
                )
            }
        };
        let [_, queue_name, _] = routed.cli_triple();
        let kind = match &routed.target {
            Target::Discard => return (Outcome::Delivered, Some(queue_name)),
            Target::Error(text) => {
                let text = if text.is_empty() {
                    "Blacklisted Address".to_string()
                } else {
                    text.clone()
                };
                return (Outcome::Failed(text), Some(queue_name));
            }
            t => ChannelKind::of(t),
        };
        let Some(kind) = kind else {
            return (Outcome::Failed("unroutable".into()), None);
        };
        let channel = self
            .channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&kind)
            .cloned();
        let Some(channel) = channel else {
            return (
                Outcome::Deferred(format!("no {} module", kind.module())),
                Some(queue_name),
            );
        };
        let job = Job {
            id,
            message,
            return_path: &env.return_path,
            recipient: address,
            target: &routed.target,
            source: &env.source,
            dsn: JobDsn {
                env_id: env.env_id.as_deref(),
                ret: env.ret,
                notify: env.recipients[i].notify,
                orcpt: env.recipients[i].orcpt.as_deref(),
            },
        };
        let outcome =
            catch_unwind(AssertUnwindSafe(|| channel.deliver(&job))).unwrap_or_else(|_| {
                Outcome::Deferred(format!("internal error in the {} module", kind.module()))
            });
        (outcome, Some(queue_name))
    }

    /// Sends the reports that are due, records them, and says when to look again.
    fn reports(
        &self,
        id: MessageId,
        env: &Envelope,
        message: &[u8],
        status: &mut [RcptStatus],
        s: &QueueSettings,
    ) -> Turn {
        let q = &self.queue;
        let now = q.now();
        let all_final = status.iter().all(|x| x.state.is_final());
        let finals: Vec<usize> = (0..status.len())
            .filter(|&i| !status[i].reported && wants_final(env, i, &status[i].state))
            .collect();
        let mut retry_reports = false;
        if !finals.is_empty() {
            let oldest = finals.iter().map(|&i| status[i].since).min().unwrap_or(now);
            if all_final || oldest + s.reporting_delay <= now {
                let items: Vec<Item> = finals.iter().map(|&i| item(i, &status[i])).collect();
                if self.send_report(env, message, &items, s).is_ok()
                    && q.record(id, &StateRecord::Reported(finals.clone())).is_ok()
                {
                    for &i in &finals {
                        status[i].reported = true;
                    }
                } else {
                    retry_reports = true;
                }
            }
        }
        if let Some(after) = s.send_warnings_after {
            if now - env.arrived >= after {
                let warn: Vec<usize> = (0..status.len())
                    .filter(|&i| wants_warning(env, i, &status[i]))
                    .collect();
                if !warn.is_empty() {
                    let items: Vec<Item> = warn
                        .iter()
                        .map(|&i| Item {
                            action: Action::Delayed,
                            ..item(i, &status[i])
                        })
                        .collect();
                    if self.send_report(env, message, &items, s).is_ok()
                        && q.record(id, &StateRecord::Warned(warn.clone())).is_ok()
                    {
                        for &i in &warn {
                            status[i].warned = true;
                        }
                    } else {
                        retry_reports = true;
                    }
                }
            }
        }
        let unreported: Vec<i64> = (0..status.len())
            .filter(|&i| !status[i].reported && wants_final(env, i, &status[i].state))
            .map(|i| status[i].since + s.reporting_delay)
            .collect();
        if all_final && unreported.is_empty() {
            return Turn::Done;
        }
        let mut due: Vec<i64> = unreported;
        for st in status.iter() {
            if let RcptState::Deferred { next_try, .. } = st.state {
                due.push(next_try);
            }
        }
        if let Some(after) = s.send_warnings_after {
            if (0..status.len()).any(|i| wants_warning(env, i, &status[i])) {
                due.push(env.arrived + after);
            }
        }
        if retry_reports {
            due.push(now + s.retry_every);
        }
        Turn::Again(
            due.into_iter()
                .min()
                .unwrap_or(now + s.retry_every)
                .max(now),
        )
    }

    fn send_report(
        &self,
        env: &Envelope,
        message: &[u8],
        items: &[Item],
        s: &QueueSettings,
    ) -> Result<(), ()> {
        let q = &self.queue;
        let failure = items.iter().any(|i| i.action == Action::Failed);
        let full = failure
            && match s.on_failure_return {
                OnFailureReturn::AlwaysBody => true,
                OnFailureReturn::AlwaysHeaders => false,
                OnFailureReturn::HeadersByDefault => env.ret == Some(Ret::Full),
                OnFailureReturn::BodyByDefault => env.ret != Some(Ret::Headers),
            };
        let now = q.clock().now();
        let bytes = dsn::build(
            &dsn::Report {
                host: q.host(),
                envelope: env,
                message,
                items,
                full,
                retry_until: Some(env.arrived + s.keep_trying_for),
                now,
                token: self.reports.fetch_add(1, Ordering::Relaxed),
            },
            &env.return_path,
        );
        let mut recipients = vec![NewRecipient::new(env.return_path.clone())];
        if failure {
            if let Some(copy) = &s.copy_failure_reports_to {
                recipients.push(NewRecipient::new(copy.clone()));
            }
        }
        let sub = Submission {
            return_path: String::new(),
            recipients,
            source: Source::Dsn,
            env_id: None,
            ret: None,
        };
        match self.submit.submit(sub, &bytes) {
            Ok(dsn_id) => {
                q.logger().log(
                    Level::Major,
                    DEQUEUER,
                    format_args!(
                        "{} report for message {} to <{}> queued as {dsn_id}",
                        if failure { "failure" } else { "delivery" },
                        env.id,
                        env.return_path
                    ),
                );
                Ok(())
            }
            Err(e) => {
                q.logger().log(
                    Level::Failures,
                    DEQUEUER,
                    format_args!("cannot submit a report for message {}: {e}", env.id),
                );
                Err(())
            }
        }
    }
}

fn item(i: usize, st: &RcptStatus) -> Item {
    let (action, text) = match &st.state {
        RcptState::Delivered => (Action::Delivered, String::new()),
        RcptState::Relayed | RcptState::PassedOn => (Action::Relayed, String::new()),
        RcptState::Failed(t) => (Action::Failed, t.clone()),
        RcptState::Deferred { text, .. } => (Action::Delayed, text.clone()),
        RcptState::Pending => (Action::Delayed, String::new()),
    };
    Item {
        rcpt: i,
        action,
        text,
        time: st.since,
    }
}

/// RFC 3461 §4.1: whether a final state of recipient `i` is to be reported.
fn wants_final(env: &Envelope, i: usize, state: &RcptState) -> bool {
    let Some(r) = env.recipients.get(i) else {
        return false;
    };
    // Never a report about a report (RFC 3464 §2, "<>" return-path).
    if env.return_path.is_empty() || r.notify.never {
        return false;
    }
    let unspecified = !(r.notify.success || r.notify.failure || r.notify.delay);
    match state {
        RcptState::Failed(_) => unspecified || r.notify.failure,
        // RFC 3461 §5.2.2: "relayed" goes back on SUCCESS, as "delivered" does.
        RcptState::Delivered | RcptState::Relayed => r.notify.success,
        // §5.2.1: the next hop took NOTIFY=SUCCESS on; a report of ours would be a second one.
        RcptState::PassedOn => false,
        _ => false,
    }
}

/// Whether recipient `i` should get a delay notice now (the age check is the caller's).
fn wants_warning(env: &Envelope, i: usize, st: &RcptStatus) -> bool {
    let Some(r) = env.recipients.get(i) else {
        return false;
    };
    if env.return_path.is_empty() || r.notify.never || st.warned {
        return false;
    }
    let unspecified = !(r.notify.success || r.notify.failure || r.notify.delay);
    matches!(st.state, RcptState::Deferred { .. }) && (unspecified || r.notify.delay)
}
