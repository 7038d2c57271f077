//! Validation of names that become paths or keys: domains, accounts, groups, forwarders, aliases,
//! mailboxes and server settings files.
//!
//! Security: every name here may come from the network (CLI, WebAdmin, SMTP). A name is refused
//! when it could leave its directory or hide a file: empty, `.`/`..`, `/` or `\`, NUL or any other
//! control byte, a leading `.` (our temp files and hidden files), and over-long names. The guide
//! only advises "letters, digits, dash and point signs" for accounts (guide.txt:8573-8575); we
//! enforce the safety rules, not the advice.
//!
//! Case: domain names and the names of a domain's objects (accounts, aliases, groups, forwarders)
//! are case-insensitive and stored lower-case, as the guide's example `John` → `john.macnt` shows
//! (guide.txt:9733-9735). Mailbox and settings-file names keep their case.

use super::StoreError;

/// Longest domain name, in bytes.
pub const MAX_DOMAIN: usize = 255;
/// Longest account, alias, group, forwarder or mailbox name, in bytes.
pub const MAX_NAME: usize = 128;

/// Checks `name` as a name of the given kind (`"domain"`, `"account"`, `"alias"`, `"group"`,
/// `"forwarder"`, `"mailbox"`, `"settings"`).
pub fn validate(kind: &str, name: &str) -> Result<(), StoreError> {
    let kind_static = static_kind(kind);
    let bad = |reason: &'static str| StoreError::IllegalName {
        kind: kind_static,
        reason,
    };
    let max = if kind_static == "domain" {
        MAX_DOMAIN
    } else {
        MAX_NAME
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.len() > max {
        return Err(bad("name too long"));
    }
    if name == "." || name == ".." {
        return Err(bad("'.' and '..' are not names"));
    }
    if name.starts_with('.') {
        return Err(bad("name starts with '.'"));
    }
    if name.contains(['/', '\\']) {
        return Err(bad("'/' and '\\' are not allowed"));
    }
    if name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(bad("control characters are not allowed"));
    }
    if is_local_part(kind_static) && name.contains(['@', '%']) {
        return Err(bad("'@' and '%' are not allowed"));
    }
    if kind_static == "domain" && name.contains([' ', '@', '%', ':']) {
        return Err(bad("spaces, '@', '%' and ':' are not allowed"));
    }
    Ok(())
}

/// Validates `name` and returns its stored form (lower-case for domain-scoped names).
pub fn normalize(kind: &str, name: &str) -> Result<String, StoreError> {
    validate(kind, name)?;
    let k = static_kind(kind);
    if k == "domain" || is_local_part(k) {
        let lower = name.to_lowercase();
        // Lower-casing some characters changes the length; check the stored form again.
        validate(kind, &lower)?;
        Ok(lower)
    } else {
        Ok(name.to_owned())
    }
}

fn is_local_part(kind: &str) -> bool {
    matches!(kind, "account" | "alias" | "group" | "forwarder")
}

fn static_kind(kind: &str) -> &'static str {
    match kind {
        "domain" => "domain",
        "account" => "account",
        "alias" => "alias",
        "group" => "group",
        "forwarder" => "forwarder",
        "mailbox" => "mailbox",
        "settings" => "settings",
        _ => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unsafe_names() {
        for kind in [
            "domain",
            "account",
            "alias",
            "group",
            "forwarder",
            "mailbox",
            "settings",
        ] {
            for bad in [
                "", ".", "..", "../x", "a/b", "a\\b", "a\0b", "a\nb", ".hidden", "x\x7f",
            ] {
                assert!(validate(kind, bad).is_err(), "{kind} {bad:?}");
            }
        }
        assert!(validate("domain", &"a".repeat(300)).is_err());
        assert!(validate("domain", &"a".repeat(255)).is_ok());
        assert!(validate("account", &"a".repeat(129)).is_err());
        assert!(validate("account", &"a".repeat(128)).is_ok());
        assert!(validate("account", "a@b").is_err());
    }

    #[test]
    fn accepts_ordinary_names() {
        assert!(validate("account", "john.smith-2").is_ok());
        assert!(validate("domain", "client1.com").is_ok());
        assert!(validate("mailbox", "Sent Items").is_ok());
    }

    #[test]
    fn error_text_is_admin_facing() {
        let e = validate("account", "../x").unwrap_err();
        assert_eq!(e.to_string(), "Illegal account name: name starts with '.'");
        let e = validate("domain", "a/b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Illegal domain name: '/' and '\\' are not allowed"
        );
    }

    #[test]
    fn normalizes_case() {
        assert_eq!(normalize("account", "John").unwrap(), "john");
        assert_eq!(normalize("domain", "Client1.COM").unwrap(), "client1.com");
        assert_eq!(normalize("mailbox", "Sent").unwrap(), "Sent");
    }
}
