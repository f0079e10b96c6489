//! [`Tee`]: what is read through it is copied into a writer (an ingest), for readers that
//! check a stream (a layer's tar scan) while the store keeps it.

use std::io::{self, Read, Write};

/// Copies everything read through it into a writer, keeping the writer's error apart so
/// that a full disk is not reported as a broken input: the read fails with "writing to the
/// store failed" and [`Tee::take_write_error`] gives the cause.
pub struct Tee<'w, R, W> {
    inner: R,
    out: &'w mut W,
    write_error: Option<io::Error>,
}

impl<'w, R, W> Tee<'w, R, W> {
    pub fn new(inner: R, out: &'w mut W) -> Tee<'w, R, W> {
        Tee {
            inner,
            out,
            write_error: None,
        }
    }

    /// The writer's error, when a read failed because the copy could not be written.
    pub fn take_write_error(&mut self) -> Option<io::Error> {
        self.write_error.take()
    }
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let kind = e.kind();
            self.write_error = Some(e);
            return Err(io::Error::new(kind, "writing to the store failed"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn copies_and_keeps_the_write_error_apart() {
        let mut out = Vec::new();
        let mut t = Tee::new(&b"abc"[..], &mut out);
        let mut s = String::new();
        t.read_to_string(&mut s).unwrap();
        assert!(t.take_write_error().is_none());
        assert_eq!((s.as_str(), out.as_slice()), ("abc", &b"abc"[..]));

        let mut full = Full;
        let mut t = Tee::new(&b"abc"[..], &mut full);
        let e = t.read(&mut [0; 8]).unwrap_err();
        assert_eq!(e.to_string(), "writing to the store failed");
        assert_eq!(
            t.take_write_error().unwrap().kind(),
            io::ErrorKind::StorageFull
        );
    }
}
