//! The IMAP codec: framing ([`frame`]) and the command parser. Pure: no tokio, no store.
//!
//! Grammar (RFC 3501 §9, the parts parsed here):
//! ```text
//! command      = tag SP verb [SP arguments] CRLF      ; "UID" SP verb for the UID variants
//! astring      = 1*ASTRING-CHAR / string              ; string = quoted / literal
//! literal      = "{" number ["+"] "}" CRLF *CHAR8     ; "+" is RFC 7888 LITERAL+
//! sequence-set = (seq-number / seq-range) *("," sequence-set)   ; seq-number = nz-number / "*"
//! flag-list    = "(" [flag *(SP flag)] ")"
//! search-key   = "ALL" / "SEEN" / ... / "(" search-key *(SP search-key) ")" / "NOT" SP key / "OR" SP key SP key
//! fetch-att    = "FLAGS" / "UID" / "BODY" ["." "PEEK"] "[" section "]" ["<" n "." m ">"] / ...
//! ```
//! Security: input is untrusted. Strings and literals are bounded by the framer; search keys
//! nest at most [`MAX_DEPTH`] levels; sequence sets have at most [`MAX_RANGES`] ranges. Errors
//! never panic; the tag is reported when it could be read so the reply can be tagged.

pub mod frame;

use crate::mailbox::Flags;

/// Deepest nesting of parenthesised search keys.
pub const MAX_DEPTH: usize = 16;
/// Most ranges in one sequence set.
pub const MAX_RANGES: usize = 1024;
/// Most search keys in one SEARCH.
pub const MAX_KEYS: usize = 256;
/// Longest SEARCH string: substring search costs its length times the message size.
pub const MAX_SEARCH_STRING: usize = 1024;

/// One end of a sequence range: a number or `*` (the largest in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    /// A number.
    Num(u32),
    /// `*`
    Last,
}

/// A sequence set: ranges of message numbers or UIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqSet(pub Vec<(SeqNum, SeqNum)>);

impl SeqSet {
    /// Whether `n` is in the set, with `last` the value of `*`.
    pub fn contains(&self, n: u32, last: u32) -> bool {
        let v = |s: SeqNum| match s {
            SeqNum::Num(x) => x,
            SeqNum::Last => last,
        };
        self.0.iter().any(|&(a, b)| {
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            (lo..=hi).contains(&n)
        })
    }
}

/// A flag in STORE, APPEND: a system flag, or a keyword (an atom, RFC 3501 §2.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    /// `\Seen` and the other system flags.
    System(Flags),
    /// A keyword.
    Keyword(String),
}

/// STORE's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `+FLAGS`
    Add,
    /// `-FLAGS`
    Remove,
    /// `FLAGS`
    Replace,
}

/// A SEARCH key (RFC 3501 §6.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    /// `ALL`
    All,
    /// A flag set (`SEEN`, `ANSWERED`, ...) or clear (`UNSEEN`, ...): flag, wanted state.
    Flag(Flags, bool),
    /// `NEW`: recent and unseen.
    New,
    /// `OLD`: not recent.
    Old,
    /// `KEYWORD x` (true) / `UNKEYWORD x` (false).
    Keyword(String, bool),
    /// `MODSEQ [entry type] n` (RFC 7162 §3.1.5): mod-sequence at least `n`.
    ModSeq(u64),
    /// A header field contains the string (`FROM`, `TO`, `CC`, `BCC`, `SUBJECT`, `HEADER f s`).
    Header(String, Vec<u8>),
    /// `BODY s`
    Body(Vec<u8>),
    /// `TEXT s`
    Text(Vec<u8>),
    /// `BEFORE`, `ON`, `SINCE` internal date: (days since epoch, ordering wanted).
    Date(i64, std::cmp::Ordering, bool),
    /// `SENTBEFORE` etc. (the Date: header): as [`SearchKey::Date`].
    SentDate(i64, std::cmp::Ordering, bool),
    /// `LARGER n`
    Larger(u64),
    /// `SMALLER n`
    Smaller(u64),
    /// `UID set`
    Uid(SeqSet),
    /// A message-number set.
    Seq(SeqSet),
    /// `NOT k`
    Not(Box<SearchKey>),
    /// `OR a b`
    Or(Box<SearchKey>, Box<SearchKey>),
    /// Every key of a parenthesised list (or the top level).
    And(Vec<SearchKey>),
}

