//! The verified, resumable download into a source's cache.

use super::client::{Attempt, Client};
use super::error::UpstreamError;
use ferry_formats::rpm::{Checksum, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What upstream's metadata promises about a file.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Its size in bytes.
    pub size: Option<u64>,
    /// Its checksum (sha1, sha256 or sha512).
    pub checksum: Option<Checksum>,
}

impl Expect {
    /// Checks bytes already in memory (fetched with [`Client::get_small`]).
    pub fn check_bytes(&self, url: &str, bytes: &[u8]) -> Result<(), UpstreamError> {
        let mut h = self.checksum.as_ref().map(|c| Hasher::new(c.kind));
        if let Some(h) = &mut h {
            h.update(bytes);
        }
        self.check(url, bytes.len() as u64, h)
    }

    fn check(&self, url: &str, got: u64, hasher: Option<Hasher>) -> Result<(), UpstreamError> {
        if let Some(expected) = self.size.filter(|&s| s != got) {
            return Err(UpstreamError::SizeMismatch {
                url: url.to_string(),
                expected,
                got,
                more: false,
            });
        }
        if let (Some(want), Some(h)) = (&self.checksum, hasher) {
            let hex = h.finish();
            if hex != want.hex {
                return Err(UpstreamError::ChecksumMismatch {
                    url: url.to_string(),
                    expected: want.to_string(),
                    got: format!("{}:{hex}", want.kind),
                });
            }
        }
        Ok(())
    }
}

/// `<dest>.part`.
fn part_of(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

fn cache_err(path: &Path) -> impl FnOnce(std::io::Error) -> UpstreamError + '_ {
    move |source| UpstreamError::Cache {
        path: path.to_path_buf(),
        source,
    }
}

impl Client {
    /// Downloads `url` to `dest` (whose directory must exist), checked
    /// against `expect`, and returns its size.
    ///
    /// The bytes go to `dest.part` first. When a connection breaks, the next
    /// attempt asks for the rest with `Range` (with `If-Range`, when upstream
    /// gave an `ETag`); a `.part` an interrupted export left is resumed the
    /// same way when a checksum is expected (and discarded when none is, as
    /// the content may have changed since). Once whole, the `.part` file is
    /// checked (size, then checksum) and renamed to `dest`, so `dest` is
    /// always whole and right. On a mismatch the `.part` file is removed and
    /// [`UpstreamError::ChecksumMismatch`] or [`UpstreamError::SizeMismatch`]
    /// names the URL, what was expected and what came.
    pub fn download(&self, url: &str, dest: &Path, expect: &Expect) -> Result<u64, UpstreamError> {
        self.download_with(url, dest, expect, &[])
    }

