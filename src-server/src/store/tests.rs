//! Store unit tests: layout, domains, accounts of each type, name space, inheritance, template,
//! passwords, rights, groups, forwarders, restart and concurrency.

use super::*;
use crate::format::dict;

fn d(pairs: &[(&str, &str)]) -> Dict {
    match dict(pairs.iter().map(|(k, v)| (*k, Value::str(v)))) {
        Value::Dict(d) => d,
        _ => Dict::new(),
    }
}

fn text(dict: &Dict, key: &str) -> Option<String> {
    dict.get(key.as_bytes())
        .and_then(Value::as_text)
        .map(|t| t.into_owned())
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "Main.Example").unwrap();
    (dir, s)
}

#[test]
fn open_creates_layout_and_keeps_main_domain() {
    let (dir, s) = open();
    for p in LAYOUT {
        assert!(dir.path().join(p).is_dir(), "{p}");
    }
    assert_eq!(s.main_domain(), "main.example");
    drop(s);
    let s = Store::open(dir.path(), "other.example").unwrap();
    assert_eq!(s.main_domain(), "main.example");
    assert_eq!(s.list_domains(), vec!["main.example"]);
}

#[test]
fn domains_create_rename_delete() {
    let (dir, s) = open();
    s.create_domain("Client1.com", d(&[("MailToUnknown", "Discarded")]))
        .unwrap();
    assert!(dir
        .path()
        .join("Domains/client1.com/Settings/Domain.settings")
        .is_file());
    assert!(matches!(
        s.create_domain("client1.COM", Dict::new()),
        Err(StoreError::Exists("Domain"))
    ));
    assert_eq!(s.list_domains(), vec!["main.example", "client1.com"]);
    s.rename_domain("client1.com", "client2.com").unwrap();
    assert!(dir.path().join("Domains/client2.com").is_dir());
    assert!(!dir.path().join("Domains/client1.com").exists());
    assert_eq!(
        text(&s.domain_settings("client2.com").unwrap(), "MailToUnknown").as_deref(),
        Some("Discarded")
    );
    s.create_account("client2.com", "u", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    assert!(matches!(
        s.delete_domain("client2.com", false),
        Err(StoreError::DomainNotEmpty)
    ));
    s.delete_domain("client2.com", true).unwrap();
    assert!(!dir.path().join("Domains/client2.com").exists());
    assert!(matches!(
        s.delete_domain("main.example", true),
        Err(StoreError::MainDomain)
    ));
    assert!(matches!(
        s.domain_settings("client2.com"),
        Err(StoreError::UnknownDomain)
    ));
}

#[test]
fn empty_domain_deleted_without_force() {
    let (_dir, s) = open();
    s.create_domain("x.org", Dict::new()).unwrap();
    s.delete_domain("x.org", false).unwrap();
    assert_eq!(s.list_domains(), vec!["main.example"]);
}

#[test]
fn main_domain_rename_survives_restart() {
    let (dir, s) = open();
    s.create_account("main.example", "a", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    s.rename_domain("main.example", "new.example").unwrap();
    assert_eq!(s.main_domain(), "new.example");
    let s = Store::open(dir.path(), "ignored").unwrap();
    assert_eq!(s.main_domain(), "new.example");
    assert_eq!(s.list_accounts("new.example").unwrap().len(), 1);
}

#[test]
fn domain_aliases_resolve() {
    let (_dir, s) = open();
    s.create_domain("client.dom", Dict::new()).unwrap();
    s.set_domain_aliases(
        "client.dom",
        vec!["mail.client.dom".into(), "WWW.client.dom".into()],
    )
    .unwrap();
    assert_eq!(
        s.resolve_domain("www.CLIENT.dom").as_deref(),
        Some("client.dom")
    );
    assert_eq!(s.resolve_domain("nope.dom"), None);
    assert_eq!(
        s.domain_aliases("client.dom").unwrap(),
        vec!["mail.client.dom", "www.client.dom"]
    );
    // An alias may not be a domain or another domain's alias; a new domain may not be an alias.
    s.create_domain("other.dom", Dict::new()).unwrap();
    assert!(s
        .set_domain_aliases("other.dom", vec!["mail.client.dom".into()])
        .is_err());
    assert!(s
        .set_domain_aliases("other.dom", vec!["client.dom".into()])
        .is_err());
    assert!(s.create_domain("mail.client.dom", Dict::new()).is_err());
    // Accounts are reachable through the alias.
    s.create_account("client.dom", "u", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    assert_eq!(
        s.lookup("mail.client.dom", "U"),
        Some(Object::Account("u".into()))
    );
}

#[test]
fn accounts_of_each_type() {
    let (dir, s) = open();
    let acc = dir.path().join("Accounts");
    s.create_account(
        "main.example",
        "John",
        AccountType::MultiMailbox,
        Dict::new(),
    )
    .unwrap();
    assert!(acc.join("john.macnt/account.settings").is_file());
    assert!(acc.join("john.macnt/account.info").is_file());
    s.create_account(
        "main.example",
        "text",
        AccountType::TextMailbox,
        Dict::new(),
    )
    .unwrap();
    for f in ["text.mbox", "text.settings", "text.info"] {
        assert!(acc.join(f).is_file(), "{f}");
    }
    s.create_account(
        "main.example",
        "md",
        AccountType::MailDirMailbox,
        Dict::new(),
    )
    .unwrap();
    assert!(acc.join("md.mdir").is_dir());
    assert!(acc.join("md.settings").is_file());
    assert_eq!(
        s.list_accounts("main.example").unwrap(),
        vec![
            ("john".to_string(), AccountType::MultiMailbox),
            ("md".to_string(), AccountType::MailDirMailbox),
            ("text".to_string(), AccountType::TextMailbox),
        ]
    );
    let e = s
        .create_account(
            "main.example",
            "JOHN",
            AccountType::TextMailbox,
            Dict::new(),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "Account with this name already exists");

    // Rename moves every file, within and across domains.
    s.set_account_rules("main.example", "text", Value::Array(vec![]))
        .unwrap();
    s.rename_account("main.example", "text", "main.example", "text2")
        .unwrap();
    assert!(!acc.join("text.settings").exists());
    for f in ["text2.mbox", "text2.settings", "text2.info", "text2.rules"] {
        assert!(acc.join(f).exists(), "{f}");
    }
    s.create_domain("b.org", Dict::new()).unwrap();
    s.rename_account("main.example", "john", "b.org", "jack")
        .unwrap();
    assert!(dir.path().join("Domains/b.org/jack.macnt").is_dir());
    assert!(!acc.join("john.macnt").exists());
    s.rename_account("main.example", "md", "main.example", "md2")
        .unwrap();
    assert_eq!(
        s.list_accounts("main.example").unwrap(),
        vec![
            ("md2".to_string(), AccountType::MailDirMailbox),
            ("text2".to_string(), AccountType::TextMailbox),
        ]
    );

    // Delete removes every file.
    s.delete_account("main.example", "text2").unwrap();
    s.delete_account("main.example", "md2").unwrap();
    s.delete_account("b.org", "jack").unwrap();
    assert!(s.list_accounts("main.example").unwrap().is_empty());
    let left: Vec<_> = fs::read_dir(&acc)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "Settings")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(
        s.delete_account("main.example", "text2"),
        Err(StoreError::UnknownAccount)
    ));
}

#[test]
fn aliases_share_the_name_space_and_follow_the_account() {
    let (_dir, s) = open();
    let m = "main.example";
    s.create_account(m, "johnsmith", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    s.create_account(m, "other", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    s.set_account_aliases(m, "johnsmith", vec!["JSmith".into(), "js".into()])
        .unwrap();
    assert_eq!(
        s.lookup(m, "jsmith"),
        Some(Object::Alias {
            account: "johnsmith".into()
        })
    );
    // Clashes across kinds, both ways.
    let e = s
        .set_account_aliases(m, "other", vec!["johnsmith".into()])
        .unwrap_err();
    assert_eq!(e.to_string(), "Account with this name already exists");
    assert!(matches!(
        s.set_account_aliases(m, "other", vec!["js".into()]),
        Err(StoreError::Exists("Alias"))
    ));
    assert!(matches!(
        s.create_account(m, "js", AccountType::TextMailbox, Dict::new()),
        Err(StoreError::Exists("Alias"))
    ));
    assert!(matches!(
        s.create_group(m, "jsmith", Dict::new()),
        Err(StoreError::Exists("Alias"))
    ));
    assert!(matches!(
        s.create_forwarder(m, "js", "x@y.z"),
        Err(StoreError::Exists("Alias"))
    ));
    s.create_forwarder(m, "fw", "x@y.z").unwrap();
    assert!(matches!(
        s.set_account_aliases(m, "other", vec!["fw".into()]),
        Err(StoreError::Exists("Forwarder"))
    ));
    assert!(matches!(
        s.rename_account(m, "other", m, "fw"),
        Err(StoreError::Exists("Forwarder"))
    ));

    // Aliases move with a rename and go with a delete.
    s.rename_account(m, "johnsmith", m, "john").unwrap();
    assert_eq!(s.account_aliases(m, "john").unwrap(), vec!["js", "jsmith"]);
    assert_eq!(
        s.lookup(m, "js"),
        Some(Object::Alias {
            account: "john".into()
        })
    );
    // Renaming to one of its own aliases consumes the alias.
    s.rename_account(m, "john", m, "js").unwrap();
    assert_eq!(s.account_aliases(m, "js").unwrap(), vec!["jsmith"]);
    assert_eq!(s.lookup(m, "js"), Some(Object::Account("js".into())));
    s.rename_account(m, "js", m, "john").unwrap();
    s.delete_account(m, "john").unwrap();
    assert_eq!(s.lookup(m, "js"), None);
    assert_eq!(s.lookup(m, "jsmith"), None);
    s.create_account(m, "js", AccountType::TextMailbox, Dict::new())
        .unwrap();
}

#[test]
fn effective_settings_three_levels() {
    // guide.txt:7630-7650: global 10M, company.com 30M, client.com `default`.
    let (_dir, s) = open();
    s.create_domain("company.com", Dict::new()).unwrap();
    s.create_domain("client.com", Dict::new()).unwrap();
    s.set_defaults(
        Defaults::AllAccountsDefaults,
        d(&[("MaxAccountSize", "10M")]),
        false,
    )
    .unwrap();
    s.set_defaults(
        Defaults::AccountDefaults("company.com".into()),
        d(&[("MaxAccountSize", "30M")]),
        false,
    )
    .unwrap();
    s.set_defaults(
        Defaults::AccountDefaults("client.com".into()),
        d(&[("MaxAccountSize", "default")]),
        false,
    )
    .unwrap();
    for dom in ["company.com", "client.com", "main.example"] {
        s.create_account(dom, "a", AccountType::MultiMailbox, Dict::new())
            .unwrap();
        s.create_account(
            dom,
            "b",
            AccountType::MultiMailbox,
            d(&[("MaxAccountSize", "1M")]),
        )
        .unwrap();
    }
    let eff = |dom: &str, a: &str| {
        text(
            &s.account_effective_settings(dom, a).unwrap(),
            "MaxAccountSize",
        )
        .unwrap()
    };
    assert_eq!(eff("company.com", "a"), "30M");
    assert_eq!(eff("client.com", "a"), "10M");
    assert_eq!(eff("main.example", "a"), "10M");
    assert_eq!(eff("company.com", "b"), "1M");
    // Built-in level.
    let e = s.account_effective_settings("client.com", "a").unwrap();
    assert_eq!(text(&e, "PasswordEncryption").as_deref(), Some("argon2"));
    assert_eq!(text(&e, "RulesAllowed").as_deref(), Some("No"));
    // Back to defaults: the server level falls to built-in.
    s.set_defaults(
        Defaults::AllAccountsDefaults,
        d(&[("MaxAccountSize", "default")]),
        true,
    )
    .unwrap();
    assert!(s
        .defaults(Defaults::AllAccountsDefaults)
        .unwrap()
        .is_empty());
    assert_eq!(eff("client.com", "a"), "unlimited");

    // Domain settings: explicit > server Default Domain Settings > built-in.
    s.set_defaults(
        Defaults::DomainDefaults,
        d(&[("MailToUnknown", "Discarded")]),
        false,
    )
    .unwrap();
    s.update_domain_settings("company.com", d(&[("MailToUnknown", "Rerouted to")]))
        .unwrap();
    let de = |dom: &str| text(&s.domain_effective_settings(dom).unwrap(), "MailToUnknown");
    assert_eq!(de("company.com").as_deref(), Some("Rerouted to"));
    assert_eq!(de("client.com").as_deref(), Some("Discarded"));
    assert_eq!(
        text(
            &s.domain_effective_settings("client.com").unwrap(),
            "DomainAccessModes"
        )
        .as_deref(),
        Some("All")
    );
}

#[test]
fn update_merges_and_default_removes() {
    let (_dir, s) = open();
    let m = "main.example";
    s.create_account(
        m,
        "u",
        AccountType::MultiMailbox,
        d(&[("RealName", "U"), ("MaxMailboxes", "5")]),
    )
    .unwrap();
    s.update_account_settings(
        m,
        "u",
        d(&[("MaxMailboxes", "default"), ("RPOPAllowed", "YES")]),
    )
    .unwrap();
    let st = s.account_settings(m, "u").unwrap();
    assert_eq!(text(&st, "RealName").as_deref(), Some("U"));
    assert_eq!(text(&st, "RPOPAllowed").as_deref(), Some("YES"));
    assert!(!st.contains_key(b"MaxMailboxes".as_slice()));
    s.set_account_settings(m, "u", d(&[("RealName", "V")]))
        .unwrap();
    assert_eq!(s.account_settings(m, "u").unwrap().len(), 1);
    s.update_domain_settings(m, d(&[("A", "1"), ("B", "2")]))
        .unwrap();
    s.update_domain_settings(m, d(&[("A", "default")])).unwrap();
    assert_eq!(s.domain_settings(m).unwrap(), d(&[("B", "2")]));
}

#[test]
fn template_copied_only_at_creation() {
    let (_dir, s) = open();
    let m = "main.example";
    s.set_defaults(
        Defaults::AccountTemplate(m.into()),
        d(&[
            ("MaxAccountSize", "5M"),
            ("RulesAllowed", "default"),
            ("InitialMailboxes", "Sent"),
        ]),
        false,
    )
    .unwrap();
    s.create_account(m, "a", AccountType::MultiMailbox, d(&[("RealName", "A")]))
        .unwrap();
    let st = s.account_settings(m, "a").unwrap();
    assert_eq!(text(&st, "MaxAccountSize").as_deref(), Some("5M"));
    assert_eq!(text(&st, "RealName").as_deref(), Some("A"));
    assert!(!st.contains_key(b"InitialMailboxes".as_slice()));
    assert!(!st.contains_key(b"RulesAllowed".as_slice()));
    s.set_defaults(
        Defaults::AccountTemplate(m.into()),
        d(&[("MaxAccountSize", "9M")]),
        true,
    )
    .unwrap();
    assert_eq!(
        text(&s.account_settings(m, "a").unwrap(), "MaxAccountSize").as_deref(),
        Some("5M")
    );
    // Explicit settings win over the template.
    s.create_account(
        m,
        "b",
        AccountType::TextMailbox,
        d(&[("MaxAccountSize", "1M")]),
    )
    .unwrap();
    assert_eq!(
        text(&s.account_settings(m, "b").unwrap(), "MaxAccountSize").as_deref(),
        Some("1M")
    );
}

#[test]
fn traversal_names_refused() {
    let (dir, s) = open();
    let m = "main.example";
    let long = "a".repeat(300);
    for bad in ["../x", "a/b", "a\\b", "a\0b", "..", ".x", long.as_str()] {
        assert!(
            matches!(
                s.create_account(m, bad, AccountType::MultiMailbox, Dict::new()),
                Err(StoreError::IllegalName { .. })
            ),
            "{bad:?}"
        );
        assert!(s.create_domain(bad, Dict::new()).is_err(), "{bad:?}");
        assert!(s.create_group(m, bad, Dict::new()).is_err(), "{bad:?}");
        assert!(s.create_forwarder(m, bad, "a@b").is_err(), "{bad:?}");
        assert!(s.server_settings(bad).is_err(), "{bad:?}");
        assert!(
            s.set_server_settings(bad, &Value::str("x")).is_err(),
            "{bad:?}"
        );
    }
    s.create_account(m, "u", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    assert!(s
        .set_account_aliases(m, "u", vec!["../etc".into()])
        .is_err());
    assert!(s.rename_account(m, "u", m, "../../x").is_err());
    assert!(s.rename_domain(m, "../x").is_err());
    assert!(!dir.path().join("x").exists());
    assert!(!dir.path().parent().unwrap().join("x.macnt").exists());
}

#[test]
fn passwords() {
    let (dir, s) = open();
    let m = "main.example";
    s.create_account(
        m,
        "a",
        AccountType::MultiMailbox,
        d(&[("Password", "secret")]),
    )
    .unwrap();
    // Stored hashed by default, never in clear on disk.
    let raw = fs::read(dir.path().join("Accounts/a.macnt/account.settings")).unwrap();
    assert!(!raw.windows(6).any(|w| w == b"secret"));
    assert!(s.check_password(m, "a", b"secret").unwrap());
    assert!(!s.check_password(m, "a", b"Secret").unwrap());
    assert_eq!(s.recoverable_password(m, "a").unwrap(), None);
    s.set_password(m, "a", b"new").unwrap();
    assert!(s.check_password(m, "a", b"new").unwrap());
    assert!(!s.check_password(m, "a", b"secret").unwrap());

    // Clear per account: recoverable for CRAM-MD5/APOP.
    s.create_account(
        m,
        "c",
        AccountType::TextMailbox,
        d(&[("PasswordEncryption", "clear"), ("Password", "pw")]),
    )
    .unwrap();
    assert_eq!(
        s.recoverable_password(m, "c").unwrap(),
        Some(b"pw".to_vec())
    );
    assert!(s.check_password(m, "c", b"pw").unwrap());
    // Clear per domain (domain account defaults).
    s.set_defaults(
        Defaults::AccountDefaults(m.into()),
        d(&[("PasswordEncryption", "clear")]),
        false,
    )
    .unwrap();
    s.set_password(m, "a", b"open").unwrap();
    assert_eq!(
        s.recoverable_password(m, "a").unwrap(),
        Some(b"open".to_vec())
    );

    // Legacy \002 + MD5-crypt (guide.txt:1838-1866), as `createaccount ... {Password="\002..."}`.
    s.create_account(
        m,
        "legacy",
        AccountType::MultiMailbox,
        d(&[("Password", "\u{2}$1$saltsalt$9xy1btjgzLYfb7hivXtC//")]),
    )
    .unwrap();
    assert!(s.check_password(m, "legacy", b"secret").unwrap());
    assert!(!s.check_password(m, "legacy", b"wrong").unwrap());
    assert_eq!(s.recoverable_password(m, "legacy").unwrap(), None);

    // Absent or empty never logs in; UseAppPassword=NO disables it.
    s.create_account(m, "nopw", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    assert!(!s.check_password(m, "nopw", b"").unwrap());
    s.set_password(m, "nopw", b"").unwrap();
    assert!(!s.check_password(m, "nopw", b"").unwrap());
    s.update_account_settings(m, "c", d(&[("UseAppPassword", "NO")]))
        .unwrap();
    assert!(!s.check_password(m, "c", b"pw").unwrap());
    assert!(matches!(
        s.check_password(m, "ghost", b"x"),
        Err(StoreError::UnknownAccount)
    ));
}

#[test]
fn info_rules_prefs_rights() {
    let (dir, s) = open();
    let m = "main.example";
    s.create_account(m, "u", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    s.set_account_info(m, "u", "LastLogin", Value::str("2024-01-01"))
        .unwrap();
    assert_eq!(
        s.account_info(m, "u", "LastLogin").unwrap(),
        Some(Value::str("2024-01-01"))
    );
    let raw = fs::read_to_string(dir.path().join("Accounts/u.macnt/account.info")).unwrap();
    assert!(raw.contains("#LastLogin"), "{raw}");
    // A corrupt .info is survived.
    fs::write(dir.path().join("Accounts/u.macnt/account.info"), "{broken").unwrap();
    assert_eq!(s.account_info(m, "u", "LastLogin").unwrap(), None);
    s.set_account_info(m, "u", "X", Value::str("1")).unwrap();

    let rules = Value::Array(vec![Value::Array(vec![
        Value::str("5"),
        Value::str("r"),
        Value::Array(vec![]),
        Value::Array(vec![]),
    ])]);
    s.set_account_rules(m, "u", rules.clone()).unwrap();
    assert_eq!(s.account_rules(m, "u").unwrap(), rules);
    assert!(s.set_account_rules(m, "u", Value::str("x")).is_err());
    s.set_web_user(m, "u", d(&[("Skin", "Plain")])).unwrap();
    assert_eq!(s.web_user(m, "u").unwrap(), d(&[("Skin", "Plain")]));

    s.set_account_rights(m, "u", vec!["Master".into()]).unwrap();
    assert_eq!(s.account_rights(m, "u").unwrap(), vec!["Master"]);
    assert!(dir
        .path()
        .join("Accounts/Settings/Access.settings")
        .is_file());
    s.create_domain("b.org", Dict::new()).unwrap();
    s.create_account("b.org", "v", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    assert!(s
        .set_account_rights("b.org", "v", vec!["Master".into()])
        .is_err());
    s.set_account_rights("b.org", "v", vec!["CanCreateAccounts".into()])
        .unwrap();
    // Rights follow a rename and go with a delete; server rights do not leave the main domain.
    s.rename_account(m, "u", "b.org", "w").unwrap();
    assert!(s.account_rights("b.org", "w").unwrap().is_empty());
    s.rename_account("b.org", "v", "b.org", "v2").unwrap();
    assert_eq!(
        s.account_rights("b.org", "v2").unwrap(),
        vec!["CanCreateAccounts"]
    );
    s.delete_account("b.org", "v2").unwrap();
    s.create_account("b.org", "v2", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    assert!(s.account_rights("b.org", "v2").unwrap().is_empty());
}

#[test]
fn groups_and_forwarders() {
    let (_dir, s) = open();
    let m = "main.example";
    s.create_account(m, "ann", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    let members = |names: &[&str]| {
        let mut g = Dict::new();
        g.insert(
            b"Members".to_vec(),
            Value::Array(names.iter().map(Value::str).collect()),
        );
        g
    };
    s.create_group(
        m,
        "Sales",
        members(&["ann", "bob@else.org", "ann@main.example"]),
    )
    .unwrap();
    s.create_group(m, "all", members(&["sales", "ann"]))
        .unwrap();
    assert_eq!(s.list_groups(m).unwrap(), vec!["all", "sales"]);
    assert_eq!(s.lookup(m, "SALES"), Some(Object::Group("sales".into())));
    assert!(matches!(
        s.create_account(m, "sales", AccountType::MultiMailbox, Dict::new()),
        Err(StoreError::Exists("Group"))
    ));

    let list = |g: &str| -> Vec<String> {
        s.group(m, g).unwrap()[b"Members".as_slice()]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_text().unwrap().into_owned())
            .collect()
    };
    // Account rename/delete updates members (guide.txt:9183-9186).
    s.rename_account(m, "ann", m, "anna").unwrap();
    assert_eq!(list("sales"), vec!["anna", "bob@else.org", "anna"]);
    s.rename_group(m, "sales", "team").unwrap();
    assert_eq!(list("all"), vec!["team", "anna"]);
    assert!(matches!(s.group(m, "sales"), Err(StoreError::UnknownGroup)));
    s.delete_account(m, "anna").unwrap();
    assert_eq!(list("team"), vec!["bob@else.org"]);
    s.delete_group(m, "team").unwrap();
    assert_eq!(list("all"), Vec::<String>::new());
    s.set_group(m, "all", members(&["x@y.z"])).unwrap();
    assert_eq!(list("all"), vec!["x@y.z"]);
    assert!(matches!(
        s.delete_group(m, "team"),
        Err(StoreError::UnknownGroup)
    ));

    s.create_forwarder(m, "Jim", "john@otherdomain.com")
        .unwrap();
    assert_eq!(s.forwarder(m, "jim").unwrap(), "john@otherdomain.com");
    assert_eq!(
        s.lookup(m, "jim"),
        Some(Object::Forwarder("john@otherdomain.com".into()))
    );
    assert_eq!(s.list_forwarders(m).unwrap(), vec!["jim"]);
    assert!(matches!(
        s.create_forwarder(m, "jim", "x@y"),
        Err(StoreError::Exists("Forwarder"))
    ));
    assert!(s.create_forwarder(m, "bad", "").is_err());
    s.delete_forwarder(m, "jim").unwrap();
    assert!(matches!(
        s.forwarder(m, "jim"),
        Err(StoreError::UnknownForwarder)
    ));
}

#[test]
fn server_settings_files() {
    let (dir, s) = open();
    assert_eq!(s.server_settings("SMTP").unwrap(), Value::Dict(Dict::new()));
    let v = Value::Dict(d(&[("Port", "25")]));
    s.set_server_settings("SMTP", &v).unwrap();
    assert!(dir.path().join("Settings/SMTP.settings").is_file());
    assert_eq!(s.server_settings("SMTP").unwrap(), v);
    assert!(s.set_server_settings("Main", &v).is_err());
}

#[test]
fn restart_keeps_everything() {
    let (dir, s) = open();
    let m = "main.example";
    s.create_domain("b.org", d(&[("K", "V")])).unwrap();
    s.set_domain_aliases("b.org", vec!["alias.org".into()])
        .unwrap();
    s.create_account(
        "b.org",
        "u",
        AccountType::MailDirMailbox,
        d(&[("Password", "p")]),
    )
    .unwrap();
    s.set_account_aliases("b.org", "u", vec!["uu".into()])
        .unwrap();
    s.create_group(m, "g", Dict::new()).unwrap();
    s.create_forwarder(m, "f", "a@b.c").unwrap();
    s.set_server_settings("Router", &Value::str("x")).unwrap();
    drop(s);
    let s = Store::open(dir.path(), "whatever").unwrap();
    assert_eq!(s.list_domains(), vec!["main.example", "b.org"]);
    assert_eq!(s.resolve_domain("alias.org").as_deref(), Some("b.org"));
    assert_eq!(
        s.list_accounts("b.org").unwrap(),
        vec![("u".to_string(), AccountType::MailDirMailbox)]
    );
    assert!(s.check_password("alias.org", "UU", b"p").is_err());
    assert!(s.check_password("alias.org", "u", b"p").unwrap());
    assert_eq!(
        s.lookup("b.org", "uu"),
        Some(Object::Alias {
            account: "u".into()
        })
    );
    assert_eq!(s.list_groups(m).unwrap(), vec!["g"]);
    assert_eq!(s.forwarder(m, "f").unwrap(), "a@b.c");
    assert_eq!(s.server_settings("Router").unwrap(), Value::str("x"));
    assert_eq!(
        text(&s.domain_settings("b.org").unwrap(), "K").as_deref(),
        Some("V")
    );
}

#[test]
fn interrupted_create_is_cleaned_at_open() {
    let (dir, s) = open();
    drop(s);
    let left = dir.path().join("Accounts/.x.macnt.creating");
    fs::create_dir_all(&left).unwrap();
    fs::create_dir_all(dir.path().join("Domains/.y.org.deleting/Settings")).unwrap();
    let s = Store::open(dir.path(), "m").unwrap();
    assert!(!left.exists());
    assert!(!dir.path().join("Domains/.y.org.deleting").exists());
    assert!(s.list_accounts("main.example").unwrap().is_empty());
    assert_eq!(s.list_domains(), vec!["main.example"]);
}

#[test]
fn concurrent_creates_from_threads() {
    let (_dir, s) = open();
    let m = "main.example";
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut won = 0;
                for i in 0..20 {
                    // Every thread also races for the same shared names.
                    if s.create_account(
                        m,
                        &format!("t{t}-{i}"),
                        AccountType::MultiMailbox,
                        Dict::new(),
                    )
                    .is_ok()
                    {
                        won += 1;
                    }
                    if s.create_account(
                        m,
                        &format!("shared{i}"),
                        AccountType::TextMailbox,
                        Dict::new(),
                    )
                    .is_ok()
                    {
                        won += 1;
                    }
                    let _ = s.create_group(m, &format!("g{i}"), Dict::new());
                }
                won
            })
        })
        .collect();
    let won: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(won, 8 * 20 + 20);
    assert_eq!(s.list_accounts(m).unwrap().len(), 8 * 20 + 20);
    assert_eq!(s.list_groups(m).unwrap().len(), 20);
}

#[test]
fn assigned_ip_addresses_parse_as_the_guide_shows_them() {
    use crate::store::settings::ip_addresses;
    let ips = |t: &str| ip_addresses(&crate::format::parse(t.as_bytes()).unwrap());
    let want: Vec<std::net::IpAddr> = vec![
        "206.40.74.198".parse().unwrap(),
        "10.0.0.5".parse().unwrap(),
    ];
    assert_eq!(ips(r#""[206.40.74.198], 10.0.0.5""#).unwrap(), want);
    assert_eq!(ips(r#"("206.40.74.198", "[10.0.0.5]")"#).unwrap(), want);
    assert!(ips(r#""""#).unwrap().is_empty());
    assert_eq!(
        ips(r#""::ffff:127.0.0.2""#).unwrap(),
        vec!["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(ips(r#""mail.example.com""#).is_err());
    assert!(ips("{a=b;}").is_err());
}

#[test]
fn rpop_records_follow_rename_and_go_with_delete() {
    let (_dir, s) = open();
    let m = "main.example";
    s.create_domain("b.org", Dict::new()).unwrap();
    for name in ["ann", "bob"] {
        s.create_account(m, name, AccountType::MultiMailbox, Dict::new())
            .unwrap();
    }
    let record = |server: &str| Value::Dict(d(&[("Server", server), ("Account", "remote")]));
    s.set_account_rpop(m, "ann", vec![record("pop.ann.test")])
        .unwrap();
    s.set_account_rpop(m, "bob", vec![record("pop.bob.test")])
        .unwrap();
    let keys = |domain: &str| -> Vec<String> {
        s.domain_rpop(domain)
            .unwrap()
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    };
    let server_of = |domain: &str, name: &str| {
        s.domain_rpop(domain).unwrap()[name.as_bytes()]
            .as_array()
            .and_then(|a| {
                a.first()
                    .and_then(|r| r.as_dict().and_then(|r| text(r, "Server")))
            })
    };
    // Within the domain: the entry changes its name.
    s.rename_account(m, "ann", m, "anna").unwrap();
    assert_eq!(keys(m), ["bob", "anna"]);
    assert_eq!(server_of(m, "anna").as_deref(), Some("pop.ann.test"));
    // Into another domain: it leaves this RPOP.data for that one.
    s.rename_account(m, "anna", "b.org", "ann").unwrap();
    assert_eq!(keys(m), ["bob"]);
    assert_eq!(keys("b.org"), ["ann"]);
    assert_eq!(server_of("b.org", "ann").as_deref(), Some("pop.ann.test"));
    // A new account with the old name starts without records; delete removes them.
    s.create_account(m, "anna", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    assert_eq!(keys(m), ["bob"]);
    s.delete_account(m, "bob").unwrap();
    s.delete_account("b.org", "ann").unwrap();
    assert!(keys(m).is_empty() && keys("b.org").is_empty());
}
