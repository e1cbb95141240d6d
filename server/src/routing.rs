//! Paths matched as the reference stack matches them (NestJS on Express: routing neither strict
//! nor case-sensitive): `GET /API/V2/PUBLIC/WEBHOOKS/USER/` reaches the operation of
//! `GET /api/v2/public/webhooks/user`. Before the router sees a request, a path that matches
//! an operation's template that way is rewritten to the template's spelling; path parameters
//! keep their bytes (so their case), the query string is kept.
//!
//! Only the API under [`API_PREFIX`] is matched this way; the probes, `/metrics`, the docs and
//! the served spec keep their exact paths. A request that would not reach an operation anyway
//! (no template, another method) is left alone, so a 404 still names the path as it was sent.

use std::sync::LazyLock;

use axum::extract::{OriginalUri, Request};
use axum::http::uri::PathAndQuery;
use axum::http::{Method, Uri};
use webhooks::server::Operation;

/// The global prefix of the reference application's routes.
pub const API_PREFIX: &str = "/api/";

enum Segment {
    Literal(&'static str),
    Param,
}

struct Template {
    segments: Vec<Segment>,
    method: Method,
}

impl Template {
    fn parse(operation: Operation) -> Option<Self> {
        let method = Method::from_bytes(operation.method().as_bytes()).ok()?;
        let segments = operation.path().strip_prefix('/')?.split('/').map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Segment::Param
            } else {
                Segment::Literal(s)
            }
        });
        Some(Self { segments: segments.collect(), method })
    }

    fn literals(&self) -> usize {
        self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count()
    }

    /// Whether `method` reaches this operation (axum answers `HEAD` with a `GET` route).
    fn serves(&self, method: &Method) -> bool {
        self.method == method || (self.method == Method::GET && method == Method::HEAD)
    }

    /// `segments` in the template's spelling, if they match it.
    fn spell(&self, segments: &[&str]) -> Option<String> {
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut path = String::new();
        for (template, given) in self.segments.iter().zip(segments) {
            path.push('/');
            match template {
                Segment::Literal(literal) if literal.eq_ignore_ascii_case(given) => path.push_str(literal),
                // Empty, or not text once decoded: the router's answer for it stays as it is.
                Segment::Param if decodes(given) => path.push_str(given),
                _ => return None,
            }
        }
        Some(path)
    }
}

/// A path parameter axum can hand to the operation.
fn decodes(segment: &str) -> bool {
    !segment.is_empty() && percent_encoding::percent_decode_str(segment).decode_utf8().is_ok()
}

/// The API's templates, those with more literal segments first (a literal beats a parameter).
static TEMPLATES: LazyLock<Vec<Template>> = LazyLock::new(|| {
    let mut templates: Vec<Template> = Operation::ALL
        .iter()
        .filter(|op| op.path().starts_with(API_PREFIX))
        .filter_map(|op| Template::parse(*op))
        .collect();
    templates.sort_by_key(|t| std::cmp::Reverse(t.literals()));
    templates
});

/// The contract's spelling of `path` for `method`, when it differs from `path` and an
/// operation would serve it.
pub fn canonical_path(method: &Method, path: &str) -> Option<String> {
    // Express allows one trailing slash, not more.
    let trimmed = match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    };
    let segments: Vec<&str> = trimmed.strip_prefix('/')?.split('/').collect();
    let canonical =
        TEMPLATES.iter().filter(|t| t.serves(method)).find_map(|template| template.spell(&segments))?;
    (canonical != path).then_some(canonical)
}

/// `service` behind [`normalise`].
pub type Normalised<S> = tower::util::MapRequest<S, fn(Request) -> Request>;

pub fn normalised<S>(service: S) -> Normalised<S> {
    tower::util::MapRequest::new(service, normalise as fn(Request) -> Request)
}

