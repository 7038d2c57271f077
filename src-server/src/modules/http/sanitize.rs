//! The HTML sanitiser for mail shown in WebMail: turns the HTML part of a message (untrusted,
//! written by anyone who can send mail) into a fragment that is safe to put into a WebMail page.
//!
//! Standards: HTML parsing is the WHATWG HTML5 algorithm (html5ever, through `ammonia`), URLs are
//! parsed as WHATWG URLs, so the sanitiser sees tags, attributes and schemes exactly as a browser
//! would (entities, tabs and newlines inside `java&#x09;script:`, upper case, unclosed or misnested
//! tags, comments and CDATA are resolved before any decision). `cid:` URLs are RFC 2392.
//!
//! Security: the output is an allow-list, never a block-list:
//! - elements: plain text formatting, lists, tables, links and images only. `script`, `style`,
//!   `title`, `svg`, `math` and the like lose their content too; every other element (`iframe`,
//!   `object`, `embed`, `form`, `input`, `meta`, `base`, `link`, ...) is dropped and its text kept;
//! - attributes: a short list per element; no event handlers, no `id`/`name`/`class` (no DOM
//!   clobbering, no borrowing WebMail's own CSS), no `srcset`/`background`/`ping`;
//! - URLs: links may be `http`, `https` or `mailto`, open in a new window with
//!   `rel="noopener noreferrer"`; relative URLs are removed (they would reach WebMail itself);
//!   images may be `cid:` (mapped through [`SanitizeOptions::cid_url`]), raster `data:image/...`,
//!   or `http`/`https` only when [`SanitizeOptions::allow_remote`] is set — otherwise the `src`
//!   is removed (the `alt` text stays) and [`Sanitized::remote_blocked`] tells WebMail to offer
//!   "show remote content";
//! - CSS: only `style` attributes survive, and only with a property allow-list (no `position`,
//!   `background-image`, `content`, `behavior`...); a `style` holding `url`, `image`, `expression`,
//!   `@`, `\` escapes or `javascript` is removed whole rather than repaired.
//!
//! Defence in depth: [`content_security_policy`] gives the header WebMail should send with a page
//! that shows sanitised mail, so a sanitiser bug still cannot run script or load remote images.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ammonia::{Builder, Url, UrlRelative};

/// Largest HTML part sanitised; the rest is cut (at a character boundary; the HTML5 parser
/// closes whatever was left open).
pub const MAX_HTML: usize = 8 * 1024 * 1024;

/// How [`sanitize`] treats what a message refers to.
#[derive(Debug, Clone, Default)]
pub struct SanitizeOptions {
    /// Keep `http`/`https` images (the user asked for remote content). Off by default: remote
    /// images tell the sender that, when and where the message was read.
    pub allow_remote: bool,
    /// How `cid:` references (RFC 2392, parts of the same message) become URLs: the content-id,
    /// percent-encoded, is appended to this prefix (e.g. `/Session/ID/Message/5/cid/`). `None`
    /// drops `cid:` images.
    pub cid_url: Option<String>,
}

/// The result of [`sanitize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    /// The safe HTML fragment.
    pub html: String,
    /// Whether a remote image was removed because [`SanitizeOptions::allow_remote`] was off.
    pub remote_blocked: bool,
}

/// Elements kept (with their text) besides ammonia's defaults; the defaults are plain
/// formatting, lists, tables, links and images.
const EXTRA_TAGS: &[&str] = &["font", "big", "tfoot"];

/// Elements removed together with everything inside them.
const DROP_CONTENT_TAGS: &[&str] = &[
    "script", "style", "title", "svg", "math", "template", "noscript", "noembed", "noframes",
    "iframe", "object", "embed", "applet", "select", "textarea", "xmp",
];

/// Default elements not kept: `area`/`map` (image maps with links over images) and
/// `details`/`summary` (interactive, can hide content behind a click).
const DROPPED_DEFAULT_TAGS: &[&str] = &["area", "map", "details", "summary", "nav"];

/// Presentational attributes mail clients write, per element, besides ammonia's defaults.
const EXTRA_ATTRS: &[(&str, &[&str])] = &[
    (
        "table",
        &["width", "border", "cellpadding", "cellspacing", "bgcolor"],
    ),
    ("td", &["width", "height", "valign", "bgcolor", "nowrap"]),
    ("th", &["width", "height", "valign", "bgcolor", "nowrap"]),
    ("tr", &["valign", "bgcolor"]),
    ("font", &["color", "face", "size"]),
    ("p", &["align"]),
    ("div", &["align"]),
    ("img", &["border", "hspace", "vspace"]),
];

/// CSS properties kept in `style` attributes: colours, fonts, text, boxes. Nothing that
/// positions an element over WebMail's own page, loads anything, or inserts content.
const STYLE_PROPERTIES: &[&str] = &[
    "color",
    "background-color",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "font-variant",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "line-height",
    "letter-spacing",
    "word-spacing",
    "white-space",
    "vertical-align",
    "direction",
    "display",
    "list-style-type",
    "border",
    "border-top",
    "border-right",
    "border-bottom",
    "border-left",
    "border-color",
    "border-style",
    "border-width",
    "border-collapse",
    "border-spacing",
    "border-radius",
    "padding",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "width",
    "height",
    "max-width",
    "min-width",
];

/// Substrings (lower case) for which a whole `style` attribute is removed: anything that can
/// load a resource or run code, and CSS escapes that could spell one of them.
const STYLE_FORBIDDEN: &[&str] = &[
    "url",
    "image",
    "expression",
    "javascript",
    "vbscript",
    "behavior",
    "binding",
    "@",
    "\\",
];

