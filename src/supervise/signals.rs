//! Signal numbers, their names, and the `--rewrite` table.
//!
//! usher handles real-time signals too, which `nix::sys::signal::Signal` cannot represent, so a
//! signal here is a plain number that was checked to be in range.

use std::fmt;

/// A valid signal number (1..=SIGRTMAX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signo(i32);

/// The classic signals by name (numbers come from libc: they differ between architectures).
const NAMES: &[(i32, &str)] = &[
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGILL, "ILL"),
    (libc::SIGTRAP, "TRAP"),
    (libc::SIGABRT, "ABRT"),
    (libc::SIGBUS, "BUS"),
    (libc::SIGFPE, "FPE"),
    (libc::SIGKILL, "KILL"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGSEGV, "SEGV"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGPIPE, "PIPE"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGSTKFLT, "STKFLT"),
    (libc::SIGCHLD, "CHLD"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGSTOP, "STOP"),
    (libc::SIGTSTP, "TSTP"),
    (libc::SIGTTIN, "TTIN"),
    (libc::SIGTTOU, "TTOU"),
    (libc::SIGURG, "URG"),
    (libc::SIGXCPU, "XCPU"),
    (libc::SIGXFSZ, "XFSZ"),
    (libc::SIGVTALRM, "VTALRM"),
    (libc::SIGPROF, "PROF"),
    (libc::SIGWINCH, "WINCH"),
    (libc::SIGIO, "IO"),
    (libc::SIGPWR, "PWR"),
    (libc::SIGSYS, "SYS"),
];

/// Aliases accepted on input only.
const ALIASES: &[(i32, &str)] = &[
    (libc::SIGABRT, "IOT"),
    (libc::SIGIO, "POLL"),
    (libc::SIGCHLD, "CLD"),
];

/// glibc keeps the signals between 32 and SIGRTMIN for itself (thread cancellation, setxid
/// broadcast): usher neither blocks, reads nor sends them.
pub fn is_reserved_by_libc(signo: i32) -> bool {
    (32..libc::SIGRTMIN()).contains(&signo)
}

impl Signo {
    #[cfg(test)]
    pub const HUP: Signo = Signo(libc::SIGHUP);
    pub const INT: Signo = Signo(libc::SIGINT);
    pub const KILL: Signo = Signo(libc::SIGKILL);
    pub const TERM: Signo = Signo(libc::SIGTERM);
    pub const CHLD: Signo = Signo(libc::SIGCHLD);
    pub const PIPE: Signo = Signo(libc::SIGPIPE);
    pub const STOP: Signo = Signo(libc::SIGSTOP);
    pub const CONT: Signo = Signo(libc::SIGCONT);

    /// The highest signal number this system knows (64 on Linux).
    pub fn max() -> i32 {
        libc::SIGRTMAX()
    }

    /// A signal number from the kernel or the command line, if it is one.
    pub fn new(number: i32) -> Option<Signo> {
        (1..=Self::max()).contains(&number).then_some(Signo(number))
    }

    pub fn number(self) -> i32 {
        self.0
    }

    /// SIGKILL and SIGSTOP cannot be caught, so usher never sees them to forward.
    pub fn is_catchable(self) -> bool {
        self != Self::KILL && self != Self::STOP
    }

    /// Parses `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+2`, `SIGRTMAX-1`.
    pub fn parse(text: &str) -> Result<Signo, String> {
        let invalid = || format!("unknown signal \"{text}\" (use a name like TERM or a number)");
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let number = text.parse::<i32>().ok().and_then(Signo::new);
            let Some(signal) = number else {
                return Err(format!(
                    "signal number {text} out of range (1..={})",
                    Self::max()
                ));
            };
            if is_reserved_by_libc(signal.0) {
                return Err(format!("signal {text} is reserved by the C library"));
            }
            return Ok(signal);
        }
        let upper = text.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(&(number, _)) = NAMES.iter().chain(ALIASES).find(|(_, n)| *n == name) {
            return Ok(Signo(number));
        }
        // RTMIN, RTMIN+N, RTMAX, RTMAX-N: N plain digits, the result inside the real-time range.
        let realtime = |rest: &str, sign: char, base: i32| -> Option<Signo> {
            let offset = match rest.strip_prefix(sign) {
                None if rest.is_empty() => 0,
                Some(digits)
                    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    i32::from(digits.parse::<u8>().ok()?)
                }
                _ => return None,
            };
            let number = if sign == '+' {
                base.checked_add(offset)?
            } else {
                base.checked_sub(offset)?
            };
            (libc::SIGRTMIN()..=libc::SIGRTMAX())
                .contains(&number)
                .then_some(Signo(number))
        };
        let parsed = if let Some(rest) = name.strip_prefix("RTMIN") {
            realtime(rest, '+', libc::SIGRTMIN())
        } else if let Some(rest) = name.strip_prefix("RTMAX") {
            realtime(rest, '-', libc::SIGRTMAX())
        } else {
            None
        };
        parsed.ok_or_else(invalid)
    }
}

