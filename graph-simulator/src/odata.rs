//! The OData query options Graph supports on the directory: `$filter` (with
//! `in` lists of at most 15 values),
//! `$select`, `$top`, `$count`, `$skiptoken`, and the nextLinks built from them.
//!
//! Only the subset the portal can meet is modelled, but what is modelled
//! follows Graph's rules, including the ones that bite: `ne`/`not`/`endsWith`
//! need `ConsistencyLevel: eventual` plus `$count=true`, a signInActivity filter
//! can't be combined with other properties, and `$top` must be 1..=999.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::errors::{GraphError, GraphResult};
use crate::state::{canonical_user_property, User, DEFAULT_USER_PROPERTIES};
use crate::util::{b64url, b64url_decode, encode_query_value, parse_datetime};

/// Decoded query parameters, in request order.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: &str) -> Self {
        QueryParams(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Graph v1.0 accepts system query options with or without the `$`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.0
            .iter()
            .find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case(bare))
            .map(|(_, v)| v.as_str())
    }

    /// The query string of the next page: every option as sent, with the new skiptoken.
    pub fn with_skiptoken(&self, token: &str) -> String {
        let mut parts: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| !k.trim_start_matches('$').eq_ignore_ascii_case("skiptoken"))
            .map(|(k, v)| format!("{}={}", k, encode_query_value(v)))
            .collect();
        parts.push(format!("$skiptoken={token}"));
        parts.join("&")
    }
}

pub(crate) fn parse_top(params: &QueryParams) -> GraphResult<usize> {
    let Some(raw) = params.get("$top") else {
        return Ok(100);
    };
    match raw.trim().parse::<i64>() {
        Ok(n) if (1..=999).contains(&n) => Ok(n as usize),
        _ => Err(GraphError::unsupported_query(format!(
            "Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive."
        ))),
    }
}

/// `$select` as canonical property names; the default set when absent.
pub(crate) fn parse_user_select(params: &QueryParams) -> GraphResult<Vec<&'static str>> {
    let Some(raw) = params.get("$select") else {
        return Ok(DEFAULT_USER_PROPERTIES.to_vec());
    };
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let canonical = canonical_user_property(name).ok_or_else(|| {
            GraphError::bad_request(format!(
                "Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.user'."
            ))
        })?;
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

/// `$count=true` together with `ConsistencyLevel: eventual`: Graph's "advanced query".
pub(crate) fn wants_count(params: &QueryParams) -> bool {
    params
        .get("$count")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

// ---------- skiptoken ----------

/// Skiptokens are opaque to clients; here they wrap a cursor into an ordered
/// collection, tagged with the collection they belong to.
pub(crate) fn encode_skiptoken(collection: &str, cursor: u64) -> String {
    b64url(format!("sim1|{collection}|{cursor}").as_bytes())
}

pub(crate) fn decode_skiptoken(token: &str, collection: &str) -> GraphResult<u64> {
    let expired = || {
        GraphError::new(
            400,
            "Directory_ExpiredPageToken",
            "The specified page token value has expired and can no longer be included in your request.",
        )
    };
    let bytes = b64url_decode(token.trim()).ok_or_else(expired)?;
    let text = String::from_utf8(bytes).map_err(|_| expired())?;
    let mut parts = text.split('|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("sim1"), Some(c), Some(n), None) if c == collection => {
            n.parse().map_err(|_| expired())
        }
        _ => Err(expired()),
    }
}

// ---------- $filter ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Bool(bool),
    Null,
    DateTime(OffsetDateTime),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        prop: &'static str,
        op: Op,
        lit: Lit,
    },
    StartsWith {
        prop: &'static str,
        prefix: String,
    },
    EndsWith {
        prop: &'static str,
        suffix: String,
    },
    /// `prop in ('a', 'b', ...)`: equality with any of the strings.
    In {
        prop: &'static str,
        values: Vec<String>,
    },
}

