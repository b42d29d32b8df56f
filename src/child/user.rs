//! Resolves docker `--user` / gosu style specs (`USER[:GROUP]`) by reading the image's
//! /etc/passwd and /etc/group text directly: usher is static and must work in `FROM scratch`,
//! so NSS is not available.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

/// The highest usable id: u32::MAX is the kernel's "no change" value for set*id(2).
const MAX_ID: u32 = u32::MAX - 1;

/// Why a `--user` spec cannot be resolved. Each message is one line without the option's name
/// (the caller adds it) and names what was not found and where, e.g.
/// `unknown user "app" (not in /etc/passwd)`.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("expected USER[:GROUP], got {0:?}")]
    Malformed(String),
    #[error("{kind} {text} out of range (0..={MAX_ID})")]
    IdOutOfRange { kind: &'static str, text: String },
    #[error("unknown user {0:?} (not in /etc/passwd)")]
    UnknownUser(String),
    #[error("unknown user {0:?} (no /etc/passwd)")]
    NoPasswdFile(String),
    #[error("unknown group {0:?} (not in /etc/group)")]
    UnknownGroup(String),
    #[error("unknown group {0:?} (no /etc/group)")]
    NoGroupFile(String),
    /// The file exists but cannot be read (a missing file is not an error).
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Who the child runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups for setgroups(2), primary gid first, no duplicates.
    pub groups: Vec<u32>,
    /// HOME for the child: the passwd entry's home, or "/" when the user has no entry or an empty home.
    pub home: String,
    /// USER and LOGNAME for the child: the passwd entry's name, None when the uid has no entry.
    pub name: Option<String>,
}

/// One usable /etc/passwd line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

/// One usable /etc/group line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    /// Comma-separated member names, possibly empty.
    members: &'a str,
}

impl GroupEntry<'_> {
    fn has_member(&self, user_name: &str) -> bool {
        self.members.split(',').any(|member| member == user_name)
    }
}

/// Resolves SPEC against passwd/group file contents (None: the file does not exist).
pub fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Credentials, UserError> {
    let (user_spec, group_spec) = split_spec(spec)?;
    let (uid, entry) = find_user(user_spec, passwd)?;
    let home = entry
        .map(|entry| entry.home)
        .filter(|home| !home.is_empty())
        .unwrap_or("/")
        .to_string();
    let name = entry.map(|entry| entry.name.to_string());
    if let Some(group_spec) = group_spec {
        // An explicit group replaces the user's groups entirely, as with docker and gosu.
        let gid = find_group(group_spec, group)?;
        return Ok(Credentials {
            uid,
            gid,
            groups: vec![gid],
            home,
            name,
        });
    }
    let Some(entry) = entry else {
        // Docker's rule for a uid the image does not know: group root.
        return Ok(Credentials {
            uid,
            gid: 0,
            groups: vec![0],
            home,
            name,
        });
    };
    let mut groups = vec![entry.gid];
    for group_entry in group.into_iter().flat_map(group_entries) {
        if group_entry.has_member(entry.name) && !groups.contains(&group_entry.gid) {
            groups.push(group_entry.gid);
        }
    }
    Ok(Credentials {
        uid,
        gid: entry.gid,
        groups,
        home,
        name,
    })
}

/// Reads `<root>/etc/passwd` and `<root>/etc/group` (a missing file is None; another read
/// error is [`UserError::Read`], with the path and the io::Error, unless the spec is numbers
/// only: see [`resolve_in_noting`]) and resolves SPEC. `root` is "/" in production.
#[allow(
    dead_code,
    reason = "without the notes: for the tests and fuzz targets"
)]
pub fn resolve_in(spec: &str, root: &Path) -> Result<Credentials, UserError> {
    resolve_in_noting(spec, root).map(|(credentials, _)| credentials)
}

