//! Which packs `check --read-data-subset` reads: the n-th of m parts by pack id, or a
//! random percentage.

use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::Rng;
use strata_format::id::PackId;

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
    pub(super) fn select<T>(
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

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