/// Graph's limit on the values of an `in` (and the clauses of an `or`) in a default query:
/// "limited to 15 expressions in the filter clause".
pub(crate) const MAX_IN_VALUES: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    DateTime,
}

const SIGN_IN_PROPS: &[&str] = &[
    "signInActivity/lastSignInDateTime",
    "signInActivity/lastNonInteractiveSignInDateTime",
    "signInActivity/lastSuccessfulSignInDateTime",
];

/// Properties a user can be filtered on, and how their values compare.
fn filterable(name: &str) -> Option<(&'static str, Kind)> {
    const TABLE: &[(&str, Kind)] = &[
        ("id", Kind::Str),
        ("userType", Kind::Str),
        ("mail", Kind::Str),
        ("externalUserState", Kind::Str),
        ("displayName", Kind::Str),
        ("userPrincipalName", Kind::Str),
        ("givenName", Kind::Str),
        ("surname", Kind::Str),
        ("creationType", Kind::Str),
        ("accountEnabled", Kind::Bool),
        ("createdDateTime", Kind::DateTime),
        ("externalUserStateChangeDateTime", Kind::DateTime),
        ("signInActivity/lastSignInDateTime", Kind::DateTime),
        (
            "signInActivity/lastNonInteractiveSignInDateTime",
            Kind::DateTime,
        ),
        (
            "signInActivity/lastSuccessfulSignInDateTime",
            Kind::DateTime,
        ),
    ];
    TABLE
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, k)| (*n, *k))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Literal(String),
    LParen,
    RParen,
    Comma,
}

fn invalid_filter(detail: &str) -> GraphError {
    GraphError::bad_request(format!("Invalid filter clause: {detail}"))
}