/// What part of a message a `BODY[...]` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// The whole part.
    Full,
    /// `HEADER`
    Header,
    /// `HEADER.FIELDS (..)` or `HEADER.FIELDS.NOT (..)`: names, and whether NOT.
    Fields(Vec<String>, bool),
    /// `TEXT`
    Text,
    /// `MIME` of a part.
    Mime,
}

/// A body section: part numbers and what of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `1.2` → `[1, 2]`; empty for the message.
    pub part: Vec<u32>,
    /// What of the part.
    pub text: SectionText,
}

/// A FETCH item (RFC 3501 §6.4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAtt {
    /// `FLAGS`
    Flags,
    /// `MODSEQ` (RFC 7162 §3.1.4)
    ModSeq,
    /// `UID`
    Uid,
    /// `INTERNALDATE`
    InternalDate,
    /// `RFC822.SIZE`
    Size,
    /// `ENVELOPE`
    Envelope,
    /// `BODYSTRUCTURE`
    BodyStructure,
    /// `BODY` (without a section)
    Body,
    /// `RFC822`
    Rfc822,
    /// `RFC822.HEADER`
    Rfc822Header,
    /// `RFC822.TEXT`
    Rfc822Text,
    /// `BODY[section]<partial>` / `BODY.PEEK[...]`
    Section {
        /// The section.
        section: Section,
        /// `<start.length>`
        partial: Option<(u32, u32)>,
        /// `.PEEK`: do not set `\Seen`.
        peek: bool,
    },
}

/// A STATUS item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    /// `MESSAGES`
    Messages,
    /// `RECENT`
    Recent,
    /// `UIDNEXT`
    UidNext,
    /// `UIDVALIDITY`
    UidValidity,
    /// `UNSEEN`
    Unseen,
    /// `INTERNALSIZE` (guide.txt:14880-14890): the size of the messages in storage.
    InternalSize,
    /// `OLDEST` (guide.txt:14880-14890): the oldest INTERNALDATE, omitted when empty.
    Oldest,
    /// `HIGHESTMODSEQ` (RFC 7162 §3.1.6)
    HighestModSeq,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `CAPABILITY`
    Capability,
    /// `NOOP`
    Noop,
    /// `LOGOUT`
    Logout,
    /// `STARTTLS`
    StartTls,
    /// `LOGIN user password`
    Login(String, Vec<u8>),
    /// `AUTHENTICATE mech [initial]` (RFC 4959 SASL-IR)
    Authenticate(String, Option<Vec<u8>>),
    /// `SELECT` (false) / `EXAMINE` (true), and whether `(CONDSTORE)` was given (RFC 7162 §3.1.8)
    Select(String, bool, bool),
    /// `CREATE`
    Create(String),
    /// `DELETE`
    Delete(String),
    /// `RENAME from to`
    Rename(String, String),
    /// `SUBSCRIBE`
    Subscribe(String),
    /// `UNSUBSCRIBE`
    Unsubscribe(String),
    /// `LIST ref pattern` (false) / `LSUB` (true)
    List(String, String, bool),
    /// `STATUS mailbox (items)`
    Status(String, Vec<StatusItem>),
    /// `APPEND mailbox [flags] [date] literal`
    Append(String, Vec<Flag>, Option<i64>, Vec<u8>),
    /// `CHECK`
    Check,
    /// `CLOSE`
    Close,
    /// `UNSELECT` (RFC 3691)
    Unselect,
    /// `EXPUNGE`, or `UID EXPUNGE set` (RFC 4315)
    Expunge(Option<SeqSet>),
    /// `[UID] SEARCH keys`
    Search(bool, SearchKey),
    /// `[UID] FETCH set items [(CHANGEDSINCE n)]`
    Fetch(bool, SeqSet, Vec<FetchAtt>, Option<u64>),
    /// `[UID] STORE set [(UNCHANGEDSINCE n)] mode flags`: uid, set, mode, silent, flags,
    /// unchanged-since
    Store(bool, SeqSet, StoreMode, bool, Vec<Flag>, Option<u64>),
    /// `[UID] COPY set mailbox` (false) / `MOVE` (true, RFC 6851)
    Copy(bool, SeqSet, String, bool),
    /// `IDLE` (RFC 2177)
    Idle,
    /// `NAMESPACE` (RFC 2342)
    Namespace,
    /// `ID` (RFC 2971); the client's parameters are ignored
    Id,
    /// `ENABLE caps` (RFC 5161)
    Enable(Vec<String>),
    /// `GETQUOTAROOT mailbox` (RFC 2087)
    GetQuotaRoot(String),
    /// `GETQUOTA root`
    GetQuota(String),
    /// `SETACL mailbox identifier rights` (RFC 4314 §3.1; rights may start with `+` or `-`)
    SetAcl(String, String, String),
    /// `DELETEACL mailbox identifier`
    DeleteAcl(String, String),
    /// `GETACL mailbox`
    GetAcl(String),
    /// `LISTRIGHTS mailbox identifier`
    ListRights(String, String),
    /// `MYRIGHTS mailbox`
    MyRights(String),
}

