//! Script descriptors (c15t-compatible shape) and the URL policy every injected script obeys:
//! `https:`, or same-origin, or `http:` only for `localhost` / `127.0.0.1`. Everything else
//! (`javascript:`, `data:`, `blob:`, other hosts over `http:`) is refused before anything is
//! injected.

/// Where the `<script>` element goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `document.head` (the default).
    Head,
    /// `document.body`.
    Body,
}

/// What a script runs: a URL or inline text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `src`: an external script.
    Src(String),
    /// `textContent`: an inline script.
    Text(String),
}

/// One script to inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptDescriptor {
    /// Element id; an element with this id already in the document is not injected again.
    pub id: String,
    /// What it runs.
    pub source: Source,
    /// The `async` attribute (default true).
    pub is_async: bool,
    /// The `defer` attribute.
    pub defer: bool,
    /// CSP nonce (falls back to `config.nonce`).
    pub nonce: Option<String>,
    /// Subresource-integrity hash.
    pub integrity: Option<String>,
    /// The `crossorigin` attribute.
    pub cross_origin: Option<String>,
    /// Extra attributes, in order.
    pub attributes: Vec<(String, String)>,
    /// Head or body.
    pub target: Target,
    /// Keep the element when consent is revoked.
    pub persist_after_revoke: bool,
}

impl ScriptDescriptor {
    /// A descriptor for an external script with the defaults (async, head).
    pub fn src(id: &str, src: &str) -> Self {
        ScriptDescriptor {
            id: id.into(),
            source: Source::Src(src.into()),
            is_async: true,
            defer: false,
            nonce: None,
            integrity: None,
            cross_origin: None,
            attributes: Vec::new(),
            target: Target::Head,
            persist_after_revoke: false,
        }
    }
}

/// Checks `resolved` (an absolute URL as the browser resolved it, e.g. `new URL(src, base).href`)
/// against the URL policy, given the page's origin (`https://example.com`). Returns a message
/// naming the URL when refused.
pub fn check_url(resolved: &str, page_origin: &str) -> Result<(), String> {
    match refusal(&resolved.to_ascii_lowercase(), page_origin) {
        None => Ok(()),
        Some(why) => Err(refused(why, resolved)),
    }
}

/// The message refusing `url` for `why`: `script URL refused (<why>): <url>`.
pub fn refused(why: &str, url: &str) -> String {
    ["script URL refused (", why, "): ", url].concat()
}

/// Why the policy refuses `lower` (the URL in lower case), or `None` when it allows it.
fn refusal(lower: &str, page_origin: &str) -> Option<&'static str> {
    let Some((scheme, rest)) = lower.split_once(':') else {
        return Some("not an absolute URL");
    };
    let Some(after) = rest.strip_prefix("//") else {
        return Some("not a network URL");
    };
    let authority = after.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Some("credentials in URL");
    }
    let origin_len = scheme.len() + 3 + authority.len();
    if lower
        .get(..origin_len)
        .is_some_and(|o| o.eq_ignore_ascii_case(page_origin))
    {
        return None;
    }
    match scheme {
        "https" if !authority.is_empty() => None,
        "http" => {
            // The host: inside `[...]` for IPv6, else before any `:port`.
            let (host, end) = match authority.strip_prefix('[') {
                Some(v6) => (v6, ']'),
                None => (authority, ':'),
            };
            let host = match host.split_once(end) {
                Some((h, _)) => h,
                None => host,
            };
            if matches!(host, "localhost" | "127.0.0.1") {
                None
            } else {
                Some("http is allowed only for localhost")
            }
        }
        _ => Some("scheme not allowed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "https://shop.example";

    #[test]
    fn https_and_same_origin_are_allowed() {
        assert!(check_url("https://cdn.vendor.example/x.js", PAGE).is_ok());
        assert!(check_url("https://shop.example/local.js", PAGE).is_ok());
        assert!(check_url("http://plain.example/x.js", "http://plain.example").is_ok());
    }

    #[test]
    fn http_only_for_localhost() {
        assert!(check_url("http://localhost:8080/fake/a.js", PAGE).is_ok());
        assert!(check_url("http://127.0.0.1/fake/a.js", PAGE).is_ok());
        let err = check_url("http://evil.example/a.js", PAGE).unwrap_err();
        assert!(err.contains("http://evil.example/a.js"), "{err}");
        assert!(check_url("http://localhost.evil.example/a.js", PAGE).is_err());
    }

    #[test]
    fn dangerous_schemes_are_refused_with_the_url() {
        for url in [
            "javascript:alert(1)",
            "data:text/javascript,alert(1)",
            "blob:https://shop.example/uuid",
            "ftp://files.example/x.js",
            "JAVASCRIPT:alert(1)",
            "https://user:pw@cdn.example/x.js",
            "nonsense",
        ] {
            let err = check_url(url, PAGE).unwrap_err();
            assert!(err.contains(url), "{err}");
        }
    }

    #[test]
    fn origin_prefix_tricks_are_not_same_origin() {
        assert!(check_url("http://shop.example.evil/x.js", "http://shop.example").is_err());
    }
}
