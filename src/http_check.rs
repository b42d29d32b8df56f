//! One synchronous HTTP or TCP check, within one deadline: what `usher probe` runs once and the
//! `--ready-when` watcher runs on every poll.
//!
//! A target is `http://HOST:PORT/PATH` or `tcp://HOST:PORT`, HOST an IP literal, `[IPv6]` or
//! `localhost`: a static binary has no resolver. A TCP target is healthy when the connection is
//! accepted; an HTTP target when the final answer's status is 200-399 (Kubernetes' rule). Only
//! the answer's head is read, with `httparse`; interim 1xx answers before it are skipped
//! (RFC 9110 §15.2). A leaf: it imports nothing from the rest of usher.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The most bytes one answer head (status line and headers) may take, and the most header lines
/// it may have; a health endpoint's answer is far smaller.
pub const MAX_HEAD: usize = 8192;
const MAX_HEADERS: usize = 128;
/// How much of a non-HTTP answer an error quotes.
pub const MAX_QUOTE: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host` is the authority as written (`127.0.0.1:8080`, `localhost:80`), sent as `Host:`.
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
    },
    Tcp {
        addr: SocketAddr,
    },
}

/// Why a check failed. Display is the one line `usher probe` prints and `/ready` shows, the
/// address first (`127.0.0.1:8080: status 503`).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{addr}: connection refused")]
    Refused { addr: SocketAddr },
    #[error("{addr}: no connection within {timeout:?}")]
    NoConnection { addr: SocketAddr, timeout: Duration },
    #[error("{addr}: no answer within {timeout:?}")]
    NoAnswer { addr: SocketAddr, timeout: Duration },
    /// The peer closed before a final answer's head ended; `interim` is the last 1xx status
    /// it sent before, if any.
    #[error("{addr}: connection closed without {}", closed_after(*.interim))]
    Closed {
        addr: SocketAddr,
        interim: Option<u16>,
    },
    /// What the peer sent does not parse as an HTTP/1.x answer head; `start` quotes its
    /// beginning.
    #[error("{addr}: not an HTTP answer: {start:?}")]
    NotHttp { addr: SocketAddr, start: String },
    #[error(
        "{addr}: answer head too large (more than {MAX_HEAD} bytes or {MAX_HEADERS} header lines)"
    )]
    HeadTooLarge { addr: SocketAddr },
    /// A final status outside 200-399.
    #[error("{addr}: status {status}")]
    Status { addr: SocketAddr, status: u16 },
    /// Any other failure to connect, send or read. The text repeats the source's: the one line
    /// is all that is printed.
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

fn closed_after(interim: Option<u16>) -> String {
    match interim {
        Some(status) => format!("a final answer (after interim status {status})"),
        None => "an answer".to_string(),
    }
}

/// `http://HOST:PORT[/PATH]` (PATH `/` when absent) or `tcp://HOST:PORT`, HOST as
/// [`parse_authority`] takes it. Errors say what is wrong, for a usage message.
pub fn parse_target(text: &str) -> Result<Target, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("expected http://HOST:PORT/PATH or tcp://HOST:PORT")?;
    if scheme != "http" && scheme != "tcp" {
        return Err(format!("unsupported scheme \"{scheme}\" (http or tcp)"));
    }
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let addr = parse_authority(authority)?;
    match scheme {
        "http" => Ok(Target::Http {
            addr,
            host: authority.to_string(),
            path: path.to_string(),
        }),
        "tcp" if path == "/" => Ok(Target::Tcp { addr }),
        "tcp" => Err("a tcp:// target has no path".to_string()),
        other => Err(format!("unsupported scheme \"{other}\" (http or tcp)")),
    }
}

/// `HOST:PORT` with HOST an IPv4 literal, `[IPv6]` or `localhost` (127.0.0.1): usher does no
/// DNS lookups.
pub fn parse_authority(authority: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| format!("\"{authority}\" is not HOST:PORT (e.g. 127.0.0.1:8558)"))?;
    let port: u16 = port.parse().map_err(|_| not_a_port(port))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(format!(
        "\"{host}\" is not an IP address or localhost (usher does no DNS lookups)"
    ))
}

/// The error for a PORT that is not a number from 0 to 65535, in the same words wherever a
/// port is given (`--ready-when`, `--live-when`, `usher probe`).
pub fn not_a_port(port: &str) -> String {
    format!("\"{port}\" is not a port (1-65535)")
}

