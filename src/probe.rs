//! `usher probe [--timeout DURATION] [TARGET]`: the HEALTHCHECK client for images without curl.
//!
//! TARGET is `http://HOST:PORT/PATH` or `tcp://HOST:PORT`, HOST an IP literal or `localhost`
//! (a static binary has no resolver). Exit 0 on a 200-399 answer (Kubernetes' rule) or an
//! accepted connection, 1 otherwise with one line on stderr saying why, 2 on a usage error.
//! Everything, connecting included, happens within the timeout.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Enough for any status line; the rest of the answer is not read.
const MAX_STATUS_LINE: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
    },
    Tcp {
        addr: SocketAddr,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub struct Probe {
    pub target: Target,
    pub timeout: Duration,
}

pub fn parse_target(text: &str) -> Result<Target, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("expected http://HOST:PORT/PATH or tcp://HOST:PORT")?;
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

/// `HOST:PORT` with HOST an IPv4 literal, `[IPv6]` or `localhost`.
pub fn parse_authority(authority: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = authority.rsplit_once(':').ok_or("expected HOST:PORT")?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("\"{port}\" is not a port"))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(format!(
        "\"{host}\" is not an IP address or localhost (usher does no DNS lookups)"
    ))
}

/// `usher probe`: exit status 0 when healthy, else 1 with one line on stderr saying why.
pub fn main(probe: &Probe) -> u8 {
    match run(probe) {
        Ok(()) => 0,
        Err(why) => {
            let _ = writeln!(io::stderr(), "usher probe: {why}");
            1
        }
    }
}

/// Runs the probe: Ok(()) when healthy, Err(the reason) otherwise.
pub fn run(probe: &Probe) -> Result<(), String> {
    let deadline = Instant::now() + probe.timeout;
    let (addr, request) = match &probe.target {
        Target::Tcp { addr } => (*addr, None),
        Target::Http { addr, host, path } => {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: usher-probe\r\n\
                 Connection: close\r\n\r\n"
            );
            (*addr, Some(request))
        }
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, probe.timeout).map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => format!("{addr}: connection refused"),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                format!("{addr}: no connection within {:?}", probe.timeout)
            }
            _ => format!("{addr}: {e}"),
        })?;
    let Some(request) = request else {
        return Ok(());
    };
    let timed_out = || format!("{addr}: no answer within {:?}", probe.timeout);
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    };
    stream
        .set_write_timeout(left())
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|_| timed_out())?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    let status_line = loop {
        if let Some(end) = answer.windows(2).position(|w| w == b"\r\n") {
            break answer.get(..end).unwrap_or_default().to_vec();
        }
        if answer.len() > MAX_STATUS_LINE {
            return Err(format!("{addr}: no HTTP status line"));
        }
        let Some(left) = left() else {
            return Err(timed_out());
        };
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buffer) {
            Ok(0) => return Err(format!("{addr}: connection closed without an answer")),
            Ok(read) => answer.extend_from_slice(buffer.get(..read).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(format!("{addr}: {e}")),
        }
    };
    let status_line = String::from_utf8_lossy(&status_line);
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("{addr}: not an HTTP answer: {status_line:?}"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("{addr}: status {status}"))
    }
}
