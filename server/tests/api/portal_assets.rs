//! The portal's script, wasm and styles: the page names the build's content-hashed files,
//! which go out compressed and cached for good; any other file under /pkg revalidates;
//! pages are never cached nor compressed by us, and neither are gateway answers.

use crate::helpers::{agent_for, TestApp, TestUpstream};
use reqwest::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, IF_MODIFIED_SINCE, LAST_MODIFIED, VARY};
use reqwest::StatusCode;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
// Shaped like cargo-leptos' hashes (base64url MD5); the server takes them from hash.txt.
const JS_HASH: &str = "J5pbeJpyuu1YUI1Ngzh5ZA";
const WASM_HASH: &str = "W4_3wzMgnMEo-Q0XwxmNgw";
const CSS_HASH: &str = "C2s8LT0PV9yw5ex8GRS3yA";

/// Something shaped like a wasm file: compressible, but not trivially so.
fn wasm_like() -> Vec<u8> {
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    let mut x: u32 = 7;
    while out.len() < 300_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(format!("fn_{}:{};", x % 977, x >> 24).as_bytes());
    }
    out
}

fn js_like() -> Vec<u8> {
    "export function hydrate() { wasm.hydrate(); }\n".repeat(200).into_bytes()
}

fn css_like() -> Vec<u8> {
    ".btn { color: #123456; padding: 0.5rem 1rem; }\n".repeat(200).into_bytes()
}

struct Site {
    base: PathBuf,
    wasm: Vec<u8>,
}

