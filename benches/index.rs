//! The in-memory master index: lookup time and memory per blob, at 1 million blobs (a
//! repository of about 1 TB of 1 MiB chunks).
//!
//! Run with `cargo bench -p strata-engine --bench index`. Prints the index's bytes per blob
//! before the divan table.

use std::sync::OnceLock;

use divan::{black_box, Bencher};
use strata_engine::MasterIndex;
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

fn main() {
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
