//! The variables of the inits usher replaces (design section 1, migration), and the `USHER_*`
//! variables usher does not know.
//!
//! tini's and dumb-init's variables are read only when neither the flag nor the `USHER_*`
//! variable of the same setting is given: those win. tini reads `TINI_SUBREAPER` and
//! `TINI_KILL_PROCESS_GROUP` by their presence alone, and both change nothing here, whatever
//! their value: usher always is a subreaper when not PID 1 and signals the child's group by
//! default, as with `-s` and `-g`.

use std::ffi::OsString;

use super::UsageError;
use super::options;
use super::values;

/// `TINI_VERBOSITY=N`: tini says fatal errors at 0, warnings too at 1 (its default), info at 2,
/// debug at 3 and more (its `-v` adds one each time). usher's default says warnings, and each
/// `-v` adds a level, so N is usher's `-v` given N-1 times (0 and 1 both mean usher's default:
/// usher has no quieter level). None when the variable is unset or empty (tini's atoi reads an
/// empty value as 0, which is usher's default: an image's `ENV TINI_VERBOSITY=` keeps working).
pub fn tini_verbosity(env: &dyn Fn(&str) -> Option<OsString>) -> Result<Option<u8>, UsageError> {
    let level = read(env, "TINI_VERBOSITY", |text| match text {
        "" => Ok(None),
        text => values::verbosity(text).map(|level| Some(level.saturating_sub(1))),
    })?;
    Ok(level.flatten())
}

/// `DUMB_INIT_SETSID=0` is dumb-init's `--single-child`; `1` (or another true value) is its
/// default, the group. Empty is unset, as for dumb-init. None when the variable is unset.
pub fn dumb_init_single_child(
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Option<bool>, UsageError> {
    let single_child = read(env, "DUMB_INIT_SETSID", |text| match text {
        "" => Ok(None),
        text => values::boolean(text).map(|setsid| Some(!setsid)),
    })?;
    Ok(single_child.flatten())
}

fn read<T>(
    env: &dyn Fn(&str) -> Option<OsString>,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, UsageError> {
    let Some(value) = env(name) else {
        return Ok(None);
    };
    let value = value
        .into_string()
        .map_err(|_| UsageError::new(format!("{name}: not valid UTF-8")))?;
    parse(&value)
        .map(Some)
        .map_err(|why| UsageError::new(format!("{name}: {why}")))
}

/// `USHER_*` variables usher knows besides those of its options: those it reads elsewhere or
/// sets for its child. (`usher probe` reads `USHER_HEALTH_ADDR`, an option's variable too.)
const KNOWN_ELSEWHERE: &[&str] = &["USHER_HEALTH_ADDR"];

/// The `USHER_*` names among `names` (usher's environment) that usher does not know, each once,
/// in the order given, for a warning: a typo such as `USHER_GRACE_PERIOD` would otherwise be
/// ignored in silence.
pub fn unknown_variables(names: impl IntoIterator<Item = OsString>) -> Vec<String> {
    let known = |name: &str| {
        KNOWN_ELSEWHERE.contains(&name)
            || options::ALL
                .iter()
                .chain(options::PROBE)
                .any(|opt| opt.env == Some(name))
    };
    let mut unknown: Vec<String> = Vec::new();
    for name in names {
        let name = name.to_string_lossy();
        if name.starts_with("USHER_") && !known(&name) && !unknown.iter().any(|u| *u == name) {
            unknown.push(name.into_owned());
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn tini_verbosity_is_usher_verbosity_one_lower() {
        for (value, expected) in [("0", 0), ("1", 0), ("2", 1), ("3", 2), ("4", 3)] {
            let env = move |name: &str| (name == "TINI_VERBOSITY").then(|| value.into());
            assert_eq!(tini_verbosity(&env), Ok(Some(expected)), "{value}");
        }
        assert_eq!(tini_verbosity(&env_of(&[])), Ok(None));
        assert_eq!(tini_verbosity(&env_of(&[("TINI_VERBOSITY", "")])), Ok(None));
        for bad in ["x", "-1", "1.5", "999"] {
            let env = move |name: &str| (name == "TINI_VERBOSITY").then(|| bad.into());
            let err = tini_verbosity(&env).unwrap_err().0;
            assert!(err.starts_with("TINI_VERBOSITY:"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn dumb_init_setsid_0_is_single_child() {
        let single = |value: &'static str| {
            let env = move |name: &str| (name == "DUMB_INIT_SETSID").then(|| value.into());
            dumb_init_single_child(&env)
        };
        assert_eq!(single("0"), Ok(Some(true)));
        assert_eq!(single("false"), Ok(Some(true)));
        assert_eq!(single("1"), Ok(Some(false)));
        assert_eq!(single(""), Ok(None));
        assert_eq!(dumb_init_single_child(&env_of(&[])), Ok(None));
        let err = single("sometimes").unwrap_err().0;
        assert!(err.starts_with("DUMB_INIT_SETSID:"), "{err}");
    }

    #[test]
    fn unknown_usher_variables_are_named_once() {
        let names = [
            "USHER_GRACE",
            "USHER_GRACE_PERIOD",
            "PATH",
            "USHER_HEALTH_ADDR",
            "USHER_VERBOSE",
            "usher_lower",
            "TINI_VERBOSITY",
            "USHER_GRACE_PERIOD",
            "USHER_",
            "USHER_LOG_FIELDS",
        ];
        let unknown = unknown_variables(names.iter().map(OsString::from));
        assert_eq!(unknown, ["USHER_GRACE_PERIOD", "USHER_"]);
        // Every option's own variable is known.
        let every: Vec<OsString> = options::ALL
            .iter()
            .filter_map(|opt| opt.env.map(OsString::from))
            .collect();
        assert!(every.len() > 10);
        assert_eq!(unknown_variables(every), Vec::<String>::new());
    }
}
