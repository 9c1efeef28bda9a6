//! `check --read-data`: reading every pack whole (or a chosen subset of the packs) and
//! verifying every byte of it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;
use strata_format::id::{BlobId, Digest, PackId};
use strata_format::pack::{check_preamble, read_pack_header_tail, PACK_PREAMBLE_LEN};
use strata_storage::FileType;

use crate::index::{BlobLocation, MasterIndex};
use crate::progress::Progress;
use crate::Repository;

/// Bytes read from a pack at a time.
const PIECE: u64 = 4 << 20;

/// Damaged blobs listed one by one per pack, at most; the rest are counted.
const MAX_LISTED_PER_PACK: usize = 20;

/// Which packs `check` reads when it reads only part of the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// The `n`-th (1-based) of `of` parts, chosen by pack id: a pack is in part `n` when the
    /// first 4 bytes of its id, as a big-endian u32, are `n - 1` modulo `of`. Parts 1..=of
    /// are disjoint and together cover every pack, and a pack stays in its part while the
    /// repository changes.
    Part { n: u32, of: u32 },
    /// A random sample of `p` percent of the packs (0 < p <= 100), rounded up, so at least
    /// one pack when there are any.
    Percent(f64),
}

/// Why a subset string does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubsetError {
    #[error(
        "{0:?} is not a subset: give a part as N/M (e.g. 1/5) or a percentage (e.g. 10% or 2.5%)"
    )]
    Syntax(String),
    #[error("part {n}/{of} does not exist: N must be between 1 and M in N/M")]
    NoSuchPart { n: u32, of: u32 },
    #[error("{0}% is not a percentage of the packs: it must be above 0% and at most 100%")]
    PercentOutOfRange(String),
}

impl FromStr for Subset {
    type Err = SubsetError;

    /// Parses `N/M` (1 <= N <= M) or `P%` (0 < P <= 100, decimals allowed).
    fn from_str(s: &str) -> Result<Self, SubsetError> {
        let syntax = || SubsetError::Syntax(s.to_owned());
        let t = s.trim();
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        if let Some((n, of)) = t.split_once('/') {
            let (n, of) = (n.trim(), of.trim());
            if !digits(n) || !digits(of) {
                return Err(syntax());
            }
            let (n, of): (u32, u32) = match (n.parse(), of.parse()) {
                (Ok(n), Ok(of)) => (n, of),
                _ => return Err(syntax()),
            };
            if n == 0 || n > of {
                return Err(SubsetError::NoSuchPart { n, of });
            }
            return Ok(Subset::Part { n, of });
        }
        if let Some(p) = t.strip_suffix('%') {
            let p = p.trim();
            // Plain decimals only: no signs, exponents, "inf" or "nan".
            let plain = p.bytes().filter(|&b| b == b'.').count() <= 1
                && p.bytes().any(|b| b.is_ascii_digit())
                && p.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if !plain {
                return Err(syntax());
            }
            let v: f64 = p.parse().map_err(|_| syntax())?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(SubsetError::PercentOutOfRange(p.to_owned()));
            }
            return Ok(Subset::Percent(v));
        }
        Err(syntax())
    }
}

impl fmt::Display for Subset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subset::Part { n, of } => write!(f, "{n}/{of}"),
            Subset::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Subset {
    /// Whether `pack` is in part `n` of `of` (see [`Subset::Part`]); a part that does not
    /// exist (n = 0, n > of) holds no pack.
    fn part_contains(pack: &PackId, n: u32, of: u32) -> bool {
        let b = pack.as_bytes();
        of != 0 && u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % of == n.wrapping_sub(1)
    }

    /// How many of `total` packs a percentage reads: rounded up, at least one of any.
    fn sample_size(p: f64, total: usize) -> usize {
        // p * total / 100 can land a hair above a whole number (0.3% of 1000 is
        // 3.0000000000000004): take that away before rounding up.
        let exact = p * total as f64 / 100.0;
        let k = (exact * (1.0 - 1e-12)).ceil() as usize;
        k.clamp(total.min(1), total)
    }

    /// The packs of `packs` in this subset, keeping their order for a part (a sample
    /// comes back in random order).
    fn select<T>(
        &self,
        mut packs: Vec<T>,
        id: impl Fn(&T) -> PackId,
        rng: &mut impl Rng,
    ) -> Vec<T> {
        match *self {
            Subset::Part { n, of } => {
                packs.retain(|p| Self::part_contains(&id(p), n, of));
                packs
            }
            Subset::Percent(p) => {
                let k = Self::sample_size(p, packs.len());
                packs.shuffle(rng);
                packs.truncate(k);
                packs
            }
        }
    }
}