fn tokenize(s: &str) -> GraphResult<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if c == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(invalid_filter("unterminated string literal.")),
                    // OData escapes a quote inside a string by doubling it.
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        v.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '/' | '.'))
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || c == '-' {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], ')' | ',') {
                i += 1;
            }
            out.push(Tok::Literal(chars[start..i].iter().collect()));
        } else {
            return Err(invalid_filter(&format!("unexpected character '{c}'.")));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expr(&mut self) -> GraphResult<Expr> {
        let mut left = self.and_expr()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> GraphResult<Expr> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> GraphResult<Expr> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> GraphResult<Expr> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.expr()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    _ => Err(invalid_filter("expected ')'.")),
                }
            }
            Some(Tok::Word(w)) if matches!(self.toks.get(self.pos), Some(Tok::LParen)) => {
                self.function(&w)
            }
            Some(Tok::Word(w)) => self.comparison(&w),
            _ => Err(invalid_filter("expected a property or a function.")),
        }
    }

    fn function(&mut self, name: &str) -> GraphResult<Expr> {
        self.pos += 1; // '('
        let prop = match self.next() {
            Some(Tok::Word(p)) => p,
            _ => return Err(invalid_filter("expected a property name.")),
        };
        if self.next() != Some(Tok::Comma) {
            return Err(invalid_filter("expected ','."));
        }
        let value = match self.next() {
            Some(Tok::Str(s)) => s,
            _ => return Err(invalid_filter("expected a string literal.")),
        };
        if self.next() != Some(Tok::RParen) {
            return Err(invalid_filter("expected ')'."));
        }
        let (prop, kind) = resolve_prop(&prop)?;
        if kind != Kind::Str {
            return Err(unsupported_clause(prop));
        }
        match name.to_ascii_lowercase().as_str() {
            "startswith" => Ok(Expr::StartsWith {
                prop,
                prefix: value,
            }),
            "endswith" => Ok(Expr::EndsWith {
                prop,
                suffix: value,
            }),
            _ => Err(invalid_filter(&format!("unknown function '{name}'."))),
        }
    }

    /// `prop in ('a', 'b')`, after `in`.
    fn in_list(&mut self, prop: &str) -> GraphResult<Expr> {
        if self.next() != Some(Tok::LParen) {
            return Err(invalid_filter("expected '(' after 'in'."));
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Str(s)) => values.push(s),
                _ => {
                    return Err(invalid_filter(
                        "expected a string literal in the 'in' list.",
                    ))
                }
            }
            match self.next() {
                Some(Tok::Comma) => continue,
                Some(Tok::RParen) => break,
                _ => return Err(invalid_filter("expected ',' or ')' in the 'in' list.")),
            }
        }
        let (prop, kind) = resolve_prop(prop)?;
        if kind != Kind::Str {
            return Err(unsupported_clause(prop));
        }
        if values.len() > MAX_IN_VALUES {
            return Err(GraphError::unsupported_query(format!(
                "Too many child clauses specified in search filter expression containing 'OR' operators: {}. Max allowed: {MAX_IN_VALUES}.",
                values.len()
            )));
        }
        Ok(Expr::In { prop, values })
    }

    fn comparison(&mut self, prop: &str) -> GraphResult<Expr> {
        if self.peek_word("in") {
            self.pos += 1;
            return self.in_list(prop);
        }
        let op = match self.next() {
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "lt" => Op::Lt,
                "le" => Op::Le,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                _ => return Err(invalid_filter(&format!("unknown operator '{w}'."))),
            },
            _ => return Err(invalid_filter("expected an operator.")),
        };
        let lit = match self.next() {
            Some(Tok::Str(s)) => Lit::Str(s),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Lit::Null,
            Some(Tok::Literal(l)) => Lit::DateTime(
                parse_datetime(&l)
                    .ok_or_else(|| invalid_filter(&format!("invalid literal '{l}'.")))?,
            ),
            _ => return Err(invalid_filter("expected a literal.")),
        };
        let (prop, kind) = resolve_prop(prop)?;
        let type_ok = matches!(
            (kind, &lit),
            (_, Lit::Null)
                | (Kind::Str, Lit::Str(_))
                | (Kind::Bool, Lit::Bool(_))
                | (Kind::DateTime, Lit::DateTime(_))
        );
        if !type_ok {
            return Err(invalid_filter(&format!(
                "the literal does not match the type of '{prop}'."
            )));
        }
        // Strings, booleans and null only compare for (in)equality in the directory.
        if (kind != Kind::DateTime || lit == Lit::Null) && !matches!(op, Op::Eq | Op::Ne) {
            return Err(unsupported_clause(prop));
        }
        Ok(Expr::Cmp { prop, op, lit })
    }
}

fn unsupported_clause(prop: &str) -> GraphError {
    GraphError::unsupported_query(format!(
        "Unsupported or invalid query filter clause specified for property '{prop}' of resource 'User'."
    ))
}

fn resolve_prop(name: &str) -> GraphResult<(&'static str, Kind)> {
    if let Some(found) = filterable(name) {
        return Ok(found);
    }
    if canonical_user_property(name).is_some() {
        return Err(unsupported_clause(name));
    }
    Err(GraphError::bad_request(format!(
        "Invalid filter clause: Could not find a property named '{name}' on type 'microsoft.graph.user'."
    )))
}

/// A parsed `$filter` over users, with the facts Graph's validation needs.
#[derive(Debug, Clone)]
pub(crate) struct UserFilter {
    pub expr: Expr,
    /// Uses `ne`, `not` or `endsWith`, which need an advanced query.
    pub needs_advanced: bool,
    pub props: BTreeSet<&'static str>,
}

impl UserFilter {
    pub fn parse(raw: &str) -> GraphResult<Self> {
        let toks = tokenize(raw)?;
        if toks.is_empty() {
            return Err(invalid_filter("the filter is empty."));
        }
        let mut p = Parser { toks, pos: 0 };
        let expr = p.expr()?;
        if p.pos != p.toks.len() {
            return Err(invalid_filter("unexpected text after the expression."));
        }
        let mut f = UserFilter {
            expr,
            needs_advanced: false,
            props: BTreeSet::new(),
        };
        let mut needs = false;
        let mut props = BTreeSet::new();
        walk(&f.expr, &mut needs, &mut props);
        f.needs_advanced = needs;
        f.props = props;
        Ok(f)
    }

