//! The portal's script, wasm and styles go out compressed to browsers that accept it,
//! and revalidate cheaply; pages and gateway answers are never compressed by us.

use crate::helpers::{agent_for, TestApp, TestUpstream};
use reqwest::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, IF_MODIFIED_SINCE, LAST_MODIFIED};
use reqwest::StatusCode;
use std::io::Read;

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

async fn spawn_with_site() -> (TestApp, Vec<u8>, std::path::PathBuf) {
    let base = std::env::temp_dir().join(format!("portcullis-site-{}-{}", std::process::id(), rand::random::<u32>()));
    let site = base.join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    let wasm = wasm_like();
    std::fs::write(site.join("pkg/portcullis_bg.wasm"), &wasm).unwrap();
    // Beside the site root, not in it: nothing may serve it.
    std::fs::write(base.join("secret.txt"), "outside the site").unwrap();
    let root = site.display().to_string();
    let app = TestApp::spawn_configured(move |a| a.site_root = root).await;
    (app, wasm, base)
}

#[tokio::test]
async fn assets_are_compressed_for_browsers_that_accept_it_and_revalidate() {
    let (app, wasm, site) = spawn_with_site().await;
    // No automatic decompression: what arrives is what the server sent.
    let http = reqwest::Client::builder().no_brotli().no_gzip().build().unwrap();
    let url = format!("{}/pkg/portcullis_bg.wasm", app.base);
    let get = |encoding: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move { http.get(url).header(ACCEPT_ENCODING, encoding).send().await.unwrap() }
    };

    let br = get("gzip, deflate, br, zstd").await;
    assert_eq!(br.status(), StatusCode::OK);
    assert_eq!(br.headers()[CONTENT_ENCODING], "br");
    assert_eq!(br.headers()[CACHE_CONTROL], "no-cache");
    let last_modified = br.headers()[LAST_MODIFIED].clone();
    let body = br.bytes().await.unwrap();
    let mut plain = Vec::new();
    brotli_decompressor::Decompressor::new(&body[..], 4096).read_to_end(&mut plain).unwrap();
    assert_eq!(plain, wasm, "brotli gives back the file");
    println!("{} bytes → brotli {} bytes", wasm.len(), body.len());
    assert!(body.len() * 2 < wasm.len(), "compressed");

    let gz = get("gzip").await;
    assert_eq!(gz.headers()[CONTENT_ENCODING], "gzip");
    let body = gz.bytes().await.unwrap();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).unwrap();
    assert_eq!(plain, wasm, "gzip gives back the file");

    let identity = get("identity").await;
    assert!(identity.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(identity.bytes().await.unwrap(), wasm);

    let again = http.get(&url).header(IF_MODIFIED_SINCE, last_modified).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "an unchanged file is revalidated, not sent");

    // reqwest removes literal dot segments, so those go out raw.
    let addr = app.base.trim_start_matches("http://").to_owned();
    for hostile in
        ["/pkg/../../secret.txt", "/pkg/%2e%2e/%2e%2e/secret.txt", "/pkg/..%2f..%2fsecret.txt", "/pkg/nothing.wasm"]
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!("GET {hostile} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(!answer.contains("outside the site"), "{hostile} reached a file outside the site");
        assert!(!answer.starts_with("HTTP/1.1 200"), "{hostile}: {}", answer.lines().next().unwrap_or(""));
    }
    std::fs::remove_dir_all(site).unwrap();
}

#[tokio::test]
async fn pages_and_gateway_answers_are_never_compressed() {
    let (app, _, site) = spawn_with_site().await;
    let http = reqwest::Client::builder().no_brotli().no_gzip().build().unwrap();
    for path in ["/", "/login", "/catalog"] {
        let r = http.get(format!("{}{path}", app.base)).header(ACCEPT_ENCODING, "gzip, br").send().await.unwrap();
        assert!(r.headers().get(CONTENT_ENCODING).is_none(), "{path} was compressed");
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
    std::fs::remove_dir_all(site).unwrap();
}
