//! The portal's mails, each as a subject, a text part and an HTML part.
//!
//! A mail is described once, as a [`Letter`] of blocks (sentences with holes, a call to action,
//! a list of facts, a quoted text), and rendered twice: for the text part every value goes
//! through [`one_line`] and every link stands alone on its own line; for the HTML part every
//! value is escaped and the layout is inline-styled, without images, for mail clients. The
//! subject is filled with the organisation's name only.

use super::layout::{accent, text_on};
use super::text::{fill, hours, text, Text};
use super::{
    escape, one_line, web_link, ApproverMailKind, Brand, Mail, RemovalReason, RequestSummary,
};
use crate::core::policy::Language;

/// The address-confirmation link, valid for `valid_hours`.
pub fn verification_mail(
    brand: &Brand,
    lang: Language,
    first_name: &str,
    link: &str,
    valid_hours: u32,
) -> Mail {
    let t = text(lang);
    let valid = hours(lang, u64::from(valid_hours));
    Letter {
        subject: t.verify_subject,
        heading: t.confirm_heading,
        name: first_name,
        blocks: vec![
            Block::say(t.verify_body),
            Block::Action {
                label: t.confirm_heading,
                url: link,
            },
            Block::Say(t.verify_valid, vec![("hours", &valid)]),
        ],
    }
    .render(brand, lang)
}

/// The guest invitation: the Microsoft redemption link.
pub fn invitation_mail(brand: &Brand, lang: Language, first_name: &str, redeem_url: &str) -> Mail {
    let t = text(lang);
    Letter {
        subject: t.invite_subject,
        heading: t.ready_heading,
        name: first_name,
        blocks: vec![
            Block::say(t.invite_body),
            Block::Action {
                label: t.ready_button,
                url: redeem_url,
            },
            Block::say(t.invite_how),
        ],
    }
    .render(brand, lang)
}

/// The request was denied; the approver's reason only when they chose to share it.
pub fn denied_mail(brand: &Brand, lang: Language, first_name: &str, reason: Option<&str>) -> Mail {
    let t = text(lang);
    let mut blocks = vec![Block::say(t.denied_body)];
    if let Some(reason) = reason.filter(|reason| !reason.trim().is_empty()) {
        blocks.push(Block::say(t.denied_reason));
        blocks.push(Block::Quote(reason));
    }
    blocks.push(Block::say(t.contact_person));
    Letter {
        subject: t.denied_subject,
        heading: t.denied_heading,
        name: first_name,
        blocks,
    }
    .render(brand, lang)
}

/// A mailed link is no proof for the address's policy: the partner is asked to sign in with
/// their work account on the form.
pub fn sign_in_needed_mail(
    brand: &Brand,
    lang: Language,
    first_name: &str,
    form_url: &str,
) -> Mail {
    let t = text(lang);
    Letter {
        subject: t.sign_in_mail_subject,
        heading: t.sign_in_needed_heading,
        name: first_name,
        blocks: vec![
            Block::say(t.sign_in_mail_body),
            Block::Action {
                label: t.sign_in_mail_button,
                url: form_url,
            },
        ],
    }
    .render(brand, lang)
}

/// No approver decided within the approval window.
pub fn expired_mail(brand: &Brand, lang: Language, first_name: &str) -> Mail {
    let t = text(lang);
    Letter {
        subject: t.expired_subject,
        heading: t.expired_subject,
        name: first_name,
        blocks: vec![Block::say(t.expired_body), Block::say(t.expired_next)],
    }
    .render(brand, lang)
}

