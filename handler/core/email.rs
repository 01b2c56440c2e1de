//! Email addresses and domains the portal can trust.
//!
//! An anonymous form decides, from nothing but the address someone typed, whether a guest
//! account may be created in the directory. Everything downstream — policy matching, rate
//! limits, the invitation, the approver mail, the audit trail — therefore works on the values
//! built here and never on the raw input. [`EmailAddress::parse`] and [`Domain::parse`] are the
//! only ways to build them, so a value of either type is valid by construction.
//!
//! The rules are deliberately narrower than RFC 5321/5322, because every extra form an address
//! can take is another way for two strings to mean the same mailbox (or to look like they do):
//!
//! - **Nothing is trimmed or repaired.** Whitespace anywhere is an error; the web layer trims
//!   a form field before calling `parse`, so a stray space in the middle is a typo we report.
//! - **The domain is what follows the last `@`.** A local part that still contains `@` is
//!   rejected, as are quoted local parts, comments, display-name forms and IP literals.
//! - **Invisible and direction-changing characters are rejected everywhere** (control
//!   characters, zero-width and other default-ignorable code points, bidi controls), because
//!   they make two different addresses render identically.
//! - **The local part is ASCII `atext` and dots only.** SMTPUTF8 local parts are rejected: Entra
//!   ID B2B invitations to them are not reliable and they widen the confusable surface. The
//!   local part keeps its case and any `+tag` exactly as typed (RFC 5321 says local parts are
//!   case-sensitive; the mailbox owner decides). For identity comparisons use
//!   [`EmailAddress::identity_key`], which lower-cases the ASCII local part because Exchange
//!   Online and Entra ID treat addresses case-insensitively.
//! - **Domains are normalised with IDNA UTS #46** (non-transitional, STD3 ASCII rules) to
//!   lower-case A-labels (punycode). Comparisons are byte comparisons of that ASCII form, label
//!   by label: never Unicode case folding, never substring or bare suffix matching. UTS #46
//!   mapping is a *normalisation* of width and case: full-width `ｃｏｎｔｏｓｏ．com` is the
//!   same DNS name as `contoso.com`, resolves to the same servers and therefore reaches the same
//!   mailbox, so it is accepted and canonicalised rather than rejected. Mapping that would turn
//!   one *visible* name into a different one is handled by the confusable checks below.
//! - **Internationalised labels must be single-script, use only characters UTS #39 allows in
//!   identifiers, and must not be a look-alike of an ASCII name** (a label whose UTS #39
//!   skeleton is pure ASCII but differs from the label, such as Cyrillic `аррӏе`, dotless-ı
//!   `gıthub`, or `gi̇thub` from Turkish `İ`). Such a domain is rejected, so it can match no
//!   policy. The cost: a label whose only non-ASCII letters have ASCII skeletons (Danish
//!   `kæmpe`, since `æ` reads as `ae`) is refused too; labels with letters like `å`, `ä`, `ö`
//!   or `ü` are not affected.
//! - UTS #46 compatibility mappings that land on ASCII (`ⓐⓟⓟⓛⓔ.com`, `ﬁle.com`,
//!   `𝐚𝐩𝐩𝐥𝐞.com`) are accepted for the same reason as full-width: the canonical form *is*
//!   `apple.com`, which is what is stored, matched and mailed, so nothing can be spoofed.
//! - Lengths are measured on the canonical form: local part <= 64 octets, each label <= 63,
//!   domain <= 253, whole address <= 254.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use unicode_security::{GeneralSecurityProfile, MixedScript};

/// Longest input, in bytes, that is looked at at all. A canonical address is at most 254 ASCII
/// octets; even written with four-byte Unicode characters in the domain it stays well under
/// this, so anything longer is refused before any Unicode processing is spent on it.
const MAX_INPUT_BYTES: usize = 1024;
/// RFC 5321 section 4.5.3.1.1.
const MAX_LOCAL_OCTETS: usize = 64;
/// RFC 5321 section 4.5.3.1.3 read together with the 256-octet path limit (errata 1690).
const MAX_ADDRESS_OCTETS: usize = 254;
/// RFC 1035 section 2.3.4 (255 octets on the wire is 253 in dotted text form).
const MAX_DOMAIN_OCTETS: usize = 253;
const MAX_LABEL_OCTETS: usize = 63;

/// Why an address or domain was refused. Each variant is one rule; `Display` tells a person what
/// to change and [`EmailError::code`] gives a stable machine code for APIs and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailError {
    /// Nothing was entered.
    Empty,
    /// The input is longer than any valid address could be.
    InputTooLong,
    /// `Name <a@b>` or any angle bracket.
    DisplayName,
    /// A `"quoted"` local part (or any double quote).
    QuotedLocalPart,
    /// An RFC 5322 comment `(...)` (or any parenthesis).
    Comment,
    /// A space, tab, line break or other Unicode white space anywhere.
    Whitespace,
    /// A control character (C0, DEL, C1) other than white space.
    ControlCharacter,
    /// A bidirectional control (U+061C, U+200E/F, U+202A..U+202E, U+2066..U+2069).
    BidiControl,
    /// A zero-width or otherwise invisible (default-ignorable) character.
    InvisibleCharacter,
    /// No `@` at all.
    MissingAt,
    /// Nothing before the `@`.
    EmptyLocalPart,
    /// A non-ASCII character before the `@`.
    NonAsciiLocalPart,
    /// An ASCII character before the `@` that is neither RFC 5322 `atext` nor a dot.
    InvalidLocalCharacter(char),
    /// The part before the `@` starts or ends with a dot.
    LocalPartDotAtEdge,
    /// The part before the `@` contains two dots in a row.
    LocalPartConsecutiveDots,
    /// The part before the `@` is longer than 64 octets.
    LocalPartTooLong,
    /// The whole address is longer than 254 octets.
    AddressTooLong,
    /// Nothing after the `@`.
    EmptyDomain,
    /// A domain literal such as `[192.0.2.1]`.
    IpLiteral,
    /// The domain ends with a dot.
    TrailingDot,
    /// Two dots in a row, or a dot at the start of the domain.
    EmptyLabel,
    /// A label (the text between dots) is longer than 63 octets in its ASCII form.
    LabelTooLong,
    /// A label starts or ends with a hyphen.
    LabelHyphen,
    /// The domain is longer than 253 octets in its ASCII form.
    DomainTooLong,
    /// An ASCII character other than letters, digits, hyphen and dot in the domain.
    DomainCharacter(char),
    /// IDNA (UTS #46) processing refused the domain.
    InvalidInternationalDomain,
    /// A character UTS #39 does not allow in identifiers (symbols, emoji, historic scripts).
    RestrictedCharacter,
    /// Only one label, like `localhost`.
    SingleLabel,
    /// The last label is all digits (an IP address or a made-up top-level domain).
    NumericTld,
    /// A label mixes writing systems, such as Latin with Cyrillic.
    MixedScript,
    /// A label imitates an ASCII name with look-alike letters.
    Confusable,
}

