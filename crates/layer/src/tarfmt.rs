//! Tar headers as Go's `archive/tar` writes them for containerd/BuildKit, and a strict
//! streaming tar reader.
//!
//! The writer reproduces the header bytes of Go's `tar.Writer` with `Format = FormatPAX`
//! (what containerd's `archive.ChangeWriter` asks for): a plain USTAR header whenever the
//! entry fits one (long names split into prefix/name where possible), otherwise a PAX `x`
//! header named `<dir>/PaxHeaders.0/<file>` followed by the main header. Numbers are
//! zero-padded octal with a NUL terminator, the checksum is six octal digits, NUL, space,
//! uname/gname are empty, PAX records are sorted by key.
//!
//! The reader is our own loop over 512-byte blocks (the `tar` crate only lends its
//! `Header` type for field access). It exists to control what a hostile stream can make us
//! do: extended headers are capped at [`MAX_META_SIZE`] before anything is allocated, PAX
//! records are parsed by their length prefix (binary xattr values may hold newlines), a
//! PAX `size` applies to exactly one entry, header-only entry types carry no data whatever
//! their size field says (as in Go, so we never desynchronise from docker/containerd),
//! and every early end of input is a [`Error::Truncated`].

use crate::error::{Error, Result};
use std::io::{self, Read};

/// Size of a tar block.
pub(crate) const BLOCK: u64 = 512;

/// Largest PAX or GNU long-name/long-link payload accepted or written (Go's limit).
pub const MAX_META_SIZE: u64 = 1 << 20;

pub(crate) const TYPE_REG: u8 = b'0';
pub(crate) const TYPE_LINK: u8 = b'1';
pub(crate) const TYPE_SYMLINK: u8 = b'2';
pub(crate) const TYPE_CHAR: u8 = b'3';
pub(crate) const TYPE_BLOCK: u8 = b'4';
pub(crate) const TYPE_DIR: u8 = b'5';
pub(crate) const TYPE_FIFO: u8 = b'6';
pub(crate) const TYPE_CONT: u8 = b'7';
const TYPE_XHEADER: u8 = b'x';
const TYPE_XGLOBAL: u8 = b'g';
const TYPE_GNU_LONGNAME: u8 = b'L';
const TYPE_GNU_LONGLINK: u8 = b'K';
const TYPE_GNU_SPARSE: u8 = b'S';

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Name/value pairs: PAX records, extended attributes.
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The fields of one entry, as written to or read from a tar stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Full name; directories end in `/` when written by us.
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    /// Permission bits plus setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Data size (0 for everything but regular files).
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    pub devmajor: u32,
    pub devminor: u32,
    /// Extended attributes, sorted by name.
    pub xattrs: Pairs,
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// Go's `fitsInOctal`: does `x` fit an `n`-byte octal field with its NUL terminator?
fn fits_octal(n: usize, x: i64) -> bool {
    let bits = (n as u32 - 1) * 3;
    x >= 0 && (n >= 22 || x < (1i64 << bits))
}

/// Go's `formatString`: copy, NUL-terminate when there is room, and never leave a trailing
/// slash in a truncated name.
fn format_string(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
    if s.len() < field.len() {
        field[s.len()] = 0;
    }
    if s.len() > field.len() && field.last() == Some(&b'/') {
        let trimmed = s[..field.len()]
            .iter()
            .rposition(|&c| c != b'/')
            .map_or(0, |p| p + 1);
        field[trimmed] = 0;
    }
}

/// Go's `formatOctal`: zero-padded octal leaving room for a NUL; 0 when it does not fit.
fn format_octal(field: &mut [u8], x: i64) {
    let x = if fits_octal(field.len(), x) { x } else { 0 };
    let digits = format!("{x:o}");
    let pad = field.len().saturating_sub(digits.len() + 1);
    let mut s = Vec::with_capacity(field.len());
    s.resize(pad, b'0');
    s.extend_from_slice(digits.as_bytes());
    format_string(field, &s);
}

/// Go's `toASCII`: drop every non-ASCII byte.
fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(u8::is_ascii).collect()
}

