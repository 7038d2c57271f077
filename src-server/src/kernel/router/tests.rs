//! Router tests: the guide's own examples (guide.txt:10010-10436, 3332-3405, 12077-12326), one
//! per record form, then objects, unknown names, direct addressing, relaying, loops and
//! traversal attempts.

use super::address::{self, Parsed};
use super::table;
use super::*;
use crate::format::dict;
use crate::store::AccountType;

fn d(pairs: &[(&str, &str)]) -> Dict {
    match dict(pairs.iter().map(|(k, v)| (*k, Value::str(v)))) {
        Value::Dict(d) => d,
        _ => Dict::new(),
    }
}

struct Fx {
    _dir: tempfile::TempDir,
    store: Store,
    router: Router,
}

fn fixture(main: &str) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), main).unwrap();
    let router = Router::new(store.clone(), None);
    Fx {
        _dir: dir,
        store,
        router,
    }
}

impl Fx {
    fn account(&self, dom: &str, name: &str) {
        self.store
            .create_account(dom, name, AccountType::MultiMailbox, Dict::new())
            .unwrap();
    }
    fn table(&self, text: &str) {
        self.store
            .set_server_settings(TABLE_SETTING, &Value::str(text))
            .unwrap();
    }
    /// The CLI triple and the relay flag, or the error text.
    fn route(&self, addr: &str) -> Result<([String; 3], bool), RouteError> {
        self.router.route(addr).map(|r| (r.cli_triple(), r.relay))
    }
    fn to(&self, addr: &str) -> [String; 3] {
        match self.route(addr) {
            Ok((t, _)) => t,
            Err(e) => panic!("{addr}: {e}"),
        }
    }
    fn relay(&self, addr: &str) -> bool {
        self.route(addr).unwrap_or_else(|e| panic!("{addr}: {e}")).1
    }
}

fn t(a: &str, b: &str, c: &str) -> [String; 3] {
    [a.to_string(), b.to_string(), c.to_string()]
}
fn local(account_at_domain: &str) -> [String; 3] {
    t("LOCAL", account_at_domain, "INBOX")
}
fn smtp(host: &str, addr: &str) -> [String; 3] {
    t("SMTP", host, addr)
}
const NULL: [&str; 3] = ["SYSTEM", "NULL", ""];

fn p(local: &str, domain: &str) -> Parsed {
    Parsed {
        local: local.into(),
        domain: domain.into(),
    }
}

// ---------------------------------------------------------------- address parsing

