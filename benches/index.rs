//! The in-memory master index: lookup time and memory per blob, at 1 million blobs (a
//! repository of about 1 TB of 1 MiB chunks); and, as a regression check for scale (issue
//! #19), building an index of 10 million blobs and prune's mark pass over it.
//!
//! Run with `cargo bench -p strata-engine --bench index` (about 30 s on 2 cores). Prints,
//! before the divan table, the 1 M index's bytes per blob and one line per 10 M step:
//! its time and its bytes per blob, both the structure's own and the growth of the
//! process's peak RSS (reset before each step where the kernel allows it: Linux
//! `clear_refs`). Not a test: nothing is asserted; compare the lines with
//! `benches/RESULTS-scale.md`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use divan::{black_box, Bencher};
use strata_engine::{IndexBuilder, MasterIndex};
use strata_format::blob::BlobType;
use strata_format::id::{BlobId, Digest, IndexId, PackId};
use strata_format::index::{IndexFile, IndexPack};
use strata_format::pack::PackBlob;

const BLOBS: u32 = 1_000_000;
const PER_PACK: u32 = 1000;

fn id(n: u32) -> BlobId {
    BlobId(Digest::of_stored(&n.to_le_bytes()))
}

fn index() -> &'static MasterIndex {
    static I: OnceLock<MasterIndex> = OnceLock::new();
    I.get_or_init(|| {
        let packs = (0..BLOBS / PER_PACK)
            .map(|p| IndexPack {
                id: PackId(Digest::of_stored(&p.to_be_bytes())),
                size: 16 << 20,
                blobs: (0..PER_PACK)
                    .map(|i| PackBlob {
                        blob_type: BlobType::Data,
                        id: id(p * PER_PACK + i),
                        offset: i * 16_000,
                        length: 16_000,
                        raw_length: 20_000,
                    })
                    .collect(),
            })
            .collect();
        let file = IndexFile {
            packs,
            ..IndexFile::default()
        };
        MasterIndex::from_files([(IndexId(Digest::of_stored(b"index")), file)])
    })
}

/// Blobs of the scale regression steps.
const SCALE_BLOBS: u32 = 10_000_000;
/// Blobs per pack there: 16 MiB packs of 1 MiB chunks.
const SCALE_PER_PACK: u32 = 16;
/// Packs per index file there (50,000 blobs, as backups and prune write them).
const SCALE_PACKS_PER_FILE: u32 = 50_000 / SCALE_PER_PACK;

/// The process's peak RSS in bytes (`VmHWM`), if the kernel says.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak RSS to the current RSS (Linux 4.0 on); whether it could.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `what` took `spent`; its structure holds `own` bytes; the peak RSS grew from `base`.
fn report(what: &str, spent: Duration, own: usize, base: Option<u64>) {
    let n = SCALE_BLOBS as f64;
    let peak = match (base, peak_rss()) {
        (Some(b), Some(p)) => format!("{:.1} B/blob", p.saturating_sub(b) as f64 / n),
        _ => "unknown".into(),
    };
    println!(
        "scale: {what}: {:.2} s ({:.0} ns/blob), {:.1} B/blob held, peak RSS growth {peak}",
        spent.as_secs_f64(),
        spent.as_nanos() as f64 / n,
        own as f64 / n,
    );
}

/// The blobs of index file `f` of the 10 M index (16 blobs a pack).
fn scale_file(f: u32) -> IndexFile {
    let first_pack = f * SCALE_PACKS_PER_FILE;
    let packs = (first_pack..(first_pack + SCALE_PACKS_PER_FILE).min(SCALE_BLOBS / SCALE_PER_PACK))
        .map(|p| IndexPack {
            id: PackId(Digest::of_stored(&p.to_be_bytes())),
            size: 16 << 20,
            blobs: (0..SCALE_PER_PACK)
                .map(|i| PackBlob {
                    blob_type: BlobType::Data,
                    id: id(p * SCALE_PER_PACK + i),
                    offset: 10 + i * 1_000_000,
                    length: 1_000_000,
                    raw_length: 1_048_576,
                })
                .collect(),
        })
        .collect();
    IndexFile {
        packs,
        ..IndexFile::default()
    }
}

/// Builds a 10 M-blob index from index files of 50,000 blobs, one file at a time as a
/// repository is opened; then prune's mark pass (every blob looked up by id, in an order
/// unrelated to the index's, and its bit set) and its per-pack pass (every entry's bytes
/// added to its pack's total).
fn scale() {
    let files = (SCALE_BLOBS / SCALE_PER_PACK).div_ceil(SCALE_PACKS_PER_FILE);
    let resettable = reset_peak_rss();
    let base = peak_rss().filter(|_| resettable);
    let mut builder = IndexBuilder::new(false);
    let mut spent = Duration::ZERO;
    for f in 0..files {
        let file = scale_file(f);
        let start = Instant::now();
        builder.add_file(IndexId(Digest::of_stored(&f.to_le_bytes())), file);
        spent += start.elapsed();
    }
    let start = Instant::now();
    let index = builder.build();
    spent += start.elapsed();
    report(
        &format!("build a {} blob index", index.len()),
        spent,
        index.memory_bytes(),
        base,
    );

    // The ids in batches (made outside the timing), in the order the packs list them:
    // random with respect to the index's id order, as trees name blobs.
    let base = peak_rss().filter(|_| reset_peak_rss());
    let mut used = vec![0u64; index.len().div_ceil(64)];
    let mut spent = Duration::ZERO;
    const BATCH: u32 = 1 << 20;
    for first in (0..SCALE_BLOBS).step_by(BATCH as usize) {
        let ids: Vec<BlobId> = (first..(first + BATCH).min(SCALE_BLOBS)).map(id).collect();
        let start = Instant::now();
        for i in &ids {
            let pos = index.position(i).expect("every blob is indexed");
            used[pos / 64] |= 1 << (pos % 64);
        }
        spent += start.elapsed();
    }
    report("mark every blob", spent, used.len() * 8, base);

    let base = peak_rss().filter(|_| reset_peak_rss());
    let start = Instant::now();
    let mut pack_bytes = vec![0u64; index.packs().len()];
    for (pos, (_, loc)) in index.iter().enumerate() {
        if used[pos / 64] & (1 << (pos % 64)) != 0 {
            pack_bytes[loc.pack as usize] += loc.length as u64;
        }
    }
    black_box(&pack_bytes);
    report(
        "sum the used bytes of every pack",
        start.elapsed(),
        pack_bytes.len() * 8,
        base,
    );
}

fn main() {
    scale();
    let index = index();
    println!(
        "master index: {} blobs, {} bytes, {:.1} bytes per blob",
        index.len(),
        index.memory_bytes(),
        index.memory_bytes() as f64 / index.len() as f64
    );
    divan::main();
}

#[divan::bench]
fn lookup_hit(b: Bencher) {
    let index = index();
    let ids: Vec<BlobId> = (0..1000).map(|n| id(n * 997 % BLOBS)).collect();
    b.counter(divan::counter::ItemsCount::new(ids.len()))
        .bench(|| {
            for i in &ids {
                black_box(index.get(i));
            }
        });
}

#[divan::bench]
fn lookup_miss(b: Bencher) {
    let index = index();
    let ids: Vec<BlobId> = (0..1000).map(|n| id(BLOBS + n)).collect();
    b.counter(divan::counter::ItemsCount::new(ids.len()))
        .bench(|| {
            for i in &ids {
                black_box(index.contains(i));
            }
        });
}