/// A command with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client's tag.
    pub tag: String,
    /// The command.
    pub command: Command,
}

/// A command that could not be parsed: the tag if it was read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The tag, when the line had a valid one.
    pub tag: Option<String>,
    /// What was wrong, for the `BAD` line.
    pub why: String,
}

type R<T> = Result<T, String>;

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

impl<'a> P<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, b: u8) -> R<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected '{}'", b as char))
        }
    }
    fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }
    fn end(&self) -> R<()> {
        if self.i == self.s.len() {
            Ok(())
        } else {
            Err("unexpected characters at the end".into())
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    /// `atom`, with `]` allowed when `bracket` (for flags such as `\Seen`, and `astring`'s `]`).
    fn atom(&mut self) -> R<String> {
        let a = self.take_while(|b| is_atom_char(b) || b == b']');
        if a.is_empty() {
            return Err("expected an atom".into());
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }
    fn number(&mut self) -> R<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 19 {
            return Err("expected a number".into());
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "number out of range".into())
    }
    fn number32(&mut self) -> R<u32> {
        u32::try_from(self.number()?).map_err(|_| "number out of range".into())
    }
    /// `quoted = DQUOTE *QUOTED-CHAR DQUOTE`
    fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err("bad escape in quoted string".into()),
                    }
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
    /// `literal`: the framer has placed the octets after the `{n}` CRLF.
    fn literal(&mut self) -> R<Vec<u8>> {
        self.expect(b'{')?;
        let n = self.number()?;
        self.eat(b'+');
        self.expect(b'}')?;
        self.expect(b'\r')?;
        self.expect(b'\n')?;
        let n = usize::try_from(n).map_err(|_| "literal too big".to_string())?;
        let end = self.i.checked_add(n).filter(|&e| e <= self.s.len());
        let end = end.ok_or("literal shorter than announced")?;
        let v = self.s[self.i..end].to_vec();
        self.i = end;
        Ok(v)
    }
    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => Err("expected a string".into()),
        }
    }
    fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => Ok(self.atom()?.into_bytes()),
        }
    }
    fn astring_text(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "not UTF-8".into())
    }
    /// `mailbox = "INBOX" / astring` (INBOX case-insensitive, RFC 3501 §5.1).
    fn mailbox(&mut self) -> R<String> {
        let m = self.astring_text()?;
        if m.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        Ok(m)
    }
    /// `list-mailbox = 1*list-char / string`: atoms plus `%`, `*`, `]`.
    fn list_mailbox(&mut self) -> R<String> {
        match self.peek() {
            Some(b'"' | b'{') => String::from_utf8(self.string()?).map_err(|_| "not UTF-8".into()),
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || matches!(b, b'%' | b'*' | b']'));
                if a.is_empty() {
                    return Err("expected a mailbox pattern".into());
                }
                Ok(String::from_utf8_lossy(a).into_owned())
            }
        }
    }
    fn seq_num(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            return Ok(SeqNum::Last);
        }
        match self.number32()? {
            0 => Err("sequence number 0".into()),
            n => Ok(SeqNum::Num(n)),
        }
    }
    /// `sequence-set`
    fn sequence_set(&mut self) -> R<SeqSet> {
        let mut out = Vec::new();
        loop {
            let a = self.seq_num()?;
            let b = if self.eat(b':') { self.seq_num()? } else { a };
            out.push((a, b));
            if out.len() > MAX_RANGES {
                return Err("sequence set too long".into());
            }
            if !self.eat(b',') {
                return Ok(SeqSet(out));
            }
        }
    }
    /// `flag = "\Answered" / ... / flag-keyword / flag-extension`; `flag-keyword = atom`.
    fn flag(&mut self) -> R<Flag> {
        let bs = self.eat(b'\\');
        let name = self.atom()?;
        if !bs {
            if name.contains(']') {
                return Err("a keyword is an atom".into());
            }
            return Ok(Flag::Keyword(name));
        }
        let f = match name.to_ascii_lowercase().as_str() {
            "seen" => Flags::SEEN,
            "answered" => Flags::ANSWERED,
            "flagged" => Flags::FLAGGED,
            "deleted" => Flags::DELETED,
            "draft" => Flags::DRAFT,
            "recent" => Flags::RECENT,
            // flag-extension: none is defined, so none can be stored.
            _ => return Err(format!("unknown system flag \\{name}")),
        };
        Ok(Flag::System(f))
    }
    fn flag_list(&mut self) -> R<Vec<Flag>> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        if self.eat(b')') {
            return Ok(out);
        }
        loop {
            out.push(self.flag()?);
            if out.len() > 64 {
                return Err("too many flags".into());
            }
            if self.eat(b')') {
                return Ok(out);
            }
            self.sp()?;
        }
    }
    /// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE`
    fn date_time(&mut self) -> R<i64> {
        let q = self.quoted()?;
        let s = String::from_utf8_lossy(&q);
        chrono::DateTime::parse_from_str(s.trim_start(), "%d-%b-%Y %H:%M:%S %z")
            .map(|d| d.timestamp())
            .map_err(|_| "bad date-time".into())
    }
    /// `date = date-text / DQUOTE date-text DQUOTE`; days since the epoch.
    fn date(&mut self) -> R<i64> {
        let text = if self.peek() == Some(b'"') {
            String::from_utf8_lossy(&self.quoted()?).into_owned()
        } else {
            self.atom()?
        };
        let d = chrono::NaiveDate::parse_from_str(&text, "%d-%b-%Y")
            .map_err(|_| "bad date".to_string())?;
        Ok(d.signed_duration_since(chrono::NaiveDate::default())
            .num_days())
    }
}

