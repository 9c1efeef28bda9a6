//! Golden vectors: `spec/vectors/*.json`, described in `spec/vectors.md`.
//!
//! Every vector is generated deterministically from fixed inputs (fixed keys, fixed nonces or
//! `ChaCha20Rng::seed_from_u64(n)` for the randomness an encoder draws). Each test
//!
//! 1. re-encodes the vector from its inputs and requires the result to equal the stored file,
//!    field by field (so every encoder still writes exactly the specified bytes), and
//! 2. decodes the stored bytes and requires the decoded values to equal the inputs (so every
//!    decoder still reads what older versions wrote).
//!
//! `STRATA_REGEN_VECTORS=1 cargo test -p strata-format --test golden` rewrites the files
//! instead of comparing them. Only do that for a deliberate, reviewed format change: a diff in
//! `spec/vectors/` is a format break for every existing repository.

use std::fs;
use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};

use strata_format::blob::{
    decode_blob, decode_blob_with, encode_blob, encode_blob_with, BlobHeader, BlobType,
    BLOB_HEADER_LEN,
};
use strata_format::chunker::ChunkerParams;
use strata_format::config::ConfigFile;
use strata_format::crypto::{self, MasterKey, NONCE_LEN};
use strata_format::dict::{Dictionaries, Dictionary};
use strata_format::envelope::{
    aad, encode_versioned, open_object, seal_object, Compression, EncryptedObject,
};
use strata_format::evidence::{CatalogHead, EvidenceFile, EvidenceKind};
use strata_format::id::{BlobId, Digest, IndexId, PackId, RepoId, SnapshotId};
use strata_format::index::{IndexFile, IndexPack, MarkedPack, Seal};
use strata_format::keyfile::{KdfParams, KeyFile};
use strata_format::lock::{LockFile, LockKind, ProcessIdentity};
use strata_format::pack::{read_pack_header, PackBlob, PackBuilder, PACK_HEADER_VERSION};
use strata_format::snapshot::{Rewrite, SnapshotFile, SnapshotSummary, SourceKind};
use strata_format::tree::{Node, NodeKind, Tree, Xattr};
use strata_format::wal::{WalEntry, WalFile};

// ---------------------------------------------------------------------------------------------
// Harness

const REGEN_ENV: &str = "STRATA_REGEN_VECTORS";

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors")
}

fn regenerating() -> bool {
    std::env::var(REGEN_ENV).as_deref() == Ok("1")
}

/// Writes `generated` (when regenerating) or compares it with the stored file; returns the
/// stored vector, which the decode half of each test then reads.
fn golden(file: &str, generated: Value) -> Value {
    let path = vectors_dir().join(file);
    if regenerating() {
        fs::create_dir_all(vectors_dir()).expect("create spec/vectors");
        let mut text = serde_json::to_string_pretty(&generated).expect("vectors serialize");
        text.push('\n');
        fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return generated;
    }
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden vector {} is missing or unreadable ({e}). Generate it with \
             `{REGEN_ENV}=1 cargo test -p strata-format --test golden`, review it and commit it.",
            path.display()
        )
    });
    let stored: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
    if let Some(diff) = first_difference("$", &stored, &generated) {
        panic!(
            "{file}: re-encoding from the vector's inputs no longer gives the stored bytes; first \
             difference at {diff}. This is a repository format change (or a zstd/postcard upgrade that \
             changed its output). Fix the code, or if the change is deliberate and versioned, \
             regenerate with {REGEN_ENV}=1 and update spec/."
        );
    }
    stored
}

/// The JSON path and both values of the first place where `a` (stored) and `b` (generated)
/// differ.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_difference(&p, u, v) {
                            return Some(d);
                        }
                    }
                    (u, v) => return Some(format!("{p}: stored {u:?}, generated {v:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(&format!("{path}[{i}]"), u, v) {
                    return Some(d);
                }
            }
            (x.len() != y.len())
                .then(|| format!("{path}: stored {} items, generated {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| format!("{path}: stored {a}, generated {b}")),
    }
}

fn hx(bytes: &[u8]) -> Value {
    Value::String(hex::encode(bytes))
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("vector lacks field {key:?}: {v}"))
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    let s = field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string"));
    hex::decode(s).unwrap_or_else(|e| panic!("{key} is not hex: {e}"))
}

fn num(v: &Value, key: &str) -> u64 {
    field(v, key)
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an unsigned number"))
}

fn items<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    field(v, key)
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array"))
}

fn digest(v: &Value, key: &str) -> Digest {
    Digest(
        bytes(v, key)
            .try_into()
            .unwrap_or_else(|_| panic!("{key} is not 32 bytes")),
    )
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

// ---------------------------------------------------------------------------------------------
// Fixed inputs

const CHUNKER_SEED: u64 = 0x0123_4567_89ab_cdef;

/// The fixed master key of every vector: enc_key 00..1f, id_key 20..3f, seed 0x0123456789abcdef.
fn master() -> MasterKey {
    MasterKey {
        enc_key: std::array::from_fn(|i| i as u8),
        id_key: std::array::from_fn(|i| 0x20 + i as u8),
        chunker_seed: CHUNKER_SEED,
    }
}

fn compressible() -> Vec<u8> {
    b"strata golden vector, compressible. ".repeat(32)
}

/// 256 bytes of ChaCha20Rng(100): zstd cannot shrink them.
fn incompressible() -> Vec<u8> {
    let mut b = vec![0u8; 256];
    rand::RngCore::fill_bytes(&mut rng(100), &mut b);
    b
}

fn stored_id(bytes: &[u8]) -> Value {
    Value::String(Digest::of_stored(bytes).to_hex())
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Zstd => "zstd",
        Compression::ZstdDict => "zstd-dict",
    }
}

/// The decrypted envelope (compression || raw length || payload) of a sealed object.
fn envelope_plaintext(kind: &str, extra: &[u8], stored: &[u8]) -> Vec<u8> {
    crypto::open(&master().enc_key, "vector", &aad(kind, extra), stored).expect("vector opens")
}