    pub fn uses_sign_in(&self) -> bool {
        self.props.iter().any(|p| SIGN_IN_PROPS.contains(p))
    }

    /// True when the filter mixes signInActivity with any other property,
    /// which Graph refuses.
    pub fn mixes_sign_in(&self) -> bool {
        self.uses_sign_in() && self.props.iter().any(|p| !SIGN_IN_PROPS.contains(p))
    }

    /// `id in (...)` (or `id eq '...'`) at the top of an `and` chain: lets the list look the
    /// users up by id instead of scanning the directory.
    pub fn id_in(&self) -> Option<Vec<&str>> {
        fn find(e: &Expr) -> Option<Vec<&str>> {
            match e {
                Expr::In { prop: "id", values } => {
                    Some(values.iter().map(String::as_str).collect())
                }
                Expr::Cmp {
                    prop: "id",
                    op: Op::Eq,
                    lit: Lit::Str(s),
                } => Some(vec![s.as_str()]),
                Expr::And(a, b) => find(a).or_else(|| find(b)),
                _ => None,
            }
        }
        find(&self.expr)
    }

    /// `mail eq '...'` at the top of an `and` chain: lets the list use the mail index.
    pub fn mail_eq(&self) -> Option<&str> {
        fn find(e: &Expr) -> Option<&str> {
            match e {
                Expr::Cmp {
                    prop: "mail",
                    op: Op::Eq,
                    lit: Lit::Str(s),
                } => Some(s),
                Expr::And(a, b) => find(a).or_else(|| find(b)),
                _ => None,
            }
        }
        find(&self.expr)
    }

    pub fn matches(&self, u: &User) -> bool {
        eval(&self.expr, u)
    }
}

fn walk(e: &Expr, needs: &mut bool, props: &mut BTreeSet<&'static str>) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            walk(a, needs, props);
            walk(b, needs, props);
        }
        Expr::Not(a) => {
            *needs = true;
            walk(a, needs, props);
        }
        Expr::Cmp { prop, op, .. } => {
            if *op == Op::Ne {
                *needs = true;
            }
            props.insert(prop);
        }
        Expr::StartsWith { prop, .. } => {
            props.insert(prop);
        }
        Expr::EndsWith { prop, .. } => {
            *needs = true;
            props.insert(prop);
        }
        Expr::In { prop, .. } => {
            props.insert(prop);
        }
    }
}

enum Val {
    Str(Option<String>),
    Bool(bool),
    DateTime(Option<OffsetDateTime>),
}

fn value_of(u: &User, prop: &str) -> Val {
    match prop {
        "accountEnabled" => Val::Bool(u.account_enabled),
        "createdDateTime" => Val::DateTime(Some(u.created)),
        "externalUserStateChangeDateTime" => Val::DateTime(u.external_user_state_changed),
        "signInActivity/lastSignInDateTime" => Val::DateTime(u.sign_in.last),
        "signInActivity/lastNonInteractiveSignInDateTime" => {
            Val::DateTime(u.sign_in.last_non_interactive)
        }
        "signInActivity/lastSuccessfulSignInDateTime" => Val::DateTime(u.sign_in.last_successful),
        other => Val::Str(u.property(other).as_str().map(str::to_string)),
    }
}

