//! What the frame every page shares shows (its markup is `templates/page.html`): document
//! head, the organisation's header with the language switch, the `<main>` card, the footer;
//! and the organisation's colour, made safe to use in pages and mails.
//!
//! The accent colour is chosen by an administrator, so nothing here trusts it to be readable:
//! the primary button gets white or black text, whichever [`text_on`] says contrasts enough, and
//! a dark border so its edge shows even when the accent is close to the page background.

use super::text::{fill, fill_org, text, Text};
use super::Brand;
use crate::core::policy::Language;

/// Used when the configured accent is not a `#rrggbb` colour (settings validate it; this is the
/// second line of defence, since the value goes into a `<style>` element, where HTML escaping
/// means nothing).
const DEFAULT_ACCENT: &str = "#0f6cbd";

/// WCAG 2.1 AA for normal-size text.
const MIN_TEXT_CONTRAST: f64 = 4.5;

/// The text colour to put on a background of `accent` (`#rrggbb`): white when white reaches a
/// contrast of 4.5:1, else black (which always does when white doesn't). An unreadable colour
/// string is treated as the default accent.
pub fn text_on(accent: &str) -> &'static str {
    let luminance = relative_luminance(accent)
        .or_else(|| relative_luminance(DEFAULT_ACCENT))
        .unwrap_or(0.0);
    if contrast(1.0, luminance) >= MIN_TEXT_CONTRAST {
        "#ffffff"
    } else {
        "#000000"
    }
}

/// The brand's accent if it is a `#rrggbb` colour, else the default.
pub(crate) fn accent<'a>(brand: &Brand<'a>) -> &'a str {
    let configured: &'a str = brand.branding.accent_color.as_str();
    if parse_hex(configured).is_some() {
        configured
    } else {
        DEFAULT_ACCENT
    }
}

fn parse_hex(colour: &str) -> Option<[u8; 3]> {
    let hex = colour.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// WCAG 2.1 relative luminance of an sRGB `#rrggbb` colour.
fn relative_luminance(colour: &str) -> Option<f64> {
    let linear = |channel: u8| {
        let c = f64::from(channel) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let [r, g, b] = parse_hex(colour)?;
    Some(0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b))
}

/// WCAG 2.1 contrast ratio between two relative luminances.
fn contrast(a: f64, b: f64) -> f64 {
    let (light, dark) = if a >= b { (a, b) } else { (b, a) };
    (light + 0.05) / (dark + 0.05)
}

/// Where the language switch points. Pages reached with a link (a token in the query) pass
/// their own path and query so switching language keeps the token; other pages switch in place
/// with a relative `?lang=`.
pub(crate) fn switch_href(self_path: Option<&str>, to: Language) -> String {
    let lang = to.as_str();
    match self_path.filter(|path| is_own_path(path)) {
        Some(path) if path.contains('?') => {
            let separator = if path.ends_with(['?', '&']) { "" } else { "&" };
            format!("{path}{separator}lang={lang}")
        }
        Some(path) => format!("{path}?lang={lang}"),
        None => format!("?lang={lang}"),
    }
}

/// A path on this site: starts with one `/` (not `//host`, not `\`), no fragment, nothing
/// invisible. Anything else would let a crafted request path send the switch elsewhere.
fn is_own_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains(['\\', '#'])
        && !path.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// What the frame of every page shows (`templates/page.html`): the document head, the
/// organisation's header with the language switch, the heading, the footer. Each page's
/// template struct carries one as `frame`.
pub(crate) struct Frame<'a> {
    pub t: &'static Text,
    pub lang: &'static str,
    /// The `<title>`: the heading and the organisation, "Error:" first when the page shows
    /// form errors, as screen readers read the title first.
    pub title: String,
    pub accent: &'a str,
    pub on_accent: &'static str,
    /// The logo's text alternative, when an operator configured a logo.
    pub logo_alt: Option<String>,
    pub org: &'a str,
    /// Where the language switch points, and the language it switches to.
    pub switch_href: String,
    switch_to: Language,
    pub other_lang: &'static str,
    pub other_name: &'static str,
    /// The `<h1>`.
    pub heading: String,
    pub footer: String,
}

