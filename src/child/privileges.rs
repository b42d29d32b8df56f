//! What the child may keep: its user and groups (`--user`), its capabilities (`--cap-keep`)
//! and whether it may gain privileges on exec (`--allow-new-privs`). Planned and checked before
//! anything starts; carried out by `sys` between fork and exec, and on usher itself afterwards.

use crate::child::user::Credentials;

/// Linux capabilities by number (include/uapi/linux/capability.h).
const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A set of capabilities as the kernel's bit mask (bit N: capability N).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    /// Parses `NET_BIND_SERVICE,CAP_CHOWN` (any case, with or without `CAP_`).
    pub fn parse(text: &str) -> Result<CapSet, String> {
        let mut set = 0u64;
        for name in text.split(',').map(str::trim) {
            let upper = name.to_ascii_uppercase();
            let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
            let index = CAPABILITIES
                .iter()
                .position(|known| *known == bare)
                .ok_or_else(|| {
                    format!(
                        "unknown capability \"{name}\" (e.g. NET_BIND_SERVICE; see capabilities(7))"
                    )
                })?;
            set |= 1 << index;
        }
        Ok(CapSet(set))
    }

    #[cfg(test)]
    pub fn contains(self, index: u32) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }
}

impl std::fmt::Display for CapSet {
    /// `NET_BIND_SERVICE,CHOWN`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0);
        let names: Vec<&str> = names.map(|(_, name)| *name).collect();
        f.write_str(&names.join(","))
    }
}

/// The child's privileges, as checked before anything starts.
#[derive(Clone, Debug, Default)]
pub struct Privileges {
    /// `--user`: switch to these credentials (None: keep usher's own).
    pub switch_to: Option<Credentials>,
    /// The user the child runs as, also when usher already is that user (for HOME).
    pub user: Option<Credentials>,
    /// The capabilities the child keeps; None: leave them as they are (no `--user`, no
    /// `--cap-keep`).
    pub keep_caps: Option<CapSet>,
    pub no_new_privs: bool,
}

/// usher's own ids, to decide what it can do.
#[derive(Clone, Debug)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Capabilities usher needs to switch the child's user and empty its capability sets.
pub const NEEDED_TO_SWITCH: CapSet = CapSet(1 << 6 | 1 << 7 | 1 << 8); // SETGID, SETUID, SETPCAP

/// Whether two group lists grant the same access (the primary gid counts as one of them).
fn same_groups(gid: u32, a: &[u32], b: &[u32]) -> bool {
    let sorted = |groups: &[u32]| {
        let mut groups = groups.to_vec();
        groups.push(gid);
        groups.sort_unstable();
        groups.dedup();
        groups
    };
    sorted(a) == sorted(b)
}

/// Why the asked-for privileges cannot be given: one line each, without the option's name
/// (the caller adds it; [`PrivilegeError::is_about_user`] says which).
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `--cap-keep` without root.
    #[error("usher runs as uid {uid}, not root, so it has no capabilities to hand on")]
    NoCapabilities { uid: u32 },
    /// `--user` naming someone else, without root.
    #[error(
        "usher runs as uid {} gid {} groups {:?}, not root, so it cannot switch to uid {} gid {} \
         groups {:?}",
        me.uid, me.gid, me.groups, to.uid, to.gid, to.groups
    )]
    /// Boxed: the error stays small beside the `Ok` of the functions returning it.
    CannotSwitch { me: Identity, to: Box<Credentials> },
}

impl PrivilegeError {
    /// True when `--user` is at fault, false when `--cap-keep` is.
    pub fn is_about_user(&self) -> bool {
        matches!(self, PrivilegeError::CannotSwitch { .. })
    }
}

