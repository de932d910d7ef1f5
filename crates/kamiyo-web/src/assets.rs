//! The stylesheet, the script and the icon, embedded in the binary and served under a name that
//! carries their content hash: a browser may keep them for a year, and a new release
//! changes the name, never the content behind an old one.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub struct Asset {
    /// `kamiyo-<hash>.css`: what pages link to.
    pub path: String,
    content_type: &'static str,
    body: &'static str,
}

/// Both assets, hashed once at start.
pub struct Assets {
    pub css: Asset,
    pub js: Asset,
    /// The site's icon: linked from every page, so a browser never asks for
    /// `/favicon.ico` (which would be a 404 in its console).
    pub icon: Asset,
}

impl Assets {
    pub fn new() -> Assets {
        Assets {
            css: Asset::new(
                "kamiyo",
                "css",
                "text/css; charset=utf-8",
                include_str!("../assets/kamiyo.css"),
            ),
            js: Asset::new(
                "kamiyo",
                "js",
                "text/javascript; charset=utf-8",
                include_str!("../assets/kamiyo.js"),
            ),
            icon: Asset::new(
                "kamiyo",
                "svg",
                "image/svg+xml",
                include_str!("../assets/kamiyo.svg"),
            ),
        }
    }

    fn find(&self, file: &str) -> Option<&Asset> {
        [&self.css, &self.js, &self.icon]
            .into_iter()
            .find(|a| a.path.strip_prefix("/assets/") == Some(file))
    }

    /// `GET /assets/{file}`: the asset with a year's immutable caching, or 404 (an old
    /// name after an upgrade, which the page it came from no longer links to).
    pub fn serve(&self, Path(file): Path<String>) -> Response {
        match self.find(&file) {
            Some(asset) => (
                [
                    (header::CONTENT_TYPE, asset.content_type),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                asset.body,
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
        }
    }
}

impl Default for Assets {
    fn default() -> Self {
        Assets::new()
    }
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static str) -> Asset {
        let digest = Sha256::digest(body.as_bytes());
        // 64 bits of the hash: ample to tell releases apart.
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            path: format!("/assets/{stem}-{hash}.{extension}"),
            content_type,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asset_name_carries_its_content_hash() {
        let a = Asset::new("x", "css", "text/css", "body { color: red }");
        let b = Asset::new("x", "css", "text/css", "body { color: blue }");
        assert_ne!(a.path, b.path);
        assert!(a.path.starts_with("/assets/x-") && a.path.ends_with(".css"));
        let assets = Assets::new();
        let css = assets.css.path.trim_start_matches("/assets/").to_owned();
        assert!(assets.find(&css).is_some());
        assert!(assets.find("kamiyo-0000000000000000.css").is_none());
        let icon = assets.icon.path.trim_start_matches("/assets/").to_owned();
        assert!(icon.ends_with(".svg") && assets.find(&icon).is_some());
    }
}