impl EmailError {
    /// A stable, snake_case machine code for this rule; never changes once published.
    pub fn code(&self) -> &'static str {
        match self {
            EmailError::Empty => "empty",
            EmailError::InputTooLong => "input_too_long",
            EmailError::DisplayName => "display_name",
            EmailError::QuotedLocalPart => "quoted_local_part",
            EmailError::Comment => "comment",
            EmailError::Whitespace => "whitespace",
            EmailError::ControlCharacter => "control_character",
            EmailError::BidiControl => "bidi_control",
            EmailError::InvisibleCharacter => "invisible_character",
            EmailError::MissingAt => "missing_at",
            EmailError::EmptyLocalPart => "empty_local_part",
            EmailError::NonAsciiLocalPart => "non_ascii_local_part",
            EmailError::InvalidLocalCharacter(_) => "invalid_local_character",
            EmailError::LocalPartDotAtEdge => "local_part_dot_at_edge",
            EmailError::LocalPartConsecutiveDots => "local_part_consecutive_dots",
            EmailError::LocalPartTooLong => "local_part_too_long",
            EmailError::AddressTooLong => "address_too_long",
            EmailError::EmptyDomain => "empty_domain",
            EmailError::IpLiteral => "ip_literal",
            EmailError::TrailingDot => "trailing_dot",
            EmailError::EmptyLabel => "empty_label",
            EmailError::LabelTooLong => "label_too_long",
            EmailError::LabelHyphen => "label_hyphen",
            EmailError::DomainTooLong => "domain_too_long",
            EmailError::DomainCharacter(_) => "domain_character",
            EmailError::InvalidInternationalDomain => "invalid_international_domain",
            EmailError::RestrictedCharacter => "restricted_character",
            EmailError::SingleLabel => "single_label",
            EmailError::NumericTld => "numeric_tld",
            EmailError::MixedScript => "mixed_script",
            EmailError::Confusable => "confusable",
        }
    }
}

impl fmt::Display for EmailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sentence = match self {
            EmailError::Empty => "Enter an email address.",
            EmailError::InputTooLong => "The address is far too long to be an email address.",
            EmailError::DisplayName => "Enter only the address, like name@contoso.com, without a name or angle brackets.",
            EmailError::QuotedLocalPart => "The address contains a double quote; enter it without quotes.",
            EmailError::Comment => "The address contains a parenthesis; enter it without comments in brackets.",
            EmailError::Whitespace => "The address contains a space or line break; remove it.",
            EmailError::ControlCharacter => "The address contains a control character; type it again by hand.",
            EmailError::BidiControl => "The address contains an invisible text-direction character; type it again by hand.",
            EmailError::InvisibleCharacter => "The address contains an invisible (zero-width) character; type it again by hand.",
            EmailError::MissingAt => "The address has no @.",
            EmailError::EmptyLocalPart => "There is nothing before the @.",
            EmailError::NonAsciiLocalPart => "The part before @ may only use the letters a-z and A-Z, digits and ordinary punctuation.",
            EmailError::InvalidLocalCharacter(c) => return write!(f, "The part before @ contains '{c}', which is not allowed there."),
            EmailError::LocalPartDotAtEdge => "The part before @ cannot start or end with a dot.",
            EmailError::LocalPartConsecutiveDots => "The part before @ cannot contain two dots in a row.",
            EmailError::LocalPartTooLong => "The part before @ is longer than 64 characters.",
            EmailError::AddressTooLong => "The address is longer than 254 characters.",
            EmailError::EmptyDomain => "There is nothing after the @; add the domain, like contoso.com.",
            EmailError::IpLiteral => "Use a domain name after the @, not an IP address in brackets.",
            EmailError::TrailingDot => "The domain ends with a dot; remove it.",
            EmailError::EmptyLabel => "The domain has two dots in a row or starts with a dot.",
            EmailError::LabelTooLong => "A part of the domain between dots is longer than 63 characters.",
            EmailError::LabelHyphen => "A part of the domain between dots starts or ends with a hyphen.",
            EmailError::DomainTooLong => "The domain is longer than 253 characters.",
            EmailError::DomainCharacter(c) => return write!(f, "The domain contains '{c}'; a domain may only contain letters, digits, hyphens and dots."),
            EmailError::InvalidInternationalDomain => "The domain is not a valid international domain name; check its spelling.",
            EmailError::RestrictedCharacter => "The domain contains a symbol, emoji or historic letter that is not accepted in domain names here.",
            EmailError::SingleLabel => "The domain needs at least one dot, like contoso.com.",
            EmailError::NumericTld => "The domain ends in a number; use a domain name like contoso.com, not an IP address.",
            EmailError::MixedScript => "The domain mixes letters from different alphabets (for example Latin and Cyrillic) in one part.",
            EmailError::Confusable => "The domain uses letters that only look like ordinary Latin letters; type it with a plain keyboard layout.",
        };
        f.write_str(sentence)
    }
}

impl std::error::Error for EmailError {}

/// A domain name in canonical form: lower-case ASCII A-labels (punycode), at least two labels,
/// no trailing dot. Built only by [`Domain::parse`] (directly or as part of an address).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Parses a domain as typed by a person: the same rules as the part of an address after
    /// the `@`. Unicode input is accepted and stored as A-labels; `BÜCHER.example` becomes
    /// `xn--bcher-kva.example`.
    pub fn parse(input: &str) -> Result<Domain, EmailError> {
        if input.is_empty() {
            return Err(EmailError::EmptyDomain);
        }
        if input.len() > MAX_INPUT_BYTES {
            return Err(EmailError::InputTooLong);
        }
        check_characters(input)?;
        parse_domain_part(input)
    }

    /// The canonical ASCII form, e.g. `xn--bcher-kva.example`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` is `other`, or — only if `include_subdomains` — a subdomain of it,
    /// compared label-wise on the canonical ASCII form: `mail.contoso.com` is within
    /// `contoso.com`, `evilcontoso.com` never is.
    pub fn is_within(&self, other: &Domain, include_subdomains: bool) -> bool {
        let (me, them) = (self.0.as_bytes(), other.0.as_bytes());
        if me == them {
            return true;
        }
        include_subdomains
            && me.len() > them.len()
            && me.ends_with(them)
            && me[me.len() - them.len() - 1] == b'.'
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Domain::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An email address the portal can trust: parsed once, canonical, and only ever built through
/// [`EmailAddress::parse`].
///
/// It holds the canonical string `local@ascii-domain` (so [`EmailAddress::as_str`] borrows
/// rather than allocates) together with the parsed domain. Equality, ordering and hashing
/// follow the canonical string, which keeps the local part's case: use
/// [`EmailAddress::identity_key`] to decide whether two addresses are the same person.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress {
    canonical: String,
    /// Byte index of the `@` in `canonical`.
    at: usize,
    domain: Domain,
}

