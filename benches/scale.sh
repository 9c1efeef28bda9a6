#!/usr/bin/env bash
# benches/scale.sh — Strata on large repositories, by simulation (issue #19).
#
#   bash benches/scale.sh [--sizes "1000000 10000000"] [--per-pack 16] [--files 10000000]
#                         [--workdir DIR] [--out FILE] [--no-build] [--keep] [--skip-repos]
#                         [--skip-files] [--report-only]
#
# 1. For each size (indexed data blobs), writes a synthetic repository with scale-gen
#    (benches/scale-gen.rs: real format, tiny blobs, --snapshots generations of which the
#    first --forgotten were never snapshotted, so there is garbage), then runs the release
#    `strata` on it under /usr/bin/time: `snapshots`; `cat tree` of the latest root (opens
#    the repository and loads the whole index: "open"); `stats latest` (up to STATS_MAX
#    blobs); a backup of 1 GiB of new random data, and the same again (incremental, nothing
#    changed); `check`; `prune`; `forget --keep-last KEEP_LAST --prune`. Records wall time,
#    peak RSS, CPU time, and RSS per indexed blob.
# 2. Generates a tree of --files empty files (one in 1000 holds a few bytes) in
#    directories of 1000, and backs it up twice (the second is incremental) with strata and
#    with restic (installed with apt-get if missing), each with its defaults.
# 3. Writes FILE (default benches/RESULTS-scale.md) and its raw records in FILE.tsv
#    (--report-only: only rewrites FILE from FILE.tsv and the logs of earlier runs in the
#    same work directory, e.g. after concatenating the records of several runs).
#
# Every timed command holds `flock /tmp/strata-bench.lock`; builds hold
# `flock /tmp/strata-cargo.lock`. Knobs (environment): SNAPSHOTS (40), FORGOTTEN (10),
# KEEP_LAST (15), BACKUP_MB (1024), STATS_MAX (10000000), FILES_PER_DIR (1000), SCALE_GEN.
# Disk: about 8 KiB a pack at 16 blobs a pack (0.6 GB per million blobs), 200 bytes a blob
# at 64 (--per-pack 64: 100 M blobs in 20 GB); each repository is deleted after its round
# unless --keep. The file tree needs 10 M inodes (it is kept, and reused by later runs).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$here/.." && pwd)

SNAPSHOTS=${SNAPSHOTS:-40}
FORGOTTEN=${FORGOTTEN:-10}
KEEP_LAST=${KEEP_LAST:-15}
BACKUP_MB=${BACKUP_MB:-1024}
STATS_MAX=${STATS_MAX:-10000000}
FILES_PER_DIR=${FILES_PER_DIR:-1000}

sizes="1000000 10000000"
per_pack=16
files=10000000
workdir=/var/tmp/strata-scale
out="$here/RESULTS-scale.md"
no_build=0
keep=0
skip_repos=0
skip_files=0
report_only=0

say() { printf '[scale %s] %s\n' "$(date +%T)" "$*"; }
die() {
    printf 'scale.sh: %s\n' "$*" >&2
    exit 1
}

while (($# > 0)); do
    case $1 in
    --sizes) sizes=${2:?}; shift 2 ;;
    --per-pack) per_pack=${2:?}; shift 2 ;;
    --files) files=${2:?}; shift 2 ;;
    --workdir) workdir=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --no-build) no_build=1; shift ;;
    --keep) keep=1; shift ;;
    --skip-repos) skip_repos=1; shift ;;
    --skip-files) skip_files=1; shift ;;
    --report-only) report_only=1; skip_repos=1; skip_files=1; no_build=1; shift ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown option: $1" ;;
    esac
