//! `global/pg_control`: the cluster's system identifier, which every WAL segment's header
//! repeats, so an archive can refuse segments of another cluster.
//!
//! The struct (`ControlFileData`, `src/include/catalog/pg_control.h`) begins with
//! `uint64 system_identifier` and `uint32 pg_control_version` at offset 8 in every release;
//! the rest changes between releases. It ends with a CRC-32C of the bytes before it. Where
//! that CRC sits depends on the release, so it is found, not looked up: the first 4-aligned
//! offset below 512 bytes (PostgreSQL keeps the struct within one 512-byte sector) where
//! the CRC of the bytes before equals the stored value. A damaged file matches nowhere
//! (the odds of a chance match are about 1 in 30 million).

use std::io::Read;
use std::path::Path;

use super::crc32c::crc32c;
use super::error::WalError;

/// Where PostgreSQL keeps the control file in a data directory.
const CONTROL_PATH: &str = "global/pg_control";
/// The struct, and its CRC, stay within the first 512 bytes (`PG_CONTROL_MAX_SAFE_SIZE`).
const MAX_SAFE_SIZE: usize = 512;
/// The file is 8 KiB (`PG_CONTROL_FILE_SIZE`); more is not read.
const FILE_SIZE: u64 = 8192;

/// The fields of `pg_control` an archive checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlFile {
    /// The cluster's identity, made by `initdb`; every WAL segment header repeats it.
    pub system_identifier: u64,
    /// The format of `pg_control` itself (1300 for PostgreSQL 13 to 16, 1700 for 17).
    pub pg_control_version: u32,
    /// Where the CRC-32C was found: the size of the struct before it (288 in PostgreSQL 15).
    pub crc_offset: usize,
    /// `DBState`: [`ControlFile::IN_PRODUCTION`] for a running primary; a standby's says
    /// in archive recovery.
    pub state: u32,
}

impl ControlFile {
    /// `DB_IN_PRODUCTION` (PostgreSQL 9.0 and later).
    pub const IN_PRODUCTION: u32 = 6;

    /// `state` in PostgreSQL's words.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            0 => "starting up",
            1 => "shut down",
            2 => "shut down in recovery",
            3 => "shutting down",
            4 => "in crash recovery",
            5 => "in archive recovery",
            6 => "in production",
            _ => "in an unknown state",
        }
    }

    /// Reads `global/pg_control` of the data directory `data_dir`.
    pub fn read(data_dir: &Path) -> Result<ControlFile, WalError> {
        let path = data_dir.join(CONTROL_PATH);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(FILE_SIZE).read_to_end(&mut bytes))
            .map_err(|source| WalError::Io {
                path: path.clone(),
                source,
            })?;
        parse(&bytes).map_err(|reason| WalError::Control { path, reason })
    }

    /// Reads the fields from the bytes of a control file (its error names the file
    /// `global/pg_control`).
    pub fn parse(bytes: &[u8]) -> Result<ControlFile, WalError> {
        parse(bytes).map_err(|reason| WalError::Control {
            path: CONTROL_PATH.into(),
            reason,
        })
    }
}

/// [`ControlFile::parse`], with the reason alone as its error.
fn parse(bytes: &[u8]) -> Result<ControlFile, String> {
    if bytes.len() < 20 {
        return Err(format!(
            "{} bytes, too short for a PostgreSQL control file (8192 bytes)",
            bytes.len()
        ));
    }
    let head = &bytes[..bytes.len().min(MAX_SAFE_SIZE)];
    let crc_offset = (12..head.len().saturating_sub(3))
        .step_by(4)
        .find(|&o| {
            let stored = u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
            crc32c(&head[..o]) == stored
        })
        .ok_or_else(|| {
            "its CRC-32C matches none of its contents: the file is damaged, or is not the \
             control file of a PostgreSQL cluster (9.6 or later, on a little-endian machine)"
                .to_string()
        })?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[..8]);
    Ok(ControlFile {
        system_identifier: u64::from_le_bytes(id),
        pg_control_version: u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        crc_offset,
        state: if crc_offset >= 20 {
            u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]])
        } else {
            u32::MAX
        },
    })
}

/// The system identifier of the cluster in `data_dir`, from its `global/pg_control`
/// (checked with its CRC).
pub fn system_identifier(data_dir: &Path) -> Result<u64, WalError> {
    ControlFile::read(data_dir).map(|c| c.system_identifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control file laid out as PostgreSQL 15 does: id, version, filler, CRC at 288.
    pub(crate) fn control_bytes(id: u64, version: u32) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[..8].copy_from_slice(&id.to_le_bytes());
        b[8..12].copy_from_slice(&version.to_le_bytes());
        for (i, x) in b[12..288].iter_mut().enumerate() {
            *x = (i * 7) as u8;
        }
        b[16..20].copy_from_slice(&ControlFile::IN_PRODUCTION.to_le_bytes());
        let crc = crc32c(&b[..288]);
        b[288..292].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn reads_the_identifier_and_version_behind_a_good_crc() {
        let c = parse(&control_bytes(7716484702566127851, 1300)).unwrap();
        assert_eq!(c.system_identifier, 7716484702566127851);
        assert_eq!(c.pg_control_version, 1300);
        assert_eq!(c.crc_offset, 288);
        assert_eq!(c.state, ControlFile::IN_PRODUCTION);
        assert_eq!(c.state_name(), "in production");
    }

    #[test]
    fn refuses_a_damaged_file_and_one_too_short() {
        let mut b = control_bytes(42, 1300);
        b[3] ^= 1; // the identifier itself
        let e = parse(&b).unwrap_err();
        assert!(e.contains("CRC-32C matches none"), "{e}");
        let mut b = control_bytes(42, 1300);
        b[200] ^= 0x80;
        assert!(parse(&b).is_err());
        assert!(parse(&[0u8; 15]).unwrap_err().contains("too short"));
        // A CRC beyond the first 512 bytes is not looked for.
        assert!(parse(&[0u8; 8192]).is_err(), "all zeros");
        let e = ControlFile::parse(&[0u8; 8]).unwrap_err().to_string();
        assert!(
            e.starts_with("global/pg_control: 8 bytes, too short"),
            "{e}"
        );
    }

    #[test]
    fn read_names_the_file_in_its_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = system_identifier(dir.path()).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "cannot read {}",
                dir.path().join(CONTROL_PATH).display()
            )),
            "{e}"
        );
        std::fs::create_dir(dir.path().join("global")).unwrap();
        std::fs::write(dir.path().join(CONTROL_PATH), b"not a control file at all").unwrap();
        let e = system_identifier(dir.path()).unwrap_err().to_string();
        assert!(e.contains("global/pg_control: its CRC-32C"), "{e}");
        std::fs::write(dir.path().join(CONTROL_PATH), control_bytes(99, 1700)).unwrap();
        assert_eq!(system_identifier(dir.path()).unwrap(), 99);
    }
}
