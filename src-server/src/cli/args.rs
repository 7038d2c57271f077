//! CLI argument grammar: a command line is a command name followed by data-format objects
//! (guide.txt:5375-5383, spec B §1, §2.7) — atoms, quoted strings, arrays, dictionaries — some of
//! which are keywords (`into`, `TO`, `PASSWORD`, `Key`, `force`, ...).
//!
//! ```text
//! command-line ::= command-name *( SP object )
//! keyword      ::= atom            ; matched case-insensitively, never a quoted string
//! ```
//!
//! A keyword is recognised only when written unquoted, so `RenameAccount "into" into x` renames
//! the account named `into`. The objects are read with the `format` parser's lenient atoms, so
//! `user@domain.com` and `1.3.6.1` need no quotes.
//!
//! Security: the line comes from an authenticated but untrusted client; the parser is bounded by
//! the line length (the session caps it) and `format::MAX_DEPTH`.

use std::borrow::Cow;

use super::CliError;
use crate::format::{self, Dict, Value};

/// One argument: the object and whether it was written as a quoted string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The object.
    pub value: Value,
    /// Whether it was a quoted string (quoted strings are never keywords).
    pub quoted: bool,
}

/// Splits a command line into its command name and the unparsed rest.
pub fn split_command(line: &[u8]) -> (&[u8], &[u8]) {
    let line = line.trim_ascii();
    match line.iter().position(|b| b.is_ascii_whitespace()) {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, &[]),
    }
}

/// The arguments of one command, consumed left to right by the handler.
#[derive(Debug)]
pub struct Args {
    items: Vec<Arg>,
    pos: usize,
}

impl Args {
    /// Parses the text after the command name.
    pub fn parse(text: &[u8]) -> Result<Args, CliError> {
        let mut items = Vec::new();
        let mut rest = text;
        loop {
            let skip = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
            rest = &rest[skip..];
            if rest.is_empty() {
                break;
            }
            let quoted = rest[0] == b'"';
            let (value, used) = format::parse_prefix(rest)
                .map_err(|e| CliError::new(format!("Syntax error: {}", e.message)))?;
            // Two objects glued together (`a"b"`, `(a)x`) are one mistake, not two arguments.
            if rest.get(used).is_some_and(|b| !b.is_ascii_whitespace()) {
                return Err(CliError::new(
                    "Syntax error: a space was expected between parameters",
                ));
            }
            items.push(Arg { value, quoted });
            rest = &rest[used..];
        }
        Ok(Args { items, pos: 0 })
    }

    fn peek(&self) -> Option<&Arg> {
        self.items.get(self.pos)
    }

    /// How many arguments are left.
    pub fn remaining(&self) -> usize {
        self.items.len() - self.pos
    }

    /// Whether the next argument is an unquoted atom equal to `kw` (case-insensitive).
    pub fn is_keyword(&self, kw: &str) -> bool {
        self.peek().is_some_and(|a| {
            !a.quoted
                && a.value
                    .as_bytes()
                    .is_some_and(|b| b.eq_ignore_ascii_case(kw.as_bytes()))
        })
    }

