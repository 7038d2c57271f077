use super::*;
use proptest::prelude::*;

fn s(x: &str) -> Value {
    Value::str(x)
}

fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

/// Every example of guide.txt:17405-17490, with the value it must read as.
#[test]
fn guide_examples() {
    let vectors: Vec<(&str, Value)> = vec![
        ("MyName", s("MyName")),
        ("My2ndName", s("My2ndName")),
        (
            r#""My Name with spaces and the . sign""#,
            s("My Name with spaces and the . sign"),
        ),
        (
            r#""a \"string\" within string""#,
            s("a \"string\" within string"),
        ),
        (r#""Single \\ backslash""#, s("Single \\ backslash")),
        (r#""Line1\eLine2""#, s("Line1\nLine2")),
        (r#""TEXT3\rTEXT67\nTEXT78""#, s("TEXT3\rTEXT67\nTEXT78")),
        (
            r#""Line1:\tField1\tField2\eLine2:\tField1\tField2""#,
            s("Line1:\tField1\tField2\nLine2:\tField1\tField2"),
        ),
        (
            r#""Using the \012 - Vertical Tabulation symbol""#,
            s("Using the \x0c - Vertical Tabulation symbol"),
        ),
        (
            r#"(Element1 , "Element2" , "Element 3")"#,
            arr(vec![s("Element1"), s("Element2"), s("Element 3")]),
        ),
        (
            r#"(Element1 , ("Sub Element1", SubElement2) , "Element 3")"#,
            arr(vec![
                s("Element1"),
                arr(vec![s("Sub Element1"), s("SubElement2")]),
                s("Element 3"),
            ]),
        ),
        (
            "(\nElement1  ,\n  (    \"Sub Element1\",\n   SubElement2  )\n  ,\n\"Element 3\"  ) ",
            arr(vec![
                s("Element1"),
                arr(vec![s("Sub Element1"), s("SubElement2")]),
                s("Element 3"),
            ]),
        ),
        (
            r#"{Key1=Element1; Key2 ="Element2" ; "Third Key"="Element 3"; }"#,
            dict([
                ("Key1", s("Element1")),
                ("Key2", s("Element2")),
                ("Third Key", s("Element 3")),
            ]),
        ),
        (
            r#"{Key1=(Elem1,Elem2); Key2={Sub1="XXX 1"; Sub2=X245;}; }"#,
            dict([
                ("Key1", arr(vec![s("Elem1"), s("Elem2")])),
                ("Key2", dict([("Sub1", s("XXX 1")), ("Sub2", s("X245"))])),
            ]),
        ),
        (
            "{\n Key1  =   (Elem1,Elem2)   ;\n  Key2 = {  Sub1 = \"XXX 1\";\n    Sub2=X245;  };\n} ",
            dict([
                ("Key1", arr(vec![s("Elem1"), s("Elem2")])),
                ("Key2", dict([("Sub1", s("XXX 1")), ("Sub2", s("X245"))])),
            ]),
        ),
        // guide.txt:1845: a password with a binary 002 prefix.
        (
            r#"{Password="\002AslUzT1JkPsocc";}"#,
            dict([("Password", Value::str(b"\x02AslUzT1JkPsocc"))]),
        ),
        // guide.txt:5628: GetAccountInfo returns the empty string.
        (r#""""#, s("")),
        ("()", arr(vec![])),
        ("{}", Value::empty_dict()),
        // The lenient atoms of the guide's own CLI samples (guide.txt:7224, 6724).
        ("1.3.6.1.4.1.5678.2.1.1.5.15", s("1.3.6.1.4.1.5678.2.1.1.5.15")),
        ("<BJones@company.com>", s("<BJones@company.com>")),
    ];
    for (text, want) in vectors {
        for ending in ["", "\n", "\r\n"] {
            let input = format!("{text}{ending}");
            assert_eq!(parse(input.as_bytes()), Ok(want.clone()), "input {input:?}");
        }
        // What we write reads back as the same value.
        assert_eq!(parse(&to_bytes(&want)), Ok(want.clone()));
        assert_eq!(parse(&to_pretty(&want)), Ok(want.clone()));
    }
}

#[test]
fn strict_serializer() {
    assert_eq!(to_bytes(&s("MyName")), b"MyName");
    assert_eq!(to_bytes(&s("a.b")), br#""a.b""#);
    assert_eq!(to_bytes(&s("")), br#""""#);
    assert_eq!(to_bytes(&s("x\ny\r\t\"\\")), br#""x\ey\r\t\"\\""#);
    assert_eq!(to_bytes(&Value::str(b"\x02x\x7f")), br#""\002x\127""#);
    assert_eq!(
        to_bytes(&dict([
            ("Key1", arr(vec![s("a"), s("b c")])),
            ("K", s("v"))
        ])),
        br#"{Key1=(a,"b c");K=v;}"#
    );
}

#[test]
fn pretty_layout() {
    let v = dict([
        ("A", s("1")),
        ("B", dict([("C", arr(vec![s("x"), s("y")]))])),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&to_pretty(&v)),
        "{\n  A = 1;\n  B = {\n    C = (x,y);\n  };\n}\n"
    );
}

#[test]
fn sequence_of_arguments() {
    let args = parse_sequence(br#"RenameAccount "user1" into user2 {A=b;}"#).unwrap();
    assert_eq!(
        args,
        vec![
            s("RenameAccount"),
            s("user1"),
            s("into"),
            s("user2"),
            dict([("A", s("b"))])
        ]
    );
    assert_eq!(parse_sequence(b"   ").unwrap(), vec![]);
}

#[test]
fn errors_say_where() {
    let cases: &[(&[u8], usize, &str)] = &[
        (b"\"abc", 4, "the quoted string is not closed"),
        (b"(a,b", 4, "the array is not closed"),
        (b"(a b)", 3, "',' or ')' was expected in an array"),
        (b"{a=b", 4, "the dictionary is not closed"),
        (b"{a b;}", 3, "'=' was expected after a dictionary key"),
        (b"{a=b;a=c;}", 5, "the dictionary has this key twice"),
        (br#""\q""#, 2, "unknown escape in a quoted string"),
        (br#""\12""#, 2, "\\nnn needs three decimal digits"),
        (br#""\300""#, 2, "\\nnn is above 255"),
        (b"a b", 2, "unexpected data after the object"),
        (b"", 0, "an object was expected, the text ended"),
        (b")", 0, "a string was expected"),
        (b"{=a;}", 1, "a string was expected"),
    ];
    for (input, offset, message) in cases {
        let err = parse(input).unwrap_err();
        assert_eq!((err.offset, err.message), (*offset, *message), "{input:?}");
    }
}

#[test]
fn lenient_reading() {
    // Missing final ';' and raw line breaks inside quotes are read.
    assert_eq!(parse(b"{a=b}"), Ok(dict([("a", s("b"))])));
    assert_eq!(parse(b"\"x\ny\""), Ok(s("x\ny")));
}

#[test]
fn depth_is_bounded() {
    let ok = "(".repeat(MAX_DEPTH) + &")".repeat(MAX_DEPTH);
    assert!(parse(ok.as_bytes()).is_ok());
    let deep = "(".repeat(MAX_DEPTH + 1) + &")".repeat(MAX_DEPTH + 1);
    assert_eq!(
        parse(deep.as_bytes()).unwrap_err().message,
        "arrays and dictionaries are nested too deeply"
    );
    // Far deeper input must not exhaust the stack.
    let hostile = "{a=".repeat(100_000);
    assert!(parse(hostile.as_bytes()).is_err());
}

#[test]
fn accessors() {
    let v = parse(br#"{Name="Joe Q"; L=(a);}"#).unwrap();
    assert_eq!(v.get_text("Name").as_deref(), Some("Joe Q"));
    assert_eq!(
        v.get("L").and_then(Value::as_array).map(<[_]>::len),
        Some(1)
    );
    assert!(v.get("Nope").is_none());
    assert!(s("x").get("Name").is_none());
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Str);
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..8), inner), 0..6)
                .prop_map(|pairs| Value::Dict(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn round_trip(v in arb_value()) {
        prop_assert_eq!(parse(&to_bytes(&v)), Ok(v.clone()));
        prop_assert_eq!(parse(&to_pretty(&v)), Ok(v.clone()));
        // Compact output is one line, so it can travel on a CLI line.
        prop_assert!(!to_bytes(&v).contains(&b'\n'));
    }

    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes);
        let _ = parse_sequence(&bytes);
    }
}
