//! The base directory store: domains, accounts, aliases, groups, forwarders, defaults, access
//! rights and server settings files, in the guide's on-disk layout.
//!
//! Guide: base directory guide.txt:2334-2361; object model and settings inheritance
//! guide.txt:7456-7655; domains guide.txt:7656-8353 (aliases 7896-7917, directories 8345-8352);
//! accounts guide.txt:8498-9086; groups 9087-9200; forwarders 9201-9236; Account Data
//! guide.txt:9662-9760; access rights guide.txt:3965-4012; passwords guide.txt:3717-3797, 1817-1904.
//!
//! Layout (`<dd>` is a domain directory: `Accounts/` for the main domain, `Domains/<name>/` else):
//! ```text
//! Settings/Main.settings              {DomainName=...;} the main domain name (our file)
//! Settings/DomainDefaults.settings    server-wide Default Domain Settings (our name)
//! Settings/AccountDefaults.settings   server-wide Default Account Settings (our name)
//! Settings/<Name>.settings            module and kernel settings (server_settings)
//! Queue/ BadFiles/ Submitted/ SystemLogs/ Domains/
//! <dd>/Settings/Domain.settings       domain settings (guide)
//! <dd>/Settings/Access.settings       {account=(right,...);} (guide; server rights main domain only)
//! <dd>/Settings/Template.settings     Account Template (guide)
//! <dd>/Settings/Aliases.data          {alias=account;} account aliases (guide's file)
//! <dd>/Settings/DomainAliases.data    (alias,...) domain aliases (guide.txt:24300-24303 per-domain file)
//! <dd>/Settings/AccountDefaults.settings  the domain's Default Account Settings (our name)
//! <dd>/Settings/WebUserDefaults.settings  the domain's WebUser defaults (our name)
//! <dd>/Settings/Groups.data           {group={Members=(...);RealName=...;...};} (our file)
//! <dd>/Settings/Forwarders.data       {name=address;} (our file)
//! <dd>/<name>.macnt/account.{settings,info,rules,prefs}   MultiMailbox account (guide)
//! <dd>/<name>.{mbox|mdir,settings,info,rules,prefs}       single-mailbox account (guide)
//! ```
//! `.rules` (the account's Rules array) and `.prefs` (WebUser settings) are our extensions; the
//! guide leaves their place open (spec C §8). `.info` keys are stored with the guide's `#` prefix
//! (guide.txt:5636-5640); the API takes them without it.
//!
//! Setting keys: the guide's (see `settings`); a value `default` means "not set here" and is
//! removed on write. Passwords: see `password` (argon2 by default, `clear` per account/domain).
//!
//! Security: every name is validated by `names` before it becomes a path. Domain, account, alias,
//! group and forwarder names are stored lower-case. Settings files are parsed with the bounded
//! `format` parser; a broken file is an error, never a panic.
//!
//! Implementation notes: one store-wide `RwLock` serializes writers (readers share it); public
//! methods take it once and call private helpers, never each other. Every file is written with
//! `fsutil::write_atomic`. New domains and MultiMailbox accounts are built in a hidden
//! `.<name>.creating` directory and renamed into place; removed ones are renamed to a hidden
//! `.<name>.deleting` first. Leftovers of either are removed at `open`. For a single-mailbox
//! account the `.settings` file is the presence marker: written last, removed last.
//!
//! Account methods take the account's own name; an alias is followed by the caller through
//! `lookup` (logins under an alias, guide.txt:8851-8864). Domain arguments may be domain aliases.
//!
//! todo: account "in use" refusal for rename/delete (guide.txt:8880-8901) is the caller's check;
//! subdirectories for large domains (guide.txt:8181-8284) are not supported.

pub mod fsutil;
pub mod names;
pub mod password;
pub mod settings;
#[cfg(test)]
mod tests;
pub mod website;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::format::{self, Dict, Value};

/// A store failure. `Display` is the admin-facing text (a CLI `501` line shows it).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A name that cannot become a path or a key.
    #[error("Illegal {kind} name: {reason}")]
    IllegalName {
        /// What was being named (`account`, `domain`, ...).
        kind: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No such domain (nor domain alias).
    #[error("Unknown domain")]
    UnknownDomain,
    /// No such account.
    #[error("Unknown account")]
    UnknownAccount,
    /// No such group.
    #[error("Unknown group")]
    UnknownGroup,
    /// No such forwarder.
    #[error("Unknown forwarder")]
    UnknownForwarder,
    /// The name is taken; the field says by what (`Account`, `Alias`, `Group`, `Forwarder`, `Domain`).
    #[error("{0} with this name already exists")]
    Exists(&'static str),
    /// Removing a domain that still has objects without `force` (Empty Domains Only, guide.txt:8300).
    #[error("Domain is not empty")]
    DomainNotEmpty,
    /// The main domain cannot be removed.
    #[error("The main domain cannot be removed")]
    MainDomain,
    /// A setting value or argument that cannot be stored.
    #[error("{0}")]
    Invalid(String),
    /// A file in the base directory that does not parse.
    #[error("Corrupted file {path}: {err}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        err: format::ParseError,
    },
    /// A file system failure, with what was being done.
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
}

type Result<T> = std::result::Result<T, StoreError>;

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let ctx = format!("{what} {}", path.display());
    move |e| StoreError::Io(ctx, e)
}

/// The kind of an account (guide.txt:8516-8590).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountType {
    /// A `.macnt` directory with any number of mailboxes.
    MultiMailbox,
    /// A single `.mbox` (text) INBOX.
    TextMailbox,
    /// A single `.mdir` (MailDir) INBOX.
    MailDirMailbox,
}

impl AccountType {
    /// The guide's (CLI) name of the type.
    pub fn name(self) -> &'static str {
        match self {
            AccountType::MultiMailbox => "MultiMailbox",
            AccountType::TextMailbox => "TextMailbox",
            AccountType::MailDirMailbox => "MailDirMailbox",
        }
    }

    /// Parses the guide's type name (case-insensitive; `Text Mailbox` spelling accepted).
    pub fn parse(s: &str) -> Option<AccountType> {
        let k: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        match k.to_ascii_lowercase().as_str() {
            "multimailbox" => Some(AccountType::MultiMailbox),
            "textmailbox" => Some(AccountType::TextMailbox),
            "maildirmailbox" => Some(AccountType::MailDirMailbox),
            _ => None,
        }
    }
}

/// Which defaults (or template) dictionary `defaults`/`set_defaults` reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defaults {
    /// Server-wide Default Domain Settings (guide.txt:8324-8343).
    DomainDefaults,
    /// Server-wide Default Account Settings (guide.txt:8903-8920).
    AllAccountsDefaults,
    /// A domain's Default Account Settings.
    AccountDefaults(String),
    /// A domain's Account Template (guide.txt:8922-8984); copied at account creation only.
    AccountTemplate(String),
    /// A domain's default WebUser settings.
    WebUserDefaults(String),
}

