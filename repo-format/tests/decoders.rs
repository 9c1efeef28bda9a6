//! Property tests for every decoder of repository bytes.
//!
//! * Robustness: every decoder returns `Ok` or `Err`, never panics, on arbitrary bytes, on
//!   arbitrary bytes behind a valid magic/version prefix, on valid encodings with one byte
//!   flipped or cut short, and on well-authenticated but hostile plaintexts (what a writer
//!   holding the key could store).
//! * Round trips: trees (with arbitrary raw-byte names) and snapshots decode to what was
//!   encoded; a tree with a single entry decodes exactly when its name is valid.
//!
//! The fuzz targets (cargo fuzz) cover the same decoders with coverage guidance; these tests
//! keep the property in the ordinary test run.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use strata_format::blob::{decode_blob, encode_blob, BlobHeader, BlobType, BLOB_MAGIC};
use strata_format::chunker::ChunkerParams;
use strata_format::config::ConfigFile;
use strata_format::crypto::MasterKey;
use strata_format::dict::{Dictionaries, Dictionary};
use strata_format::envelope::{aad, encode_versioned, open_object, seal_object, EncryptedObject};
use strata_format::evidence::{CatalogHead, EvidenceFile, EvidenceKind};
use strata_format::id::{BlobId, Digest, IndexId, PackId, RepoId, SnapshotId};
use strata_format::index::{IndexFile, IndexPack};
use strata_format::keyfile::{KdfParams, KeyFile};
use strata_format::lock::LockFile;
use strata_format::pack::{read_pack_header, read_pack_header_tail, PackBuilder, PACK_MAGIC};
use strata_format::snapshot::{SnapshotFile, SnapshotSummary, SourceKind};
use strata_format::tree::{valid_name, Node, NodeKind, Tree, Xattr, MAX_NAME_LEN};
use strata_format::wal::{WalEntry, WalFile};

fn key() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(|| MasterKey::random(&mut ChaCha20Rng::seed_from_u64(1)))
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

// ---------------------------------------------------------------------------------------------
// Every decoder, on the same bytes

/// Feeds `bytes` to every decoder of repository bytes. Only panics (which fail the test) matter.
/// A real dictionary, so hostile frames reach the dictionary decoder.
fn dictionaries() -> &'static Dictionaries {
    static D: std::sync::OnceLock<Dictionaries> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let mut data = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..300u32 {
            let s = format!("static int probe_{i}(void) {{ return {}; }}\n", i % 7);
            sizes.push(s.len());
            data.extend_from_slice(s.as_bytes());
        }
        let mut d = Dictionaries::default();
        d.add(std::sync::Arc::new(
            Dictionary::train(&data, &sizes, 1024).expect("trains"),
        ));
        d
    })
}

fn decode_everything(bytes: &[u8]) {
    let k = key();
    if let Ok(kf) = KeyFile::decode(bytes) {
        // Only derive with cheap parameters; a damaged key file may legitimately ask for GiBs.
        if kf.kdf.m_kib <= 256 && kf.kdf.t <= 2 {
            let _ = kf.unwrap_key(b"password");
        }
    }
    let _ = ConfigFile::peek_repo_id(bytes);
    let _ = ConfigFile::peek_version(bytes);
    let _ = ConfigFile::decode(k, bytes);
    let _ = BlobHeader::parse(bytes);
    let _ = decode_blob(k, None, bytes);
    let _ = decode_blob(k, Some((BlobType::Tree, BlobId::default())), bytes);
    let _ = read_pack_header(k, bytes);
    for claimed in [bytes.len(), bytes.len() + 1, bytes.len() * 2, 0, 13] {
        let _ = read_pack_header_tail(k, bytes, claimed);
    }
    let _ = Dictionary::from_bytes(bytes.to_vec());
    let _ = strata_format::envelope::decompress_with(
        "blob",
        strata_format::envelope::Compression::ZstdDict,
        bytes,
        bytes.len() * 4,
        dictionaries(),
    );
    let _ = Tree::decode(bytes);
    let _ = IndexFile::decode(k, bytes);
    let _ = IndexFile::decode_plain(bytes);
    let _ = SnapshotFile::decode(k, bytes);
    let _ = SnapshotFile::decode_plain(bytes);
    let _ = LockFile::decode(k, bytes);
    let _ = LockFile::decode_plain(bytes);
    let _ = EvidenceFile::decode(k, bytes);
    let _ = EvidenceFile::decode_plain(bytes);
    let _ = WalFile::decode(k, bytes);
    let _ = WalFile::decode_plain(bytes);
    for kind in [
        "index",
        "snapshot",
        "lock",
        "packheader",
        "config",
        "evidence",
        "wal",
    ] {
        let _ = open_object(k, "object", kind, b"", bytes);
    }
}

