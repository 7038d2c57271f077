//! The guide's text data format: strings, arrays and dictionaries.
//!
//! Used for settings files and for CLI parameters and results (guide.txt:17395-17504, spec B §1).
//!
//! ```text
//! a-symbol   ::= A .. Z | a .. z | 0 .. 9
//! atom       ::= 1*a-symbol
//! s-symbol   ::= any printable symbol except " and \ | \\ | \" | \r | \n | \e | \t | \nnn
//! string     ::= " 1*s-symbol " | atom
//! array      ::= ( [object [, object ...]] )
//! dictionary ::= { [string = object ; [string = object ; ...]] }
//! object     ::= string | array | dictionary
//! ```
//!
//! Security: the parser reads untrusted bytes (CLI lines from the network, files on disk). It never
//! panics, nests at most [`MAX_DEPTH`] levels and reports the byte offset of every error.
//!
//! Decisions where the guide is loose (spec B §1.6):
//! - Values are bytes, not assumed UTF-8.
//! - The parser is lenient: an atom is any run of bytes other than white space, control bytes and
//!   the format's punctuation `"(){},;=\`, because the guide's own CLI samples use unquoted dotted
//!   names (guide.txt:7224) and addresses (guide.txt:6724). The serializer is strict: it writes an
//!   atom only for `[A-Za-z0-9]+` and quotes everything else.
//! - `""` (the empty string) is accepted and written, as GetAccountInfo returns it (guide.txt:5628).
//! - `\t` is accepted (prose, guide.txt:17432) though the formal grammar omits it.
//! - `\nnn` is decimal (guide.txt:17437); a value above 255 is an error.
//! - `\e` ("End-Of-Line") is read as LF; LF is written as `\e`.
//! - A duplicate dictionary key is an error: the guide says keys are unique (guide.txt:17469), and
//!   silently dropping one of two settings would hide a mistake.
//! - The final `;` of a dictionary may be omitted when reading, as hand-edited files often do.

use std::borrow::Cow;
use std::fmt;

/// A dictionary: byte-string keys (case-sensitive) in insertion order.
pub type Dict = indexmap::IndexMap<Vec<u8>, Value>;

/// Deepest nesting of arrays and dictionaries the parser accepts.
pub const MAX_DEPTH: usize = 64;

/// One object of the data format.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// A string (atom or quoted); any bytes.
    Str(Vec<u8>),
    /// An array of objects.
    Array(Vec<Value>),
    /// A dictionary of objects by string key.
    Dict(Dict),
}

/// Why a text could not be read as an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {offset}")]
pub struct ParseError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// What was wrong, in words for an administrator.
    pub message: &'static str,
}

impl Value {
    /// A string value from bytes or text.
    pub fn str(s: impl AsRef<[u8]>) -> Value {
        Value::Str(s.as_ref().to_vec())
    }

    /// An empty dictionary.
    pub fn empty_dict() -> Value {
        Value::Dict(Dict::new())
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A string value as text (invalid UTF-8 replaced).
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        self.as_bytes().map(String::from_utf8_lossy)
    }

    /// The entries of a dictionary value.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The entries of a dictionary value, for changing them.
    pub fn as_dict_mut(&mut self) -> Option<&mut Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The elements of an array value.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Dictionary lookup by key; `None` for a missing key or a value that is not a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict()?.get(key.as_bytes())
    }

    /// Dictionary lookup of a string value, as text.
    pub fn get_text(&self, key: &str) -> Option<String> {
        self.get(key)?.as_text().map(Cow::into_owned)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s.into_bytes())
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Value {
        Value::Array(a)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Value {
        Value::Dict(d)
    }
}

/// Builds a dictionary value from key-value pairs.
pub fn dict<K: AsRef<[u8]>, I: IntoIterator<Item = (K, Value)>>(pairs: I) -> Value {
    Value::Dict(
        pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_vec(), v))
            .collect(),
    )
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&to_bytes(self)))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&to_bytes(self)))
    }
}

/// Reads exactly one object from `input`; white space may surround it, nothing else.
pub fn parse(input: &[u8]) -> Result<Value, ParseError> {
    let (value, used) = parse_prefix(input)?;
    let mut p = Parser { input, pos: used };
    p.skip_ws();
    if p.pos < input.len() {
        return Err(p.error("unexpected data after the object"));
    }
    Ok(value)
}

/// Reads one object at the start of `input` (after white space); returns it and the bytes consumed.
pub fn parse_prefix(input: &[u8]) -> Result<(Value, usize), ParseError> {
    let mut p = Parser { input, pos: 0 };
    p.skip_ws();
    let value = p.object(0)?;
    Ok((value, p.pos))
}