/// To an approver: the request and the link to the decision page. The requester's details are
/// in the body only, never in the subject.
pub fn approver_mail(
    brand: &Brand,
    lang: Language,
    summary: &RequestSummary,
    link: &str,
    kind: ApproverMailKind,
) -> Mail {
    let t = text(lang);
    let (subject, intro) = match kind {
        ApproverMailKind::Request => (t.approver_subject_request, t.approver_body_request),
        ApproverMailKind::Reminder => (t.approver_subject_reminder, t.approver_body_reminder),
        ApproverMailKind::Escalation => (t.approver_subject_escalation, t.approver_body_escalation),
    };
    let name = format!("{} {}", summary.first_name, summary.last_name);
    let stage = summary.stage.to_string();
    let stages = summary.stages.to_string();
    let justification = summary
        .justification
        .filter(|text| !text.trim().is_empty())
        .unwrap_or(t.fact_no_justification);
    let mut blocks = vec![Block::say(intro)];
    if summary.stages > 1 {
        blocks.push(Block::Say(
            t.stage,
            vec![("stage", &stage), ("stages", &stages)],
        ));
    }
    if let Some(by) = summary.stage_one_approved_by {
        blocks.push(Block::Say(t.stage_one_by, vec![("by", by)]));
    }
    blocks.push(Block::Facts(vec![
        (t.fact_name, name.trim()),
        (t.fact_email, summary.email),
        (t.fact_organisation, summary.organisation),
        (t.fact_justification, justification),
        (t.fact_policy, summary.policy),
        (t.fact_submitted, summary.submitted),
        (t.fact_request_id, summary.request_id),
    ]));
    blocks.push(Block::Action {
        label: t.approver_action,
        url: link,
    });
    blocks.push(Block::say(t.approver_note));
    Letter {
        subject,
        heading: t.decide_heading,
        name: "",
        blocks,
    }
    .render(brand, lang)
}

/// The guest has not redeemed the invitation; it goes on `remove_on` (formatted date).
pub fn redeem_reminder_mail(
    brand: &Brand,
    lang: Language,
    first_name: &str,
    redeem_url: &str,
    remove_on: &str,
) -> Mail {
    let t = text(lang);
    Letter {
        subject: t.redeem_subject,
        heading: t.redeem_subject,
        name: first_name,
        blocks: vec![
            Block::Say(t.redeem_body, vec![("date", remove_on)]),
            Block::Action {
                label: t.ready_button,
                url: redeem_url,
            },
            Block::say(t.invite_how),
            Block::say(t.redeem_ignore),
        ],
    }
    .render(brand, lang)
}

/// The cleanup will remove the guest on `remove_on` (formatted date), and why.
pub fn removal_warning_mail(
    brand: &Brand,
    lang: Language,
    first_name: &str,
    remove_on: &str,
    reason: RemovalReason,
) -> Mail {
    let t = text(lang);
    let why = match reason {
        RemovalReason::AccessPeriodOver => t.removal_period_over,
        RemovalReason::Inactive => t.removal_inactive,
    };
    Letter {
        subject: t.removal_subject,
        heading: t.removal_subject,
        name: first_name,
        blocks: vec![
            Block::say(why),
            Block::Say(t.removal_when, vec![("date", remove_on)]),
            Block::say(t.removal_contact),
        ],
    }
    .render(brand, lang)
}

/// A piece of a mail, rendered to text and to HTML.
enum Block<'a> {
    /// A sentence template and its values (`{org}` is always available).
    Say(&'static str, Vec<(&'static str, &'a str)>),
    /// A link to follow, as a button in HTML and on its own line in text.
    Action { label: &'static str, url: &'a str },
    /// Labelled values.
    Facts(Vec<(&'static str, &'a str)>),
    /// Someone's own words, set apart.
    Quote(&'a str),
}

impl Block<'_> {
    fn say(template: &'static str) -> Self {
        Block::Say(template, Vec::new())
    }
}

/// A mail before rendering. `subject` and `heading` are templates with `{org}` only.
struct Letter<'a> {
    subject: &'static str,
    heading: &'static str,
    /// Whom to greet; blank greets no one by name.
    name: &'a str,
    blocks: Vec<Block<'a>>,
}

/// Inline styles: mail clients ignore `<style>` elements more often than not.
const FONT: &str =
    "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif";
const P: &str = "margin:0 0 16px;font-size:16px;line-height:1.5";
const MUTED: &str = "#4b5563";
const LINK: &str = "#0b57a4";

