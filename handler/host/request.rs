//! The request as the functions see it, already read and size-checked, and the helpers that
//! build answers. One shape for every function keeps status mapping in one place.

use bytes::Bytes;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};

pub type Response = warp::reply::Response;

/// A call from the host (forwarded HTTP or an invocation), body fully read.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    /// The path as the host forwarded it, e.g. `/api/signup/verify`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `X-Azure-Functions-InvocationId`, or a fresh id when called outside the host.
    pub invocation_id: String,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Query parameters, decoded. Repeated names keep the first value: a second `token=`
    /// appended by a link rewriter must not replace the one we sent.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The media type without parameters, lower-cased.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// The key the per-client rate limit counts under: the caller's IP as the platform saw
    /// it, with IPv6 clients bucketed by their /64 (one customer line holds a whole /64, so
    /// per-address counting would let one machine rotate through 2^64 "clients").
    ///
    /// Whose word is taken: App Service's front end *appends* the address it accepted the
    /// connection from to `X-Forwarded-For`, so the right-most entry is the platform's and
    /// everything left of it is whatever the client sent. Any other header (`X-Azure-ClientIP`,
    /// `X-Real-IP`, ...) is the client's to invent unless a trusted proxy in front writes it,
    /// so it is used only when `trusted_header` (the setting `PORTAL_CLIENT_IP_HEADER`) names
    /// it, as for a deployment behind Front Door.
    pub fn client_key(&self, trusted_header: Option<&str>) -> Option<String> {
        let raw = match trusted_header {
            Some(name) => self
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .next_back()
                .map(|v| v.rsplit(',').next().unwrap_or(v).trim().to_string()),
            None => {
                // Repeated header fields form one comma-separated list (RFC 9110 §5.3).
                let forwarded = self
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(",");
                forwarded
                    .rsplit(',')
                    .map(str::trim)
                    .find(|s| !s.is_empty())
                    .map(str::to_string)
            }
        }?;
        let ip: std::net::IpAddr = strip_port(&raw).parse().ok()?;
        Some(rate_key(ip))
    }
}

/// IPv4 addresses as they are; IPv6 as their /64 network (an IPv4-mapped one as its IPv4).
fn rate_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

fn strip_port(ip: &str) -> &str {
    // "1.2.3.4:5678" -> "1.2.3.4"; "[::1]:80" -> "::1"; a bare IPv6 address stays whole.
    if let Some(rest) = ip.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match ip.matches(':').count() {
        1 => ip.split(':').next().unwrap_or(ip),
        _ => ip,
    }
}

/// Headers every page carries: no inline script, no framing, no sniffing, no referrer to other
/// sites (token pages must not leak their URL to anything they link to), nothing cached.
pub fn page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`: a token page's address never reaches another site (the links out, to
    // Microsoft's redeem page or the terms, carry no Referer), while the page's own form posts
    // still carry their Origin. `no-referrer` would make browsers send `Origin: null` on them,
    // indistinguishable from a post forged by another site.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub fn html(status: StatusCode, body: String) -> Response {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    page_headers(res.headers_mut());
    res
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut res = Response::new(value.to_string().into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

pub fn plain(status: StatusCode, text: &str) -> Response {
    let mut res = Response::new(text.to_string().into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    page_headers(res.headers_mut());
    res
}

pub fn with_header(mut res: Response, name: header::HeaderName, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
    res
}

/// 405 with the `Allow` header HTTP asks for.
pub fn method_not_allowed(allow: &str) -> Response {
    with_header(
        plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "This address does not accept that method.",
        ),
        header::ALLOW,
        allow,
    )
}

pub fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "Nothing here.")
}

/// A HEAD answer is the GET answer without its body; built this way no HEAD can ever reach
/// code that changes state.
pub fn strip_body(res: Response) -> Response {
    let (parts, _) = res.into_parts();
    Response::from_parts(parts, Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_headers(pairs: &[(&'static str, &str)]) -> HttpRequest {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        HttpRequest {
            method: Method::GET,
            path: "/api/signup".into(),
            query: Some("token=a&token=b&lang=sv".into()),
            headers,
            body: Bytes::new(),
            invocation_id: "x".into(),
        }
    }

    #[test]
    fn the_client_is_the_hop_the_platform_wrote() {
        let r = with_headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7:51234")]);
        assert_eq!(r.client_key(None).as_deref(), Some("203.0.113.7"));
        let mut r = with_headers(&[("x-forwarded-for", "6.6.6.6")]);
        r.headers
            .append("x-forwarded-for", HeaderValue::from_static("192.0.2.4"));
        assert_eq!(
            r.client_key(None).as_deref(),
            Some("192.0.2.4"),
            "the last field's last hop"
        );
        assert_eq!(with_headers(&[]).client_key(None), None);
        assert_eq!(
            with_headers(&[("x-forwarded-for", "not-an-ip")]).client_key(None),
            None
        );
    }

    #[test]
    fn headers_a_client_can_send_count_only_when_a_setting_trusts_them() {
        let r = with_headers(&[
            ("x-forwarded-for", "198.51.100.9"),
            ("x-azure-clientip", "203.0.113.77"),
        ]);
        assert_eq!(r.client_key(None).as_deref(), Some("198.51.100.9"));
        assert_eq!(
            r.client_key(Some("x-azure-clientip")).as_deref(),
            Some("203.0.113.77")
        );
        // Trusted but absent: no key (the limit then counts nothing rather than a guess).
        let r = with_headers(&[("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(r.client_key(Some("x-azure-clientip")), None);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        for (raw, key) in [
            ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff:eeee:dddd:cccc", "2001:db8:1:2::/64"),
            ("[2001:db8:1:3::9]:443", "2001:db8:1:3::/64"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
        ] {
            let r = with_headers(&[("x-forwarded-for", raw)]);
            assert_eq!(r.client_key(None).as_deref(), Some(key), "{raw}");
        }
    }

    #[test]
    fn first_query_value_wins() {
        let r = with_headers(&[]);
        assert_eq!(r.query_param("token").as_deref(), Some("a"));
        assert_eq!(r.query_param("lang").as_deref(), Some("sv"));
        assert_eq!(r.query_param("nope"), None);
    }
}