#[test]
fn address_forms_of_the_guide() {
    // guide.txt:10031-10052: all three give domain zzzz, local xxxx@yyyyy (in % notation).
    for a in [
        "<@zzzz:xxxx@yyyyy>",
        "zzzz!yyyyy!xxxx",
        "xxxx%yyyyy@zzzz",
        "xxxx@yyyyy@zzzz",
    ] {
        assert_eq!(address::parse(a).unwrap(), p("xxxx%yyyyy", "zzzz"), "{a}");
    }
    assert_eq!(
        address::parse("support@stalker.com").unwrap(),
        p("support", "stalker.com")
    );
    assert_eq!(
        address::parse("@a,@b:x@y").unwrap(),
        p("x%y%b", "a"),
        "hops a, then b, then y"
    );
    assert_eq!(address::parse("a!b!c!u").unwrap(), p("u%c%b", "a"));
    assert_eq!(address::parse("x%y%z").unwrap(), p("x%y", "z"));
    assert_eq!(address::parse(" <john> ").unwrap(), p("john", ""));
    assert_eq!(
        address::parse(r#""requests#staff"@hq.client.com"#).unwrap(),
        p(r#""requests#staff""#, "hq.client.com")
    );
    assert_eq!(
        address::parse(r#""a@b"@c.com"#).unwrap(),
        p(r#""a@b""#, "c.com"),
        "a quoted @ is no route"
    );
    assert_eq!(
        address::parse("u@[1.2.3.4:26]").unwrap().domain,
        "[1.2.3.4:26]"
    );
    assert_eq!(address::parse("u@[IPv6:::1]").unwrap().domain, "[IPv6:::1]");
    assert_eq!(address::unquote(r#""execall\ -u\ x""#), "execall -u x");
}

#[test]
fn garbage_addresses_are_bad() {
    let long = format!("{}@x.com", "a".repeat(2000));
    for a in [
        "",
        "<>",
        "<a@b.com",
        "a@",
        "a%",
        "@x.com",
        "a@b c.com",
        "a\0b@c.com",
        "a\r\n@c.com",
        "a@[1.2.3]",
        "a@[1.2.3.4:0]",
        "a@[1.2.3.4",
        "\"unclosed@x.com",
        "@a:",
        "@a,b:x@y",
        "a@..b.com",
        "a@.b.com",
        "a!!b",
        "a@b/c.com",
        long.as_str(),
    ] {
        assert!(
            matches!(address::parse(a), Err(RouteError::BadAddress(_))),
            "{a:?}"
        );
    }
}

#[test]
fn ip_literals() {
    use std::net::{IpAddr, Ipv4Addr};
    let ip = IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4));
    assert_eq!(address::ip_literal("[1.2.3.4]"), Some((ip, None)));
    assert_eq!(address::ip_literal("[1.2.3.4:26]"), Some((ip, Some(26))));
    assert!(address::ip_literal("[::1]").is_some());
    assert!(address::ip_literal("[IPv6:::1]").is_some());
    assert!(address::ip_literal("[x]").is_none());
    assert!(address::bare_ip("10.34.45.67"));
    assert!(!address::bare_ip("10.34.45"));
}

// ---------------------------------------------------------------- table syntax

const GUIDE_TABLE: &str = "fax.stalker.co      = stalker.com       ; -> to the same domain
hq.stalker.com      = newhq.stalker.com ; -> to some other server
Relay:*.test.com    = stalker.com       ; aaa.test.com, bbb.test.com
; just a comment line
<sales>             = john              ; simple alias
<sales@client1.com> = sales-client1     ; simple foreign alias
<info@client1.com>  = info@otherhost.com; account -> other account
<*@client2.com>     = *.cl2             ; sales@.. -> sales.cl2
test.com            = Unified.local     ; unified Domain-Wide Account";

#[test]
fn table_syntax() {
    let (t, errors) = table::parse(GUIDE_TABLE);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(t.records.len(), 8);
    assert_eq!(t.records[2].relay, table::RelayMode::Relay);
    assert_eq!(t.records[5].right, "info@otherhost.com");
    assert_eq!(
        t.records[4].left,
        table::Left::Alias {
            local: "sales".into(),
            domain: "client1.com".into()
        }
    );
    let (t, errors) = table::parse(table::DEFAULT_TABLE);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(t.records.len(), 4);
    for (line, mode) in [
        ("Relay:a.com = b.com", table::RelayMode::Relay),
        ("R:a.com = b.com", table::RelayMode::Relay),
        ("NoRelay:a.com = b.com", table::RelayMode::NoRelay),
        ("n:a.com = b.com", table::RelayMode::NoRelay),
        (
            "RelayAll:<r-*@a.com> = r-*@b.com",
            table::RelayMode::RelayAll,
        ),
        ("a.com = b.com", table::RelayMode::Relay),
    ] {
        let (t, e) = table::parse(line);
        assert!(e.is_empty(), "{line}: {e:?}");
        assert_eq!(t.records[0].relay, mode, "{line}");
    }
    assert!(table::validate("a.com = b.com\r\n\r\n; c\n  \n<x> = y ; z").is_ok());
}

#[test]
fn table_errors_name_their_line() {
    for (text, want) in [
        ("a.com = b.com\n*.a*.com = b.com", "line 2: only one '*'"),
        ("<x*@d*.com> = y", "line 1: only one '*'"),
        ("<x@d*.com> = y", "line 1: '*' may stand only"),
        ("a.com b.com", "line 1: no '='"),
        ("<x> = ", "line 1: an alias record needs"),
        ("a.com = *.b.com", "line 1: '*' in the right part"),
        ("<x = y", "line 1: an alias left part must end"),
        ("a b = c", "line 1: 'a b' is neither"),
        (
            "postmaster@x.test = postmaster",
            "line 1: 'postmaster@x.test' is neither",
        ),
        ("= b.com", "line 1: empty left part"),
        ("<x> = a@", "line 1: right part: bad address"),
        ("a.com = b c", "line 1: right part"),
        ("a.com = b\u{1}c", "line 1: control"),
    ] {
        let e = table::validate(text).unwrap_err();
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
    assert!(table::validate(&"a".repeat(table::MAX_TABLE + 1)).is_err());
}

#[test]
fn wildcards_match_case_insensitively() {
    assert_eq!(
        table::wild_match("*.test.com", "AAA.Test.COM").as_deref(),
        Some("AAA")
    );
    assert_eq!(
        table::wild_match("system-*.x", "system-abc.x").as_deref(),
        Some("abc")
    );
    assert_eq!(table::wild_match("a*a", "a").as_deref(), None);
    assert_eq!(table::wild_match("abc", "ABC").as_deref(), Some(""));
    assert_eq!(table::wild_match("é*", "ex"), None);
}

// ---------------------------------------------------------------- the guide's table

#[test]
fn the_guide_example_table() {
    let f = fixture("stalker.com");
    for a in ["john", "sales-client1", "sales.cl2", "unified", "x"] {
        f.account("stalker.com", a);
    }
    f.table(GUIDE_TABLE);
    assert_eq!(f.to("john@fax.stalker.co"), local("john@stalker.com"));
    assert_eq!(
        f.to("u@hq.stalker.com"),
        smtp("newhq.stalker.com", "u@newhq.stalker.com")
    );
    assert_eq!(f.to("x@aaa.test.com"), local("x@stalker.com"));
    assert_eq!(f.to("sales@stalker.com"), local("john@stalker.com"));
    assert_eq!(
        f.to("Sales@Client1.com"),
        local("sales-client1@stalker.com")
    );
    assert_eq!(
        f.to("info@client1.com"),
        smtp("otherhost.com", "info@otherhost.com")
    );
    assert_eq!(f.to("sales@client2.com"), local("sales.cl2@stalker.com"));
    assert_eq!(f.to("abc@test.com"), local("unified@stalker.com"));
    // guide.txt:10059-10066: main-domain cut-off, then the local part routes.
    assert_eq!(
        f.route("support@stalker.com").unwrap_err(),
        RouteError::UnknownUser("support@stalker.com".into())
    );
    assert_eq!(
        f.to("<@stalker.com:sales@gamma.com>"),
        smtp("gamma.com", "sales@gamma.com")
    );
    assert!(!f.relay("<@stalker.com:sales@gamma.com>"));
    assert!(f.relay("info@client1.com"));
}

// ---------------------------------------------------------------- one test per record form

fn guide_fixture() -> Fx {
    let f = fixture("mycompany.com");
    for a in [
        "john",
        "bill",
        "postmaster",
        "sales-client1",
        "cl5-sales",
        "public",
        "unified",
        "cl1",
    ] {
        f.account("mycompany.com", a);
    }
    f.store.create_domain("client.com", Dict::new()).unwrap();
    f.account("client.com", "bill");
    f.account("client.com", "xyz");
    f.store.create_domain("dept1.xyz.com", Dict::new()).unwrap();
    f.account("dept1.xyz.com", "u");
    f
}

#[test]
fn domain_level_records() {
    let f = guide_fixture();
    let case = |table: &str, addr: &str, want: [String; 3]| {
        f.table(table);
        assert_eq!(f.to(addr), want, "{table} / {addr}");
    };
    case(
        "hq.stalker.com = twisted.stalker.com",
        "u@hq.stalker.com",
        smtp("twisted.stalker.com", "u@twisted.stalker.com"),
    );
    case(
        "hq.stalker.com = hq.stalker.com@relay.stalker.com",
        "u@hq.stalker.com",
        smtp("relay.stalker.com", "u%hq.stalker.com@relay.stalker.com"),
    );
    assert!(
        !f.relay("u@hq.stalker.com"),
        "a routed result is not simple"
    );
    case(
        "*.old_company.com = new_company.com",
        "u@a.b.old_company.com",
        smtp("new_company.com", "u@new_company.com"),
    );
    case(
        "*.mycompany.com = mycompany.com",
        "john@mail.mycompany.com",
        local("john@mycompany.com"),
    );
    case(
        "*.old_company.com = *.new_company.com",
        "u@host5.old_company.com",
        smtp("host5.new_company.com", "u@host5.new_company.com"),
    );
    case(
        "system-*.mycompany.com = uu*.uucp",
        "u@system-abc.mycompany.com",
        smtp("uuabc.uucp", "u@uuabc.uucp"),
    );
    case(
        "localhost = ",
        "john@localhost",
        local("john@mycompany.com"),
    );
    case(
        "client1.com = Cl1.local",
        "abcdef@client1.com",
        local("cl1@mycompany.com"),
    );
}

#[test]
fn alias_records() {
    let f = guide_fixture();
    let case = |table: &str, addr: &str, want: [String; 3]| {
        f.table(table);
        assert_eq!(f.to(addr), want, "{table} / {addr}");
    };
    case(
        "<sales> = Bill",
        "sales@mycompany.com",
        local("bill@mycompany.com"),
    );
    case(
        "<sales> = Bill@thatcompany.com",
        "sales@mycompany.com",
        smtp("thatcompany.com", "Bill@thatcompany.com"),
    );
    case(
        "<dept-*> = postmaster@*-dept.mycompany.com",
        "dept-sales@mycompany.com",
        smtp(
            "sales-dept.mycompany.com",
            "postmaster@sales-dept.mycompany.com",
        ),
    );
    case(
        "<sales@client.com> = Bill@client.com",
        "sales@client.com",
        local("bill@client.com"),
    );
    case(
        "<sales@client.com> = Bill",
        "sales@client.com",
        local("bill@mycompany.com"),
    );
    let foreign = "<sales@client1.com> = sales-client1\nclient1.com = new.client1.com";
    case(
        foreign,
        "sales@client1.com",
        local("sales-client1@mycompany.com"),
    );
    case(
        foreign,
        "info@client1.com",
        smtp("new.client1.com", "info@new.client1.com"),
    );
    case(
        "<*@client5.com> = cl5-*",
        "sales@client5.com",
        local("cl5-sales@mycompany.com"),
    );
    case(
        "<sales> = sales#public",
        "sales@mycompany.com",
        t("LOCAL", "public@mycompany.com", "sales"),
    );
    case(
        "<support@client.com> = \"requests#staff\"@hq.client.com",
        "support@client.com",
        smtp("hq.client.com", "\"requests#staff\"@hq.client.com"),
    );
    // guide.txt:10229-10232: an alias with the Main Domain name never applies.
    f.table("<sales@mycompany.com> = Bill");
    assert!(matches!(
        f.route("sales@mycompany.com"),
        Err(RouteError::UnknownUser(_))
    ));
}

#[test]
fn a_wildcard_match_cannot_add_a_route() {
    let f = guide_fixture();
    f.table("<*@client5.com> = cl5-*");
    for a in [r#""a@evil.com"@client5.com"#, r#""a%evil.com"@client5.com"#] {
        assert!(matches!(f.route(a), Err(RouteError::BadAddress(_))), "{a}");
    }
}

#[test]
fn special_addresses() {
    let f = guide_fixture();
    let null = NULL.map(str::to_string);
    let error = t("SYSTEM", "ERROR", "Blacklisted Address");
    f.table("bad.company.com = null\n<junk> = null");
    assert_eq!(f.to("x@bad.company.com"), null);
    assert_eq!(f.to("junk@mycompany.com"), null);
    f.table("bad.company.com = error\n<junk> = error");
    assert_eq!(f.to("x@bad.company.com"), error);
    assert_eq!(f.to("junk@mycompany.com"), error);
    assert_eq!(f.to("MAILER-DAEMON@mycompany.com"), null);
    assert_eq!(f.to("null"), null);
    assert_eq!(f.to("x@NULL"), null);
    assert_eq!(f.to("blacklisted@mycompany.com"), error);
    assert_eq!(f.to("x@BlackListed"), error);
    assert_eq!(
        f.to("spamtrap@mycompany.com"),
        t("SYSTEM", "ERROR", "spamtrap")
    );
    f.table("dept1.xyz.com = dept1.xyz.com.here\ndept2.xyz.com = dept2.xyz.com.here\n*.xyz.com = *.abc.com");
    assert_eq!(f.to("u@dept1.xyz.com"), local("u@dept1.xyz.com"));
    assert_eq!(
        f.to("u@dept3.xyz.com"),
        smtp("dept3.abc.com", "u@dept3.abc.com")
    );
    assert!(
        matches!(f.route("u@dept2.xyz.com"), Err(RouteError::BadAddress(_))),
        "not a local domain"
    );
}

#[test]
fn default_records() {
    let f = guide_fixture();
    assert_eq!(
        f.to("root@mycompany.com"),
        local("postmaster@mycompany.com")
    );
    assert_eq!(f.to("john@localhost"), local("john@mycompany.com"));
    assert_eq!(f.to("john@mailhost"), local("john@mycompany.com"));
    assert_eq!(
        f.to("blacklist-admin7@blacklisted"),
        local("postmaster@mycompany.com")
    );
    f.table("");
    assert!(
        f.route("root@mycompany.com").is_err(),
        "an empty table has no defaults"
    );
}

#[test]
fn ip_address_domains() {
    let f = guide_fixture();
    let f = Fx {
        router: Router::new(f.store.clone(), None)
            .with_local_ips(vec!["192.0.2.7".parse().unwrap()]),
        ..f
    };
    assert_eq!(
        f.to("u@10.34.45.67"),
        smtp("[10.34.45.67]", "u@[10.34.45.67]")
    );
    assert_eq!(f.to("john@[127.0.0.1]"), local("john@mycompany.com"));
    assert_eq!(f.to("john@192.0.2.7"), local("john@mycompany.com"));
    assert_eq!(
        f.to("u@[192.0.0.5:26]"),
        smtp("[192.0.0.5:26]", "u@[192.0.0.5]")
    );
    assert_eq!(
        f.to("u@[IPv6:2001:db8::1]"),
        smtp("[IPv6:2001:db8::1]", "u@[IPv6:2001:db8::1]")
    );
    // Records may assume the brackets (guide.txt:10330-10333).
    f.table("[10.34.45.67] = other.com\nlocal.com = [192.0.0.5:26]");
    assert_eq!(f.to("u@10.34.45.67"), smtp("other.com", "u@other.com"));
    assert_eq!(f.to("u@local.com"), smtp("[192.0.0.5:26]", "u@[192.0.0.5]"));
}

#[test]
fn smtp_and_pipe_module_routes() {
    let f = guide_fixture();
    f.table("secret.stalker.com = mail.stalker.com.26.smtp\ntest.dom = 127.0.0.2.2526.smtp\nclient1.com = client1.com@relay.smtp");
    assert_eq!(
        f.to("u@secret.stalker.com"),
        smtp("mail.stalker.com.26.smtp", "u@mail.stalker.com")
    );
    assert_eq!(
        f.to("u@test.dom"),
        smtp("127.0.0.2.2526.smtp", "u@127.0.0.2")
    );
    assert_eq!(f.to("user@client1.com"), smtp("relay", "user@client1.com"));
    f.table("<*@somedomain> = exec*@pipe");
    assert_eq!(f.to("joe@somedomain"), t("PIPE", "execjoe", "execjoe@pipe"));
    f.table(r#"<*@somedomain> = "execall\ -u\ *"@pipe"#);
    assert_eq!(
        f.to("joe@somedomain"),
        t("PIPE", "execall -u joe", r#""execall\ -u\ joe"@pipe"#)
    );
    assert_eq!(
        f.to("abcdef%xyz@client.com.domain"),
        local("xyz@client.com")
    );
    assert!(matches!(
        f.route("a@nobody.local"),
        Err(RouteError::UnknownUser(_))
    ));
    assert!(matches!(f.route("u@nodot"), Err(RouteError::BadAddress(_))));
}

#[test]
fn relay_marker() {
    let f = guide_fixture();
    f.table("NoRelay:<user> = user@other.host");
    assert!(!f.relay("user@mycompany.com"));
    f.table("<user> = user@other.host");
    assert!(f.relay("user@mycompany.com"));
    f.table("Relay:clienthost.com = client1.com");
    assert!(f.relay("u@clienthost.com"));
    f.table("RelayAll:<report-*@clienthost.com> = report-*@client1.com");
    assert!(f.relay("report-x@clienthost.com"));
    f.table("<x> = a%b@c.com");
    assert!(
        !f.relay("x@mycompany.com"),
        "Relay: on a routed result sets nothing"
    );
    f.table("RelayAll:<x> = a%b@c.com");
    assert!(f.relay("x@mycompany.com"));
    assert!(!f.relay("u@elsewhere.com"), "no record, no marker");
    // guide.txt:3393-3404: the worked trace.
    f.table(
        "<joe> = joe5@bigprovdier.com\nNoRelay:bigprovdier.com = bigprovdier.com@relay3.com.smtp",
    );
    assert_eq!(
        f.to("joe@mycompany.com"),
        smtp("relay3.com", "joe5@bigprovdier.com")
    );
    assert!(f.relay("joe@mycompany.com"));
    assert!(!f.relay("x@bigprovdier.com"));
}

// ---------------------------------------------------------------- domain objects

#[test]
fn aliases_groups_forwarders_domain_aliases() {
    let f = guide_fixture();
    f.account("mycompany.com", "JohnSmith");
    f.store
        .set_account_aliases("mycompany.com", "JohnSmith", vec!["jsmith".into()])
        .unwrap();
    assert_eq!(
        f.to("jsmith@mycompany.com"),
        local("johnsmith@mycompany.com")
    );
    assert_eq!(f.to("JSmith"), local("johnsmith@mycompany.com"));
    f.store
        .create_group("client.com", "sales", d(&[("RealName", "Sales")]))
        .unwrap();
    assert_eq!(
        f.to("sales@client.com"),
        t("LIST", "sales@client.com", "sales")
    );
    f.store
        .create_forwarder("client.com", "jim", "john@otherdomain.com")
        .unwrap();
    assert_eq!(
        f.to("jim@client.com"),
        smtp("otherdomain.com", "john@otherdomain.com")
    );
    assert!(f.relay("jim@client.com"), "a forwarder is a Relay: record");
    f.store
        .create_forwarder("client.com", "loc", "bill@client.com")
        .unwrap();
    assert_eq!(f.to("loc@client.com"), local("bill@client.com"));
    f.store
        .set_domain_aliases("client.com", vec!["mail.client.com".into()])
        .unwrap();
    assert_eq!(f.to("bill@mail.client.com"), local("bill@client.com"));
    f.table("<sales@client.com> = john");
    assert_eq!(f.to("sales@mail.client.com"), local("john@mycompany.com"));
    f.store
        .set_domain_aliases("mycompany.com", vec!["my.example".into()])
        .unwrap();
    f.table("<sales> = bill");
    assert_eq!(f.to("sales@my.example"), local("bill@mycompany.com"));
}

#[test]
fn unknown_names() {
    let f = guide_fixture();
    let set = |pairs: &[(&str, &str)]| {
        f.store
            .update_domain_settings("client.com", d(pairs))
            .unwrap()
    };
    assert_eq!(
        f.route("jjones@client.com").unwrap_err(),
        RouteError::UnknownUser("jjones@client.com".into())
    );
    set(&[("MailToUnknown", "Discarded")]);
    assert_eq!(f.to("jjones@client.com"), NULL.map(str::to_string));
    set(&[
        ("MailToUnknown", "Rerouted to"),
        ("MailRerouteAddress", "Bad-*@support.company.com"),
    ]);
    assert_eq!(
        f.to("jjones@client.com"),
        smtp("support.company.com", "Bad-jjones@support.company.com")
    );
    set(&[("MailRerouteAddress", "postmaster")]);
    assert_eq!(f.to("jjones@client.com"), local("postmaster@mycompany.com"));
    set(&[("MailRerouteAddress", "*%Unknowns@client.com.domain")]);
    f.account("client.com", "unknowns");
    assert_eq!(f.to("jjones@client.com"), local("unknowns@client.com"));
    set(&[("MailToUnknown", "Accepted and Bounced")]);
    assert_eq!(f.to("jjones@client.com"), local("jjones@client.com"));
}

#[test]
fn mail_to_all() {
    let f = guide_fixture();
    assert!(matches!(
        f.route("all@client.com"),
        Err(RouteError::UnknownUser(_))
    ));
    f.store
        .update_domain_settings("client.com", d(&[("MailToAllAction", "For Everybody")]))
        .unwrap();
    assert_eq!(f.to("ALL@client.com"), t("LIST", "all@client.com", "all"));
}

#[test]
fn direct_mailbox_and_detail() {
    let f = guide_fixture();
    let r = f.router.route("john+jokes@mycompany.com").unwrap();
    assert_eq!(
        r.target,
        Target::Local {
            domain: "mycompany.com".into(),
            account: "john".into(),
            mailbox: None,
            detail: Some("jokes".into())
        }
    );
    assert_eq!(
        f.to("jokes#john@mycompany.com"),
        t("LOCAL", "john@mycompany.com", "jokes")
    );
    assert_eq!(
        f.to("Lists/jokes#john"),
        t("LOCAL", "john@mycompany.com", "Lists/jokes")
    );
    assert_eq!(f.to("inbox#john"), local("john@mycompany.com"));
    f.table("<sales> = bill");
    assert_eq!(
        f.to("sales+q3@mycompany.com"),
        local("bill@mycompany.com"),
        "re-routed"
    );
    assert!(
        matches!(f.route("nobody+x@client.com"), Err(RouteError::UnknownUser(u)) if u == "nobody@client.com")
    );
    let set = |pairs: &[(&str, &str)]| {
        f.store
            .set_server_settings(LOCAL_MODULE, &Value::Dict(d(pairs)))
            .unwrap()
    };
    set(&[("AccountDetail", "Direct Mailbox")]);
    assert_eq!(
        f.to("john+jokes"),
        t("LOCAL", "john@mycompany.com", "jokes")
    );
    set(&[("AccountDetail", "Disabled")]);
    assert!(matches!(
        f.route("john+jokes"),
        Err(RouteError::UnknownUser(_))
    ));
    set(&[("DirectMailbox", "NO")]);
    assert!(matches!(
        f.route("jokes#john"),
        Err(RouteError::UnknownUser(_))
    ));
    assert!(matches!(
        f.route("jokes#nobody"),
        Err(RouteError::UnknownUser(_))
    ));
}

#[test]
fn percent_routing() {
    let f = guide_fixture();
    assert_eq!(
        f.to("bill%client.com@mycompany.com"),
        local("bill@client.com")
    );
    assert_eq!(f.to("john%mycompany.com"), local("john@mycompany.com"));
    assert_eq!(
        f.to("u%other.com@mycompany.com"),
        smtp("other.com", "u@other.com")
    );
    assert!(!f.relay("u%other.com@mycompany.com"));
    assert_eq!(
        f.to("other.com!u@mycompany.com"),
        smtp("other.com", "u@other.com")
    );
}

#[test]
fn loops_are_detected() {
    let f = guide_fixture();
    f.table("<a> = b\n<b> = a");
    assert_eq!(
        f.route("a@mycompany.com").unwrap_err(),
        RouteError::Loop("a@mycompany.com".into())
    );
    f.table("");
    f.store
        .create_forwarder("client.com", "f1", "f2@client.com")
        .unwrap();
    f.store
        .create_forwarder("client.com", "f2", "f1@client.com")
        .unwrap();
    assert!(matches!(f.route("f1@client.com"), Err(RouteError::Loop(_))));
    f.store
        .update_domain_settings(
            "client.com",
            d(&[
                ("MailToUnknown", "Rerouted to"),
                ("MailRerouteAddress", "x-*@client.com"),
            ]),
        )
        .unwrap();
    assert!(matches!(
        f.route("nobody@client.com"),
        Err(RouteError::Loop(_))
    ));
    f.table("*.a.com = x.*.a.com");
    assert!(matches!(
        f.route("u@b.a.com"),
        Err(RouteError::BadAddress(_) | RouteError::Loop(_))
    ));
}

#[test]
fn traversal_attempts_never_become_names() {
    let f = guide_fixture();
    for mode in ["Rejected", "Discarded", "Accepted and Bounced"] {
        f.store
            .update_domain_settings("client.com", d(&[("MailToUnknown", mode)]))
            .unwrap();
        for a in [
            "../x@client.com",
            "a/b@client.com",
            "..@client.com",
            ".hidden@client.com",
            "a\0b@client.com",
            "../x#bill@client.com",
            "x/../../y#bill@client.com",
            "../bill@client.com.domain",
            "x%../bill@client.com.domain",
            "a@../etc.local",
            "x@..",
        ] {
            match f.route(a) {
                Err(RouteError::BadAddress(_) | RouteError::UnknownUser(_)) => {}
                other => panic!("{mode} {a:?}: {other:?}"),
            }
        }
    }
    f.store
        .set_server_settings(
            LOCAL_MODULE,
            &Value::Dict(d(&[("AccountDetail", "Direct Mailbox")])),
        )
        .unwrap();
    assert!(matches!(
        f.route("bill+../x@client.com"),
        Err(RouteError::BadAddress(_))
    ));
}

#[test]
fn table_changes_apply_at_once() {
    let f = guide_fixture();
    f.table("<x> = john");
    assert_eq!(f.to("x"), local("john@mycompany.com"));
    f.table("<x> = bill");
    assert_eq!(f.to("x"), local("bill@mycompany.com"));
}

/// Any address routes or fails cleanly, and a local target's names are always valid names.
#[test]
fn random_addresses_never_yield_a_path() {
    use proptest::strategy::{Strategy, ValueTree};
    let f = guide_fixture();
    f.table("<*@client5.com> = cl5-*\n*.a.com = *.b.com\n<dept-*> = x-*@client.com");
    f.store
        .update_domain_settings(
            "client.com",
            d(&[("MailToUnknown", "Accepted and Bounced")]),
        )
        .unwrap();
    let strategy = r#"[a-z0-9@%!#+"\\<>:,.\[\]/ *-]{0,40}(@(client\.com|client5\.com|mycompany\.com|x\.a\.com))?"#;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..2000 {
        let addr = strategy.new_tree(&mut runner).unwrap().current();
        if let Ok(Routed {
            target: Target::Local {
                account, mailbox, ..
            },
            ..
        }) = f.router.route(&addr)
        {
            assert!(
                names::validate("account", &account).is_ok(),
                "{addr:?} -> {account:?}"
            );
            if let Some(m) = mailbox {
                assert!(
                    crate::mailbox::names::validate(&m).is_ok(),
                    "{addr:?} -> {m:?}"
                );
            }
        }
    }
}

proptest::proptest! {
    #[test]
    fn any_input_routes_or_errs(s in "\\PC{0,80}") {
        let _ = address::parse(&s);
        let _ = table::parse(&s);
    }
}