/// [`resolve_in`], but for a spec of numbers only (`1000`, `1000:1000`), which needs neither
/// file, a file that exists and cannot be read (mode 000 for a non-root usher, a directory) is
/// taken as absent, as runc does, and returned beside the credentials ([`UserError::Read`]) for
/// the caller to warn about. A name still needs its file: then it is an error.
pub fn resolve_in_noting(
    spec: &str,
    root: &Path,
) -> Result<(Credentials, Vec<UserError>), UserError> {
    let numeric = split_spec(spec)
        .is_ok_and(|(user, group)| is_decimal(user) && group.is_none_or(is_decimal));
    let mut unread = Vec::new();
    let mut read = |name: &str| match read_optional(&root.join(name)) {
        Err(e @ UserError::Read { .. }) if numeric => {
            unread.push(e);
            Ok(None)
        }
        other => other,
    };
    let passwd = read("etc/passwd")?;
    let group = read("etc/group")?;
    let credentials = resolve(spec, passwd.as_deref(), group.as_deref())?;
    Ok((credentials, unread))
}

/// The file's text, or None when it does not exist. Invalid UTF-8 (say a Latin-1 gecos) is
/// replaced rather than rejected: names and ids are ASCII in practice, so lookups still work.
fn read_optional(path: &Path) -> Result<Option<String>, UserError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(UserError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Splits `USER[:GROUP]`, rejecting empty parts and extra colons.
fn split_spec(spec: &str) -> Result<(&str, Option<&str>), UserError> {
    let mut parts = spec.split(':');
    let user_spec = parts.next().unwrap_or_default();
    let group_spec = parts.next();
    if user_spec.is_empty() || group_spec == Some("") || parts.next().is_some() {
        return Err(UserError::Malformed(spec.to_string()));
    }
    Ok((user_spec, group_spec))
}

/// The uid for USER and its passwd entry, if any. A number is always a uid (docker's rule,
/// even if some user is named like a number) and need not be in passwd; a name must be.
fn find_user<'a>(
    user_spec: &str,
    passwd: Option<&'a str>,
) -> Result<(u32, Option<PasswdEntry<'a>>), UserError> {
    if let Some(uid) = parse_spec_id("uid", user_spec)? {
        let entry = passwd.and_then(|text| passwd_entries(text).find(|entry| entry.uid == uid));
        return Ok((uid, entry));
    }
    let text = passwd.ok_or_else(|| UserError::NoPasswdFile(user_spec.to_string()))?;
    match passwd_entries(text).find(|entry| entry.name == user_spec) {
        Some(entry) => Ok((entry.uid, Some(entry))),
        None => Err(UserError::UnknownUser(user_spec.to_string())),
    }
}

/// The gid for GROUP: a number need not be in /etc/group, a name must be.
fn find_group(group_spec: &str, group: Option<&str>) -> Result<u32, UserError> {
    if let Some(gid) = parse_spec_id("gid", group_spec)? {
        return Ok(gid);
    }
    let text = group.ok_or_else(|| UserError::NoGroupFile(group_spec.to_string()))?;
    group_entries(text)
        .find(|entry| entry.name == group_spec)
        .map(|entry| entry.gid)
        .ok_or_else(|| UserError::UnknownGroup(group_spec.to_string()))
}

/// Some(id) for an all-digit part of the spec, None for a name, an error for a number too big.
fn parse_spec_id(kind: &'static str, text: &str) -> Result<Option<u32>, UserError> {
    if !is_decimal(text) {
        return Ok(None);
    }
    match parse_id(text) {
        Some(id) => Ok(Some(id)),
        None => Err(UserError::IdOutOfRange {
            kind,
            text: text.to_string(),
        }),
    }
}

fn is_decimal(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// Decimal digits only (str::parse would also take a leading '+'), at most MAX_ID.
fn parse_id(text: &str) -> Option<u32> {
    if !is_decimal(text) {
        return None;
    }
    text.parse::<u32>().ok().filter(|&id| id <= MAX_ID)
}

/// The lines of a passwd or group file worth parsing, without blank lines, comments and NIS
/// compat entries ('+'/'-'), which name no local account.
fn records(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        // lines() strips "\r\n" but keeps the '\r' of a last line with no '\n'.
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with(['#', '+', '-']))
}

