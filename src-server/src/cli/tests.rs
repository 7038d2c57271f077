//! Command-layer tests: the guide's sample, the rights matrix, aliases, bad input, and the
//! generated `docs/cli.md`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::rights::Need;
use super::table::{self, State};
use super::*;
use crate::format::Dict;
use crate::store::AccountType;

/// A store with postmaster (Master) in example.com, a secondary domain client1.com with an
/// administrator `boss` (Domain, CanCreateAccounts, RealName) and a plain user `joe`.
pub(crate) fn fixture() -> (tempfile::TempDir, CliContext) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "example.com").unwrap();
    let pw = |p: &str| {
        let mut d = Dict::new();
        d.insert(b"Password".to_vec(), Value::str(p));
        d
    };
    store
        .create_account(
            "example.com",
            "postmaster",
            AccountType::MultiMailbox,
            pw("secret"),
        )
        .unwrap();
    store
        .set_account_rights("example.com", "postmaster", vec!["Master".into()])
        .unwrap();
    store.create_domain("client1.com", Dict::new()).unwrap();
    store
        .create_account("client1.com", "boss", AccountType::MultiMailbox, pw("b"))
        .unwrap();
    store
        .set_account_rights(
            "client1.com",
            "boss",
            vec![
                "Domain".into(),
                "CanCreateAccounts".into(),
                "RealName".into(),
            ],
        )
        .unwrap();
    store
        .create_account("client1.com", "joe", AccountType::MultiMailbox, pw("j"))
        .unwrap();
    (dir, CliContext::new(store, "mail.example.com"))
}

fn session(ctx: &CliContext, user: &str, domain: &str) -> Session {
    Session::load(&ctx.store, user, domain).unwrap()
}

fn run(ctx: &CliContext, s: &Session, line: &str) -> String {
    String::from_utf8(reply_lines(&execute(ctx, s, line.as_bytes()))).unwrap()
}