/// What a name denotes inside a domain (one name space, guide.txt:8851-8864).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// An account (its stored name).
    Account(String),
    /// An account alias, naming the real account.
    Alias {
        /// The account the alias points to.
        account: String,
    },
    /// A group (its stored name).
    Group(String),
    /// A forwarder; the value is its target address.
    Forwarder(String),
}

/// Server-level access rights: only main-domain accounts may hold them (guide.txt:3980-4005).
/// The names are the WebAdmin realms (guide.txt:2287-2333); `Master` implies all others.
pub const SERVER_RIGHTS: &[&str] = &["Master", "Users", "Settings", "Monitor", "Directory"];

/// Service file extensions a single-mailbox account may own (guide.txt:9717-9760).
const SINGLE_EXTS: &[&str] = &[
    "mbox", "mdir", "info", "rules", "prefs", "web", "public", "roaming", "settings",
];

/// Base directory subdirectories created at open (guide.txt:2334-2361).
const LAYOUT: &[&str] = &[
    "Settings",
    "Queue",
    "BadFiles",
    "Accounts",
    "Accounts/Settings",
    "Domains",
    "Submitted",
    "SystemLogs",
];

/// The base directory store. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    base: PathBuf,
    main: RwLock<String>,
    lock: RwLock<()>,
}

/// Where an account's files are.
struct AccountFiles {
    kind: AccountType,
    /// The `.macnt` directory, for MultiMailbox accounts.
    dir: Option<PathBuf>,
    settings: PathBuf,
    info: PathBuf,
    rules: PathBuf,
    prefs: PathBuf,
}

impl Store {
    /// Opens (creating the layout if needed) the base directory. The main domain name is read from
    /// `Settings/Main.settings`; `main_domain_if_new` is used and stored only on first start.
    pub fn open(base: &Path, main_domain_if_new: &str) -> Result<Store> {
        for d in LAYOUT {
            let p = base.join(d);
            fsutil::create_dir_durable(&p).map_err(io_err("cannot create", &p))?;
        }
        let main_file = base.join("Settings/Main.settings");
        let existing = read_dict(&main_file)?;
        let main = match existing
            .get(b"DomainName".as_slice())
            .and_then(Value::as_text)
        {
            Some(name) => names::normalize("domain", &name)?,
            None => {
                let name = names::normalize("domain", main_domain_if_new)?;
                let mut d = existing.clone();
                d.insert(b"DomainName".to_vec(), Value::str(&name));
                write_dict(&main_file, &d)?;
                name
            }
        };
        let store = Store {
            inner: Arc::new(Inner {
                base: base.to_path_buf(),
                main: RwLock::new(main),
                lock: RwLock::new(()),
            }),
        };
        store.clean_leftovers()?;
        Ok(store)
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.inner.base
    }

    /// The main domain's name.
    pub fn main_domain(&self) -> String {
        self.inner
            .main
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn r(&self) -> RwLockReadGuard<'_, ()> {
        self.inner.lock.read().unwrap_or_else(|e| e.into_inner())
    }