/// Go's `splitUSTARPath`.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= 100 || !name.is_ascii() {
        return None;
    } else if length > 156 {
        length = 156;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&c| c == b'/')?;
    let nlen = name.len() - i - 1;
    if i == 0 || nlen > 100 || nlen == 0 || i > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Go's `formatPAXRecord`: `"<len> <key>=<value>\n"`, where len counts itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut size = base + base.to_string().len();
    if size.to_string().len() + base != size {
        size = base + size.to_string().len();
    }
    out.extend_from_slice(size.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Fills in magic/version and the checksum the way Go's `block.setFormat` does, and
/// appends the block to `out`.
fn finish_block(mut h: tar::Header, out: &mut Vec<u8>) {
    let bytes = h.as_mut_bytes();
    bytes[257..263].copy_from_slice(b"ustar\0");
    bytes[263..265].copy_from_slice(b"00");
    bytes[148..156].copy_from_slice(b"        ");
    let sum: u32 = bytes.iter().map(|&b| u32::from(b)).sum();
    format_octal(&mut bytes[148..155], i64::from(sum));
    bytes[155] = b' ';
    out.extend_from_slice(bytes);
}

/// Appends the header block(s) for `m` to `out`: one USTAR block, or a PAX extended
/// header (block plus padded records) followed by the main block. The entry's data and its
/// padding are the caller's to write.
pub(crate) fn encode_header(m: &Meta, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    let mtime = m.mtime;
    let mut pax: Pairs = Vec::new();
    let mut ustar_ok = m.xattrs.is_empty();

    // Name and link name (Go's verifyString with paxPath / paxLinkpath).
    if !m.name.is_ascii() || m.name.len() > 100 {
        if split_ustar_path(&m.name).is_none() {
            ustar_ok = false;
        }
        pax.push((b"path".to_vec(), m.name.clone()));
    }
    if !m.linkname.is_ascii() || m.linkname.len() > 100 {
        ustar_ok = false;
        pax.push((b"linkpath".to_vec(), m.linkname.clone()));
    }
    // Numbers (Go's verifyNumeric / verifyTime).
    for (key, value, width) in [
        (&b"uid"[..], m.uid, 8usize),
        (&b"gid"[..], m.gid, 8),
        (&b"size"[..], m.size, 12),
    ] {
        let fits = i64::try_from(value).is_ok_and(|v| fits_octal(width, v));
        if !fits {
            ustar_ok = false;
            pax.push((key.to_vec(), value.to_string().into_bytes()));
        }
    }
    if !fits_octal(12, mtime) {
        ustar_ok = false;
        pax.push((b"mtime".to_vec(), mtime.to_string().into_bytes()));
    }
    if !fits_octal(8, i64::from(m.devmajor)) || !fits_octal(8, i64::from(m.devminor)) {
        return Err("device number too large for a tar header".into());
    }
    for (k, v) in &m.xattrs {
        let mut key = XATTR_PREFIX.to_vec();
        key.extend_from_slice(k);
        pax.push((key, v.clone()));
    }

    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(-1);
    let fill_main = |h: &mut tar::Header, name: &[u8], link: &[u8]| {
        let b = h.as_mut_bytes();
        format_string(&mut b[0..100], name);
        format_octal(&mut b[100..108], i64::from(m.mode));
        format_octal(&mut b[108..116], as_i64(m.uid));
        format_octal(&mut b[116..124], as_i64(m.gid));
        format_octal(&mut b[124..136], as_i64(m.size));
        format_octal(&mut b[136..148], mtime);
        b[156] = m.typeflag;
        format_string(&mut b[157..257], link);
        // uname/gname stay empty.
        format_octal(&mut b[329..337], i64::from(m.devmajor));
        format_octal(&mut b[337..345], i64::from(m.devminor));
    };

    if ustar_ok {
        let mut h = tar::Header::new_ustar();
        match split_ustar_path(&m.name) {
            Some((prefix, suffix)) => {
                fill_main(&mut h, suffix, &m.linkname);
                format_string(&mut h.as_mut_bytes()[345..500], prefix);
            }
            None => fill_main(&mut h, &m.name, &m.linkname),
        }
        finish_block(h, out);
        return Ok(());
    }

    // PAX: the extended header first.
    pax.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = Vec::new();
    for (k, v) in &pax {
        pax_record(&mut data, k, v);
    }
    if data.len() as u64 > MAX_META_SIZE {
        return Err(format!(
            "extended header of {} bytes exceeds the {} byte limit of Go readers",
            data.len(),
            MAX_META_SIZE
        ));
    }
    let (dir, file) = match m.name.iter().rposition(|&c| c == b'/') {
        Some(i) => (&m.name[..=i], &m.name[i + 1..]),
        None => (&b""[..], &m.name[..]),
    };
    // path.Join(dir, "PaxHeaders.0", file) on already clean names.
    let mut xname = dir.to_vec();
    xname.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        xname.push(b'/');
        xname.extend_from_slice(file);
    }
    let mut xname = to_ascii(&xname);
    xname.truncate(100);
    while xname.last() == Some(&b'/') {
        xname.pop();
    }
    let mut xh = tar::Header::new_ustar();
    {
        let b = xh.as_mut_bytes();
        b[156] = TYPE_XHEADER;
        format_string(&mut b[0..100], &xname);
        format_octal(&mut b[100..108], 0);
        format_octal(&mut b[108..116], 0);
        format_octal(&mut b[116..124], 0);
        format_octal(&mut b[124..136], data.len() as i64);
        format_octal(&mut b[136..148], 0);
    }
    finish_block(xh, out);
    out.extend_from_slice(&data);
    out.resize(out.len() + padding(data.len() as u64) as usize, 0);

    let mut h = tar::Header::new_ustar();
    fill_main(&mut h, &to_ascii(&m.name), &to_ascii(&m.linkname));
    finish_block(h, out);
    Ok(())
}