fn check_envelope(v: &Value, kind: &str, extra: &[u8], sealed: &[u8], plain: &[u8]) {
    let key = master();
    let env = bytes(v, "envelope_plaintext");
    assert_eq!(envelope_plaintext(kind, extra, sealed), env);
    assert_eq!(&sealed[..NONCE_LEN], bytes(v, "nonce").as_slice());
    assert_eq!(
        open_object(&key, "vector", kind, extra, sealed).unwrap(),
        plain
    );
    let compression = Compression::from_byte("vector", env[0]).unwrap();
    assert_eq!(
        compression_name(compression),
        field(v, "compression").as_str().unwrap()
    );
    assert_eq!(
        u32::from_le_bytes(env[1..5].try_into().unwrap()) as usize,
        plain.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Master key and ids

#[test]
fn master_key() {
    let key = master();
    let generated = json!({
        "description": "The fixed master key used by every other vector, and its postcard encoding (the plaintext wrapped in key files).",
        "enc_key": hx(&key.enc_key),
        "id_key": hx(&key.id_key),
        "chunker_seed": format!("{:#018x}", key.chunker_seed),
        "postcard": hx(&postcard_master(&key)),
    });
    let v = golden("master_key.json", generated);
    let seed = u64::from_str_radix(
        field(&v, "chunker_seed")
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let decoded = MasterKey {
        enc_key: bytes(&v, "enc_key").try_into().unwrap(),
        id_key: bytes(&v, "id_key").try_into().unwrap(),
        chunker_seed: seed,
    };
    assert_eq!(decoded, key);
    let enc = bytes(&v, "postcard");
    assert_eq!(&enc[..32], &key.enc_key);
    assert_eq!(&enc[32..64], &key.id_key);
}

/// The master key's postcard encoding, written out by hand (the key file vector checks it
/// against what `KeyFile::wrap` actually seals): 32 + 32 raw bytes, then the seed as a varint.
fn postcard_master(key: &MasterKey) -> Vec<u8> {
    let mut out = key.enc_key.to_vec();
    out.extend_from_slice(&key.id_key);
    let mut s = key.chunker_seed;
    loop {
        let b = (s & 0x7f) as u8;
        s >>= 7;
        if s == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out
}

fn id_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("abc", b"abc".to_vec()),
        (
            "3000 bytes i % 251 (more than one BLAKE3 chunk)",
            (0..3000u32).map(|i| (i % 251) as u8).collect(),
        ),
    ]
}

#[test]
fn ids() {
    let key = master();
    let cases: Vec<Value> = id_inputs()
        .into_iter()
        .map(|(name, input)| {
            json!({
                "name": name,
                "input": hx(&input),
                "blob_id": key.blob_id(&input).to_hex(),
                "stored_id": stored_id(&input),
            })
        })
        .collect();
    let generated = json!({
        "description": "blob_id = BLAKE3 keyed with id_key over the plaintext; stored_id = unkeyed BLAKE3-256 of stored bytes (the name of every stored object).",
        "id_key": hx(&key.id_key),
        "cases": cases,
    });
    let v = golden("ids.json", generated);
    for c in items(&v, "cases") {
        let input = bytes(c, "input");
        let want: BlobId = field(c, "blob_id").as_str().unwrap().parse().unwrap();
        assert_eq!(key.blob_id(&input), want);
        assert_eq!(Digest::of_stored(&input), digest(c, "stored_id"));
    }
}

// ---------------------------------------------------------------------------------------------
// Crypto

/// `(name, nonce, associated data, plaintext)`.
type SealCase = (&'static str, [u8; 24], &'static [u8], &'static [u8]);

fn seal_cases() -> Vec<SealCase> {
    vec![
        (
            "message with associated data",
            std::array::from_fn(|i| 0x40 + i as u8),
            b"strata:example",
            b"hello, strata",
        ),
        ("empty message, empty associated data", [0u8; 24], b"", b""),
    ]
}

#[test]
fn seal() {
    let key = master();
    let cases: Vec<Value> = seal_cases()
        .into_iter()
        .map(|(name, nonce, aad, plaintext)| {
            json!({
                "name": name,
                "key": hx(&key.enc_key),
                "nonce": hx(&nonce),
                "aad": hx(aad),
                "plaintext": hx(plaintext),
                "sealed": hx(&crypto::seal_with_nonce(&key.enc_key, &nonce, aad, plaintext)),
            })
        })
        .collect();
    let v = golden(
        "seal.json",
        json!({
            "description": "XChaCha20-Poly1305: sealed = nonce (24) || ciphertext || tag (16).",
            "cases": cases,
        }),
    );
    for c in items(&v, "cases") {
        let key: [u8; 32] = bytes(c, "key").try_into().unwrap();
        let sealed = bytes(c, "sealed");
        let plaintext = bytes(c, "plaintext");
        assert_eq!(&sealed[..NONCE_LEN], bytes(c, "nonce").as_slice());
        assert_eq!(sealed.len(), plaintext.len() + crypto::SEAL_OVERHEAD);
        assert_eq!(
            crypto::open(&key, "vector", &bytes(c, "aad"), &sealed).unwrap(),
            plaintext
        );
        assert!(crypto::open(&key, "vector", b"strata:other", &sealed).is_err());
    }
}

#[test]
fn envelope() {
    let key = master();
    let values: Vec<(&str, u64, Vec<u8>)> = vec![
        (
            "compressible: version 1, postcard(vec![\"strata\"; 40])",
            17,
            encode_versioned(1, &vec!["strata"; 40]),
        ),
        (
            "short (under 64 bytes, never compressed): version 1, postcard(\"hi\")",
            18,
            encode_versioned(1, &"hi"),
        ),
    ];
    let cases: Vec<Value> = values
        .into_iter()
        .map(|(name, seed, data)| {
            let sealed = seal_object(&key, &mut rng(seed), "example", b"", &data, 3);
            let env = envelope_plaintext("example", b"", &sealed);
            let compression = Compression::from_byte("vector", env[0]).unwrap();
            json!({
                "name": name,
                "kind": "example",
                "aad": hx(&aad("example", b"")),
                "rng_seed": seed,
                "versioned_data": hx(&data),
                "compression": compression_name(compression),
                "envelope_plaintext": hx(&env),
                "nonce": hx(&sealed[..NONCE_LEN]),
                "stored": hx(&sealed),
            })
        })
        .collect();
    let v = golden(
        "envelope.json",
        json!({
            "description": "The encrypted object envelope with the illustrative kind \"example\" (not a real object kind).",
            "cases": cases,
        }),
    );
    for c in items(&v, "cases") {
        check_envelope(
            c,
            "example",
            b"",
            &bytes(c, "stored"),
            &bytes(c, "versioned_data"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Blobs and packs

fn blob_cases() -> Vec<(&'static str, u64, Vec<u8>)> {
    vec![
        ("compressible data blob", 1, compressible()),
        (
            "incompressible data blob (256 bytes of ChaCha20Rng(100))",
            2,
            incompressible(),
        ),
        (
            "short data blob (under 64 bytes, never compressed)",
            3,
            b"hello".to_vec(),
        ),
        ("empty data blob", 4, Vec::new()),
    ]
}

fn blob_json(name: &str, seed: u64, blob_type: BlobType, plaintext: &[u8], stored: &[u8]) -> Value {
    let h = BlobHeader::parse(stored).unwrap();
    json!({
        "name": name,
        "rng_seed": seed,
        "blob_type": blob_type.name(),
        "plaintext": hx(plaintext),
        "id": h.id.to_hex(),
        "compression": compression_name(h.compression),
        "raw_length": h.raw_length,
        "payload_length": h.payload_length,
        "header": hx(&stored[..BLOB_HEADER_LEN]),
        "nonce": hx(&stored[BLOB_HEADER_LEN..BLOB_HEADER_LEN + NONCE_LEN]),
        "stored": hx(stored),
    })
}

fn check_blob(c: &Value, blob_type: BlobType) {
    let key = master();
    let stored = bytes(c, "stored");
    let plaintext = bytes(c, "plaintext");
    let id = BlobId(digest(c, "id"));
    let h = BlobHeader::parse(&stored).unwrap();
    assert_eq!(h.blob_type, blob_type);
    assert_eq!(h.id, id);
    assert_eq!(h.raw_length as u64, num(c, "raw_length"));
    assert_eq!(h.payload_length as u64, num(c, "payload_length"));
    assert_eq!(
        compression_name(h.compression),
        field(c, "compression").as_str().unwrap()
    );
    assert_eq!(&stored[..BLOB_HEADER_LEN], bytes(c, "header").as_slice());
    assert_eq!(h.to_bytes().as_slice(), &stored[..BLOB_HEADER_LEN]);
    let (h2, plain) = decode_blob(&key, Some((blob_type, id)), &stored).unwrap();
    assert_eq!(h2, h);
    assert_eq!(plain, plaintext);
    assert_eq!(key.blob_id(&plain), id);
}

#[test]
fn blobs() {
    let key = master();
    let cases: Vec<Value> = blob_cases()
        .into_iter()
        .map(|(name, seed, plaintext)| {
            let id = key.blob_id(&plaintext);
            let stored = encode_blob(&key, &mut rng(seed), BlobType::Data, id, &plaintext, 3);
            blob_json(name, seed, BlobType::Data, &plaintext, &stored)
        })
        .collect();
    let v = golden(
        "blob.json",
        json!({
            "description": "Stored blobs: 44-byte clear header || nonce || ciphertext || tag, header as associated data; zstd level 3.",
            "cases": cases,
        }),
    );
    let names: Vec<&str> = items(&v, "cases")
        .iter()
        .map(|c| field(c, "compression").as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["zstd", "none", "none", "none"],
        "the cases must cover both compressions"
    );
    for c in items(&v, "cases") {
        check_blob(c, BlobType::Data);
    }
}

const PACK_SEED: u64 = 10;

/// Two data blobs (compressible, incompressible) in one pack, all nonces from ChaCha20Rng(10).
fn golden_pack() -> (Vec<u8>, Vec<PackBlob>, Vec<Vec<u8>>) {
    let key = master();
    let mut r = rng(PACK_SEED);
    let mut pb = PackBuilder::new();
    let plaintexts = vec![compressible(), incompressible()];
    for p in &plaintexts {
        let id = key.blob_id(p);
        let stored = encode_blob(&key, &mut r, BlobType::Data, id, p, 3);
        pb.add(BlobType::Data, id, p.len() as u32, &stored);
    }
    let (bytes, blobs) = pb.finish(&key, &mut r);
    (bytes, blobs, plaintexts)
}

fn pack_blob_json(b: &PackBlob) -> Value {
    json!({
        "blob_type": b.blob_type.name(),
        "id": b.id.to_hex(),
        "offset": b.offset,
        "length": b.length,
        "raw_length": b.raw_length,
    })
}

fn pack_blob_from(v: &Value) -> PackBlob {
    PackBlob {
        blob_type: blob_type_from(field(v, "blob_type").as_str().unwrap()),
        id: BlobId(digest(v, "id")),
        offset: num(v, "offset") as u32,
        length: num(v, "length") as u32,
        raw_length: num(v, "raw_length") as u32,
    }
}

fn blob_type_from(s: &str) -> BlobType {
    match s {
        "data" => BlobType::Data,
        "tree" => BlobType::Tree,
        other => panic!("unknown blob type {other}"),
    }
}

#[test]
fn pack() {
    let (pack, blobs, plaintexts) = golden_pack();
    let n = pack.len();
    let hlen = u32::from_le_bytes(pack[n - 4..].try_into().unwrap()) as usize;
    let sealed_header = &pack[n - 4 - hlen..n - 4];
    let header_data = encode_versioned(PACK_HEADER_VERSION, &blobs);
    let blob_values: Vec<Value> = blobs
        .iter()
        .zip(&plaintexts)
        .map(|(b, p)| {
            let mut j = pack_blob_json(b);
            j["plaintext"] = hx(p);
            j
        })
        .collect();
    let generated = json!({
        "description": "A pack of two data blobs. Randomness: ChaCha20Rng(rng_seed) gives the nonce of blob 0, then blob 1, then the pack header.",
        "rng_seed": PACK_SEED,
        "blobs": blob_values,
        "header_versioned_data": hx(&header_data),
        "header_length": hlen,
        "compression": compression_name(Compression::from_byte("vector", envelope_plaintext("packheader", b"", sealed_header)[0]).unwrap()),
        "envelope_plaintext": hx(&envelope_plaintext("packheader", b"", sealed_header)),
        "nonce": hx(&sealed_header[..NONCE_LEN]),
        "stored": hx(&pack),
        "id": stored_id(&pack),
    });
    let v = golden("pack.json", generated);

    let key = master();
    let stored = bytes(&v, "stored");
    assert_eq!(PackId(Digest::of_stored(&stored)), PackId(digest(&v, "id")));
    let want: Vec<PackBlob> = items(&v, "blobs").iter().map(pack_blob_from).collect();
    assert_eq!(read_pack_header(&key, &stored).unwrap(), want);
    for (b, j) in want.iter().zip(items(&v, "blobs")) {
        let s = &stored[b.offset as usize..(b.offset + b.length) as usize];
        let (_, plain) = decode_blob(&key, Some((b.blob_type, b.id)), s).unwrap();
        assert_eq!(plain, bytes(j, "plaintext"));
        assert_eq!(plain.len() as u32, b.raw_length);
    }
    let n = stored.len();
    let hlen = u32::from_le_bytes(stored[n - 4..].try_into().unwrap()) as usize;
    assert_eq!(hlen as u64, num(&v, "header_length"));
    check_envelope(
        &v,
        "packheader",
        b"",
        &stored[n - 4 - hlen..n - 4],
        &bytes(&v, "header_versioned_data"),
    );
}

// ---------------------------------------------------------------------------------------------
// Encrypted objects: index, snapshot, lock

fn encrypted_object_json<T: EncryptedObject>(
    name: &str,
    seed: u64,
    value: &T,
    readable: Value,
) -> Value {
    let key = master();
    let stored = value.encode(&key, &mut rng(seed));
    let env = envelope_plaintext(T::KIND, b"", &stored);
    json!({
        "name": name,
        "rng_seed": seed,
        "value": readable,
        "versioned_data": hx(&encode_versioned(T::VERSION, value)),
        "compression": compression_name(Compression::from_byte("vector", env[0]).unwrap()),
        "envelope_plaintext": hx(&env),
        "nonce": hx(&stored[..NONCE_LEN]),
        "stored": hx(&stored),
        "id": stored_id(&stored),
    })
}

fn check_encrypted_object<T: EncryptedObject + PartialEq + std::fmt::Debug>(c: &Value, want: &T) {
    let key = master();
    let stored = bytes(c, "stored");
    let data = bytes(c, "versioned_data");
    assert_eq!(Digest::of_stored(&stored), digest(c, "id"));
    assert_eq!(&T::decode(&key, &stored).unwrap(), want);
    assert_eq!(&T::decode_plain(&data).unwrap(), want);
    check_envelope(c, T::KIND, b"", &stored, &data);
}

fn golden_index() -> IndexFile {
    let (pack, blobs, _) = golden_pack();
    IndexFile {
        supersedes: vec![IndexId(Digest::of_stored(b"an older index file"))],
        packs: vec![IndexPack {
            id: PackId(Digest::of_stored(&pack)),
            size: pack.len() as u64,
            blobs: blobs.clone(),
        }],
        marked: vec![MarkedPack {
            mark: *b"prune run mark 1",
            marked_ns: 1_700_000_000_000_000_000,
            pack: IndexPack {
                id: PackId(Digest::of_stored(b"a pack no snapshot needs")),
                size: pack.len() as u64,
                blobs: blobs[..1].to_vec(),
            },
        }],
        seals: vec![Seal {
            mark: *b"prune run mark 1",
            sealed_ns: 1_700_000_001_000_000_000,
            sessions: vec![*b"backup session 1", *b"backup session 2"],
        }],
    }
}

fn index_pack_json(p: &IndexPack) -> Value {
    json!({
        "id": p.id.to_hex(),
        "size": p.size,
        "blobs": p.blobs.iter().map(pack_blob_json).collect::<Vec<_>>(),
    })
}

fn index_pack_from(p: &Value) -> IndexPack {
    IndexPack {
        id: PackId(digest(p, "id")),
        size: num(p, "size"),
        blobs: items(p, "blobs").iter().map(pack_blob_from).collect(),
    }
}

fn index_json(i: &IndexFile) -> Value {
    json!({
        "supersedes": i.supersedes.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
        "packs": i.packs.iter().map(index_pack_json).collect::<Vec<_>>(),
        "marked": i.marked.iter().map(|m| json!({
            "mark": hex::encode(m.mark),
            "marked_ns": m.marked_ns,
            "pack": index_pack_json(&m.pack),
        })).collect::<Vec<_>>(),
        "seals": i.seals.iter().map(|s| json!({
            "mark": hex::encode(s.mark),
            "sealed_ns": s.sealed_ns,
            "sessions": s.sessions.iter().map(hex::encode).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn index_from_json(val: &Value) -> IndexFile {
    let list = |key: &str| {
        val.get(key)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    IndexFile {
        supersedes: items(val, "supersedes")
            .iter()
            .map(|s| {
                s.as_str()
                    .unwrap()
                    .parse::<strata_format::id::IndexId>()
                    .unwrap()
            })
            .collect(),
        packs: items(val, "packs").iter().map(index_pack_from).collect(),
        marked: list("marked")
            .iter()
            .map(|m| MarkedPack {
                mark: bytes(m, "mark").try_into().unwrap(),
                marked_ns: field(m, "marked_ns").as_i64().unwrap(),
                pack: index_pack_from(field(m, "pack")),
            })
            .collect(),
        seals: list("seals")
            .iter()
            .map(|s| Seal {
                mark: bytes(s, "mark").try_into().unwrap(),
                sealed_ns: field(s, "sealed_ns").as_i64().unwrap(),
                sessions: items(s, "sessions")
                    .iter()
                    .map(|x| {
                        hex::decode(x.as_str().unwrap())
                            .unwrap()
                            .try_into()
                            .unwrap()
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn index() {
    let idx = golden_index();
    let v = golden(
        "index.json",
        json!({
            "description": "An index file naming the pack of pack.json, with a pack marked for deletion and the seal of its mark (version 2).",
            "cases": [encrypted_object_json("index of pack.json", 11, &idx, index_json(&idx))],
        }),
    );
    for c in items(&v, "cases") {
        assert_eq!(index_from_json(field(c, "value")), idx);
        check_encrypted_object(c, &idx);
    }
}

/// Version 1 index files (before marks and seals) still decode, with none. `index-v1.json`
/// is the v1 `index.json`, kept as it was.
#[test]
fn index_version_1_still_decodes() {
    let key = master();
    let text = fs::read_to_string(vectors_dir().join("index-v1.json")).expect("index-v1.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let cases = items(&v, "cases");
    assert_eq!(cases.len(), 1);
    for c in cases {
        let data = bytes(c, "versioned_data");
        assert_eq!(&data[..2], &[1, 0]);
        let want = index_from_json(field(c, "value"));
        assert!(want.marked.is_empty() && want.seals.is_empty());
        assert_eq!(want.packs.len(), 1);
        assert_eq!(IndexFile::decode(&key, &bytes(c, "stored")).unwrap(), want);
        assert_eq!(IndexFile::decode_plain(&data).unwrap(), want);
    }
}

fn golden_snapshots() -> Vec<(&'static str, u64, SnapshotFile)> {
    let key = master();
    let files = SnapshotFile {
        time_ns: 1_700_000_000_000_000_000,
        hostname: "web1".into(),
        username: "root".into(),
        uid: 0,
        gid: 0,
        paths: vec!["/etc".into(), "/srv/www".into()],
        tags: vec!["daily".into()],
        project: None,
        excludes: vec![],
        source: SourceKind::Files,
        source_meta: vec![],
        tree: key.blob_id(&golden_tree().encode()),
        parent: None,
        program_version: "strata 0.1.0".into(),
        summary: SnapshotSummary {
            files_new: 8,
            dirs: 1,
            bytes_read: 14,
            bytes_added: 1234,
            data_blobs_added: 2,
            tree_blobs_added: 2,
            duration_secs: 0.25,
            bytes_total: 14,
            ..SnapshotSummary::default()
        },
        keep_until_ns: None,
        original: None,
        rewrites: Vec::new(),
    };
    let stdin = SnapshotFile {
        time_ns: 1_700_086_400_000_000_000,
        hostname: "db1".into(),
        username: "postgres".into(),
        uid: 26,
        gid: 26,
        paths: vec![],
        tags: vec!["nightly".into(), "tax-records".into()],
        project: Some("billing".into()),
        excludes: vec!["*.tmp".into()],
        source: SourceKind::Stdin {
            filename: "billing.sql".into(),
        },
        source_meta: vec![
            ("server_version".into(), "16.2".into()),
            ("tables".into(), "12".into()),
        ],
        tree: key.blob_id(&Tree::default().encode()),
        parent: Some(SnapshotId(Digest::of_stored(b"a parent snapshot"))),
        program_version: "strata 0.1.0".into(),
        summary: SnapshotSummary {
            files_new: 0,
            files_changed: 1,
            files_unchanged: 0,
            dirs: 0,
            bytes_read: 1 << 30,
            bytes_added: 52_428_800,
            data_blobs_added: 300,
            tree_blobs_added: 1,
            duration_secs: 61.5,
            errors: 0,
            bytes_total: 1 << 30,
        },
        keep_until_ns: Some(1_920_000_000_000_000_000),
        original: Some(SnapshotId(Digest::of_stored(
            b"the snapshot as first written",
        ))),
        rewrites: vec![Rewrite {
            time_ns: 1_700_090_000_000_000_000,
            hostname: "db1".into(),
            username: "auditor".into(),
            change: "hold set until 2030-11-05 00:00:00 UTC".into(),
        }],
    };
    vec![
        ("files snapshot, minimal options", 13, files),
        ("stdin snapshot with every option", 14, stdin),
    ]
}

fn snapshot_json(s: &SnapshotFile) -> Value {
    let source = match &s.source {
        SourceKind::Files => json!("files"),
        SourceKind::Stdin { filename } => json!({ "stdin": { "filename": filename } }),
        SourceKind::Postgres => json!("postgres"),
        SourceKind::Mysql => json!("mysql"),
        SourceKind::Sqlite => json!("sqlite"),
    };
    let m = &s.summary;
    json!({
        "time_ns": s.time_ns,
        "hostname": s.hostname,
        "username": s.username,
        "uid": s.uid,
        "gid": s.gid,
        "paths": s.paths,
        "tags": s.tags,
        "project": s.project,
        "excludes": s.excludes,
        "source": source,
        "source_meta": s.source_meta,
        "tree": s.tree.to_hex(),
        "parent": s.parent.map(|p| p.to_hex()),
        "program_version": s.program_version,
        "summary": {
            "files_new": m.files_new,
            "files_changed": m.files_changed,
            "files_unchanged": m.files_unchanged,
            "dirs": m.dirs,
            "bytes_read": m.bytes_read,
            "bytes_added": m.bytes_added,
            "data_blobs_added": m.data_blobs_added,
            "tree_blobs_added": m.tree_blobs_added,
            "duration_secs": m.duration_secs,
            "errors": m.errors,
            "bytes_total": m.bytes_total,
        },
        "keep_until_ns": s.keep_until_ns,
        "original": s.original.map(|o| o.to_hex()),
        "rewrites": s.rewrites.iter().map(|r| json!({
            "time_ns": r.time_ns,
            "hostname": r.hostname,
            "username": r.username,
            "change": r.change,
        })).collect::<Vec<_>>(),
    })
}

#[test]
fn snapshot() {
    let snaps = golden_snapshots();
    let cases: Vec<Value> = snaps
        .iter()
        .map(|(name, seed, s)| encrypted_object_json(name, *seed, s, snapshot_json(s)))
        .collect();
    let v = golden(
        "snapshot.json",
        json!({
            "description": "Snapshot files. The first names the tree of tree.json, the second the empty tree.",
            "cases": cases,
        }),
    );
    let cases = items(&v, "cases");
    assert_eq!(cases.len(), snaps.len());
    for (c, (_, _, s)) in cases.iter().zip(&snaps) {
        let val = field(c, "value");
        assert_eq!(field(val, "hostname").as_str().unwrap(), s.hostname);
        assert_eq!(digest(val, "tree"), s.tree.0);
        check_encrypted_object(c, s);
    }
}

/// Version 1 snapshots (written before `original` and `rewrites`) still decode, with
/// neither. `snapshot-v1.json` is the v1 `snapshot.json`, kept as it was.
#[test]
fn snapshot_version_1_still_decodes() {
    let key = master();
    let text =
        fs::read_to_string(vectors_dir().join("snapshot-v1.json")).expect("snapshot-v1.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let cases = items(&v, "cases");
    let want = golden_snapshots();
    assert_eq!(cases.len(), want.len());
    for (c, (_, _, s)) in cases.iter().zip(want) {
        let data = bytes(c, "versioned_data");
        assert_eq!(&data[..2], &[1, 0]);
        let s = SnapshotFile {
            original: None,
            rewrites: Vec::new(),
            summary: SnapshotSummary {
                bytes_total: 0,
                ..s.summary
            },
            ..s
        };
        assert_eq!(SnapshotFile::decode(&key, &bytes(c, "stored")).unwrap(), s);
        assert_eq!(SnapshotFile::decode_plain(&data).unwrap(), s);
    }
}

/// Version 2 snapshots (written before `bytes_total`) still decode, with it 0 (and
/// `size()` the bytes read). `snapshot-v2.json` is the v2 `snapshot.json`, kept as it was.
#[test]
fn snapshot_version_2_still_decodes() {
    let key = master();
    let text =
        fs::read_to_string(vectors_dir().join("snapshot-v2.json")).expect("snapshot-v2.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let cases = items(&v, "cases");
    let want = golden_snapshots();
    assert_eq!(cases.len(), want.len());
    for (c, (_, _, s)) in cases.iter().zip(want) {
        let data = bytes(c, "versioned_data");
        assert_eq!(&data[..2], &[2, 0]);
        let s = SnapshotFile {
            summary: SnapshotSummary {
                bytes_total: 0,
                ..s.summary
            },
            ..s
        };
        let decoded = SnapshotFile::decode(&key, &bytes(c, "stored")).unwrap();
        assert_eq!(decoded, s);
        assert_eq!(decoded.summary.size(), s.summary.bytes_read);
        assert_eq!(SnapshotFile::decode_plain(&data).unwrap(), s);
    }
}

fn golden_locks() -> Vec<(&'static str, u64, LockFile)> {
    vec![
        (
            "shared lock of a backup",
            15,
            LockFile {
                kind: LockKind::Shared,
                hostname: "web1".into(),
                username: "root".into(),
                pid: 4121,
                time_ns: 1_700_000_000_000_000_000,
                operation: "backup".into(),
                process: Some(ProcessIdentity {
                    boot_id: "5f1c1e0e-8d3a-4c59-9b1e-2a7d9c0f4b11".into(),
                    pid_namespace: 4_026_531_836,
                    start_ticks: 123_456,
                    instance: *b"0123456789abcdef",
                }),
                session: *b"backup session 1",
            },
        ),
        (
            "prune lock, identity unknown",
            16,
            LockFile {
                kind: LockKind::Prune,
                hostname: "admin.example.org".into(),
                username: "backup".into(),
                pid: 77,
                time_ns: 1_700_003_600_000_000_000,
                operation: "prune".into(),
                process: Some(ProcessIdentity {
                    boot_id: String::new(),
                    pid_namespace: 0,
                    start_ticks: 0,
                    instance: [0xa5; 16],
                }),
                session: [0x5a; 16],
            },
        ),
    ]
}

fn lock_json(l: &LockFile) -> Value {
    json!({
        "kind": l.kind.name(),
        "hostname": l.hostname,
        "username": l.username,
        "pid": l.pid,
        "time_ns": l.time_ns,
        "operation": l.operation,
        "process": l.process.as_ref().map(|p| json!({
            "boot_id": p.boot_id,
            "pid_namespace": p.pid_namespace,
            "start_ticks": p.start_ticks,
            "instance": hex::encode(p.instance),
        })),
        "session": hex::encode(l.session),
    })
}

/// A lock from a vector of any version: `exclusive` (versions 1 and 2) or `kind`; `session`
/// (version 3) or what older versions decode to (the process instance, or zero).
fn lock_from_json(val: &Value) -> LockFile {
    let kind = match val.get("kind").and_then(|k| k.as_str()) {
        Some("shared") => LockKind::Shared,
        Some("prune") => LockKind::Prune,
        Some("exclusive") => LockKind::Exclusive,
        Some(other) => panic!("unknown lock kind {other}"),
        None if field(val, "exclusive").as_bool().unwrap() => LockKind::Exclusive,
        None => LockKind::Shared,
    };
    let mut lock = LockFile {
        kind,
        hostname: field(val, "hostname").as_str().unwrap().into(),
        username: field(val, "username").as_str().unwrap().into(),
        pid: num(val, "pid") as u32,
        time_ns: field(val, "time_ns").as_i64().unwrap(),
        operation: field(val, "operation").as_str().unwrap().into(),
        process: val
            .get("process")
            .filter(|p| !p.is_null())
            .map(|p| ProcessIdentity {
                boot_id: field(p, "boot_id").as_str().unwrap().into(),
                pid_namespace: num(p, "pid_namespace"),
                start_ticks: num(p, "start_ticks"),
                instance: bytes(p, "instance").try_into().unwrap(),
            }),
        session: [0; 16],
    };
    lock.session = match val.get("session") {
        Some(s) => hex::decode(s.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
        None => lock.process.as_ref().map_or([0; 16], |p| p.instance),
    };
    lock
}

#[test]
fn lock() {
    let locks = golden_locks();
    let cases: Vec<Value> = locks
        .iter()
        .map(|(name, seed, l)| encrypted_object_json(name, *seed, l, lock_json(l)))
        .collect();
    let v = golden(
        "lock.json",
        json!({ "description": "Lock files (version 3).", "cases": cases }),
    );
    for (c, (_, _, l)) in items(&v, "cases").iter().zip(&locks) {
        assert_eq!(&lock_from_json(field(c, "value")), l);
        check_encrypted_object(c, l);
    }
}

/// Version 1 locks (written before `process`) still decode, with no identity: such a lock
/// can only expire, never be judged stale for certain. `lock-v1.json` is the v1
/// `lock.json`, kept as it was.
#[test]
fn lock_version_1_still_decodes() {
    let key = master();
    let text = fs::read_to_string(vectors_dir().join("lock-v1.json")).expect("lock-v1.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let cases = items(&v, "cases");
    assert_eq!(cases.len(), 2);
    for c in cases {
        let data = bytes(c, "versioned_data");
        assert_eq!(&data[..2], &[1, 0]);
        let want = lock_from_json(field(c, "value"));
        assert_eq!(want.process, None);
        assert_eq!(LockFile::decode(&key, &bytes(c, "stored")).unwrap(), want);
        assert_eq!(LockFile::decode_plain(&data).unwrap(), want);
    }
}

/// Version 2 locks (`exclusive`, no `session`) still decode: a shared or exclusive kind, and
/// the process instance as the session. `lock-v2.json` is the v2 `lock.json`, kept as it was.
#[test]
fn lock_version_2_still_decodes() {
    let key = master();
    let text = fs::read_to_string(vectors_dir().join("lock-v2.json")).expect("lock-v2.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let cases = items(&v, "cases");
    assert_eq!(cases.len(), 2);
    for c in cases {
        let data = bytes(c, "versioned_data");
        assert_eq!(&data[..2], &[2, 0]);
        let want = lock_from_json(field(c, "value"));
        assert_eq!(want.session, want.process.as_ref().unwrap().instance);
        assert_eq!(LockFile::decode(&key, &bytes(c, "stored")).unwrap(), want);
        assert_eq!(LockFile::decode_plain(&data).unwrap(), want);
    }
    let kinds: Vec<LockKind> = cases
        .iter()
        .map(|c| {
            LockFile::decode_plain(&bytes(c, "versioned_data"))
                .unwrap()
                .kind
        })
        .collect();
    assert_eq!(kinds, [LockKind::Shared, LockKind::Exclusive]);
}

// ---------------------------------------------------------------------------------------------
// Evidence

fn golden_evidence() -> Vec<(&'static str, u64, EvidenceFile)> {
    let record = r#"{"time_ns":1700000000000000000,"project":"shop","repository":"hot","run_id":"20231114T221320Z-0a84","ok":true,"error":null,"user":null,"body":{"kind":"run","trigger":"due","started_ns":1699999990000000000,"exit_code":0,"snapshots":[],"pid":4121}}"#;
    vec![
        (
            "run summary of two snapshots with the catalog head",
            17,
            EvidenceFile {
                kind: EvidenceKind::RunSummary,
                time_ns: 1_700_000_000_000_000_000,
                hostname: "web1".into(),
                project: Some("shop".into()),
                snapshots: vec![
                    SnapshotId(Digest::of_stored(b"snapshot one")),
                    SnapshotId(Digest::of_stored(b"snapshot two")),
                ],
                catalog_head: Some(CatalogHead {
                    seq: 42,
                    hash: [0x5c; 32],
                }),
                records: vec![record.into()],
            },
        ),
        (
            "restore test without a catalog",
            18,
            EvidenceFile {
                kind: EvidenceKind::RestoreTest,
                time_ns: 1_700_086_400_000_000_000,
                hostname: "admin.example.org".into(),
                project: None,
                snapshots: vec![SnapshotId(Digest::of_stored(b"a database snapshot"))],
                catalog_head: None,
                records: vec![],
            },
        ),
    ]
}

fn evidence_json(e: &EvidenceFile) -> Value {
    json!({
        "kind": e.kind.name(),
        "time_ns": e.time_ns,
        "hostname": e.hostname,
        "project": e.project,
        "snapshots": e.snapshots.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
        "catalog_head": e.catalog_head.map(|h| json!({ "seq": h.seq, "hash": hex::encode(h.hash) })),
        "records": e.records,
    })
}

fn evidence_from_json(v: &Value) -> EvidenceFile {
    EvidenceFile {
        kind: match field(v, "kind").as_str().unwrap() {
            "run-summary" => EvidenceKind::RunSummary,
            "restore-test" => EvidenceKind::RestoreTest,
            other => panic!("evidence kind {other}"),
        },
        time_ns: field(v, "time_ns").as_i64().unwrap(),
        hostname: field(v, "hostname").as_str().unwrap().into(),
        project: field(v, "project").as_str().map(String::from),
        snapshots: items(v, "snapshots")
            .iter()
            .map(|s| s.as_str().unwrap().parse().unwrap())
            .collect(),
        catalog_head: v
            .get("catalog_head")
            .filter(|h| !h.is_null())
            .map(|h| CatalogHead {
                seq: num(h, "seq"),
                hash: bytes(h, "hash").try_into().unwrap(),
            }),
        records: items(v, "records")
            .iter()
            .map(|r| r.as_str().unwrap().into())
            .collect(),
    }
}

#[test]
fn evidence() {
    let all = golden_evidence();
    let cases: Vec<Value> = all
        .iter()
        .map(|(name, seed, e)| encrypted_object_json(name, *seed, e, evidence_json(e)))
        .collect();
    let v = golden(
        "evidence.json",
        json!({ "description": "Evidence files: run summaries and restore-test reports.", "cases": cases }),
    );
    for (c, (_, _, e)) in items(&v, "cases").iter().zip(&all) {
        assert_eq!(&evidence_from_json(field(c, "value")), e);
        check_encrypted_object(c, e);
    }
}

// ---------------------------------------------------------------------------------------------
// WAL files

fn golden_wal() -> Vec<(&'static str, u64, WalFile)> {
    let blob = |seed: &[u8]| BlobId(Digest::of_stored(seed));
    vec![
        (
            "one pushed segment (16 MiB in two blobs) of timeline 1",
            21,
            WalFile {
                project: "shop".into(),
                system_id: 7_312_345_678_901_234_567,
                timeline: 1,
                seg_size: 16 << 20,
                wal_magic: 0xD110,
                entries: vec![WalEntry {
                    name: "000000010000000000000003".into(),
                    size: 16 << 20,
                    hash: [0x3a; 32],
                    blobs: vec![blob(b"wal chunk one"), blob(b"wal chunk two")],
                    pushed_ns: 1_700_000_000_000_000_000,
                }],
            },
        ),
        (
            "a merged file of timeline 2: its history file, a backup history file, a segment",
            22,
            WalFile {
                project: "shop".into(),
                system_id: 7_312_345_678_901_234_567,
                timeline: 2,
                seg_size: 16 << 20,
                wal_magic: 0xD110,
                entries: vec![
                    WalEntry {
                        name: "00000002.history".into(),
                        size: 42,
                        hash: [0x02; 32],
                        blobs: vec![blob(b"history")],
                        pushed_ns: 1_700_000_100_000_000_000,
                    },
                    WalEntry {
                        name: "000000020000000000000007".into(),
                        size: 16 << 20,
                        hash: [0x07; 32],
                        blobs: vec![blob(b"zeros")],
                        pushed_ns: 1_700_000_300_000_000_000,
                    },
                    WalEntry {
                        name: "000000020000000000000007.00000028.backup".into(),
                        size: 310,
                        hash: [0x28; 32],
                        blobs: vec![blob(b"backup label")],
                        pushed_ns: 1_700_000_200_000_000_000,
                    },
                ],
            },
        ),
    ]
}

fn wal_json(w: &WalFile) -> Value {
    json!({
        "project": w.project,
        "system_id": w.system_id,
        "timeline": w.timeline,
        "seg_size": w.seg_size,
        "wal_magic": w.wal_magic,
        "entries": w.entries.iter().map(|e| json!({
            "name": e.name,
            "size": e.size,
            "hash": hex::encode(e.hash),
            "blobs": e.blobs.iter().map(|b| b.to_hex()).collect::<Vec<_>>(),
            "pushed_ns": e.pushed_ns,
        })).collect::<Vec<_>>(),
    })
}

fn wal_from_json(v: &Value) -> WalFile {
    WalFile {
        project: field(v, "project").as_str().unwrap().into(),
        system_id: num(v, "system_id"),
        timeline: num(v, "timeline") as u32,
        seg_size: num(v, "seg_size") as u32,
        wal_magic: num(v, "wal_magic") as u16,
        entries: items(v, "entries")
            .iter()
            .map(|e| WalEntry {
                name: field(e, "name").as_str().unwrap().into(),
                size: num(e, "size"),
                hash: bytes(e, "hash").try_into().unwrap(),
                blobs: items(e, "blobs")
                    .iter()
                    .map(|b| b.as_str().unwrap().parse().unwrap())
                    .collect(),
                pushed_ns: field(e, "pushed_ns").as_i64().unwrap(),
            })
            .collect(),
    }
}

#[test]
fn wal() {
    let all = golden_wal();
    let cases: Vec<Value> = all
        .iter()
        .map(|(name, seed, w)| encrypted_object_json(name, *seed, w, wal_json(w)))
        .collect();
    let v = golden(
        "wal.json",
        json!({ "description": "WAL files: archived PostgreSQL WAL files of one project's cluster and timeline, and the data blobs holding each.", "cases": cases }),
    );
    for (c, (_, _, w)) in items(&v, "cases").iter().zip(&all) {
        assert_eq!(&wal_from_json(field(c, "value")), w);
        check_encrypted_object(c, w);
    }
}

// ---------------------------------------------------------------------------------------------
// Trees

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        user: Some("alice".into()),
        group: Some("staff".into()),
        mtime_ns: 1_700_000_000_123_456_789,
        atime_ns: 1_700_000_100_000_000_000,
        ctime_ns: 1_700_000_000_223_456_789,
        inode: 0,
        device: 2049,
        links: 1,
        size: 0,
        xattrs: vec![],
    }
}

/// A directory with one entry of every kind, a hardlinked pair and a non-UTF-8 name.
fn golden_tree() -> Tree {
    let key = master();
    let chunks = vec![key.blob_id(b"chunk one, "), key.blob_id(b"chunk two")];
    let readme = Node {
        inode: 1001,
        links: 2,
        size: 20,
        xattrs: vec![Xattr {
            name: b"user.comment".to_vec(),
            value: b"golden".to_vec(),
        }],
        ..node(
            b"README.md",
            NodeKind::File {
                content: chunks.clone(),
            },
        )
    };
    let readme_link = Node {
        name: b"readme-link".to_vec(),
        ..readme.clone()
    };
    let mut t = Tree {
        nodes: vec![
            readme,
            readme_link,
            Node {
                mode: 0o755,
                inode: 1002,
                links: 2,
                ..node(
                    b"src",
                    NodeKind::Dir {
                        subtree: key.blob_id(&Tree::default().encode()),
                    },
                )
            },
            Node {
                mode: 0o777,
                inode: 1003,
                ..node(
                    b"bin",
                    NodeKind::Symlink {
                        target: b"usr/bin".to_vec(),
                    },
                )
            },
            Node {
                mode: 0o600,
                inode: 1004,
                ..node(b"fifo", NodeKind::Fifo)
            },
            Node {
                mode: 0o666,
                uid: 0,
                gid: 0,
                user: Some("root".into()),
                group: Some("root".into()),
                inode: 1005,
                ..node(b"dev-null", NodeKind::CharDevice { rdev: 0x103 })
            },
            Node {
                mode: 0o660,
                uid: 0,
                gid: 6,
                user: Some("root".into()),
                group: Some("disk".into()),
                inode: 1006,
                ..node(b"disk", NodeKind::BlockDevice { rdev: 0x800 })
            },
            Node {
                mode: 0o755,
                inode: 1007,
                ..node(b"socket", NodeKind::Socket)
            },
            Node {
                uid: 4_000_000_000,
                gid: 4_000_000_000,
                user: None,
                group: None,
                mtime_ns: -1_000_000_001,
                atime_ns: 0,
                ctime_ns: -1,
                inode: 1008,
                ..node(&[0xff, 0xfe, b'x'], NodeKind::File { content: vec![] })
            },
        ],
    };
    t.sort();
    t
}

fn name_json(name: &[u8]) -> Value {
    match std::str::from_utf8(name) {
        Ok(s) => json!(s),
        Err(_) => Value::Null,
    }
}

fn node_json(n: &Node) -> Value {
    let kind = match &n.kind {
        NodeKind::File { content } => {
            json!({ "file": { "content": content.iter().map(|c| c.to_hex()).collect::<Vec<_>>() } })
        }
        NodeKind::Dir { subtree } => json!({ "dir": { "subtree": subtree.to_hex() } }),
        NodeKind::Symlink { target } => json!({ "symlink": { "target": hx(target) } }),
        NodeKind::Fifo => json!("fifo"),
        NodeKind::CharDevice { rdev } => json!({ "chardev": { "rdev": rdev } }),
        NodeKind::BlockDevice { rdev } => json!({ "blockdev": { "rdev": rdev } }),
        NodeKind::Socket => json!("socket"),
    };
    json!({
        "name": hx(&n.name),
        "name_utf8": name_json(&n.name),
        "kind": kind,
        "mode": n.mode,
        "uid": n.uid,
        "gid": n.gid,
        "user": n.user,
        "group": n.group,
        "mtime_ns": n.mtime_ns,
        "atime_ns": n.atime_ns,
        "ctime_ns": n.ctime_ns,
        "inode": n.inode,
        "device": n.device,
        "links": n.links,
        "size": n.size,
        "xattrs": n.xattrs.iter().map(|x| json!({ "name": hx(&x.name), "value": hx(&x.value) })).collect::<Vec<_>>(),
    })
}

#[test]
fn tree() {
    let key = master();
    let trees = vec![
        ("every node kind", 12, golden_tree()),
        ("empty tree", 19, Tree::default()),
    ];
    let cases: Vec<Value> = trees
        .iter()
        .map(|(name, seed, t)| {
            let enc = t.encode();
            let id = key.blob_id(&enc);
            let stored = encode_blob(&key, &mut rng(*seed), BlobType::Tree, id, &enc, 3);
            json!({
                "name": name,
                "nodes": t.nodes.iter().map(node_json).collect::<Vec<_>>(),
                "encoding": hx(&enc),
                "blob": blob_json(name, *seed, BlobType::Tree, &enc, &stored),
            })
        })
        .collect();
    let v = golden(
        "tree.json",
        json!({
            "description": "Trees: encoding = version (u16 LE) || postcard(Tree) is the plaintext of a tree blob; blob = that plaintext stored as a tree blob.",
            "cases": cases,
        }),
    );
    for (c, (_, _, t)) in items(&v, "cases").iter().zip(&trees) {
        let enc = bytes(c, "encoding");
        assert_eq!(&Tree::decode(&enc).unwrap(), t);
        let names: Vec<Vec<u8>> = items(c, "nodes").iter().map(|n| bytes(n, "name")).collect();
        assert_eq!(
            names,
            t.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>()
        );
        let blob = field(c, "blob");
        assert_eq!(bytes(blob, "plaintext"), enc);
        check_blob(blob, BlobType::Tree);
    }
}

// ---------------------------------------------------------------------------------------------
// Config and key files

fn golden_config() -> ConfigFile {
    ConfigFile {
        repo_id: RepoId(Digest(std::array::from_fn(|i| 0x40 + i as u8))),
        chunker: ChunkerParams::FILES,
        pack_size: 16 << 20,
        compression_level: 3,
        created_ns: 1_700_000_000_000_000_000,
        db_chunker: ChunkerParams::DATABASE,
        format_version: strata_format::config::CONFIG_VERSION,
    }
}

/// The golden config as format version 3 wrote it.
fn config_v3() -> ConfigFile {
    ConfigFile {
        format_version: 3,
        ..golden_config()
    }
}

#[test]
fn config() {
    let key = master();
    let cfg = golden_config();
    let seed = 20;
    let stored = cfg.encode(&key, &mut rng(seed));
    let header = &stored[..42];
    let sealed = &stored[42..];
    let env = envelope_plaintext("config", header, sealed);
    let generated = json!({
        "description": "A config file: 42-byte clear header, then the envelope sealed with associated data \"strata:config\" || header.",
        "rng_seed": seed,
        "value": {
            "repo_id": cfg.repo_id.to_hex(),
            "chunker": { "min_size": cfg.chunker.min_size, "avg_size": cfg.chunker.avg_size, "max_size": cfg.chunker.max_size },
            "pack_size": cfg.pack_size,
            "compression_level": cfg.compression_level,
            "created_ns": cfg.created_ns,
            "db_chunker": { "min_size": cfg.db_chunker.min_size, "avg_size": cfg.db_chunker.avg_size, "max_size": cfg.db_chunker.max_size },
        },
        "header": hx(header),
        "aad": hx(&aad("config", header)),
        "versioned_data": hx(&encode_versioned(cfg.format_version, &cfg)),
        "compression": compression_name(Compression::from_byte("vector", env[0]).unwrap()),
        "envelope_plaintext": hx(&env),
        "nonce": hx(&sealed[..NONCE_LEN]),
        "stored": hx(&stored),
    });
    let v = golden("config.json", generated);
    let stored = bytes(&v, "stored");
    let val = field(&v, "value");
    let chunker = |name| {
        let ch = field(val, name);
        ChunkerParams {
            min_size: num(ch, "min_size") as u32,
            avg_size: num(ch, "avg_size") as u32,
            max_size: num(ch, "max_size") as u32,
        }
    };
    let decoded = ConfigFile {
        repo_id: RepoId(digest(val, "repo_id")),
        chunker: chunker("chunker"),
        pack_size: num(val, "pack_size") as u32,
        compression_level: field(val, "compression_level").as_i64().unwrap() as i32,
        created_ns: field(val, "created_ns").as_i64().unwrap(),
        db_chunker: chunker("db_chunker"),
        format_version: u16::from_le_bytes([stored[8], stored[9]]),
    };
    assert_eq!(decoded.format_version, 4);
    assert_eq!(decoded, cfg);
    assert_eq!(ConfigFile::peek_repo_id(&stored).unwrap(), cfg.repo_id);
    assert_eq!(ConfigFile::peek_version(&stored).unwrap(), 4);
    assert_eq!(ConfigFile::decode(&key, &stored).unwrap(), cfg);
    assert_eq!(&stored[..42], bytes(&v, "header").as_slice());
    check_envelope(
        &v,
        "config",
        &stored[..42],
        &stored[42..],
        &bytes(&v, "versioned_data"),
    );
}

/// A format version 3 config (before WAL files) still decodes, as version 3, and keeps its
/// version when written again (so that `pg wal-push` knows it may not write WAL into it).
#[test]
fn config_version_3_still_decodes() {
    let key = master();
    let text = fs::read_to_string(vectors_dir().join("config-v3.json")).expect("config-v3.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let stored = bytes(&v, "stored");
    assert_eq!(&stored[8..10], &[3, 0]);
    let cfg = ConfigFile::decode(&key, &stored).unwrap();
    assert_eq!(cfg.format_version, 3);
    let mut want = golden_config();
    want.format_version = 3;
    assert_eq!(cfg, want);
    let again = ConfigFile::decode(&key, &cfg.encode(&key, &mut rng(1))).unwrap();
    assert_eq!(again, want);
}

/// A format version 2 config (before the database chunker was recorded) still decodes, as
/// version 2, with the database chunker every version 2 repository used.
#[test]
fn config_version_2_still_decodes() {
    let key = master();
    let text = fs::read_to_string(vectors_dir().join("config-v2.json")).expect("config-v2.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let stored = bytes(&v, "stored");
    assert_eq!(&stored[8..10], &[2, 0]);
    let cfg = ConfigFile::decode(&key, &stored).unwrap();
    assert_eq!(cfg.format_version, 2);
    assert!(cfg.allows_dictionaries());
    let mut want = golden_config();
    want.format_version = 2;
    assert_eq!(cfg, want);
    let again = ConfigFile::decode(&key, &cfg.encode(&key, &mut rng(1))).unwrap();
    assert_eq!(again, want);
}

/// A format version 1 config (written by Strata before dictionaries) still decodes, as
/// version 1, so that writers know not to use dictionaries in that repository.
#[test]
fn config_version_1_still_decodes() {
    let key = master();
    let text = fs::read_to_string(vectors_dir().join("config-v1.json")).expect("config-v1.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let stored = bytes(&v, "stored");
    assert_eq!(&stored[8..10], &[1, 0]);
    let cfg = ConfigFile::decode(&key, &stored).unwrap();
    assert_eq!(cfg.format_version, 1);
    assert!(!cfg.allows_dictionaries());
    let mut want = golden_config();
    want.format_version = 1;
    assert_eq!(cfg, want);
    // Re-encoding keeps the version it was read with.
    let again = ConfigFile::decode(&key, &cfg.encode(&key, &mut rng(1))).unwrap();
    assert_eq!(again.format_version, 1);
}

/// Samples for the dictionary vector: source-like lines with shared structure.
fn dictionary_samples() -> (Vec<u8>, Vec<usize>) {
    let mut data = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..400u32 {
        let s = format!(
            "// SPDX-License-Identifier: GPL-2.0\n#include <linux/module.h>\n\
             static int probe_{i}(struct device *dev)\n{{\n\treturn {};\n}}\n",
            i * 7 % 13
        );
        sizes.push(s.len());
        data.extend_from_slice(s.as_bytes());
    }
    (data, sizes)
}

#[test]
fn dictionary() {
    let key = master();
    let (samples, sizes) = dictionary_samples();
    let dict = Dictionary::train(&samples, &sizes, 2048).expect("training succeeds");
    let dict_id = key.blob_id(dict.bytes());
    let dict_blob = encode_blob(
        &key,
        &mut rng(30),
        BlobType::Dictionary,
        dict_id,
        dict.bytes(),
        3,
    );
    let plaintext = b"// SPDX-License-Identifier: GPL-2.0\n#include <linux/module.h>\nstatic int probe_9999(struct device *dev)\n{\n\treturn 4;\n}\n".to_vec();
    let data_id = key.blob_id(&plaintext);
    let data_blob = encode_blob_with(
        &key,
        &mut rng(31),
        BlobType::Data,
        data_id,
        &plaintext,
        3,
        Some(&dict),
    );
    let generated = json!({
        "description": "A dictionary trained with zstd's default trainer (max 2048 bytes) from the samples in dictionary_samples() of repo-format/tests/golden.rs, stored as a blob of type 2 (rng seed 30), and a data blob compressed against it (compression 2, rng seed 31).",
        "dictionary": hx(dict.bytes()),
        "zstd_dictionary_id": dict.id(),
        "cases": [
            blob_json("dictionary blob", 30, BlobType::Dictionary, dict.bytes(), &dict_blob),
            blob_json("data blob compressed against the dictionary", 31, BlobType::Data, &plaintext, &data_blob),
        ],
    });
    let v = golden("dictionary.json", generated);
    let dict = Dictionary::from_bytes(bytes(&v, "dictionary")).unwrap();
    assert_eq!(dict.id() as u64, num(&v, "zstd_dictionary_id"));
    let cases = items(&v, "cases");
    check_blob(&cases[0], BlobType::Dictionary);
    let stored = bytes(&cases[1], "stored");
    let id = BlobId(digest(&cases[1], "id"));
    assert_eq!(field(&cases[1], "compression").as_str(), Some("zstd-dict"));
    // Without its dictionary the blob cannot be read, and says which one it needs.
    let err = decode_blob(&key, Some((BlobType::Data, id)), &stored).unwrap_err();
    assert!(err.to_string().contains(&dict.id().to_string()), "{err}");
    let mut dicts = Dictionaries::default();
    dicts.add(std::sync::Arc::new(dict));
    let (_, plain) = decode_blob_with(&key, &dicts, Some((BlobType::Data, id)), &stored).unwrap();
    assert_eq!(plain, bytes(&cases[1], "plaintext"));
}

const PASSWORD: &[u8] = b"correct horse battery staple";

#[test]
fn keyfile() {
    let key = master();
    let kdf = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    let seed = 21;
    let mut kf = KeyFile::wrap(
        &key,
        PASSWORD,
        kdf,
        &mut rng(seed),
        1_700_000_000_000_000_000,
        "web1".into(),
        "root".into(),
    )
    .unwrap();
    // The copy of the config: config.json's stored bytes.
    // The copy of a version 3 config (the vector was made before version 4; a key file
    // carries whatever config its repository has).
    kf.config = Some(config_v3().encode(&key, &mut rng(20)));
    let stored = kf.encode();
    let wrapping_key = kdf.derive(PASSWORD, &kf.salt).unwrap();
    let generated = json!({
        "description": "A key file with tiny argon2id parameters. Randomness: ChaCha20Rng(rng_seed) gives the 16-byte salt, then the 24-byte nonce.",
        "rng_seed": seed,
        "password": hx(PASSWORD),
        "password_utf8": std::str::from_utf8(PASSWORD).unwrap(),
        "kdf": { "m_kib": kdf.m_kib, "t": kdf.t, "p": kdf.p },
        "salt": hx(&kf.salt),
        "wrapping_key": hx(&wrapping_key),
        "aad": hx(&aad("masterkey", b"")),
        "master_key_postcard": hx(&postcard_master(&key)),
        "nonce": hx(&kf.wrapped[..NONCE_LEN]),
        "wrapped": hx(&kf.wrapped),
        "created_ns": kf.created_ns,
        "hostname": kf.hostname,
        "username": kf.username,
        "config": kf.config.as_deref().map(hx),
        "stored": hx(&stored),
        "id": stored_id(&stored),
    });
    let v = golden("keyfile.json", generated);
    let stored = bytes(&v, "stored");
    let decoded = KeyFile::decode(&stored).unwrap();
    assert_eq!(decoded, kf);
    assert_eq!(decoded.salt, bytes(&v, "salt"));
    assert_eq!(decoded.wrapped, bytes(&v, "wrapped"));
    let password = bytes(&v, "password");
    assert_eq!(
        decoded
            .kdf
            .derive(&password, &decoded.salt)
            .unwrap()
            .as_slice(),
        bytes(&v, "wrapping_key").as_slice()
    );
    assert_eq!(decoded.unwrap_key(&password).unwrap(), key);
    assert!(matches!(
        decoded.unwrap_key(b"wrong"),
        Err(strata_format::FormatError::WrongPassword)
    ));
    let wrapping: [u8; 32] = bytes(&v, "wrapping_key").try_into().unwrap();
    let plain = crypto::open(&wrapping, "vector", &bytes(&v, "aad"), &decoded.wrapped).unwrap();
    assert_eq!(plain, bytes(&v, "master_key_postcard"));
    // The copy is config.json's config, and opens with the master key.
    let copy = decoded
        .config
        .expect("a version 2 key file carries the config");
    assert_eq!(copy, bytes(&v, "config"));
    assert_eq!(ConfigFile::decode(&key, &copy).unwrap(), config_v3());
}

/// Version 1 key files (no config copy) still decode and unwrap. `keyfile-v1.json` is the
/// v1 `keyfile.json`, kept as it was.
#[test]
fn keyfile_version_1_still_decodes() {
    let text = fs::read_to_string(vectors_dir().join("keyfile-v1.json")).expect("keyfile-v1.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let stored = bytes(&v, "stored");
    assert_eq!(&stored[8..10], &[1, 0]);
    let decoded = KeyFile::decode(&stored).unwrap();
    assert_eq!(decoded.config, None);
    assert_eq!(decoded.wrapped, bytes(&v, "wrapped"));
    assert_eq!(
        decoded.unwrap_key(&bytes(&v, "password")).unwrap(),
        master()
    );
}

// ---------------------------------------------------------------------------------------------
// Chunker

fn chacha_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rng(seed), &mut b);
    b
}

#[test]
fn chunker() {
    let small = ChunkerParams {
        min_size: 64 << 10,
        avg_size: 256 << 10,
        max_size: 1 << 20,
    };
    let cases = [
        (
            "4 MiB, 64 KiB/256 KiB/1 MiB, repository seed",
            small,
            4 << 20,
            CHUNKER_SEED,
        ),
        (
            "4 MiB, 64 KiB/256 KiB/1 MiB, seed 0 (plain FastCDC gear table)",
            small,
            4 << 20,
            0,
        ),
        (
            "32 MiB, ChunkerParams::FILES (512 KiB/1 MiB/8 MiB), repository seed",
            ChunkerParams::FILES,
            32 << 20,
            CHUNKER_SEED,
        ),
    ];
    let input = chacha_bytes(42, 32 << 20);
    let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
    let (sgear, sgear_ls) = fastcdc::v2020::get_gear_with_seed(CHUNKER_SEED);
    for i in 0..256 {
        assert_eq!(gear_ls[i], gear[i] << 1);
        assert_eq!(sgear[i], gear[i] ^ CHUNKER_SEED);
        assert_eq!(sgear_ls[i], (gear[i] << 1) ^ (CHUNKER_SEED << 1));
    }
    let generated_cases: Vec<Value> = cases
        .iter()
        .map(|(name, p, len, seed)| {
            let data = &input[..*len];
            let lengths = p.chunk_lengths(data, *seed).unwrap();
            json!({
                "name": name,
                "params": { "min_size": p.min_size, "avg_size": p.avg_size, "max_size": p.max_size },
                "seed": format!("{seed:#018x}"),
                "input": {
                    "generator": "ChaCha20Rng::seed_from_u64(42), fill_bytes",
                    "rng_seed": 42,
                    "length": len,
                    "first_32_bytes": hx(&data[..32]),
                    "blake3": stored_id(data),
                },
                "chunk_count": lengths.len(),
                "lengths": lengths,
            })
        })
        .collect();
    let generated = json!({
        "description": "FastCDC 2020 (fastcdc 3.x v2020), normalization level 1. gear = the unseeded FastCDC GEAR table; the seeded table is gear[i] XOR seed.",
        "masks": fastcdc::v2020::MASKS.iter().map(|m| format!("{m:#018x}")).collect::<Vec<_>>(),
        "gear": gear.iter().map(|g| format!("{g:#018x}")).collect::<Vec<_>>(),
        "cases": generated_cases,
    });
    let v = golden("chunker.json", generated);
    for c in items(&v, "cases") {
        let pv = field(c, "params");
        let p = ChunkerParams {
            min_size: num(pv, "min_size") as u32,
            avg_size: num(pv, "avg_size") as u32,
            max_size: num(pv, "max_size") as u32,
        };
        let seed = u64::from_str_radix(
            field(c, "seed").as_str().unwrap().trim_start_matches("0x"),
            16,
        )
        .unwrap();
        let len = num(field(c, "input"), "length") as usize;
        let data = &input[..len];
        assert_eq!(Digest::of_stored(data), digest(field(c, "input"), "blake3"));
        let want: Vec<usize> = items(c, "lengths")
            .iter()
            .map(|l| l.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(want.iter().sum::<usize>(), len);
        assert_eq!(p.chunk_lengths(data, seed).unwrap(), want);
        for (i, l) in want.iter().enumerate() {
            assert!(*l <= p.max_size as usize);
            assert!(*l >= p.min_size as usize || i == want.len() - 1);
        }
    }
}
