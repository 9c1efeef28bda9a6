//! scale-gen: writes a synthetic repository in the real format, quickly, for the scale
//! benchmarks of issue #19 (`benches/scale.sh`, `benches/RESULTS-scale.md`).
//!
//! ```text
//! cargo bench -p strata-engine --bench scale-gen -- --repo DIR --password-file FILE \
//!     --blobs 10000000 [--blobs-per-pack 16] [--snapshots 40] [--forgotten 10] \
//!     [--blobs-per-file 4096] [--files-per-dir 16]
//! ```
//!
//! What it writes is an ordinary repository: `Repository::init` (with a cheap key
//! derivation) makes the config and key; every pack, index file, tree and snapshot is
//! encoded by `strata-format` as the engine encodes them and stored under its content
//! address, so `check`, `prune` and `backup` do their real work on it. Only the objects
//! are small:
//!
//! * Data blob `n` is the 8 bytes of `n` (little endian): distinct ids, 92 stored bytes.
//! * Packs hold `--blobs-per-pack` data blobs. The config's pack size is 64 KiB (the
//!   smallest allowed) and every pack is padded to an eighth of it (prune's "tiny" limit)
//!   with a gap after the last blob, which readers accept and the file system stores as a
//!   hole; so prune does not merge every pack as tiny, and 100 M blobs fit on a disk.
//!   Tree blobs go into packs of their own, as backups put them.
//! * Index files hold at least 50,000 blobs each, as the packer writes them.
//! * The blobs are cut into `--snapshots` generations. Generation `g` is a directory
//!   `gNNNN` of subdirectories of `--files-per-dir` files of `--blobs-per-file` blobs
//!   (4096 blobs: a 4 GiB file at 1 MiB chunks), 90% of the generation's blobs; the other
//!   10% are files of a directory `scratch` that only snapshot `g` has. Snapshot `g` names
//!   `g0000` … `gNNNN` (earlier generations' trees are shared, as unchanged subtrees are)
//!   and its `scratch`. Every 20th pack of a generation holds scratch blobs only, and
//!   two in 20 hold half scratch, half kept blobs.
//! * The first `--forgotten` snapshots are not written: their scratch blobs are garbage,
//!   so the first `prune` marks the scratch-only packs and repacks the mixed ones, and a
//!   `forget --keep-last K --prune` makes more garbage of the same kind.
//!
//! Packs are written straight into the repository's directory without fsync (a benchmark
//! fixture; run `sync` afterwards), on every core.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use strata_engine::{InitOptions, Repository};
use strata_format::blob::{encode_blob, BlobType};
use strata_format::crypto::MasterKey;
use strata_format::envelope::EncryptedObject;
use strata_format::id::{BlobId, Digest, PackId, SnapshotId};
use strata_format::index::{IndexFile, IndexPack};
use strata_format::keyfile::KdfParams;
use strata_format::pack::{preamble, trailer, PackBlob, PACK_PREAMBLE_LEN};
use strata_format::snapshot::{SnapshotFile, SnapshotSummary, SourceKind};
use strata_format::tree::{Node, NodeKind, Tree};
use strata_storage::FileType;

/// The config's pack size: the smallest a config allows, so that small packs are not tiny.
const PACK_SIZE: u32 = 64 << 10;
/// Prune merges packs smaller than this (its default tiny fraction, an eighth).
const MIN_PACK: u64 = PACK_SIZE as u64 / 8;
/// Blobs per index file, as the packer and prune write them.
const INDEX_BLOBS: usize = 50_000;
/// 2026-01-01T00:00:00Z; snapshot `g` is `g` days later.
const EPOCH_NS: i64 = 1_767_225_600_000_000_000;
const DAY_NS: i64 = 86_400_000_000_000;

struct Args {
    repo: PathBuf,
    password_file: PathBuf,
    blobs: u64,
    per_pack: u64,
    snapshots: u64,
    forgotten: u64,
    per_file: usize,
    files_per_dir: usize,
}

fn usage() -> &'static str {
    "usage: scale-gen --repo DIR --password-file FILE --blobs N [--blobs-per-pack 16] \
     [--snapshots 40] [--forgotten 10] [--blobs-per-file 4096] [--files-per-dir 16]"
}