impl Letter<'_> {
    fn render(&self, brand: &Brand, lang: Language) -> Mail {
        let t = text(lang);
        let org = brand.branding.org_name.as_str();
        let subject = one_line(&fill(self.subject, &[("org", &one_line(org))]))
            .trim()
            .to_string();
        Mail {
            text: self.text(t, org, brand),
            html: self.html(t, org, brand, lang, &subject),
            subject,
        }
    }

    fn greeting(&self, t: &Text) -> String {
        let name = self.name.trim();
        if name.is_empty() {
            t.greeting_no_name.to_string()
        } else {
            fill(t.greeting, &[("name", name)])
        }
    }

    fn text(&self, t: &Text, org: &str, brand: &Brand) -> String {
        let say = |template: &str, values: &[(&str, &str)]| -> String {
            let values: Vec<(&str, String)> = values
                .iter()
                .map(|(hole, value)| (*hole, one_line(value)))
                .chain([("org", one_line(org))])
                .collect();
            let values: Vec<(&str, &str)> = values
                .iter()
                .map(|(hole, value)| (*hole, value.as_str()))
                .collect();
            fill(template, &values)
        };
        let mut parts = vec![one_line(&self.greeting(t))];
        for block in &self.blocks {
            parts.push(match block {
                Block::Say(template, values) => say(template, values),
                Block::Action { label, url } => match web_link(url) {
                    Some(url) => format!("{label}:\n{url}"),
                    None => label.to_string(),
                },
                Block::Facts(facts) => facts
                    .iter()
                    .map(|(label, value)| format!("{label}: {}", one_line(value)))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Block::Quote(words) => format!("  {}", one_line(words.trim())),
            });
        }
        let footer = footer(t, brand)
            .lines()
            .map(one_line)
            .collect::<Vec<_>>()
            .join("\n");
        format!("{}\n\n-- \n{footer}\n", parts.join("\n\n"))
    }

    fn html(&self, t: &Text, org: &str, brand: &Brand, lang: Language, subject: &str) -> String {
        let accent = accent(brand);
        let on_accent = text_on(accent);
        let p = |text: &str| format!("<p style=\"{P}\">{}</p>\n", escape(text));
        let mut body = p(&self.greeting(t));
        for block in &self.blocks {
            body.push_str(&match block {
                Block::Say(template, values) => {
                    let mut values = values.clone();
                    values.push(("org", org));
                    p(&fill(template, &values))
                }
                Block::Action { label, url } => match web_link(url) {
                    Some(url) => {
                        let url = escape(url);
                        format!(
                            "<p style=\"margin:24px 0\"><a href=\"{url}\" style=\"display:inline-block;\
padding:12px 20px;background:{accent};color:{on_accent};border:2px solid #1b1b1b;\
border-radius:4px;font-weight:600;font-size:16px;text-decoration:none\">{label}</a></p>\n\
<p style=\"margin:0 0 16px;font-size:13px;line-height:1.5;color:{MUTED}\">{fallback}<br>\
<a href=\"{url}\" style=\"color:{LINK};word-break:break-all\">{url}</a></p>\n",
                            label = escape(label),
                            fallback = escape(t.mail_link_fallback),
                        )
                    }
                    None => p(label),
                },
                Block::Facts(facts) => {
                    let rows: String = facts
                        .iter()
                        .map(|(label, value)| {
                            format!(
                                "<tr><th scope=\"row\" style=\"text-align:left;vertical-align:top;\
padding:4px 16px 4px 0;font-weight:600\">{}</th><td dir=\"auto\" style=\"padding:4px 0;\
white-space:pre-line;word-break:break-word\">{}</td></tr>\n",
                                escape(label),
                                escape(value)
                            )
                        })
                        .collect();
                    format!(
                        "<table style=\"border-collapse:collapse;margin:0 0 16px;font-size:15px;\
line-height:1.4\">\n{rows}</table>\n"
                    )
                }
                Block::Quote(words) => format!(
                    "<blockquote dir=\"auto\" style=\"margin:0 0 16px;padding:8px 12px;\
border-left:4px solid #d1d5db;white-space:pre-line\">{}</blockquote>\n",
                    escape(words.trim())
                ),
            });
        }
        let footer = escape(&footer(t, brand)).replace('\n', "<br>");
        format!(
            "<!doctype html>\n\
<html lang=\"{lang}\">\n\
<head>\n\
<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title}</title>\n\
</head>\n\
<body style=\"margin:0;padding:0;background:#f3f4f6;color:#1b1b1b;{FONT}\">\n\
<div role=\"article\" aria-roledescription=\"email\" aria-label=\"{title}\" lang=\"{lang}\" \
style=\"max-width:560px;margin:0 auto;padding:24px 16px\">\n\
<div style=\"background:#ffffff;border:1px solid #d1d5db;border-top:6px solid {accent};\
border-radius:6px;padding:24px\">\n\
<p style=\"margin:0 0 8px;font-size:14px;color:{MUTED}\">{org_html}</p>\n\
<h1 style=\"margin:0 0 20px;font-size:22px;line-height:1.3\">{heading}</h1>\n\
{body}\
</div>\n\
<p style=\"margin:16px 0 0;font-size:13px;line-height:1.5;color:{MUTED}\">{footer}</p>\n\
</div>\n\
</body>\n\
</html>\n",
            lang = lang.as_str(),
            title = escape(subject),
            org_html = escape(org),
            heading = escape(&fill(self.heading, &[("org", org)])),
        )
    }
}