/// `name:password:uid:gid:gecos:home:shell`; lines without a name or valid ids are skipped
/// (as the C library does) so one bad line does not hide every other user.
fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    records(text).filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next().filter(|name| !name.is_empty())?;
        let _password = fields.next()?;
        let uid = parse_id(fields.next()?)?;
        let gid = parse_id(fields.next()?)?;
        let _gecos = fields.next();
        let home = fields.next().unwrap_or_default();
        Some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

/// `name:password:gid:member,member`; malformed lines are skipped as in passwd_entries.
fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    records(text).filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next().filter(|name| !name.is_empty())?;
        let _password = fields.next()?;
        let gid = parse_id(fields.next()?)?;
        let members = fields.next().unwrap_or_default();
        Some(GroupEntry { name, gid, members })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::startup::chain;
    use std::error::Error;

    /// `super::resolve`, its error as usher prints it (with its sources), and without the
    /// user's name, which `the_name_is_the_passwd_entrys` checks on its own.
    fn resolve(
        spec: &str,
        passwd: Option<&str>,
        group: Option<&str>,
    ) -> Result<Credentials, String> {
        super::resolve(spec, passwd, group)
            .map(nameless)
            .map_err(|e| chain(&e))
    }

    /// `super::resolve_in`, as `resolve` above.
    fn resolve_in(spec: &str, root: &Path) -> Result<Credentials, String> {
        super::resolve_in(spec, root)
            .map(nameless)
            .map_err(|e| chain(&e))
    }

    fn nameless(credentials: Credentials) -> Credentials {
        Credentials {
            name: None,
            ..credentials
        }
    }

    /// The name for USER and LOGNAME: the entry found for the uid, whichever way it was given.
    #[test]
    fn the_name_is_the_passwd_entrys() {
        let name = |spec: &str| {
            super::resolve(spec, Some(PASSWD), Some(GROUP))
                .unwrap()
                .name
        };
        assert_eq!(name("app").as_deref(), Some("app"));
        assert_eq!(name("1000").as_deref(), Some("app"));
        assert_eq!(name("app:staff").as_deref(), Some("app"));
        assert_eq!(name("0:4343").as_deref(), Some("root"));
        // A uid the image does not know has no name.
        assert_eq!(name("4242"), None);
        assert_eq!(name("4242:video"), None);
        let passwd = "1000:x:5:5::/home/five:/bin/sh\n";
        assert_eq!(
            super::resolve("1000", Some(passwd), None).unwrap().name,
            None
        );
    }

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App User:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";

    const GROUP: &str = "\
root:x:0:
daemon:x:1:
app:x:1000:app
staff:x:50:root,app
audio:x:29:other,app,more
video:x:44:other
wheel:x:10:app
";

    fn creds(uid: u32, gid: u32, groups: &[u32], home: &str) -> Credentials {
        Credentials {
            uid,
            gid,
            groups: groups.to_vec(),
            home: home.to_string(),
            name: None,
        }
    }

    fn resolve_ok(spec: &str, passwd: &str, group: &str) -> Credentials {
        resolve(spec, Some(passwd), Some(group)).unwrap()
    }

    fn resolve_err(spec: &str, passwd: Option<&str>, group: Option<&str>) -> String {
        resolve(spec, passwd, group).unwrap_err()
    }

    #[test]
    fn name_gets_its_primary_and_member_groups_in_file_order() {
        // app is also in its primary group's member list: 1000 must appear once.
        assert_eq!(
            resolve_ok("app", PASSWD, GROUP),
            creds(1000, 1000, &[1000, 50, 29, 10], "/home/app")
        );
        assert_eq!(
            resolve_ok("root", PASSWD, GROUP),
            creds(0, 0, &[0, 50], "/root")
        );
        assert_eq!(
            resolve_ok("daemon", PASSWD, GROUP),
            creds(1, 1, &[1], "/usr/sbin")
        );
    }

    #[test]
    fn duplicate_group_lines_do_not_duplicate_gids() {
        let group = "app:x:1000:\nextra:x:7:app\nextra-again:x:7:app\nalso:x:8:app\n";
        assert_eq!(
            resolve_ok("app", PASSWD, group),
            creds(1000, 1000, &[1000, 7, 8], "/home/app")
        );
    }

    #[test]
    fn member_names_must_match_exactly() {
        let group = "g1:x:5:application\ng2:x:6:ap\ng3:x:7:xapp,appx\ng4:x:8:,,app,,\n";
        assert_eq!(
            resolve_ok("app", PASSWD, group),
            creds(1000, 1000, &[1000, 8], "/home/app")
        );
    }

    #[test]
    fn uid_in_passwd_behaves_as_its_name() {
        assert_eq!(
            resolve_ok("1000", PASSWD, GROUP),
            creds(1000, 1000, &[1000, 50, 29, 10], "/home/app")
        );
        assert_eq!(
            resolve_ok("0", PASSWD, GROUP),
            creds(0, 0, &[0, 50], "/root")
        );
    }

    #[test]
    fn uid_with_leading_zeros_is_still_that_uid() {
        assert_eq!(
            resolve_ok("01000", PASSWD, GROUP),
            creds(1000, 1000, &[1000, 50, 29, 10], "/home/app")
        );
    }

    #[test]
    fn uid_not_in_passwd_gets_group_root() {
        assert_eq!(resolve_ok("4242", PASSWD, GROUP), creds(4242, 0, &[0], "/"));
        assert_eq!(
            resolve_ok("4294967294", PASSWD, GROUP),
            creds(4294967294, 0, &[0], "/")
        );
    }

    #[test]
    fn a_number_is_always_a_uid_even_if_a_user_has_that_name() {
        let passwd = "1000:x:5:5::/home/five:/bin/sh\n";
        assert_eq!(resolve_ok("1000", passwd, ""), creds(1000, 0, &[0], "/"));
    }

    #[test]
    fn name_colon_group_gets_only_that_group() {
        assert_eq!(
            resolve_ok("app:staff", PASSWD, GROUP),
            creds(1000, 50, &[50], "/home/app")
        );
    }

    #[test]
    fn uid_colon_gid_needs_no_entries() {
        assert_eq!(
            resolve_ok("4242:4343", PASSWD, GROUP),
            creds(4242, 4343, &[4343], "/")
        );
        // A known uid keeps its home but not its groups.
        assert_eq!(
            resolve_ok("1000:0", PASSWD, GROUP),
            creds(1000, 0, &[0], "/home/app")
        );
    }

    #[test]
    fn name_colon_gid_and_uid_colon_group() {
        assert_eq!(
            resolve_ok("app:4343", PASSWD, GROUP),
            creds(1000, 4343, &[4343], "/home/app")
        );
        assert_eq!(
            resolve_ok("4242:video", PASSWD, GROUP),
            creds(4242, 44, &[44], "/")
        );
    }

    #[test]
    fn unknown_user_and_group() {
        assert_eq!(
            resolve_err("ghost", Some(PASSWD), Some(GROUP)),
            r#"unknown user "ghost" (not in /etc/passwd)"#
        );
        assert_eq!(
            resolve_err("app:ghosts", Some(PASSWD), Some(GROUP)),
            r#"unknown group "ghosts" (not in /etc/group)"#
        );
        assert_eq!(
            resolve_err("4242:ghosts", Some(PASSWD), Some(GROUP)),
            r#"unknown group "ghosts" (not in /etc/group)"#
        );
        // The user is checked first.
        assert_eq!(
            resolve_err("ghost:ghosts", Some(PASSWD), Some(GROUP)),
            r#"unknown user "ghost" (not in /etc/passwd)"#
        );
    }

    #[test]
    fn a_group_name_is_not_a_user_name() {
        // "staff" exists in /etc/group only.
        assert_eq!(
            resolve_err("staff", Some(PASSWD), Some(GROUP)),
            r#"unknown user "staff" (not in /etc/passwd)"#
        );
    }

    #[test]
    fn errors_stay_on_one_line() {
        assert_eq!(
            resolve_err("gh\nost", Some(PASSWD), Some(GROUP)),
            r#"unknown user "gh\nost" (not in /etc/passwd)"#
        );
    }

    #[test]
    fn out_of_range_ids() {
        assert_eq!(
            resolve_err("4294967295", Some(PASSWD), Some(GROUP)),
            "uid 4294967295 out of range (0..=4294967294)"
        );
        assert_eq!(
            resolve_err("0:4294967295", Some(PASSWD), Some(GROUP)),
            "gid 4294967295 out of range (0..=4294967294)"
        );
        assert_eq!(
            resolve_err("99999999999999999999", None, None),
            "uid 99999999999999999999 out of range (0..=4294967294)"
        );
        assert_eq!(
            resolve_err("app:99999999999999999999", Some(PASSWD), Some(GROUP)),
            "gid 99999999999999999999 out of range (0..=4294967294)"
        );
    }

    #[test]
    fn malformed_specs() {
        for spec in [
            "",
            ":",
            "app:",
            ":staff",
            "app:staff:extra",
            "1:2:3",
            "::",
            "app::",
        ] {
            assert_eq!(
                resolve_err(spec, Some(PASSWD), Some(GROUP)),
                format!("expected USER[:GROUP], got {spec:?}"),
                "spec {spec:?}"
            );
        }
    }

    #[test]
    fn signs_are_not_digits() {
        // "+1000" and "-1" are names, and no such users exist.
        assert_eq!(
            resolve_err("+1000", Some(PASSWD), Some(GROUP)),
            r#"unknown user "+1000" (not in /etc/passwd)"#
        );
        assert_eq!(
            resolve_err("app:-1", Some(PASSWD), Some(GROUP)),
            r#"unknown group "-1" (not in /etc/group)"#
        );
    }

    #[test]
    fn missing_files_with_numeric_specs() {
        assert_eq!(resolve("1000", None, None), Ok(creds(1000, 0, &[0], "/")));
        assert_eq!(
            resolve("1000:1001", None, None),
            Ok(creds(1000, 1001, &[1001], "/"))
        );
        // passwd present, group missing: the primary gid alone.
        assert_eq!(
            resolve("app", Some(PASSWD), None),
            Ok(creds(1000, 1000, &[1000], "/home/app"))
        );
    }

    #[test]
    fn missing_files_with_named_specs() {
        assert_eq!(
            resolve_err("app", None, Some(GROUP)),
            r#"unknown user "app" (no /etc/passwd)"#
        );
        assert_eq!(
            resolve_err("app:staff", Some(PASSWD), None),
            r#"unknown group "staff" (no /etc/group)"#
        );
        assert_eq!(
            resolve_err("1000:staff", None, None),
            r#"unknown group "staff" (no /etc/group)"#
        );
    }

    #[test]
    fn comments_blank_lines_and_crlf() {
        let passwd =
            "# users\r\n\r\n\n   \napp:x:1000:1000:App:/home/app:/bin/sh\r\n#app:x:1:1::/wrong:\n";
        let group = "\r\n# groups\r\nstaff:x:50:app\r\nwheel:x:10:root,app\r\n";
        assert_eq!(
            resolve_ok("app", passwd, group),
            creds(1000, 1000, &[1000, 50, 10], "/home/app")
        );
        assert_eq!(
            resolve_ok("app:wheel", passwd, group),
            creds(1000, 10, &[10], "/home/app")
        );
        // A CRLF file whose last line has a '\r' but no '\n'.
        let passwd = "root:x:0:0::/root:\r\napp:x:1000:1000::/home/app\r";
        let group = "staff:x:50:app\r\nwheel:x:10:app\r";
        assert_eq!(
            resolve_ok("app", passwd, group),
            creds(1000, 1000, &[1000, 50, 10], "/home/app")
        );
    }

    #[test]
    fn missing_and_empty_trailing_fields() {
        let passwd = "nohome:x:1:2:gecos\nemptyhome:x:3:4:gecos::/bin/sh\nshort:x:5:6\n";
        assert_eq!(resolve_ok("nohome", passwd, ""), creds(1, 2, &[2], "/"));
        assert_eq!(resolve_ok("emptyhome", passwd, ""), creds(3, 4, &[4], "/"));
        assert_eq!(resolve_ok("short", passwd, ""), creds(5, 6, &[6], "/"));
        // A group line without a member field is usable by name and lists nobody.
        let group = "nomembers:x:70\nsome:x:71:short";
        assert_eq!(
            resolve_ok("short:nomembers", passwd, group),
            creds(5, 70, &[70], "/")
        );
        assert_eq!(
            resolve_ok("short", passwd, group),
            creds(5, 6, &[6, 71], "/")
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let passwd = "\
app
app:x
app:x:abc:1000::/bad:
app:x:1000:abc::/bad:
app:x:4294967295:1000::/bad:
app:x:1000:4294967295::/bad:
app:x:-1:1000::/bad:
app:x::1000::/bad:
:x:7:7::/noname:
app:x:1000:1000::/home/app:/bin/sh
";
        let group = "\
staff
staff:x
staff:x:abc:app
staff:x:4294967295:app
:x:9:app
staff:x:50:app
";
        assert_eq!(
            resolve_ok("app", passwd, group),
            creds(1000, 1000, &[1000, 50], "/home/app")
        );
        assert_eq!(
            resolve_ok("app:staff", passwd, group),
            creds(1000, 50, &[50], "/home/app")
        );
        // The nameless line is not a user for its uid either.
        assert_eq!(resolve_ok("7", passwd, group), creds(7, 0, &[0], "/"));
    }

    #[test]
    fn nis_lines_are_skipped() {
        let passwd = "+app:x:1:1::/nis:\n-app:x:2:2::/nis:\n+::::::\n+@netgroup\napp:x:1000:1000::/home/app:\n";
        let group = "+staff:x:3:app\n-staff:x:4:app\n+\nstaff:x:50:app\n";
        assert_eq!(
            resolve_ok("app", passwd, group),
            creds(1000, 1000, &[1000, 50], "/home/app")
        );
        assert_eq!(resolve_ok("1", passwd, group), creds(1, 0, &[0], "/"));
        assert_eq!(
            resolve_ok("app:staff", passwd, group),
            creds(1000, 50, &[50], "/home/app")
        );
    }

    #[test]
    fn duplicate_names_first_wins() {
        let passwd = "app:x:1000:1000::/first:\napp:x:2000:2000::/second:\n";
        let group = "staff:x:50:\nstaff:x:60:\n";
        assert_eq!(
            resolve_ok("app", passwd, group),
            creds(1000, 1000, &[1000], "/first")
        );
        assert_eq!(
            resolve_ok("app:staff", passwd, group),
            creds(1000, 50, &[50], "/first")
        );
    }

    #[test]
    fn duplicate_uid_first_wins() {
        // toor shares root's uid; uid 0 means the first entry, and its name picks the groups.
        let passwd = "root:x:0:0::/root:\ntoor:x:0:5::/toor:\n";
        let group = "wheel:x:10:root\nadmin:x:20:toor\n";
        assert_eq!(
            resolve_ok("0", passwd, group),
            creds(0, 0, &[0, 10], "/root")
        );
        assert_eq!(
            resolve_ok("toor", passwd, group),
            creds(0, 5, &[5, 20], "/toor")
        );
    }

    #[test]
    fn very_long_lines() {
        let gecos = "g".repeat(100_000);
        let passwd = format!("app:x:1000:1000:{gecos}:/home/app:/bin/sh\n");
        let mut members: Vec<String> = (0..20_000).map(|n| format!("user{n}")).collect();
        members.push("app".to_string());
        let group = format!("big:x:77:{}\n", members.join(","));
        assert!(group.len() > 100_000);
        assert_eq!(
            resolve_ok("app", &passwd, &group),
            creds(1000, 1000, &[1000, 77], "/home/app")
        );
    }

    /// A directory under the system temp dir, removed when dropped (even if a test fails).
    struct TempRoot(PathBuf);

    impl TempRoot {
        fn new(test_name: &str) -> TempRoot {
            let path =
                std::env::temp_dir().join(format!("usher-user-{}-{test_name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(path.join("etc")).unwrap();
            TempRoot(path)
        }

        fn write(&self, relative: &str, contents: &[u8]) {
            std::fs::write(self.0.join(relative), contents).unwrap();
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn resolve_in_reads_the_image_files() {
        let root = TempRoot::new("reads");
        root.write("etc/passwd", PASSWD.as_bytes());
        root.write("etc/group", GROUP.as_bytes());
        assert_eq!(
            resolve_in("app", &root.0),
            Ok(creds(1000, 1000, &[1000, 50, 29, 10], "/home/app"))
        );
        assert_eq!(
            resolve_in("nobody:video", &root.0),
            Ok(creds(65534, 44, &[44], "/nonexistent"))
        );
    }

    #[test]
    fn resolve_in_treats_missing_files_as_absent() {
        let root = TempRoot::new("missing");
        assert_eq!(resolve_in("1000", &root.0), Ok(creds(1000, 0, &[0], "/")));
        assert_eq!(
            resolve_in("app", &root.0),
            Err(r#"unknown user "app" (no /etc/passwd)"#.to_string())
        );
        root.write("etc/passwd", PASSWD.as_bytes());
        assert_eq!(
            resolve_in("app", &root.0),
            Ok(creds(1000, 1000, &[1000], "/home/app"))
        );
        assert_eq!(
            resolve_in("app:staff", &root.0),
            Err(r#"unknown group "staff" (no /etc/group)"#.to_string())
        );
    }

    #[test]
    fn resolve_in_tolerates_invalid_utf8() {
        let root = TempRoot::new("latin1");
        root.write("etc/passwd", b"app:x:1000:1000:Jos\xe9:/home/app:/bin/sh\n");
        root.write("etc/group", b"caf\xe9:x:5:app\nstaff:x:50:app\n");
        assert_eq!(
            resolve_in("app", &root.0),
            Ok(creds(1000, 1000, &[1000, 5, 50], "/home/app"))
        );
    }

    #[test]
    fn resolve_in_reports_other_read_errors_with_the_path() {
        let root = TempRoot::new("unreadable");
        // A directory where the file should be: reading it fails with something else than NotFound.
        std::fs::create_dir(root.0.join("etc/passwd")).unwrap();
        let error = resolve_in("app", &root.0).unwrap_err();
        let prefix = format!("cannot read {}: ", root.0.join("etc/passwd").display());
        assert!(error.starts_with(&prefix), "{error}");
        assert!(!error.contains('\n'), "{error}");
        // The io::Error is kept as the source, not flattened into the message.
        let error = super::resolve_in("app", &root.0).unwrap_err();
        assert!(matches!(error, UserError::Read { .. }), "{error:?}");
        let source = error.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(source.and_then(io::Error::raw_os_error), Some(libc::EISDIR));
        assert_eq!(
            error.to_string(),
            format!("cannot read {}", root.0.join("etc/passwd").display())
        );
    }

    /// Numbers need neither file: one that cannot be read is taken as absent, and said; a name
    /// still needs its file, and a group name /etc/group.
    #[test]
    fn numeric_specs_work_without_readable_files() {
        let root = TempRoot::new("numeric");
        std::fs::create_dir(root.0.join("etc/passwd")).unwrap();
        std::fs::create_dir(root.0.join("etc/group")).unwrap();
        for (spec, expected) in [
            ("1000", creds(1000, 0, &[0], "/")),
            ("1000:1000", creds(1000, 1000, &[1000], "/")),
        ] {
            let (credentials, unread) = super::resolve_in_noting(spec, &root.0).unwrap();
            assert_eq!(nameless(credentials), expected, "{spec}");
            let unread: Vec<String> = unread.iter().map(|e| chain(e)).collect();
            assert_eq!(unread.len(), 2, "{unread:?}");
            assert!(unread[0].starts_with("cannot read "), "{unread:?}");
            assert!(unread[0].contains("etc/passwd: "), "{unread:?}");
            assert!(unread[1].contains("etc/group: "), "{unread:?}");
        }
        for spec in ["app", "1000:staff"] {
            let error = super::resolve_in_noting(spec, &root.0)
                .map(drop)
                .unwrap_err();
            assert!(matches!(error, UserError::Read { .. }), "{spec}: {error:?}");
        }
        // Readable files: nothing to say.
        let root = TempRoot::new("numeric-readable");
        root.write("etc/passwd", PASSWD.as_bytes());
        let (credentials, unread) = super::resolve_in_noting("1000", &root.0).unwrap();
        assert_eq!(credentials.home, "/home/app");
        assert!(unread.is_empty());
    }
}
