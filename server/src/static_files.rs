//! Static files: `--static DIR` at `/`, `--pkg DIR` at `/pkg/`, so the demo and the wasm package
//! share the API's origin.

use crate::cli::Config;
use crate::pathenc::decode;
use crate::reply::{Body, Reply};
use std::path::{Path, PathBuf};

pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "ts" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Resolves a URL path to a file under one of the roots, or None. Every segment is decoded on
/// its own and `..`, `.`, and anything that would be a separator are refused, so no spelling of
/// a path leaves the root; the canonical-prefix check then also refuses symlinks out of it.
pub fn resolve(cfg: &Config, url_path: &str) -> Option<PathBuf> {
    let (root, rest) = match (url_path.strip_prefix("/pkg/"), &cfg.pkg_dir) {
        (Some(rest), Some(pkg)) => (pkg.clone(), rest),
        _ => (cfg.static_dir.clone()?, url_path.strip_prefix('/')?),
    };
    let mut path = root.clone();
    for raw in rest.split('/').filter(|s| !s.is_empty()) {
        let seg = decode(raw)?;
        if seg == "." || seg == ".." || seg.contains(['/', '\\', '\0']) {
            return None;
        }
        path.push(seg);
    }
    let root = root.canonicalize().ok()?;
    let mut path = path.canonicalize().ok()?;
    if path.is_dir() {
        path = path.join("index.html").canonicalize().ok()?;
    }
    (path.starts_with(&root) && path.is_file()).then_some(path)
}

pub async fn serve(cfg: &Config, url_path: &str) -> Reply {
    let Some(path) = resolve(cfg, url_path) else {
        return Reply::error(404, format!("not found: {url_path}"));
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => Reply {
            status: 200,
            body: Body::Bytes(bytes, content_type(&path)),
            headers: Vec::new(),
            applied: false,
        }
        // The demo is rebuilt often; stale wasm next to fresh JS glue fails in confusing ways.
        .header("Cache-Control", "no-cache"),
        Err(_) => Reply::error(404, format!("not found: {url_path}")),
    }
}
