//! `usher probe [--timeout DURATION] [TARGET]`: the HEALTHCHECK client for images without curl.
//!
//! TARGET is `http://HOST:PORT/PATH` or `tcp://HOST:PORT`, HOST an IP literal or `localhost`
//! (a static binary has no resolver). Exit 0 on a 200-399 final answer (Kubernetes' rule; 1xx
//! interim answers are skipped) or an accepted connection, 1 otherwise with one line on stderr
//! saying why, 2 on a usage error. Everything, connecting included, happens within the timeout;
//! the check itself is `http_check`'s, shared with `--ready-when`.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lexopt::prelude::*;

use crate::cli::{DEFAULT_HEALTH_ADDR, UsageError, parse_duration, parse_health_addr};
use crate::http_check::{self, CheckError, Target, parse_target};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

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

/// Runs the probe: Ok(()) when healthy, else why not (one line, see [`CheckError`]).
pub fn run(probe: &Probe) -> Result<(), CheckError> {
    http_check::check(&probe.target, probe.timeout)
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