impl EmailAddress {
    /// Parses an address exactly as given: no trimming, no repair. See the module docs for the
    /// rules; the first rule broken is reported.
    pub fn parse(input: &str) -> Result<EmailAddress, EmailError> {
        if input.is_empty() {
            return Err(EmailError::Empty);
        }
        if input.len() > MAX_INPUT_BYTES {
            return Err(EmailError::InputTooLong);
        }
        // Structural forms first: for `Jane <jane@contoso.com>` "no name or brackets" is the
        // message that helps, not "contains a space".
        if input.contains(['<', '>']) {
            return Err(EmailError::DisplayName);
        }
        if input.contains('"') {
            return Err(EmailError::QuotedLocalPart);
        }
        if input.contains(['(', ')']) {
            return Err(EmailError::Comment);
        }
        check_characters(input)?;

        let (local, domain) = input.rsplit_once('@').ok_or(EmailError::MissingAt)?;
        if local.is_empty() {
            return Err(EmailError::EmptyLocalPart);
        }
        if domain.is_empty() {
            return Err(EmailError::EmptyDomain);
        }
        check_local_part(local)?;
        let domain = parse_domain_part(domain)?;

        let canonical = format!("{local}@{}", domain.as_str());
        if canonical.len() > MAX_ADDRESS_OCTETS {
            return Err(EmailError::AddressTooLong);
        }
        Ok(EmailAddress {
            canonical,
            at: local.len(),
            domain,
        })
    }

    /// The canonical form `local@ascii-domain`: the local part as typed, the domain as
    /// lower-case A-labels. This is what is stored, compared and mailed to.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The part before the `@`, exactly as typed (case and `+tag` kept).
    pub fn local_part(&self) -> &str {
        &self.canonical[..self.at]
    }

    /// The canonical domain after the `@`.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The key under which the portal decides "same person": the local part with ASCII
    /// lower-cased, `@`, the canonical domain. Exchange Online and Entra ID resolve addresses
    /// case-insensitively, so `Jane@contoso.com` and `jane@contoso.com` are one mailbox and one
    /// guest; rate limits, duplicate-request checks, token subjects and "approver may not
    /// approve their own request" all use this key. `+tags` are not removed: whether
    /// `jane+x@` and `jane@` are one mailbox is the receiving domain's choice, not ours.
    pub fn identity_key(&self) -> String {
        let mut key = self.canonical.clone();
        key[..self.at].make_ascii_lowercase();
        key
    }

    /// The key of the *mailbox* behind the address: the identity key without a `+tag`
    /// (`Jane+x@contoso.com` and `jane@contoso.com` are one mailbox at every provider that
    /// supports sub-addressing, and at the others the tag is part of a name nobody can get
    /// twice). Limits on how much mail one mailbox receives count by this key, so `+1`, `+2`,
    /// ... cannot multiply them; comparisons of people use it too (an alias of the requester
    /// is the requester). The address as typed is still what is invited and mailed.
    pub fn mailbox_key(&self) -> String {
        let key = self.identity_key();
        let (local, domain) = key.split_at(self.at);
        let local = local.split('+').next().unwrap_or(local);
        // `+tag` only: a local part that *is* "+x" keeps its text (nothing before the tag).
        if local.is_empty() {
            return key;
        }
        format!("{local}{domain}")
    }

    /// A form safe for logs: `sha256:<first 12 hex digits of SHA-256(identity key)>@domain`.
    /// The domain of a company is not personal data; the local part is, so only an unkeyed
    /// hash of the address appears, enough to correlate log lines about one mailbox (hashed
    /// from the identity key, so `Jane@` and `jane@` correlate as the mailbox does).
    pub fn masked(&self) -> String {
        let digest = Sha256::digest(self.identity_key().as_bytes());
        format!(
            "sha256:{}@{}",
            hex::encode(&digest[..6]),
            self.domain.as_str()
        )
    }
}