/// Reads white-space separated objects until the end of `input` (a CLI command's arguments).
pub fn parse_sequence(input: &[u8]) -> Result<Vec<Value>, ParseError> {
    let mut p = Parser { input, pos: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        if p.pos >= input.len() {
            return Ok(out);
        }
        out.push(p.object(0)?);
    }
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Bytes the lenient parser takes into an atom (see the module header).
fn is_atom_byte(b: u8) -> bool {
    b >= 0x80 || (b > b' ' && b != 0x7f && !b"\"(){},;=\\".contains(&b))
}

impl Parser<'_> {
    fn error(&self, message: &'static str) -> ParseError {
        ParseError {
            offset: self.pos,
            message,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    /// object ::= string | array | dictionary
    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("an object was expected, the text ended")),
            Some(b'(') => self.array(depth + 1),
            Some(b'{') => self.dictionary(depth + 1),
            Some(_) => self.string().map(Value::Str),
        }
    }

    /// string ::= " *s-symbol " | atom
    fn string(&mut self) -> Result<Vec<u8>, ParseError> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b) if is_atom_byte(b) => {
                let start = self.pos;
                while self.peek().is_some_and(is_atom_byte) {
                    self.pos += 1;
                }
                Ok(self.input[start..self.pos].to_vec())
            }
            Some(_) => Err(self.error("a string was expected")),
            None => Err(self.error("a string was expected, the text ended")),
        }
    }

    fn quoted(&mut self) -> Result<Vec<u8>, ParseError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("the quoted string is not closed"));
            };
            self.pos += 1;
            match b {
                b'"' => return Ok(out),
                b'\\' => out.push(self.escape()?),
                _ => out.push(b),
            }
        }
    }

    /// The symbol after a backslash (guide.txt:17417-17439).
    fn escape(&mut self) -> Result<u8, ParseError> {
        let Some(b) = self.peek() else {
            return Err(self.error("the quoted string ends inside an escape"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'r' => b'\r',
            b'n' | b'e' => b'\n',
            b't' => b'\t',
            b'0'..=b'9' => {
                let digits = self.input.get(self.pos - 1..self.pos + 2);
                let Some(digits) = digits.filter(|d| d.iter().all(u8::is_ascii_digit)) else {
                    self.pos -= 1;
                    return Err(self.error("\\nnn needs three decimal digits"));
                };
                let code = digits
                    .iter()
                    .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                let Ok(code) = u8::try_from(code) else {
                    self.pos -= 1;
                    return Err(self.error("\\nnn is above 255"));
                };
                self.pos += 2;
                code
            }
            _ => {
                self.pos -= 1;
                return Err(self.error("unknown escape in a quoted string"));
            }
        })
    }

    /// array ::= ( [object [, object ...]] )
    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("arrays and dictionaries are nested too deeply"));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b')') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.object(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                Some(_) => return Err(self.error("',' or ')' was expected in an array")),
                None => return Err(self.error("the array is not closed")),
            }
        }
    }

    /// dictionary ::= { [string = object ; [string = object ; ...]] }
    fn dictionary(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("arrays and dictionaries are nested too deeply"));
        }
        self.pos += 1;
        let mut entries = Dict::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Dict(entries));
                }
                None => return Err(self.error("the dictionary is not closed")),
                Some(_) => {}
            }
            let key_at = self.pos;
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b'=') {
                return Err(self.error("'=' was expected after a dictionary key"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.object(depth)?;
            if entries.insert(key, value).is_some() {
                return Err(ParseError {
                    offset: key_at,
                    message: "the dictionary has this key twice",
                });
            }
            self.skip_ws();
            match self.peek() {
                Some(b';') => self.pos += 1,
                Some(b'}') => {}
                Some(_) => return Err(self.error("';' was expected after a dictionary value")),
                None => return Err(self.error("the dictionary is not closed")),
            }
        }
    }
}

/// Writes a value on one line in the strict form.
pub fn to_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_compact(v, &mut out);
    out
}

/// Writes a value over several indented lines, for settings files people may read.
pub fn to_pretty(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_pretty(v, 0, &mut out);
    out.push(b'\n');
    out
}

/// Writes a string: as an atom when it is `[A-Za-z0-9]+`, quoted otherwise.
pub fn write_string(s: &[u8], out: &mut Vec<u8>) {
    if !s.is_empty() && s.iter().all(u8::is_ascii_alphanumeric) {
        out.extend_from_slice(s);
        return;
    }
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\e"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\{b:03}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn write_compact(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Str(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(item, out);
            }
            out.push(b')');
        }
        Value::Dict(entries) => {
            out.push(b'{');
            for (k, item) in entries {
                write_string(k, out);
                out.push(b'=');
                write_compact(item, out);
                out.push(b';');
            }
            out.push(b'}');
        }
    }
}

fn is_flat(v: &Value) -> bool {
    match v {
        Value::Str(_) => true,
        Value::Array(items) => items.iter().all(|i| matches!(i, Value::Str(_))),
        Value::Dict(d) => d.is_empty(),
    }
}

fn indent(level: usize, out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(b' ', level * 2));
}

fn write_pretty(v: &Value, level: usize, out: &mut Vec<u8>) {
    if is_flat(v) {
        write_compact(v, out);
        return;
    }
    match v {
        Value::Str(_) => write_compact(v, out),
        Value::Array(items) => {
            out.extend_from_slice(b"(\n");
            for (i, item) in items.iter().enumerate() {
                indent(level + 1, out);
                write_pretty(item, level + 1, out);
                if i + 1 < items.len() {
                    out.push(b',');
                }
                out.push(b'\n');
            }
            indent(level, out);
            out.push(b')');
        }
        Value::Dict(entries) => {
            out.extend_from_slice(b"{\n");
            for (k, item) in entries {
                indent(level + 1, out);
                write_string(k, out);
                out.extend_from_slice(b" = ");
                write_pretty(item, level + 1, out);
                out.extend_from_slice(b";\n");
            }
            indent(level, out);
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests;