/// Sanitises an HTML part for display; see the module header for what is kept.
pub fn sanitize_html(html: &str, opts: &SanitizeOptions) -> String {
    sanitize(html, opts).html
}

/// Sanitises an HTML part and says whether remote content was blocked.
pub fn sanitize(html: &str, opts: &SanitizeOptions) -> Sanitized {
    let html = cut(html, MAX_HTML);
    let blocked = Arc::new(AtomicBool::new(false));
    let filter = UrlFilter {
        allow_remote: opts.allow_remote,
        cid_url: opts.cid_url.clone(),
        blocked: blocked.clone(),
    };
    let mut builder = Builder::default();
    builder
        .add_tags(EXTRA_TAGS)
        .rm_tags(DROPPED_DEFAULT_TAGS)
        .add_clean_content_tags(DROP_CONTENT_TAGS)
        .add_generic_attributes(&["style", "dir"])
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect())
        // `cid` and `data` pass the scheme check here and are narrowed in the filter below.
        .url_schemes(
            ["http", "https", "mailto", "cid", "data"]
                .into_iter()
                .collect::<HashSet<_>>(),
        )
        // Relative URLs are removed by the filter (they would point at WebMail itself); the
        // filter's own cid mapping yields relative URLs, which must then pass.
        .url_relative(UrlRelative::PassThrough)
        .link_rel(Some("noopener noreferrer"))
        .set_tag_attribute_value("a", "target", "_blank")
        .strip_comments(true)
        .attribute_filter(move |element, attribute, value| {
            filter.filter(element, attribute, value)
        });
    for (tag, attrs) in EXTRA_ATTRS {
        builder.add_tag_attributes(tag, attrs.iter());
    }
    let html = builder.clean(html).to_string();
    Sanitized {
        html,
        remote_blocked: blocked.load(Ordering::Relaxed),
    }
}

/// The `Content-Security-Policy` for a page showing mail sanitised with `opts`: no script, no
/// plugins, no frames, no form targets, no base; images from the page's own origin (cid parts),
/// `data:`, and the network only when remote content is allowed; inline `style` attributes.
pub fn content_security_policy(opts: &SanitizeOptions) -> String {
    let img = if opts.allow_remote {
        "'self' data: http: https:"
    } else {
        "'self' data:"
    };
    format!(
        "default-src 'none'; img-src {img}; style-src 'self' 'unsafe-inline'; \
         form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
    )
}

/// The per-call attribute policy: URL narrowing and `style` rejection.
struct UrlFilter {
    allow_remote: bool,
    cid_url: Option<String>,
    blocked: Arc<AtomicBool>,
}

impl UrlFilter {
    /// Returns the value to keep, or `None` to remove the attribute.
    fn filter<'u>(&self, element: &str, attribute: &str, value: &'u str) -> Option<Cow<'u, str>> {
        match attribute {
            "style" => {
                let lower = value.to_ascii_lowercase();
                (!STYLE_FORBIDDEN.iter().any(|bad| lower.contains(bad))).then_some(value.into())
            }
            "href" if element == "a" => {
                matches!(scheme(value)?.as_str(), "http" | "https" | "mailto")
                    .then_some(value.into())
            }
            "cite" => matches!(scheme(value)?.as_str(), "http" | "https").then_some(value.into()),
            "src" if element == "img" => self.image(value),
            // Any other attribute that can carry a URL is not on the allow-list; be sure.
            "src" | "href" | "xlink:href" | "action" | "formaction" | "data" | "poster"
            | "background" | "srcset" | "ping" => None,
            _ => Some(value.into()),
        }
    }

    /// An `<img src>`: cid parts mapped, raster data URLs kept, remote images only if allowed.
    fn image<'u>(&self, value: &'u str) -> Option<Cow<'u, str>> {
        match scheme(value)?.as_str() {
            "cid" => {
                let prefix = self.cid_url.as_ref()?;
                let id = value.trim().get(4..)?;
                Some(format!("{prefix}{}", percent_encode(&percent_decode(id))).into())
            }
            "data" => {
                let lower = value.trim().to_ascii_lowercase();
                ["png", "gif", "jpeg", "webp"]
                    .iter()
                    .any(|kind| {
                        lower
                            .strip_prefix("data:image/")
                            .and_then(|rest| rest.strip_prefix(kind))
                            .is_some_and(|rest| rest.starts_with(';') || rest.starts_with(','))
                    })
                    .then_some(value.into())
            }
            "http" | "https" if self.allow_remote => Some(value.into()),
            "http" | "https" => {
                self.blocked.store(true, Ordering::Relaxed);
                None
            }
            _ => None,
        }
    }
}

/// The scheme of an absolute URL as a browser parses it; `None` for relative or broken URLs.
fn scheme(value: &str) -> Option<String> {
    Url::parse(value).ok().map(|url| url.scheme().to_owned())
}

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// RFC 2392: a cid URL carries the Content-ID percent-encoded.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let hex = |b: &u8| (*b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = (
            bytes.get(i + 1).and_then(hex),
            bytes.get(i + 2).and_then(hex),
        );
        match (bytes[i], pair) {
            (b'%', (Some(h), Some(l))) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Percent-encodes everything but letters, digits, `-`, `_` and `~` (`.` too, so no id becomes
/// `..`): a content-id can only ever be one path segment under [`SanitizeOptions::cid_url`].
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