/// Valid encodings of every object, built once.
fn valid_encodings() -> &'static Vec<(&'static str, Vec<u8>)> {
    static V: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    V.get_or_init(|| {
        let k = key();
        let mut r = rng(2);
        let tree = sample_tree();
        let tree_plain = tree.encode();
        let tree_id = k.blob_id(&tree_plain);
        let data =
            b"some file content, some file content, some file content, some file content".to_vec();
        let data_id = k.blob_id(&data);
        let data_blob = encode_blob(k, &mut r, BlobType::Data, data_id, &data, 3);
        let tree_blob = encode_blob(k, &mut r, BlobType::Tree, tree_id, &tree_plain, 3);
        let mut pb = PackBuilder::new();
        pb.add(BlobType::Data, data_id, data.len() as u32, &data_blob);
        pb.add(
            BlobType::Data,
            k.blob_id(b"x"),
            1,
            &encode_blob(k, &mut r, BlobType::Data, k.blob_id(b"x"), b"x", 3),
        );
        let (pack, blobs) = pb.finish(k, &mut r);
        let index = IndexFile {
            supersedes: vec![IndexId(Digest::of_stored(b"old"))],
            packs: vec![IndexPack {
                id: PackId(Digest::of_stored(&pack)),
                size: pack.len() as u64,
                blobs: blobs.clone(),
            }],
            marked: vec![strata_format::index::MarkedPack {
                mark: [7; 16],
                marked_ns: 1_700_000_000_000_000_000,
                pack: IndexPack {
                    id: PackId(Digest::of_stored(b"marked")),
                    size: pack.len() as u64,
                    blobs,
                },
            }],
            seals: vec![strata_format::index::Seal {
                mark: [7; 16],
                sealed_ns: 1_700_000_000_000_000_001,
                sessions: vec![[1; 16], [2; 16]],
            }],
        };
        let snapshot = sample_snapshot(tree_id);
        let lock = LockFile {
            kind: strata_format::lock::LockKind::Prune,
            hostname: "host".into(),
            username: "user".into(),
            pid: 42,
            time_ns: 1_700_000_000_000_000_000,
            operation: "prune".into(),
            process: Some(strata_format::lock::ProcessIdentity {
                boot_id: "b00t".into(),
                pid_namespace: 4_026_531_836,
                start_ticks: 99,
                instance: [3; 16],
            }),
            session: [5; 16],
        };
        let evidence = EvidenceFile {
            kind: EvidenceKind::RestoreTest,
            time_ns: 7,
            hostname: "host".into(),
            project: Some("shop".into()),
            snapshots: vec![SnapshotId(Digest::of_stored(b"s"))],
            catalog_head: Some(CatalogHead {
                seq: 3,
                hash: [9; 32],
            }),
            records: vec!["{\"ok\":true}".into()],
        };
        let wal = WalFile {
            project: "shop".into(),
            system_id: 11,
            timeline: 1,
            seg_size: 16 << 20,
            wal_magic: 0xD110,
            entries: vec![WalEntry {
                name: "000000010000000000000001".into(),
                size: 3,
                hash: [4; 32],
                blobs: vec![BlobId(Digest::of_stored(b"w"))],
                pushed_ns: 5,
            }],
        };
        let config = ConfigFile {
            repo_id: RepoId(Digest([7; 32])),
            chunker: ChunkerParams::FILES,
            pack_size: 16 << 20,
            compression_level: 3,
            created_ns: 5,
            db_chunker: ChunkerParams::DATABASE,
            format_version: 3,
        };
        let kdf = KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        };
        let keyfile =
            KeyFile::wrap(k, b"password", kdf, &mut r, 9, "h".into(), "u".into()).unwrap();
        vec![
            ("key file", keyfile.encode()),
            ("config", config.encode(k, &mut r)),
            ("data blob", data_blob),
            ("tree blob", tree_blob),
            ("pack", pack),
            ("tree plaintext", tree_plain),
            ("index", index.encode(k, &mut r)),
            (
                "index plaintext",
                encode_versioned(IndexFile::VERSION, &index),
            ),
            ("snapshot", snapshot.encode(k, &mut r)),
            (
                "snapshot plaintext",
                encode_versioned(SnapshotFile::VERSION, &snapshot),
            ),
            ("lock", lock.encode(k, &mut r)),
            ("lock plaintext", encode_versioned(LockFile::VERSION, &lock)),
            ("evidence", evidence.encode(k, &mut r)),
            (
                "evidence plaintext",
                encode_versioned(EvidenceFile::VERSION, &evidence),
            ),
            ("wal", wal.encode(k, &mut r)),
            ("wal plaintext", encode_versioned(WalFile::VERSION, &wal)),
        ]
    })
}