fn parse_args() -> Result<Args, String> {
    let mut repo = None;
    let mut password_file = None;
    let mut a = Args {
        repo: PathBuf::new(),
        password_file: PathBuf::new(),
        blobs: 0,
        per_pack: 16,
        snapshots: 40,
        forgotten: 10,
        per_file: 4096,
        files_per_dir: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench` to every bench target.
        if flag == "--bench" {
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || -> Result<u64, String> {
            value
                .replace('_', "")
                .parse()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--repo" => repo = Some(PathBuf::from(&value)),
            "--password-file" => password_file = Some(PathBuf::from(&value)),
            "--blobs" => a.blobs = num()?,
            "--blobs-per-pack" => a.per_pack = num()?,
            "--snapshots" => a.snapshots = num()?,
            "--forgotten" => a.forgotten = num()?,
            "--blobs-per-file" => a.per_file = num()? as usize,
            "--files-per-dir" => a.files_per_dir = num()? as usize,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    a.repo = repo.ok_or("--repo is required")?;
    a.password_file = password_file.ok_or("--password-file is required")?;
    if a.blobs == 0 || a.per_pack == 0 || a.per_file == 0 || a.files_per_dir == 0 {
        return Err(
            "--blobs, --blobs-per-pack, --blobs-per-file and --files-per-dir must be > 0".into(),
        );
    }
    if a.snapshots == 0 || a.forgotten >= a.snapshots || a.snapshots > 9999 {
        return Err("need 0 <= --forgotten < --snapshots <= 9999".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("scale-gen: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What one generation wrote that later steps need.
#[derive(Default)]
struct Totals {
    packs: u64,
    tree_blobs: u64,
    index_files: u64,
    stored_bytes: u64,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn run(args: &Args) -> Res<()> {
    let started = Instant::now();
    let password = fs::read(&args.password_file)?;
    let password = password.strip_suffix(b"\n").unwrap_or(&password);
    fs::create_dir_all(&args.repo)?;
    let location = args
        .repo
        .to_str()
        .ok_or("the repository path is not UTF-8")?;
    let backend = strata_storage::open(location, &Default::default(), 1)?;
    let opts = InitOptions {
        // The cheapest key derivation a key file allows: this is a fixture.
        kdf: KdfParams {
            m_kib: 8,
            t: 1,
            p: 1,
        },
        pack_size: PACK_SIZE,
        ..InitOptions::default()
    };
    Repository::init(Arc::clone(&backend), password, &opts)?;
    let repo = Repository::open_without_index(backend, password)?;
    let key = repo.key();
    let root = args.repo.as_path();

    let g_count = args.snapshots;
    let mut totals = Totals::default();
    let mut gen_roots: Vec<BlobId> = Vec::new();
    // Snapshot roots (tree id, generation, its blobs, blobs so far), written once every
    // index file is.
    let mut snapshot_roots: Vec<(BlobId, u64, u64, u64)> = Vec::new();
    let mut first = 0u64;
    for g in 0..g_count {
        let n = args.blobs / g_count + u64::from(g < args.blobs % g_count);
        let (mut index_packs, kept, scratch) = data_packs(key, root, args.per_pack, first, n)?;
        totals.packs += index_packs.len() as u64;
        totals.stored_bytes += index_packs.iter().map(|p| p.size).sum::<u64>();

        // Trees: this generation's directory, its scratch directory, and the root of its
        // snapshot (if written).
        let mut trees: Vec<Vec<u8>> = Vec::new();
        let gen_root = dir_tree(key, &kept, args, first, &mut trees);
        gen_roots.push(gen_root);
        if g >= args.forgotten {
            let scratch_root = dir_tree(key, &scratch, args, first + 1_000_000_000_000, &mut trees);
            let mut nodes: Vec<Node> = gen_roots
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    node(
                        format!("g{i:04}"),
                        NodeKind::Dir { subtree: *id },
                        0,
                        i as u64,
                    )
                })
                .collect();
            nodes.push(node(
                "scratch".into(),
                NodeKind::Dir {
                    subtree: scratch_root,
                },
                0,
                g,
            ));
            let (id, plain) = tree_blob(key, Tree { nodes });
            trees.push(plain);
            snapshot_roots.push((id, g, n, first + n));
        }
        totals.tree_blobs += trees.len() as u64;
        let tree_packs = tree_packs(key, root, &trees)?;
        totals.packs += tree_packs.len() as u64;
        totals.stored_bytes += tree_packs.iter().map(|p| p.size).sum::<u64>();
        index_packs.extend(tree_packs);
        totals.index_files += write_index(key, root, index_packs)? as u64;
        first += n;
        eprintln!(
            "scale-gen: generation {}/{g_count}: {first} blobs, {} packs, {:.0} s",
            g + 1,
            totals.packs,
            started.elapsed().as_secs_f64()
        );
    }

    let mut parent: Option<SnapshotId> = None;
    for (tree, g, n, so_far) in &snapshot_roots {
        let snap = SnapshotFile {
            time_ns: EPOCH_NS + *g as i64 * DAY_NS,
            hostname: "scale".into(),
            username: "root".into(),
            uid: 0,
            gid: 0,
            paths: vec!["/srv/data".into()],
            tags: Vec::new(),
            project: None,
            excludes: Vec::new(),
            source: SourceKind::Files,
            source_meta: Vec::new(),
            tree: *tree,
            parent,
            program_version: "scale-gen".into(),
            summary: SnapshotSummary {
                files_new: n.div_ceil(args.per_file as u64),
                bytes_read: n * 8,
                bytes_added: n * 92,
                data_blobs_added: *n,
                bytes_total: so_far * 8,
                ..SnapshotSummary::default()
            },
            keep_until_ns: None,
            original: None,
            rewrites: Vec::new(),
        };
        let bytes = snap.encode(key, &mut rand::thread_rng());
        let id = SnapshotId(Digest::of_stored(&bytes));
        write_file(root, FileType::Snapshot, &id.to_hex(), &bytes, 0, &[])?;
        parent = Some(id);
    }
    println!(
        "scale-gen: {} blobs ({} per pack), {} tree blobs, {} packs ({} bytes), {} index \
         files, {} snapshots ({} generations, {} forgotten) in {:.1} s",
        args.blobs,
        args.per_pack,
        totals.tree_blobs,
        totals.packs,
        totals.stored_bytes,
        totals.index_files,
        snapshot_roots.len(),
        g_count,
        args.forgotten,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes the data packs of one generation (blobs `first..first + n`), on every core.
/// Returns their index entries, and the ids of the kept and of the scratch blobs, in order.
#[allow(clippy::type_complexity)]
fn data_packs(
    key: &MasterKey,
    root: &Path,
    per_pack: u64,
    first: u64,
    n: u64,
) -> Res<(Vec<IndexPack>, Vec<BlobId>, Vec<BlobId>)> {
    let packs = n.div_ceil(per_pack);
    let made: Vec<(IndexPack, Vec<(BlobId, bool)>)> = (0..packs)
        .into_par_iter()
        .map(|p| {
            let mut rng = rand::thread_rng();
            let mut head = preamble().to_vec();
            let mut blobs = Vec::with_capacity(per_pack as usize);
            let mut roles = Vec::with_capacity(per_pack as usize);
            for j in p * per_pack..((p + 1) * per_pack).min(n) {
                let plain = (first + j).to_le_bytes();
                let id = key.blob_id(&plain);
                let stored = encode_blob(key, &mut rng, BlobType::Data, id, &plain, 3);
                blobs.push(PackBlob {
                    blob_type: BlobType::Data,
                    id,
                    offset: head.len() as u32,
                    length: stored.len() as u32,
                    raw_length: plain.len() as u32,
                });
                head.extend_from_slice(&stored);
                // Every 20th pack: scratch only; two in 20: every other blob scratch.
                let scratch = match p % 20 {
                    0 => true,
                    1 | 2 => j % 2 == 1,
                    _ => false,
                };
                roles.push((id, scratch));
            }
            let pack = write_pack(key, root, head, blobs)?;
            Ok((pack, roles))
        })
        .collect::<Res<_>>()?;
    let mut index = Vec::with_capacity(made.len());
    let (mut kept, mut scratch) = (Vec::new(), Vec::new());
    for (pack, roles) in made {
        index.push(pack);
        for (id, s) in roles {
            (if s { &mut scratch } else { &mut kept }).push(id);
        }
    }
    Ok((index, kept, scratch))
}

/// Seals the header of a pack whose blobs are in `head`, pads it to [`MIN_PACK`] with a
/// hole after the blobs, stores it under its id and returns its index entry.
fn write_pack(key: &MasterKey, root: &Path, head: Vec<u8>, blobs: Vec<PackBlob>) -> Res<IndexPack> {
    let tail = trailer(key, &mut rand::thread_rng(), &blobs);
    let gap = MIN_PACK.saturating_sub((head.len() + tail.len()) as u64);
    let mut h = Digest::stored_hasher();
    h.update(&head);
    let zeros = [0u8; 4096];
    let mut left = gap;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        h.update(&zeros[..k]);
        left -= k as u64;
    }
    h.update(&tail);
    let id = PackId(h.finalize());
    let size = head.len() as u64 + gap + tail.len() as u64;
    write_file(root, FileType::Pack, &id.to_hex(), &head, gap, &tail)?;
    Ok(IndexPack { id, size, blobs })
}

/// Writes `head`, a hole of `gap` bytes and `tail` as object `name` (mode 0600, no fsync).
fn write_file(
    root: &Path,
    ft: FileType,
    name: &str,
    head: &[u8],
    gap: u64,
    tail: &[u8],
) -> Res<()> {
    let path = root.join(ft.path(name));
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
    };
    let mut f = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(path.parent().expect("objects live in directories"))?;
            open()?
        }
        Err(e) => return Err(e.into()),
    };
    f.write_all(head)?;
    if gap > 0 {
        f.seek(SeekFrom::Current(gap as i64))?;
    }
    f.write_all(tail)?;
    Ok(())
}

/// A directory entry with plausible metadata.
fn node(name: String, kind: NodeKind, size: u64, inode: u64) -> Node {
    let mode = if matches!(kind, NodeKind::Dir { .. }) {
        0o755
    } else {
        0o644
    };
    Node {
        name: name.into_bytes(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        user: Some("root".into()),
        group: Some("root".into()),
        mtime_ns: EPOCH_NS,
        atime_ns: 0,
        ctime_ns: EPOCH_NS,
        inode,
        device: 2049,
        links: 1,
        size,
        xattrs: Vec::new(),
    }
}

/// A tree's blob id and plaintext.
fn tree_blob(key: &MasterKey, mut tree: Tree) -> (BlobId, Vec<u8>) {
    tree.sort();
    let plain = tree.encode();
    (key.blob_id(&plain), plain)
}

/// The trees of a directory of subdirectories of files naming `ids` in order; pushes each
/// tree's plaintext to `out` and returns the id of the top one. `inode` numbers its files.
fn dir_tree(
    key: &MasterKey,
    ids: &[BlobId],
    args: &Args,
    inode: u64,
    out: &mut Vec<Vec<u8>>,
) -> BlobId {
    let per_dir = args.per_file * args.files_per_dir;
    let mut dirs = Vec::new();
    for (d, chunk) in ids.chunks(per_dir).enumerate() {
        let nodes = chunk
            .chunks(args.per_file)
            .enumerate()
            .map(|(f, content)| {
                let size = content.len() as u64 * 8;
                let kind = NodeKind::File {
                    content: content.to_vec(),
                };
                node(
                    format!("f{f:04}"),
                    kind,
                    size,
                    inode + (d * args.files_per_dir + f) as u64,
                )
            })
            .collect();
        let (id, plain) = tree_blob(key, Tree { nodes });
        out.push(plain);
        dirs.push(node(
            format!("d{d:05}"),
            NodeKind::Dir { subtree: id },
            0,
            inode + d as u64,
        ));
    }
    let (id, plain) = tree_blob(key, Tree { nodes: dirs });
    out.push(plain);
    id
}

/// Stores tree blobs in packs of their own (each closed once it reaches the pack size).
fn tree_packs(key: &MasterKey, root: &Path, trees: &[Vec<u8>]) -> Res<Vec<IndexPack>> {
    let mut groups: Vec<Vec<&Vec<u8>>> = vec![Vec::new()];
    let mut size = 0usize;
    for t in trees {
        if size >= PACK_SIZE as usize {
            groups.push(Vec::new());
            size = 0;
        }
        size += t.len();
        groups.last_mut().expect("one group at least").push(t);
    }
    groups
        .into_par_iter()
        .filter(|g| !g.is_empty())
        .map(|group| {
            let mut rng = rand::thread_rng();
            let mut head = Vec::with_capacity(PACK_PREAMBLE_LEN);
            head.extend_from_slice(&preamble());
            let mut blobs = Vec::new();
            for plain in group {
                let id = key.blob_id(plain);
                let stored = encode_blob(key, &mut rng, BlobType::Tree, id, plain, 3);
                blobs.push(PackBlob {
                    blob_type: BlobType::Tree,
                    id,
                    offset: head.len() as u32,
                    length: stored.len() as u32,
                    raw_length: plain.len() as u32,
                });
                head.extend_from_slice(&stored);
            }
            write_pack(key, root, head, blobs)
        })
        .collect()
}

/// Writes index files of at least [`INDEX_BLOBS`] blobs each naming `packs`; returns how
/// many.
fn write_index(key: &MasterKey, root: &Path, packs: Vec<IndexPack>) -> Res<usize> {
    let mut files: Vec<IndexFile> = Vec::new();
    let mut file = IndexFile::default();
    let mut blobs = 0;
    for p in packs {
        blobs += p.blobs.len();
        file.packs.push(p);
        if blobs >= INDEX_BLOBS {
            files.push(std::mem::take(&mut file));
            blobs = 0;
        }
    }
    if !file.packs.is_empty() {
        files.push(file);
    }
    let count = files.len();
    files.into_par_iter().try_for_each(|f| -> Res<()> {
        let bytes = f.encode(key, &mut rand::thread_rng());
        let id = Digest::of_stored(&bytes);
        write_file(root, FileType::Index, &id.to_hex(), &bytes, 0, &[])
    })?;
    Ok(count)
}