/// Rewrites the request's path to [`canonical_path`], keeping what was sent as [`OriginalUri`]
/// (axum keeps an existing one) for logs.
pub fn normalise(mut request: Request) -> Request {
    let Some(path) = canonical_path(request.method(), request.uri().path()) else {
        return request;
    };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = request.uri().clone().into_parts();
    let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
        return request;
    };
    parts.path_and_query = Some(path_and_query);
    let Ok(uri) = Uri::from_parts(parts) else {
        return request;
    };
    let original = std::mem::replace(request.uri_mut(), uri);
    request.extensions_mut().insert(OriginalUri(original));
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "/api/v2/public/webhooks/user";

    fn canonical(method: Method, path: &str) -> Option<String> {
        canonical_path(&method, path)
    }

    #[test]
    fn case_and_one_trailing_slash_reach_the_operation() {
        assert_eq!(canonical(Method::GET, "/API/V2/PUBLIC/WEBHOOKS/USER/").as_deref(), Some(USER));
        assert_eq!(canonical(Method::POST, "/api/v2/public/webhooks/user/").as_deref(), Some(USER));
        assert_eq!(canonical(Method::HEAD, "/Api/v2/Public/Webhooks/User").as_deref(), Some(USER));
        assert_eq!(
            canonical(Method::GET, "/API/v2/public/WEBHOOKS/logs/").as_deref(),
            Some("/api/v2/public/webhooks/logs")
        );
        assert_eq!(
            canonical(Method::PATCH, "/API/V2/PUBLIC/WEBHOOKS/USER/AbC-%C3%A9/").as_deref(),
            Some("/api/v2/public/webhooks/user/AbC-%C3%A9"),
            "the parameter keeps its case and encoding"
        );
        assert_eq!(
            canonical(Method::POST, "/api/V2/internal/EVENTS/").as_deref(),
            Some("/api/v2/internal/events")
        );
    }

    #[test]
    fn what_would_not_reach_an_operation_is_left_alone() {
        for (method, path) in [
            (Method::GET, USER),
            (Method::GET, "/api/v2/public/webhooks/user/Some-Id"),
            (Method::PUT, "/API/V2/PUBLIC/WEBHOOKS/USER/"),
            (Method::POST, "/API/V2/PUBLIC/WEBHOOKS/USER/some-id"),
            (Method::GET, "/api/v2/public/webhooks/user//"),
            (Method::GET, "/api/v2/public/webhooks/user/x//"),
            (Method::GET, "/API/V2/PUBLIC/WEBHOOKS/USER/%FF"),
            (Method::GET, "/api/v2/public/webhooks/%75ser"),
            (Method::GET, "/api/v2/public/webhooks"),
            (Method::GET, "/HEALTHZ"),
            (Method::GET, "/healthz/"),
            (Method::GET, "/Metrics"),
            (Method::GET, "/readyz/"),
            (Method::GET, "/DOCS/"),
            (Method::GET, "/API-DOCS/openapi.json"),
            (Method::GET, "/"),
            (Method::GET, ""),
        ] {
            assert_eq!(canonical(method.clone(), path), None, "{method} {path}");
        }
    }

    #[test]
    fn the_query_is_kept_and_the_sent_uri_remembered() {
        let request = Request::builder()
            .method(Method::GET)
            .uri("/API/V2/PUBLIC/WEBHOOKS/LOGS/?limit=5&eventType=X")
            .body(axum::body::Body::empty())
            .unwrap();
        let request = normalise(request);
        assert_eq!(request.uri(), "/api/v2/public/webhooks/logs?limit=5&eventType=X");
        assert_eq!(
            request.extensions().get::<OriginalUri>().map(|u| u.0.to_string()).as_deref(),
            Some("/API/V2/PUBLIC/WEBHOOKS/LOGS/?limit=5&eventType=X")
        );
        let untouched =
            normalise(Request::builder().uri("/healthz/").body(axum::body::Body::empty()).unwrap());
        assert_eq!(untouched.uri(), "/healthz/");
        assert!(untouched.extensions().get::<OriginalUri>().is_none());
    }
}
