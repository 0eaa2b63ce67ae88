//! The portal's script, wasm and stylesheet (`/pkg`): compressed for browsers that accept
//! it, and cached for a year when their name carries their content hash.
//!
//! `cargo leptos build` (`hash-files = true`) renames each of them to
//! `portcullis.<hash>.<ext>` and lists the hashes in `hash.txt` in the site root; the
//! page's `<script>`, `<link rel=preload>` and stylesheet name those files (leptos reads
//! the same `hash.txt`, see [`SiteHashes::hash_file`]). A new build gives changed files
//! new names, so a name the build listed can be cached `immutable`: a returning browser
//! loads the page without asking about them again. Anything else under `/pkg` (a file
//! without a hash in its name, or one this build did not list) revalidates on each load.
//!
//! `cargo leptos build --release --precompress` also writes `<file>.br` at brotli's best;
//! that copy is sent as it is (for a 1.72 MB wasm measured 2026-12-05: 408 KB, where
//! level 5 on the fly gives 473 KB). Its `<file>.gz` is not used: libflate's output is
//! larger than what flate2 makes on the fly at level 5 (702 against 614 KB for the same
//! wasm), so gzip — and everything in a build without `--precompress` — is compressed
//! on the fly. Pages are never compressed here: they can hold a secret shown
//! once beside text an attacker chose (BREACH).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What cargo-leptos names its hash file; it is written into the site root (see the
/// workspace's `hash-file-name`), so the site directory travels as one piece.
const HASH_FILE: &str = "hash.txt";

const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const REVALIDATE: HeaderValue = HeaderValue::from_static("no-cache");

/// The `/pkg` file names of one build whose names carry their content hash.
#[derive(Debug, Clone, Default)]
pub struct SiteHashes {
    names: HashSet<String>,
    hash_file: Option<PathBuf>,
}

impl SiteHashes {
    /// Reads `<site_root>/hash.txt` (`js: …`, `wasm: …`, `css: …` lines). A site built
    /// without hashing has none, and then nothing is cached immutably.
    pub fn read(site_root: &str, output_name: &str) -> std::io::Result<Self> {
        // Absolute, because leptos looks the file up relative to the executable's
        // directory (an absolute path replaces that), and the server may be started from
        // anywhere with a relative `--site-root`.
        let path = std::path::absolute(Path::new(site_root).join(HASH_FILE))?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Self { names: parse(&text, output_name), hash_file: Some(path) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    /// The hash file for `LeptosOptions::hash_file`, when the build wrote one: with it,
    /// `HydrationScripts` and `HashedStylesheet` name the hashed files.
    pub fn hash_file(&self) -> Option<&Path> {
        self.hash_file.as_deref()
    }

    pub fn is_hashed(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// `<output_name>.<hash>.<ext>` for each of the lines leptos itself reads. Lines of
/// other kinds (wasm-split's `manifest`, `split`) name files we do not build.
fn parse(text: &str, output_name: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(kind, hash)| (kind.trim(), hash.trim()))
        .filter(|(kind, hash)| matches!(*kind, "js" | "wasm" | "css") && is_hash(hash))
        .map(|(kind, hash)| format!("{output_name}.{hash}.{kind}"))
        .collect()
}

/// cargo-leptos' hashes are base64url (MD5, 22 characters); anything else is not one of
/// its lines, and must not turn into a file name with a `/` or `..` in it.
fn is_hash(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `/pkg` service: files from `<site_root>/pkg`, compressed, with the cache policy
/// above.
pub fn router(site_root: &str, hashes: SiteHashes) -> Router {
    use tower_http::compression::{CompressionLayer, CompressionLevel};
    let files = tower_http::services::ServeDir::new(Path::new(site_root).join("pkg")).precompressed_br();
    Router::new()
        .fallback_service(files)
        // For files without a precompressed copy. Brotli's highest levels take seconds
        // for the wasm on every cold load; level 5 is within a few per cent of them in
        // size at a fraction of the time.
        .layer(CompressionLayer::new().quality(CompressionLevel::Precise(5)))
        .layer(axum::middleware::from_fn_with_state(Arc::new(hashes), cache_policy))
}

async fn cache_policy(State(hashes): State<Arc<SiteHashes>>, request: Request, next: Next) -> Response {
    // Nested under /pkg, the path is the file's name (plus a leading slash).
    let listed = hashes.is_hashed(request.uri().path().trim_start_matches('/'));
    let mut response = next.run(request).await;
    let found = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, if listed && found { IMMUTABLE } else { REVALIDATE });
    // The body depends on Accept-Encoding whether it was compressed now or beforehand
    // (tower-http adds this only when it compresses itself): a shared cache must not
    // hand a brotli body to a browser that asked for gzip.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_lines_leptos_reads() {
        let names = parse("js: abcDEF123_-\nwasm: W4sm\ncss: Css9\nmanifest: Mnf\nsplit: Spl\n", "portcullis");
        let mut names: Vec<_> = names.into_iter().collect();
        names.sort();
        assert_eq!(names, ["portcullis.Css9.css", "portcullis.W4sm.wasm", "portcullis.abcDEF123_-.js"]);
    }

    #[test]
    fn a_line_that_is_no_hash_names_nothing() {
        assert!(parse("js: ../../etc/passwd\nwasm: a/b\ncss:\njs x\n", "portcullis").is_empty());
    }
}