/// Checks `target` once: connects, and for HTTP sends `GET PATH` and reads the answer's head,
/// everything within `timeout` (connecting included). Ok when healthy.
pub fn check(target: &Target, timeout: Duration) -> Result<(), CheckError> {
    let deadline = Instant::now() + timeout;
    let (addr, request) = match target {
        Target::Tcp { addr } => (*addr, None),
        Target::Http { addr, host, path } => {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: usher-probe\r\n\
                 Connection: close\r\n\r\n"
            );
            (*addr, Some(request))
        }
    };
    let io_error = |source| CheckError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => CheckError::Refused { addr },
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            CheckError::NoConnection { addr, timeout }
        }
        _ => io_error(e),
    })?;
    let Some(request) = request else {
        return Ok(());
    };
    let no_answer = CheckError::NoAnswer { addr, timeout };
    let is_timeout = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    // The time left before the deadline; none at all is a timeout (a zero socket timeout
    // would be refused, and no timeout would block for ever).
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    };
    let Some(time) = left() else {
        return Err(no_answer);
    };
    stream.set_write_timeout(Some(time)).map_err(io_error)?;
    match stream.write_all(request.as_bytes()) {
        Ok(()) => {}
        Err(e) if is_timeout(&e) => return Err(no_answer),
        Err(e) => return Err(io_error(e)),
    }
    let mut answer = Answer::default();
    let mut buffer = [0u8; 1024];
    loop {
        let Some(time) = left() else {
            return Err(no_answer);
        };
        stream.set_read_timeout(Some(time)).map_err(io_error)?;
        let bytes = match stream.read(&mut buffer) {
            Ok(0) => {
                return Err(CheckError::Closed {
                    addr,
                    interim: answer.interim,
                });
            }
            Ok(read) => buffer.get(..read).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(no_answer),
            Err(e) => return Err(io_error(e)),
        };
        let status = match answer.feed(bytes) {
            Ok(None) => continue,
            Ok(Some(status)) => status,
            Err(HeadError::TooLarge) => return Err(CheckError::HeadTooLarge { addr }),
            Err(HeadError::NotHttp(start)) => return Err(CheckError::NotHttp { addr, start }),
        };
        return if (200..400).contains(&status) {
            Ok(())
        } else {
            Err(CheckError::Status { addr, status })
        };
    }
}

/// An answer being read: the bytes of the head not parsed yet, and the interim answers skipped.
#[derive(Default)]
pub struct Answer {
    unparsed: Vec<u8>,
    /// The last 1xx status skipped.
    pub interim: Option<u16>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    TooLarge,
    /// Quotes the start of what was read.
    NotHttp(String),
}

