//! The archiver cuts files and streams where the golden vectors say
//! (`spec/vectors/chunker.json`): a backup of each vector's input, into a repository with
//! the vector's parameters and gear seed, stores exactly the vector's chunks. The format
//! crate checks its cutter against the same vectors; this checks that the backup path uses
//! it, both where a file is read whole and cut in memory and where it is streamed.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use strata_engine::archiver::{backup_paths, backup_stream, BackupOptions};
use strata_engine::progress::NoProgress;
use strata_engine::treewalk::{self, Found};
use strata_engine::Repository;
use strata_format::blob::BlobType;
use strata_format::chunker::ChunkerParams;
use strata_format::config::{ConfigFile, CONFIG_VERSION};
use strata_format::crypto::MasterKey;
use strata_format::id::{Digest, RepoId};
use strata_format::keyfile::{KdfParams, KeyFile};
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::NodeKind;
use strata_storage::{Backend, FileType, OpendalBackend};

/// One case of the vectors.
struct Case {
    name: String,
    params: ChunkerParams,
    seed: u64,
    input: Vec<u8>,
    lengths: Vec<usize>,
}

fn cases() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors/chunker.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let vectors: Value = serde_json::from_str(&text).expect("chunker.json is JSON");
    let num = |v: &Value, key: &str| v[key].as_u64().unwrap_or_else(|| panic!("{key}: {v}"));
    vectors["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let input = &c["input"];
            // The generator the vectors name: ChaCha20Rng::seed_from_u64(rng_seed), fill_bytes.
            let mut data = vec![0u8; num(input, "length") as usize];
            ChaCha20Rng::seed_from_u64(num(input, "rng_seed")).fill_bytes(&mut data);
            assert_eq!(
                Digest::of_stored(&data).to_hex(),
                input["blake3"].as_str().expect("blake3"),
                "the input of {c}"
            );
            let seed = c["seed"].as_str().expect("seed");
            Case {
                name: c["name"].as_str().expect("name").to_string(),
                params: ChunkerParams {
                    min_size: num(&c["params"], "min_size") as u32,
                    avg_size: num(&c["params"], "avg_size") as u32,
                    max_size: num(&c["params"], "max_size") as u32,
                },
                seed: u64::from_str_radix(seed.trim_start_matches("0x"), 16).expect("hex seed"),
                input: data,
                lengths: c["lengths"]
                    .as_array()
                    .expect("lengths")
                    .iter()
                    .map(|l| l.as_u64().expect("a length") as usize)
                    .collect(),
            }
        })
        .collect()
}

/// A repository whose files are cut with `params` and `seed`, written from the format crate
/// as `init` writes one (`init` draws the seed at random).
fn repository_cutting_with(params: ChunkerParams, seed: u64) -> Arc<dyn Backend> {
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    let mut rng = rand::thread_rng();
    let mut key = MasterKey::random(&mut rng);
    key.chunker_seed = seed;
    let config = ConfigFile {
        repo_id: RepoId(Digest([7; 32])),
        chunker: params,
        pack_size: 16 << 20,
        compression_level: 3,
        created_ns: 0,
        db_chunker: ChunkerParams::DATABASE,
        format_version: CONFIG_VERSION,
    };
    config.validate().unwrap();
    let config_bytes = config.encode(&key, &mut rng);
    let cheap = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    let mut keyfile = KeyFile::wrap(
        &key,
        b"pw",
        cheap,
        &mut rng,
        0,
        "host".into(),
        "user".into(),
    )
    .unwrap();
    keyfile.config = Some(config_bytes.clone());
    let key_bytes = keyfile.encode();
    let key_name = Digest::of_stored(&key_bytes).to_hex();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        backend.create_layout().await?;
        backend
            .write(FileType::Key, &key_name, Bytes::from(key_bytes))
            .await?;
        backend
            .write(FileType::Config, "", Bytes::from(config_bytes))
            .await
    })
    .unwrap();
    backend
}

/// The lengths of the chunks stored for the file at `path` in `snap`, after checking that
/// they hold `expected`.
fn stored_lengths(
    backend: &Arc<dyn Backend>,
    snap: &SnapshotFile,
    path: &[u8],
    expected: &[u8],
) -> Vec<usize> {
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let Found::Node { node, .. } = treewalk::resolve(&repo, &snap.tree, path).unwrap() else {
        panic!("{} is the root", String::from_utf8_lossy(path));
    };
    let NodeKind::File { content } = &node.kind else {
        panic!("not a file: {:?}", node.kind);
    };
    let chunks: Vec<Vec<u8>> = content
        .iter()
        .map(|id| repo.read_blob(BlobType::Data, id).unwrap())
        .collect();
    assert!(
        chunks.concat() == expected,
        "the chunks do not hold the input"
    );
    chunks.iter().map(Vec::len).collect()
}

/// Backs up a file holding `data` and returns the lengths of its stored chunks.
fn file_chunks(case: &Case, data: &[u8]) -> Vec<usize> {
    let backend = repository_cutting_with(case.params, case.seed);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input");
    std::fs::write(&file, data).unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let result = backup_paths(
        &repo,
        std::slice::from_ref(&file),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(result.errors.is_empty(), "{:?}", result.errors);
    let path = file.to_str().unwrap().as_bytes();
    stored_lengths(&backend, &result.snapshot, path, data)
}

/// Yields its bytes in reads of a size that divides no chunk length.
struct Uneven<'a>(&'a [u8]);

impl Read for Uneven<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(100_003);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn a_file_longer_than_the_largest_chunk_is_cut_where_the_vectors_say() {
    for case in cases() {
        assert!(
            case.input.len() > case.params.max_size as usize,
            "{}",
            case.name
        );
        let got = file_chunks(&case, &case.input);
        assert_eq!(got, case.lengths, "{}", case.name);
    }
}

/// A prefix of the input that ends at one of its cuts is cut as the whole input is, up to
/// there (FastCDC decides a cut on the bytes before it and the one after it; the last
/// chunk of the prefix is what remains). Those no longer than the largest chunk are read
/// whole and cut in memory.
#[test]
fn a_file_read_whole_is_cut_where_the_vectors_say() {
    for case in cases() {
        let max = case.params.max_size as usize;
        let mut end = 0;
        let mut count = 0;
        while count < case.lengths.len() && end + case.lengths[count] <= max {
            end += case.lengths[count];
            count += 1;
        }
        assert!(count >= 2, "{}: a prefix of several chunks fits", case.name);
        let got = file_chunks(&case, &case.input[..end]);
        assert_eq!(got, case.lengths[..count], "{}", case.name);
    }
}

#[test]
fn a_stream_is_cut_where_the_vectors_say() {
    for case in cases() {
        let backend = repository_cutting_with(case.params, case.seed);
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        let result = backup_stream(
            &repo,
            "input",
            &mut Uneven(&case.input),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
        let got = stored_lengths(&backend, &result.snapshot, b"/input", &case.input);
        assert_eq!(got, case.lengths, "{}", case.name);
    }
}
