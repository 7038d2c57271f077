//! The LIST channel for groups: a message routed to a group is copied unchanged and resubmitted
//! with the group's members as its recipients (guide.txt:9087-9200; spec C §4).
//!
//! Group settings (our keys, as CommuniGate's `GetGroup` shows them): `Members` (array; a name
//! without `@` is an object of the group's domain), `RealName`, `Expand` (Expand Other Groups),
//! `SetReplyTo`, `RemoveAuthor`, `RemoveToAndCc`, `FinalDelivery` (Report Delivery to Group), each
//! `YES`/`NO`. The sender is always removed from the distribution (guide.txt:9176-9177).
//!
//! The copy gets one `Received:` field (the hop count then stops groups that contain each other
//! without Expand) and, with `SetReplyTo`, a `Reply-To:` naming the group; no other field changes.
//! With `FinalDelivery` the copy's return-path is `<>` (member failures are not reported to the
//! sender); otherwise the sender's return-path is kept ("relaying").
//!
//! todo: NOTIFY/ORCPT of the group recipient are not copied to the members; members get the
//! default notification.

use std::collections::HashSet;
use std::sync::Arc;

use super::file::header_values;
use crate::format::Value;
use crate::kernel::mail::{
    Channel, Job, NewRecipient, Outcome, Source, Submission, Submit, Target,
};
use crate::store::{Object, Store};

/// Most members one group expands to (nested groups included).
const MAX_MEMBERS: usize = 10_000;
/// Deepest nesting followed with `Expand`.
const MAX_DEPTH: usize = 8;

/// Delivers to groups by resubmitting to their members.
pub struct GroupChannel {
    store: Store,
    submit: Arc<dyn Submit>,
    host: String,
}

fn yes(settings: &crate::format::Dict, key: &str) -> bool {
    settings
        .get(key.as_bytes())
        .and_then(Value::as_bytes)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"YES"))
}

/// The bare addresses in address-list header values (`"Name" <a@b>, c@d`), lower-cased.
fn addresses(values: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        for part in v.split(',') {
            let a = match (part.find('<'), part.rfind('>')) {
                (Some(l), Some(r)) if l < r => &part[l + 1..r],
                _ => part,
            };
            let a = a.trim();
            if a.contains('@') {
                out.push(a.to_ascii_lowercase());
            }
        }
    }
    out
}

impl GroupChannel {
    /// A channel reading groups from `store` and resubmitting through `submit`; `host` names
    /// the server in the `Received:` field.
    pub fn new(store: Store, submit: Arc<dyn Submit>, host: &str) -> GroupChannel {
        GroupChannel {
            store,
            submit,
            host: host.to_string(),
        }
    }

    /// The group's members as addresses, with `Expand` applied (duplicates removed).
    pub fn expand(&self, domain: &str, group: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut visited = HashSet::new();
        self.expand_into(domain, group, 0, &mut visited, &mut seen, &mut out)?;
        Ok(out)
    }

    fn expand_into(
        &self,
        domain: &str,
        group: &str,
        depth: usize,
        visited: &mut HashSet<String>,
        seen: &mut HashSet<String>,
        out: &mut Vec<String>,
    ) -> Result<(), String> {
        if !visited.insert(format!("{group}@{domain}").to_ascii_lowercase()) {
            return Ok(());
        }
        let settings = self
            .store
            .group(domain, group)
            .map_err(|e| format!("group {group}@{domain}: {e}"))?;
        let expand = yes(&settings, "Expand");
        let members = settings
            .get(b"Members".as_slice())
            .and_then(Value::as_array)
            .unwrap_or_default();
        for m in members {
            let Some(m) = m.as_text() else { continue };
            let m = m.trim();
            if m.is_empty() {
                continue;
            }
            let (local, dom) = match m.rsplit_once('@') {
                Some((l, d)) => (l.to_string(), d.to_string()),
                None => (m.to_string(), domain.to_string()),
            };
            let same_domain = self
                .store
                .resolve_domain(&dom)
                .is_some_and(|d| d.eq_ignore_ascii_case(domain));
            if expand && same_domain && depth < MAX_DEPTH {
                if let Some(Object::Group(sub)) = self.store.lookup(domain, &local) {
                    self.expand_into(domain, &sub, depth + 1, visited, seen, out)?;
                    continue;
                }
            }
            let address = format!("{local}@{dom}");
            if seen.insert(address.to_ascii_lowercase()) {
                if out.len() >= MAX_MEMBERS {
                    return Err(format!("group {group}@{domain} has too many members"));
                }
                out.push(address);
            }
        }
        Ok(())
    }
}

impl Channel for GroupChannel {
    fn deliver(&self, job: &Job<'_>) -> Outcome {
        let Target::List { domain, group } = job.target else {
            return Outcome::Failed("not a group".into());
        };
        let settings = match self.store.group(domain, group) {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(format!("group {group}@{domain}: {e}")),
        };
        let mut members = match self.expand(domain, group) {
            Ok(m) => m,
            Err(e) => return Outcome::Failed(e),
        };
        // guide.txt:9176-9177: the sender never gets their own message back.
        let mut removed: Vec<String> = vec![job.return_path.to_ascii_lowercase()];
        if yes(&settings, "RemoveAuthor") {
            removed.extend(addresses(&header_values(job.message, "From")));
        }
        if yes(&settings, "RemoveToAndCc") {
            removed.extend(addresses(&header_values(job.message, "To")));
            removed.extend(addresses(&header_values(job.message, "Cc")));
        }
        members.retain(|m| !removed.contains(&m.to_ascii_lowercase()));
        if members.is_empty() {
            return Outcome::Delivered;
        }
        let address = format!("{group}@{domain}");
        let mut copy = format!(
            "Received: by {} (Gatehouse LIST) for <{address}>; {}\r\n",
            self.host,
            chrono::Local::now().to_rfc2822()
        )
        .into_bytes();
        if yes(&settings, "SetReplyTo") {
            let name = settings
                .get(b"RealName".as_slice())
                .and_then(Value::as_text)
                .map(|n| n.replace(['"', '\\', '\r', '\n'], ""))
                .unwrap_or_default();
            let reply_to = if name.is_empty() {
                format!("Reply-To: <{address}>\r\n")
            } else {
                format!("Reply-To: \"{name}\" <{address}>\r\n")
            };
            copy.extend_from_slice(reply_to.as_bytes());
        }
        copy.extend_from_slice(job.message);
        let sub = Submission {
            return_path: if yes(&settings, "FinalDelivery") {
                String::new()
            } else {
                job.return_path.to_string()
            },
            recipients: members.into_iter().map(NewRecipient::new).collect(),
            source: Source::List(address),
            env_id: None,
            ret: None,
        };
        match self.submit.submit(sub, &copy) {
            Ok(_) => Outcome::Delivered,
            Err(crate::kernel::mail::EnqueueError::Io(e)) => {
                Outcome::Deferred(format!("cannot queue the group copy: {e}"))
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}
