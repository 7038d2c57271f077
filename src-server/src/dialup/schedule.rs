//! The TCP Activity Schedule (guide.txt:5253-5303, spec A §22.2): when a dial-up site's link may
//! carry outgoing SMTP, ETRN/ATRN wake-ups and RPOP polls.
//!
//! Stored as the server settings `Schedule`: an array of `{Days=...; When="HH:MM-HH:MM";
//! Pause=seconds;}` (read and written with `GetDialupSchedule`/`SetDialupSchedule`). Days is
//! `Every Day`, `Mon-Fri`, `Sat-Sun` or one weekday. An empty schedule means no restriction.
//!
//! A period that crosses midnight (`19:30-07:30`) belongs to the day it starts on: `Mon-Fri
//! 19:30-07:30` is open from Friday 19:30 to Saturday 07:30, and closed from Saturday 07:30 on.
//! Times are the server's local time, as every time in the guide.
//!
//! `Pause` is the least time between the starts of two link sessions (see [`super::Link`]).

use chrono::{Datelike, Duration, NaiveDateTime, Timelike, Weekday};

use crate::format::{dict, Value};

/// The Days choices, as the guide's pop-up lists them.
pub const DAYS: &[&str] = &[
    "Every Day",
    "Mon-Fri",
    "Sat-Sun",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Most elements a schedule may have.
pub const MAX_ELEMENTS: usize = 100;

/// The server settings name the schedule is stored under.
pub const SETTINGS: &str = "Schedule";

/// One row: on these days, from `start` to `end` minutes after midnight (end may be 24:00, and
/// below start for a period crossing midnight), at most one session per `pause` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    days: &'static str,
    start: u32,
    end: u32,
    pause: u32,
}

fn hhmm(s: &str, end: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl Element {
    /// Reads one `{Days; When; Pause}` dictionary; the error says which part is wrong.
    pub fn parse(v: &Value) -> Result<Element, String> {
        let d = v.as_dict().ok_or("must be a dictionary")?;
        if let Some(k) = d
            .keys()
            .find(|k| !matches!(k.as_slice(), b"Days" | b"When" | b"Pause"))
        {
            return Err(format!("unknown key {}", String::from_utf8_lossy(k)));
        }
        let text = |k: &str| {
            v.get_text(k)
                .ok_or(format!("{k} is missing or not a string"))
        };
        let days = text("Days")?;
        let days = DAYS
            .iter()
            .find(|d| d.eq_ignore_ascii_case(days.trim()))
            .ok_or(format!("Days must be one of {}", DAYS.join(", ")))?;
        let when = text("When")?;
        let (start, end) = when
            .split_once('-')
            .and_then(|(a, b)| Some((hhmm(a.trim(), false)?, hhmm(b.trim(), true)?)))
            .ok_or("When must be HH:MM-HH:MM")?;
        if start == end {
            return Err("When is an empty period".into());
        }
        let pause = text("Pause")?;
        let pause: u32 = pause
            .parse()
            .ok()
            .filter(|p| *p <= 86_400)
            .ok_or("Pause must be a number of seconds up to 86400")?;
        Ok(Element {
            days,
            start,
            end,
            pause,
        })
    }

    /// The element in its canonical stored form.
    pub fn to_value(&self) -> Value {
        dict([
            ("Days", Value::str(self.days)),
            (
                "When",
                Value::from(format!(
                    "{:02}:{:02}-{:02}:{:02}",
                    self.start / 60,
                    self.start % 60,
                    self.end / 60,
                    self.end % 60
                )),
            ),
            ("Pause", Value::from(self.pause.to_string())),
        ])
    }

    fn on(&self, day: Weekday) -> bool {
        let weekend = matches!(day, Weekday::Sat | Weekday::Sun);
        match self.days {
            "Every Day" => true,
            "Mon-Fri" => !weekend,
            "Sat-Sun" => weekend,
            name => name.starts_with(&format!("{day:?}")[..3]),
        }
    }

    /// Whether `at` falls in this element's period.
    fn covers(&self, at: NaiveDateTime) -> bool {
        let minute = at.hour() * 60 + at.minute();
        let today = at.weekday();
        if self.start < self.end {
            self.on(today) && minute >= self.start && minute < self.end
        } else {
            (self.on(today) && minute >= self.start) || (self.on(today.pred()) && minute < self.end)
        }
    }
}

/// A whole schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    elements: Vec<Element>,
}

impl Schedule {
    /// Reads the stored array; an absent or empty one is "no restriction".
    pub fn from_value(v: &Value) -> Result<Schedule, String> {
        let items = match v {
            Value::Array(a) => a.as_slice(),
            Value::Dict(d) if d.is_empty() => &[],
            _ => return Err("the schedule must be an array".into()),
        };
        if items.len() > MAX_ELEMENTS {
            return Err("the schedule has too many elements".into());
        }
        let elements = items
            .iter()
            .enumerate()
            .map(|(i, v)| Element::parse(v).map_err(|e| format!("element {}: {e}", i + 1)))
            .collect::<Result<_, _>>()?;
        Ok(Schedule { elements })
    }

    /// The schedule in its stored form.
    pub fn to_value(&self) -> Value {
        Value::Array(self.elements.iter().map(Element::to_value).collect())
    }

