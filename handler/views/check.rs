//! Test support: a small reader for the HTML this module writes, and the checks every page and
//! mail must pass. The reader is strict where a browser is lenient (unbalanced tags fail), so a
//! slip in our markup shows up here first.

use super::{Brand, GuestSummary, RequestSummary, ReviewAsk};
use crate::core::policy::Language;
use crate::settings::Branding;
use std::collections::HashSet;
use std::sync::LazyLock;

/// Values an attacker would type into every field to break out of HTML.
pub(crate) const HOSTILE_MARKUP: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "' onmouseover='alert(1)",
];

/// A value that tries to start lines of its own in a text mail: a header block and a link.
pub(crate) const HOSTILE_LINES: &str =
    "x\r\nBcc: victim@evil.example\r\n\r\nhttps://evil.example/phish\r\n";

/// The forged link in [`HOSTILE_LINES`].
pub(crate) const FORGED_LINK: &str = "https://evil.example/phish";

/// One hostile value holding all of the above.
pub(crate) fn hostile() -> String {
    format!("{}{HOSTILE_LINES}", HOSTILE_MARKUP.concat())
}

/// The raw pieces that must never reach HTML unescaped.
pub(crate) const FORBIDDEN_IN_HTML: &[&str] =
    &["<script", "<img src=x", "' onmouseover='", "javascript:"];

pub(crate) fn branding(org: &str) -> Branding {
    Branding {
        org_name: org.to_string(),
        accent_color: "#0f6cbd".to_string(),
        logo_file: None,
        terms_url: None,
        terms_text: None,
        mail_footer: None,
    }
}

pub(crate) const LANGS: [Language; 2] = [Language::En, Language::Sv];

/// Contoso's plain branding (no logo, no terms, no footer), as the pages and mails get it.
pub(crate) fn contoso() -> Brand<'static> {
    static CONTOSO: LazyLock<Branding> = LazyLock::new(|| branding("Contoso"));
    without_logo(&CONTOSO)
}

/// `branding` as the pages and mails get it when no logo is configured.
pub(crate) fn without_logo(branding: &Branding) -> Brand<'_> {
    Brand {
        branding,
        has_logo: false,
    }
}

/// `branding` as the pages and mails get it with a logo.
pub(crate) fn with_logo(branding: &Branding) -> Brand<'_> {
    Brand {
        branding,
        has_logo: true,
    }
}

/// Åsa Berg's one-step request from Fabrikam.
pub(crate) fn request_from_asa<'a>(
    justification: Option<&'a str>,
    submitted: &'a str,
) -> RequestSummary<'a> {
    RequestSummary {
        request_id: "r-1",
        email: "asa@fabrikam.example",
        first_name: "Åsa",
        last_name: "Berg",
        organisation: "Fabrikam",
        job_title: None,
        justification,
        policy: "fabrikam.example",
        submitted,
        stage: 1,
        stages: 1,
        stage_one_approved_by: None,
    }
}

/// A request with `v` in every field a requester or the portal filled in, at step `stage` of
/// `stages` (approved in step 1 by `v` from step 2 on).
pub(crate) fn summary(v: &str, stage: u8, stages: u8) -> RequestSummary<'_> {
    RequestSummary {
        request_id: v,
        email: v,
        first_name: v,
        last_name: v,
        organisation: v,
        job_title: Some(v),
        justification: Some(v),
        policy: v,
        submitted: v,
        stage,
        stages,
        stage_one_approved_by: (stage > 1).then_some(v),
    }
}

/// A guest with `v` in every field a requester or the portal filled in.
pub(crate) fn guest(v: &str) -> GuestSummary<'_> {
    GuestSummary {
        first_name: v,
        last_name: v,
        email: v,
        organisation: v,
        policy: v,
        invited: v,
        access_ends: Some(v),
    }
}

/// A review asking to keep for 90 days, answered by `v` (a date the portal formats).
pub(crate) fn ask(v: &str, keep_without_answer: bool) -> ReviewAsk<'_> {
    ReviewAsk {
        days: 90,
        deadline: v,
        keep_without_answer,
    }
}

/// `s` as the `.html` templates escape it, for tests that build the markup they expect.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::new();
    askama::filters::Escaper::write_escaped_str(&super::escapers::Html, &mut out, s)
        .expect("escaping into a String does not fail");
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    pub name: String,
    pub closing: bool,
    pub attrs: Vec<(String, String)>,
}

