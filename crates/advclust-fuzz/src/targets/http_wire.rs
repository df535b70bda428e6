//! Raw HTTP/1.1 on loopback for the HTTP targets: a one-shot client that sends bytes exactly as
//! the fuzzer made them, and a scripted server that answers whatever the fuzzer says.
//!
//! Every connection is `Connection: close`; both sides have read timeouts, so a peer that
//! stops answering ends in an error, not a hang.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{FuzzError, Result};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps the visible ASCII of a header value (no CR, LF or other controls).
pub fn header_value(bytes: &[u8]) -> String {
    bytes
        .iter()
        .filter(|b| (0x20..0x7f).contains(*b))
        .map(|&b| b as char)
        .collect()
}

/// A parsed HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body; `None` if malformed.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(b, b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Parses a whole HTTP/1.1 answer (read to the end of the connection).
pub fn parse_answer(raw: &[u8]) -> std::result::Result<Answer, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        answer.body = dechunk(&answer.body).ok_or("bad chunked body")?;
    } else if let Some(n) = answer
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        if answer.body.len() < n {
            return Err(format!("body cut at {} of {n} bytes", answer.body.len()));
        }
        answer.body.truncate(n);
    }
    Ok(answer)
}

/// Sends one request (`head` without the final blank line) with `body`, and reads the answer.
pub fn roundtrip(addr: SocketAddr, head: &str, body: &[u8]) -> std::result::Result<Answer, String> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut req = head.as_bytes().to_vec();
    req.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    req.extend_from_slice(body);
    // The server may answer (and close) before reading a body it refuses: keep what it said.
    let _ = s.write_all(&req);
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(format!("reading the answer: {e}")),
    }
    parse_answer(&raw)
}

/// What the scripted server answers.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Body of `GET /v2`.
    pub server_metadata: Vec<u8>,
    /// Body of `GET /v2/models/<m>`.
    pub model_metadata: Vec<u8>,
    /// `Inference-Header-Content-Length` of infer answers, if any.
    pub infer_header: Option<String>,
    /// Body of `POST .../infer` answers.
    pub infer_body: Vec<u8>,
}

/// A loopback HTTP server answering from a [`Script`]: 200 with an empty body for the health
/// and ready routes, the script's bodies for metadata and infer. One connection at a time.
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedServer {
    /// Starts on `127.0.0.1` (any port).
    pub fn start(script: Script) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| FuzzError::Setup(format!("scripted server: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| FuzzError::Setup(format!("scripted server: {e}")))?;
        let script = Arc::new(Mutex::new(script));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&script), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("scripted-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if st.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(c) = conn {
                        let _ = serve_one(c, &s);
                    }
                }
            })
            .map_err(|e| FuzzError::Setup(format!("scripted server: {e}")))?;
        Ok(ScriptedServer { addr, script, stop })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the script.
    pub fn update(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve_one(mut c: TcpStream, script: &Mutex<Script>) -> std::io::Result<()> {
    c.set_read_timeout(Some(TIMEOUT))?;
    c.set_write_timeout(Some(TIMEOUT))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(e) = find(&buf, b"\r\n\r\n") {
            break e;
        }
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let length = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut have = buf.len() - (end + 4);
    while have < length {
        let n = c.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        have += n;
    }
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    let (header, body) = {
        let s = script.lock().unwrap_or_else(|p| p.into_inner());
        if path.ends_with("/infer") {
            (s.infer_header.clone(), s.infer_body.clone())
        } else if path == "/v2" {
            (None, s.server_metadata.clone())
        } else if path.ends_with("/ready") || path.starts_with("/v2/health") {
            (None, Vec::new())
        } else {
            (None, s.model_metadata.clone())
        }
    };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(h) = header {
        out.push_str(&format!("Inference-Header-Content-Length: {h}\r\n"));
    }
    out.push_str("\r\n");
    c.write_all(out.as_bytes())?;
    c.write_all(&body)?;
    c.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_length_or_chunks() {
        let a = parse_answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}xx").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (404, &b"{}"[..]));
        let a = parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(a.body, b"abcd");
        assert!(parse_answer(b"garbage").is_err());
        assert_eq!(header_value(b"1\r\n2\x003"), "123");
    }

    #[test]
    fn scripted_server_answers_its_script() {
        let s = ScriptedServer::start(Script {
            infer_body: b"{\"x\":1}".to_vec(),
            infer_header: Some("3".into()),
            ..Script::default()
        })
        .unwrap();
        let a = roundtrip(
            s.addr(),
            "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n",
            b"{}",
        )
        .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.body, b"{\"x\":1}");
        assert_eq!(a.header("inference-header-content-length"), Some("3"));
    }
}
