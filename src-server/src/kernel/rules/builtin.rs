//! The two simplified rules every account has: Auto-Reply (guide.txt:11068-11102) and Redirect
//! All (guide.txt:11104-11139). They are stored as ordinary rules under reserved names, so the
//! engine needs nothing special; these functions build and recognise them for WebUser and the CLI.

use super::{Action, Condition, Field, Op, Rule};

/// Name of the built-in Auto-Reply rule.
pub const AUTO_REPLY: &str = "#Auto-Reply";
/// Name of the built-in Redirect All rule.
pub const REDIRECT_ALL: &str = "#Redirect All";
/// The string list the Auto-Reply rule remembers authors in.
pub const REPLIED_ADDRESSES: &str = "RepliedAddresses";
/// Priority of an enabled Auto-Reply rule (guide.txt:11090-11092).
pub const AUTO_REPLY_PRIORITY: u8 = 2;
/// Priority of an enabled Redirect All rule (guide.txt:11117-11119).
pub const REDIRECT_ALL_PRIORITY: u8 = 1;

/// The Auto-Reply rule: `Human Generated`, `From not in #RepliedAddresses` → `Reply with text`,
/// `Remember 'From' in RepliedAddresses`. Disabled keeps the text at priority 0.
pub fn auto_reply(text: &str, enabled: bool) -> Rule {
    Rule {
        priority: if enabled { AUTO_REPLY_PRIORITY } else { 0 },
        name: AUTO_REPLY.into(),
        conditions: vec![
            Condition::HumanGenerated,
            Condition::Text {
                field: Field::From,
                op: Op::NotIn,
                param: format!("#{REPLIED_ADDRESSES}"),
            },
        ],
        actions: vec![
            Action::ReplyWith(text.into()),
            Action::RememberFromIn(REPLIED_ADDRESSES.into()),
        ],
    }
}

/// The Redirect All options (guide.txt:11110-11133).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectAll {
    /// `Redirect All Mail to`: on or off.
    pub enabled: bool,
    /// The addresses.
    pub to: Vec<String>,
    /// `Keep a Copy`: off adds `Discard`.
    pub keep_copy: bool,
    /// `Do not Redirect Automatic Messages`: adds `Human Generated`.
    pub human_only: bool,
    /// `Preserve To/Cc fields`: `Mirror to` instead of `Redirect to`.
    pub preserve_to_cc: bool,
}

/// The Redirect All rule for these options.
pub fn redirect_all(o: &RedirectAll) -> Rule {
    let mut conditions = Vec::new();
    if o.human_only {
        conditions.push(Condition::HumanGenerated);
    }
    let mut actions = vec![if o.preserve_to_cc {
        Action::MirrorTo(o.to.clone())
    } else {
        Action::RedirectTo(o.to.clone())
    }];
    if !o.keep_copy {
        actions.push(Action::Discard);
    }
    Rule {
        priority: if o.enabled { REDIRECT_ALL_PRIORITY } else { 0 },
        name: REDIRECT_ALL.into(),
        conditions,
        actions,
    }
}

/// The Auto-Reply settings in a rule set: `(enabled, text)`, if the rule is there.
pub fn read_auto_reply(rules: &[Rule]) -> Option<(bool, String)> {
    let r = rules.iter().find(|r| r.name == AUTO_REPLY)?;
    r.actions.iter().find_map(|a| match a {
        Action::ReplyWith(t) => Some((r.enabled(), t.clone())),
        _ => None,
    })
}

/// The Redirect All options in a rule set, if the rule is there and has the simplified shape.
pub fn read_redirect_all(rules: &[Rule]) -> Option<RedirectAll> {
    let r = rules.iter().find(|r| r.name == REDIRECT_ALL)?;
    let human_only = match r.conditions.as_slice() {
        [] => false,
        [Condition::HumanGenerated] => true,
        _ => return None,
    };
    let (to, preserve_to_cc, keep_copy) = match r.actions.as_slice() {
        [Action::RedirectTo(t)] => (t.clone(), false, true),
        [Action::MirrorTo(t)] => (t.clone(), true, true),
        [Action::RedirectTo(t), Action::Discard] => (t.clone(), false, false),
        [Action::MirrorTo(t), Action::Discard] => (t.clone(), true, false),
        _ => return None,
    };
    Some(RedirectAll {
        enabled: r.enabled(),
        to,
        keep_copy,
        human_only,
        preserve_to_cc,
    })
}

/// Puts `rule` in place of the rule of the same name, or appends it.
pub fn replace_rule(rules: &mut Vec<Rule>, rule: Rule) {
    match rules.iter_mut().find(|r| r.name == rule.name) {
        Some(slot) => *slot = rule,
        None => rules.push(rule),
    }
}