/// Parses one framed command (see [`frame::Framer`]).
pub fn parse_command(input: &[u8]) -> Result<Request, ParseError> {
    let mut p = P { s: input, i: 0 };
    let tag = p.take_while(|b| is_atom_char(b) && b != b'+');
    if tag.is_empty() {
        return Err(ParseError {
            tag: None,
            why: "missing tag".into(),
        });
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    let bad = |why: String| ParseError {
        tag: Some(tag.clone()),
        why,
    };
    p.sp().map_err(|_| bad("missing command".into()))?;
    let command = command(&mut p).map_err(bad)?;
    p.end().map_err(bad)?;
    Ok(Request { tag, command })
}

fn command(p: &mut P) -> R<Command> {
    let verb = p.atom()?.to_ascii_uppercase();
    Ok(match verb.as_str() {
        "CAPABILITY" => Command::Capability,
        "NOOP" => Command::Noop,
        "LOGOUT" => Command::Logout,
        "STARTTLS" => Command::StartTls,
        "CHECK" => Command::Check,
        "CLOSE" => Command::Close,
        "UNSELECT" => Command::Unselect,
        "EXPUNGE" => Command::Expunge(None),
        "IDLE" => Command::Idle,
        "NAMESPACE" => Command::Namespace,
        "LOGIN" => {
            p.sp()?;
            let user = p.astring_text()?;
            p.sp()?;
            Command::Login(user, p.astring()?)
        }
        "AUTHENTICATE" => {
            p.sp()?;
            let mech = p.atom()?;
            let initial = if p.eat(b' ') {
                Some(p.take_while(|b| b > 0x20 && b < 0x7f).to_vec())
            } else {
                None
            };
            Command::Authenticate(mech, initial)
        }
        "SELECT" | "EXAMINE" => {
            p.sp()?;
            let m = p.mailbox()?;
            // RFC 4466 select-params; CONDSTORE is the one we know (RFC 7162 §3.1.8).
            let condstore = p.eat(b' ');
            if condstore {
                p.expect(b'(')?;
                if !p.atom()?.eq_ignore_ascii_case("CONDSTORE") {
                    return Err("unknown SELECT parameter".into());
                }
                p.expect(b')')?;
            }
            Command::Select(m, verb == "EXAMINE", condstore)
        }
        "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" | "GETQUOTAROOT" => {
            p.sp()?;
            let m = p.mailbox()?;
            match verb.as_str() {
                "CREATE" => Command::Create(m),
                "DELETE" => Command::Delete(m),
                "SUBSCRIBE" => Command::Subscribe(m),
                "UNSUBSCRIBE" => Command::Unsubscribe(m),
                _ => Command::GetQuotaRoot(m),
            }
        }
        "SETACL" => {
            p.sp()?;
            let m = p.mailbox()?;
            p.sp()?;
            let id = p.astring_text()?;
            p.sp()?;
            Command::SetAcl(m, id, p.astring_text()?)
        }
        "DELETEACL" | "LISTRIGHTS" => {
            p.sp()?;
            let m = p.mailbox()?;
            p.sp()?;
            let id = p.astring_text()?;
            if verb == "DELETEACL" {
                Command::DeleteAcl(m, id)
            } else {
                Command::ListRights(m, id)
            }
        }
        "GETACL" | "MYRIGHTS" => {
            p.sp()?;
            let m = p.mailbox()?;
            if verb == "GETACL" {
                Command::GetAcl(m)
            } else {
                Command::MyRights(m)
            }
        }
        "GETQUOTA" => {
            p.sp()?;
            Command::GetQuota(p.astring_text()?)
        }
        "RENAME" => {
            p.sp()?;
            let from = p.mailbox()?;
            p.sp()?;
            Command::Rename(from, p.mailbox()?)
        }
        "LIST" | "LSUB" => {
            p.sp()?;
            let reference = p.mailbox_ref()?;
            p.sp()?;
            Command::List(reference, p.list_mailbox()?, verb == "LSUB")
        }
        "STATUS" => {
            p.sp()?;
            let m = p.mailbox()?;
            p.sp()?;
            p.expect(b'(')?;
            let mut items = Vec::new();
            loop {
                let item = match p.atom()?.to_ascii_uppercase().as_str() {
                    "MESSAGES" => StatusItem::Messages,
                    "RECENT" => StatusItem::Recent,
                    "UIDNEXT" => StatusItem::UidNext,
                    "UIDVALIDITY" => StatusItem::UidValidity,
                    "UNSEEN" => StatusItem::Unseen,
                    "INTERNALSIZE" => StatusItem::InternalSize,
                    "OLDEST" => StatusItem::Oldest,
                    "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                    _ => return Err("unknown status item".into()),
                };
                items.push(item);
                if items.len() > 16 {
                    return Err("too many status items".into());
                }
                if p.eat(b')') {
                    break;
                }
                p.sp()?;
            }
            Command::Status(m, items)
        }
        "APPEND" => {
            p.sp()?;
            let m = p.mailbox()?;
            p.sp()?;
            let flags = if p.peek() == Some(b'(') {
                let f = p.flag_list()?;
                p.sp()?;
                f
            } else {
                Vec::new()
            };
            let date = if p.peek() == Some(b'"') {
                let d = p.date_time()?;
                p.sp()?;
                Some(d)
            } else {
                None
            };
            Command::Append(m, flags, date, p.literal()?)
        }
        "ENABLE" => {
            let mut caps = Vec::new();
            while p.eat(b' ') {
                caps.push(p.atom()?.to_ascii_uppercase());
                if caps.len() > 32 {
                    return Err("too many capabilities".into());
                }
            }
            if caps.is_empty() {
                return Err("ENABLE needs a capability".into());
            }
            Command::Enable(caps)
        }
        "ID" => {
            p.sp()?;
            // RFC 2971: "NIL" or a list of string pairs; parsed only to check the syntax.
            if p.eat(b'(') {
                let mut n = 0;
                while !p.eat(b')') {
                    if n > 0 {
                        p.sp()?;
                    }
                    p.nstring()?;
                    n += 1;
                    if n > 60 {
                        return Err("too many ID fields".into());
                    }
                }
            } else if !p.atom()?.eq_ignore_ascii_case("NIL") {
                return Err("expected NIL or a list".into());
            }
            Command::Id
        }
        "UID" => {
            p.sp()?;
            let sub = p.atom()?.to_ascii_uppercase();
            p.sp()?;
            match sub.as_str() {
                "EXPUNGE" => Command::Expunge(Some(p.sequence_set()?)),
                _ => selected_command(p, &sub, true)?,
            }
        }
        "SEARCH" | "FETCH" | "STORE" | "COPY" | "MOVE" => {
            p.sp()?;
            selected_command(p, &verb, false)?
        }
        _ => return Err(format!("unknown command {verb}")),
    })
}

impl P<'_> {
    /// `"(" name SP mod-sequence-valzer ")"`: a FETCH or STORE modifier (RFC 7162 §3.1.3-4).
    fn modifier(&mut self, name: &str) -> R<u64> {
        self.expect(b'(')?;
        if !self.atom()?.eq_ignore_ascii_case(name) {
            return Err(format!("expected {name}"));
        }
        self.sp()?;
        let n = self.number()?;
        self.expect(b')')?;
        Ok(n)
    }
    /// The LIST reference: a mailbox name that may be empty.
    fn mailbox_ref(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "not UTF-8".into())
    }
    fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        if self.peek() == Some(b'"') || self.peek() == Some(b'{') {
            return Ok(Some(self.string()?));
        }
        if self.atom()?.eq_ignore_ascii_case("NIL") {
            Ok(None)
        } else {
            Err("expected a string or NIL".into())
        }
    }
}

