//! Access rights: who may run which command on which object.
//!
//! Guide: server realms guide.txt:2305-2331 and 3980-4005; domain administration
//! guide.txt:2631-2670 and 8286-8298; per-command rights in the CLI chapter (spec B §4).
//!
//! Right codes (the strings `SetAccountRights` takes and `GetAccountRights` returns; the guide does
//! not print them, spec B §4.1). Server rights, main-domain accounts only, named after the WebAdmin
//! realms as `store::SERVER_RIGHTS` stores them:
//! - `Master` — Can Modify Access Rights, unlimited access: every other right.
//! - `Users` — Can Modify User Accounts ("All Accounts and Domains"): every domain and account.
//! - `Settings` — Can Modify Server Settings: modules, protection, router, schedule.
//! - `Monitor` — Can Monitor Server: logs, status, WriteLog.
//!
//! Domain administration, any domain: `Domain` (Can Modify This Domain and its Account Settings)
//! plus sub-rights `CanCreateAccounts`, `CanCreateAliases`, `CanCreateGroups`,
//! `CanCreateForwarders`, `CanModifyRules`, `CanModifyRPOP`, `CanAccessMailboxes`,
//! `CanPostAlerts`, `CanModifySkins`, `WebSite`, `CanAdminSubDomains` and `BasicSettings`
//! (guide.txt:2640-2670). Every other string in a domain administrator's list is the internal name
//! of a Domain or Account Setting the administrator may modify (guide.txt:2640-2642);
//! `BasicSettings` also allows `RealName` and `Password`. Sub-rights without `Domain` grant nothing.
//!
//! Security: rights are read from the store when the session starts and again before every
//! command, so a revoked right stops working at the next command.

use super::CliError;
use crate::format::Dict;
use crate::store::Store;

/// Server right: unlimited.
pub const MASTER: &str = "Master";
/// Server right: all accounts and domains.
pub const USERS: &str = "Users";
/// Server right: server settings.
pub const SETTINGS: &str = "Settings";
/// Server right: monitoring.
pub const MONITOR: &str = "Monitor";
/// Domain administration base right.
pub const DOMAIN: &str = "Domain";
/// Domain administration sub-rights (guide.txt:2640-2670).
pub const DOMAIN_SUBRIGHTS: &[&str] = &[
    "CanCreateAccounts",
    "CanCreateAliases",
    "CanCreateGroups",
    "CanCreateForwarders",
    "CanModifyRules",
    "CanModifyRPOP",
    "CanAccessMailboxes",
    "CanPostAlerts",
    "CanModifySkins",
    "WebSite",
    "CanAdminSubDomains",
    "BasicSettings",
];
/// Settings a domain administrator with `BasicSettings` may modify.
const BASIC_SETTINGS: &[&str] = &["RealName", "Password"];

/// The right a command needs before its handler runs; handlers then check the target object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any authenticated user (the handler allows own-account access or checks administration).
    User,
    /// `Users`, or domain administration of the target domain (checked by the handler).
    DomainAdmin,
    /// A System Administrator: `Users` (spec B §3.4, commands #40-69).
    SysAdmin,
    /// `Settings`.
    Settings,
    /// `Monitor`.
    Monitor,
    /// `Master`.
    Master,
}

impl Need {
    /// How `docs/cli.md` names this requirement.
    pub fn doc(self) -> &'static str {
        match self {
            Need::User => "any user (own account), else Account Settings or Domain Administration",
            Need::DomainAdmin => "Account Settings or Domain Administration",
            Need::SysAdmin => "Account Settings (System Administrator)",
            Need::Settings => "Server Settings",
            Need::Monitor => "Can Monitor",
            Need::Master => "unlimited (Master)",
        }
    }
}

/// Who runs the commands: the authenticated account and its rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Account name.
    pub user: String,
    /// The account's domain.
    pub domain: String,
    /// Its right codes (see the module header).
    pub rights: Vec<String>,
    /// Whether the account is in the main domain (only then do server rights count).
    pub main_domain: bool,
}

impl Session {
    /// Loads the session of `user@domain` from the store.
    pub fn load(store: &Store, user: &str, domain: &str) -> Result<Session, CliError> {
        let rights = store.account_rights(domain, user)?;
        Ok(Session {
            user: user.to_string(),
            domain: domain.to_string(),
            rights,
            main_domain: domain.eq_ignore_ascii_case(&store.main_domain()),
        })
    }

    /// Whether the session holds right `code` itself (exact, case-insensitive).
    fn holds(&self, code: &str) -> bool {
        self.rights.iter().any(|r| r.eq_ignore_ascii_case(code))
    }

    /// Whether the session holds server right `code` (or `Master`).
    pub fn server(&self, code: &str) -> bool {
        self.main_domain && (self.holds(MASTER) || self.holds(code))
    }

    /// Whether the session administers all accounts and domains.
    pub fn all_domains(&self) -> bool {
        self.server(USERS)
    }

    /// Whether the session is a domain administrator of its own domain.
    pub fn domain_admin(&self) -> bool {
        self.holds(DOMAIN)
    }

    /// The coarse check made before a command's handler runs.
    pub fn require(&self, need: Need) -> Result<(), CliError> {
        let ok = match need {
            Need::User => true,
            Need::DomainAdmin => self.all_domains() || self.domain_admin(),
            Need::SysAdmin => self.all_domains(),
            Need::Settings => self.server(SETTINGS),
            Need::Monitor => self.server(MONITOR),
            Need::Master => self.server(MASTER),
        };
        if ok {
            Ok(())
        } else {
            Err(denied())
        }
    }

    /// Whether the session may administer domain `d` (`admin_domain` = its Administrator Domain
    /// Name setting) with sub-right `sub` (none = the base right).
    pub fn may_admin(&self, d: &str, admin_domain: Option<&str>, sub: Option<&str>) -> bool {
        if self.all_domains() {
            return true;
        }
        if !self.domain_admin() {
            return false;
        }
        // guide.txt:2660-2670: administrators of the Administrator Domain need CanAdminSubDomains.
        let scope = d.eq_ignore_ascii_case(&self.domain)
            || (self.holds("CanAdminSubDomains")
                && admin_domain.is_some_and(|a| a.eq_ignore_ascii_case(&self.domain)));
        scope && sub.is_none_or(|s| self.holds(s))
    }

    /// Whether `name@d` is the session's own account.
    pub fn is_self(&self, d: &str, name: &str) -> bool {
        d.eq_ignore_ascii_case(&self.domain) && name.eq_ignore_ascii_case(&self.user)
    }

    /// The part of `settings` this session may write (guide.txt:5431-5432: a domain
    /// administrator's Create/Update applies only the settings it may modify).
    pub fn filter_settings(&self, settings: Dict) -> Dict {
        if self.all_domains() {
            return settings;
        }
        let basic = self.holds("BasicSettings");
        settings
            .into_iter()
            .filter(|(k, _)| {
                let key = String::from_utf8_lossy(k);
                let named = !is_right_code(&key) && self.holds(&key);
                named || (basic && BASIC_SETTINGS.iter().any(|b| b.eq_ignore_ascii_case(&key)))
            })
            .collect()
    }
}

/// Whether `s` is one of the right codes rather than a setting name.
pub fn is_right_code(s: &str) -> bool {
    [MASTER, USERS, SETTINGS, MONITOR, DOMAIN, "Directory"]
        .iter()
        .chain(DOMAIN_SUBRIGHTS)
        .any(|c| c.eq_ignore_ascii_case(s))
}

/// The refusal text.
pub fn denied() -> CliError {
    CliError::new("Not enough access rights")
}
