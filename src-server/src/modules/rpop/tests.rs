use super::*;

fn parse(text: &str, unified: bool) -> Result<Option<Remote>, String> {
    Remote::parse(&crate::format::parse(text.as_bytes()).unwrap(), unified)
}

#[test]
fn records_as_the_guide_describes_them() {
    let r = parse(
        r#"{PollEvery=10m; Account=office; Host="pop.provider.com:111"; Password=pw; Leave=Yes; APOP=No;}"#,
        true,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (r.poll_every, r.port, r.host.as_str()),
        (600, 111, "pop.provider.com")
    );
    assert!(r.leave && !r.apop);
    assert_eq!(r.special_header.as_deref(), Some(DEFAULT_SPECIAL_HEADER));
    let back = Remote::parse(&r.to_value(true), true).unwrap().unwrap();
    assert_eq!(back, r);
    let plain = parse(r#"{Account=a; Host=pop.x; SpecialHeader="";}"#, true)
        .unwrap()
        .unwrap();
    assert_eq!((plain.port, plain.special_header), (110, None));
    assert_eq!(
        parse(r#"{PollEvery=never; Account=a; Host=h;}"#, false),
        Ok(None)
    );
    for bad in [
        r#"{Account=a; Host="h:0";}"#,
        r#"{Account=a; Host="../x";}"#,
        r#"{Account=""; Host=h;}"#,
        r#"{Account=a; Host=h; PollEvery=soon;}"#,
        r#"{Account=a; Host=h; Leave=maybe;}"#,
        r#"{Account=a; Host=h; Colour=red;}"#,
    ] {
        assert!(parse(bad, true).is_err(), "{bad}");
    }
    assert!(
        parse(r#"{Account=a; Host=h; SpecialHeader=X-Real-To;}"#, false).is_err(),
        "a user's record has no Special Header"
    );
}

#[test]
fn settings_defaults_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let logger = crate::kernel::log::Logger::open(
        dir.path().join("SystemLogs"),
        crate::kernel::log::LogSettings::default(),
        crate::kernel::clock::SystemClock::shared(),
    )
    .unwrap();
    let decl = module_decl(logger);
    let c = Config::from(&crate::cli::effective(&decl, &Dict::new())).unwrap();
    assert_eq!(c.channels, 2);
    assert!(c.use_apop && c.use_tls && !c.allow_self_poll && c.unified.is_empty());
    assert_eq!((c.delay_hosts, c.delay_accounts), (600, 600));
}

#[test]
fn state_files_are_named_by_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "example.test").unwrap();
    let job = Job {
        owner: Owner::Account("../../etc@example.test".into()),
        remote: parse(r#"{Account="../x"; Host=h;}"#, false)
            .unwrap()
            .unwrap(),
    };
    let p = state_path(&store, &job);
    assert_eq!(p.parent(), Some(dir.path().join("RPOP").as_path()));
    let s = State {
        uids: vec!["a".into(), "b c".into()],
        last: Some("2026-11-23 08:00:00".into()),
    };
    s.save(&p).unwrap();
    let back = State::load(&p).unwrap();
    assert_eq!(back.uids, s.uids);
    assert_eq!(back.last, s.last);
    // None yet is empty; a damaged file is an error, never an empty state (a kept mailbox
    // would be fetched again).
    assert!(State::load(&dir.path().join("none.state"))
        .unwrap()
        .uids
        .is_empty());
    std::fs::write(&p, b"{UIDs=(\"a\"").unwrap();
    assert!(State::load(&p).is_err());
}

#[test]
fn user_limits_bind_users_not_administrators() {
    let eff = crate::format::parse(b"{MinPollPeriodForUsers=30m; MaxAccountsPerUser=1;}").unwrap();
    let limits = UserLimits::from(eff.as_dict().unwrap()).unwrap();
    assert_eq!(
        limits,
        UserLimits {
            min_poll: 1800,
            max_accounts: 1
        }
    );
    let rows = |text: &str| match crate::format::parse(text.as_bytes()).unwrap() {
        Value::Array(a) => a,
        _ => unreachable!(),
    };
    let short = rows("({PollEvery=10m; Account=a; Host=h;})");
    let err = validate_account_records(&short, Some(&limits)).unwrap_err();
    assert!(err.contains("Minimum Poll Period"), "{err}");
    assert_eq!(validate_account_records(&short, None).unwrap().len(), 1);
    let two = rows("({PollEvery=1h; Account=a; Host=h;}, {PollEvery=1h; Account=b; Host=h;}, {PollEvery=never; Account=c; Host=h;})");
    let err = validate_account_records(&two, Some(&limits)).unwrap_err();
    assert!(err.contains("Maximum Number of Accounts"), "{err}");
    assert_eq!(
        validate_account_records(&two[1..], Some(&limits))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(validate_account_records(&two, None).unwrap().len(), 2);
    let bad = crate::format::parse(b"{MinPollPeriodForUsers=soon; MaxAccountsPerUser=1;}").unwrap();
    assert!(UserLimits::from(bad.as_dict().unwrap()).is_err());
}
