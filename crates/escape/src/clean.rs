//! Lexical path cleaning, one function for each rule a caller needs: names from outside (a
//! tar member, an archive's manifest, a Dockerfile's WORKDIR or COPY source, a symlink's
//! target inside a rootfs) are kept from escaping the root they are resolved in. Nothing here
//! touches the file system.
//!
//! * [`go`]: Go's `filepath.Clean`, byte for byte (`..` kept at the front of a relative
//!   path), for the rules docker and BuildKit write in Go.
//! * [`rooted`] / [`clamped`]: `path.Clean("/" + p)`, as a string or its components: `..`
//!   stops at the root (what a path inside a container means).
//! * [`refusing_dotdot`]: the components of a name in which any `..` is refused (layer and
//!   context tar members).
//! * [`contained`]: the components of a relative name whose `..` may not climb above its
//!   start (an archive's member names).

/// Go's `filepath.Clean` (and `path.Clean`) for Unix paths, byte for byte: `.` and empty
/// components dropped, `..` applied, clamped at the root of an absolute path and kept at
/// the front of a relative one (`a/../../b` is `../b`); an empty path is `.`.
pub fn go(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let n = path.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0usize, 0usize);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        if path[r] == b'/' || (path[r] == b'.' && (r + 1 == n || path[r + 1] == b'/')) {
            // Empty or "." element.
            r += 1;
        } else if path[r] == b'.' && path[r + 1] == b'.' && (r + 2 == n || path[r + 2] == b'/') {
            r += 2;
            if out.len() > dotdot {
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Go's `path.Clean("/" + p)`: an absolute path, `..` clamped at the root (`/x/../..` is
/// `/`), no trailing slash.
pub fn rooted(p: &str) -> String {
    let mut v = Vec::with_capacity(p.len() + 1);
    v.push(b'/');
    v.extend_from_slice(p.as_bytes());
    // Cleaning only removes or inserts ASCII bytes at ASCII boundaries: UTF-8 stays valid.
    String::from_utf8(go(&v)).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
}

/// The components of [`rooted`]`(p)`: `.` and empty components dropped, `..` applied and
/// never above the root; a relative `p` counts from the root.
pub fn clamped(p: &str) -> Vec<String> {
    rooted(p)
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The components of `name`, `.` and empty components dropped (an absolute name becomes
/// relative); `None` when any component is `..`, even one that would stay inside.
pub fn refusing_dotdot(name: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// The components of `name` with `..` applied, `.` and empty components dropped; `None`
/// when a `..` would climb above where the name starts.
pub fn contained(name: &str) -> Option<Vec<&str>> {
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        String::from_utf8(go(s.as_bytes())).unwrap()
    }

    #[test]
    fn clean_like_go() {
        // From Go's path/filepath cleantests.
        for (i, o) in [
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("", "."),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/", "a/b/c"),
            ("./", "."),
            ("../", ".."),
            ("../../", "../.."),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("//abc//", "/abc"),
            ("abc//", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("/../abc", "/abc"),
            ("a/../b:/../../c", "../c"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
        ] {
            assert_eq!(c(i), o, "Clean({i:?})");
        }
    }

    #[test]
    fn rooted_clamps_at_the_root() {
        assert_eq!(rooted("/x/../y/."), "/y");
        assert_eq!(rooted("/root/"), "/root");
        assert_eq!(rooted(""), "/");
        assert_eq!(rooted("a/../../b"), "/b");
        assert_eq!(clamped("/a//b/./../c/"), ["a", "c"]);
        assert_eq!(clamped("x/../../.."), Vec::<String>::new());
        assert_eq!(clamped("rel/p"), ["rel", "p"]);
    }

    #[test]
    fn dotdot_refused_or_contained() {
        assert_eq!(refusing_dotdot(b"/a/./b//").unwrap(), [b"a" as &[u8], b"b"]);
        assert_eq!(refusing_dotdot(b"a/../b"), None);
        assert_eq!(refusing_dotdot(b"..x/y").unwrap(), [b"..x" as &[u8], b"y"]);
        assert_eq!(contained("a/../b/./c").unwrap(), ["b", "c"]);
        assert_eq!(contained("a/../../b"), None);
        assert_eq!(contained("./"), Some(vec![]));
    }
}