impl fmt::Display for Signo {
    /// `SIGTERM`, or `SIGRTMIN+3` for real-time signals, or the bare number as a last resort.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((_, name)) = NAMES.iter().find(|(n, _)| *n == self.0) {
            return write!(f, "SIG{name}");
        }
        let rtmin = libc::SIGRTMIN();
        if self.0 >= rtmin {
            return write!(f, "SIGRTMIN+{}", self.0 - rtmin);
        }
        write!(f, "{}", self.0)
    }
}

/// `--rewrite FROM:TO`: forward FROM as TO, or drop it when TO is `0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrites(Vec<(Signo, Option<Signo>)>);

impl Rewrites {
    /// Parses one `FROM:TO` rule and adds it; a later rule for the same FROM wins.
    pub fn add_rule(&mut self, rule: &str) -> Result<(), String> {
        let (from, to) = rule.split_once(':').ok_or_else(|| {
            format!("\"{rule}\" is not FROM:TO (e.g. TERM:QUIT, or TERM:0 to drop)")
        })?;
        let from = Signo::parse(from)?;
        if !from.is_catchable() {
            return Err(format!(
                "{from} cannot be caught, so it cannot be rewritten"
            ));
        }
        if from == Signo::CHLD {
            return Err("SIGCHLD is never forwarded, so it cannot be rewritten".to_string());
        }
        let to = if to == "0" {
            None
        } else {
            Some(Signo::parse(to)?)
        };
        self.0.retain(|(f, _)| *f != from);
        self.0.push((from, to));
        Ok(())
    }

    /// What to forward when `received` arrives: `None` means drop it.
    pub fn apply(&self, received: Signo) -> Option<Signo> {
        match self.0.iter().find(|(from, _)| *from == received) {
            Some(&(_, to)) => to,
            None => Some(received),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_realtime() {
        assert_eq!(Signo::parse("TERM"), Ok(Signo::TERM));
        assert_eq!(Signo::parse("SIGTERM"), Ok(Signo::TERM));
        assert_eq!(Signo::parse("sigterm"), Ok(Signo::TERM));
        assert_eq!(Signo::parse("15"), Ok(Signo::TERM));
        assert_eq!(Signo::parse("IOT").map(Signo::number), Ok(libc::SIGABRT));
        assert_eq!(
            Signo::parse("RTMIN+2").map(Signo::number),
            Ok(libc::SIGRTMIN() + 2)
        );
        assert_eq!(
            Signo::parse("SIGRTMAX-1").map(Signo::number),
            Ok(libc::SIGRTMAX() - 1)
        );
        assert_eq!(
            Signo::parse("RTMIN").map(Signo::number),
            Ok(libc::SIGRTMIN())
        );
    }

    #[test]
    fn rejects_bad_signals() {
        for bad in [
            "",
            "0",
            "65",
            "-1",
            "TERMINATE",
            "RTMIN+99",
            "RTMAX+1",
            "RTMIN-1",
            "SIG",
        ] {
            assert!(Signo::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn names_round_trip() {
        for number in (1..=Signo::max()).filter(|n| !is_reserved_by_libc(*n)) {
            let signal = Signo::new(number).unwrap();
            let name = signal.to_string();
            assert_eq!(Signo::parse(&name), Ok(signal), "{name}");
        }
    }

    #[test]
    fn rewrite_rules() {
        let mut rewrites = Rewrites::default();
        rewrites.add_rule("TERM:QUIT").unwrap();
        rewrites.add_rule("10:0").unwrap();
        assert_eq!(
            rewrites.apply(Signo::TERM).map(Signo::number),
            Some(libc::SIGQUIT)
        );
        assert_eq!(rewrites.apply(Signo::new(libc::SIGUSR1).unwrap()), None);
        assert_eq!(rewrites.apply(Signo::HUP), Some(Signo::HUP));
        rewrites.add_rule("TERM:INT").unwrap();
        assert_eq!(rewrites.apply(Signo::TERM), Some(Signo::INT));
        assert!(rewrites.add_rule("TERM").is_err());
        assert!(rewrites.add_rule("KILL:TERM").is_err());
        assert!(rewrites.add_rule("CHLD:TERM").is_err());
        assert!(rewrites.add_rule("TERM:NOPE").is_err());
    }
}
