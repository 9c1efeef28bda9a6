//! Micro benchmarks of each stage of the backup and restore pipeline, on one core:
//! FastCDC chunking, keyed BLAKE3, zstd (1 MiB chunks and 4 KiB small-file blobs),
//! XChaCha20-Poly1305, blob + pack assembly, and blob decoding (what restore and
//! `check --read-data` do per blob).
//!
//! Run with `cargo bench -p strata-format --bench pipeline` (divan prints the median time
//! and throughput per stage). Input is 16 MiB of half-compressible data. The figures compare
//! versions of Strata on one machine; the side-by-side comparison with other tools is
//! `benches/compare.sh`.

use std::sync::OnceLock;

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use rand::{RngCore, SeedableRng};
use strata_format::blob::{decode_blob, encode_blob, BlobType};
use strata_format::chunker::ChunkerParams;
use strata_format::crypto::MasterKey;
use strata_format::envelope::compress;
use strata_format::pack::PackBuilder;

const LEN: usize = 16 << 20;

fn main() {
    divan::main();
}

struct Fixture {
    data: Vec<u8>,
    key: MasterKey,
    /// `data` cut by FastCDC with the production parameters.
    chunks: Vec<(usize, usize)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // Half random bytes, half text-like repetition, so compression has work to do.
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut data = vec![0u8; LEN];
        for (i, block) in data.chunks_mut(4096).enumerate() {
            if i % 2 == 0 {
                rng.fill_bytes(block);
            } else {
                for (j, b) in block.iter_mut().enumerate() {
                    *b = b"the quick brown fox jumps over the lazy dog "[(i + j) % 44];
                }
            }
        }
        let key = MasterKey::random(&mut rand_chacha::ChaCha20Rng::seed_from_u64(2));
        let mut chunks = Vec::new();
        let mut pos = 0;
        for l in ChunkerParams::FILES
            .chunk_lengths(&data, key.chunker_seed)
            .expect("valid parameters")
        {
            chunks.push((pos, l));
            pos += l;
        }
        Fixture { data, key, chunks }
    })
}

fn chunks(f: &Fixture) -> impl Iterator<Item = &[u8]> {
    f.chunks.iter().map(|&(o, l)| &f.data[o..o + l])
}

/// Small blobs, as small source files make them (half random, half text).
fn small_blobs(f: &Fixture) -> impl Iterator<Item = &[u8]> {
    f.data.chunks(4096)
}

#[divan::bench]
fn fastcdc_chunking(b: Bencher) {
    let f = fixture();
    b.counter(BytesCount::new(LEN)).bench(|| {
        ChunkerParams::FILES
            .chunk_lengths(black_box(&f.data), f.key.chunker_seed)
            .expect("valid")
    });
}

#[divan::bench]
fn keyed_blake3(b: Bencher) {
    let f = fixture();
    b.counter(BytesCount::new(LEN)).bench(|| {
        for c in chunks(f) {
            black_box(f.key.blob_id(c));
        }
    });
}

#[divan::bench(args = [1, 3, 4])]
fn zstd_chunks(b: Bencher, level: i32) {
    let f = fixture();
    b.counter(BytesCount::new(LEN)).bench(|| {
        for c in chunks(f) {
            black_box(compress(c, level));
        }
    });
}

#[divan::bench]
fn zstd_small_blobs(b: Bencher) {
    let f = fixture();
    b.counter(BytesCount::new(LEN)).bench(|| {
        for c in small_blobs(f) {
            black_box(compress(c, 3));
        }
    });
}

#[divan::bench]
fn xchacha20_poly1305_seal(b: Bencher) {
    let f = fixture();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    b.counter(BytesCount::new(LEN)).bench_local(|| {
        for c in chunks(f) {
            black_box(f.key.seal(&mut rng, b"aad", c));
        }
    });
}

#[divan::bench]
fn blob_encode_and_pack(b: Bencher) {
    let f = fixture();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    b.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut pack = PackBuilder::with_capacity(LEN + (1 << 20));
        for c in chunks(f) {
            let id = f.key.blob_id(c);
            let stored = encode_blob(&f.key, &mut rng, BlobType::Data, id, c, 3);
            pack.add(BlobType::Data, id, c.len() as u32, &stored);
        }
        pack.finish(&f.key, &mut rng)
    });
}

#[divan::bench]
fn blob_decode_and_verify(b: Bencher) {
    let f = fixture();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let stored: Vec<(_, Vec<u8>)> = chunks(f)
        .map(|c| {
            let id = f.key.blob_id(c);
            (id, encode_blob(&f.key, &mut rng, BlobType::Data, id, c, 3))
        })
        .collect();
    b.counter(BytesCount::new(LEN)).bench(|| {
        for (id, s) in &stored {
            black_box(decode_blob(&f.key, Some((BlobType::Data, *id)), s).expect("valid blob"));
        }
    });
}