#[test]
fn guide_sample_commands() {
    let (_d, ctx) = fixture();
    let pm = session(&ctx, "postmaster", "example.com");
    assert_eq!(run(&ctx, &pm, r#"CreateAccount "user1""#), "200 OK");
    assert_eq!(
        run(&ctx, &pm, r#"CreateAccount "user1""#),
        "501 Account with this name already exists"
    );
    assert_eq!(
        run(&ctx, &pm, r#"RenameAccount "user1" into "user2""#),
        "200 OK"
    );
    assert_eq!(run(&ctx, &pm, r#"CreateDomain "client2.com""#), "200 OK");
    assert_eq!(
        run(
            &ctx,
            &pm,
            r#"CreateAccount "user1@client2.com" TextMailbox"#
        ),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &pm, "ListAccounts client2.com"),
        "200 data follow\r\n{user1=TextMailbox;}"
    );
    // guide.txt:1842-1845: a binary password prefix survives the command line.
    assert_eq!(
        run(
            &ctx,
            &pm,
            r#"createaccount "test" {Password="\002AslUzT1JkPsocc";}"#
        ),
        "200 OK"
    );
}

#[test]
fn names_aliases_and_legacy_are_case_insensitive() {
    let (_d, ctx) = fixture();
    let pm = session(&ctx, "postmaster", "example.com");
    assert_eq!(
        run(&ctx, &pm, "MAINDOMAINNAME"),
        "200 data follow\r\n\"example.com\""
    );
    assert_eq!(
        run(&ctx, &pm, "lstdmn"),
        "200 data follow\r\n(\"example.com\",\"client1.com\")"
    );
    assert_eq!(run(&ctx, &pm, "cracnt u3 {RealName=\"U 3\";}"), "200 OK");
    assert_eq!(
        run(&ctx, &pm, "GetAccount u3"),
        "200 data follow\r\n{RealName=\"U 3\";}"
    );
    assert_eq!(run(&ctx, &pm, "updacnt u3 {RealName=default;}"), "200 OK");
    assert_eq!(run(&ctx, &pm, "gtacnt u3"), "200 data follow\r\n{}");
    assert_eq!(run(&ctx, &pm, "rndmn client1.com client3.com"), "200 OK");
    assert_eq!(
        run(&ctx, &pm, "GetDomain client3.com"),
        "200 data follow\r\n{}"
    );
}

#[test]
fn account_rpop_records_are_checked_and_stored() {
    let (_d, ctx) = fixture();
    let pm = session(&ctx, "postmaster", "example.com");
    assert_eq!(
        run(&ctx, &pm, "GetAccountRPOP postmaster"),
        "200 data follow\r\n()"
    );
    assert_eq!(
        run(
            &ctx,
            &pm,
            r#"SetAccountRPOP postmaster ({PollEvery=10m;Account=me;Host="pop.isp.test:1110";Password=pw;Leave=Yes;},{PollEvery=never;Account=x;Host=h;})"#
        ),
        "200 OK"
    );
    let got = run(&ctx, &pm, "GetAccountRPOP postmaster");
    assert!(
        got.contains("PollEvery = 600s") || got.contains("PollEvery=600s"),
        "{got}"
    );
    assert!(
        got.contains("pop.isp.test:1110") && !got.contains("Account=x"),
        "{got}"
    );
    assert!(run(
        &ctx,
        &pm,
        r#"SetAccountRPOP postmaster ({Account=me;Host="a b";})"#
    )
    .starts_with("501 RPOP record 1: Host"));
    assert!(run(&ctx, &pm, "SetAccountRPOP nobody ()").starts_with("501 Unknown account"));
}

#[test]
fn unknown_planned_and_bad_input_are_501() {
    let (_d, ctx) = fixture();
    let pm = session(&ctx, "postmaster", "example.com");
    for line in [
        "NoSuchCommand",
        "GetDomainAlerts",
        "GetClusterRules",
        "\u{fffd}\u{1}",
    ] {
        assert_eq!(run(&ctx, &pm, line), "501 Unknown command", "{line}");
    }
    assert!(run(&ctx, &pm, "CreateAccount u {RealName=x;").starts_with("501 Syntax error"));
    assert!(run(&ctx, &pm, "SetAccountAliases postmaster (a,b").starts_with("501 Syntax error"));
    assert!(run(&ctx, &pm, "RenameAccount a b").starts_with("501 Syntax error"));
    assert!(run(&ctx, &pm, "ListDomains extra").starts_with("501 Syntax error"));
    assert_eq!(
        run(&ctx, &pm, "GetAccountSettings nobody"),
        "501 Unknown account"
    );
    assert_eq!(
        run(&ctx, &pm, "ListAccounts nowhere.com"),
        "501 Unknown domain"
    );
    // Binary bytes in a command line are an error, never a panic.
    let r = reply_lines(&execute(&ctx, &pm, b"CreateAccount \x00\xff"));
    assert!(r.starts_with(b"501 "));
}

#[test]
fn rights_matrix() {
    let (_d, ctx) = fixture();
    let boss = session(&ctx, "boss", "client1.com");
    let joe = session(&ctx, "joe", "client1.com");
    let denied = "501 Not enough access rights";
    // (line, boss (domain admin of client1.com), joe (no rights))
    let cases: &[(&str, &str, &str)] = &[
        ("ListAccounts", "200", denied),
        ("ListAccounts example.com", denied, denied),
        ("GetAccountSettings *", "200", "200"),
        ("GetAccountEffectiveSettings *", "200", "200"),
        ("GetAccountInfo * Key LastLogin", "200", "200"),
        ("GetAccountSettings postmaster@example.com", denied, denied),
        ("GetAccountSettings boss", "200", denied),
        ("CreateAccount new1", "200 OK", denied),
        ("CreateGroup g1", denied, denied),
        // Own password: PWDAllowed is YES by default; another's needs BasicSettings.
        ("SetAccountPassword joe To x", denied, "200"),
        ("SetAccountPassword boss To x", "200", denied),
        ("GetAccountRules boss", "200", denied),
        ("GetAccountRules joe", "200", "200"),
        // A user's own rules within RulesAllowed (No by default); another's are not theirs.
        (
            "SetAccountRules boss ((1,\"r\",(),((\"Discard\"))))",
            "501 Rule 'r': your account may not",
            denied,
        ),
        ("ListDomains", denied, denied),
        ("MainDomainName", denied, denied),
        ("CreateDomain x.com", denied, denied),
        ("GetModule PWD", denied, denied),
        ("SetClientIPs \"127.0.0.1\"", denied, denied),
        ("WriteLog 3 hello", denied, denied),
        ("Shutdown", denied, denied),
        ("ReadLog", denied, denied),
        ("SetAccountRights joe (Domain)", denied, denied),
        ("GetDialupSchedule", denied, denied),
    ];
    for (line, b, j) in cases {
        assert!(
            run(&ctx, &boss, line).starts_with(b),
            "boss: {line}: {}",
            run(&ctx, &boss, line)
        );
        assert!(
            run(&ctx, &joe, line).starts_with(j),
            "joe: {line}: {}",
            run(&ctx, &joe, line)
        );
    }
}

#[test]
fn domain_admin_applies_only_allowed_settings() {
    let (_d, ctx) = fixture();
    let boss = session(&ctx, "boss", "client1.com");
    assert_eq!(
        run(
            &ctx,
            &boss,
            r#"CreateAccount ann {RealName="Ann"; MaxAccountSize=1G;}"#
        ),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &boss, "GetAccountSettings ann"),
        "200 data follow\r\n{RealName=Ann;}"
    );
    assert_eq!(
        run(&ctx, &boss, "UpdateAccountSettings ann {MaxAccountSize=1;}"),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &boss, "GetAccountSettings ann@client1.com"),
        "200 data follow\r\n{RealName=Ann;}"
    );
}

#[test]
fn server_rights_count_only_in_the_main_domain() {
    let (_d, ctx) = fixture();
    let mut fake = session(&ctx, "joe", "client1.com");
    fake.rights = vec!["Master".into()];
    assert_eq!(
        run(&ctx, &fake, "ListDomains"),
        "501 Not enough access rights"
    );
    let pm = session(&ctx, "postmaster", "example.com");
    assert_eq!(
        run(&ctx, &pm, "SetAccountRights joe@client1.com (Domain)"),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &pm, "GetAccountRights joe@client1.com"),
        "200 data follow\r\n(Domain)"
    );
}

#[test]
fn passwords_aliases_groups_forwarders_rules() {
    let (_d, ctx) = fixture();
    let pm = session(&ctx, "postmaster", "example.com");
    assert_eq!(
        run(&ctx, &pm, "SetAccountPassword joe@client1.com To n3w"),
        "200 OK"
    );
    assert_eq!(
        run(
            &ctx,
            &pm,
            "VerifyAccountPassword joe@client1.com PASSWORD n3w"
        ),
        "200 OK"
    );
    assert_eq!(
        run(
            &ctx,
            &pm,
            "VerifyAccountPassword joe@client1.com PASSWORD j"
        ),
        "501 Incorrect password"
    );
    assert_eq!(
        run(&ctx, &pm, "SetAccountAliases joe@client1.com (joseph)"),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &pm, "GetAccountAliases joe@client1.com"),
        "200 data follow\r\n(joseph)"
    );
    assert_eq!(
        run(&ctx, &pm, "CreateGroup staff {RealName=Staff;}"),
        "200 OK"
    );
    assert_eq!(run(&ctx, &pm, "ListGroups"), "200 data follow\r\n(staff)");
    assert_eq!(run(&ctx, &pm, "RenameGroup staff into team"), "200 OK");
    assert_eq!(
        run(&ctx, &pm, "CreateForwarder fw TO \"x@y.com\""),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &pm, "GetForwarder fw"),
        "200 data follow\r\n\"x@y.com\""
    );
    assert_eq!(run(&ctx, &pm, "DeleteForwarder fw"), "200 OK");
    let rules = r#"((5, "Junk", (("Subject", is, "*spam*")), ((Discard))))"#;
    assert_eq!(
        run(&ctx, &pm, &format!("SetAccountRules * {rules}")),
        "200 OK"
    );
    assert!(run(&ctx, &pm, "GetAccountRules *").contains("Junk"));
    assert!(run(&ctx, &pm, "SetAccountRules * ((1))").starts_with("501 "));
    assert!(run(&ctx, &pm, "GetAccountLocation postmaster").ends_with("postmaster.macnt\""));
}

