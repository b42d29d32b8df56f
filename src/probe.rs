//! `usher probe [--timeout DURATION] [TARGET]`: the HEALTHCHECK client for images without curl.
//!
//! TARGET is `http://HOST:PORT/PATH` or `tcp://HOST:PORT`, HOST an IP literal or `localhost`
//! (a static binary has no resolver). Exit 0 on a 200-399 answer (Kubernetes' rule) or an
//! accepted connection, 1 otherwise with one line on stderr saying why, 2 on a usage error.
//! Everything, connecting included, happens within the timeout.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lexopt::prelude::*;

use crate::cli::{DEFAULT_HEALTH_ADDR, UsageError, parse_duration, parse_health_addr};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
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

/// Parses the probe's arguments (after the word `probe`). Without a TARGET it asks usher's own
/// /health, at the port `USHER_HEALTH_ADDR` names when the image sets it (on loopback when it
/// names all addresses).
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Probe, UsageError> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut timeout = DEFAULT_TIMEOUT;
    let mut target = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("timeout") | Short('t') => {
                let value = parser.value()?;
                let value = value.to_string_lossy();
                timeout = parse_duration(&value)
                    .map_err(|why| UsageError(format!("probe --timeout: {why}")))?;
                if timeout.is_zero() {
                    return Err(UsageError(
                        "probe --timeout: must be more than 0".to_string(),
                    ));
                }
            }
            Value(value) if target.is_none() => {
                target = Some(value.to_string_lossy().into_owned());
            }
            _ => return Err(UsageError(format!("probe: {}", arg.unexpected()))),
        }
    }
    let text = match target {
        Some(target) => target,
        None => default_target(env)?,
    };
    let text = text.as_str();
    let target = parse_target(text).map_err(|why| UsageError(format!("probe {text}: {why}")))?;
    Ok(Probe { target, timeout })
}

/// usher's own /health, where `USHER_HEALTH_ADDR` puts the server (on loopback when it names
/// all addresses); the default address when the variable is unset or `off`.
fn default_target(env: &dyn Fn(&str) -> Option<OsString>) -> Result<String, UsageError> {
    let value = env("USHER_HEALTH_ADDR").map(|v| v.to_string_lossy().into_owned());
    let configured = match value {
        Some(value) => parse_health_addr(&value)
            .map_err(|why| UsageError(format!("probe: USHER_HEALTH_ADDR: {why}")))?,
        None => None,
    };
    let mut addr = configured.unwrap_or(DEFAULT_HEALTH_ADDR);
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    Ok(format!("http://{addr}/health"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(args: &[&str]) -> Result<Probe, UsageError> {
        parse(args.iter().map(OsString::from).collect(), &|_| None)
    }

    #[test]
    fn the_default_target_follows_usher_health_addr() {
        let target = |value: &str| {
            let env = |name: &str| (name == "USHER_HEALTH_ADDR").then(|| value.into());
            parse(Vec::new(), &env).map(|p| p.target)
        };
        let http = |addr: &str| Target::Http {
            addr: addr.parse().unwrap(),
            host: addr.to_string(),
            path: "/health".to_string(),
        };
        assert_eq!(target("0.0.0.0:9000"), Ok(http("127.0.0.1:9000")));
        assert_eq!(target("[::]:9000"), Ok(http("[::1]:9000")));
        assert_eq!(target("10.1.2.3:8558"), Ok(http("10.1.2.3:8558")));
        assert_eq!(target("off"), Ok(http("127.0.0.1:8558")));
        let err = target("nine").unwrap_err().to_string();
        assert!(err.contains("USHER_HEALTH_ADDR"), "{err}");
        // An explicit TARGET wins.
        let env = |_: &str| Some("0.0.0.0:9000".into());
        let explicit = parse(vec!["tcp://127.0.0.1:1".into()], &env).unwrap();
        assert_eq!(
            explicit.target,
            Target::Tcp {
                addr: "127.0.0.1:1".parse().unwrap()
            }
        );
    }

    #[test]
    fn targets() {
        let default = probe(&[]).unwrap();
        assert_eq!(default.timeout, DEFAULT_TIMEOUT);
        let Target::Http { addr, path, .. } = default.target else {
            panic!()
        };
        assert_eq!(
            (addr.to_string(), path.as_str()),
            ("127.0.0.1:8558".to_string(), "/health")
        );
        let p = probe(&["--timeout", "500ms", "http://[::1]:80/ready?x=1"]).unwrap();
        assert_eq!(p.timeout, Duration::from_millis(500));
        let Target::Http { addr, path, host } = p.target else {
            panic!()
        };
        assert_eq!(
            (addr.to_string(), path.as_str(), host.as_str()),
            ("[::1]:80".into(), "/ready?x=1", "[::1]:80")
        );
        let p = probe(&["tcp://localhost:5432"]).unwrap();
        assert_eq!(
            p.target,
            Target::Tcp {
                addr: "127.0.0.1:5432".parse().unwrap()
            }
        );
        let p = probe(&["http://10.0.0.1:8558"]).unwrap();
        let Target::Http { path, .. } = p.target else {
            panic!()
        };
        assert_eq!(path, "/");
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["ftp://127.0.0.1:21/"][..],
            &["http://example.com:80/"],
            &["http://127.0.0.1/"],
            &["http://127.0.0.1:99999/"],
            &["127.0.0.1:80"],
            &["tcp://127.0.0.1:80/path"],
            &["--timeout", "soon", "tcp://127.0.0.1:1"],
            &["--timeout", "0", "tcp://127.0.0.1:1"],
            &["--bogus"],
            &["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"],
        ] {
            let err = probe(bad).unwrap_err().0;
            assert!(err.starts_with("probe"), "{bad:?}: {err}");
        }
    }
}