/// What reading the data found.
pub(super) struct Damage {
    pub errors: Vec<String>,
    /// Blobs that failed to verify, with the reason (for naming the snapshots and paths).
    pub bad_blobs: HashMap<BlobId, String>,
    pub bytes_read: u64,
    /// Packs read (whole or until they failed to read).
    pub packs_read: u64,
}

/// A pack, its size, and the blobs the index places in it.
type PackToCheck = (PackId, u64, Vec<(BlobId, BlobLocation)>);

struct PackOutcome {
    errors: Vec<String>,
    bad: Vec<(BlobId, String)>,
    bytes: u64,
}

/// Reads and verifies every pack the index names, or those of them in `subset`, in
/// parallel. Packs in `skip` (already known to be missing or of the wrong size) are never
/// read, nor counted when a percentage is taken.
pub(super) fn check_packs(
    repo: &Repository,
    index: &MasterIndex,
    skip: &HashSet<PackId>,
    subset: Option<&Subset>,
    progress: &dyn Progress,
) -> Damage {
    // Each pack once (by pack id: a pack can be listed twice).
    let mut seen: HashSet<PackId> = HashSet::new();
    let mut chosen: Vec<(PackId, u64)> = index
        .packs()
        .iter()
        .filter(|(id, _)| !skip.contains(id) && seen.insert(*id))
        .copied()
        .collect();
    drop(seen);
    if let Some(subset) = subset {
        chosen = subset.select(chosen, |p| p.0, &mut rand::thread_rng());
        tracing::debug!(%subset, packs = chosen.len(), "reading a subset of the packs");
    }
    // The blobs the index places in each chosen pack.
    let mut pos_of: HashMap<PackId, usize> = HashMap::new();
    let mut packs: Vec<PackToCheck> = Vec::with_capacity(chosen.len());
    for (id, size) in chosen {
        pos_of.insert(id, packs.len());
        packs.push((id, size, Vec::new()));
    }
    for (id, loc) in index.iter() {
        let (pack, _) = index.pack(loc.pack);
        if let Some(&p) = pos_of.get(&pack) {
            packs[p].2.push((id, loc));
        }
    }
    drop(pos_of);
    progress.set_total(packs.iter().map(|p| p.1).sum());
    let outcomes: Vec<PackOutcome> = packs
        .par_iter_mut()
        .map(|(pack, size, blobs)| {
            blobs.sort_unstable_by_key(|(_, loc)| loc.offset);
            let out = check_pack(repo, pack, *size, blobs);
            progress.add_bytes(out.bytes);
            // Done with this pack's list: free it while the others are read.
            *blobs = Vec::new();
            out
        })
        .collect();
    let mut damage = Damage {
        errors: Vec::new(),
        bad_blobs: HashMap::new(),
        bytes_read: 0,
        packs_read: outcomes.len() as u64,
    };
    for o in outcomes {
        damage.errors.extend(o.errors);
        damage.bad_blobs.extend(o.bad);
        damage.bytes_read += o.bytes;
    }
    damage
}