/// Whether two addresses (as identity keys or typed) reach the same person: the same mailbox,
/// whatever their case or `+tags`. Text that is not an address (`policy`, `operator`) is the
/// same person only as the same word.
pub fn same_person(a: &str, b: &str) -> bool {
    match (EmailAddress::parse(a), EmailAddress::parse(b)) {
        (Ok(a), Ok(b)) => a.mailbox_key() == b.mailbox_key(),
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// `text` with every address-like run (`local@domain`) replaced by its masked form, for error
/// messages from outside that end up in logs and records: SMTP servers and Graph quote the
/// address they refuse (`550 5.1.1 <bob@contoso.com>: unknown user`). What is not a valid
/// address keeps its domain and loses its local part, so nothing personal survives either way.
pub fn mask_addresses(text: &str) -> String {
    let bytes = text.as_bytes();
    let local_byte = |b: u8| b == b'.' || is_atext(b);
    let domain_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'@' {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > copied && local_byte(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < bytes.len() && domain_byte(bytes[end]) {
            end += 1;
        }
        // A sentence's full stop is not part of the domain.
        while end > i + 1 && bytes[end - 1] == b'.' {
            end -= 1;
        }
        if start == i || end == i + 1 {
            i += 1;
            continue;
        }
        // Already masked (`sha256:<12 hex>@domain`): leave it, so masking twice changes nothing.
        let local = &text[start..i];
        if text[..start].ends_with("sha256:")
            && local.len() == 12
            && local.bytes().all(|b| b.is_ascii_hexdigit())
        {
            i = end;
            continue;
        }
        out.push_str(&text[copied..start]);
        let candidate = &text[start..end];
        match EmailAddress::parse(candidate) {
            Ok(address) => out.push_str(&address.masked()),
            Err(_) => {
                out.push_str("***");
                out.push_str(&text[i..end]);
            }
        }
        copied = end;
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        EmailAddress::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Rejects characters that are never acceptable anywhere in an address or domain.
fn check_characters(input: &str) -> Result<(), EmailError> {
    for c in input.chars() {
        if is_bidi_control(c) {
            return Err(EmailError::BidiControl);
        }
        if is_invisible(c) {
            return Err(EmailError::InvisibleCharacter);
        }
        if c.is_whitespace() {
            return Err(EmailError::Whitespace);
        }
        if c.is_control() {
            return Err(EmailError::ControlCharacter);
        }
    }
    Ok(())
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Zero-width and other Default_Ignorable_Code_Point characters (Unicode DerivedCoreProperties),
/// less the bidi controls handled above. UTS #46 silently deletes several of these (soft
/// hyphen, variation selectors), so `con\u{AD}toso.com` would otherwise *become*
/// `contoso.com` while displaying differently in some mail clients; we refuse them instead.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2065}'
        | '\u{206A}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// RFC 5322 `atext`, ASCII only.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn check_local_part(local: &str) -> Result<(), EmailError> {
    if !local.is_ascii() {
        return Err(EmailError::NonAsciiLocalPart);
    }
    if let Some(bad) = local.bytes().find(|&b| b != b'.' && !is_atext(b)) {
        return Err(EmailError::InvalidLocalCharacter(char::from(bad)));
    }
    if local.starts_with('.') || local.ends_with('.') {
        return Err(EmailError::LocalPartDotAtEdge);
    }
    if local.contains("..") {
        return Err(EmailError::LocalPartConsecutiveDots);
    }
    if local.len() > MAX_LOCAL_OCTETS {
        return Err(EmailError::LocalPartTooLong);
    }
    Ok(())
}

/// The domain rules, on input that has already passed [`check_characters`].
fn parse_domain_part(input: &str) -> Result<Domain, EmailError> {
    if input.starts_with('[') {
        return Err(EmailError::IpLiteral);
    }
    // ASCII outside letters/digits/hyphen/dot is refused here, with the character named, rather
    // than left to UTS #46's STD3 rules, which would only say "invalid".
    if let Some(bad) = input
        .chars()
        .find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(EmailError::DomainCharacter(bad));
    }
    // UTS #46 ToASCII, non-transitional (idna 1.x has no transitional mode, so `ß` stays `ß`),
    // with STD3 rules so that non-ASCII characters mapping to forbidden ASCII (full-width `＠`)
    // fail. Hyphen and length rules are applied below on the result so that each gets its own
    // error; idna still applies the CONTEXTJ/CONTEXTO and bidi rules and validates punycode.
    let ascii = idna::uts46::Uts46::new()
        .to_ascii(
            input.as_bytes(),
            idna::uts46::AsciiDenyList::STD3,
            idna::uts46::Hyphens::Allow,
            idna::uts46::DnsLength::Ignore,
        )
        .map_err(|_| EmailError::InvalidInternationalDomain)?;
    // to_ascii lower-cases ASCII, but be explicit: the canonical form is lower-case ASCII.
    let ascii = ascii.to_ascii_lowercase();
    if !ascii.is_ascii() {
        return Err(EmailError::InvalidInternationalDomain);
    }
    if ascii.is_empty() {
        return Err(EmailError::EmptyDomain);
    }
    if ascii.ends_with('.') {
        return Err(EmailError::TrailingDot);
    }
    let mut labels = 0usize;
    for label in ascii.split('.') {
        labels += 1;
        check_label(label)?;
    }
    if ascii.len() > MAX_DOMAIN_OCTETS {
        return Err(EmailError::DomainTooLong);
    }
    if labels < 2 {
        return Err(EmailError::SingleLabel);
    }
    let tld = ascii.rsplit('.').next().unwrap_or_default();
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EmailError::NumericTld);
    }
    Ok(Domain(ascii))
}

/// One canonical (ASCII) label; A-labels are decoded and checked for script and look-alikes.
fn check_label(label: &str) -> Result<(), EmailError> {
    if label.is_empty() {
        return Err(EmailError::EmptyLabel);
    }
    if label.len() > MAX_LABEL_OCTETS {
        return Err(EmailError::LabelTooLong);
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(EmailError::LabelHyphen);
    }
    let Some(encoded) = label.strip_prefix("xn--") else {
        return Ok(());
    };
    let unicode =
        idna::punycode::decode_to_string(encoded).ok_or(EmailError::InvalidInternationalDomain)?;
    if unicode.starts_with('-') || unicode.ends_with('-') {
        return Err(EmailError::LabelHyphen);
    }
    if !unicode.chars().all(|c| c == '-' || c.identifier_allowed()) {
        return Err(EmailError::RestrictedCharacter);
    }
    if !unicode.as_str().is_single_script() {
        return Err(EmailError::MixedScript);
    }
    if imitates_ascii(&unicode) {
        return Err(EmailError::Confusable);
    }
    Ok(())
}

/// True when a non-ASCII label would be read as an ASCII one: its UTS #39 skeleton is pure
/// ASCII. A combining dot above on `i` or `j` (what UTS #46 makes of Turkish `İ`) is invisible
/// on those letters, so it is dropped before the test (UTS #39 section 5.4 recommends refusing
/// such sequences).
fn imitates_ascii(label: &str) -> bool {
    let mut previous = '\0';
    let mut all_ascii = true;
    for c in unicode_security::skeleton(label) {
        let invisible_dot = c == '\u{0307}' && matches!(previous, 'i' | 'j');
        if !invisible_dot && !c.is_ascii() {
            all_ascii = false;
            break;
        }
        previous = c;
    }
    // The label itself is non-ASCII (it came from an A-label), so an ASCII skeleton differs.
    all_ascii
}

#[cfg(test)]
mod tests {
    use super::*;
    use EmailError::*;

    fn ok(input: &str) -> EmailAddress {
        EmailAddress::parse(input).unwrap_or_else(|e| panic!("{input:?} rejected: {e:?}"))
    }

    #[test]
    fn valid_addresses_are_canonicalised() {
        // (input, canonical, local part, domain)
        let rows: &[(&str, &str, &str, &str)] = &[
            (
                "jane@contoso.com",
                "jane@contoso.com",
                "jane",
                "contoso.com",
            ),
            (
                "Jane.Doe@contoso.com",
                "Jane.Doe@contoso.com",
                "Jane.Doe",
                "contoso.com",
            ),
            (
                "JANE@CONTOSO.COM",
                "JANE@contoso.com",
                "JANE",
                "contoso.com",
            ),
            (
                "jane+tag@contoso.com",
                "jane+tag@contoso.com",
                "jane+tag",
                "contoso.com",
            ),
            (
                "Jane+Sales.Q3@Contoso.Com",
                "Jane+Sales.Q3@contoso.com",
                "Jane+Sales.Q3",
                "contoso.com",
            ),
            (
                "j.a.n.e@contoso.com",
                "j.a.n.e@contoso.com",
                "j.a.n.e",
                "contoso.com",
            ),
            ("a@b.co", "a@b.co", "a", "b.co"),
            (
                "x@mail.eu.contoso.com",
                "x@mail.eu.contoso.com",
                "x",
                "mail.eu.contoso.com",
            ),
            (
                "first_last@sub-domain.contoso.com",
                "first_last@sub-domain.contoso.com",
                "first_last",
                "sub-domain.contoso.com",
            ),
            ("a-b@a-b.c-d", "a-b@a-b.c-d", "a-b", "a-b.c-d"),
            (
                "o'brien@contoso.ie",
                "o'brien@contoso.ie",
                "o'brien",
                "contoso.ie",
            ),
            (
                "!#$%&'*+-/=?^_`{|}~@contoso.com",
                "!#$%&'*+-/=?^_`{|}~@contoso.com",
                "!#$%&'*+-/=?^_`{|}~",
                "contoso.com",
            ),
            ("123@contoso.com", "123@contoso.com", "123", "contoso.com"),
            (
                "user@123.contoso.com",
                "user@123.contoso.com",
                "user",
                "123.contoso.com",
            ),
            (
                "user@contoso.c0m",
                "user@contoso.c0m",
                "user",
                "contoso.c0m",
            ),
            ("user@ab--cd.com", "user@ab--cd.com", "user", "ab--cd.com"),
            (
                "user@contoso.xn--p1ai",
                "user@contoso.xn--p1ai",
                "user",
                "contoso.xn--p1ai",
            ),
            (
                "user@bücher.example",
                "user@xn--bcher-kva.example",
                "user",
                "xn--bcher-kva.example",
            ),
            (
                "user@BÜCHER.example",
                "user@xn--bcher-kva.example",
                "user",
                "xn--bcher-kva.example",
            ),
            (
                "user@xn--bcher-kva.example",
                "user@xn--bcher-kva.example",
                "user",
                "xn--bcher-kva.example",
            ),
            (
                "user@XN--BCHER-KVA.EXAMPLE",
                "user@xn--bcher-kva.example",
                "user",
                "xn--bcher-kva.example",
            ),
            (
                "user@straße.de",
                "user@xn--strae-oqa.de",
                "user",
                "xn--strae-oqa.de",
            ),
            (
                "user@münchen.de",
                "user@xn--mnchen-3ya.de",
                "user",
                "xn--mnchen-3ya.de",
            ),
            (
                "user@яндекс.рф",
                "user@xn--d1acpjx3f.xn--p1ai",
                "user",
                "xn--d1acpjx3f.xn--p1ai",
            ),
            (
                "user@日本語.jp",
                "user@xn--wgv71a119e.jp",
                "user",
                "xn--wgv71a119e.jp",
            ),
            (
                "user@例え.テスト",
                "user@xn--r8jz45g.xn--zckzah",
                "user",
                "xn--r8jz45g.xn--zckzah",
            ),
            (
                "user@ελληνικά.gr",
                "user@xn--hxargifdar.gr",
                "user",
                "xn--hxargifdar.gr",
            ),
            (
                "user@sörmland.se",
                "user@xn--srmland-90a.se",
                "user",
                "xn--srmland-90a.se",
            ),
            // Full-width letters and the ideographic full stop are width variants that UTS #46
            // maps to the same DNS name: a normalisation, not a confusable.
            (
                "user@ｃｏｎｔｏｓｏ.com",
                "user@contoso.com",
                "user",
                "contoso.com",
            ),
            (
                "user@ＣＯＮＴＯＳＯ．ＣＯＭ",
                "user@contoso.com",
                "user",
                "contoso.com",
            ),
            (
                "user@contoso。com",
                "user@contoso.com",
                "user",
                "contoso.com",
            ),
            (
                "user@ｅｘａｍｐｌｅ\u{FF0E}com",
                "user@example.com",
                "user",
                "example.com",
            ),
            // Valid addresses; whether their domains are admitted is the policies' business.
            (
                "a@evilcontoso.com",
                "a@evilcontoso.com",
                "a",
                "evilcontoso.com",
            ),
            (
                "a@contoso.com.evil.com",
                "a@contoso.com.evil.com",
                "a",
                "contoso.com.evil.com",
            ),
            (
                "jane%contoso.com@evil.com",
                "jane%contoso.com@evil.com",
                "jane%contoso.com",
                "evil.com",
            ),
        ];
        for (input, canonical, local, domain) in rows {
            let address = ok(input);
            assert_eq!(address.as_str(), *canonical, "canonical of {input:?}");
            assert_eq!(address.to_string(), *canonical, "display of {input:?}");
            assert_eq!(address.local_part(), *local, "local part of {input:?}");
            assert_eq!(address.domain().as_str(), *domain, "domain of {input:?}");
            assert!(address.as_str().is_ascii(), "ascii {input:?}");
            assert_eq!(ok(address.as_str()), address, "re-parse of {input:?}");
        }
    }

    #[test]
    fn invalid_addresses_name_the_rule_they_break() {
        let local64 = "a".repeat(64);
        let local65 = "a".repeat(65);
        let label63 = "b".repeat(63);
        let label64 = "b".repeat(64);
        let long_domain = format!("{0}.{0}.{0}.{0}.com", "c".repeat(62)); // 4*63 + 3 = 255
        let rows: Vec<(String, EmailError)> = [
            ("", Empty),
            ("jane", MissingAt),
            ("jane.contoso.com", MissingAt),
            ("jane＠contoso.com", MissingAt),
            ("@contoso.com", EmptyLocalPart),
            ("jane@", EmptyDomain),
            ("@", EmptyLocalPart),
            // Display names, quotes, comments.
            ("Jane Doe <jane@contoso.com>", DisplayName),
            ("<jane@contoso.com>", DisplayName),
            ("jane@contoso.com>", DisplayName),
            ("\"jane\"@contoso.com", QuotedLocalPart),
            ("\"jane doe\"@contoso.com", QuotedLocalPart),
            ("\"a@b\"@contoso.com", QuotedLocalPart),
            ("jane(comment)@contoso.com", Comment),
            ("jane@(comment)contoso.com", Comment),
            ("jane@contoso.com(x)", Comment),
            // Whitespace and control characters anywhere.
            (" jane@contoso.com", Whitespace),
            ("jane@contoso.com ", Whitespace),
            ("ja ne@contoso.com", Whitespace),
            ("jane@contoso .com", Whitespace),
            ("jane@contoso.com\n", Whitespace),
            ("jane@contoso.com\r\nBcc: x@y.com", Whitespace),
            ("\tjane@contoso.com", Whitespace),
            ("jane@contoso\u{00A0}.com", Whitespace),
            ("jane@contoso\u{3000}.com", Whitespace),
            ("jane@contoso\u{2028}.com", Whitespace),
            ("jane\u{0}@contoso.com", ControlCharacter),
            ("jane@contoso.com\u{7F}", ControlCharacter),
            ("jane@contoso\u{1B}.com", ControlCharacter),
            ("jane@contoso\u{9B}.com", ControlCharacter),
            // Invisible characters.
            ("jane@con\u{200B}toso.com", InvisibleCharacter),
            ("jane@con\u{200C}toso.com", InvisibleCharacter),
            ("jane@con\u{200D}toso.com", InvisibleCharacter),
            ("jane@con\u{2060}toso.com", InvisibleCharacter),
            ("\u{FEFF}jane@contoso.com", InvisibleCharacter),
            ("ja\u{200B}ne@contoso.com", InvisibleCharacter),
            ("jane@con\u{00AD}toso.com", InvisibleCharacter),
            ("jane@contoso\u{FE0F}.com", InvisibleCharacter),
            ("jane@con\u{034F}toso.com", InvisibleCharacter),
            ("jane@con\u{E0041}toso.com", InvisibleCharacter),
            // Bidi controls.
            ("jane@\u{202E}moc.osotnoc", BidiControl),
            ("jane@contoso.com\u{202A}", BidiControl),
            ("jane@contoso.com\u{202B}", BidiControl),
            ("jane@contoso.com\u{202C}", BidiControl),
            ("jane@contoso.com\u{202D}", BidiControl),
            ("jane\u{2066}@contoso.com", BidiControl),
            ("jane@contoso\u{2067}.com", BidiControl),
            ("jane@contoso\u{2068}.com", BidiControl),
            ("jane@contoso\u{2069}.com", BidiControl),
            ("jane\u{200E}@contoso.com", BidiControl),
            ("jane@contoso.com\u{200F}", BidiControl),
            ("jane@contoso\u{061C}.com", BidiControl),
            // Local part.
            ("a@b@contoso.com", InvalidLocalCharacter('@')),
            ("jane;x@contoso.com", InvalidLocalCharacter(';')),
            ("jane,x@contoso.com", InvalidLocalCharacter(',')),
            ("jane[x]@contoso.com", InvalidLocalCharacter('[')),
            ("jane\\x@contoso.com", InvalidLocalCharacter('\\')),
            ("jane:x@contoso.com", InvalidLocalCharacter(':')),
            ("jöne@contoso.com", NonAsciiLocalPart),
            ("ｊａｎｅ@contoso.com", NonAsciiLocalPart),
            ("јane@contoso.com", NonAsciiLocalPart), // Cyrillic je
            (".jane@contoso.com", LocalPartDotAtEdge),
            ("jane.@contoso.com", LocalPartDotAtEdge),
            (".@contoso.com", LocalPartDotAtEdge),
            ("ja..ne@contoso.com", LocalPartConsecutiveDots),
            // Domain shape.
            ("jane@[192.0.2.1]", IpLiteral),
            ("jane@[IPv6:2001:db8::1]", IpLiteral),
            ("jane@192.0.2.1", NumericTld),
            ("jane@contoso.123", NumericTld),
            ("jane@0x7f.1", NumericTld),
            ("jane@contoso.com.", TrailingDot),
            ("jane@contoso.com。", TrailingDot),
            ("jane@contoso.com．", TrailingDot),
            ("jane@.contoso.com", EmptyLabel),
            ("jane@contoso..com", EmptyLabel),
            ("jane@contoso.com..", TrailingDot),
            ("jane@localhost", SingleLabel),
            ("jane@com", SingleLabel),
            ("jane@-contoso.com", LabelHyphen),
            ("jane@contoso-.com", LabelHyphen),
            ("jane@contoso.-com", LabelHyphen),
            ("jane@contoso.com-", LabelHyphen),
            ("jane@ü-.com", LabelHyphen),
            ("jane@-ü.com", LabelHyphen),
            ("jane@contoso_x.com", DomainCharacter('_')),
            ("jane@contoso.com:25", DomainCharacter(':')),
            ("jane@contoso.com/x", DomainCharacter('/')),
            ("jane@*.contoso.com", DomainCharacter('*')),
            ("jane@contoso!.com", DomainCharacter('!')),
            ("jane@contoso.com?", DomainCharacter('?')),
            ("jane@contoso＿x.com", InvalidInternationalDomain),
            ("jane@contoso／x.com", InvalidInternationalDomain),
            ("jane@xn--zz.com", InvalidInternationalDomain),
            ("jane@xn--.com", InvalidInternationalDomain),
            ("jane@xn--abc.com", InvalidInternationalDomain),
            ("jane@\u{0301}contoso.com", InvalidInternationalDomain),
            ("jane@contoso.c\u{E000}m", InvalidInternationalDomain),
            ("jane@i❤.com", RestrictedCharacter),
            ("jane@☃.com", RestrictedCharacter),
            // Look-alikes and mixed scripts.
            ("jane@аpple.com", MixedScript),     // Cyrillic а + Latin
            ("jane@pаypal.com", MixedScript),    // Cyrillic а inside Latin
            ("jane@micrοsoft.com", MixedScript), // Greek omicron
            ("jane@cοntοsο.com", MixedScript),
            ("jane@аррӏе.com", Confusable), // all Cyrillic, reads "apple"
            ("jane@сосо.com", Confusable),  // all Cyrillic, reads "coco"
            ("jane@xn--80ak6aa92e.com", Confusable), // "аррӏе" typed as an A-label
            ("jane@οο.com", Confusable),    // Greek omicrons, reads "oo"
            ("jane@GİTHUB.COM", Confusable), // Turkish dotted capital I
            ("jane@gıthub.com", Confusable), // Turkish dotless i
            // Documented cost of the skeleton rule: æ's skeleton is "ae", so a label whose only
            // non-ASCII letters are such is refused too.
            ("jane@kæmpe.dk", Confusable),
            ("jane@ɡithub.com", RestrictedCharacter), // Latin script g: not an identifier letter
            ("jane@contoso.cоm", MixedScript),        // Cyrillic о in the TLD
            ("jane@раураl.com", MixedScript),         // Cyrillic letters + Latin l
            ("jane@αpple.com", MixedScript),          // Greek alpha + Latin
            ("jane@xn--80ak6aa92e.xn--p1ai", Confusable),
            // Smuggling a second address or header.
            ("jane@contoso.com;bob@evil.com", InvalidLocalCharacter('@')),
            ("jane@contoso.com,bob@evil.com", InvalidLocalCharacter('@')),
            ("jane@@contoso.com", InvalidLocalCharacter('@')),
            ("jane@contoso.com@", EmptyDomain),
            ("bob@evil.com\"@contoso.com", QuotedLocalPart),
            ("jane\\@contoso.com", InvalidLocalCharacter('\\')),
            ("jane@contoso.com%0d%0a", DomainCharacter('%')),
            ("jane@conto'so.com", DomainCharacter('\'')),
            ("jane@contoso.com#x", DomainCharacter('#')),
            ("jane\u{0085}@contoso.com", Whitespace),
            ("jane@contoso.com\u{2029}", Whitespace),
            ("jane\u{8}@contoso.com", ControlCharacter),
            ("jane@ｃｏｎｔｏｓｏ.com\u{200B}", InvisibleCharacter),
            ("..@contoso.com", LocalPartDotAtEdge),
            ("jane..doe@contoso.com", LocalPartConsecutiveDots),
            ("jane@-.com", LabelHyphen),
            ("jane@contoso.-", LabelHyphen),
            ("jane@1.2.3.4", NumericTld),
            ("jane@[::1]", IpLiteral),
        ]
        .into_iter()
        .map(|(i, e)| (i.to_string(), e))
        .chain([
            (format!("{local65}@contoso.com"), LocalPartTooLong),
            (format!("jane@{label64}.com"), LabelTooLong),
            (format!("jane@{}.com", "ü".repeat(60)), LabelTooLong),
            (format!("jane@{long_domain}"), DomainTooLong),
            (
                format!("{local64}@{label63}.{label63}.{}.com", "d".repeat(58)),
                AddressTooLong,
            ),
            ("a".repeat(MAX_INPUT_BYTES + 1), InputTooLong),
        ])
        .collect();
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|(input, expected)| {
                let got = EmailAddress::parse(input);
                (got.as_ref().err() != Some(expected))
                    .then(|| format!("{input:?}: expected {expected:?}, got {got:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
        assert!(rows.len() > 120, "table shrank to {}", rows.len());
    }

    #[test]
    fn length_limits_are_exact() {
        let local64 = "a".repeat(64);
        assert_eq!(ok(&format!("{local64}@contoso.com")).local_part().len(), 64);
        let label63 = "b".repeat(63);
        assert!(EmailAddress::parse(&format!("j@{label63}.com")).is_ok());

        // 64 + 1 + domain = 254 exactly, and one more octet.
        let domain_189 = format!("{0}.{0}.{1}.com", "d".repeat(63), "e".repeat(57));
        assert_eq!(domain_189.len(), 189);
        let at_254 = format!("{local64}@{domain_189}");
        assert_eq!(at_254.len(), 254);
        assert_eq!(ok(&at_254).as_str().len(), 254);
        let at_255 = format!("{local64}@{domain_189}x");
        assert_eq!(at_255.len(), 255);
        assert_eq!(EmailAddress::parse(&at_255), Err(AddressTooLong));

        // The limit applies to the canonical (A-label) form, not the typed Unicode form.
        let typed = format!(
            "{}@{}.{}.{}.example",
            "a".repeat(64),
            "ü".repeat(30),
            "ü".repeat(30),
            "ü".repeat(30)
        );
        let canonical_len = format!("{}@", "a".repeat(64)).len()
            + Domain::parse(&typed[65..])
                .map(|d| d.as_str().len())
                .unwrap_or(0);
        if canonical_len > 254 {
            assert_eq!(EmailAddress::parse(&typed), Err(AddressTooLong));
        } else {
            assert!(EmailAddress::parse(&typed).is_ok());
        }
    }

    #[test]
    fn domain_parse_for_policies() {
        let rows: &[(&str, Result<&str, EmailError>)] = &[
            ("contoso.com", Ok("contoso.com")),
            ("CONTOSO.COM", Ok("contoso.com")),
            ("Bücher.Example", Ok("xn--bcher-kva.example")),
            ("xn--bcher-kva.example", Ok("xn--bcher-kva.example")),
            ("ｃｏｎｔｏｓｏ．ｃｏｍ", Ok("contoso.com")),
            ("partners.contoso.co.uk", Ok("partners.contoso.co.uk")),
            ("", Err(EmptyDomain)),
            ("contoso.com.", Err(TrailingDot)),
            (" contoso.com", Err(Whitespace)),
            ("*.contoso.com", Err(DomainCharacter('*'))),
            ("jane@contoso.com", Err(DomainCharacter('@'))),
            ("[10.0.0.1]", Err(IpLiteral)),
            ("10.0.0.1", Err(NumericTld)),
            ("contoso", Err(SingleLabel)),
            ("аpple.com", Err(MixedScript)),
            ("аррӏе.com", Err(Confusable)),
            ("GİTHUB.COM", Err(Confusable)),
            ("con\u{200D}toso.com", Err(InvisibleCharacter)),
            ("\u{202E}contoso.com", Err(BidiControl)),
        ];
        for (input, expected) in rows {
            let got = Domain::parse(input);
            match expected {
                Ok(canonical) => assert_eq!(
                    got.as_ref().map(Domain::as_str),
                    Ok(*canonical),
                    "{input:?}"
                ),
                Err(e) => assert_eq!(got.as_ref().err(), Some(e), "{input:?}"),
            }
        }
    }

    #[test]
    fn turkish_i_never_becomes_plain_ascii() {
        for input in ["GİTHUB.COM", "gİthub.com", "gıthub.com", "GITHUB.COM"] {
            match Domain::parse(input) {
                Ok(d) => {
                    assert_eq!(input, "GITHUB.COM", "only the ASCII spelling may parse");
                    assert_eq!(d.as_str(), "github.com");
                }
                Err(e) => {
                    assert_ne!(input, "GITHUB.COM");
                    assert_eq!(e, Confusable, "{input:?}");
                }
            }
        }
    }

    #[test]
    fn is_within_compares_whole_labels() {
        // (candidate, policy domain, include_subdomains, expected)
        let rows: &[(&str, &str, bool, bool)] = &[
            ("contoso.com", "contoso.com", false, true),
            ("contoso.com", "contoso.com", true, true),
            ("mail.contoso.com", "contoso.com", false, false),
            ("mail.contoso.com", "contoso.com", true, true),
            ("a.b.c.contoso.com", "contoso.com", true, true),
            ("evilcontoso.com", "contoso.com", true, false),
            ("evilcontoso.com", "contoso.com", false, false),
            ("contoso.com.evil.com", "contoso.com", true, false),
            ("contoso.com", "mail.contoso.com", true, false),
            ("contoso.co", "contoso.com", true, false),
            ("ontoso.com", "contoso.com", true, false),
            ("xcontoso.com", "contoso.com", true, false),
            ("x-contoso.com", "contoso.com", true, false),
            ("contoso.com", "com.com", true, false),
            ("sub.xn--bcher-kva.example", "bücher.example", true, true),
            ("sub.bücher.example", "xn--bcher-kva.example", true, true),
            ("bucher.example", "bücher.example", true, false),
        ];
        for (candidate, policy, subdomains, expected) in rows {
            let candidate = Domain::parse(candidate).unwrap();
            let policy = Domain::parse(policy).unwrap();
            assert_eq!(
                candidate.is_within(&policy, *subdomains),
                *expected,
                "{candidate} within {policy} (subdomains: {subdomains})"
            );
        }
    }

    #[test]
    fn identity_key_lowercases_only_the_ascii_local_part() {
        let rows: &[(&str, &str)] = &[
            ("Jane@contoso.com", "jane@contoso.com"),
            ("JANE+Tag@CONTOSO.COM", "jane+tag@contoso.com"),
            ("jane@Bücher.example", "jane@xn--bcher-kva.example"),
            ("O'Brien@contoso.ie", "o'brien@contoso.ie"),
        ];
        for (input, key) in rows {
            let address = ok(input);
            assert_eq!(address.identity_key(), *key, "{input:?}");
            assert_ne!(
                address.local_part().to_ascii_lowercase(),
                address.local_part().to_string() + "x"
            );
        }
        assert_ne!(ok("Jane@contoso.com"), ok("jane@contoso.com"));
        assert_eq!(
            ok("Jane@contoso.com").identity_key(),
            ok("jane@CONTOSO.com").identity_key()
        );
    }

    #[test]
    fn masked_never_contains_the_local_part() {
        let address = ok("jane.doe+secret@Contoso.com");
        let masked = address.masked();
        // sha256("jane.doe+secret@contoso.com") starts with these 12 hex digits.
        let expected = format!(
            "sha256:{}@contoso.com",
            &hex::encode(Sha256::digest(b"jane.doe+secret@contoso.com"))[..12]
        );
        assert_eq!(masked, expected);
        assert!(!masked.contains("jane"));
        assert!(!masked.contains("secret"));
        assert_eq!(masked.len(), "sha256:".len() + 12 + "@contoso.com".len());
        assert_ne!(
            ok("jane@contoso.com").masked(),
            ok("john@contoso.com").masked()
        );
    }

    #[test]
    fn serde_goes_through_parse() {
        let address = ok("Jane@Bücher.example");
        let json = serde_json::to_string(&address).unwrap();
        assert_eq!(json, "\"Jane@xn--bcher-kva.example\"");
        assert_eq!(
            serde_json::from_str::<EmailAddress>(&json).unwrap(),
            address
        );
        assert_eq!(
            serde_json::from_str::<EmailAddress>("\"JANE@BÜCHER.EXAMPLE\"")
                .unwrap()
                .as_str(),
            "JANE@xn--bcher-kva.example"
        );
        for bad in [
            "\"a@b@c.com\"",
            "\"jane@аpple.com\"",
            "\"\"",
            "\"jane@contoso.com \"",
            "42",
        ] {
            assert!(serde_json::from_str::<EmailAddress>(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<EmailAddress>("\"jane\"").unwrap_err();
        assert!(err.to_string().contains("The address has no @"), "{err}");

        let domain = Domain::parse("Bücher.Example").unwrap();
        assert_eq!(
            serde_json::to_string(&domain).unwrap(),
            "\"xn--bcher-kva.example\""
        );
        assert_eq!(
            serde_json::from_str::<Domain>("\"BÜCHER.example\"").unwrap(),
            domain
        );
        assert!(serde_json::from_str::<Domain>("\"contoso.com.\"").is_err());
    }

    #[test]
    fn every_error_has_a_sentence_and_a_unique_code() {
        let all = [
            Empty,
            InputTooLong,
            DisplayName,
            QuotedLocalPart,
            Comment,
            Whitespace,
            ControlCharacter,
            BidiControl,
            InvisibleCharacter,
            MissingAt,
            EmptyLocalPart,
            NonAsciiLocalPart,
            InvalidLocalCharacter('@'),
            LocalPartDotAtEdge,
            LocalPartConsecutiveDots,
            LocalPartTooLong,
            AddressTooLong,
            EmptyDomain,
            IpLiteral,
            TrailingDot,
            EmptyLabel,
            LabelTooLong,
            LabelHyphen,
            DomainTooLong,
            DomainCharacter('_'),
            InvalidInternationalDomain,
            RestrictedCharacter,
            SingleLabel,
            NumericTld,
            MixedScript,
            Confusable,
        ];
        let mut codes = std::collections::HashSet::new();
        for e in &all {
            let text = e.to_string();
            assert!(text.ends_with('.'), "{e:?}: {text}");
            assert!(text.chars().next().unwrap().is_uppercase(), "{e:?}: {text}");
            assert!(codes.insert(e.code()), "duplicate code {}", e.code());
            assert!(
                e.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                e.code()
            );
        }
        assert_eq!(MissingAt.to_string(), "The address has no @.");
        assert_eq!(MissingAt.code(), "missing_at");
        assert_eq!(
            LocalPartTooLong.to_string(),
            "The part before @ is longer than 64 characters."
        );
    }

    #[test]
    fn a_mailbox_is_the_address_without_its_tag_and_case() {
        for (a, b) in [
            ("Victim+1@Partner.example", "victim@partner.example"),
            ("victim+12@partner.example", "victim@partner.example"),
            ("victim@partner.example", "victim@partner.example"),
            ("v.ic+a+b@partner.example", "v.ic@partner.example"),
            ("+x@partner.example", "+x@partner.example"),
        ] {
            assert_eq!(ok(a).mailbox_key(), b, "{a}");
        }
        assert_ne!(
            ok("victim@partner.example").mailbox_key(),
            ok("victim@other.example").mailbox_key()
        );
        // The address as typed is untouched.
        assert_eq!(
            ok("Victim+1@partner.example").as_str(),
            "Victim+1@partner.example"
        );
    }

    #[test]
    fn addresses_inside_error_text_are_masked() {
        let masked = ok("bob@contoso.com").masked();
        assert_eq!(
            mask_addresses("550 5.1.1 <bob@contoso.com>: unknown user"),
            format!("550 5.1.1 <{masked}>: unknown user")
        );
        assert_eq!(
            mask_addresses("refused bob@contoso.com."),
            format!("refused {masked}.")
        );
        // Not a valid address: the local part goes, the domain stays.
        assert_eq!(
            mask_addresses("user b..ob@contoso.com unknown"),
            "user ***@contoso.com unknown"
        );
        assert_eq!(
            mask_addresses("two: a.b@x.example, c@y.example"),
            format!(
                "two: {}, {}",
                ok("a.b@x.example").masked(),
                ok("c@y.example").masked()
            )
        );
        for plain in ["no address here", "a lone @ sign", "@start", "end@", ""] {
            assert_eq!(mask_addresses(plain), plain);
        }
        assert!(!mask_addresses("450 try later for Jane.Doe+x@partner.example").contains("Jane"));
        let once = mask_addresses("550 <bob@contoso.com> refused");
        assert_eq!(mask_addresses(&once), once, "masking twice changes nothing");
    }

    #[test]
    fn one_person_behind_case_and_tags() {
        assert!(same_person(
            "boss@contoso.com",
            "Boss+approvals@Contoso.com"
        ));
        assert!(same_person("ada+1@partner.example", "ADA@partner.example"));
        assert!(!same_person("ada@partner.example", "ada@other.example"));
        assert!(!same_person("ada@partner.example", "adam@partner.example"));
        assert!(same_person("policy", "Policy"));
        assert!(!same_person("policy", "ada@partner.example"));
    }
}