    fn w(&self) -> RwLockWriteGuard<'_, ()> {
        self.inner.lock.write().unwrap_or_else(|e| e.into_inner())
    }

    // ---------------------------------------------------------------- domains

    /// All domain names, the main domain first, then the others sorted.
    pub fn list_domains(&self) -> Vec<String> {
        let _g = self.r();
        self.domains()
    }

    /// The secondary domain that address `ip` is dedicated to (its `IPAddresses`, guide.txt:
    /// 7836-7860), if any.
    pub fn domain_with_address(&self, ip: std::net::IpAddr) -> Option<String> {
        let ip = ip.to_canonical();
        let main = self.main_domain();
        self.list_domains()
            .into_iter()
            .filter(|d| !d.eq_ignore_ascii_case(&main))
            .find(|d| {
                self.domain_settings(d)
                    .ok()
                    .and_then(|s| s.get(b"IPAddresses".as_slice()).cloned())
                    .and_then(|v| settings::ip_addresses(&v).ok())
                    .is_some_and(|a| a.contains(&ip))
            })
    }

    /// The domain a name or domain alias denotes (case-insensitive).
    pub fn resolve_domain(&self, name_or_alias: &str) -> Option<String> {
        let _g = self.r();
        self.canon_domain(name_or_alias).ok()
    }

    /// Creates a secondary domain with the given explicit settings.
    pub fn create_domain(&self, name: &str, settings: Dict) -> Result<()> {
        let _g = self.w();
        let name = names::normalize("domain", name)?;
        if self.canon_domain(&name).is_ok() {
            return Err(StoreError::Exists("Domain"));
        }
        let domains = self.inner.base.join("Domains");
        let tmp = domains.join(format!(".{name}.creating"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("cannot remove", &tmp))?;
        }
        let sdir = tmp.join("Settings");
        fs::create_dir_all(&sdir).map_err(io_err("cannot create", &sdir))?;
        write_dict(&sdir.join("Domain.settings"), &strip_defaults(settings))?;
        fsutil::sync_dir(&tmp).map_err(io_err("cannot sync", &tmp))?;
        let dst = domains.join(&name);
        fs::rename(&tmp, &dst).map_err(io_err("cannot create", &dst))?;
        fsutil::sync_dir(&domains).map_err(io_err("cannot sync", &domains))
    }

    /// Renames a domain: a secondary domain's directory moves; the main domain's new name is
    /// stored in `Settings/Main.settings`.
    pub fn rename_domain(&self, old: &str, new: &str) -> Result<()> {
        let _g = self.w();
        let old = self.canon_domain(old)?;
        let new = names::normalize("domain", new)?;
        if old == new {
            return Ok(());
        }
        if self.canon_domain(&new).is_ok() {
            return Err(StoreError::Exists("Domain"));
        }
        if old == self.main_domain() {
            let path = self.inner.base.join("Settings/Main.settings");
            let mut d = read_dict(&path)?;
            d.insert(b"DomainName".to_vec(), Value::str(&new));
            write_dict(&path, &d)?;
            *self.inner.main.write().unwrap_or_else(|e| e.into_inner()) = new;
            return Ok(());
        }
        let domains = self.inner.base.join("Domains");
        let (src, dst) = (domains.join(&old), domains.join(&new));
        fs::rename(&src, &dst).map_err(io_err("cannot rename", &src))?;
        fsutil::sync_dir(&domains).map_err(io_err("cannot sync", &domains))
    }

    /// Removes a secondary domain. Without `force` only an empty one (no accounts, groups or
    /// forwarders) is removed. The main domain cannot be removed.
    pub fn delete_domain(&self, name: &str, force: bool) -> Result<()> {
        let _g = self.w();
        let name = self.canon_domain(name)?;
        if name == self.main_domain() {
            return Err(StoreError::MainDomain);
        }
        let dd = self.domain_dir(&name);
        if !force
            && (!self.accounts_in(&dd)?.is_empty()
                || !read_dict(&dd.join("Settings/Groups.data"))?.is_empty()
                || !read_dict(&dd.join("Settings/Forwarders.data"))?.is_empty())
        {
            return Err(StoreError::DomainNotEmpty);
        }
        let domains = self.inner.base.join("Domains");
        let gone = domains.join(format!(".{name}.deleting"));
        fs::rename(&dd, &gone).map_err(io_err("cannot remove", &dd))?;
        fsutil::sync_dir(&domains).map_err(io_err("cannot sync", &domains))?;
        fs::remove_dir_all(&gone).map_err(io_err("cannot remove", &gone))
    }

    /// The domain's explicit settings (`Domain.settings`).
    pub fn domain_settings(&self, d: &str) -> Result<Dict> {
        let _g = self.r();
        let d = self.canon_domain(d)?;
        read_dict(&self.domain_file(&d, "Domain.settings"))
    }

    /// Effective domain settings: explicit > server Default Domain Settings > built-in.
    pub fn domain_effective_settings(&self, d: &str) -> Result<Dict> {
        let _g = self.r();
        let d = self.canon_domain(d)?;
        let mut out = builtin(settings::DOMAIN_SETTINGS);
        overlay(
            &mut out,
            read_dict(&self.defaults_path(&Defaults::DomainDefaults)?)?,
        );
        overlay(
            &mut out,
            read_dict(&self.domain_file(&d, "Domain.settings"))?,
        );
        Ok(out)
    }

    /// Replaces the domain's explicit settings.
    pub fn set_domain_settings(&self, d: &str, s: Dict) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        write_dict(&self.domain_file(&d, "Domain.settings"), &strip_defaults(s))
    }

    /// Merges into the domain's explicit settings; a value `default` removes the key.
    pub fn update_domain_settings(&self, d: &str, s: Dict) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let path = self.domain_file(&d, "Domain.settings");
        let mut cur = read_dict(&path)?;
        merge(&mut cur, s);
        write_dict(&path, &cur)
    }

    /// The domain's aliases (guide.txt:7896-7917).
    pub fn domain_aliases(&self, d: &str) -> Result<Vec<String>> {
        let _g = self.r();
        let d = self.canon_domain(d)?;
        self.aliases_of_domain(&d)
    }

    /// Replaces the domain's aliases. An alias may not be another domain or another domain's alias.
    pub fn set_domain_aliases(&self, d: &str, a: Vec<String>) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let mut list: Vec<String> = Vec::new();
        for alias in a {
            let alias = names::normalize("domain", &alias)?;
            if let Ok(owner) = self.canon_domain(&alias) {
                if owner != d || alias == d {
                    return Err(StoreError::Exists("Domain"));
                }
            }
            if !list.contains(&alias) {
                list.push(alias);
            }
        }
        let v = Value::Array(list.iter().map(Value::str).collect());
        write_value(&self.domain_file(&d, "DomainAliases.data"), &v)
    }

    // ---------------------------------------------------------------- defaults

    /// A defaults (or template) dictionary.
    pub fn defaults(&self, which: Defaults) -> Result<Dict> {
        let _g = self.r();
        read_dict(&self.defaults_path(&which)?)
    }

    /// Replaces (or, with `merge`, updates) a defaults dictionary; `default` removes a key.
    pub fn set_defaults(&self, which: Defaults, s: Dict, merge_into: bool) -> Result<()> {
        let _g = self.w();
        let path = self.defaults_path(&which)?;
        let mut cur = if merge_into {
            read_dict(&path)?
        } else {
            Dict::new()
        };
        merge(&mut cur, s);
        write_dict(&path, &cur)
    }

    // ---------------------------------------------------------------- accounts

    /// The domain's accounts with their types, sorted by name.
    pub fn list_accounts(&self, d: &str) -> Result<Vec<(String, AccountType)>> {
        let _g = self.r();
        let d = self.canon_domain(d)?;
        self.accounts_in(&self.domain_dir(&d))
    }

    /// Creates an account. Its settings are the Account Template's non-default values overlaid
    /// with `settings` (guide.txt:8585, 8929-8934). A clear `Password` is encoded per the
    /// effective `PasswordEncryption`.
    pub fn create_account(
        &self,
        d: &str,
        name: &str,
        t: AccountType,
        settings: Dict,
    ) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let name = names::normalize("account", name)?;
        self.ensure_free(&d, &name)?;
        let template = read_dict(&self.defaults_path(&Defaults::AccountTemplate(d.clone()))?)?;
        let mut s: Dict = template
            .into_iter()
            .filter(|(k, _)| {
                !settings::TEMPLATE_ONLY
                    .iter()
                    .any(|t| t.as_bytes() == k.as_slice())
            })
            .collect();
        merge(&mut s, settings);
        self.encode_password_in(&d, &mut s)?;
        let dd = self.domain_dir(&d);
        match t {
            AccountType::MultiMailbox => {
                let tmp = dd.join(format!(".{name}.macnt.creating"));
                if tmp.exists() {
                    fs::remove_dir_all(&tmp).map_err(io_err("cannot remove", &tmp))?;
                }
                fs::create_dir(&tmp).map_err(io_err("cannot create", &tmp))?;
                write_dict(&tmp.join("account.settings"), &s)?;
                write_dict(&tmp.join("account.info"), &Dict::new())?;
                let dst = dd.join(format!("{name}.macnt"));
                fs::rename(&tmp, &dst).map_err(io_err("cannot create", &dst))?;
            }
            AccountType::TextMailbox | AccountType::MailDirMailbox => {
                if t == AccountType::MailDirMailbox {
                    let p = dd.join(format!("{name}.mdir"));
                    fs::create_dir_all(&p).map_err(io_err("cannot create", &p))?;
                } else {
                    fsutil::write_atomic(&dd.join(format!("{name}.mbox")), b"")
                        .map_err(io_err("cannot create", &dd))?;
                }
                write_dict(&dd.join(format!("{name}.info")), &Dict::new())?;
                write_dict(&dd.join(format!("{name}.settings")), &s)?;
            }
        }
        fsutil::sync_dir(&dd).map_err(io_err("cannot sync", &dd))
    }

    /// Renames an account, possibly into another domain. All its files move; its aliases,
    /// access rights and RPOP records move with it; group memberships in its old domain follow
    /// (guide.txt:7582-7604, 9183-9186). Forwarders pointing at it do not (guide.txt:7596).
    pub fn rename_account(&self, d: &str, old: &str, new_d: &str, new: &str) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let nd = self.canon_domain(new_d)?;
        let old = names::normalize("account", old)?;
        let new = names::normalize("account", new)?;
        let dd = self.domain_dir(&d);
        let files = self.account_files(&dd, &old)?;
        if d == nd && old == new {
            return Ok(());
        }
        // Renaming an account to one of its own aliases consumes that alias.
        let aliases: Vec<String> = self
            .aliases_of(&d, &old)?
            .into_iter()
            .filter(|a| *a != new)
            .collect();
        match self.lookup_in(&nd, &new)? {
            Some(Object::Alias { account }) if d == nd && account == old => {}
            Some(o) => return Err(StoreError::Exists(kind_name(&o))),
            None => {}
        }
        if d != nd {
            for a in &aliases {
                if let Some(o) = self.lookup_in(&nd, a)? {
                    return Err(StoreError::Exists(kind_name(&o)));
                }
            }
        }
        let ndd = self.domain_dir(&nd);
        match files.dir {
            Some(src) => {
                let dst = ndd.join(format!("{new}.macnt"));
                fs::rename(&src, &dst).map_err(io_err("cannot rename", &src))?;
            }
            None => {
                // The `.settings` marker moves last.
                for ext in SINGLE_EXTS {
                    let src = dd.join(format!("{old}.{ext}"));
                    if fs::symlink_metadata(&src).is_ok() {
                        let dst = ndd.join(format!("{new}.{ext}"));
                        fs::rename(&src, &dst).map_err(io_err("cannot rename", &src))?;
                    }
                }
            }
        }
        fsutil::sync_dir(&ndd).map_err(io_err("cannot sync", &ndd))?;
        if ndd != dd {
            fsutil::sync_dir(&dd).map_err(io_err("cannot sync", &dd))?;
        }
        // Aliases move with the account.
        let apath = self.domain_file(&d, "Aliases.data");
        let mut amap = read_dict(&apath)?;
        amap.retain(|_, v| v.as_bytes() != Some(old.as_bytes()));
        if d == nd {
            amap.retain(|k, _| k.as_slice() != new.as_bytes());
            for a in &aliases {
                amap.insert(a.as_bytes().to_vec(), Value::str(&new));
            }
            write_dict(&apath, &amap)?;
        } else {
            write_dict(&apath, &amap)?;
            let npath = self.domain_file(&nd, "Aliases.data");
            let mut nmap = read_dict(&npath)?;
            for a in &aliases {
                nmap.insert(a.as_bytes().to_vec(), Value::str(&new));
            }
            write_dict(&npath, &nmap)?;
        }
        // Access rights move with it (server rights are dropped outside the main domain).
        let rpath = self.domain_file(&d, "Access.settings");
        let mut rights = read_dict(&rpath)?;
        if let Some(r) = rights.shift_remove(old.as_bytes()) {
            write_dict(&rpath, &rights)?;
            let npath = self.domain_file(&nd, "Access.settings");
            let mut nrights = read_dict(&npath)?;
            let r = if nd == self.main_domain() {
                r
            } else {
                Value::Array(
                    r.as_array()
                        .unwrap_or_default()
                        .iter()
                        .filter(|v| !is_server_right(&v.as_text().unwrap_or_default()))
                        .cloned()
                        .collect(),
                )
            };
            nrights.insert(new.as_bytes().to_vec(), r);
            write_dict(&npath, &nrights)?;
        }
        // RPOP records move with it: they live in the domain's RPOP.data (guide.txt:9694-9696).
        // The new entry is written first: a crash in between leaves a copy, never a loss.
        let ppath = self.domain_file(&d, "RPOP.data");
        let mut polls = read_dict(&ppath)?;
        if let Some(r) = polls.shift_remove(old.as_bytes()) {
            if d == nd {
                polls.insert(new.as_bytes().to_vec(), r);
            } else {
                let npath = self.domain_file(&nd, "RPOP.data");
                let mut npolls = read_dict(&npath)?;
                npolls.insert(new.as_bytes().to_vec(), r);
                write_dict(&npath, &npolls)?;
            }
            write_dict(&ppath, &polls)?;
        }
        let replacement = if d == nd {
            Some(new.clone())
        } else {
            Some(format!("{new}@{nd}"))
        };
        self.replace_member(&d, &old, replacement.as_deref())
    }

    /// Removes an account with all its files, its aliases, its access rights, its RPOP records
    /// and its group memberships (guide.txt:8891-8901).
    pub fn delete_account(&self, d: &str, name: &str) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let name = names::normalize("account", name)?;
        let dd = self.domain_dir(&d);
        let files = self.account_files(&dd, &name)?;
        match files.dir {
            Some(dir) => {
                let gone = dd.join(format!(".{name}.macnt.deleting"));
                fs::rename(&dir, &gone).map_err(io_err("cannot remove", &dir))?;
                fsutil::sync_dir(&dd).map_err(io_err("cannot sync", &dd))?;
                fs::remove_dir_all(&gone).map_err(io_err("cannot remove", &gone))?;
            }
            None => {
                for ext in SINGLE_EXTS {
                    let p = dd.join(format!("{name}.{ext}"));
                    match fs::symlink_metadata(&p) {
                        Ok(m) if m.is_dir() => {
                            fs::remove_dir_all(&p).map_err(io_err("cannot remove", &p))?
                        }
                        Ok(_) => fs::remove_file(&p).map_err(io_err("cannot remove", &p))?,
                        Err(_) => {}
                    }
                }
                fsutil::sync_dir(&dd).map_err(io_err("cannot sync", &dd))?;
            }
        }
        let apath = self.domain_file(&d, "Aliases.data");
        let mut amap = read_dict(&apath)?;
        let before = amap.len();
        amap.retain(|_, v| v.as_bytes() != Some(name.as_bytes()));
        if amap.len() != before {
            write_dict(&apath, &amap)?;
        }
        let rpath = self.domain_file(&d, "Access.settings");
        let mut rights = read_dict(&rpath)?;
        if rights.shift_remove(name.as_bytes()).is_some() {
            write_dict(&rpath, &rights)?;
        }
        let ppath = self.domain_file(&d, "RPOP.data");
        let mut polls = read_dict(&ppath)?;
        if polls.shift_remove(name.as_bytes()).is_some() {
            write_dict(&ppath, &polls)?;
        }
        self.replace_member(&d, &name, None)
    }

    /// The account's explicit settings.
    pub fn account_settings(&self, d: &str, name: &str) -> Result<Dict> {
        let _g = self.r();
        let (_, f) = self.account(d, name)?;
        read_dict(&f.settings)
    }

    /// Effective account settings: explicit > domain Default Account Settings > server Default
    /// Account Settings > built-in (guide.txt:7606-7654).
    pub fn account_effective_settings(&self, d: &str, name: &str) -> Result<Dict> {
        let _g = self.r();
        let (d, f) = self.account(d, name)?;
        let mut out = self.account_defaults_chain(&d)?;
        overlay(&mut out, read_dict(&f.settings)?);
        Ok(out)
    }

    /// Replaces the account's explicit settings (a clear `Password` is encoded).
    pub fn set_account_settings(&self, d: &str, name: &str, s: Dict) -> Result<()> {
        let _g = self.w();
        let (d, f) = self.account(d, name)?;
        let mut s = strip_defaults(s);
        self.encode_password_in(&d, &mut s)?;
        write_dict(&f.settings, &s)
    }

    /// Merges into the account's explicit settings; `default` removes a key.
    pub fn update_account_settings(&self, d: &str, name: &str, s: Dict) -> Result<()> {
        let _g = self.w();
        let (d, f) = self.account(d, name)?;
        let mut cur = read_dict(&f.settings)?;
        let new_pw = s.contains_key(b"Password".as_slice());
        merge(&mut cur, s);
        if new_pw {
            self.encode_password_in(&d, &mut cur)?;
        }
        write_dict(&f.settings, &cur)
    }

    /// Sets the CommuniGate password, stored per the effective `PasswordEncryption`
    /// (guide.txt:5519).
    pub fn set_password(&self, d: &str, name: &str, pw: &[u8]) -> Result<()> {
        let _g = self.w();
        let (d, f) = self.account(d, name)?;
        let mut cur = read_dict(&f.settings)?;
        cur.insert(b"Password".to_vec(), Value::Str(pw.to_vec()));
        self.encode_password_in(&d, &mut cur)?;
        write_dict(&f.settings, &cur)
    }

    /// Whether `pw` is the account's CommuniGate password. False when the password is absent or
    /// empty, or when the effective `UseAppPassword` is not YES (guide.txt:3717-3797).
    pub fn check_password(&self, d: &str, name: &str, pw: &[u8]) -> Result<bool> {
        let _g = self.r();
        let (d, f) = self.account(d, name)?;
        let explicit = read_dict(&f.settings)?;
        let mut eff = self.account_defaults_chain(&d)?;
        overlay(&mut eff, explicit.clone());
        if !is_yes(&eff, "UseAppPassword") {
            return Ok(false);
        }
        let stored = explicit
            .get(b"Password".as_slice())
            .and_then(Value::as_bytes)
            .unwrap_or_default();
        Ok(password::verify(stored, pw))
    }

    /// The clear-text password, when stored recoverably (for CRAM-MD5, APOP, DIGEST-MD5).
    pub fn recoverable_password(&self, d: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let _g = self.r();
        let (_, f) = self.account(d, name)?;
        let s = read_dict(&f.settings)?;
        Ok(s.get(b"Password".as_slice())
            .and_then(Value::as_bytes)
            .and_then(password::recoverable))
    }

    /// The account's aliases (from the domain's `Aliases.data`), sorted.
    pub fn account_aliases(&self, d: &str, name: &str) -> Result<Vec<String>> {
        let _g = self.r();
        let (d, _) = self.account(d, name)?;
        self.aliases_of(&d, &names::normalize("account", name)?)
    }

    /// Replaces the account's aliases. Each must be free in the domain's name space.
    pub fn set_account_aliases(&self, d: &str, name: &str, aliases: Vec<String>) -> Result<()> {
        let _g = self.w();
        let (d, _) = self.account(d, name)?;
        let name = names::normalize("account", name)?;
        let mut list = Vec::new();
        for a in aliases {
            let a = names::normalize("alias", &a)?;
            match self.lookup_in(&d, &a)? {
                Some(Object::Alias { account }) if account == name => {}
                Some(o) => return Err(StoreError::Exists(kind_name(&o))),
                None => {}
            }
            if !list.contains(&a) {
                list.push(a);
            }
        }
        let path = self.domain_file(&d, "Aliases.data");
        let mut map = read_dict(&path)?;
        map.retain(|_, v| v.as_bytes() != Some(name.as_bytes()));
        for a in list {
            map.insert(a.into_bytes(), Value::str(&name));
        }
        write_dict(&path, &map)
    }

    /// One element of the account's `.info` dictionary (`key` without the `#`).
    pub fn account_info(&self, d: &str, name: &str, key: &str) -> Result<Option<Value>> {
        let _g = self.r();
        let (_, f) = self.account(d, name)?;
        let info = read_dict_lenient(&f.info);
        Ok(info.get(info_key(key).as_slice()).cloned())
    }

    /// Sets one element of the account's `.info` dictionary (`key` without the `#`).
    pub fn set_account_info(&self, d: &str, name: &str, key: &str, v: Value) -> Result<()> {
        let _g = self.w();
        let (_, f) = self.account(d, name)?;
        // guide.txt:9725-9729: the server survives a corrupt .info file; start afresh.
        let mut info = read_dict_lenient(&f.info);
        info.insert(info_key(key), v);
        write_dict(&f.info, &info)
    }

    /// The access rights granted to the account (its domain's `Access.settings`).
    pub fn account_rights(&self, d: &str, name: &str) -> Result<Vec<String>> {
        let _g = self.r();
        let (d, _) = self.account(d, name)?;
        let name = names::normalize("account", name)?;
        let rights = read_dict(&self.domain_file(&d, "Access.settings"))?;
        Ok(rights
            .get(name.as_bytes())
            .and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_text().map(|t| t.into_owned()))
            .collect())
    }

    /// Replaces the account's access rights. Server rights ([`SERVER_RIGHTS`]) are refused for
    /// accounts outside the main domain (guide.txt:3980-4012). An empty list removes the entry.
    pub fn set_account_rights(&self, d: &str, name: &str, rights: Vec<String>) -> Result<()> {
        let _g = self.w();
        let (d, _) = self.account(d, name)?;
        let name = names::normalize("account", name)?;
        if d != self.main_domain() && rights.iter().any(|r| is_server_right(r)) {
            return Err(StoreError::Invalid(
                "Server access rights can be granted only to main domain accounts".into(),
            ));
        }
        if rights
            .iter()
            .any(|r| r.is_empty() || r.bytes().any(|b| b < 0x20))
        {
            return Err(StoreError::Invalid("Illegal access right name".into()));
        }
        let path = self.domain_file(&d, "Access.settings");
        let mut map = read_dict(&path)?;
        if rights.is_empty() {
            map.shift_remove(name.as_bytes());
        } else {
            map.insert(
                name.into_bytes(),
                Value::Array(rights.iter().map(Value::str).collect()),
            );
        }
        write_dict(&path, &map)
    }

    /// The account's Rules array (empty array if none).
    pub fn account_rules(&self, d: &str, name: &str) -> Result<Value> {
        let _g = self.r();
        let (_, f) = self.account(d, name)?;
        Ok(read_value(&f.rules)?.unwrap_or(Value::Array(Vec::new())))
    }

    /// Replaces the account's Rules (must be an array, guide.txt:9058-9062).
    pub fn set_account_rules(&self, d: &str, name: &str, rules: Value) -> Result<()> {
        let _g = self.w();
        let (_, f) = self.account(d, name)?;
        if rules.as_array().is_none() {
            return Err(StoreError::Invalid("Rules must be an array".into()));
        }
        write_value(&f.rules, &rules)
    }

    /// The domain's `RPOP.data` (guide.txt:9694-9696): account name to its array of RPOP records.
    pub fn domain_rpop(&self, d: &str) -> Result<Dict> {
        let _g = self.r();
        let d = self.canon_domain(d)?;
        read_dict(&self.domain_file(&d, "RPOP.data"))
    }

    /// Replaces one account's RPOP records in its domain's `RPOP.data` (an empty array removes
    /// the account's entry).
    pub fn set_account_rpop(&self, d: &str, name: &str, records: Vec<Value>) -> Result<()> {
        let _g = self.w();
        let (d, _) = self.account(d, name)?;
        let key = names::normalize("account", name)?.into_bytes();
        let path = self.domain_file(&d, "RPOP.data");
        let mut all = read_dict(&path)?;
        if records.is_empty() {
            all.shift_remove(&key);
        } else {
            all.insert(key, Value::Array(records));
        }
        write_dict(&path, &all)
    }

    /// The account's WebUser settings.
    pub fn web_user(&self, d: &str, name: &str) -> Result<Dict> {
        let _g = self.r();
        let (_, f) = self.account(d, name)?;
        read_dict(&f.prefs)
    }

    /// Replaces the account's WebUser settings.
    pub fn set_web_user(&self, d: &str, name: &str, s: Dict) -> Result<()> {
        let _g = self.w();
        let (_, f) = self.account(d, name)?;
        write_dict(&f.prefs, &strip_defaults(s))
    }

    /// The path of the account's MultiMailbox directory, or of the domain directory holding a
    /// single-mailbox account's files (for the mailbox manager), with the account type.
    pub fn account_location(&self, d: &str, name: &str) -> Result<(AccountType, PathBuf)> {
        let _g = self.r();
        let (d, f) = self.account(d, name)?;
        Ok((f.kind, f.dir.unwrap_or_else(|| self.domain_dir(&d))))
    }

    // ---------------------------------------------------------------- name space

    /// What `name` denotes in domain `d` (or a domain alias), if anything.
    pub fn lookup(&self, d: &str, name: &str) -> Option<Object> {
        let _g = self.r();
        let d = self.canon_domain(d).ok()?;
        let name = names::normalize("account", name).ok()?;
        self.lookup_in(&d, &name).ok().flatten()
    }

    // ---------------------------------------------------------------- groups

    /// The domain's groups, sorted.
    pub fn list_groups(&self, d: &str) -> Result<Vec<String>> {
        let _g = self.r();
        let d = self.canon_domain(d)?;
        Ok(sorted_keys(&read_dict(
            &self.domain_file(&d, "Groups.data"),
        )?))
    }

    /// Creates a group with its settings (`Members` array, `RealName`, ...).
    pub fn create_group(&self, d: &str, name: &str, s: Dict) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let name = names::normalize("group", name)?;
        self.ensure_free(&d, &name)?;
        let path = self.domain_file(&d, "Groups.data");
        let mut groups = read_dict(&path)?;
        groups.insert(name.into_bytes(), Value::Dict(strip_defaults(s)));
        write_dict(&path, &groups)
    }

    /// Renames a group; other groups' member lists follow (guide.txt:9183-9190).
    pub fn rename_group(&self, d: &str, old: &str, new: &str) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let old = names::normalize("group", old)?;
        let new = names::normalize("group", new)?;
        let path = self.domain_file(&d, "Groups.data");
        let mut groups = read_dict(&path)?;
        let Some(idx) = groups.get_index_of(old.as_bytes()) else {
            return Err(StoreError::UnknownGroup);
        };
        if old == new {
            return Ok(());
        }
        self.ensure_free(&d, &new)?;
        let Some((_, v)) = groups.shift_remove_index(idx) else {
            return Err(StoreError::UnknownGroup);
        };
        groups.insert(new.clone().into_bytes(), v);
        write_dict(&path, &groups)?;
        self.replace_member(&d, &old, Some(&new))
    }

    /// Removes a group and its name from other groups' member lists.
    pub fn delete_group(&self, d: &str, name: &str) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let name = names::normalize("group", name)?;
        let path = self.domain_file(&d, "Groups.data");
        let mut groups = read_dict(&path)?;
        if groups.shift_remove(name.as_bytes()).is_none() {
            return Err(StoreError::UnknownGroup);
        }
        write_dict(&path, &groups)?;
        self.replace_member(&d, &name, None)
    }

    /// A group's settings.
    pub fn group(&self, d: &str, name: &str) -> Result<Dict> {
        let _g = self.r();
        let d = self.canon_domain(d)?;
        let name = names::normalize("group", name)?;
        let groups = read_dict(&self.domain_file(&d, "Groups.data"))?;
        groups
            .get(name.as_bytes())
            .and_then(Value::as_dict)
            .cloned()
            .ok_or(StoreError::UnknownGroup)
    }

    /// Replaces a group's settings.
    pub fn set_group(&self, d: &str, name: &str, s: Dict) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let name = names::normalize("group", name)?;
        let path = self.domain_file(&d, "Groups.data");
        let mut groups = read_dict(&path)?;
        let Some(slot) = groups.get_mut(name.as_bytes()) else {
            return Err(StoreError::UnknownGroup);
        };
        *slot = Value::Dict(strip_defaults(s));
        write_dict(&path, &groups)
    }

    // ---------------------------------------------------------------- forwarders

    /// The domain's forwarders, sorted.
    pub fn list_forwarders(&self, d: &str) -> Result<Vec<String>> {
        let _g = self.r();
        let d = self.canon_domain(d)?;
        Ok(sorted_keys(&read_dict(
            &self.domain_file(&d, "Forwarders.data"),
        )?))
    }

    /// Creates a forwarder: `name` in the domain goes to `address` (guide.txt:9201-9236).
    pub fn create_forwarder(&self, d: &str, name: &str, address: &str) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let name = names::normalize("forwarder", name)?;
        let address = address.trim();
        if address.is_empty() || address.len() > 1024 || address.bytes().any(|b| b < 0x20) {
            return Err(StoreError::Invalid("Illegal forwarder address".into()));
        }
        self.ensure_free(&d, &name)?;
        let path = self.domain_file(&d, "Forwarders.data");
        let mut map = read_dict(&path)?;
        map.insert(name.into_bytes(), Value::str(address));
        write_dict(&path, &map)
    }

    /// Removes a forwarder.
    pub fn delete_forwarder(&self, d: &str, name: &str) -> Result<()> {
        let _g = self.w();
        let d = self.canon_domain(d)?;
        let name = names::normalize("forwarder", name)?;
        let path = self.domain_file(&d, "Forwarders.data");
        let mut map = read_dict(&path)?;
        if map.shift_remove(name.as_bytes()).is_none() {
            return Err(StoreError::UnknownForwarder);
        }
        write_dict(&path, &map)
    }

    /// A forwarder's target address.
    pub fn forwarder(&self, d: &str, name: &str) -> Result<String> {
        let _g = self.r();
        let d = self.canon_domain(d)?;
        let name = names::normalize("forwarder", name)?;
        let map = read_dict(&self.domain_file(&d, "Forwarders.data"))?;
        map.get(name.as_bytes())
            .and_then(Value::as_text)
            .map(|t| t.into_owned())
            .ok_or(StoreError::UnknownForwarder)
    }

    // ---------------------------------------------------------------- server settings

    /// `Settings/<name>.settings` (an empty dictionary if absent).
    pub fn server_settings(&self, name: &str) -> Result<Value> {
        let _g = self.r();
        names::validate("settings", name)?;
        let path = self
            .inner
            .base
            .join("Settings")
            .join(format!("{name}.settings"));
        Ok(read_value(&path)?.unwrap_or(Value::Dict(Dict::new())))
    }

    /// Replaces `Settings/<name>.settings`. `Main` is refused: the main domain name changes only
    /// through `rename_domain`.
    pub fn set_server_settings(&self, name: &str, v: &Value) -> Result<()> {
        let _g = self.w();
        names::validate("settings", name)?;
        if name.eq_ignore_ascii_case("Main") {
            return Err(StoreError::Invalid(
                "The main domain name is changed by renaming the main domain".into(),
            ));
        }
        write_value(
            &self
                .inner
                .base
                .join("Settings")
                .join(format!("{name}.settings")),
            v,
        )
    }

    // ---------------------------------------------------------------- helpers (lock held)

    fn domains(&self) -> Vec<String> {
        let main = self.main_domain();
        let mut out = visible_entries(&self.inner.base.join("Domains"))
            .into_iter()
            .filter(|(n, is_dir)| *is_dir && *n != main && names::validate("domain", n).is_ok())
            .map(|(n, _)| n)
            .collect::<Vec<_>>();
        out.sort();
        out.insert(0, main);
        out
    }

    fn canon_domain(&self, d: &str) -> Result<String> {
        let d = names::normalize("domain", d)?;
        let main = self.main_domain();
        if d == main || self.inner.base.join("Domains").join(&d).is_dir() {
            return Ok(d);
        }
        for dom in self.domains() {
            if self.aliases_of_domain(&dom)?.contains(&d) {
                return Ok(dom);
            }
        }
        Err(StoreError::UnknownDomain)
    }

    fn domain_dir(&self, canon: &str) -> PathBuf {
        if canon == self.main_domain() {
            self.inner.base.join("Accounts")
        } else {
            self.inner.base.join("Domains").join(canon)
        }
    }

    fn domain_file(&self, canon: &str, file: &str) -> PathBuf {
        self.domain_dir(canon).join("Settings").join(file)
    }

    fn aliases_of_domain(&self, canon: &str) -> Result<Vec<String>> {
        let path = self.domain_file(canon, "DomainAliases.data");
        Ok(match read_value(&path)? {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_text().map(|t| t.to_lowercase()))
                .collect(),
            _ => Vec::new(),
        })
    }

    fn defaults_path(&self, which: &Defaults) -> Result<PathBuf> {
        Ok(match which {
            Defaults::DomainDefaults => self.inner.base.join("Settings/DomainDefaults.settings"),
            Defaults::AllAccountsDefaults => {
                self.inner.base.join("Settings/AccountDefaults.settings")
            }
            Defaults::AccountDefaults(d) => {
                self.domain_file(&self.canon_domain(d)?, "AccountDefaults.settings")
            }
            Defaults::AccountTemplate(d) => {
                self.domain_file(&self.canon_domain(d)?, "Template.settings")
            }
            Defaults::WebUserDefaults(d) => {
                self.domain_file(&self.canon_domain(d)?, "WebUserDefaults.settings")
            }
        })
    }

    /// Built-in < server Default Account Settings < the domain's Default Account Settings.
    fn account_defaults_chain(&self, canon: &str) -> Result<Dict> {
        let mut out = builtin(settings::ACCOUNT_SETTINGS);
        overlay(
            &mut out,
            read_dict(&self.defaults_path(&Defaults::AllAccountsDefaults)?)?,
        );
        overlay(
            &mut out,
            read_dict(&self.domain_file(canon, "AccountDefaults.settings"))?,
        );
        Ok(out)
    }

    fn encode_password_in(&self, canon: &str, s: &mut Dict) -> Result<()> {
        let Some(pw) = s.get(b"Password".as_slice()).and_then(Value::as_bytes) else {
            return Ok(());
        };
        if pw.first() == Some(&password::ENCODED_PREFIX) {
            return Ok(());
        }
        let mut eff = self.account_defaults_chain(canon)?;
        overlay(&mut eff, s.clone());
        let enc = eff
            .get(b"PasswordEncryption".as_slice())
            .and_then(Value::as_text)
            .map(|t| t.into_owned())
            .unwrap_or_default();
        let encoded = password::encode(pw, &enc).map_err(|e| StoreError::Invalid(e.into()))?;
        s.insert(b"Password".to_vec(), Value::Str(encoded));
        Ok(())
    }

    fn account(&self, d: &str, name: &str) -> Result<(String, AccountFiles)> {
        let d = self.canon_domain(d)?;
        let name = names::normalize("account", name)?;
        let f = self.account_files(&self.domain_dir(&d), &name)?;
        Ok((d, f))
    }

    fn account_files(&self, dd: &Path, name: &str) -> Result<AccountFiles> {
        let dir = dd.join(format!("{name}.macnt"));
        if dir.is_dir() {
            return Ok(AccountFiles {
                kind: AccountType::MultiMailbox,
                settings: dir.join("account.settings"),
                info: dir.join("account.info"),
                rules: dir.join("account.rules"),
                prefs: dir.join("account.prefs"),
                dir: Some(dir),
            });
        }
        let settings = dd.join(format!("{name}.settings"));
        if !settings.is_file() {
            return Err(StoreError::UnknownAccount);
        }
        let kind = if dd.join(format!("{name}.mdir")).is_dir() {
            AccountType::MailDirMailbox
        } else {
            AccountType::TextMailbox
        };
        Ok(AccountFiles {
            kind,
            settings,
            info: dd.join(format!("{name}.info")),
            rules: dd.join(format!("{name}.rules")),
            prefs: dd.join(format!("{name}.prefs")),
            dir: None,
        })
    }

    fn accounts_in(&self, dd: &Path) -> Result<Vec<(String, AccountType)>> {
        let mut out = Vec::new();
        for (entry, is_dir) in visible_entries(dd) {
            let name = if is_dir {
                entry.strip_suffix(".macnt")
            } else {
                entry.strip_suffix(".settings")
            };
            let Some(name) = name else { continue };
            if names::validate("account", name).is_err() {
                continue;
            }
            if let Ok(f) = self.account_files(dd, name) {
                out.push((name.to_owned(), f.kind));
            }
        }
        out.sort();
        Ok(out)
    }

    fn aliases_of(&self, canon: &str, account: &str) -> Result<Vec<String>> {
        let map = read_dict(&self.domain_file(canon, "Aliases.data"))?;
        let mut out: Vec<String> = map
            .iter()
            .filter(|(_, v)| v.as_bytes() == Some(account.as_bytes()))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        out.sort();
        Ok(out)
    }

    fn lookup_in(&self, canon: &str, name: &str) -> Result<Option<Object>> {
        let dd = self.domain_dir(canon);
        if self.account_files(&dd, name).is_ok() {
            return Ok(Some(Object::Account(name.to_owned())));
        }
        let key = name.as_bytes();
        if let Some(a) = read_dict(&self.domain_file(canon, "Aliases.data"))?.get(key) {
            if let Some(account) = a.as_text() {
                return Ok(Some(Object::Alias {
                    account: account.into_owned(),
                }));
            }
        }
        if read_dict(&self.domain_file(canon, "Groups.data"))?.contains_key(key) {
            return Ok(Some(Object::Group(name.to_owned())));
        }
        if let Some(f) = read_dict(&self.domain_file(canon, "Forwarders.data"))?.get(key) {
            return Ok(Some(Object::Forwarder(
                f.as_text().map(|t| t.into_owned()).unwrap_or_default(),
            )));
        }
        Ok(None)
    }

    fn ensure_free(&self, canon: &str, name: &str) -> Result<()> {
        match self.lookup_in(canon, name)? {
            Some(o) => Err(StoreError::Exists(kind_name(&o))),
            None => Ok(()),
        }
    }

    /// Renames (`Some`) or removes (`None`) `old` in every group's `Members` of the domain.
    fn replace_member(&self, canon: &str, old: &str, new: Option<&str>) -> Result<()> {
        let path = self.domain_file(canon, "Groups.data");
        let mut groups = read_dict(&path)?;
        let mut aliases = self.aliases_of_domain(canon)?;
        aliases.push(canon.to_owned());
        let matches = |m: &str| {
            let m = m.trim().to_lowercase();
            match m.split_once('@') {
                Some((local, dom)) => local == old && aliases.iter().any(|a| a == dom),
                None => m == old,
            }
        };
        let mut changed = false;
        for (_, g) in groups.iter_mut() {
            let Value::Dict(g) = g else { continue };
            let Some(Value::Array(members)) = g.get_mut(b"Members".as_slice()) else {
                continue;
            };
            let before = members.clone();
            let mut next = Vec::with_capacity(members.len());
            for m in members.drain(..) {
                let hit = m.as_text().map(|t| matches(&t)).unwrap_or(false);
                match (hit, new) {
                    (false, _) => next.push(m),
                    (true, Some(n)) => next.push(Value::str(n)),
                    (true, None) => {}
                }
            }
            *members = next;
            changed |= *members != before;
        }
        if changed {
            write_dict(&path, &groups)?;
        }
        Ok(())
    }

    /// Removes hidden `.creating`/`.deleting` leftovers of an interrupted create or remove.
    fn clean_leftovers(&self) -> Result<()> {
        let domains = self.inner.base.join("Domains");
        let mut dirs = vec![self.inner.base.join("Accounts"), domains.clone()];
        dirs.extend(
            visible_entries(&domains)
                .into_iter()
                .filter(|(_, is_dir)| *is_dir)
                .map(|(n, _)| domains.join(n)),
        );
        for dir in dirs {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with('.') && (n.ends_with(".creating") || n.ends_with(".deleting")) {
                    let p = e.path();
                    fs::remove_dir_all(&p).map_err(io_err("cannot remove", &p))?;
                }
            }
        }
        Ok(())
    }
}

