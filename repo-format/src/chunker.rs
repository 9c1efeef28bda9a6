//! Content-defined chunking (FastCDC 2020, normalization level 1, gear table seeded per
//! repository): the parameters, and the [`Cutter`] that is the only place anything in
//! Strata cuts content into chunks. The boundaries are part of the format: the same
//! parameters and seed must always cut the same input at the same places, or deduplication
//! across versions of Strata would break. The golden vectors pin them
//! (`spec/vectors/chunker.json`), here through [`ChunkerParams::chunk_lengths`] and in the
//! engine through a backup of the vectors' input.
//!
//! A slice and a stream of the same bytes are cut at the same places: the stream cutter
//! fills a buffer of the maximum chunk size and cuts it as the slice cutter cuts the rest of
//! a slice (FastCDC looks at most one maximum chunk ahead), however the reader splits its
//! reads.

use std::io::Read;

use fastcdc::v2020::{self, FastCDC, Normalization, StreamCDC};
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

    /// The chunk lengths of `data` cut with `seed` (for golden vectors and benchmarks).
    pub fn chunk_lengths(&self, data: &[u8], seed: u64) -> Result<Vec<usize>, FormatError> {
        Ok(Cutter::new(*self, seed)?
            .cut(data)
            .map(<[u8]>::len)
            .collect())
    }
}

/// A repository's chunk cutter: its parameters and its gear seed (a secret of the master
/// key, so it is never shown in `Debug`). Made only from parameters that [validate], so
/// cutting never panics.
///
/// [validate]: ChunkerParams::validate
#[derive(Clone, Copy)]
pub struct Cutter {
    params: ChunkerParams,
    seed: u64,
}

impl std::fmt::Debug for Cutter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cutter")
            .field("params", &self.params)
            .field("seed", &"<redacted>")
            .finish()
    }
}

impl Cutter {
    pub fn new(params: ChunkerParams, seed: u64) -> Result<Self, FormatError> {
        params.validate()?;
        Ok(Cutter { params, seed })
    }

    /// The chunks of `data`, in order, covering it exactly (none for empty data).
    pub fn cut<'a>(&self, data: &'a [u8]) -> Chunks<'a> {
        let p = self.params;
        Chunks {
            data,
            cdc: FastCDC::with_level_and_seed(
                data,
                p.min_size,
                p.avg_size,
                p.max_size,
                Normalization::Level1,
                self.seed,
            ),
        }
    }

    /// The chunks of what `reader` yields up to its end, in order, each read into a buffer
    /// of its own; at most a maximum chunk is held besides. A read error ends the cutting:
    /// the iterator yields it, and what follows it is not defined.
    pub fn cut_stream<R: Read>(&self, reader: R) -> StreamChunks<R> {
        let p = self.params;
        StreamChunks(StreamCDC::with_level_and_seed(
            reader,
            p.min_size,
            p.avg_size,
            p.max_size,
            Normalization::Level1,
            self.seed,
        ))
    }
}

/// The chunks of a slice ([`Cutter::cut`]).
pub struct Chunks<'a> {
    data: &'a [u8],
    cdc: FastCDC<'a>,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let c = self.cdc.next()?;
        Some(&self.data[c.offset..c.offset + c.length])
    }
}

/// The chunks of a stream ([`Cutter::cut_stream`]).
pub struct StreamChunks<R: Read>(StreamCDC<R>);

impl<R: Read> Iterator for StreamChunks<R> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.0.next()? {
            Ok(chunk) => Ok(chunk.data),
            Err(v2020::Error::IoError(e)) => Err(e),
            Err(other) => Err(std::io::Error::other(other.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Yields its bytes in reads of the given sizes, in turn (0 stands for 1).
    struct Uneven<'a> {
        data: &'a [u8],
        sizes: Vec<usize>,
        turn: usize,
    }

    impl Read for Uneven<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let want = self.sizes[self.turn % self.sizes.len()].max(1);
            self.turn += 1;
            let n = want.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    const SMALLEST: ChunkerParams = ChunkerParams {
        min_size: 64,
        avg_size: 256,
        max_size: 1024,
    };

    proptest! {
        #[test]
        fn a_stream_is_cut_where_the_same_slice_is(
            data in proptest::collection::vec(any::<u8>(), 0..20_000),
            sizes in proptest::collection::vec(0usize..3000, 1..8),
            seed in any::<u64>(),
        ) {
            let cutter = Cutter::new(SMALLEST, seed).unwrap();
            let sliced: Vec<&[u8]> = cutter.cut(&data).collect();
            prop_assert_eq!(sliced.concat(), data.clone());
            let reader = Uneven { data: &data, sizes, turn: 0 };
            let streamed: Vec<Vec<u8>> = cutter.cut_stream(reader).map(Result::unwrap).collect();
            prop_assert_eq!(streamed, sliced);
        }
    }

    #[test]
    fn a_read_error_ends_the_stream_with_it() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let cutter = Cutter::new(SMALLEST, 7).unwrap();
        let first = cutter.cut_stream(Failing).next().unwrap();
        assert_eq!(first.unwrap_err().to_string(), "disk on fire");
    }

    #[test]
    fn debug_hides_the_seed() {
        let shown = format!(
            "{:?}",
            Cutter::new(SMALLEST, 0x0123_4567_89ab_cdef).unwrap()
        );
        assert!(!shown.contains("81985529216486895"), "{shown}");
        assert!(!shown.to_lowercase().contains("123456789abcdef"), "{shown}");
    }

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
        assert!(Cutter::new(bad, 0).is_err());
        let inverted = ChunkerParams {
            min_size: 4096,
            avg_size: 2048,
            max_size: 8192,
        };
        assert!(inverted.validate().is_err());
    }
}