    /// [`Client::download`] sending `headers` with every request (such as a
    /// registry's bearer token, which replaces the source's credentials).
    pub fn download_with(
        &self,
        url: &str,
        dest: &Path,
        expect: &Expect,
        headers: &[(&str, &str)],
    ) -> Result<u64, UpstreamError> {
        let part = part_of(dest);
        if expect.checksum.is_none() {
            let _ = std::fs::remove_file(&part);
        }
        let mut etag: Option<String> = None;
        self.retrying(|| self.attempt(url, &part, expect, headers, &mut etag))?;
        let (got, hasher) = hash_file(&part, expect)?;
        if let Err(e) = expect.check(url, got, hasher) {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        std::fs::rename(&part, dest).map_err(cache_err(dest))?;
        Ok(got)
    }

    /// [`Client::download`], then opens `dest` for reading and removes it
    /// (the open file stays readable): for an opener whose bytes need not
    /// stay in the cache once read.
    pub fn open_downloaded(
        &self,
        url: &str,
        dest: &Path,
        expect: &Expect,
    ) -> Result<Box<dyn Read>, UpstreamError> {
        if !dest.is_file() {
            self.download(url, dest, expect)?;
        }
        let f = std::fs::File::open(dest).map_err(cache_err(dest))?;
        let _ = std::fs::remove_file(dest);
        Ok(Box::new(f))
    }

    /// One GET appending to `part`; `Transient` when the connection broke.
    fn attempt(
        &self,
        url: &str,
        part: &Path,
        expect: &Expect,
        extra: &[(&str, &str)],
        etag: &mut Option<String>,
    ) -> Attempt<()> {
        let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        if expect.size.is_some_and(|s| have > s) {
            let _ = std::fs::remove_file(part);
            have = 0;
        }
        let range = format!("bytes={have}-");
        let mut headers = extra.to_vec();
        if have > 0 {
            headers.push(("Range", range.as_str()));
            if let Some(t) = etag.as_deref() {
                headers.push(("If-Range", t));
            }
        }
        let resp = match self.send(url, &headers) {
            Ok(r) => r,
            Err(Attempt::Done(Err(UpstreamError::Status { status: 416, .. })))
                if have > 0 && expect.size == Some(have) =>
            {
                return Attempt::Done(Ok(())); // the .part is whole already
            }
            Err(Attempt::Done(Err(e @ UpstreamError::Status { status: 416, .. }))) => {
                let _ = std::fs::remove_file(part);
                return Attempt::Transient(e);
            }
            Err(a) => return a,
        };
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if resp.status().as_u16() == 206 {
            let cr = header("content-range").unwrap_or_default();
            if !cr.starts_with(&format!("bytes {have}-")) {
                let _ = std::fs::remove_file(part);
                return Attempt::Transient(UpstreamError::BadRange {
                    url: url.to_string(),
                    asked: have,
                    answered: cr,
                });
            }
        } else {
            have = 0; // a whole answer: start over
            *etag = header("etag").filter(|t| !t.starts_with("W/"));
        }
        self.receive(url, part, have, resp, expect)
    }

    /// Appends `resp`'s body to `part` (which holds `have` bytes, or is
    /// started over when `have` is 0).
    fn receive(
        &self,
        url: &str,
        part: &Path,
        have: u64,
        resp: ureq::http::Response<ureq::Body>,
        expect: &Expect,
    ) -> Attempt<()> {
        let length: Option<u64> = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let file = if have > 0 {
            std::fs::OpenOptions::new().append(true).open(part)
        } else {
            std::fs::File::create(part)
        };
        let mut file = match file {
            Ok(f) => std::io::BufWriter::new(f),
            Err(e) => return Attempt::Done(Err(cache_err(part)(e))),
        };
        let body = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let got = match copy_bounded(body, &mut file, have, expect.size) {
            Ok(n) => n,
            Err(Copy::Write(e)) => return Attempt::Done(Err(cache_err(part)(e))),
            Err(Copy::TooMuch(got)) => {
                drop(file);
                let _ = std::fs::remove_file(part);
                return Attempt::Done(Err(UpstreamError::SizeMismatch {
                    url: url.to_string(),
                    expected: expect.size.unwrap_or(0),
                    got,
                    more: true,
                }));
            }
            Err(Copy::Read(e, n)) => {
                let _ = file.flush();
                return Attempt::Transient(self.connection(
                    url,
                    format!("the download stopped after {} bytes: {e}", have + n),
                ));
            }
        };
        if let Err(e) = file.flush() {
            return Attempt::Done(Err(cache_err(part)(e)));
        }
        if length.is_some_and(|l| got < l) {
            return Attempt::Transient(self.connection(
                url,
                format!(
                    "the connection ended after {} of {} bytes",
                    have + got,
                    have + length.unwrap_or(0)
                ),
            ));
        }
        Attempt::Done(Ok(()))
    }
}

/// Removes the downloads in `dir` (whole files and `.part` files) whose
/// name `wanted` does not accept, so a cache holds only what the current
/// selection may still need (an interrupted download of something no longer
/// selected would otherwise stay forever). Subdirectories are left alone.
pub fn prune_downloads(dir: &Path, wanted: impl Fn(&str) -> bool) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let key = name.strip_suffix(".part").unwrap_or(&name);
        if e.file_type().is_ok_and(|t| t.is_file()) && !wanted(key) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Why [`copy_bounded`] stopped.
enum Copy {
    /// Reading failed after this many bytes.
    Read(std::io::Error, u64),
    /// Writing failed.
    Write(std::io::Error),
    /// More than the expected size arrived (this many bytes in all, at least).
    TooMuch(u64),
}

/// Copies `body` to `out`; `have` bytes are already there, and at most
/// `size` may be in all. Returns the bytes copied.
fn copy_bounded(
    mut body: impl Read,
    out: &mut impl Write,
    have: u64,
    size: Option<u64>,
) -> Result<u64, Copy> {
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e, got)),
        };
        got += n as u64;
        if size.is_some_and(|s| have + got > s) {
            return Err(Copy::TooMuch(have + got));
        }
        out.write_all(&buf[..n]).map_err(Copy::Write)?;
    }
}

/// The size of `path` and its hash of the type `expect` wants (none when it
/// wants no checksum).
fn hash_file(path: &Path, expect: &Expect) -> Result<(u64, Option<Hasher>), UpstreamError> {
    let mut f = std::fs::File::open(path).map_err(cache_err(path))?;
    let mut h = expect.checksum.as_ref().map(|c| Hasher::new(c.kind));
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(cache_err(path))?;
        if k == 0 {
            return Ok((n, h));
        }
        n += k as u64;
        if let Some(h) = &mut h {
            h.update(&buf[..k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_checked_for_size_then_checksum() {
        let c = Checksum::new("sha256", &"0".repeat(64)).unwrap();
        let good = Expect {
            size: Some(5),
            checksum: Some(Checksum::new("sha256", &c.of(b"hello")).unwrap()),
        };
        good.check_bytes("u", b"hello").unwrap();
        assert!(matches!(
            good.check_bytes("u", b"hell"),
            Err(UpstreamError::SizeMismatch {
                expected: 5,
                got: 4,
                ..
            })
        ));
        let e = good.check_bytes("http://h/f", b"hellO").unwrap_err();
        match &e {
            UpstreamError::ChecksumMismatch { url, expected, got } => {
                assert_eq!(url, "http://h/f");
                assert_eq!(expected, &format!("sha256:{}", c.of(b"hello")));
                assert_eq!(got, &format!("sha256:{}", c.of(b"hellO")));
            }
            other => panic!("{other}"),
        }
        assert!(e
            .to_string()
            .contains("checksum mismatch: expected sha256:"));
        Expect::default().check_bytes("u", b"anything").unwrap();
    }

    #[test]
    fn copying_stops_past_the_expected_size() {
        let mut out = Vec::new();
        assert!(matches!(
            copy_bounded(&b"123456"[..], &mut out, 2, Some(7)),
            Err(Copy::TooMuch(8))
        ));
        out.clear();
        assert_eq!(
            copy_bounded(&b"12345"[..], &mut out, 2, Some(7)).ok(),
            Some(5)
        );
        assert_eq!(part_of(Path::new("/c/abc")), Path::new("/c/abc.part"));
    }
}