fn check_pack(
    repo: &Repository,
    pack: &PackId,
    size: u64,
    blobs: &[(BlobId, BlobLocation)],
) -> PackOutcome {
    let name = pack.to_hex();
    let mut out = PackOutcome {
        errors: Vec::new(),
        bad: Vec::new(),
        bytes: 0,
    };
    if let Err(e) = crate::repository::check_size(FileType::Pack, &name, size) {
        let msg = format!("pack {name} could not be read: {e}");
        out.errors.push(msg.clone());
        out.bad = blobs.iter().map(|(id, _)| (*id, msg.clone())).collect();
        return out;
    }
    // The pack is read front to back in pieces, hashed as it goes, and each blob is
    // verified as soon as it is complete: memory stays at a piece plus one blob.
    let mut hasher = Digest::stored_hasher();
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = 0u64;
    let mut preamble = Vec::new();
    let mut next = 0usize;
    let mut problems: Vec<(usize, String)> = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let len = PIECE.min(size - pos);
        let piece = match repo.block_on(repo.backend().read_range(FileType::Pack, &name, pos, len))
        {
            Ok(p) => p,
            Err(e) => {
                let msg = format!("pack {name} could not be read: {e}");
                out.errors.push(msg.clone());
                out.bad = blobs.iter().map(|(id, _)| (*id, msg.clone())).collect();
                return out;
            }
        };
        hasher.update(&piece);
        if pos == 0 {
            preamble = piece[..piece.len().min(PACK_PREAMBLE_LEN + 4)].to_vec();
        }
        buf.extend_from_slice(&piece);
        pos += len;
        out.bytes += len;
        while let Some((id, loc)) = blobs.get(next) {
            let (start, end) = (loc.offset as u64, loc.offset as u64 + loc.length as u64);
            if end > size {
                problems.push((next, "lies beyond the end of its pack".into()));
            } else if start < buf_start {
                problems.push((next, "overlaps the blob before it".into()));
            } else if end > pos {
                break;
            } else {
                let stored = &buf[(start - buf_start) as usize..(end - buf_start) as usize];
                match repo.decode_stored_blob(loc.blob_type, id, pack, stored) {
                    Err(e) => problems.push((next, e.to_string())),
                    Ok(plain) if plain.len() != loc.raw_length as usize => problems.push((
                        next,
                        format!(
                            "decodes to {} bytes, the index records {}",
                            plain.len(),
                            loc.raw_length
                        ),
                    )),
                    Ok(_) => {}
                }
            }
            next += 1;
        }
        let keep_from = blobs
            .get(next)
            .map_or(pos, |(_, l)| (l.offset as u64).clamp(buf_start, pos));
        buf.drain(..(keep_from - buf_start) as usize);
        buf_start = keep_from;
    }
    drop(buf);
    if hasher.finalize() != pack.0 {
        out.errors.push(format!(
            "pack {name}: content does not hash to its name (damaged)"
        ));
    }
    let tail = pack_tail(repo, &name, size);
    let header = tail.and_then(|t| {
        check_preamble(&preamble)
            .and_then(|_| read_pack_header_tail(repo.key(), &t, size as usize))
            .map_err(|e| e.to_string())
    });
    match header {
        Err(e) => out.errors.push(format!("pack {name}: header: {e}")),
        Ok(header) => {
            let listed: HashMap<BlobId, _> = header.iter().map(|b| (b.id, b)).collect();
            for (id, loc) in blobs {
                let agrees = listed.get(id).is_some_and(|b| {
                    b.blob_type == loc.blob_type
                        && b.offset == loc.offset
                        && b.length == loc.length
                        && b.raw_length == loc.raw_length
                });
                if !agrees {
                    out.errors.push(format!(
                        "pack {name}: the index places {} blob {id} at offset {}, the pack header does not",
                        loc.blob_type.name(),
                        loc.offset
                    ));
                }
            }
        }
    }
    let mut damaged = 0usize;
    for (i, p) in problems {
        let (id, loc) = &blobs[i];
        damaged += 1;
        if damaged <= MAX_LISTED_PER_PACK {
            out.errors.push(format!(
                "pack {name}: {} blob {id} is damaged: {p}",
                loc.blob_type.name()
            ));
        }
        out.bad.push((*id, format!("in pack {name}: {p}")));
    }
    if damaged > MAX_LISTED_PER_PACK {
        out.errors.push(format!(
            "pack {name}: {} more damaged blobs not listed",
            damaged - MAX_LISTED_PER_PACK
        ));
    }
    out
}