fn kind_name(o: &Object) -> &'static str {
    match o {
        Object::Account(_) => "Account",
        Object::Alias { .. } => "Alias",
        Object::Group(_) => "Group",
        Object::Forwarder(_) => "Forwarder",
    }
}

fn is_server_right(r: &str) -> bool {
    SERVER_RIGHTS.iter().any(|s| s.eq_ignore_ascii_case(r))
}

fn is_yes(d: &Dict, key: &str) -> bool {
    d.get(key.as_bytes())
        .and_then(Value::as_text)
        .map(|t| t.eq_ignore_ascii_case("yes"))
        .unwrap_or(false)
}

fn info_key(key: &str) -> Vec<u8> {
    let k = key.strip_prefix('#').unwrap_or(key);
    format!("#{k}").into_bytes()
}

fn is_default(v: &Value) -> bool {
    v.as_bytes() == Some(b"default".as_slice())
}

fn strip_defaults(mut d: Dict) -> Dict {
    d.retain(|_, v| !is_default(v));
    d
}

/// `cur` updated by `s`; a `default` value removes the key.
fn merge(cur: &mut Dict, s: Dict) {
    for (k, v) in s {
        if is_default(&v) {
            cur.shift_remove(&k);
        } else {
            cur.insert(k, v);
        }
    }
}