impl Site {
    fn pkg(&self) -> PathBuf {
        self.base.join("site/pkg")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// A site as `cargo leptos build` writes it: with `hashed`, the files carry their hash
/// in their names and hash.txt lists them; without, plain names and no hash.txt.
fn site(hashed: bool) -> Site {
    let base = std::env::temp_dir().join(format!("portcullis-site-{}-{}", std::process::id(), rand::random::<u32>()));
    let pkg = base.join("site/pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let wasm = wasm_like();
    let name =
        |hash: &str, ext: &str| if hashed { format!("portcullis.{hash}.{ext}") } else { format!("portcullis.{ext}") };
    std::fs::write(pkg.join(name(WASM_HASH, "wasm")), &wasm).unwrap();
    std::fs::write(pkg.join(name(JS_HASH, "js")), js_like()).unwrap();
    std::fs::write(pkg.join(name(CSS_HASH, "css")), css_like()).unwrap();
    if hashed {
        std::fs::write(base.join("site/hash.txt"), format!("js: {JS_HASH}\nwasm: {WASM_HASH}\ncss: {CSS_HASH}\n"))
            .unwrap();
    }
    // Beside the site root, not in it: nothing may serve it.
    std::fs::write(base.join("secret.txt"), "outside the site").unwrap();
    Site { base, wasm }
}

async fn spawn(site: &Site) -> TestApp {
    let root = site.base.join("site").display().to_string();
    TestApp::spawn_configured(move |a| a.site_root = root).await
}

/// No automatic decompression: what arrives is what the server sent.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder().no_brotli().no_gzip().build().unwrap()
}

fn unbrotli(body: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    brotli_decompressor::Decompressor::new(body, 4096).read_to_end(&mut plain).unwrap();
    plain
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut plain).unwrap();
    plain
}

/// The /pkg paths a page links to or loads: the stylesheet and preload links carry the
/// full names; the hydration script is called with the names without extension.
fn pkg_paths(html: &str) -> Vec<String> {
    let mut out: Vec<String> = html
        .split("/pkg/")
        .skip(1)
        .map(|rest| rest.split(['"', '\'', ' ', '>']).next().unwrap_or("").to_owned())
        .filter(|name| !name.is_empty())
        .map(|name| format!("/pkg/{name}"))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn the_page_names_hashed_files_that_are_cached_for_good_and_compressed() {
    let site = site(true);
    let app = spawn(&site).await;
    let http = raw_client();

    let page = http.get(format!("{}/login", app.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[CACHE_CONTROL], "no-store", "a page names one build's files: never cached");
    let html = page.text().await.unwrap();
    let wasm_path = format!("/pkg/portcullis.{WASM_HASH}.wasm");
    let js_path = format!("/pkg/portcullis.{JS_HASH}.js");
    let css_path = format!("/pkg/portcullis.{CSS_HASH}.css");
    assert_eq!(pkg_paths(&html), [css_path.clone(), js_path.clone(), wasm_path.clone()], "{html}");
    // The hydration script loads what the preload links name.
    assert!(html.contains(&format!("\"portcullis.{JS_HASH}\", \"portcullis.{WASM_HASH}\"")), "{html}");

    for (path, plain) in [(&wasm_path, site.wasm.clone()), (&js_path, js_like()), (&css_path, css_like())] {
        let url = format!("{}{path}", app.base);
        let br = http.get(&url).header(ACCEPT_ENCODING, "gzip, deflate, br, zstd").send().await.unwrap();
        assert_eq!(br.status(), StatusCode::OK, "{path}");
        assert_eq!(br.headers()[CACHE_CONTROL], IMMUTABLE, "{path}");
        assert_eq!(br.headers()[CONTENT_ENCODING], "br", "{path}");
        assert_eq!(br.headers()[VARY], "accept-encoding", "{path}");
        let body = br.bytes().await.unwrap();
        assert!(body.len() * 2 < plain.len(), "{path}: {} of {} bytes is not compressed", body.len(), plain.len());
        assert_eq!(unbrotli(&body), plain, "{path}: brotli gives back the file");

        let gz = http.get(&url).header(ACCEPT_ENCODING, "gzip").send().await.unwrap();
        assert_eq!(gz.headers()[CONTENT_ENCODING], "gzip", "{path}");
        assert_eq!(gz.headers()[CACHE_CONTROL], IMMUTABLE, "{path}");
        assert_eq!(gunzip(&gz.bytes().await.unwrap()), plain, "{path}: gzip gives back the file");

        let identity = http.get(&url).header(ACCEPT_ENCODING, "identity").send().await.unwrap();
        assert!(identity.headers().get(CONTENT_ENCODING).is_none(), "{path}");
        assert_eq!(identity.headers()[CACHE_CONTROL], IMMUTABLE, "{path}");
        assert_eq!(identity.bytes().await.unwrap(), plain, "{path}");
    }
}

#[tokio::test]
async fn names_the_build_did_not_list_are_never_immutable() {
    let site = site(true);
    // What an older build without hashing left, and a file copied in by hand: both
    // served, as their names promise nothing about their content, revalidated each time.
    std::fs::write(site.pkg().join("portcullis.wasm"), &site.wasm).unwrap();
    std::fs::write(site.pkg().join("portcullis.Xx0000000000000000000x.js"), js_like()).unwrap();
    let app = spawn(&site).await;
    let http = raw_client();

    for path in ["/pkg/portcullis.wasm", "/pkg/portcullis.Xx0000000000000000000x.js"] {
        let r = http.get(format!("{}{path}", app.base)).header(ACCEPT_ENCODING, "br").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()[CACHE_CONTROL], "no-cache", "{path}");
        let last_modified = r.headers()[LAST_MODIFIED].clone();
        let again =
            http.get(format!("{}{path}", app.base)).header(IF_MODIFIED_SINCE, last_modified).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}: an unchanged file is revalidated, not sent");
        assert_eq!(again.headers()[CACHE_CONTROL], "no-cache", "{path}");
    }

    // Listed by the build but gone (a half-copied site), and never built at all.
    std::fs::remove_file(site.pkg().join(format!("portcullis.{CSS_HASH}.css"))).unwrap();
    for path in [format!("/pkg/portcullis.{CSS_HASH}.css"), "/pkg/portcullis.AAAAAAAAAAAAAAAAAAAAAA.wasm".into()] {
        let r = http.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_ne!(r.headers()[CACHE_CONTROL], IMMUTABLE, "{path}: a miss must not stick");
    }

    // reqwest removes literal dot segments, so those go out raw.
    let addr = app.base.trim_start_matches("http://").to_owned();
    for hostile in
        ["/pkg/../../secret.txt", "/pkg/%2e%2e/%2e%2e/secret.txt", "/pkg/..%2f..%2fsecret.txt", "/pkg/../hash.txt"]
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!("GET {hostile} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(!answer.contains("outside the site"), "{hostile} reached a file outside the site");
        assert!(!answer.contains(IMMUTABLE), "{hostile}: {answer}");
    }
}

#[tokio::test]
async fn a_precompressed_copy_is_sent_as_it_is() {
    let site = site(true);
    // `--precompress` builds write `<file>.br` at brotli's best; level 5 on the fly
    // would give other bytes (and a larger body).
    let wasm_name = format!("portcullis.{WASM_HASH}.wasm");
    let mut best = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut best, 4096, 11, 22);
        w.write_all(&site.wasm).unwrap();
    }
    std::fs::write(site.pkg().join(format!("{wasm_name}.br")), &best).unwrap();
    let app = spawn(&site).await;
    let get = |encoding: &'static str| {
        raw_client().get(format!("{}/pkg/{wasm_name}", app.base)).header(ACCEPT_ENCODING, encoding).send()
    };

    let r = get("gzip, deflate, br, zstd").await.unwrap();
    assert_eq!(r.headers()[CONTENT_ENCODING], "br");
    assert_eq!(r.headers()[CACHE_CONTROL], IMMUTABLE);
    assert_eq!(r.headers()[VARY], "accept-encoding");
    let body = r.bytes().await.unwrap();
    assert_eq!(body, best, "the build's own compression, not a new one");
    assert_eq!(unbrotli(&body), site.wasm);

    // A browser without brotli still gets the file compressed (on the fly).
    let r = get("gzip").await.unwrap();
    assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(r.headers()[CACHE_CONTROL], IMMUTABLE);
    assert_eq!(gunzip(&r.bytes().await.unwrap()), site.wasm);
}

