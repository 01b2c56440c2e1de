//! Small helpers: Graph's date formats, ids, percent-decoding.

use base64::Engine;
use rand::Rng;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Graph writes directory timestamps as `2024-05-01T10:20:30Z`: UTC, whole seconds.
/// The `0001-01-01T00:00:00Z` sentinel of signInActivity comes out of the same format.
pub(crate) fn graph_datetime(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_else(|_| "0001-01-01T00:00:00Z".into())
}

/// `innerError.date` has no zone designator in Graph's answers.
pub(crate) fn inner_error_date(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

pub(crate) fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A random URL-safe string, used where Graph hands out opaque values
/// (assignment ids, redemption tickets, tokens).
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

pub(crate) fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .ok()
}

/// Percent-decodes a URL path. Unlike form decoding, `+` stays a plus.
pub(crate) fn percent_decode_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes one query value the way Graph writes its nextLinks (`+` for space).
pub(crate) fn encode_query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_like_graph() {
        assert_eq!(
            graph_datetime(datetime!(2024-05-01 10:20:30.5 +02:00)),
            "2024-05-01T08:20:30Z"
        );
        assert_eq!(
            graph_datetime(datetime!(0001-01-01 0:00 UTC)),
            "0001-01-01T00:00:00Z"
        );
    }

    #[test]
    fn decodes_paths() {
        assert_eq!(percent_decode_path("/a%24ref/b+c"), "/a$ref/b+c");
        assert_eq!(percent_decode_path("/bad%2"), "/bad%2");
    }
}
