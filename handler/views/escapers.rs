//! How a value is made harmless on its way into a page or a mail: the two escapers the
//! templates apply to every `{{ value }}` by themselves (`askama.toml` ties them to the file
//! extensions), so no template, and no one adding a page, has to remember a call.
//!
//! - [`Html`] for `.html` templates: the five characters that could end a text or a quoted
//!   attribute value become character references, the same in text and in attributes.
//! - [`MailText`] for `.txt` templates (the text part of mails): nothing is escaped, as a text
//!   mail shows characters as they are, but every value becomes one line ([`one_line`]), so a
//!   name can't start a line of its own (a fake link, a forged "From:" block) or visually
//!   reorder the text around it.
//!
//! What a template writes itself (its markup, its line breaks) is ours and passes as written;
//! there is no `|safe` in the templates, so nothing a requester, an approver or an operator
//! typed can become markup.

use std::fmt::{self, Write};

/// The escaper of `.html` templates: `&`, `<`, `>`, `"` and `'` as the named or numeric
/// references mail clients and browsers all read (`&amp;` `&lt;` `&gt;` `&quot;` `&#39;`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Html;

impl askama::filters::Escaper for Html {
    fn write_escaped_str<W: Write>(&self, mut out: W, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            out.write_str(&rest[..at])?;
            out.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        out.write_str(rest)
    }
}

/// The escaper of `.txt` templates: each value as one line ([`one_line`]), otherwise as typed.
#[derive(Clone, Copy, Debug, Default)]
pub struct MailText;

impl askama::filters::Escaper for MailText {
    fn write_escaped_str<W: Write>(&self, mut out: W, s: &str) -> fmt::Result {
        for c in s.chars() {
            out.write_char(if breaks_text(c) { ' ' } else { c })?;
        }
        Ok(())
    }
}

/// `s` as one line of a text mail: every control character (CR, LF, tab, NEL...), the Unicode
/// line and paragraph separators and the bidirectional overrides become spaces, so the value
/// can neither start a line of its own nor visually reorder the text around it. What
/// [`MailText`] does to every value of a text template; mail subjects, which are no template,
/// call it directly.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if breaks_text(c) { ' ' } else { c })
        .collect()
}

fn breaks_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::check::escape;

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(escape("Åsa Öberg"), "Åsa Öberg");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn one_line_leaves_nothing_that_breaks_a_line() {
        let hostile = "a\r\nb\nc\rd\te\u{85}f\u{2028}g\u{2029}h\u{202e}i\u{0}j\u{7f}k\u{2066}l";
        let line = one_line(hostile);
        assert_eq!(line, "a  b c d e f g h i j k l");
        assert_eq!(line.lines().count(), 1);
        assert_eq!(one_line("Åsa O'Brien <x>"), "Åsa O'Brien <x>");
        let mut escaped = String::new();
        askama::filters::Escaper::write_escaped_str(&MailText, &mut escaped, hostile).unwrap();
        assert_eq!(escaped, line, "the text templates' escaper is one_line");
    }

    /// The filters each `{{ ... }}` of `template` applies, by name.
    fn filters(template: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let close = after.find("}}").expect("an expression ends");
            let expression = after[..close].replace("||", "");
            for filter in expression.split('|').skip(1) {
                let name = filter.trim_start_matches(['-', '+', '~']).trim();
                let name = name.split(|c: char| !c.is_alphanumeric() && c != '_');
                found.push(name.take(1).collect());
            }
            rest = &after[close + 2..];
        }
        found
    }

    #[test]
    fn no_template_takes_a_value_out_of_its_escaper() {
        // `|safe` would place a value as markup; `|escape(..)`/`|e(..)` would pick another
        // escaper by hand; a `{% filter %}` block would do either to a whole stretch.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("handler/views/templates");
        let mut folders = vec![root];
        let mut templates = 0;
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                    continue;
                }
                let template = std::fs::read_to_string(&path).unwrap();
                templates += 1;
                for filter in filters(&template) {
                    assert!(
                        !["safe", "escape", "e"].contains(&filter.as_str()),
                        "{}: |{filter}",
                        path.display()
                    );
                }
                assert!(!template.contains("{% filter"), "{}", path.display());
                assert!(!template.contains("{%- filter"), "{}", path.display());
            }
        }
        assert!(templates > 30, "read {templates} templates");
        assert_eq!(
            filters("{{ a }} {{ b|safe }} {{- c | e(\"txt\") -}} {% if x || y %}"),
            ["safe", "e"]
        );
    }
}
