//! Where the manifest writer keeps its columns while a large change list
//! goes by (`ferry_protocol::manifest::ManifestWriter`): files in the
//! bundle's temporary directory, unlinked as soon as they are opened, so
//! that neither a finished export nor a crash leaves one behind.

use ferry_protocol::manifest::Spill;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Columns as unlinked files in a directory.
pub(super) struct FileSpill {
    dir: PathBuf,
    made: u32,
}

impl FileSpill {
    /// Columns in `dir` (the bundle being written).
    pub(super) fn new(dir: &Path) -> FileSpill {
        FileSpill {
            dir: dir.to_path_buf(),
            made: 0,
        }
    }
}

impl Spill for FileSpill {
    type Writer = BufWriter<File>;
    type Reader = BufReader<File>;

    fn create(&mut self) -> io::Result<BufWriter<File>> {
        let path = self.dir.join(format!(".manifest-column-{}", self.made));
        self.made += 1;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        std::fs::remove_file(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(BufWriter::with_capacity(1 << 16, file))
    }

    fn read_back(&mut self, w: BufWriter<File>) -> io::Result<BufReader<File>> {
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(BufReader::with_capacity(1 << 16, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_column_reads_back_what_was_written_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = FileSpill::new(dir.path());
        let mut a = spill.create().unwrap();
        let mut b = spill.create().unwrap();
        a.write_all(&[1u8; 100_000]).unwrap();
        b.write_all(b"second").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut back = Vec::new();
        spill.read_back(a).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, vec![1u8; 100_000]);
        back.clear();
        spill.read_back(b).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"second");
    }
}
