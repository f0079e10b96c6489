//! Running another architecture's programs: user-mode emulation through the kernel's
//! binfmt_misc, as BuildKit does with QEMU. strata registers nothing itself: it looks for a
//! registration whose magic and mask match the platform's ELF executables and that has the
//! F (fix-binary) flag, so the interpreter was opened at registration and is found from
//! inside any rootfs; without one, the error says how to add it.

use std::path::Path;

use store::Platform;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// Why a platform's programs cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot run programs for {platform} on this {host} host: no emulator for {platform} is \
         registered in binfmt_misc{detail}\nhint: install QEMU's user-mode emulators and \
         register them with the fix-binary (F) flag, e.g. on Debian or Ubuntu `apt-get install \
         qemu-user-static binfmt-support` (it registers qemu-{qemu} with flags PF), or \
         `docker run --privileged --rm tonistiigi/binfmt --install {arch}`; strata never \
         registers one itself"
    )]
    NotRegistered {
        platform: String,
        host: String,
        qemu: String,
        arch: String,
        detail: String,
    },
    #[error(
        "cannot run programs for {platform}: the binfmt_misc entry {entry} ({interpreter}) \
         lacks the fix-binary (F) flag, so its interpreter is not found inside a build's \
         root filesystem\nhint: register it again with the F flag (Debian's \
         qemu-user-static does: `update-binfmts --disable {name} && update-binfmts --enable \
         {name}`, or `docker run --privileged --rm tonistiigi/binfmt --install {arch}`)"
    )]
    NoFixBinary {
        platform: String,
        entry: String,
        name: String,
        interpreter: String,
        arch: String,
    },
    #[error("strata cannot emulate {0}: no ELF machine is known for it")]
    Unknown(String),
}

/// The first 20 bytes of an ELF executable of `p` (what binfmt_misc's magic/mask compare),
/// and QEMU's name for the architecture.
fn elf_header(p: &Platform) -> Option<([u8; 20], &'static str)> {
    // (64-bit, little endian, e_machine, qemu name)
    let (class64, le, machine, qemu): (bool, bool, u16, &str) = match p.architecture.as_str() {
        "amd64" => (true, true, 0x3e, "x86_64"),
        "386" => (false, true, 0x03, "i386"),
        "arm64" => (true, true, 0xb7, "aarch64"),
        "arm" => (false, true, 0x28, "arm"),
        "ppc64le" => (true, true, 0x15, "ppc64le"),
        "s390x" => (true, false, 0x16, "s390x"),
        "riscv64" => (true, true, 0xf3, "riscv64"),
        "mips64le" => (true, true, 0x08, "mips64el"),
        "loong64" => (true, true, 0x102, "loongarch64"),
        _ => return None,
    };
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if class64 { 2 } else { 1 };
    h[5] = if le { 1 } else { 2 };
    h[6] = 1; // EI_VERSION
    let (t, m) = if le {
        (2u16.to_le_bytes(), machine.to_le_bytes())
    } else {
        (2u16.to_be_bytes(), machine.to_be_bytes())
    };
    h[16..18].copy_from_slice(&t); // e_type ET_EXEC
    h[18..20].copy_from_slice(&m);
    Some((h, qemu))
}

/// One binfmt_misc entry, as its file under /proc/sys/fs/binfmt_misc reads.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Entry {
    pub enabled: bool,
    pub interpreter: String,
    pub flags: String,
    pub offset: usize,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn parse_entry(text: &str) -> Entry {
    let mut e = Entry::default();
    for line in text.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "enabled" => e.enabled = true,
            "interpreter" => e.interpreter = v.trim().to_string(),
            "flags:" => e.flags = v.trim().to_string(),
            "offset" => e.offset = v.trim().parse().unwrap_or(0),
            "magic" => e.magic = unhex(v.trim()).unwrap_or_default(),
            "mask" => e.mask = unhex(v.trim()).unwrap_or_default(),
            _ => {}
        }
    }
    e
}

impl Entry {
    /// Whether this entry claims an executable starting with `header`.
    fn claims(&self, header: &[u8]) -> bool {
        if self.magic.is_empty() || self.offset + self.magic.len() > header.len() {
            return false;
        }
        self.magic.iter().enumerate().all(|(i, m)| {
            let mask = self.mask.get(i).copied().unwrap_or(0xff);
            header[self.offset + i] & mask == m & mask
        })
    }
}

