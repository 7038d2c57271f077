//! Built-in defaults: the last level of settings inheritance (guide.txt:7606-7654).
//!
//! Each setting is declared once here with its key (the guide's internal name; the LDAP schema at
//! guide.txt:16553-16590 lists most of them in camelCase, the guide's files use CamelCase), its
//! built-in default and a one-line doc. Keys the guide does not name are marked "(our name)".
//! Effective account settings = explicit > domain Default Account Settings > server-wide Default
//! Account Settings > this table; a value `default` at any level falls through to the next.

/// One declared setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingDecl {
    /// Key as stored in `.settings` files.
    pub key: &'static str,
    /// Built-in default value.
    pub default: &'static str,
    /// What it is, in one line (guide name first).
    pub doc: &'static str,
}

const fn decl(key: &'static str, default: &'static str, doc: &'static str) -> SettingDecl {
    SettingDecl { key, default, doc }
}

/// Account settings with their built-in defaults (guide.txt:8592-8849).
pub const ACCOUNT_SETTINGS: &[SettingDecl] = &[
    decl("RealName", "", "Real Name: shown in the default From of the Web Mailer"),
    decl("UseAppPassword", "YES", "CommuniGate Password, Allow to Use (YES/NO)"),
    decl("PWDAllowed", "YES", "CommuniGate Password, Allow to Modify through PWD and WebUser (YES/NO)"),
    decl(
        "PasswordEncryption",
        "argon2",
        "Password Encryption for new passwords: argon2 (argon2id, one-way; the safe default) or clear \
         (recoverable; needed by CRAM-MD5, APOP and DIGEST-MD5)",
    ),
    decl("UseSysPassword", "NO", "Enable OS Password (YES/NO)"),
    decl("UseExtPassword", "NO", "External Authentication, Allow to Use (YES/NO)"),
    decl("OSUserName", "*", "OS UserName: `*` stands for the account name"),
    decl(
        "RequireAPOP",
        "NO",
        "Secure Method Required: only APOP or non-clear-text SASL, or any method over TLS (YES/NO)",
    ),
    decl(
        "AccessModes",
        "All",
        "Enabled Services: All, None, or an array of service names (Mail, POP, IMAP, WebMail, PWD, ...)",
    ),
    decl("MaxAccountSize", "unlimited", "Mail Storage: total size of all mailboxes (bytes, K, M, unlimited)"),
    decl("MaxMailboxes", "unlimited", "Mailboxes: the most mailboxes the account may hold"),
    decl(
        "MaxAccountSessions",
        "50",
        "Sessions: most IMAP, POP and WebMail sessions open at once for the account; 0 or unlimited for no \
         limit (our name, an extension: the guide has no per-account session limit)",
    ),
    decl("MaxWebSize", "0", "Web Storage: size of the Personal Web Site; 0 disables it"),
    decl("MaxWebFiles", "unlimited", "Web Files: the most files in the Personal Web Site"),
    decl("RPOPAllowed", "NO", "RPOP Accounts, Allow to Modify (YES/NO)"),
    decl(
        "RequireFixedNetworkAddress",
        "YES",
        "WebUser Preferences, Require Fixed Network Address: a WebUser session takes requests only \
         from the login address (YES/NO); the default of the user's own WebMail setting",
    ),
    decl("RulesAllowed", "No", "Automated Rules the user may modify: No, Filter Only, All But Exec, Any"),
    decl("MailToAll", "NO", "Accept Mail to all (YES/NO)"),
    decl("DefaultMailboxType", "MailBox", "New Mailboxes: format of new mailboxes (MailBox = .mbox, MailDir = .mdir)"),
    decl("AddMailTrailer", "NO", "Add Mail Trailer (YES/NO)"),
    decl("AddWebBanner", "NO", "Add Web Banner (YES/NO)"),
];

/// Account Template keys used only when an account is created, never copied into its settings
/// (guide.txt:8922-8984; our names).
pub const TEMPLATE_ONLY: &[&str] = &[
    "InitialMailboxes",
    "InitialSubscription",
    "InitialMailboxAliases",
    "InitialGreeting",
    "InitialWebPage",
];