/// Overlays one inheritance level: values `default` fall through to the level below.
fn overlay(out: &mut Dict, level: Dict) {
    for (k, v) in level {
        if !is_default(&v) {
            out.insert(k, v);
        }
    }
}

fn builtin(table: &[settings::SettingDecl]) -> Dict {
    table
        .iter()
        .map(|s| (s.key.as_bytes().to_vec(), Value::str(s.default)))
        .collect()
}

fn sorted_keys(d: &Dict) -> Vec<String> {
    let mut v: Vec<String> = d
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    v.sort();
    v
}

/// Entries of a directory that are not hidden: (name, is directory). Unreadable → empty.
fn visible_entries(dir: &Path) -> Vec<(String, bool)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if name.starts_with('.') {
                return None;
            }
            let is_dir = e.file_type().ok()?.is_dir();
            Some((name, is_dir))
        })
        .collect()
}

/// Reads a data-format file; `None` if it does not exist.
fn read_value(path: &Path) -> Result<Option<Value>> {
    match fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(bytes) => format::parse(&bytes)
            .map(Some)
            .map_err(|err| StoreError::BadFile {
                path: path.to_path_buf(),
                err,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot read", path)(e)),
    }
}

/// Reads a dictionary file; absent → empty; anything but a dictionary is a bad file.
fn read_dict(path: &Path) -> Result<Dict> {
    match read_value(path)? {
        None => Ok(Dict::new()),
        Some(Value::Dict(d)) => Ok(d),
        Some(_) => Err(StoreError::BadFile {
            path: path.to_path_buf(),
            err: format::ParseError {
                offset: 0,
                message: "a dictionary was expected",
            },
        }),
    }
}

/// Like `read_dict`, but a broken file reads as empty (for `.info`, guide.txt:9725-9729).
fn read_dict_lenient(path: &Path) -> Dict {
    read_dict(path).unwrap_or_default()
}

fn write_value(path: &Path, v: &Value) -> Result<()> {
    fsutil::write_atomic(path, &format::to_pretty(v)).map_err(io_err("cannot write", path))
}

fn write_dict(path: &Path, d: &Dict) -> Result<()> {
    write_value(path, &Value::Dict(d.clone()))
}