impl<'a> Frame<'a> {
    /// The frame of a page headed `heading` whose language switch reloads it in place.
    pub fn new(brand: &Brand<'a>, lang: Language, heading: &str) -> Frame<'a> {
        let t = text(lang);
        let org = brand.branding.org_name.as_str();
        let accent = accent(brand);
        let other = match lang {
            Language::En => Language::Sv,
            Language::Sv => Language::En,
        };
        Frame {
            t,
            lang: lang.as_str(),
            title: format!("{heading} – {org}"),
            accent,
            on_accent: text_on(accent),
            logo_alt: brand.has_logo.then(|| fill(t.logo_alt, &[("org", org)])),
            org,
            switch_href: switch_href(None, other),
            switch_to: other,
            other_lang: other.as_str(),
            other_name: match other {
                Language::En => "English",
                Language::Sv => "Svenska",
            },
            heading: heading.to_string(),
            footer: fill(t.footer, &[("org", org)]),
        }
    }

    /// For a page reached with a link: `self_path` is its path and query without `lang`, so
    /// switching language keeps the link's token.
    pub fn reached_at(mut self, self_path: &str) -> Self {
        self.switch_href = switch_href(Some(self_path), self.switch_to);
        self
    }

    /// `sentence` filled with `values` and, for `{org}`, the organisation's name.
    pub fn say(&self, sentence: &str, values: &[(&str, &str)]) -> String {
        fill_org(sentence, self.org, values)
    }

    /// For a page that shows form errors: the title says so first.
    pub fn with_errors(mut self, has_errors: bool) -> Self {
        if has_errors {
            self.title = fill(self.t.title_error, &[("title", &self.title)]);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_on_a_dark_accent_black_on_a_light_one() {
        assert_eq!(text_on("#0f6cbd"), "#ffffff");
        assert_eq!(text_on("#000000"), "#ffffff");
        assert_eq!(text_on("#ffeb3b"), "#000000");
        assert_eq!(text_on("#FFFFFF"), "#000000");
        // Mid grey: white reaches only 3.9:1 here.
        assert_eq!(text_on("#808080"), "#000000");
        // The darkest grey where white still reaches 4.5:1, and the next lighter one.
        assert_eq!(text_on("#767676"), "#ffffff");
        assert_eq!(text_on("#777777"), "#000000");
    }

    #[test]
    fn the_chosen_text_colour_always_reaches_aa_contrast() {
        for r in (0..=255).step_by(15) {
            for g in (0..=255).step_by(15) {
                for b in (0..=255).step_by(15) {
                    let accent = format!("#{r:02x}{g:02x}{b:02x}");
                    let background = relative_luminance(&accent).unwrap();
                    let foreground = relative_luminance(text_on(&accent)).unwrap();
                    let ratio = contrast(background, foreground);
                    assert!(ratio >= MIN_TEXT_CONTRAST, "{accent}: {ratio:.2}");
                }
            }
        }
    }

    #[test]
    fn contrast_matches_known_values() {
        let white = relative_luminance("#ffffff").unwrap();
        let black = relative_luminance("#000000").unwrap();
        assert!((contrast(white, black) - 21.0).abs() < 1e-9);
        let blue = relative_luminance("#0f6cbd").unwrap();
        assert!((contrast(white, blue) - 5.38).abs() < 0.05);
    }

    #[test]
    fn malformed_colours_are_not_used() {
        for bad in [
            "red",
            "#fff",
            "#0f6cbd;}",
            "0f6cbd",
            "#0f6cbz",
            "#0f6cbd0",
            "",
        ] {
            assert_eq!(parse_hex(bad), None, "{bad}");
            assert_eq!(
                text_on(bad),
                "#ffffff",
                "{bad} falls back to the default accent"
            );
        }
        let branding = crate::views::check::branding("Contoso");
        let mut hostile = branding.clone();
        hostile.accent_color = "red}</style><script>".into();
        let brand = crate::views::check::without_logo(&hostile);
        assert_eq!(accent(&brand), DEFAULT_ACCENT);
        let brand = crate::views::check::without_logo(&branding);
        assert_eq!(accent(&brand), branding.accent_color);
    }

    #[test]
    fn the_language_switch_keeps_the_path_and_query() {
        assert_eq!(switch_href(None, Language::Sv), "?lang=sv");
        assert_eq!(
            switch_href(Some("/api/approve?token=abc.def"), Language::En),
            "/api/approve?token=abc.def&lang=en"
        );
        assert_eq!(
            switch_href(Some("/api/signup/verify"), Language::Sv),
            "/api/signup/verify?lang=sv"
        );
        assert_eq!(switch_href(Some("/a?"), Language::Sv), "/a?lang=sv");
        assert_eq!(switch_href(Some("/a?x=1&"), Language::Sv), "/a?x=1&lang=sv");
    }

    #[test]
    fn the_language_switch_never_leaves_the_site() {
        for foreign in [
            "//evil.example/x",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\\evil.example",
            "/a#frag",
            "/a\r\nb",
            "/a b",
            "",
            "api/approve",
        ] {
            assert_eq!(
                switch_href(Some(foreign), Language::Sv),
                "?lang=sv",
                "{foreign:?}"
            );
        }
    }
}