#[test]
fn server_settings_commands() {
    let (_d, ctx) = fixture();
    ctx.modules.register(crate::modules::pwd::module_decl());
    let pm = session(&ctx, "postmaster", "example.com");
    assert!(run(&ctx, &pm, "GetModule pwd").contains("Channels=10;"));
    assert_eq!(run(&ctx, &pm, "UpdateModule PWD {Channels=3;}"), "200 OK");
    assert!(run(&ctx, &pm, "GetModule PWD").contains("Channels=3;"));
    assert!(run(&ctx, &pm, "UpdateModule PWD {Bogus=1;}").starts_with("501 Unknown setting"));
    assert!(run(&ctx, &pm, "GetModule SMTP").starts_with("501 Unknown module"));
    assert_eq!(run(&ctx, &pm, "GetClientIPs"), "200 data follow\r\n\"\"");
    assert_eq!(
        run(&ctx, &pm, r#"SetClientIPs "127.0.0.1\e10.0.0.1-10.0.0.9""#),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &pm, "GetClientIPs"),
        "200 data follow\r\n\"127.0.0.1\\e10.0.0.1-10.0.0.9\""
    );
    assert!(run(&ctx, &pm, r#"SetBlacklistedIPs "not.an.ip""#).starts_with("501 line 1"));
    assert_eq!(
        run(&ctx, &pm, "SetProtection {DenyNonClient=YES;}"),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &pm, "GetProtection"),
        "200 data follow\r\n{DenyNonClient=YES;}"
    );
    assert_eq!(run(&ctx, &pm, r#"SetRouterTable "<a@x>=b@y\e""#), "200 OK");
    assert_eq!(run(&ctx, &pm, "GetDialupSchedule"), "200 data follow\r\n()");
    assert_eq!(
        run(
            &ctx,
            &pm,
            r#"SetDialupSchedule ({Days="Every Day"; When="08:00-18:00"; Pause=900;})"#
        ),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &pm, "GetDialupSchedule"),
        "200 data follow\r\n({Days=\"Every Day\";When=\"08:00-18:00\";Pause=900;})"
    );
    assert!(run(&ctx, &pm, "SetDialupSchedule ({Days=Never;})").starts_with("501 element 1"));
    // No logger, status or shutdown wired in this context: honest errors, not success.
    assert!(run(&ctx, &pm, "WriteLog 3 hi").starts_with("501 "));
    assert!(run(&ctx, &pm, "GetServerStatus").starts_with("501 "));
    assert!(run(&ctx, &pm, "Shutdown").starts_with("501 "));
}

struct Log;

impl LogAccess for Log {
    fn write(&self, _: u8, _: &str) {}
    fn read(&self, q: &LogQuery) -> Result<Vec<LogRecord>, String> {
        Ok(vec![LogRecord {
            id: "2024-01-31:7".into(),
            time: "12:00:00".into(),
            level: q.level.unwrap_or(5),
            tag: q.tag.clone().unwrap_or_default(),
            text: format!("limit {}", q.limit.unwrap_or(0)),
        }])
    }
}

#[test]
fn route_and_router_table_check() {
    let (_d, mut ctx) = fixture();
    let pm = session(&ctx, "postmaster", "example.com");
    let joe = session(&ctx, "joe", "client1.com");
    assert_eq!(
        run(&ctx, &pm, "Route joe@client1.com"),
        "501 The Router is not available"
    );
    let router = crate::kernel::router::Router::new(ctx.store.clone(), None);
    ctx.router = Some(Arc::new(router));
    assert_eq!(
        run(&ctx, &pm, r#"SetRouterTable "<sales> = joe@client1.com\e""#),
        "200 OK"
    );
    assert_eq!(
        run(&ctx, &pm, "Route sales@example.com"),
        "200 data follow\r\n(LOCAL,\"joe@client1.com\",INBOX)"
    );
    assert_eq!(
        run(&ctx, &pm, "Route x@other.org"),
        "200 data follow\r\n(SMTP,\"other.org\",\"x@other.org\")"
    );
    assert_eq!(
        run(&ctx, &pm, "Route nobody@client1.com"),
        "501 unknown user account: nobody@client1.com"
    );
    assert_eq!(
        run(&ctx, &joe, "Route x@other.org"),
        "501 Not enough access rights"
    );
    assert_eq!(
        run(&ctx, &pm, r#"SetRouterTable "a.com = b.com\e*.x*.com = y""#),
        "501 line 2: only one '*' is allowed in a record"
    );
    assert_eq!(
        run(&ctx, &pm, "GetRouterTable"),
        "200 data follow\r\n\"<sales> = joe@client1.com\\e\""
    );
}

#[test]
fn callbacks_are_used() {
    let (_d, mut ctx) = fixture();
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopped);
    ctx.shutdown = Some(Arc::new(move || flag.store(true, Ordering::SeqCst)));
    ctx.status = Some(Arc::new(|| {
        let mut d = Dict::new();
        d.insert(b"Version".to_vec(), Value::str("0.1.0"));
        d
    }));
    ctx.log = Some(Arc::new(Log));
    let pm = session(&ctx, "postmaster", "example.com");
    assert_eq!(
        run(&ctx, &pm, "GetServerStatus"),
        "200 data follow\r\n{Version=\"0.1.0\";}"
    );
    assert_eq!(run(&ctx, &pm, "WRITELOG 3 \"a record\""), "200 OK");
    assert_eq!(
        run(&ctx, &pm, "ReadLog LEVEL 2 TAG SMTP DAY 2024-01-31"),
        "200 data follow\r\n({Id=\"2024-01-31:7\";Time=\"12:00:00\";Level=2;Tag=SMTP;Text=\"limit 1000\";})"
    );
    assert!(run(&ctx, &pm, "ReadLog DAY yesterday").starts_with("501 DAY"));
    assert!(run(&ctx, &pm, "ReadLog LEVEL 1 LEVEL 2").starts_with("501 LEVEL is given twice"));
    assert!(run(&ctx, &pm, "ReadLog COLOR red").starts_with("501 Unknown ReadLog keyword"));
    assert_eq!(run(&ctx, &pm, "Shutdown"), "200 OK");
    assert!(stopped.load(Ordering::SeqCst));
}

#[test]
fn table_covers_the_guide() {
    let guide = table::SECTIONS
        .iter()
        .filter(|s| !s.title.starts_with("Extensions"))
        .flat_map(|s| s.commands.iter())
        .count();
    assert_eq!(guide, table::GUIDE_COMMANDS);
    let mut seen = std::collections::HashSet::new();
    for c in table::all() {
        for n in std::iter::once(c.name)
            .chain(c.aliases.iter().copied())
            .chain(c.legacy.iter().copied())
        {
            assert!(seen.insert(n.to_ascii_lowercase()), "duplicate name {n}");
        }
    }
    // spec B Appendix A: 39 distinct alias strings, of which `gtacnt`/`upddmn` are printed twice
    // and mapped to their first command.
    let aliases: usize = table::all().map(|c| c.aliases.len()).sum();
    assert_eq!(aliases, 39);
}

fn docs_markdown() -> String {
    let mut out = String::from(DOCS_HEADER);
    for s in table::SECTIONS {
        out.push_str(&format!("\n## {}\n\n", s.title));
        for c in s.commands {
            out.push_str(&format!("### {}\n\n```\n{}\n```\n", c.name, c.syntax));
            if !c.aliases.is_empty() {
                out.push_str(&format!("Short name: `{}`. ", c.aliases.join("`, `")));
            }
            if !c.legacy.is_empty() {
                out.push_str(&format!("Also accepted: `{}`. ", c.legacy.join("`, `")));
            }
            out.push_str(&format!("{}\n\nRights: {}. ", c.doc, need_text(c.need)));
            match c.state {
                State::Implemented(_) => out.push_str("Status: implemented.\n\n"),
                State::Planned(by) => out.push_str(&format!(
                    "Status: planned — {by}; until then `501 Unknown command`.\n\n"
                )),
            }
        }
    }
    out
}

fn need_text(n: Need) -> &'static str {
    n.doc()
}

const DOCS_HEADER: &str = include_str!("docs_header.md");

/// `docs/cli.md` is generated from the table; on a mismatch the expected text is written to
/// `docs/cli.md.failed`.
#[test]
fn docs_match_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
    let want = docs_markdown();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let failed = path.with_extension("md.failed");
        std::fs::write(&failed, &want).unwrap();
        panic!(
            "docs/cli.md is stale; the expected text is in {}",
            failed.display()
        );
    }
}

#[test]
fn rules_commands_check_the_rules() {
    let (_d, ctx) = fixture();
    let pm = session(&ctx, "postmaster", "example.com");
    assert_eq!(run(&ctx, &pm, "GetServerRules"), "200 data follow\r\n()");
    let rules = r#"((5, Scan, (("Any Route", is, "*")), ((ExternalFilter))))"#;
    assert_eq!(run(&ctx, &pm, &format!("SetServerRules {rules}")), "200 OK");
    assert_eq!(
        run(&ctx, &pm, "GetServerRules"),
        "200 data follow\r\n((5,Scan,((\"Any Route\",is,\"*\")),((ExternalFilter))))"
    );
    assert_eq!(
        run(
            &ctx,
            &pm,
            "SetServerRules ((5, Bad, ((Colour, is, red)), ()))"
        ),
        "501 Rule 'Bad': condition 1: unknown condition 'Colour'"
    );
    // Server-only elements are refused in account rules.
    assert_eq!(
        run(&ctx, &pm, &format!("SetAccountRules * {rules}")),
        "501 Rule 'Scan': 'Any Route' is for Server-Wide Rules only"
    );
    assert_eq!(
        run(
            &ctx,
            &pm,
            "SetAccountRules * ((5, L, (), ((\"Write To Log\", hi))))"
        ),
        "200 OK"
    );
}
