//! `VerifiedDownload` against a tiny HTTP server on 127.0.0.1 run by the
//! test itself (no internet needed).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use advclust_data::{DataError, VerifiedDownload, sha256_file, sha256_hex};
use common::TempDir;

const BODY: &[u8] = b"some dataset bytes\n\x00\x01\x02\xff";

/// Serves `GET /file` with `BODY`, `GET /big` with 300 kB, `GET /huge`
/// with `BODY` but a `Content-Length` of 2^50, everything else with 404. Returns the base URL and a request counter.
fn serve() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // skip headers
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" || line == "\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let big = big_body();
            let (status, body): (&str, &[u8]) = match path {
                "/file" => ("200 OK", BODY),
                "/big" => ("200 OK", &big),
                "/huge" => ("200 OK", BODY),
                _ => ("404 Not Found", b"not found"),
            };
            // `/huge` announces far more than it sends.
            let announced = if path == "/huge" {
                1u64 << 50
            } else {
                body.len() as u64
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {announced}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
            let _ = stream.flush();
        }
    });
    (format!("http://{addr}"), hits)
}

fn big_body() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn leftovers(dir: &TempDir) -> Vec<String> {
    std::fs::read_dir(dir.path())
        .map(|it| {
            it.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn download_then_cache_hit() {
    let (base, hits) = serve();
    let cache = TempDir::new("dl-ok");
    let dir = cache.join("nested/cache");
    let dl = VerifiedDownload::new(format!("{base}/file"), sha256_hex(BODY), "data.bin");
    assert!(!dl.is_cached(&dir).unwrap());
    let p = dl.fetch(&dir).unwrap();
    assert_eq!(p, dir.join("data.bin"));
    assert_eq!(std::fs::read(&p).unwrap(), BODY);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(dl.is_cached(&dir).unwrap());
    // second fetch: no request
    let p2 = dl.fetch(&dir).unwrap();
    assert_eq!(p2, p);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // upper-case hash accepted too
    let upper = VerifiedDownload::new(dl.url.clone(), dl.sha256.to_uppercase(), "data.bin");
    upper.fetch(&dir).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // only the final file, no temporary left over
    let listing = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(listing, 1);
}

#[test]
fn streamed_big_file() {
    let (base, _) = serve();
    let cache = TempDir::new("dl-big");
    let big = big_body();
    let dl = VerifiedDownload::new(format!("{base}/big"), sha256_hex(&big), "big.bin");
    let p = dl.fetch(cache.path()).unwrap();
    assert_eq!(sha256_file(&p).unwrap(), sha256_hex(&big));
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 300_000);
}

#[test]
fn corrupted_cache_is_replaced() {
    let (base, hits) = serve();
    let cache = TempDir::new("dl-replace");
    std::fs::write(cache.join("data.bin"), b"stale").unwrap();
    let dl = VerifiedDownload::new(format!("{base}/file"), sha256_hex(BODY), "data.bin");
    assert!(!dl.is_cached(cache.path()).unwrap());
    dl.fetch(cache.path()).unwrap();
    assert_eq!(std::fs::read(cache.join("data.bin")).unwrap(), BODY);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn http_404() {
    let (base, hits) = serve();
    let cache = TempDir::new("dl-404");
    let dl = VerifiedDownload::new(format!("{base}/missing"), sha256_hex(BODY), "x.bin");
    let e = dl.fetch(cache.path()).unwrap_err();
    assert!(
        matches!(e, DataError::HttpStatus { status: 404, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("/missing"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(!cache.join("x.bin").exists());
    assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));
}

#[test]
fn checksum_mismatch_leaves_nothing() {
    let (base, _) = serve();
    let cache = TempDir::new("dl-mismatch");
    let wrong = sha256_hex(b"something else");
    let dl = VerifiedDownload::new(format!("{base}/file"), wrong.clone(), "data.bin");
    let e = dl.fetch(cache.path()).unwrap_err();
    match &e {
        DataError::ChecksumMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &sha256_hex(BODY));
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(!cache.join("data.bin").exists());
    assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));
}

#[test]
fn connection_refused() {
    // bind then drop, so nothing listens on that port
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cache = TempDir::new("dl-refused");
    let dl = VerifiedDownload::new(
        format!("http://127.0.0.1:{port}/file"),
        sha256_hex(BODY),
        "data.bin",
    );
    let e = dl.fetch(cache.path()).unwrap_err();
    assert!(matches!(e, DataError::Network { .. }), "{e:?}");
    assert!(!cache.join("data.bin").exists());
}

#[test]
fn invalid_arguments() {
    let cache = TempDir::new("dl-args");
    for (hash, name) in [
        ("abc", "ok.bin"),
        (&"g".repeat(64)[..], "ok.bin"),
        (&"a".repeat(64)[..], "../escape.bin"),
        (&"a".repeat(64)[..], ""),
        (&"a".repeat(64)[..], ".."),
    ] {
        let dl = VerifiedDownload::new("http://127.0.0.1:1/x", hash, name);
        assert!(
            matches!(dl.fetch(cache.path()), Err(DataError::InvalidArgument(_))),
            "{hash} {name}"
        );
    }
}

#[test]
fn serde_round_trip() {
    let dl = VerifiedDownload::new("http://x/y", "a".repeat(64), "y");
    let json = serde_json::to_string(&dl).unwrap();
    assert_eq!(serde_json::from_str::<VerifiedDownload>(&json).unwrap(), dl);
}

#[test]
fn announced_size_over_the_limit_is_refused_before_writing() {
    let (base, _) = serve();
    let dir = TempDir::new("dl-huge");
    let dl = VerifiedDownload::new(format!("{base}/huge"), sha256_hex(BODY), "huge.bin");
    let e = dl.fetch(dir.path()).unwrap_err();
    assert!(
        matches!(
            &e,
            DataError::TooLarge { requested, limit, .. }
                if *requested == 1 << 50 && *limit == advclust_data::MAX_DOWNLOAD_BYTES as u128
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("huge.bin"), "{e}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}
