//! Throughput of each stage of the backup pipeline on one core: FastCDC chunking, keyed
//! BLAKE3, zstd, XChaCha20-Poly1305, and blob + pack assembly.
//!
//! Run with `cargo bench -p strata-format --bench pipeline`. Prints MiB/s per stage on
//! 64 MiB of half-compressible data. Figures are for comparison between versions of Strata
//! on one machine; the side-by-side comparison with other tools is `benches/compare.sh`
//! (issue #3).

use std::hint::black_box;
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use strata_format::blob::{encode_blob, BlobType};
use strata_format::chunker::ChunkerParams;
use strata_format::crypto::MasterKey;
use strata_format::envelope::compress;
use strata_format::pack::PackBuilder;

fn input(len: usize) -> Vec<u8> {
    // Half random bytes, half text-like repetition, so compression has something to do.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let mut data = vec![0u8; len];
    for (i, block) in data.chunks_mut(4096).enumerate() {
        if i % 2 == 0 {
            rng.fill_bytes(block);
        } else {
            for (j, b) in block.iter_mut().enumerate() {
                *b = b"the quick brown fox jumps over the lazy dog "[(i + j) % 44];
            }
        }
    }
    data
}

fn report(stage: &str, bytes: usize, f: impl Fn()) {
    f(); // warm up
    let runs = 3;
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    let secs = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "{stage:<28} {:>9.1} MiB/s",
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
}

fn main() {
    let data = input(64 << 20);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let key = MasterKey::random(&mut rng);
    let params = ChunkerParams::FILES;
    let lengths = params
        .chunk_lengths(&data, key.chunker_seed)
        .expect("valid parameters");
    let mut chunks = Vec::new();
    let mut pos = 0;
    for l in &lengths {
        chunks.push(&data[pos..pos + l]);
        pos += l;
    }
    println!(
        "{} chunks of 64 MiB (avg {} KiB)",
        chunks.len(),
        (64 << 10) / chunks.len()
    );
    report("fastcdc chunking", data.len(), || {
        black_box(
            params
                .chunk_lengths(&data, key.chunker_seed)
                .expect("valid"),
        );
    });
    report("keyed blake3", data.len(), || {
        for c in &chunks {
            black_box(key.blob_id(c));
        }
    });
    report("zstd -3", data.len(), || {
        for c in &chunks {
            black_box(compress(c, 3));
        }
    });
    report("xchacha20-poly1305 seal", data.len(), || {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        for c in &chunks {
            black_box(key.seal(&mut rng, b"aad", c));
        }
    });
    report("blob encode + pack", data.len(), || {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let mut pack = PackBuilder::new();
        for c in &chunks {
            let id = key.blob_id(c);
            let stored = encode_blob(&key, &mut rng, BlobType::Data, id, c, 3);
            pack.add(BlobType::Data, id, c.len() as u32, &stored);
        }
        black_box(pack.finish(&key, &mut rng));
    });
}