/// The sealed header and trailer at the end of a pack (read again: the pieces were not
/// kept; the pack's hash already covers these bytes).
fn pack_tail(repo: &Repository, name: &str, size: u64) -> Result<Vec<u8>, String> {
    let read = |offset: u64, len: u64| {
        repo.block_on(repo.backend().read_range(FileType::Pack, name, offset, len))
            .map_err(|e| e.to_string())
    };
    if size < 4 {
        return Err("too short for a trailer".into());
    }
    let trailer = read(size - 4, 4)?;
    let hlen = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as u64;
    if hlen + 4 > size {
        return Err(format!("header length {hlen} exceeds the pack"));
    }
    Ok(read(size - 4 - hlen, hlen + 4)?.to_vec())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::rngs::StdRng;
    use rand::{RngCore, SeedableRng};
    use strata_format::id::Digest;

    use super::*;

    fn parse(s: &str) -> Result<Subset, SubsetError> {
        s.parse()
    }

    fn pack_ids(count: usize, seed: u64) -> Vec<PackId> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                let mut d = [0u8; 32];
                rng.fill_bytes(&mut d);
                PackId(Digest(d))
            })
            .collect()
    }

    #[test]
    fn parses_parts_and_percentages() {
        let part = |n, of| Ok(Subset::Part { n, of });
        assert_eq!(parse("1/5"), part(1, 5));
        assert_eq!(parse("5/5"), part(5, 5));
        assert_eq!(parse("1/1"), part(1, 1));
        assert_eq!(parse(" 2 / 3 "), part(2, 3));
        assert_eq!(parse("10%"), Ok(Subset::Percent(10.0)));
        assert_eq!(parse("2.5%"), Ok(Subset::Percent(2.5)));
        assert_eq!(parse("100%"), Ok(Subset::Percent(100.0)));
        assert_eq!(parse("0.01%"), Ok(Subset::Percent(0.01)));
        assert_eq!(parse(".5%"), Ok(Subset::Percent(0.5)));
        for s in ["1/5", "3/3", "10%", "2.5%", "100%"] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_subsets_with_a_reason() {
        assert_eq!(parse("0/3"), Err(SubsetError::NoSuchPart { n: 0, of: 3 }));
        assert_eq!(parse("4/3"), Err(SubsetError::NoSuchPart { n: 4, of: 3 }));
        assert_eq!(parse("1/0"), Err(SubsetError::NoSuchPart { n: 1, of: 0 }));
        assert_eq!(parse("0/0"), Err(SubsetError::NoSuchPart { n: 0, of: 0 }));
        for p in ["0", "0.0", "101", "100.001"] {
            assert_eq!(
                parse(&format!("{p}%")),
                Err(SubsetError::PercentOutOfRange(p.into()))
            );
        }
        for s in [
            "abc",
            "",
            "%",
            "/",
            "1/",
            "/3",
            "-1/3",
            "1/-3",
            "+1/3",
            "1/3/5",
            "1.5/3",
            "a/b",
            "99999999999/3",
            "10",
            "-5%",
            "+5%",
            "1e1%",
            "nan%",
            "inf%",
            "2..5%",
            ".%",
            "5%%",
            "1/3%",
        ] {
            assert_eq!(
                parse(s),
                Err(SubsetError::Syntax(s.into())),
                "{s:?} should not parse"
            );
        }
        let msg = parse("4/3").unwrap_err().to_string();
        assert!(
            msg.contains("4/3") && msg.contains("between 1 and M"),
            "{msg}"
        );
        let msg = parse("101%").unwrap_err().to_string();
        assert!(
            msg.contains("101%") && msg.contains("at most 100%"),
            "{msg}"
        );
        let msg = parse("abc").unwrap_err().to_string();
        assert!(msg.contains("\"abc\"") && msg.contains("N/M"), "{msg}");
    }

    #[test]
    fn part_uses_the_first_four_bytes_of_the_id_big_endian() {
        let mut d = [0xffu8; 32];
        d[..4].copy_from_slice(&[0, 0, 1, 2]); // 258 = 3 * 86, so part 1 of 3
        let id = PackId(Digest(d));
        assert!(Subset::part_contains(&id, 1, 3));
        assert!(!Subset::part_contains(&id, 2, 3));
        assert!(Subset::part_contains(&id, 7, 7)); // 258 % 7 == 6, part 7
                                                   // Parts that `from_str` refuses, built directly, select nothing (and do not panic).
        assert!(!Subset::part_contains(&id, 0, 3));
        assert!(!Subset::part_contains(&id, 1, 0));
        assert!(!Subset::part_contains(&id, 4, 3));
    }

    #[test]
    fn parts_cover_every_pack_exactly_once() {
        let ids = pack_ids(2000, 1);
        let mut rng = StdRng::seed_from_u64(2);
        for of in [1, 2, 3, 5, 7, 16, 100, 1000, u32::MAX] {
            let mut seen: HashMap<PackId, u32> = HashMap::new();
            for n in 1..=of.min(1000) {
                let part = Subset::Part { n, of }.select(ids.clone(), |p| *p, &mut rng);
                for id in part {
                    *seen.entry(id).or_default() += 1;
                }
            }
            if of <= 1000 {
                assert_eq!(seen.len(), ids.len(), "parts of {of} miss packs");
            }
            assert!(
                seen.values().all(|&c| c == 1),
                "a pack in two parts of {of}"
            );
        }
        // The parts are roughly even.
        for n in 1..=5 {
            let part = Subset::Part { n, of: 5 }.select(ids.clone(), |p| *p, &mut rng);
            assert!(
                (300..=500).contains(&part.len()),
                "part {n}/5: {}",
                part.len()
            );
        }
        // The choice depends on the id only: the same pack lands in the same part however
        // many other packs there are.
        let few = Subset::Part { n: 2, of: 3 }.select(ids[..10].to_vec(), |p| *p, &mut rng);
        let all = Subset::Part { n: 2, of: 3 }.select(ids.clone(), |p| *p, &mut rng);
        assert!(few.iter().all(|id| all.contains(id)));
    }

    #[test]
    fn percentages_round_up_to_at_least_one_pack() {
        assert_eq!(Subset::sample_size(10.0, 30), 3);
        assert_eq!(Subset::sample_size(10.0, 31), 4);
        assert_eq!(Subset::sample_size(0.3, 1000), 3);
        assert_eq!(Subset::sample_size(2.5, 40), 1);
        assert_eq!(Subset::sample_size(50.0, 3), 2);
        assert_eq!(Subset::sample_size(100.0, 7), 7);
        assert_eq!(Subset::sample_size(0.0001, 5), 1);
        assert_eq!(Subset::sample_size(50.0, 0), 0);
        assert_eq!(Subset::sample_size(100.0, 0), 0);
    }

    #[test]
    fn a_percentage_is_a_random_sample_of_distinct_packs() {
        let ids = pack_ids(200, 3);
        let mut rng = StdRng::seed_from_u64(4);
        let a = Subset::Percent(10.0).select(ids.clone(), |p| *p, &mut rng);
        let b = Subset::Percent(10.0).select(ids.clone(), |p| *p, &mut rng);
        assert_eq!(a.len(), 20);
        let a_set: BTreeSet<PackId> = a.iter().copied().collect();
        assert_eq!(a_set.len(), 20, "a pack sampled twice");
        assert!(a.iter().all(|id| ids.contains(id)));
        assert_ne!(a, b, "two samples should differ");
        let all = Subset::Percent(100.0).select(ids.clone(), |p| *p, &mut rng);
        assert_eq!(
            all.iter().copied().collect::<BTreeSet<_>>().len(),
            ids.len()
        );
        assert!(Subset::Percent(10.0)
            .select(Vec::<PackId>::new(), |p| *p, &mut rng)
            .is_empty());
    }
}