fn selected_command(p: &mut P, verb: &str, uid: bool) -> R<Command> {
    Ok(match verb {
        "SEARCH" => {
            let mut keys = Vec::new();
            let mut first = true;
            loop {
                if !first && !p.eat(b' ') {
                    break;
                }
                first = false;
                if keys.is_empty()
                    && p.s[p.i..].len() >= 7
                    && p.s[p.i..p.i + 7].eq_ignore_ascii_case(b"CHARSET")
                {
                    p.atom()?;
                    p.sp()?;
                    let cs = p.astring_text()?;
                    if !cs.eq_ignore_ascii_case("UTF-8") && !cs.eq_ignore_ascii_case("US-ASCII") {
                        return Err("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset".into());
                    }
                    p.sp()?;
                }
                keys.push(search_key(p, 0)?);
                if keys.len() > MAX_KEYS {
                    return Err("too many search keys".into());
                }
            }
            Command::Search(uid, SearchKey::And(keys))
        }
        "FETCH" => {
            let set = p.sequence_set()?;
            p.sp()?;
            let mut items = Vec::new();
            if p.eat(b'(') {
                loop {
                    items.extend(fetch_att(p)?);
                    if items.len() > 64 {
                        return Err("too many fetch items".into());
                    }
                    if p.eat(b')') {
                        break;
                    }
                    p.sp()?;
                }
            } else {
                items.extend(fetch_att(p)?);
            }
            if uid && !items.contains(&FetchAtt::Uid) {
                // RFC 3501 §6.4.8: UID FETCH always returns the UID.
                items.insert(0, FetchAtt::Uid);
            }
            let changed_since = if p.eat(b' ') {
                let n = p.modifier("CHANGEDSINCE")?;
                // RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ.
                if !items.contains(&FetchAtt::ModSeq) {
                    items.push(FetchAtt::ModSeq);
                }
                Some(n)
            } else {
                None
            };
            Command::Fetch(uid, set, items, changed_since)
        }
        "STORE" => {
            let set = p.sequence_set()?;
            p.sp()?;
            let unchanged_since = if p.peek() == Some(b'(') {
                let n = p.modifier("UNCHANGEDSINCE")?;
                p.sp()?;
                Some(n)
            } else {
                None
            };
            let item = p.atom()?.to_ascii_uppercase();
            let (mode, rest) = match item.strip_prefix('+') {
                Some(r) => (StoreMode::Add, r),
                None => match item.strip_prefix('-') {
                    Some(r) => (StoreMode::Remove, r),
                    None => (StoreMode::Replace, item.as_str()),
                },
            };
            let silent = match rest {
                "FLAGS" => false,
                "FLAGS.SILENT" => true,
                _ => return Err("expected FLAGS".into()),
            };
            p.sp()?;
            let flags = if p.peek() == Some(b'(') {
                p.flag_list()?
            } else {
                let mut v = vec![p.flag()?];
                while p.eat(b' ') {
                    v.push(p.flag()?);
                    if v.len() > 64 {
                        return Err("too many flags".into());
                    }
                }
                v
            };
            Command::Store(uid, set, mode, silent, flags, unchanged_since)
        }
        "COPY" | "MOVE" => {
            let set = p.sequence_set()?;
            p.sp()?;
            Command::Copy(uid, set, p.mailbox()?, verb == "MOVE")
        }
        _ => return Err(format!("unknown command {verb}")),
    })
}