done
case $workdir in /*) ;; *) workdir="$PWD/$workdir" ;; esac
case $out in /*) ;; *) out="$PWD/$out" ;; esac
tsv="${out%.md}.tsv"

# ---------------------------------------------------------------- tools
missing=()
pkg_missing() { ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in time python3; do pkg_missing "$p" && missing+=("$p"); done
if ((skip_files == 0)) && pkg_missing restic; then missing+=(restic); fi
if ((report_only == 1)); then missing=(); fi
if ((${#missing[@]} > 0)); then
    say "installing with apt-get: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

target=${CARGO_TARGET_DIR:-$repo_root/target}
strata="$target/release/strata"
cd "$repo_root"
if ((no_build == 0)); then
    say "building strata and scale-gen (release)"
    flock /tmp/strata-cargo.lock cargo build --release -q -p strata-cli
fi
# SCALE_GEN: a scale-gen binary built before (skips the cargo call and its lock).
if ((report_only == 1)); then
    gen=/bin/true
else
    gen=${SCALE_GEN:-$(flock /tmp/strata-cargo.lock cargo bench -q -p strata-engine --bench scale-gen --no-run \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "scale-gen":
        print(m["executable"])')}
    [[ -x $strata && -x $gen ]] || die "strata ($strata) or scale-gen ($gen) was not built"
fi

mkdir -p "$workdir/logs"
printf 'secret scale password\n' >"$workdir/password"
chmod 600 "$workdir/password"
export STRATA_PASSWORD_FILE="$workdir/password" STRATA_CACHE_DIR="$workdir/cache"
export RESTIC_PASSWORD_FILE="$workdir/password" RESTIC_CACHE_DIR="$workdir/restic-cache"
if ((report_only == 0)); then
    printf 'size\tstep\twall_s\tmax_rss_bytes\tuser_s\tsys_s\texit\n' >"$tsv"
fi

# measure SIZE STEP COMMAND...: one timed run, recorded in the TSV.
measure() {
    local size=$1 step=$2
    shift 2
    local log="$workdir/logs/$size-$step.log" tf="$workdir/logs/$size-$step.time" rc=0
    sync
    flock /tmp/strata-bench.lock /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$log" 2>&1 || rc=$?
    local wall rss user sys
    read -r wall rss user sys < <(tail -1 "$tf")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$step" "$wall" "$((rss * 1024))" "$user" "$sys" "$rc" >>"$tsv"
    say "$size $step: ${wall}s, $((rss / 1024)) MiB, exit $rc"
    if ((rc != 0)); then tail -5 "$log" >&2; fi
}

# ---------------------------------------------------------------- synthetic repositories
if ((skip_repos == 0)); then
    incr="$workdir/incr"
    if [[ ! -d $incr ]]; then
        say "writing $BACKUP_MB MiB of random data into $incr"
        mkdir -p "$incr"
        for ((i = 0; i < BACKUP_MB / 64; i++)); do head -c 64M /dev/urandom >"$incr/part$i"; done
    fi
    for size in $sizes; do
        repo="$workdir/repo-$size"
        rm -rf "$repo"
        export STRATA_REPOSITORY="$repo"
        measure "$size" generate "$gen" --repo "$repo" --password-file "$workdir/password" \
            --blobs "$size" --blobs-per-pack "$per_pack" --snapshots "$SNAPSHOTS" --forgotten "$FORGOTTEN"
        tail -1 "$workdir/logs/$size-generate.log" | sed "s/^/[$size] /" >"$workdir/logs/$size-generated.txt"
        sync
        du -sb "$repo" | cut -f1 >"$workdir/logs/$size-disk.txt"
        root=$("$strata" cat snapshot latest | python3 -c 'import json,sys; print(json.load(sys.stdin)["tree"])')
        measure "$size" snapshots "$strata" snapshots
        measure "$size" open "$strata" cat tree "$root"
        if ((size <= STATS_MAX)); then measure "$size" stats "$strata" stats latest; fi
        measure "$size" backup-1g "$strata" backup "$incr"
        measure "$size" backup-again "$strata" backup "$incr"
        measure "$size" check "$strata" check
        measure "$size" prune "$strata" prune
        measure "$size" forget-prune "$strata" forget --keep-last "$KEEP_LAST" --prune
        if ((keep == 0)); then rm -rf "$repo"; fi
    done
fi

# ---------------------------------------------------------------- a tree of many files
if ((skip_files == 0)); then
    tree="$workdir/files-$files"
    if [[ ! -f $tree.done ]]; then
        rm -rf "$tree"
        say "creating $files files in $tree"
        measure "$files" make-tree python3 - "$tree" "$files" "$FILES_PER_DIR" <<'EOF'
import os, sys
root, n, per_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range((n + per_dir - 1) // per_dir):
    path = f"{root}/{d // 100:05d}/{d % 100:02d}"
    os.makedirs(path)
    for f in range(min(per_dir, n - d * per_dir)):
        i = d * per_dir + f
        fd = os.open(f"{path}/f{f:04d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if i % 1000 == 0:
            os.write(fd, b"file %d\n" % i)
        os.close(fd)
EOF
        touch "$tree.done"
    fi
    sync
    say "reading the tree once (warm cache): $(find "$tree" -type f | wc -l) files"
    for tool in strata restic; do
        r="$workdir/files-repo-$tool"
        rm -rf "$r" "$workdir/restic-cache"
        if [[ $tool == strata ]]; then
            STRATA_REPOSITORY="$r" "$strata" init >/dev/null
            STRATA_REPOSITORY="$r" measure "$files" strata-backup "$strata" backup "$tree"
            STRATA_REPOSITORY="$r" measure "$files" strata-backup-again "$strata" backup "$tree"
        else
            RESTIC_REPOSITORY="$r" restic init >/dev/null
            RESTIC_REPOSITORY="$r" measure "$files" restic-backup restic backup --host scale "$tree"
            RESTIC_REPOSITORY="$r" measure "$files" restic-backup-again restic backup --host scale "$tree"
        fi
        du -sb "$r" | cut -f1 >"$workdir/logs/$files-$tool-disk.txt"
        if ((keep == 0)); then rm -rf "$r"; fi
    done
fi

# ---------------------------------------------------------------- report
say "writing $out"
python3 - "$tsv" "$out" "$workdir/logs" "$per_pack" "$SNAPSHOTS" "$FORGOTTEN" "$KEEP_LAST" \
    "$BACKUP_MB" "$(git -C "$repo_root" rev-parse --short HEAD)" \
    "$(restic version 2>/dev/null | head -1 || true)" <<'EOF'
import csv, os, sys, platform, datetime
tsv, out, logs, per_pack, snaps, forgotten, keep_last, backup_mb, commit, restic = sys.argv[1:]
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def mib(b): return f"{int(b) / 2**20:,.0f}"
L = ["# Scale benchmarks (issue #19)", "",
     f"{datetime.date.today()}, strata {commit}, {restic or 'restic not run'}; {os.cpu_count()} cores ({cpu}), "
     f"{int(mem) // 2**20} GiB RAM, Linux {platform.release()}, ext4 on a virtual disk. "
     "Written by `benches/scale.sh`; raw records in `RESULTS-scale.tsv`.", ""]
sizes = []
for r in rows:
    if r["step"] == "generate" and r["size"] not in sizes:
        sizes.append(r["size"])
if sizes:
    L += ["## Synthetic repositories", "",
          f"`scale-gen --blobs N --blobs-per-pack P --snapshots {snaps} --forgotten {forgotten}`: "
          f"N data blobs, P per pack (each size's line says), {int(snaps) - int(forgotten)} snapshots of {snaps} generations "
          f"(the first {forgotten} never snapshotted: their scratch blobs are garbage). Steps: `snapshots`; "
          "open = `cat tree <latest root>` (loads the whole index, reads one tree); `stats latest`; "
          f"`backup` of {backup_mb} MiB of new random data, then again (nothing changed); `check`; `prune`; "
          f"`forget --keep-last {keep_last} --prune`. RSS/blob = peak RSS / N; marginal = growth of peak RSS "
          "per added blob from the previous size.", ""]
    for s in sizes:
        gen = open(f"{logs}/{s}-generated.txt").read().strip() if os.path.exists(f"{logs}/{s}-generated.txt") else ""
        disk = open(f"{logs}/{s}-disk.txt").read().strip() if os.path.exists(f"{logs}/{s}-disk.txt") else "0"
        L.append(f"* {int(s):,} blobs: {gen.split('] ', 1)[-1]}; {int(disk) / 1e9:.1f} GB on disk")
    L += ["", "| step | blobs | wall s | peak RSS MiB | RSS B/blob | marginal B/blob | user s | sys s | exit |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    tree_steps = ("strata-", "restic-", "make-tree")
    steps = []
    for r in rows:
        if r["size"] in sizes and r["step"] not in steps and not r["step"].startswith(tree_steps):
            steps.append(r["step"])
    by = {(r["size"], r["step"]): r for r in rows}
    for st in steps:
        prev = None
        for s in sizes:
            r = by.get((s, st))
            if not r:
                continue
            rss = int(r["max_rss_bytes"]); n = int(s)
            marg = f"{(rss - prev[1]) / (n - prev[0]):.1f}" if prev and n > prev[0] else ""
            L.append(f"| {st} | {n:,} | {float(r['wall_s']):.1f} | {mib(rss)} | {rss / n:.1f} | {marg} | "
                     f"{float(r['user_s']):.1f} | {float(r['sys_s']):.1f} | {r['exit']} |")
            prev = (n, rss)
    L.append("")
tree = [r for r in rows if r["step"].startswith(("strata-", "restic-", "make-tree"))]
if tree:
    n = int(tree[0]["size"])
    L += ["## A tree of many files", "",
          f"{n:,} files (empty but one in 1000) in directories of 1000, backed up twice (the second finds "
          "nothing changed) by each tool with its defaults into a fresh local repository; warm page cache.", "",
          "| step | strata s | restic s | ratio | strata RSS MiB | restic RSS MiB | ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
    by = {r["step"]: r for r in tree}
    for st in ("backup", "backup-again"):
        a, b = by.get("strata-" + st), by.get("restic-" + st)
        if not (a and b):
            continue
        wa, wb, ra, rb = float(a["wall_s"]), float(b["wall_s"]), int(a["max_rss_bytes"]), int(b["max_rss_bytes"])
        L.append(f"| {st} | {wa:.1f} | {wb:.1f} | {wa / wb:.2f} | {mib(ra)} | {mib(rb)} | {ra / rb:.2f} |")
    for tool in ("strata", "restic"):
        p = f"{logs}/{n}-{tool}-disk.txt"
        if os.path.exists(p):
            L.append(f"\n{tool} repository: {int(open(p).read()) / 1e6:,.0f} MB.")
    L.append("")
L += ["## Reading", "", "(by hand)", ""]
open(out, "w").write("\n".join(L))
EOF
say "done: $out"