fn sample_node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1,
        gid: 2,
        user: Some("u".into()),
        group: None,
        mtime_ns: -5,
        atime_ns: 6,
        ctime_ns: 7,
        inode: 8,
        device: 9,
        links: 1,
        size: 10,
        xattrs: vec![Xattr {
            name: b"user.a".to_vec(),
            value: b"v".to_vec(),
        }],
    }
}

fn sample_tree() -> Tree {
    let id = BlobId(Digest([3; 32]));
    let mut t = Tree {
        nodes: vec![
            sample_node(
                b"file",
                NodeKind::File {
                    content: vec![id, id],
                },
            ),
            sample_node(b"dir", NodeKind::Dir { subtree: id }),
            sample_node(
                b"link",
                NodeKind::Symlink {
                    target: b"../x".to_vec(),
                },
            ),
            sample_node(b"fifo", NodeKind::Fifo),
            sample_node(b"chr", NodeKind::CharDevice { rdev: 259 }),
            sample_node(b"blk", NodeKind::BlockDevice { rdev: 2048 }),
            sample_node(b"sock", NodeKind::Socket),
            sample_node(&[0xff, 0x80], NodeKind::File { content: vec![] }),
        ],
    };
    t.sort();
    t
}

fn sample_snapshot(tree: BlobId) -> SnapshotFile {
    SnapshotFile {
        time_ns: 1,
        hostname: "h".into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        paths: vec!["/a".into()],
        tags: vec!["t".into()],
        project: Some("p".into()),
        excludes: vec!["*.o".into()],
        source: SourceKind::Stdin {
            filename: "f".into(),
        },
        source_meta: vec![("k".into(), "v".into())],
        tree,
        parent: Some(SnapshotId(Digest([4; 32]))),
        program_version: "0".into(),
        summary: SnapshotSummary {
            duration_secs: 1.5,
            ..SnapshotSummary::default()
        },
        keep_until_ns: Some(2),
        original: None,
        rewrites: Vec::new(),
    }
}

#[test]
fn valid_encodings_decode() {
    // The mutation tests below are only meaningful if the unmutated inputs are valid.
    let k = key();
    let v = valid_encodings();
    let get = |name: &str| &v.iter().find(|(n, _)| *n == name).unwrap().1;
    KeyFile::decode(get("key file"))
        .unwrap()
        .unwrap_key(b"password")
        .unwrap();
    ConfigFile::decode(k, get("config")).unwrap();
    decode_blob(k, None, get("data blob")).unwrap();
    decode_blob(k, None, get("tree blob")).unwrap();
    assert_eq!(read_pack_header(k, get("pack")).unwrap().len(), 2);
    Tree::decode(get("tree plaintext")).unwrap();
    IndexFile::decode(k, get("index")).unwrap();
    IndexFile::decode_plain(get("index plaintext")).unwrap();
    SnapshotFile::decode(k, get("snapshot")).unwrap();
    SnapshotFile::decode_plain(get("snapshot plaintext")).unwrap();
    LockFile::decode(k, get("lock")).unwrap();
    LockFile::decode_plain(get("lock plaintext")).unwrap();
    EvidenceFile::decode(k, get("evidence")).unwrap();
    EvidenceFile::decode_plain(get("evidence plaintext")).unwrap();
    WalFile::decode(k, get("wal")).unwrap();
    WalFile::decode_plain(get("wal plaintext")).unwrap();
}

