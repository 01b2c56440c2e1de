//! What the two HTTP functions share: choosing the language, the brand, and turning the
//! portal's failures into answers. This is the one place where errors become statuses.

use std::sync::Arc;

use warp::http::{header, StatusCode};

use super::Portal;
use crate::adapters::tables::StoreError;
use crate::core::policy::Language;
use crate::host::request::{self, HttpRequest, Response};
use crate::views::{self, Brand};

/// `?lang=` wins (the visible switch), then the form's own `lang` field, then the browser's
/// `Accept-Language`, then the portal default.
pub fn language(portal: &Portal, req: &HttpRequest, form_lang: Option<&str>) -> Language {
    req.query_param("lang")
        .as_deref()
        .or(form_lang)
        .and_then(|l| l.parse().ok())
        .or_else(|| {
            req.header("accept-language")
                .and_then(Language::from_accept_language)
        })
        .unwrap_or(portal.settings.portal.default_language)
}

pub fn brand(portal: &Portal) -> Brand<'_> {
    Brand {
        branding: &portal.settings.portal.branding,
        has_logo: portal.settings.portal.branding.logo_file.is_some(),
    }
}

/// Whether the caller wants JSON back (scripts) rather than a page (people).
pub fn wants_json(req: &HttpRequest) -> bool {
    req.content_type().as_deref() == Some("application/json")
        || req
            .header("accept")
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

pub fn page(status: StatusCode, body: String) -> Response {
    request::html(status, body)
}

/// The answer when storage (or something else we depend on before any decision) fails:
/// 503 with a page that says nothing was lost.
pub fn unavailable(
    portal: &Portal,
    req: &HttpRequest,
    lang: Language,
    err: &StoreError,
) -> Response {
    tracing::warn!(error = %err, "storage unavailable");
    let res = if wants_json(req) {
        request::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"error": "unavailable", "message": "The service is temporarily unavailable. Nothing was lost; try again in a few minutes."}),
        )
    } else {
        page(
            StatusCode::SERVICE_UNAVAILABLE,
            views::unavailable(&brand(portal), lang),
        )
    };
    request::with_header(res, header::RETRY_AFTER, "60")
}

pub fn too_many(
    portal: &Portal,
    req: &HttpRequest,
    lang: Language,
    wait: std::time::Duration,
) -> Response {
    let secs = wait.as_secs().max(1);
    let res = if wants_json(req) {
        request::json(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({"error": "too_many_requests", "retry_after_seconds": secs}),
        )
    } else {
        page(
            StatusCode::TOO_MANY_REQUESTS,
            views::too_many_requests(&brand(portal), lang, secs.div_ceil(60)),
        )
    };
    request::with_header(res, header::RETRY_AFTER, &secs.to_string())
}

pub fn error(
    portal: &Portal,
    req: &HttpRequest,
    lang: Language,
    kind: views::ErrorKind,
) -> Response {
    let (status, code) = match kind {
        views::ErrorKind::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
        views::ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        views::ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        views::ErrorKind::UnsupportedType => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
    };
    if wants_json(req) {
        return request::json(status, &serde_json::json!({ "error": code }));
    }
    page(status, views::error_page(&brand(portal), lang, kind))
}

/// The path and query without `lang`, for the language switch on token pages.
pub fn self_path(req: &HttpRequest) -> String {
    let kept: Vec<(String, String)> = req
        .query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k != "lang")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    if kept.is_empty() {
        return req.path.clone();
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    format!("{}?{}", req.path, query)
}

/// Whether a state-changing POST comes from the portal's own pages. Browsers send `Origin` on
/// every cross-site POST, so a decision forged by another site's form carries that site's
/// origin (or `null`) and is refused. No `Origin` at all is a client that is not a browser
/// page, which a cross-site forgery cannot be.
pub fn same_origin(portal: &Portal, req: &HttpRequest) -> bool {
    let Some(origin) = req.header("origin") else {
        return true;
    };
    let ours = portal.settings.portal.public_url.origin();
    match url::Url::parse(origin.trim()) {
        Ok(theirs) => theirs.origin() == ours,
        Err(_) => false,
    }
}

/// The answer to a POST from another site's page.
pub fn cross_site(portal: &Portal, req: &HttpRequest, lang: Language) -> Response {
    tracing::info!("refused a POST from another origin");
    let mut res = error(portal, req, lang, views::ErrorKind::BadRequest);
    *res.status_mut() = StatusCode::FORBIDDEN;
    res
}

/// A link for mail, always from the configured public URL, never from the Host header.
pub fn public_link(portal: &Portal, path: &str, token: &str) -> String {
    let base = portal
        .settings
        .portal
        .public_url
        .as_str()
        .trim_end_matches('/');
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    format!("{base}{path}?token={token}")
}

pub fn shared(portal: &Arc<Portal>) -> &Portal {
    portal.as_ref()
}