/// Plans the child's privileges. `user` is the resolved `--user`, `cap_keep` the parsed
/// `--cap-keep`.
pub fn plan(
    me: Identity,
    user: Option<Credentials>,
    cap_keep: Option<CapSet>,
    allow_new_privs: bool,
) -> Result<Privileges, PrivilegeError> {
    let is_root = me.uid == 0;
    if cap_keep.is_some() && !is_root {
        return Err(PrivilegeError::NoCapabilities { uid: me.uid });
    }
    let switch_to = match &user {
        Some(creds) if is_root => Some(creds.clone()),
        Some(creds)
            if creds.uid == me.uid
                && creds.gid == me.gid
                && same_groups(me.gid, &creds.groups, &me.groups) =>
        {
            None
        }
        Some(creds) => {
            return Err(PrivilegeError::CannotSwitch {
                me,
                to: Box::new(creds.clone()),
            });
        }
        None => None,
    };
    // A dropped child keeps nothing but what --cap-keep names; root's child keeps all unless
    // --cap-keep narrows it.
    let keep_caps = match (&switch_to, cap_keep) {
        (Some(_), keep) => Some(keep.unwrap_or_default()),
        (None, keep) => keep,
    };
    Ok(Privileges {
        switch_to,
        user,
        keep_caps,
        no_new_privs: !allow_new_privs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Identity {
        Identity {
            uid: 0,
            gid: 0,
            groups: vec![0],
        }
    }

    fn app() -> Credentials {
        Credentials {
            uid: 1000,
            gid: 1000,
            groups: vec![1000, 50],
            home: "/home/app".into(),
            name: Some("app".into()),
        }
    }

    #[test]
    fn capability_names() {
        assert_eq!(CapSet::parse("NET_BIND_SERVICE"), Ok(CapSet(1 << 10)));
        assert_eq!(CapSet::parse("cap_net_bind_service"), Ok(CapSet(1 << 10)));
        assert_eq!(CapSet::parse("CHOWN, KILL"), Ok(CapSet(1 | 1 << 5)));
        assert_eq!(CapSet::parse("CHECKPOINT_RESTORE"), Ok(CapSet(1 << 40)));
        assert!(
            CapSet::parse("NET_BIND")
                .unwrap_err()
                .contains("\"NET_BIND\"")
        );
        assert!(CapSet::parse("").is_err());
        assert!(CapSet(1 << 10).contains(10));
        assert!(!CapSet(1 << 10).contains(11));
        assert!(!CapSet(u64::MAX).contains(64));
    }

    #[test]
    fn root_switches_and_the_child_keeps_only_what_is_named() {
        let plan = plan(root(), Some(app()), None, false).unwrap();
        assert_eq!(plan.switch_to, Some(app()));
        assert_eq!(plan.keep_caps, Some(CapSet(0)));
        assert!(plan.no_new_privs);
        let keep = CapSet::parse("NET_BIND_SERVICE").unwrap();
        let plan = super::plan(root(), Some(app()), Some(keep), true).unwrap();
        assert_eq!(plan.keep_caps, Some(keep));
        assert!(!plan.no_new_privs);
    }

    #[test]
    fn root_without_user_keeps_its_capabilities_unless_narrowed() {
        assert_eq!(plan(root(), None, None, false).unwrap().keep_caps, None);
        let keep = CapSet::parse("CHOWN").unwrap();
        assert_eq!(
            plan(root(), None, Some(keep), false).unwrap().keep_caps,
            Some(keep)
        );
    }

    #[test]
    fn non_root_can_only_be_who_it_already_is() {
        let me = Identity {
            uid: 1000,
            gid: 1000,
            groups: vec![50, 1000],
        };
        let plan = plan(me.clone(), Some(app()), None, false).unwrap();
        assert_eq!(plan.switch_to, None);
        assert_eq!(plan.user, Some(app()));
        let other = Credentials { uid: 1001, ..app() };
        let err = super::plan(me.clone(), Some(other), None, false).unwrap_err();
        assert!(err.is_about_user(), "{err}");
        assert_eq!(
            err.to_string(),
            "usher runs as uid 1000 gid 1000 groups [50, 1000], not root, so it cannot switch \
             to uid 1001 gid 1000 groups [1000, 50]"
        );
        // Same uid and gid but other supplementary groups: usher cannot give "that group only".
        let group_only = Credentials {
            groups: vec![1000],
            ..app()
        };
        let err = super::plan(me.clone(), Some(group_only), None, false).unwrap_err();
        assert!(err.is_about_user(), "{err}");
        let keep = CapSet::parse("CHOWN").unwrap();
        let err = super::plan(me, None, Some(keep), false).unwrap_err();
        assert!(!err.is_about_user(), "{err}");
        assert_eq!(
            err.to_string(),
            "usher runs as uid 1000, not root, so it has no capabilities to hand on"
        );
    }
}