impl Tag {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

const VOID: &[&str] = &["meta", "img", "input", "br", "hr", "link"];

/// The tags of `html`, in order; panics on markup this module never writes.
pub(crate) fn tags(html: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if let Some(after) = rest.strip_prefix('!') {
            let close = after.find('>').expect("unterminated <!");
            rest = &after[close + 1..];
            continue;
        }
        let closing = rest.starts_with('/');
        if closing {
            rest = &rest[1..];
        }
        let name_end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .expect("unterminated tag");
        let name = rest[..name_end].to_ascii_lowercase();
        assert!(
            !name.is_empty(),
            "a bare '<' in the markup: {}",
            &rest[..rest.len().min(40)]
        );
        rest = &rest[name_end..];
        let mut attrs = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('>') {
                rest = after;
                break;
            }
            let attr_end = rest
                .find(|c: char| c == '=' || c == '>' || c.is_whitespace())
                .expect("unterminated attribute");
            let attr = rest[..attr_end].to_ascii_lowercase();
            assert!(!attr.is_empty(), "malformed tag <{name}");
            rest = &rest[attr_end..];
            if let Some(after) = rest.strip_prefix('=') {
                let quote = after.chars().next().expect("attribute without value");
                assert_eq!(quote, '"', "<{name} {attr}=...> must use double quotes");
                let value_end = after[1..].find('"').expect("unterminated value");
                attrs.push((attr, after[1..1 + value_end].to_string()));
                rest = &after[value_end + 2..];
            } else {
                attrs.push((attr, String::new()));
            }
        }
        if !closing && (name == "style" || name == "title") {
            let end = rest
                .find(&format!("</{name}>"))
                .expect("unterminated raw text element");
            assert!(
                name != "title" || !rest[..end].contains('<'),
                "markup in <title>"
            );
            rest = &rest[end..];
        }
        out.push(Tag {
            name,
            closing,
            attrs,
        });
    }
    out
}

/// Every non-void element is closed, in order.
pub(crate) fn assert_balanced(html: &str) {
    let mut open: Vec<String> = Vec::new();
    for tag in tags(html) {
        if VOID.contains(&tag.name.as_str()) {
            assert!(!tag.closing, "</{}> closes a void element", tag.name);
            continue;
        }
        if tag.closing {
            let top = open
                .pop()
                .unwrap_or_else(|| panic!("stray </{}>", tag.name));
            assert_eq!(top, tag.name, "</{}> closes <{top}>", tag.name);
        } else {
            open.push(tag.name);
        }
    }
    assert!(open.is_empty(), "unclosed: {open:?}");
}

/// The text between `<tag ...>` and the next `</tag>`, for each such element.
pub(crate) fn inner(html: &str, tag: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = html;
    let open = format!("<{tag}");
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        if !after.starts_with(['>', ' ']) {
            rest = after;
            continue;
        }
        let body_start = after.find('>').unwrap() + 1;
        let end = after[body_start..]
            .find(&format!("</{tag}>"))
            .expect("unclosed element");
        found.push(after[body_start..body_start + end].to_string());
        rest = &after[body_start + end..];
    }
    found
}