/// Bytes of zero padding after `size` bytes of data.
pub(crate) fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// An entry read from a stream: its fields plus where its header started.
#[derive(Debug)]
pub(crate) struct Entry {
    pub meta: Meta,
    pub mtime_nsec: u32,
    pub offset: u64,
}

/// Strict streaming tar reader, see the module docs.
pub(crate) struct Reader<R> {
    r: R,
    offset: u64,
    remaining: u64,
    padding: u64,
    ended: bool,
}

/// Go's `parseNumeric`: octal (spaces/NULs trimmed, empty = 0) or base-256.
fn parse_numeric(field: &[u8]) -> Option<i64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        let inv: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in field.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return None;
            }
            x = (x << 8) | u64::from(c);
        }
        if x >> 63 > 0 {
            return None;
        }
        let x = x as i64;
        return Some(if inv == 0xff { !x } else { x });
    }
    let is_pad = |c: &u8| *c == b' ' || *c == 0;
    let start = field.iter().position(|c| !is_pad(c))?;
    let end = field
        .iter()
        .rposition(|c| !is_pad(c))
        .map_or(start, |e| e + 1);
    let digits = &field[start..end];
    if digits.is_empty() {
        return Some(0);
    }
    let mut x: i64 = 0;
    for &c in digits {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        x = x.checked_mul(8)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(x)
}

/// Like [`parse_numeric`] but an all-padding field is 0 rather than `None`.
fn numeric(field: &[u8]) -> Option<i64> {
    if field.iter().all(|&c| c == 0 || c == b' ') {
        return Some(0);
    }
    parse_numeric(field)
}

fn parse_decimal_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// PAX time: `[-]seconds[.fraction]`.
fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let (neg, v) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    let (secs, frac) = match v.iter().position(|&c| c == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    let secs = i64::try_from(parse_decimal_u64(secs)?).ok()?;
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut nsec: u32 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |&c| u32::from(c - b'0'));
    }
    if neg {
        // -1.5 means 1.5 s before the epoch: seconds -2, nanoseconds 5e8.
        if nsec > 0 {
            Some((-secs - 1, 1_000_000_000 - nsec))
        } else {
            Some((-secs, 0))
        }
    } else {
        Some((secs, nsec))
    }
}