fn fetch_att(p: &mut P) -> R<Vec<FetchAtt>> {
    let name = p
        .take_while(|b| b.is_ascii_alphanumeric() || b == b'.')
        .to_ascii_uppercase();
    Ok(match name.as_slice() {
        b"ALL" => vec![
            FetchAtt::Flags,
            FetchAtt::InternalDate,
            FetchAtt::Size,
            FetchAtt::Envelope,
        ],
        b"FAST" => vec![FetchAtt::Flags, FetchAtt::InternalDate, FetchAtt::Size],
        b"FULL" => vec![
            FetchAtt::Flags,
            FetchAtt::InternalDate,
            FetchAtt::Size,
            FetchAtt::Envelope,
            FetchAtt::Body,
        ],
        b"FLAGS" => vec![FetchAtt::Flags],
        b"MODSEQ" => vec![FetchAtt::ModSeq],
        b"UID" => vec![FetchAtt::Uid],
        b"INTERNALDATE" => vec![FetchAtt::InternalDate],
        b"RFC822.SIZE" => vec![FetchAtt::Size],
        b"ENVELOPE" => vec![FetchAtt::Envelope],
        b"BODYSTRUCTURE" => vec![FetchAtt::BodyStructure],
        b"RFC822" => vec![FetchAtt::Rfc822],
        b"RFC822.HEADER" => vec![FetchAtt::Rfc822Header],
        b"RFC822.TEXT" => vec![FetchAtt::Rfc822Text],
        b"BODY" | b"BODY.PEEK" => {
            let peek = name.len() > 4;
            if !p.eat(b'[') {
                if peek {
                    return Err("BODY.PEEK needs a section".into());
                }
                return Ok(vec![FetchAtt::Body]);
            }
            let section = section(p)?;
            p.expect(b']')?;
            let partial = if p.eat(b'<') {
                let start = p.number32()?;
                p.expect(b'.')?;
                let len = p.number32()?;
                if len == 0 {
                    return Err("partial length 0".into());
                }
                p.expect(b'>')?;
                Some((start, len))
            } else {
                None
            };
            vec![FetchAtt::Section {
                section,
                partial,
                peek,
            }]
        }
        _ => return Err("unknown fetch item".into()),
    })
}