/// Arbitrary bytes behind each magic/version prefix, so the fuzzing reaches past the first check.
fn prefixed_bytes() -> impl Strategy<Value = Vec<u8>> {
    let mut config_prefix = b"STRATACF\x01\x00".to_vec();
    config_prefix.extend_from_slice(&[7; 32]);
    let prefixes: Vec<Vec<u8>> = vec![
        b"STRATAKY\x01\x00".to_vec(),
        config_prefix,
        PACK_MAGIC.iter().copied().chain([1, 0]).collect(),
        vec![BLOB_MAGIC, 0, 0, 0],
        vec![BLOB_MAGIC, 1, 1, 0],
        vec![1, 0],
        vec![2, 0],
    ];
    (
        prop::sample::select(prefixes),
        prop::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(mut p, rest)| {
            p.extend_from_slice(&rest);
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_everything(&bytes);
    }

    #[test]
    fn prefixed_bytes_never_panic(bytes in prefixed_bytes()) {
        decode_everything(&bytes);
    }

    #[test]
    fn flipped_byte_never_panics(which in any::<Index>(), at in any::<Index>(), xor in 1u8..=255) {
        let (_, valid) = which.get(valid_encodings());
        let mut bytes = valid.clone();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        decode_everything(&bytes);
    }

    #[test]
    fn truncation_never_panics(which in any::<Index>(), at in any::<Index>()) {
        let (_, valid) = which.get(valid_encodings());
        let cut = at.index(valid.len());
        decode_everything(&valid[..cut]);
    }

    /// Authenticated, hostile envelope plaintexts: any compression byte, any raw length.
    #[test]
    fn sealed_hostile_envelope_never_panics(
        compression in 0u8..4,
        raw_length in prop_oneof![0u32..2000, any::<u32>()],
        payload in prop::collection::vec(any::<u8>(), 0..300),
        kind in prop::sample::select(vec!["index", "snapshot", "lock", "packheader"]),
        seed in any::<u64>(),
    ) {
        let k = key();
        let mut plain = vec![compression];
        plain.extend_from_slice(&raw_length.to_le_bytes());
        plain.extend_from_slice(&payload);
        let sealed = k.seal(&mut rng(seed), &aad(kind, b""), &plain);
        decode_everything(&sealed);
    }

    /// Authenticated objects whose versioned data is arbitrary (a writer holding the key).
    #[test]
    fn sealed_hostile_objects_never_panic(
        version in 0u16..3,
        body in prop::collection::vec(any::<u8>(), 0..300),
        seed in any::<u64>(),
    ) {
        let k = key();
        let mut data = version.to_le_bytes().to_vec();
        data.extend_from_slice(&body);
        for kind in ["index", "snapshot", "lock"] {
            let sealed = seal_object(k, &mut rng(seed), kind, b"", &data, 3);
            decode_everything(&sealed);
        }
        // The same data as a pack header behind a blob area of arbitrary bytes.
        let mut pack = PACK_MAGIC.to_vec();
        pack.extend_from_slice(&[1, 0]);
        pack.extend_from_slice(&body[..body.len() / 2]);
        let sealed = seal_object(k, &mut rng(seed), "packheader", b"", &data, 3);
        pack.extend_from_slice(&sealed);
        pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        decode_everything(&pack);
        // And as a tree blob with a matching, authenticated header.
        let id = k.blob_id(&data);
        decode_everything(&encode_blob(k, &mut rng(seed), BlobType::Tree, id, &data, 3));
    }

    /// Blob headers that authenticate but lie about compression or lengths.
    #[test]
    fn sealed_hostile_blob_never_panics(
        compression in 0u8..2,
        raw_length in prop_oneof![0u32..2000, any::<u32>()],
        payload in prop::collection::vec(any::<u8>(), 0..300),
        seed in any::<u64>(),
    ) {
        let k = key();
        let mut header = [0u8; 44];
        header[0] = BLOB_MAGIC;
        header[2] = compression;
        header[4..8].copy_from_slice(&raw_length.to_le_bytes());
        header[8..12].copy_from_slice(&((payload.len() + 40) as u32).to_le_bytes());
        header[12..].copy_from_slice(k.blob_id(&payload).as_bytes());
        let mut stored = header.to_vec();
        stored.extend_from_slice(&k.seal(&mut rng(seed), &header, &payload));
        decode_everything(&stored);
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

fn name_byte() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("no NUL or slash", |b| *b != 0 && *b != b'/')
}

/// Valid entry names: raw bytes (mostly non-UTF-8), short or up to the limit.
fn valid_name_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(name_byte(), 1..24),
        1 => prop::collection::vec(name_byte(), MAX_NAME_LEN - 8..=MAX_NAME_LEN),
    ]
    .prop_filter("not . or ..", |n| valid_name(n))
}

