//! The account's mailbox subscription list (guide.txt:9464-9489): a plain list of mailbox names,
//! kept in the account `.info` file (guide.txt:9488-9489), under the key `Subscription` as an
//! array. The server never uses it; IMAP LSUB and WebUser do. Names may be foreign
//! (`~account/mailbox`), so they are not checked against the local name rules, only for size
//! and control bytes.
//!
//! The file helpers do a read-modify-write of the whole `.info` dictionary, keeping every other key;
//! the caller serialises writers of one account's `.info` (the account store's lock).

use std::io;
use std::path::Path;

use super::{fsutil, io_err, MailboxError, NameError};
use crate::format::{self, Dict, Value};

/// The `.info` key holding the list.
pub const KEY: &str = "Subscription";
/// Longest name kept in the list.
pub const MAX_NAME_LEN: usize = 1024;
/// Most names kept in the list.
pub const MAX_NAMES: usize = 10_000;

/// The names in an `.info` dictionary, in stored order.
pub fn list(info: &Dict) -> Vec<String> {
    info.get(KEY.as_bytes())
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_text().map(|t| t.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(NameError("bad subscription name".to_string()));
    }
    Ok(())
}

/// Replace the list.
pub fn set(info: &mut Dict, names: &[String]) -> Result<(), NameError> {
    if names.len() > MAX_NAMES {
        return Err(NameError("too many subscriptions".to_string()));
    }
    for n in names {
        check(n)?;
    }
    info.insert(
        KEY.as_bytes().to_vec(),
        Value::Array(names.iter().map(Value::str).collect()),
    );
    Ok(())
}

/// Add a name; false if it was there already.
pub fn subscribe(info: &mut Dict, name: &str) -> Result<bool, NameError> {
    check(name)?;
    let mut names = list(info);
    if names.iter().any(|n| n == name) {
        return Ok(false);
    }
    names.push(name.to_string());
    set(info, &names)?;
    Ok(true)
}

/// Remove a name; false if it was not there.
pub fn unsubscribe(info: &mut Dict, name: &str) -> bool {
    let mut names = list(info);
    let before = names.len();
    names.retain(|n| n != name);
    if names.len() == before {
        return false;
    }
    info.insert(
        KEY.as_bytes().to_vec(),
        Value::Array(names.iter().map(Value::str).collect()),
    );
    true
}

/// Read an `.info` file as a dictionary; a missing or damaged file reads as empty (the guide:
/// the server must survive `.info` corruption, guide.txt:9724-9728).
pub fn read_info(path: &Path) -> Result<Dict, MailboxError> {
    match std::fs::read(path) {
        Ok(b) => Ok(format::parse(&b)
            .ok()
            .and_then(|v| v.as_dict().cloned())
            .unwrap_or_default()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Dict::new()),
        Err(e) => Err(io_err("cannot read", path)(e)),
    }
}

/// Change the list in the `.info` file at `path` and write it back atomically; returns the new list.
pub fn update(
    path: &Path,
    f: impl FnOnce(&mut Dict) -> Result<(), NameError>,
) -> Result<Vec<String>, MailboxError> {
    let mut info = read_info(path)?;
    f(&mut info)?;
    let bytes = format::to_pretty(&Value::Dict(info.clone()));
    fsutil::write_atomic(path, &bytes).map_err(io_err("cannot write", path))?;
    Ok(list(&info))
}