/// What every page must be: the checks axe-core would make that can be made on the markup,
/// and our own output rules.
pub(crate) fn assert_page(html: &str, lang: Language) {
    assert!(html.starts_with("<!doctype html>\n"), "doctype");
    assert_balanced(html);
    let tags = tags(html);
    let opening: Vec<&Tag> = tags.iter().filter(|t| !t.closing).collect();
    let count = |name: &str| opening.iter().filter(|t| t.name == name).count();
    let first = |name: &str| opening.iter().find(|t| t.name == name).copied();

    assert_eq!(
        first("html").unwrap().attr("lang"),
        Some(lang.as_str()),
        "lang"
    );
    assert_eq!(count("title"), 1, "one <title>");
    let title = inner(html, "title").remove(0);
    assert!(!title.trim().is_empty(), "empty <title>");
    assert_eq!(count("h1"), 1, "one <h1>");
    assert!(!inner(html, "h1")[0].trim().is_empty(), "empty <h1>");
    assert_eq!(count("main"), 1, "one <main>");
    assert!(
        opening.iter().any(|t| t.name == "meta"
            && t.attr("name") == Some("viewport")
            && t.attr("content") == Some("width=device-width, initial-scale=1")),
        "viewport"
    );

    // No script in any form, nothing from elsewhere.
    assert_eq!(count("script"), 0, "<script>");
    assert_eq!(
        count("iframe") + count("object") + count("embed") + count("link"),
        0
    );
    for tag in &opening {
        for (name, value) in &tag.attrs {
            assert!(
                !name.starts_with("on"),
                "event handler {name} on <{}>",
                tag.name
            );
            assert!(name != "style", "style attribute on <{}>", tag.name);
            if name == "href" || name == "src" || name == "action" {
                assert!(
                    !value.to_ascii_lowercase().starts_with("javascript:"),
                    "{name}={value}"
                );
            }
        }
        if tag.name == "img" {
            assert_eq!(tag.attr("src"), Some("/api/signup/logo"));
            assert!(
                tag.attr("alt").is_some_and(|alt| !alt.is_empty()),
                "img alt"
            );
        }
        if tag.name == "form" {
            assert_eq!(tag.attr("method"), Some("post"), "forms post");
            assert!(tag.attr("action").is_some_and(|a| a.starts_with("/api/")));
        }
    }

    // Ids are unique; labels and descriptions point at things that exist.
    let mut ids = HashSet::new();
    for tag in &opening {
        if let Some(id) = tag.attr("id") {
            assert!(ids.insert(id.to_string()), "duplicate id {id}");
        }
    }
    let labelled: HashSet<&str> = opening
        .iter()
        .filter(|t| t.name == "label")
        .map(|t| t.attr("for").expect("<label> without for"))
        .collect();
    for id in &labelled {
        assert!(ids.contains(*id), "label for missing id {id}");
    }
    for tag in &opening {
        let is_control = match tag.name.as_str() {
            "input" => !matches!(tag.attr("type"), Some("hidden" | "submit" | "button")),
            "textarea" | "select" => true,
            _ => false,
        };
        if is_control {
            let id = tag
                .attr("id")
                .unwrap_or_else(|| panic!("<{}> without id", tag.name));
            assert!(
                labelled.contains(id),
                "<{} id={id}> has no <label for>",
                tag.name
            );
            assert!(
                tag.attr("name").is_some(),
                "<{} id={id}> has no name",
                tag.name
            );
        }
        if let Some(described) = tag.attr("aria-describedby") {
            for id in described.split(' ') {
                assert!(ids.contains(id), "aria-describedby points at missing {id}");
            }
        }
        if let Some(labelledby) = tag.attr("aria-labelledby") {
            assert!(ids.contains(labelledby), "aria-labelledby {labelledby}");
        }
        if tag.name == "input" && tag.attr("type") == Some("hidden") {
            assert!(tag.attr("name").is_some() && tag.attr("value").is_some());
        }
    }
    for button in inner(html, "button") {
        assert!(!button.trim().is_empty(), "a button without text");
    }

    // The language switch, to the other language.
    let other = match lang {
        Language::En => "sv",
        Language::Sv => "en",
    };
    assert!(
        opening.iter().any(|t| t.name == "a"
            && t.attr("hreflang") == Some(other)
            && t.attr("lang") == Some(other)
            && t.attr("href")
                .is_some_and(|h| h.contains(&format!("lang={other}")))),
        "language switch to {other}"
    );
}

/// No hostile value survived into `html` as markup.
pub(crate) fn assert_no_raw_hostile(html: &str) {
    for raw in FORBIDDEN_IN_HTML {
        assert!(!html.contains(raw), "{raw:?} reached the HTML");
    }
    for raw in HOSTILE_MARKUP {
        assert!(!html.contains(raw), "{raw:?} reached the HTML");
    }
}

/// The same markup (tag names and attribute names, in order) whatever the values: escaping
/// kept every value inside its text or attribute.
pub(crate) fn assert_same_structure(benign: &str, hostile: &str) {
    let shape = |html: &str| -> Vec<(String, bool, Vec<String>)> {
        tags(html)
            .into_iter()
            .map(|t| {
                (
                    t.name,
                    t.closing,
                    t.attrs.into_iter().map(|(n, _)| n).collect(),
                )
            })
            .collect()
    };
    assert_eq!(
        shape(benign),
        shape(hostile),
        "hostile values changed the markup"
    );
}