/// Domain settings with their built-in defaults (guide.txt:7696-8352).
pub const DOMAIN_SETTINGS: &[SettingDecl] = &[
    decl(
        "DomainAccessModes",
        "All",
        "Enabled Services for the domain: All, None or an array",
    ),
    decl(
        "MailToUnknown",
        "Rejected",
        "Processing Unknown Names: Rejected, Discarded, Rerouted to",
    ),
    decl(
        "MailRerouteAddress",
        "",
        "Address unknown names are rerouted to when MailToUnknown is Rerouted to",
    ),
    decl(
        "WebBanner",
        "",
        "Web Banner Text: inserted at the start of HTML files of Personal Web Sites whose account has AddWebBanner",
    ),
    decl(
        "MailToAllAction",
        "Rejected",
        "Mail to all: Rejected, For Administrators Only, For Domain Users Only, For Everybody",
    ),
    decl(
        "AccountsLimit",
        "unlimited",
        "Domain Limits: the most accounts (our name)",
    ),
    decl("AdminDomainName", "", "Administrator Domain Name"),
    decl(
        "AutoSignup",
        "NO",
        "Auto Sign-up Enabled: users may create accounts from the WebUser login page (YES/NO)",
    ),
    decl(
        "IPAddresses",
        "",
        "Assigned IP Addresses, Manually Defined: the addresses dedicated to this secondary domain \
         (an array, or a text separated by commas); a WebUser URL naming one opens this domain's \
         login page. The main domain has All Available (guide.txt:7836-7860, 14971-14974)",
    ),
];

/// Most addresses one domain may have assigned.
const MAX_IP_ADDRESSES: usize = 256;

/// The addresses of an `IPAddresses` value (Assigned IP Addresses, guide.txt:7836-7860): an array
/// of addresses, or a text of them separated by commas or spaces, each maybe in brackets as the
/// guide shows them (`[206.40.74.198]`).
pub fn ip_addresses(v: &crate::format::Value) -> Result<Vec<std::net::IpAddr>, String> {
    let items: Vec<String> = match v {
        crate::format::Value::Array(a) => a
            .iter()
            .map(|i| {
                i.as_text()
                    .map(|t| t.into_owned())
                    .ok_or("IPAddresses: an array of addresses")
            })
            .collect::<Result<_, _>>()?,
        other => other
            .as_text()
            .ok_or("IPAddresses: a list of addresses")?
            .split([',', ' ', '\t'])
            .map(str::to_string)
            .collect(),
    };
    let mut out = Vec::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        let bare = item.trim_start_matches('[').trim_end_matches(']');
        let ip = bare
            .parse::<std::net::IpAddr>()
            .map_err(|_| format!("IPAddresses: {item:?} is not an IP address"))?;
        if out.len() >= MAX_IP_ADDRESSES {
            return Err(format!("IPAddresses: at most {MAX_IP_ADDRESSES} addresses"));
        }
        out.push(ip.to_canonical());
    }
    Ok(out)
}

/// Values of `PasswordEncryption` that store the password recoverably (clear text).
pub fn is_clear_encryption(v: &str) -> bool {
    v.eq_ignore_ascii_case("clear") || v.eq_ignore_ascii_case("clear text")
}

/// A setting as trimmed text; empty when absent or not a string. Modules read their effective
/// settings through this and [`list`], so every module reads values the same way.
pub fn text(d: &crate::format::Dict, key: &str) -> String {
    d.get(key.as_bytes())
        .and_then(crate::format::Value::as_text)
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}

/// A list setting: an array of strings or one comma-separated string; items trimmed, empty
/// ones dropped.
pub fn list(d: &crate::format::Dict, key: &str) -> Vec<String> {
    let joined = match d.get(key.as_bytes()) {
        Some(crate::format::Value::Array(items)) => items
            .iter()
            .filter_map(crate::format::Value::as_text)
            .collect::<Vec<_>>()
            .join(","),
        _ => text(d, key),
    };
    joined
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
