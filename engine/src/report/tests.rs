//! Findings as JSON: one golden line per kind (the names and shapes a catalog stores and a
//! script reads), and round trips through JSON and postcard.

use strata_format::blob::BlobType;
use strata_format::envelope;
use strata_format::id::{BlobId, Digest, EvidenceId, IndexId, KeyId, PackId, SnapshotId};

use super::{Finding, FindingKind, ObjectRef};

/// One finding of each kind, as its producer makes it, in the order of the golden file.
const KINDS: [FindingKind; 29] = [
    FindingKind::DamagedKeyFile,
    FindingKind::KeyFilesWithoutConfigCopy,
    FindingKind::UnreadableIndex,
    FindingKind::SupersededIndex,
    FindingKind::ForeignIndex,
    FindingKind::MissingPack,
    FindingKind::PackSizeMismatch,
    FindingKind::UnindexedPack,
    FindingKind::UnreadablePack,
    FindingKind::DamagedPack,
    FindingKind::DamagedPackHeader,
    FindingKind::PackHeaderMismatch,
    FindingKind::MissingBlob,
    FindingKind::BlobTypeMismatch,
    FindingKind::DamagedBlob,
    FindingKind::UnlistedDamagedBlobs,
    FindingKind::BlobInDamagedPack,
    FindingKind::UnreadableSnapshot,
    FindingKind::ForeignSnapshot,
    FindingKind::UnreadableTree,
    FindingKind::TooDeep,
    FindingKind::ContentSizeMismatch,
    FindingKind::UnreadableSource,
    FindingKind::TargetWriteFailed,
    FindingKind::MetadataNotApplied,
    FindingKind::LinkTargetNotRestored,
    FindingKind::IncompleteContent,
    FindingKind::DamagedEvidence,
    FindingKind::DamagedWal,
];

fn digest(b: u8) -> Digest {
    Digest([b; 32])
}

/// An example of `kind`, with a message as its producer writes it (the match has no
/// wildcard: a new kind needs an example here and a line in the golden file).
fn example(kind: FindingKind) -> Finding {
    use FindingKind::*;
    let hex = |c: &str| c.repeat(64);
    let (p, i, s, d, t) = (hex("1"), hex("2"), hex("3"), hex("4"), hex("5"));
    let snap = SnapshotId(digest(0x33));
    let pack = Some(ObjectRef::pack(PackId(digest(0x11))));
    let index = Some(ObjectRef::Index {
        id: IndexId(digest(0x22)),
    });
    let data = Some(ObjectRef::blob(BlobType::Data, BlobId(digest(0x44))));
    let tree = Some(ObjectRef::blob(BlobType::Tree, BlobId(digest(0x55))));
    let snapshot = Some(ObjectRef::Snapshot { id: snap });
    let new = |object: Option<ObjectRef>, message: String| Finding::new(kind, object, message);
    let in_snapshot = |object: Option<ObjectRef>, path: &str, problem: String| {
        new(object, format!("snapshot 33333333: {path}: {problem}"))
            .in_snapshot(snap)
            .at_path(path)
    };
    let restored = |object: Option<ObjectRef>, problem: &str| {
        new(object, format!("/src/b.txt: {problem}")).at_path("/src/b.txt")
    };
    match kind {
        DamagedKeyFile => new(
            Some(ObjectRef::Key {
                id: KeyId(digest(0x66)),
            }),
            "keys/6666…: damaged (a password whose only key file this is no longer opens the \
             repository)"
                .into(),
        ),
        KeyFilesWithoutConfigCopy => new(
            None,
            "1 of 2 key files keep no copy of the config (written by an older Strata): run \
             `strata repair config` once, so that a lost config can be restored"
                .into(),
        ),
        UnreadableIndex => new(index, format!("index/{i}: does not decode")),
        SupersededIndex => new(
            index,
            format!("index {i} is superseded by a newer index file"),
        ),
        ForeignIndex => new(
            index,
            format!("index file {i} is intact but cannot be read"),
        ),
        MissingPack => new(pack, format!("pack {p} is missing (named by index {i})")),
        PackSizeMismatch => new(
            pack,
            format!("pack {p} has 10 bytes but its index records 12"),
        ),
        UnindexedPack => new(
            Some(ObjectRef::stored(
                strata_storage::FileType::Pack,
                "not-an-id",
            )),
            "pack not-an-id is not in any index".into(),
        ),
        UnreadablePack => new(pack, format!("pack {p} could not be read: refused")),
        DamagedPack => new(
            pack,
            format!("pack {p}: content does not hash to its name (damaged)"),
        ),
        DamagedPackHeader => new(pack, format!("pack {p}: header: does not open")),
        PackHeaderMismatch => new(
            data,
            format!(
                "pack {p}: the index places data blob {d} at offset 8, the pack header does not"
            ),
        ),
        MissingBlob => in_snapshot(
            data,
            "/src/a.txt",
            format!("data blob {d} is not in the index"),
        ),
        BlobTypeMismatch => in_snapshot(
            data,
            "/src/a.txt",
            format!("blob {d} is indexed as tree, used as data"),
        ),
        DamagedBlob => in_snapshot(
            data,
            "/src/a.txt",
            format!("data blob {d} is damaged: in pack {p}: does not decrypt"),
        ),
        UnlistedDamagedBlobs => new(pack, format!("pack {p}: 3 more damaged blobs not listed")),
        BlobInDamagedPack => in_snapshot(
            data,
            "/src/a.txt",
            format!("data blob {d} is in damaged or missing pack {p}"),
        ),
        UnreadableSnapshot => new(snapshot, format!("snapshots/{s}: damaged")).in_snapshot(snap),
        ForeignSnapshot => {
            new(snapshot, format!("snapshots/{s}: does not open; kept")).in_snapshot(snap)
        }
        UnreadableTree => in_snapshot(tree, "/src", format!("tree blob {t} does not decode")),
        TooDeep => in_snapshot(
            tree,
            "/src/deep",
            "trees nest deeper than 2048 levels".into(),
        ),
        ContentSizeMismatch => restored(
            None,
            "content is 3 bytes but the snapshot recorded 4; not restored",
        ),
        UnreadableSource => new(
            None,
            "/home/\u{fffd}x: Permission denied (os error 13)".into(),
        )
        .at_path(b"/home/\xffx".to_vec()),
        TargetWriteFailed => restored(None, "No space left on device (os error 28); not restored"),
        MetadataNotApplied => restored(None, "chown: Operation not permitted (os error 1)"),
        LinkTargetNotRestored => restored(
            None,
            "not restored: a hard link to /src/a.txt, whose content could not be restored",
        ),
        IncompleteContent => restored(
            None,
            "not all content was written; the incomplete file was removed",
        ),
        DamagedEvidence => new(
            Some(ObjectRef::Evidence {
                id: EvidenceId(digest(0x77)),
            }),
            "evidence/7777…: does not decode".into(),
        ),
        DamagedWal => new(
            Some(ObjectRef::Wal {
                id: strata_format::id::WalId(digest(0x57)),
            }),
            "wal/5757…: does not decode".into(),
        ),
    }
}