/// Arbitrary names, valid or not, biased towards the interesting invalid ones.
fn any_name_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..12),
        1 => prop::sample::select(vec![b".".to_vec(), b"..".to_vec(), b"/".to_vec(), b"a\0".to_vec(), vec![], b"...".to_vec()]),
        1 => (MAX_NAME_LEN - 1..=MAX_NAME_LEN + 1).prop_map(|n| vec![b'a'; n]),
    ]
}

fn blob_id_strategy() -> impl Strategy<Value = BlobId> {
    any::<[u8; 32]>().prop_map(|b| BlobId(Digest(b)))
}

fn kind_strategy() -> impl Strategy<Value = NodeKind> {
    prop_oneof![
        prop::collection::vec(blob_id_strategy(), 0..4)
            .prop_map(|content| NodeKind::File { content }),
        blob_id_strategy().prop_map(|subtree| NodeKind::Dir { subtree }),
        prop::collection::vec(name_byte(), 0..40).prop_map(|target| NodeKind::Symlink { target }),
        Just(NodeKind::Fifo),
        any::<u64>().prop_map(|rdev| NodeKind::CharDevice { rdev }),
        any::<u64>().prop_map(|rdev| NodeKind::BlockDevice { rdev }),
        Just(NodeKind::Socket),
    ]
}

/// A node with every field arbitrary, under the given name.
fn node_strategy() -> impl Strategy<Value = Node> {
    let ids = (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<Option<String>>(),
        any::<Option<String>>(),
    );
    let times = (any::<i64>(), any::<i64>(), any::<i64>());
    let counts = (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>());
    let xattrs = prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 0..16),
            prop::collection::vec(any::<u8>(), 0..32),
        )
            .prop_map(|(name, value)| Xattr { name, value }),
        0..3,
    );
    (kind_strategy(), ids, times, counts, xattrs).prop_map(
        |(
            kind,
            (mode, uid, gid, user, group),
            (mtime_ns, atime_ns, ctime_ns),
            (inode, device, links, size),
            xattrs,
        )| Node {
            name: Vec::new(),
            kind,
            mode,
            uid,
            gid,
            user,
            group,
            mtime_ns,
            atime_ns,
            ctime_ns,
            inode,
            device,
            links,
            size,
            xattrs,
        },
    )
}

fn tree_strategy() -> impl Strategy<Value = Tree> {
    prop::collection::btree_map(valid_name_strategy(), node_strategy(), 0..12).prop_map(
        |m: BTreeMap<Vec<u8>, Node>| Tree {
            nodes: m.into_iter().map(|(name, n)| Node { name, ..n }).collect(),
        },
    )
}

fn summary_strategy() -> impl Strategy<Value = SnapshotSummary> {
    (
        any::<[u64; 8]>(),
        any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan()),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(c, duration_secs, errors, bytes_total)| SnapshotSummary {
            files_new: c[0],
            files_changed: c[1],
            files_unchanged: c[2],
            dirs: c[3],
            bytes_read: c[4],
            bytes_added: c[5],
            data_blobs_added: c[6],
            tree_blobs_added: c[7],
            duration_secs,
            errors,
            bytes_total,
        })
}

fn source_strategy() -> impl Strategy<Value = SourceKind> {
    prop_oneof![
        Just(SourceKind::Files),
        any::<String>().prop_map(|filename| SourceKind::Stdin { filename }),
        Just(SourceKind::Postgres),
        Just(SourceKind::Mysql),
        Just(SourceKind::Sqlite),
    ]
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(any::<String>(), 0..4)
}