#[tokio::test]
async fn without_a_hash_file_pages_name_the_plain_files_which_revalidate() {
    let site = site(false);
    let app = spawn(&site).await;
    let http = raw_client();
    let html = http.get(format!("{}/login", app.base)).send().await.unwrap().text().await.unwrap();
    assert_eq!(pkg_paths(&html), ["/pkg/portcullis.css", "/pkg/portcullis.js", "/pkg/portcullis.wasm"], "{html}");
    for path in pkg_paths(&html) {
        let r = http.get(format!("{}{path}", app.base)).header(ACCEPT_ENCODING, "br").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()[CONTENT_ENCODING], "br", "{path}");
        assert_eq!(r.headers()[CACHE_CONTROL], "no-cache", "{path}");
    }
}

#[tokio::test]
async fn pages_and_gateway_answers_are_never_compressed() {
    let site = site(true);
    let app = spawn(&site).await;
    let http = raw_client();
    for path in ["/", "/login", "/catalog"] {
        let r = http.get(format!("{}{path}", app.base)).header(ACCEPT_ENCODING, "gzip, br").send().await.unwrap();
        assert!(r.headers().get(CONTENT_ENCODING).is_none(), "{path} was compressed");
        assert_eq!(r.headers()[CACHE_CONTROL], "no-store", "{path}");
    }
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "plain", &upstream.base, &[("GET", "/big")]).await;
    let r = http
        .get(format!("{}/gw/plain/big", app.base))
        .header("x-api-key", &a.key.secret)
        .header(ACCEPT_ENCODING, "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get(CONTENT_ENCODING).is_none(), "the gateway forwards the upstream's bytes as they are");
    assert_eq!(r.bytes().await.unwrap().len(), 1 << 20);
}

/// The server is often started from elsewhere than the repository (systemd, the demo
/// script, the release tarball) with a relative or absolute site root; the hash file is
/// found from the site root either way. Here: relative to the test's working directory.
#[tokio::test]
async fn a_relative_site_root_finds_its_hash_file() {
    let site = site(true);
    let cwd = std::env::current_dir().unwrap();
    let relative = pathdiff(&site.base.join("site"), &cwd);
    let app = TestApp::spawn_configured(move |a| a.site_root = relative.display().to_string()).await;
    let html = raw_client().get(format!("{}/login", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(pkg_paths(&html).contains(&format!("/pkg/portcullis.{WASM_HASH}.wasm")), "{html}");
}

/// `to` as a path relative to `from` (both absolute).
fn pathdiff(to: &Path, from: &Path) -> PathBuf {
    let common = to.components().zip(from.components()).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    for c in to.components().skip(common) {
        out.push(c);
    }
    out
}