const GOLDEN: &str = include_str!("findings.golden.jsonl");

#[test]
fn every_kind_serializes_as_the_golden_file_says() {
    let lines: Vec<&str> = GOLDEN.lines().collect();
    assert_eq!(lines.len(), KINDS.len(), "one golden line per kind");
    for (kind, line) in KINDS.into_iter().zip(lines) {
        let f = example(kind);
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, line, "{kind:?}");
        // Back from JSON: the same finding (but for a path that is not UTF-8, which JSON
        // shows with the invalid bytes replaced).
        let back: Finding = serde_json::from_str(line).unwrap();
        if kind == FindingKind::UnreadableSource {
            assert_eq!(back.path.as_deref(), Some("/home/\u{fffd}x".as_bytes()));
        } else {
            assert_eq!(back, f, "{kind:?}");
        }
    }
}

#[test]
fn kinds_are_distinct_and_their_names_are_snake_case() {
    let names: std::collections::BTreeSet<String> = KINDS
        .iter()
        .map(|k| {
            serde_json::to_value(k)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names.len(), KINDS.len());
    assert!(names.contains("missing_pack"), "{names:?}");
    assert!(names
        .iter()
        .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn binary_encodings_keep_paths_and_ids_exact() {
    for kind in KINDS {
        let f = example(kind);
        let bytes = envelope::encode_versioned(1, &f);
        let (_, body) = envelope::split_version("finding", &bytes, 1).unwrap();
        let back: Finding = envelope::decode_postcard("finding", body).unwrap();
        assert_eq!(back, f, "{kind:?}");
    }
}

#[test]
fn display_is_the_message() {
    let f = Finding::new(FindingKind::MissingPack, None, "pack x is missing")
        .in_snapshot(SnapshotId(digest(1)))
        .at_path("/a")
        .reworded(|m| format!("snapshot 01010101: /a: {m}"));
    assert_eq!(f.to_string(), "snapshot 01010101: /a: pack x is missing");
    assert_eq!(f.path_lossy().as_deref(), Some("/a"));
}