    /// Whether the link may be used at `at` (always, with no elements).
    pub fn is_open(&self, at: NaiveDateTime) -> bool {
        self.elements.is_empty() || self.elements.iter().any(|e| e.covers(at))
    }

    /// The Pause in force at `at`: the least of the open elements' Pauses (the most permissive
    /// row wins where rows overlap, as for opening); `None` when closed, 0 with no elements.
    pub fn pause(&self, at: NaiveDateTime) -> Option<u32> {
        if self.elements.is_empty() {
            return Some(0);
        }
        self.elements
            .iter()
            .filter(|e| e.covers(at))
            .map(|e| e.pause)
            .min()
    }

    /// When the link next opens after `at` (`at` itself when open now); `None` if never.
    pub fn next_open(&self, at: NaiveDateTime) -> Option<NaiveDateTime> {
        if self.is_open(at) {
            return Some(at);
        }
        // Periods start on whole minutes, so the first open minute within eight days is it.
        let base = at.with_second(0)?.with_nanosecond(0)?;
        (1..=8 * 24 * 60)
            .map(|m| base + Duration::minutes(m))
            .find(|t| self.is_open(*t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(day: u32, h: u32, m: u32) -> NaiveDateTime {
        // 2026-11-23 is a Monday.
        NaiveDate::from_ymd_opt(2026, 11, 23 + day)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .expect("valid test time")
    }

    fn schedule(text: &str) -> Schedule {
        Schedule::from_value(&crate::format::parse(text.as_bytes()).expect("format"))
            .expect("schedule")
    }

    #[test]
    fn pause_of_the_open_rows() {
        let s = schedule(
            r#"({Days="Every Day"; When="08:00-18:00"; Pause=600;},{Days="Mon-Fri"; When="12:00-13:00"; Pause=60;})"#,
        );
        assert_eq!(s.pause(at(0, 9, 0)), Some(600));
        assert_eq!(s.pause(at(0, 12, 30)), Some(60), "the most permissive row");
        assert_eq!(s.pause(at(0, 19, 0)), None);
        assert_eq!(schedule("()").pause(at(0, 19, 0)), Some(0));
    }

    #[test]
    fn empty_means_always_open() {
        let s = schedule("()");
        assert!(s.is_open(at(0, 3, 0)));
        assert_eq!(s.next_open(at(0, 3, 0)), Some(at(0, 3, 0)));
    }

    #[test]
    fn day_periods() {
        let s = schedule(r#"({Days="Mon-Fri"; When="08:00-18:00"; Pause=600;})"#);
        assert!(s.is_open(at(0, 8, 0)));
        assert!(s.is_open(at(4, 17, 59)));
        assert!(!s.is_open(at(0, 18, 0)));
        assert!(!s.is_open(at(5, 12, 0)), "Saturday");
        assert_eq!(
            s.next_open(at(4, 19, 0)),
            Some(at(7, 8, 0)),
            "Friday evening → Monday"
        );
    }

    #[test]
    fn periods_over_midnight_belong_to_their_start_day() {
        let s = schedule(r#"({Days="Mon-Fri"; When="19:30-07:30"; Pause=0;})"#);
        assert!(s.is_open(at(0, 23, 0)));
        assert!(
            s.is_open(at(1, 7, 29)),
            "Tuesday morning continues Monday night"
        );
        assert!(
            !s.is_open(at(0, 7, 0)),
            "Monday morning continues Sunday night: closed"
        );
        assert!(
            s.is_open(at(5, 7, 0)),
            "Saturday morning continues Friday night"
        );
        assert!(!s.is_open(at(5, 19, 30)), "Saturday evening");
        assert_eq!(s.next_open(at(1, 8, 0)), Some(at(1, 19, 30)));
    }

    #[test]
    fn single_weekday_and_whole_day() {
        let s = schedule(r#"({Days=Sunday; When="00:00-24:00"; Pause=0;})"#);
        assert!(s.is_open(at(6, 0, 0)) && s.is_open(at(6, 23, 59)));
        assert!(!s.is_open(at(0, 0, 0)));
    }

    #[test]
    fn bad_elements_say_why() {
        for (bad, why) in [
            (
                r#"({Days=Never; When="01:00-02:00"; Pause=0;})"#,
                "Days must be",
            ),
            (
                r#"({Days=Monday; When="1:00-02:00"; Pause=0;})"#,
                "When must be",
            ),
            (
                r#"({Days=Monday; When="01:00-01:00"; Pause=0;})"#,
                "empty period",
            ),
            (r#"({Days=Monday; When="01:00-02:00"; Pause=-1;})"#, "Pause"),
            (
                r#"({Days=Monday; When="01:00-02:00";})"#,
                "Pause is missing",
            ),
        ] {
            let v = crate::format::parse(bad.as_bytes()).expect("format");
            let e = Schedule::from_value(&v).expect_err(bad);
            assert!(
                e.starts_with("element 1: ") && e.contains(why),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn canonical_form() {
        let s = schedule(r#"({Days="mon-fri"; When="19:30-07:30"; Pause=600;})"#);
        assert_eq!(
            crate::format::to_bytes(&s.to_value()),
            br#"({Days="Mon-Fri";When="19:30-07:30";Pause=600;})"#.to_vec()
        );
    }
}