impl Answer {
    /// Takes the next bytes read; returns the final answer's status once its head is complete,
    /// None while more bytes are needed. 1xx heads before it are dropped: interim answers
    /// carry no body (RFC 9110 §15.2), so the next head follows at once. 101 Switching
    /// Protocols is final: the peer stopped speaking HTTP.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<u16>, HeadError> {
        self.unparsed.extend_from_slice(bytes);
        let mut config = httparse::ParserConfig::default();
        // Only the status matters: what a lenient client takes, usher takes too.
        config
            .allow_multiple_spaces_in_response_status_delimiters(true)
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .ignore_invalid_headers_in_responses(true);
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut head = httparse::Response::new(&mut headers);
            // Only the first MAX_HEAD bytes may hold the head, so the outcome is the same
            // whether they came in one read or many: a longer head is too large even when it
            // is complete, or broken, further on (found by the `http_response` fuzz target).
            let window = self.unparsed.get(..MAX_HEAD).unwrap_or(&self.unparsed);
            let (length, status) = match config.parse_response(&mut head, window) {
                Ok(httparse::Status::Complete(length)) => (length, head.code.unwrap_or_default()),
                Ok(httparse::Status::Partial) if self.unparsed.len() > MAX_HEAD => {
                    return Err(HeadError::TooLarge);
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
                Err(_) => return Err(HeadError::NotHttp(self.quote())),
            };
            if !(100..200).contains(&status) || status == 101 {
                return Ok(Some(status));
            }
            self.interim = Some(status);
            self.unparsed.drain(..length);
        }
    }

    /// How many bytes are kept for the head still to come: bounded by [`MAX_HEAD`] plus the
    /// last read (the fuzz target `http_response` checks it).
    #[cfg(fuzzing)]
    pub fn buffered(&self) -> usize {
        self.unparsed.len()
    }

    /// The first line of what is unparsed, cut short.
    fn quote(&self) -> String {
        let line = self
            .unparsed
            .split(|&b| b == b'\n')
            .next()
            .unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut quote = String::from_utf8_lossy(line).into_owned();
        if quote.len() > MAX_QUOTE {
            let mut cut = MAX_QUOTE;
            while !quote.is_char_boundary(cut) {
                cut -= 1;
            }
            quote.truncate(cut);
            quote.push_str("...");
        }
        quote
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` in one piece.
    fn status_of(bytes: &[u8]) -> Result<Option<u16>, HeadError> {
        Answer::default().feed(bytes)
    }

    fn answer(status: &str) -> Vec<u8> {
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
    }

    #[test]
    fn final_statuses() {
        for status in [200, 204, 301, 399, 400, 404, 500, 503] {
            assert_eq!(
                status_of(&answer(&format!("{status} Whatever"))),
                Ok(Some(status))
            );
        }
        assert_eq!(status_of(b"HTTP/1.0 200 OK\r\n\r\n"), Ok(Some(200)));
        // No reason phrase, bare LF line ends: still an answer.
        assert_eq!(status_of(b"HTTP/1.1 204\n\n"), Ok(Some(204)));
        // Whatever follows the head (a body) is not read.
        assert_eq!(
            status_of(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            Ok(Some(200))
        );
    }

    #[test]
    fn interim_answers_are_skipped() {
        let mut bytes =
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_vec();
        bytes.extend(answer("200 OK"));
        assert_eq!(status_of(&bytes), Ok(Some(200)));
        let mut bytes = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        bytes.extend(answer("503 Service Unavailable"));
        assert_eq!(status_of(&bytes), Ok(Some(503)));
        // Several, and an unregistered 1xx too.
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 199 Odd\r\n\r\nHTTP/1.1 204 \r\n\r\n";
        assert_eq!(status_of(bytes), Ok(Some(204)));
    }

    #[test]
    fn an_interim_answer_alone_is_not_the_answer() {
        let mut answer = Answer::default();
        assert_eq!(answer.feed(b"HTTP/1.1 103 Early Hints\r\n\r\n"), Ok(None));
        assert_eq!(answer.interim, Some(103));
        assert!(answer.unparsed.is_empty());
    }

    #[test]
    fn switching_protocols_is_final() {
        let bytes = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(status_of(bytes), Ok(Some(101)));
    }

    #[test]
    fn not_http() {
        // A four-digit status is not a 2xx (nor any status).
        assert_eq!(
            status_of(b"HTTP/1.1 2000 OK\r\n\r\n"),
            Err(HeadError::NotHttp("HTTP/1.1 2000 OK".into()))
        );
        for garbage in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"hello\n",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 OK 200\r\n\r\n",
            b"\x16\x03\x01\x02\x00",
        ] {
            assert!(
                matches!(status_of(garbage), Err(HeadError::NotHttp(_))),
                "{garbage:?}"
            );
        }
        // The quote is one line, and short.
        let long = [b'x'; 500];
        let Err(HeadError::NotHttp(quote)) = status_of(&long) else {
            panic!()
        };
        assert_eq!(quote.len(), MAX_QUOTE + 3);
    }

    #[test]
    fn a_head_split_across_reads() {
        let mut bytes = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n".to_vec();
        bytes.extend(answer("404 Not Found"));
        let mut answer = Answer::default();
        let (last, start) = bytes.split_last().unwrap();
        for byte in start {
            assert_eq!(answer.feed(&[*byte]), Ok(None));
        }
        assert_eq!(answer.feed(&[*last]), Ok(Some(404)));
    }

    #[test]
    fn an_oversized_head() {
        let mut answer = Answer::default();
        assert_eq!(answer.feed(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        let header = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let result = (0..MAX_HEAD / header.len() + 2)
            .map(|_| answer.feed(header))
            .find(|result| *result != Ok(None));
        assert_eq!(result, Some(Err(HeadError::TooLarge)));
        // The same head in one read (found by the `http_response` fuzz target: it was taken).
        let mut whole = b"HTTP/1.1 200 OK\r\n".to_vec();
        while whole.len() <= MAX_HEAD {
            whole.extend(header);
        }
        whole.extend(b"\r\n");
        assert_eq!(status_of(&whole), Err(HeadError::TooLarge));
        // And when it turns out not to be HTTP only past the bound: in pieces the bound was
        // reached first.
        let mut broken = whole.clone();
        broken.truncate(MAX_HEAD + 10);
        broken.extend(b"\0\r\n\r\n");
        assert_eq!(status_of(&broken), Err(HeadError::TooLarge));
        let fits = [
            &b"HTTP/1.1 200 OK\r\n"[..],
            &header[..],
            b"\r\n",
            &[b'x'; MAX_HEAD],
        ]
        .concat();
        assert_eq!(
            status_of(&fits),
            Ok(Some(200)),
            "a body after the head is not the head"
        );
        // So is one with too many (short) header lines.
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend(b"A: b\r\n");
        }
        many.extend(b"\r\n");
        assert_eq!(status_of(&many), Err(HeadError::TooLarge));
        // Interim answers do not add up: each head has the whole bound.
        let interim = format!(
            "HTTP/1.1 103 Early Hints\r\nLink: <{}>\r\n\r\n",
            "a".repeat(4000)
        );
        let mut answer = Answer::default();
        for _ in 0..4 {
            assert_eq!(answer.feed(interim.as_bytes()), Ok(None));
        }
        assert_eq!(answer.feed(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(Some(200)));
    }

    #[test]
    fn errors_read_as_the_probe_prints_them() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let second = Duration::from_secs(1);
        for (error, text) in [
            (
                CheckError::Refused { addr },
                "127.0.0.1:8080: connection refused",
            ),
            (
                CheckError::NoConnection {
                    addr,
                    timeout: second,
                },
                "127.0.0.1:8080: no connection within 1s",
            ),
            (
                CheckError::NoAnswer {
                    addr,
                    timeout: Duration::from_millis(300),
                },
                "127.0.0.1:8080: no answer within 300ms",
            ),
            (
                CheckError::Closed {
                    addr,
                    interim: None,
                },
                "127.0.0.1:8080: connection closed without an answer",
            ),
            (
                CheckError::Closed {
                    addr,
                    interim: Some(103),
                },
                "127.0.0.1:8080: connection closed without a final answer (after interim \
                 status 103)",
            ),
            (
                CheckError::NotHttp {
                    addr,
                    start: "HTTP/1.1 2000 OK".into(),
                },
                "127.0.0.1:8080: not an HTTP answer: \"HTTP/1.1 2000 OK\"",
            ),
            (
                CheckError::Status { addr, status: 503 },
                "127.0.0.1:8080: status 503",
            ),
        ] {
            assert_eq!(error.to_string(), text);
        }
        let io = CheckError::Io {
            addr,
            source: io::Error::from(io::ErrorKind::ConnectionReset),
        };
        assert!(std::error::Error::source(&io).is_some());
        assert!(io.to_string().starts_with("127.0.0.1:8080: "), "{io}");
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("http://[::1]:80/ready?x=1"),
            Ok(Target::Http {
                addr: "[::1]:80".parse().unwrap(),
                host: "[::1]:80".into(),
                path: "/ready?x=1".into()
            })
        );
        assert_eq!(
            parse_target("http://localhost:8080"),
            Ok(Target::Http {
                addr: "127.0.0.1:8080".parse().unwrap(),
                host: "localhost:8080".into(),
                path: "/".into()
            })
        );
        assert_eq!(
            parse_target("tcp://10.0.0.1:5432"),
            Ok(Target::Tcp {
                addr: "10.0.0.1:5432".parse().unwrap()
            })
        );
        for bad in [
            "ftp://127.0.0.1:21/",
            "http://example.com:80/",
            "http://127.0.0.1/",
            "http://127.0.0.1:99999/",
            "127.0.0.1:80",
            "tcp://127.0.0.1:80/path",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_authority("LOCALHOST:9"),
            Ok("127.0.0.1:9".parse().unwrap())
        );
        assert!(parse_authority("db:5432").unwrap_err().contains("no DNS"));
    }
}