/// The operator's footer (its line breaks kept, CR/LF pairs as LF), or a neutral line saying
/// who sent the mail.
fn footer(t: &Text, brand: &Brand) -> String {
    match brand
        .branding
        .mail_footer
        .as_deref()
        .filter(|footer| !footer.trim().is_empty())
    {
        Some(footer) => footer.replace("\r\n", "\n").trim().to_string(),
        None => fill(
            t.mail_footer,
            &[("org", &one_line(&brand.branding.org_name))],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Branding;
    use crate::views::check::{
        assert_balanced, assert_no_raw_hostile, assert_same_structure, branding, hostile, inner,
        tags, FORGED_LINK, LANGS,
    };

    const VERIFY_LINK: &str = "https://portal.example/api/signup/verify?token=v.1-2_3";
    const REDEEM_LINK: &str = "https://invitations.example/redeem/?tenant=t&ticket=x";
    const DECIDE_LINK: &str = "https://portal.example/api/approve?token=d.4-5_6";

    fn summary<'a>(v: &'a str, stage: u8, stages: u8) -> RequestSummary<'a> {
        RequestSummary {
            request_id: v,
            email: v,
            first_name: v,
            last_name: v,
            organisation: v,
            justification: Some(v),
            policy: v,
            submitted: v,
            stage,
            stages,
            stage_one_approved_by: (stage > 1).then_some(v),
        }
    }

    /// Every mail, in every variant, with `v` as every value that is not ours; and the link
    /// each one carries, if any.
    fn all_mails(
        brand: &Brand,
        lang: Language,
        v: &str,
    ) -> Vec<(String, Mail, Option<&'static str>)> {
        let mut mails = vec![
            (
                "verification".to_string(),
                verification_mail(brand, lang, v, VERIFY_LINK, 24),
                Some(VERIFY_LINK),
            ),
            (
                "invitation".to_string(),
                invitation_mail(brand, lang, v, REDEEM_LINK),
                Some(REDEEM_LINK),
            ),
            (
                "denied".to_string(),
                denied_mail(brand, lang, v, None),
                None,
            ),
            (
                "denied with reason".to_string(),
                denied_mail(brand, lang, v, Some(v)),
                None,
            ),
            ("expired".to_string(), expired_mail(brand, lang, v), None),
            (
                "redeem reminder".to_string(),
                redeem_reminder_mail(brand, lang, v, REDEEM_LINK, v),
                Some(REDEEM_LINK),
            ),
        ];
        for reason in [RemovalReason::AccessPeriodOver, RemovalReason::Inactive] {
            mails.push((
                format!("removal {reason:?}"),
                removal_warning_mail(brand, lang, v, v, reason),
                None,
            ));
        }
        for kind in [
            ApproverMailKind::Request,
            ApproverMailKind::Reminder,
            ApproverMailKind::Escalation,
        ] {
            for (stage, stages) in [(1, 1), (2, 2)] {
                mails.push((
                    format!("approver {kind:?} {stage}/{stages}"),
                    approver_mail(brand, lang, &summary(v, stage, stages), DECIDE_LINK, kind),
                    Some(DECIDE_LINK),
                ));
            }
        }
        mails
    }

    fn brand(branding: &Branding) -> Brand<'_> {
        Brand {
            branding,
            has_logo: true,
        }
    }

    /// The lines of a text part that are a web address on their own.
    fn link_lines(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|line| line.starts_with("https://") || line.starts_with("http://"))
            .collect()
    }

    #[test]
    fn every_mail_in_both_languages_is_complete() {
        let b = branding("Contoso");
        for lang in LANGS {
            for (name, mail, _) in all_mails(&brand(&b), lang, "Åsa") {
                assert!(mail.subject.contains("Contoso"), "{name}: {}", mail.subject);
                assert!(!mail.text.trim().is_empty(), "{name}");
                assert!(mail.text.contains("Contoso"), "{name}");
                assert!(mail.html.starts_with("<!doctype html>\n"), "{name}");
                assert_balanced(&mail.html);
                let html_tag = tags(&mail.html)
                    .into_iter()
                    .find(|t| t.name == "html")
                    .unwrap();
                assert_eq!(html_tag.attr("lang"), Some(lang.as_str()), "{name}");
                assert_eq!(
                    inner(&mail.html, "title"),
                    vec![escape(&mail.subject)],
                    "{name}"
                );
                assert_eq!(inner(&mail.html, "h1").len(), 1, "{name}");
                assert!(
                    !mail.html.contains("<img") && !mail.html.contains("<script"),
                    "{name}"
                );
                assert!(mail.text.ends_with('\n'), "{name}");
            }
        }
    }

    #[test]
    fn links_stand_alone_on_their_own_line_and_are_linked_in_html() {
        let b = branding("Contoso");
        for lang in LANGS {
            for (name, mail, link) in all_mails(&brand(&b), lang, "Åsa") {
                match link {
                    Some(link) => {
                        assert_eq!(link_lines(&mail.text), vec![link], "{name}");
                        let found: Vec<&str> = mail
                            .text
                            .split_whitespace()
                            .filter(|w| w.contains("://"))
                            .collect();
                        assert_eq!(
                            found,
                            vec![link],
                            "{name}: links found by splitting on whitespace"
                        );
                        let hrefs: Vec<String> = tags(&mail.html)
                            .into_iter()
                            .filter_map(|t| t.attr("href").map(str::to_string))
                            .collect();
                        assert!(!hrefs.is_empty(), "{name}");
                        assert!(
                            hrefs.iter().all(|h| *h == escape(link)),
                            "{name}: {hrefs:?}"
                        );
                    }
                    None => {
                        assert!(link_lines(&mail.text).is_empty(), "{name}");
                        assert!(!mail.html.contains("href="), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn hostile_values_cannot_forge_lines_headers_or_markup() {
        let evil = Branding {
            mail_footer: None,
            ..branding(&format!("Contoso{}", hostile()))
        };
        let good = branding("Contoso");
        for lang in LANGS {
            let hostile_mails = all_mails(&brand(&evil), lang, &hostile());
            let benign_mails = all_mails(&brand(&good), lang, "Åsa O'Neil");
            for ((name, bad, link), (_, fine, _)) in hostile_mails.iter().zip(&benign_mails) {
                // Subject: one line, and nothing of the requester's.
                assert!(
                    !bad.subject.contains(['\r', '\n']),
                    "{name}: {:?}",
                    bad.subject
                );
                assert!(!bad.subject.chars().any(char::is_control), "{name}");
                // Text: no CR at all, no forged header line, no forged link line.
                assert!(!bad.text.contains('\r'), "{name}");
                for line in bad.text.lines() {
                    assert!(!line.starts_with("Bcc:"), "{name}: forged line {line:?}");
                    assert_ne!(line.trim(), FORGED_LINK, "{name}: forged link line");
                }
                assert_eq!(
                    link_lines(&bad.text),
                    link.iter().copied().collect::<Vec<_>>(),
                    "{name}"
                );
                assert_eq!(
                    bad.text.lines().count(),
                    fine.text.lines().count(),
                    "{name}: a value added lines"
                );
                // HTML: escaped, same markup.
                assert_no_raw_hostile(&bad.html);
                assert_same_structure(&fine.html, &bad.html);
            }
        }
    }

    #[test]
    fn subjects_never_carry_requester_input() {
        let b = branding("Contoso");
        for lang in LANGS {
            let one = all_mails(&brand(&b), lang, "Åsa");
            let other = all_mails(&brand(&b), lang, "Mallory from Evil Corp");
            for ((name, a, _), (_, b, _)) in one.iter().zip(&other) {
                assert_eq!(a.subject, b.subject, "{name}");
                assert!(!a.subject.contains("Åsa"), "{name}");
            }
        }
        let crlf = branding("Contoso\r\nBcc: x@evil.example");
        let mail = expired_mail(&brand(&crlf), Language::En, "Åsa");
        assert_eq!(
            mail.subject,
            "Your request for access to Contoso  Bcc: x@evil.example has expired"
        );
    }

    #[test]
    fn approver_mails_differ_by_kind_and_show_the_request() {
        let b = branding("Contoso");
        let s = RequestSummary {
            request_id: "r-1",
            email: "asa@fabrikam.example",
            first_name: "Åsa",
            last_name: "Berg",
            organisation: "Fabrikam",
            justification: Some("Project Falcon\nwith Kim"),
            policy: "fabrikam.example",
            submitted: "2025-05-02 09:14",
            stage: 1,
            stages: 1,
            stage_one_approved_by: None,
        };
        let kinds = [
            ApproverMailKind::Request,
            ApproverMailKind::Reminder,
            ApproverMailKind::Escalation,
        ];
        for lang in LANGS {
            let mails: Vec<Mail> = kinds
                .iter()
                .map(|k| approver_mail(&brand(&b), lang, &s, DECIDE_LINK, *k))
                .collect();
            assert_ne!(mails[0].subject, mails[1].subject);
            assert_ne!(mails[1].subject, mails[2].subject);
            assert_ne!(mails[0].subject, mails[2].subject);
        }
        let mail = approver_mail(
            &brand(&b),
            Language::En,
            &s,
            DECIDE_LINK,
            ApproverMailKind::Request,
        );
        assert_eq!(mail.subject, "New request for guest access to Contoso");
        for line in [
            "Name: Åsa Berg",
            "Email address: asa@fabrikam.example",
            "Company or organisation: Fabrikam",
            "Justification: Project Falcon with Kim",
            "Policy: fabrikam.example",
            "Submitted: 2025-05-02 09:14",
            "Request ID: r-1",
            "Review the request:",
        ] {
            assert!(mail.text.lines().any(|l| l == line), "{line}");
        }
        assert!(
            !mail.text.contains("step"),
            "no steps on one-step approvals"
        );
        assert!(mail.html.contains("<td dir=\"auto\" style=\"padding:4px 0;white-space:pre-line;word-break:break-word\">Project Falcon\nwith Kim</td>"));
        let sv = approver_mail(
            &brand(&b),
            Language::Sv,
            &RequestSummary {
                justification: None,
                stage: 2,
                stages: 2,
                stage_one_approved_by: Some("kim@contoso.example"),
                ..s
            },
            DECIDE_LINK,
            ApproverMailKind::Reminder,
        );
        assert_eq!(
            sv.subject,
            "Påminnelse: en ansökan om gäståtkomst till Contoso väntar på dig"
        );
        assert!(sv.text.lines().any(|l| l == "Motivering: Ingen angiven"));
        assert!(sv.text.lines().any(|l| l == "Det här är steg 2 av 2."));
        assert!(sv
            .text
            .lines()
            .any(|l| l == "Godkänd i steg 1 av kim@contoso.example."));
        assert!(sv.text.lines().any(|l| l == "Granska ansökan:"));
    }

    #[test]
    fn the_reason_for_a_denial_is_shared_only_when_given() {
        let b = branding("Contoso");
        let without = denied_mail(&brand(&b), Language::En, "Åsa", None);
        assert!(!without.text.contains("The reason given:"));
        let blank = denied_mail(&brand(&b), Language::En, "Åsa", Some("  "));
        assert_eq!(blank, without);
        let with = denied_mail(
            &brand(&b),
            Language::Sv,
            "Åsa",
            Some("Inget pågående\r\nsamarbete"),
        );
        assert!(with
            .text
            .contains("Angivet skäl:\n\n  Inget pågående  samarbete\n"));
        assert!(with
            .html
            .contains(">Inget pågående\r\nsamarbete</blockquote>"));
        assert!(with.text.contains("kontakta din kontaktperson på Contoso"));
        assert_eq!(with.subject, "Din ansökan om åtkomst till Contoso");
    }

    #[test]
    fn greetings_use_the_first_name_when_there_is_one() {
        let b = branding("Contoso");
        let named = verification_mail(&brand(&b), Language::Sv, " Åsa ", VERIFY_LINK, 24);
        assert!(named.text.starts_with("Hej Åsa!\n\n"));
        let unnamed = verification_mail(&brand(&b), Language::En, "", VERIFY_LINK, 1);
        assert!(unnamed.text.starts_with("Hi,\n\n"));
        assert!(unnamed
            .text
            .contains("The link is valid for 1 hour and can be used once."));
        assert_eq!(unnamed.subject, "Confirm your email address for Contoso");
        assert_eq!(named.subject, "Bekräfta din e-postadress för Contoso");
    }

    #[test]
    fn the_footer_is_the_operators_or_a_neutral_line() {
        let b = branding("Contoso");
        let neutral = expired_mail(&brand(&b), Language::En, "Åsa");
        assert!(neutral.text.ends_with(
            "-- \nThis message was sent by Contoso's partner access portal. If you did not ask for it, you can ignore it.\n"
        ));
        assert!(neutral
            .html
            .contains("This message was sent by Contoso&#39;s partner access portal."));
        let custom = Branding {
            mail_footer: Some("Contoso AB\r\nBox 1, Stockholm <www.contoso.example>".into()),
            ..branding("Contoso")
        };
        let mail = expired_mail(&brand(&custom), Language::Sv, "Åsa");
        assert!(mail
            .text
            .ends_with("-- \nContoso AB\nBox 1, Stockholm <www.contoso.example>\n"));
        assert!(mail
            .html
            .contains("Contoso AB<br>Box 1, Stockholm &lt;www.contoso.example&gt;</p>"));
        assert!(!mail.text.contains("partnerportalen"));
    }

    #[test]
    fn cleanup_mails_name_the_date_and_the_reason() {
        let b = branding("Contoso");
        let reminder =
            redeem_reminder_mail(&brand(&b), Language::En, "Åsa", REDEEM_LINK, "1 June 2025");
        assert!(reminder
            .text
            .contains("Accept it before 1 June 2025, otherwise it will be removed."));
        assert_eq!(
            reminder.subject,
            "Reminder: accept your invitation to Contoso"
        );
        let period = removal_warning_mail(
            &brand(&b),
            Language::Sv,
            "Åsa",
            "1 juni 2025",
            RemovalReason::AccessPeriodOver,
        );
        let inactive = removal_warning_mail(
            &brand(&b),
            Language::Sv,
            "Åsa",
            "1 juni 2025",
            RemovalReason::Inactive,
        );
        assert!(period
            .text
            .contains("Perioden som din gäståtkomst till Contoso gällde för har tagit slut."));
        assert!(inactive
            .text
            .contains("Ditt gästkonto hos Contoso har inte använts på länge."));
        assert!(inactive
            .text
            .contains("Din åtkomst tas bort den 1 juni 2025."));
        assert_eq!(period.subject, inactive.subject);
    }

    #[test]
    fn links_that_are_not_web_addresses_are_not_sent() {
        let b = branding("Contoso");
        for link in [
            "javascript:alert(1)",
            "https://ok.example/a\r\nhttps://evil.example/",
        ] {
            let mail = invitation_mail(&brand(&b), Language::En, "Åsa", link);
            assert!(
                !mail.text.contains("javascript:") && !mail.text.contains("evil.example"),
                "{link:?}"
            );
            assert!(!mail.html.contains("href="), "{link:?}");
            assert!(link_lines(&mail.text).is_empty());
        }
    }

    #[test]
    fn the_button_colour_follows_the_accent() {
        let mut b = branding("Contoso");
        b.accent_color = "#ffeb3b".into();
        let mail = invitation_mail(&brand(&b), Language::En, "Åsa", REDEEM_LINK);
        assert!(mail
            .html
            .contains("background:#ffeb3b;color:#000000;border:2px solid #1b1b1b"));
        b.accent_color = "#0f6cbd".into();
        let mail = invitation_mail(&brand(&b), Language::En, "Åsa", REDEEM_LINK);
        assert!(mail
            .html
            .contains("background:#0f6cbd;color:#ffffff;border:2px solid #1b1b1b"));
    }
}
