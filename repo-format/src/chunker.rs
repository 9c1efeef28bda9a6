//! Content-defined chunking parameters (FastCDC 2020, normalization level 1, gear table
//! seeded per repository). The boundaries are part of the format: the same parameters and
//! seed must always cut the same input at the same places, or deduplication across versions
//! of Strata would break. The golden vectors pin them.

use fastcdc::v2020::{self, Normalization};
use serde::{Deserialize, Serialize};

use crate::FormatError;

/// FastCDC sizes, fixed at `init` and stored in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl ChunkerParams {
    /// Defaults for file trees: 512 KiB / 1 MiB / 8 MiB.
    pub const FILES: ChunkerParams = ChunkerParams {
        min_size: 512 * 1024,
        avg_size: 1024 * 1024,
        max_size: 8 * 1024 * 1024,
    };

    /// Defaults for database dumps: 2 KiB / 8 KiB / 32 KiB. A night's scattered row
    /// updates each touch one chunk; at 1 MiB they would touch nearly all of them.
    /// (Measured on a pgbench dump with 1% rows appended and 0.1% updated: the second
    /// snapshot adds 15% of the first at 8 KiB, 28% at 16 KiB, 9% at 4 KiB, where the
    /// first grows by 5%.)
    pub const DATABASE: ChunkerParams = ChunkerParams {
        min_size: 2 * 1024,
        avg_size: 8 * 1024,
        max_size: 32 * 1024,
    };

    /// Checks the sizes against what FastCDC supports (it panics outside them).
    pub fn validate(&self) -> Result<(), FormatError> {
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&self.min_size)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&self.avg_size)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&self.max_size)
            // fastcdc cuts odd minimums one byte short; only even ones mean what they say.
            && self.min_size.is_multiple_of(2)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size;
        if ok {
            Ok(())
        } else {
            Err(FormatError::InvalidParameter {
                what: "chunker parameters",
                reason: format!("{self:?} outside FastCDC's limits"),
            })
        }
    }

    /// The chunk lengths of `data` (for golden vectors and in-memory inputs). The engine's
    /// streaming chunker must cut identically.
    pub fn chunk_lengths(&self, data: &[u8], seed: u64) -> Result<Vec<usize>, FormatError> {
        self.validate()?;
        Ok(v2020::FastCDC::with_level_and_seed(
            data,
            self.min_size,
            self.avg_size,
            self.max_size,
            Normalization::Level1,
            seed,
        )
        .map(|c| c.length)
        .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range() {
        assert!(ChunkerParams::FILES.validate().is_ok());
        assert!(ChunkerParams::DATABASE.validate().is_ok());
        let bad = ChunkerParams {
            min_size: 1,
            avg_size: 2,
            max_size: 3,
        };
        assert!(bad.validate().is_err());
        assert!(bad.chunk_lengths(b"abc", 0).is_err());
        let inverted = ChunkerParams {
            min_size: 4096,
            avg_size: 2048,
            max_size: 8192,
        };
        assert!(inverted.validate().is_err());
    }
}