/// Whether programs of `platform` can run here: natively, or through an enabled
/// binfmt_misc emulator with the F flag. Reads /proc/sys/fs/binfmt_misc.
pub fn check(platform: &Platform) -> Result<(), Error> {
    check_in(Path::new(BINFMT), platform)
}

pub(crate) fn check_in(dir: &Path, platform: &Platform) -> Result<(), Error> {
    if platform.is_host() {
        return Ok(());
    }
    let Some((header, qemu)) = elf_header(platform) else {
        return Err(Error::Unknown(platform.to_string()));
    };
    let not_registered = |detail: String| Error::NotRegistered {
        platform: platform.to_string(),
        host: Platform::host().to_string(),
        qemu: qemu.to_string(),
        arch: platform.architecture.clone(),
        detail,
    };
    if !dir.join("status").exists() {
        return Err(not_registered(format!(
            " ({} is not mounted: `mount -t binfmt_misc binfmt_misc {}`)",
            dir.display(),
            dir.display()
        )));
    }
    if std::fs::read_to_string(dir.join("status")).is_ok_and(|s| s.trim() == "disabled") {
        return Err(not_registered(" (binfmt_misc is disabled)".into()));
    }
    let mut without_f = None;
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| not_registered(format!(" ({}: {e})", dir.display())))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let name = name.to_string_lossy().to_string();
        if name == "status" || name == "register" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            continue;
        };
        let e = parse_entry(&text);
        if !e.enabled || !e.claims(&header) {
            continue;
        }
        if e.flags.contains('F') {
            return Ok(());
        }
        without_f.get_or_insert((name, e.interpreter));
    }
    match without_f {
        Some((name, interpreter)) => Err(Error::NoFixBinary {
            platform: platform.to_string(),
            entry: dir.join(&name).display().to_string(),
            name,
            interpreter,
            arch: platform.architecture.clone(),
        }),
        None => Err(not_registered(String::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Debian bookworm's qemu-user-static registration, as /proc shows it.
    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
        flags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n\
        mask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn dir(entries: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("status"), "enabled\n").unwrap();
        std::fs::write(d.path().join("register"), "").unwrap();
        for (n, t) in entries {
            std::fs::write(d.path().join(n), t).unwrap();
        }
        d
    }

    fn arm64() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    #[test]
    fn an_f_registration_whose_magic_matches_serves() {
        let d = dir(&[("qemu-aarch64", AARCH64)]);
        check_in(d.path(), &arm64()).unwrap();
        // The same entry does not claim arm (32-bit) or s390x.
        let e = check_in(d.path(), &Platform::parse("linux/arm/v7").unwrap()).unwrap_err();
        assert!(matches!(e, Error::NotRegistered { .. }), "{e}");
        assert!(e.to_string().contains("qemu-user-static"), "{e}");
        assert!(check_in(d.path(), &Platform::parse("linux/s390x").unwrap()).is_err());
        // The host never needs one.
        check_in(d.path(), &Platform::host()).unwrap();
    }

    #[test]
    fn without_f_or_disabled_or_unmounted_it_says_so() {
        let d = dir(&[("qemu-aarch64", &AARCH64.replace("flags: PF", "flags: P"))]);
        let e = check_in(d.path(), &arm64()).unwrap_err();
        assert!(matches!(e, Error::NoFixBinary { .. }), "{e}");
        assert!(e.to_string().contains("fix-binary (F)"), "{e}");
        let d = dir(&[("qemu-aarch64", &AARCH64.replace("enabled", "disabled"))]);
        assert!(matches!(
            check_in(d.path(), &arm64()),
            Err(Error::NotRegistered { .. })
        ));
        let empty = tempfile::tempdir().unwrap();
        let e = check_in(empty.path(), &arm64()).unwrap_err();
        assert!(e.to_string().contains("is not mounted"), "{e}");
    }

    #[test]
    fn elf_headers_are_the_kernels() {
        let (h, q) = elf_header(&arm64()).unwrap();
        assert_eq!(q, "aarch64");
        assert!(parse_entry(AARCH64).claims(&h));
        // A shared object (e_type 3) is claimed too, as the mask's 0xfe says.
        let mut so = h;
        so[16] = 3;
        assert!(parse_entry(AARCH64).claims(&so));
    }
}