/// Parses PAX records by their length prefix.
fn parse_pax(data: &[u8]) -> std::result::Result<Pairs, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .take(21)
            .position(|&c| c == b' ')
            .ok_or("PAX record without a length")?;
        let len = parse_decimal_u64(&rest[..sp]).ok_or("bad PAX record length")?;
        let len = usize::try_from(len).map_err(|_| "bad PAX record length")?;
        if len <= sp + 1 || len > rest.len() {
            return Err("PAX record length out of range".into());
        }
        let rec = &rest[..len];
        if rec[len - 1] != b'\n' {
            return Err("PAX record not terminated by a newline".into());
        }
        let kv = &rec[sp + 1..len - 1];
        let eq = kv
            .iter()
            .position(|&c| c == b'=')
            .ok_or("PAX record without '='")?;
        let (key, value) = (&kv[..eq], &kv[eq + 1..]);
        if key.is_empty() || key.contains(&0) {
            return Err("PAX record with an empty or NUL-containing key".into());
        }
        if matches!(key, b"path" | b"linkpath" | b"uname" | b"gname") && value.contains(&0) {
            return Err(format!(
                "PAX record {} contains a NUL byte",
                String::from_utf8_lossy(key)
            ));
        }
        out.push((key.to_vec(), value.to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

fn until_nul(v: &[u8]) -> &[u8] {
    match v.iter().position(|&c| c == 0) {
        Some(i) => &v[..i],
        None => v,
    }
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(r: R) -> Self {
        Reader {
            r,
            offset: 0,
            remaining: 0,
            padding: 0,
            ended: false,
        }
    }

    fn malformed(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::Malformed {
            offset,
            reason: reason.into(),
        }
    }

    /// Reads until `buf` is full or the input ends; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::stream("read layer stream", e)),
            }
        }
        self.offset += n as u64;
        Ok(n)
    }

    /// Discards exactly `n` bytes.
    fn skip(&mut self, mut n: u64, what: &'static str) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            let got = self.fill(&mut buf[..want])?;
            if got < want {
                return Err(Error::Truncated {
                    what,
                    offset: self.offset,
                });
            }
            n -= got as u64;
        }
        Ok(())
    }

    /// Skips whatever is left of the current entry's data and padding.
    fn skip_rest(&mut self) -> Result<()> {
        let n = self.remaining;
        self.remaining = 0;
        self.skip(n, "entry data")?;
        let p = self.padding;
        self.padding = 0;
        self.skip(p, "entry padding")
    }

    /// Reads some of the current entry's data; 0 only once all of it has been read.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = self.remaining.min(buf.len() as u64) as usize;
        let n = loop {
            match self.r.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::stream("read layer stream", e)),
            }
        };
        if n == 0 {
            return Err(Error::Truncated {
                what: "entry data",
                offset: self.offset,
            });
        }
        self.offset += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Reads the next entry header (after skipping what is left of the previous entry).
    /// `None` at the end of the archive.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.ended {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pax: Option<Pairs> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pending = false;
        loop {
            let offset = self.offset;
            let mut block = [0u8; BLOCK as usize];
            let n = self.fill(&mut block)?;
            if n == 0 {
                if pending {
                    return Err(Error::Truncated {
                        what: "header after an extended header",
                        offset,
                    });
                }
                // A clean end without the end-of-archive blocks, accepted like Go does.
                self.ended = true;
                return Ok(None);
            }
            if n < block.len() {
                return Err(Error::Truncated {
                    what: "header block",
                    offset: self.offset,
                });
            }
            if block.iter().all(|&c| c == 0) {
                if pending {
                    return Err(self.malformed(offset, "end of archive after an extended header"));
                }
                let n = self.fill(&mut block)?;
                if n != 0 && n < block.len() {
                    return Err(Error::Truncated {
                        what: "end-of-archive block",
                        offset: self.offset,
                    });
                }
                if n != 0 && block.iter().any(|&c| c != 0) {
                    return Err(self.malformed(offset, "zero block followed by a non-zero block"));
                }
                self.ended = true;
                return Ok(None);
            }
            self.check_checksum(&block, offset)?;
            let typeflag = block[156];
            let header_size = numeric(&block[124..136])
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| self.malformed(offset, "bad size field"))?;

            match typeflag {
                TYPE_XHEADER | TYPE_XGLOBAL | TYPE_GNU_LONGNAME | TYPE_GNU_LONGLINK => {
                    if header_size > MAX_META_SIZE {
                        return Err(self.malformed(
                            offset,
                            format!(
                                "extended header of {header_size} bytes exceeds the limit of {MAX_META_SIZE}"
                            ),
                        ));
                    }
                    let mut data = vec![0u8; header_size as usize];
                    if self.fill(&mut data)? < data.len() {
                        return Err(Error::Truncated {
                            what: "extended header data",
                            offset: self.offset,
                        });
                    }
                    self.skip(padding(header_size), "extended header padding")?;
                    match typeflag {
                        TYPE_XHEADER => {
                            let recs = parse_pax(&data).map_err(|e| self.malformed(offset, e))?;
                            pax = Some(recs);
                            pending = true;
                        }
                        TYPE_XGLOBAL => {
                            parse_pax(&data).map_err(|e| self.malformed(offset, e))?;
                        }
                        TYPE_GNU_LONGNAME => {
                            long_name = Some(until_nul(&data).to_vec());
                            pending = true;
                        }
                        _ => {
                            long_link = Some(until_nul(&data).to_vec());
                            pending = true;
                        }
                    }
                    continue;
                }
                TYPE_GNU_SPARSE => {
                    return Err(self.malformed(offset, "GNU sparse entries are not supported"));
                }
                _ => {}
            }
            return self
                .build_entry(&block, offset, header_size, pax, long_name, long_link)
                .map(Some);
        }
    }

    fn check_checksum(&self, block: &[u8; BLOCK as usize], offset: u64) -> Result<()> {
        let stored = parse_numeric(&block[148..156])
            .ok_or_else(|| self.malformed(offset, "bad header checksum field"))?;
        let mut unsigned: i64 = 0;
        let mut signed: i64 = 0;
        for (i, &c) in block.iter().enumerate() {
            let c = if (148..156).contains(&i) { b' ' } else { c };
            unsigned += i64::from(c);
            signed += i64::from(c as i8);
        }
        if stored != unsigned && stored != signed {
            return Err(self.malformed(offset, "header checksum mismatch"));
        }
        Ok(())
    }

    fn build_entry(
        &mut self,
        block: &[u8; BLOCK as usize],
        offset: u64,
        header_size: u64,
        pax: Option<Pairs>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Entry> {
        let h = tar::Header::from_byte_slice(block);
        let bad = |what: &str| Error::Malformed {
            offset,
            reason: format!("bad {what} field"),
        };
        let mut m = Meta {
            name: long_name.unwrap_or_else(|| h.path_bytes().into_owned()),
            typeflag: block[156],
            linkname: long_link.unwrap_or_else(|| until_nul(&block[157..257]).to_vec()),
            mode: numeric(&block[100..108])
                .and_then(|v| u32::try_from(v & 0o7777).ok())
                .ok_or_else(|| bad("mode"))?,
            uid: numeric(&block[108..116])
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| bad("uid"))?,
            gid: numeric(&block[116..124])
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| bad("gid"))?,
            size: header_size,
            mtime: numeric(&block[136..148]).ok_or_else(|| bad("mtime"))?,
            devmajor: 0,
            devminor: 0,
            xattrs: Vec::new(),
        };
        let mut mtime_nsec = 0;
        if h.as_ustar().is_some() || h.as_gnu().is_some() {
            m.devmajor = numeric(&block[329..337])
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad("devmajor"))?;
            m.devminor = numeric(&block[337..345])
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad("devminor"))?;
        }
        for (key, value) in pax.unwrap_or_default() {
            let bad_pax = || Error::Malformed {
                offset,
                reason: format!("bad PAX record {}", escape::bytes(&key)),
            };
            match key.as_slice() {
                b"path" => m.name = value,
                b"linkpath" => m.linkname = value,
                b"size" => m.size = parse_decimal_u64(&value).ok_or_else(bad_pax)?,
                b"uid" => m.uid = parse_decimal_u64(&value).ok_or_else(bad_pax)?,
                b"gid" => m.gid = parse_decimal_u64(&value).ok_or_else(bad_pax)?,
                b"mtime" => (m.mtime, mtime_nsec) = parse_pax_time(&value).ok_or_else(bad_pax)?,
                k if k.starts_with(b"GNU.sparse.") => {
                    return Err(self.malformed(offset, "GNU sparse entries are not supported"));
                }
                k if k.starts_with(XATTR_PREFIX) => {
                    let name = k[XATTR_PREFIX.len()..].to_vec();
                    m.xattrs.retain(|(n, _)| *n != name);
                    m.xattrs.push((name, value));
                }
                _ => {}
            }
        }
        if m.typeflag == 0 {
            m.typeflag = if m.name.ends_with(b"/") {
                TYPE_DIR
            } else {
                TYPE_REG
            };
        }
        // Header-only types carry no data whatever their size says (Go's reader agrees).
        let data = match m.typeflag {
            TYPE_LINK | TYPE_SYMLINK | TYPE_CHAR | TYPE_BLOCK | TYPE_DIR | TYPE_FIFO => 0,
            _ => m.size,
        };
        if data > i64::MAX as u64 {
            return Err(self.malformed(offset, "entry size out of range"));
        }
        self.remaining = data;
        self.padding = padding(data);
        Ok(Entry {
            meta: m,
            mtime_nsec,
            offset,
        })
    }

    /// After the end of the archive: consumes the rest of the input (so a digest over the
    /// whole stream is complete) and returns the inner reader.
    pub(crate) fn finish(mut self) -> Result<R> {
        io::copy(&mut self.r, &mut io::sink())
            .map_err(|e| Error::stream("read layer stream", e))?;
        Ok(self.r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_fields_look_like_go() {
        let mut f = [0xffu8; 8];
        format_octal(&mut f, 0o644);
        assert_eq!(&f, b"0000644\0");
        let mut f = [0xffu8; 12];
        format_octal(&mut f, 5);
        assert_eq!(&f, b"00000000005\0");
        let mut f = [0u8; 8];
        format_octal(&mut f, 1 << 21);
        assert_eq!(&f, b"0000000\0");
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"x");
        assert_eq!(v, b"9 path=x\n");
        let mut v = Vec::new();
        let val = vec![b'a'; 92];
        pax_record(&mut v, b"path", &val);
        let len: usize = std::str::from_utf8(&v[..v.iter().position(|&c| c == b' ').unwrap()])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, v.len());
        assert_eq!(parse_pax(&v).unwrap(), vec![(b"path".to_vec(), val)]);
    }

    #[test]
    fn pax_values_may_hold_newlines() {
        let mut v = Vec::new();
        pax_record(&mut v, b"SCHILY.xattr.user.x", b"a\nb=c\n");
        pax_record(&mut v, b"path", b"p");
        let recs = parse_pax(&v).unwrap();
        assert_eq!(recs[0].1, b"a\nb=c\n");
        assert_eq!(recs[1].1, b"p");
    }

    #[test]
    fn numeric_parsing() {
        assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
        assert_eq!(parse_numeric(b"   644 \0"), Some(0o644));
        assert_eq!(parse_numeric(b"0009\0"), None);
        assert_eq!(numeric(b"\0\0\0\0"), Some(0));
        // base-256, positive and negative
        assert_eq!(parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1]), Some(1));
        assert_eq!(parse_numeric(&[0xff; 8]), Some(-1));
        assert_eq!(
            parse_numeric(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(parse_pax_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time(b"12.000000001"), Some((12, 1)));
        assert_eq!(parse_pax_time(b"x"), None);
    }

    #[test]
    fn ustar_split_and_pax_header() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90)).into_bytes();
        let m = Meta {
            name: long.clone(),
            typeflag: TYPE_REG,
            mode: 0o644,
            ..Meta::default()
        };
        let mut out = Vec::new();
        encode_header(&m, &mut out).unwrap();
        assert_eq!(out.len(), 512, "splittable name stays USTAR");
        assert_eq!(&out[345..465], "d".repeat(120).as_bytes());
        assert_eq!(&out[148..156][6..], b"\0 ");

        let m = Meta {
            name: "x".repeat(300).into_bytes(),
            typeflag: TYPE_REG,
            xattrs: vec![(b"user.a".to_vec(), b"1".to_vec())],
            ..Meta::default()
        };
        let mut out = Vec::new();
        encode_header(&m, &mut out).unwrap();
        assert_eq!(out[156], b'x');
        assert!(out[..100].starts_with(b"PaxHeaders.0/xxx"));
        let mut r = Reader::new(&out[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.meta.name, m.name);
        assert_eq!(e.meta.xattrs, m.xattrs);
    }
}
