//! Log sequence numbers: byte positions in a cluster's WAL.

use std::fmt;
use std::str::FromStr;

use super::error::WalError;

/// A position in the WAL (PostgreSQL's `XLogRecPtr`, type `pg_lsn`), written `16/B374D848`:
/// the high and low 32 bits in hexadecimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses `HI/LO`, each 1 to 8 hexadecimal digits (PostgreSQL prints uppercase; its
    /// `pg_lsn` input takes either case, and so does this).
    pub fn parse(text: &str) -> Result<Lsn, WalError> {
        let (hi, lo) = text
            .split_once('/')
            .ok_or_else(|| WalError::lsn(text, "it has no '/'"))?;
        Ok(Lsn(
            (u64::from(half(text, hi)?) << 32) | u64::from(half(text, lo)?)
        ))
    }
}

/// One half of an LSN: 1 to 8 hexadecimal digits.
fn half(text: &str, part: &str) -> Result<u32, WalError> {
    if part.is_empty() || part.len() > 8 {
        return Err(WalError::lsn(text, "each half must have 1 to 8 digits"));
    }
    if !part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WalError::lsn(text, "it is not hexadecimal"));
    }
    u32::from_str_radix(part, 16).map_err(|_| WalError::lsn(text, "it is not hexadecimal"))
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 as u32)
    }
}

impl FromStr for Lsn {
    type Err = WalError;
    fn from_str(s: &str) -> Result<Self, WalError> {
        Lsn::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_as_postgresql_does() {
        let lsn = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
        assert_eq!("0/1000028".parse::<Lsn>().unwrap(), Lsn(0x100_0028));
        assert_eq!(Lsn::parse("a/b").unwrap(), Lsn(0xA_0000_000B));
    }

    #[test]
    fn refuses_what_is_not_an_lsn() {
        for bad in [
            "",
            "16",
            "/1",
            "1/",
            "16/B374D848/1",
            "123456789/0",
            "0/123456789",
            "+1/0",
            " 1/0",
            "1/0 ",
            "G/0",
            "1/-0",
        ] {
            let e = Lsn::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("is not an LSN"), "{bad}: {e}");
        }
    }
}