fn snapshot_strategy() -> impl Strategy<Value = SnapshotFile> {
    let who = (
        any::<i64>(),
        any::<String>(),
        any::<String>(),
        any::<u32>(),
        any::<u32>(),
    );
    let what = (
        strings(),
        strings(),
        any::<Option<String>>(),
        strings(),
        source_strategy(),
    );
    let meta = prop::collection::vec((any::<String>(), any::<String>()), 0..4);
    let refs = (
        blob_id_strategy(),
        prop::option::of(any::<[u8; 32]>().prop_map(|b| SnapshotId(Digest(b)))),
        any::<String>(),
        summary_strategy(),
        any::<Option<i64>>(),
    );
    (who, what, meta, refs).prop_map(
        |(
            (time_ns, hostname, username, uid, gid),
            (paths, tags, project, excludes, source),
            source_meta,
            (tree, parent, program_version, summary, keep_until_ns),
        )| SnapshotFile {
            time_ns,
            hostname,
            username,
            uid,
            gid,
            paths,
            tags,
            project,
            excludes,
            source,
            source_meta,
            tree,
            parent,
            program_version,
            summary,
            keep_until_ns,
            original: parent,
            rewrites: vec![strata_format::snapshot::Rewrite {
                time_ns,
                hostname: String::new(),
                username: String::new(),
                change: "hold".into(),
            }],
        },
    )
}

proptest! {
    #[test]
    fn tree_round_trip(tree in tree_strategy(), seed in any::<u64>()) {
        let enc = tree.encode();
        prop_assert_eq!(&Tree::decode(&enc).unwrap(), &tree);
        // And through a tree blob.
        let k = key();
        let id = k.blob_id(&enc);
        let stored = encode_blob(k, &mut rng(seed), BlobType::Tree, id, &enc, 3);
        let (_, plain) = decode_blob(k, Some((BlobType::Tree, id)), &stored).unwrap();
        prop_assert_eq!(Tree::decode(&plain).unwrap(), tree);
    }

    #[test]
    fn tree_accepts_exactly_valid_names(name in any_name_strategy(), node in node_strategy()) {
        let tree = Tree { nodes: vec![Node { name: name.clone(), ..node }] };
        let decoded = Tree::decode(&tree.encode());
        let symlink_ok = !matches!(&tree.nodes[0].kind, NodeKind::Symlink { target } if target.contains(&0));
        prop_assert_eq!(decoded.is_ok(), valid_name(&name) && symlink_ok);
        if let Ok(t) = decoded {
            prop_assert_eq!(t, tree);
        }
    }

    #[test]
    fn tree_refuses_unsorted_or_duplicate(tree in tree_strategy(), swap in any::<Index>()) {
        prop_assume!(!tree.nodes.is_empty());
        let mut bad = tree.clone();
        let i = swap.index(bad.nodes.len());
        if bad.nodes.len() == 1 {
            let dup = bad.nodes[0].clone();
            bad.nodes.push(dup);
        } else {
            let j = (i + 1) % bad.nodes.len();
            bad.nodes.swap(i, j);
        }
        prop_assert!(Tree::decode(&bad.encode()).is_err());
    }

    #[test]
    fn snapshot_round_trip(snapshot in snapshot_strategy(), seed in any::<u64>()) {
        let k = key();
        let stored = snapshot.encode(k, &mut rng(seed));
        prop_assert_eq!(&SnapshotFile::decode(k, &stored).unwrap(), &snapshot);
        let plain = encode_versioned(SnapshotFile::VERSION, &snapshot);
        prop_assert_eq!(SnapshotFile::decode_plain(&plain).unwrap(), snapshot);
    }

    #[test]
    fn future_versions_are_refused_cleanly(snapshot in snapshot_strategy(), version in 2u16..) {
        let plain = encode_versioned(version, &snapshot);
        let err = SnapshotFile::decode_plain(&plain).unwrap_err();
        let is_unknown_version = matches!(err, strata_format::FormatError::UnknownVersion { found, .. } if found == version);
        prop_assert!(is_unknown_version);
    }
}