/// `section-spec = section-msgtext / (section-part ["." section-text])`
fn section(p: &mut P) -> R<Section> {
    let mut part = Vec::new();
    while p.peek().is_some_and(|b| b.is_ascii_digit()) {
        part.push(p.number32()?);
        if part.len() > MAX_DEPTH {
            return Err("section too deep".into());
        }
        if !p.eat(b'.') {
            return Ok(Section {
                part,
                text: SectionText::Full,
            });
        }
    }
    let name = p
        .take_while(|b| b.is_ascii_alphabetic() || b == b'.')
        .to_ascii_uppercase();
    let text = match name.as_slice() {
        b"" if part.is_empty() => SectionText::Full,
        b"HEADER" => SectionText::Header,
        b"TEXT" => SectionText::Text,
        b"MIME" if !part.is_empty() => SectionText::Mime,
        b"HEADER.FIELDS" | b"HEADER.FIELDS.NOT" => {
            p.sp()?;
            p.expect(b'(')?;
            let mut fields = Vec::new();
            loop {
                fields.push(p.astring_text()?);
                if fields.len() > 64 {
                    return Err("too many header fields".into());
                }
                if p.eat(b')') {
                    break;
                }
                p.sp()?;
            }
            SectionText::Fields(fields, name.len() > 13)
        }
        _ => return Err("bad section".into()),
    };
    Ok(Section { part, text })
}

/// A SEARCH string argument, at most [`MAX_SEARCH_STRING`] octets.
fn search_string(p: &mut P) -> R<Vec<u8>> {
    let s = p.astring()?;
    if s.len() > MAX_SEARCH_STRING {
        return Err("search string too long".into());
    }
    Ok(s)
}