fn eval(e: &Expr, u: &User) -> bool {
    match e {
        Expr::And(a, b) => eval(a, u) && eval(b, u),
        Expr::Or(a, b) => eval(a, u) || eval(b, u),
        Expr::Not(a) => !eval(a, u),
        Expr::StartsWith { prop, prefix } => match value_of(u, prop) {
            Val::Str(Some(s)) => s.to_lowercase().starts_with(&prefix.to_lowercase()),
            _ => false,
        },
        Expr::EndsWith { prop, suffix } => match value_of(u, prop) {
            Val::Str(Some(s)) => s.to_lowercase().ends_with(&suffix.to_lowercase()),
            _ => false,
        },
        Expr::In { prop, values } => match value_of(u, prop) {
            Val::Str(Some(s)) => values.iter().any(|v| v.eq_ignore_ascii_case(&s)),
            _ => false,
        },
        Expr::Cmp { prop, op, lit } => {
            let eq = *op == Op::Eq;
            match (value_of(u, prop), lit) {
                (Val::Str(s), Lit::Null) => eq == s.as_deref().is_none_or(str::is_empty),
                (Val::DateTime(d), Lit::Null) => eq == d.is_none(),
                (Val::Bool(_), Lit::Null) => !eq,
                // Directory string comparisons ignore case.
                (Val::Str(Some(s)), Lit::Str(l)) => eq == (s.to_lowercase() == l.to_lowercase()),
                (Val::Str(None), Lit::Str(_)) => !eq,
                (Val::Bool(b), Lit::Bool(l)) => eq == (b == *l),
                // A null date matches no range comparison, as in Graph: a user who
                // never signed in is not "le" any date.
                (Val::DateTime(None), _) => *op == Op::Ne,
                (Val::DateTime(Some(d)), Lit::DateTime(l)) => match op {
                    Op::Eq => d == *l,
                    Op::Ne => d != *l,
                    Op::Lt => d < *l,
                    Op::Le => d <= *l,
                    Op::Gt => d > *l,
                    Op::Ge => d >= *l,
                },
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_chain_with_mail_hint() {
        let f = UserFilter::parse("userType eq 'Guest' and mail eq 'a''b@x.com'").unwrap();
        assert_eq!(f.mail_eq(), Some("a'b@x.com"));
        assert!(!f.needs_advanced);
        assert!(!f.uses_sign_in());
    }

    #[test]
    fn flags_advanced_and_sign_in_mix() {
        let f = UserFilter::parse("not(userType eq 'Member')").unwrap();
        assert!(f.needs_advanced);
        let f = UserFilter::parse(
            "signInActivity/lastSignInDateTime le 2024-01-01T00:00:00Z and userType eq 'Guest'",
        )
        .unwrap();
        assert!(f.mixes_sign_in());
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(UserFilter::parse("userType eq").unwrap_err().status, 400);
        assert_eq!(
            UserFilter::parse("foo eq 'x'").unwrap_err().code,
            "BadRequest"
        );
        assert_eq!(
            UserFilter::parse("otherMails eq 'x'").unwrap_err().code,
            "Request_UnsupportedQuery"
        );
        assert!(UserFilter::parse("accountEnabled eq 'yes'").is_err());
    }

    #[test]
    fn in_lists_hold_at_most_fifteen_values() {
        let ids: Vec<String> = (0..15).map(|k| format!("'id-{k}'")).collect();
        let f = UserFilter::parse(&format!("id in ({})", ids.join(", "))).unwrap();
        assert_eq!(f.id_in().map(|v| v.len()), Some(15));
        assert!(!f.needs_advanced);
        let sixteen: Vec<String> = (0..16).map(|k| format!("'id-{k}'")).collect();
        let e = UserFilter::parse(&format!("id in ({})", sixteen.join(","))).unwrap_err();
        assert_eq!(e.code, "Request_UnsupportedQuery");
        assert!(e.message.contains("Max allowed: 15"), "{}", e.message);
        assert!(UserFilter::parse("id in ()").is_err());
        assert!(UserFilter::parse("accountEnabled in ('true')").is_err());
    }

    #[test]
    fn skiptoken_round_trips_and_rejects_foreign_tokens() {
        let t = encode_skiptoken("users", 42);
        assert_eq!(decode_skiptoken(&t, "users").unwrap(), 42);
        assert!(decode_skiptoken(&t, "members").is_err());
        assert!(decode_skiptoken("garbage!", "users").is_err());
    }
}