    /// Consumes the keyword `kw` if it is next.
    pub fn keyword(&mut self, kw: &str) -> bool {
        let found = self.is_keyword(kw);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Consumes the keyword `kw` or fails.
    pub fn expect_keyword(&mut self, kw: &str) -> Result<(), CliError> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(CliError::new(format!("Syntax error: '{kw}' expected")))
        }
    }

    /// Whether the next argument is a string.
    pub fn next_is_string(&self) -> bool {
        self.peek()
            .is_some_and(|a| matches!(a.value, Value::Str(_)))
    }

    /// Takes the next object of any kind.
    pub fn value(&mut self, what: &str) -> Result<Value, CliError> {
        let arg = self
            .items
            .get(self.pos)
            .ok_or_else(|| CliError::new(format!("Syntax error: {what} expected")))?;
        self.pos += 1;
        Ok(arg.value.clone())
    }

    /// Takes the next argument as a byte string.
    pub fn bytes(&mut self, what: &str) -> Result<Vec<u8>, CliError> {
        match self.value(what)? {
            Value::Str(s) => Ok(s),
            _ => Err(CliError::new(format!(
                "Syntax error: {what} must be a string"
            ))),
        }
    }

    /// Takes the next argument as UTF-8 text (names, keywords, numbers).
    pub fn text(&mut self, what: &str) -> Result<String, CliError> {
        let b = self.bytes(what)?;
        String::from_utf8(b).map_err(|_| CliError::new(format!("{what} is not valid UTF-8")))
    }

    /// Takes the next argument as a dictionary.
    pub fn dict(&mut self, what: &str) -> Result<Dict, CliError> {
        match self.value(what)? {
            Value::Dict(d) => Ok(d),
            _ => Err(CliError::new(format!(
                "Syntax error: {what} must be a dictionary"
            ))),
        }
    }

    /// Takes the next argument as an array.
    pub fn array(&mut self, what: &str) -> Result<Vec<Value>, CliError> {
        match self.value(what)? {
            Value::Array(a) => Ok(a),
            _ => Err(CliError::new(format!(
                "Syntax error: {what} must be an array"
            ))),
        }
    }

    /// Takes the next argument as an array of strings.
    pub fn string_array(&mut self, what: &str) -> Result<Vec<String>, CliError> {
        self.array(what)?
            .iter()
            .map(|v| {
                v.as_text()
                    .map(Cow::into_owned)
                    .ok_or_else(|| CliError::new(format!("{what} must be an array of strings")))
            })
            .collect()
    }

    /// Takes an optional leading string when more than `after` arguments follow it
    /// (`[ domainName ] newSettings`).
    pub fn optional_text(&mut self, after: usize, what: &str) -> Result<Option<String>, CliError> {
        if self.remaining() > after && self.next_is_string() {
            self.text(what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails if arguments are left over.
    pub fn end(&self) -> Result<(), CliError> {
        if self.pos < self.items.len() {
            Err(CliError::new("Syntax error: too many parameters"))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Args {
        Args::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn split_name_and_rest() {
        assert_eq!(
            split_command(b"  CreateAccount \"u\"\r"),
            (&b"CreateAccount"[..], &b" \"u\""[..])
        );
        assert_eq!(
            split_command(b"ListDomains"),
            (&b"ListDomains"[..], &b""[..])
        );
    }

    #[test]
    fn guide_sample_arguments() {
        let mut a = args(r#""user1" into "user2""#);
        assert_eq!(a.text("old").unwrap(), "user1");
        a.expect_keyword("INTO").unwrap();
        assert_eq!(a.text("new").unwrap(), "user2");
        a.end().unwrap();

        let mut a = args(r#""user1@client1.com" TextMailbox"#);
        assert_eq!(a.text("name").unwrap(), "user1@client1.com");
        assert!(a.is_keyword("textmailbox"));

        let mut a = args(r#""test" {Password="\002AslUzT1JkPsocc";}"#);
        a.text("name").unwrap();
        let d = a.dict("settings").unwrap();
        assert_eq!(
            d.get(&b"Password"[..]).and_then(Value::as_bytes),
            Some(&b"\x02AslUzT1JkPsocc"[..])
        );

        let mut a = args("user1@domain1.com Key LastLogin");
        a.text("account").unwrap();
        a.expect_keyword("key").unwrap();
        assert_eq!(a.text("key").unwrap(), "LastLogin");
    }

    #[test]
    fn quoted_string_is_never_a_keyword() {
        let mut a = args(r#""into" into x"#);
        assert!(!a.is_keyword("into"));
        assert_eq!(a.text("old").unwrap(), "into");
        assert!(a.keyword("into"));
    }

    #[test]
    fn optional_domain_before_settings() {
        let mut a = args("client1.com {A=B;}");
        assert_eq!(
            a.optional_text(1, "domain").unwrap().as_deref(),
            Some("client1.com")
        );
        a.dict("settings").unwrap();
        let mut a = args("{A=B;}");
        assert_eq!(a.optional_text(1, "domain").unwrap(), None);
        a.dict("settings").unwrap();
        a.end().unwrap();
    }

    #[test]
    fn arrays_and_type_errors() {
        let mut a = args("u (a, \"b c\") x");
        a.text("u").unwrap();
        assert_eq!(a.string_array("aliases").unwrap(), vec!["a", "b c"]);
        assert!(a.dict("settings").is_err());
        assert!(a.end().is_ok());
        assert!(args("a b").end().is_err());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in ["{a=b;", "(a,", "\"open", "a\"b\"", "{=}", ")"] {
            assert!(Args::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(Args::parse(b"\xff\xfe\x00").is_err());
        let mut a = Args::parse(b"\xc3\xa9t\xc3\xa9 \xff").unwrap();
        assert_eq!(a.text("x").unwrap(), "été");
        assert!(a.text("y").is_err());
    }
}