fn search_key(p: &mut P, depth: usize) -> R<SearchKey> {
    if depth > MAX_DEPTH {
        return Err("search keys nested too deep".into());
    }
    if p.eat(b'(') {
        let mut keys = Vec::new();
        loop {
            keys.push(search_key(p, depth + 1)?);
            if keys.len() > MAX_KEYS {
                return Err("too many search keys".into());
            }
            if p.eat(b')') {
                return Ok(SearchKey::And(keys));
            }
            p.sp()?;
        }
    }
    if p.peek().is_some_and(|b| b.is_ascii_digit() || b == b'*') {
        return Ok(SearchKey::Seq(p.sequence_set()?));
    }
    let word = p.atom()?.to_ascii_uppercase();
    let flag = |f: Flags, on: bool| Ok(SearchKey::Flag(f, on));
    use std::cmp::Ordering::{Equal, Greater, Less};
    match word.as_str() {
        "ALL" => Ok(SearchKey::All),
        "SEEN" => flag(Flags::SEEN, true),
        "UNSEEN" => flag(Flags::SEEN, false),
        "ANSWERED" => flag(Flags::ANSWERED, true),
        "UNANSWERED" => flag(Flags::ANSWERED, false),
        "FLAGGED" => flag(Flags::FLAGGED, true),
        "UNFLAGGED" => flag(Flags::FLAGGED, false),
        "DELETED" => flag(Flags::DELETED, true),
        "UNDELETED" => flag(Flags::DELETED, false),
        "DRAFT" => flag(Flags::DRAFT, true),
        "UNDRAFT" => flag(Flags::DRAFT, false),
        "RECENT" => flag(Flags::RECENT, true),
        "NEW" => Ok(SearchKey::New),
        "OLD" => Ok(SearchKey::Old),
        "KEYWORD" | "UNKEYWORD" => {
            p.sp()?;
            Ok(SearchKey::Keyword(p.atom()?, word == "KEYWORD"))
        }
        "MODSEQ" => {
            // search-modsequence = "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer;
            // the entry names only narrow which flag's mod-sequence, and we keep one per message.
            p.sp()?;
            if p.peek() == Some(b'"') {
                p.quoted()?;
                p.sp()?;
                let t = p.atom()?.to_ascii_lowercase();
                if !matches!(t.as_str(), "priv" | "shared" | "all") {
                    return Err("bad MODSEQ entry type".into());
                }
                p.sp()?;
            }
            Ok(SearchKey::ModSeq(p.number()?))
        }
        "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => {
            p.sp()?;
            Ok(SearchKey::Header(
                word.to_ascii_lowercase(),
                search_string(p)?,
            ))
        }
        "HEADER" => {
            p.sp()?;
            let field = p.astring_text()?.to_ascii_lowercase();
            p.sp()?;
            Ok(SearchKey::Header(field, search_string(p)?))
        }
        "BODY" => {
            p.sp()?;
            Ok(SearchKey::Body(search_string(p)?))
        }
        "TEXT" => {
            p.sp()?;
            Ok(SearchKey::Text(search_string(p)?))
        }
        "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
            p.sp()?;
            let d = p.date()?;
            let (ord, or_equal) = match word.trim_start_matches("SENT") {
                "BEFORE" => (Less, false),
                "ON" => (Equal, true),
                _ => (Greater, true),
            };
            if word.starts_with("SENT") {
                Ok(SearchKey::SentDate(d, ord, or_equal))
            } else {
                Ok(SearchKey::Date(d, ord, or_equal))
            }
        }
        "LARGER" => {
            p.sp()?;
            Ok(SearchKey::Larger(p.number()?))
        }
        "SMALLER" => {
            p.sp()?;
            Ok(SearchKey::Smaller(p.number()?))
        }
        "UID" => {
            p.sp()?;
            Ok(SearchKey::Uid(p.sequence_set()?))
        }
        "NOT" => {
            p.sp()?;
            Ok(SearchKey::Not(Box::new(search_key(p, depth + 1)?)))
        }
        "OR" => {
            p.sp()?;
            let a = search_key(p, depth + 1)?;
            p.sp()?;
            Ok(SearchKey::Or(
                Box::new(a),
                Box::new(search_key(p, depth + 1)?),
            ))
        }
        _ => Err(format!("unknown search key {word}")),
    }
}

#[cfg(test)]
mod tests;
