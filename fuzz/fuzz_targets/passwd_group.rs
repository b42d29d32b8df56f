//! `--user` resolution (child::user::resolve_in) against any /etc/passwd and /etc/group, read
//! from a root directory as in an image. Properties: it never panics; what it gives agrees with
//! a plain reference reading of the files (a number is that id; a name is the uid of the first
//! usable passwd line with that name; the group is the spec's, else the user's, else root's;
//! the supplementary groups are those whose member list names the user, primary first, no
//! repeats; HOME the entry's home or "/"); errors are one line; reading through the files
//! and reading the same text directly (resolve) agree.
//! Input: flags (which files exist), then spec, passwd and group separated by NUL bytes.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use usher::fuzzing::{Credentials, UserError, resolve, resolve_in};
use usher_fuzz::Input;

const MAX_ID: u32 = u32::MAX - 1;

/// This process's image root, in `USHER_FUZZ_TMP` (fuzz/run makes and removes it) or the
/// system's temporary directory.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::var_os("USHER_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let root = base.join(format!("passwd_group-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).expect("image root");
        root
    })
}

fn id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|id| *id <= MAX_ID)
}

/// The lines that hold an entry: CR LF endings, blank lines, comments and NIS `+`/`-` lines
/// left out.
fn entries(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with(['#', '+', '-']))
        .map(|line| line.split(':').collect())
        .collect()
}

/// (name, uid, gid, home) of the usable passwd lines.
fn passwd(text: &str) -> Vec<(&str, u32, u32, &str)> {
    entries(text)
        .into_iter()
        .filter_map(|f| {
            let (name, uid, gid) = (*f.first()?, id(f.get(2)?)?, id(f.get(3)?)?);
            (!name.is_empty()).then(|| (name, uid, gid, f.get(5).copied().unwrap_or("")))
        })
        .collect()
}

/// (name, gid, members) of the usable group lines.
fn group(text: &str) -> Vec<(&str, u32, &str)> {
    entries(text)
        .into_iter()
        .filter_map(|f| {
            let (name, gid) = (*f.first()?, id(f.get(2)?)?);
            (!name.is_empty()).then(|| (name, gid, f.get(3).copied().unwrap_or("")))
        })
        .collect()
}

/// What resolution must give, or None where it must fail.
fn reference(
    spec: &str,
    passwd_text: Option<&str>,
    group_text: Option<&str>,
) -> Option<Credentials> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (user, group_spec) = match parts.as_slice() {
        [user] => (*user, None),
        [user, group] if !group.is_empty() => (*user, Some(*group)),
        _ => return None,
    };
    if user.is_empty() {
        return None;
    }
    let users = passwd(passwd_text.unwrap_or(""));
    let numeric = !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit());
    let (uid, entry) = if numeric {
        let uid = id(user)?;
        (uid, users.iter().find(|e| e.1 == uid))
    } else {
        passwd_text?;
        let entry = users.iter().find(|e| e.0 == user)?;
        (entry.1, Some(entry))
    };
    let home = entry
        .map(|e| e.3)
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
        .to_string();
    let name = entry.map(|e| e.0.to_string());
    let groups_file = group(group_text.unwrap_or(""));
    if let Some(group_spec) = group_spec {
        let gid = if group_spec.bytes().all(|b| b.is_ascii_digit()) {
            id(group_spec)?
        } else {
            group_text?;
            groups_file.iter().find(|g| g.0 == group_spec)?.1
        };
        return Some(Credentials {
            uid,
            gid,
            groups: vec![gid],
            home,
            name,
        });
    }
    let Some(entry) = entry else {
        return Some(Credentials {
            uid,
            gid: 0,
            groups: vec![0],
            home,
            name,
        });
    };
    let mut groups = vec![entry.2];
    for (_, gid, members) in &groups_file {
        if members.split(',').any(|m| m == entry.0) && !groups.contains(gid) {
            groups.push(*gid);
        }
    }
    Some(Credentials {
        uid,
        gid: entry.2,
        groups,
        home,
        name,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let spec = String::from_utf8_lossy(input.field(0)).into_owned();
    let passwd_bytes = (flags & 1 == 0).then(|| input.field(0));
    let group_bytes = (flags & 2 == 0).then(|| input.rest());
    let etc = root().join("etc");
    for (file, bytes) in [("passwd", passwd_bytes), ("group", group_bytes)] {
        let path = etc.join(file);
        match bytes {
            Some(bytes) => std::fs::write(&path, bytes).expect("write"),
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove {path:?}: {e}"),
            },
        }
    }
    let resolved = resolve_in(&spec, root());
    // The files read as text, invalid UTF-8 replaced, as resolve_in reads them.
    let passwd_text = passwd_bytes.map(|b| String::from_utf8_lossy(b).into_owned());
    let group_text = group_bytes.map(|b| String::from_utf8_lossy(b).into_owned());
    let direct = resolve(&spec, passwd_text.as_deref(), group_text.as_deref());
    let expected = reference(&spec, passwd_text.as_deref(), group_text.as_deref());
    match (&resolved, &expected) {
        (Ok(got), Some(want)) => assert_eq!(got, want, "spec {spec:?}"),
        (Err(e), None) => {
            let message = e.to_string();
            assert!(
                !message.contains(['\n', '\r']),
                "error of more than one line: {message:?}"
            );
            assert!(!matches!(e, UserError::Read { .. }), "{message}");
        }
        _ => panic!("spec {spec:?}: got {resolved:?}, expected {expected:?}"),
    }
    match (&resolved, &direct) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("resolve_in {resolved:?} but resolve {direct:?}"),
    }
    if let Ok(credentials) = &resolved {
        assert_eq!(credentials.groups.first(), Some(&credentials.gid));
        let mut seen = credentials.groups.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), credentials.groups.len(), "repeated groups");
        assert!(credentials.uid <= MAX_ID && credentials.gid <= MAX_ID);
    }
});
