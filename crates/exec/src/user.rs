//! `USER` resolution against the rootfs's `/etc/passwd` and `/etc/group`, with BuildKit's
//! rules: numeric `uid:gid` is taken as it is (no lookup, no supplementary groups); otherwise
//! moby's `GetExecUser` rules apply (a user named or numbered in /etc/passwd gets its passwd
//! gid and, unless a group is given explicitly, the groups listing it as a member; a numeric
//! uid missing from /etc/passwd gets gid 0).

/// The identity the process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The user's home directory from /etc/passwd, or `/` (runc's default): the process gets
    /// it as `HOME` unless its environment sets one, as under runc.
    pub home: String,
}

/// One line of an `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    /// The sixth field; empty when the line has none.
    pub home: &'a str,
}

fn home_of(passwd: Option<&str>, uid: u32) -> String {
    passwd_entries(passwd.unwrap_or(""))
        .find(|e| e.uid == uid)
        .map(|e| e.home)
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
        .to_string()
}

/// One line of an `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry<'a> {
    pub name: &'a str,
    pub gid: u32,
    pub members: Vec<&'a str>,
}

/// The entries of an `/etc/passwd` (the one parser of strata's: the executor's USER, the
/// engine's `--chown`, the runtime's `HOME`): blank lines, `#` comments and lines without a
/// numeric uid and gid are skipped.
pub fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        if line.trim().is_empty() || line.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].trim().parse().ok()?,
            gid: f[3].trim().parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

/// The entries of an `/etc/group`: blank lines, `#` comments and lines without a numeric
/// gid are skipped.
pub fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        if line.trim().is_empty() || line.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 3 {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].trim().parse().ok()?,
            members: f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    })
}

/// Resolve `user` (`None` or empty is root). `passwd` / `group` are the files' contents, or
/// `None` when the rootfs has no such file (treated as empty). Errors are the messages docker
/// prints (`unable to find user NAME: no matching entries in passwd file`).
pub(crate) fn resolve(
    user: Option<&str>,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Identity, String> {
    let user = user.unwrap_or("");
    if user.is_empty() {
        return Ok(Identity {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            home: home_of(passwd, 0),
        });
    }
    let (user_arg, group_arg) = match user.split_once(':') {
        Some((u, g)) => (u, g),
        None => (user, ""),
    };
    // BuildKit's fast path: `uid:gid` needs no lookup. A bare uid is looked up: when
    // /etc/passwd has it, it gets that entry's gid and supplementary groups (what Docker
    // 20.10's BuildKit did in the frozen core-user case).
    if let Ok(uid) = user_arg.parse::<u32>() {
        if let Ok(gid) = group_arg.parse::<u32>() {
            return Ok(Identity {
                uid,
                gid,
                groups: Vec::new(),
                home: home_of(passwd, uid),
            });
        }
    }
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
    let numeric_user = user_arg.parse::<u32>().ok();
    let found = passwd_entries(passwd)
        .find(|e| e.name == user_arg || numeric_user.is_some_and(|n| n == e.uid));
    let (uid, mut gid, matched, home) = match found {
        Some(e) => (
            e.uid,
            e.gid,
            Some(e.name),
            if e.home.is_empty() { "/" } else { e.home },
        ),
        None => match numeric_user {
            Some(uid) => (uid, 0, None, "/"),
            None => {
                return Err(format!(
                    "unable to find user {user_arg}: no matching entries in passwd file"
                ))
            }
        },
    };
    let mut groups = Vec::new();
    if !group_arg.is_empty() {
        let g =
            group_entries(group).find(|g| g.name == group_arg || g.gid.to_string() == group_arg);
        gid = match (g, group_arg.parse::<u32>()) {
            (Some(g), _) => g.gid,
            (None, Ok(n)) => n,
            (None, Err(_)) => {
                return Err(format!(
                    "unable to find group {group_arg}: no matching entries in group file"
                ))
            }
        };
    } else if let Some(name) = matched {
        groups = group_entries(group)
            .filter(|g| g.members.contains(&name))
            .map(|g| g.gid)
            .collect();
    }
    Ok(Identity {
        uid,
        gid,
        groups,
        home: home.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:100::/:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nusers:x:100:alice\nalice:x:1000:\nwheel:x:10:alice,bob\nstaff:x:50:\n";

    /// (uid, gid, groups): the home directory is checked in `homes`.
    fn id(uid: u32, gid: u32, groups: &[u32]) -> (u32, u32, Vec<u32>) {
        (uid, gid, groups.to_vec())
    }

    fn r(u: &str) -> Result<(u32, u32, Vec<u32>), String> {
        resolve(Some(u), Some(PASSWD), Some(GROUP)).map(|i| (i.uid, i.gid, i.groups))
    }

    #[test]
    fn homes() {
        let home = |u: Option<&str>, p: Option<&str>| resolve(u, p, Some(GROUP)).unwrap().home;
        assert_eq!(home(None, Some(PASSWD)), "/root");
        assert_eq!(home(None, None), "/");
        assert_eq!(home(Some("alice"), Some(PASSWD)), "/home/alice");
        assert_eq!(home(Some("1000:50"), Some(PASSWD)), "/home/alice");
        assert_eq!(home(Some("bob"), Some(PASSWD)), "/");
        assert_eq!(home(Some("4242"), Some(PASSWD)), "/");
        assert_eq!(home(Some("4242:7"), Some(PASSWD)), "/");
    }

    #[test]
    fn forms() {
        assert_eq!(
            resolve(None, None, None).map(|i| (i.uid, i.gid, i.groups)),
            Ok(id(0, 0, &[]))
        );
        assert_eq!(r("alice"), Ok(id(1000, 1000, &[100, 10])));
        assert_eq!(r("bob"), Ok(id(1001, 100, &[10])));
        assert_eq!(r("alice:staff"), Ok(id(1000, 50, &[])));
        assert_eq!(r("alice:77"), Ok(id(1000, 77, &[])));
        assert_eq!(r("1000"), Ok(id(1000, 1000, &[100, 10])));
        assert_eq!(r("4242"), Ok(id(4242, 0, &[])));
        assert_eq!(r("4242"), Ok(id(4242, 0, &[])));
        assert_eq!(r("1000:10"), Ok(id(1000, 10, &[])));
        assert_eq!(r("1000:staff"), Ok(id(1000, 50, &[])));
        assert_eq!(r("4242:staff"), Ok(id(4242, 50, &[])));
    }

    #[test]
    fn errors() {
        assert_eq!(
            r("carol"),
            Err("unable to find user carol: no matching entries in passwd file".into())
        );
        assert_eq!(
            r("alice:nogroup"),
            Err("unable to find group nogroup: no matching entries in group file".into())
        );
        assert!(resolve(Some("alice"), None, None).is_err());
    }
}
