#!/usr/bin/env bash
# benches/compare.sh — side-by-side benchmark of strata against restic, borg and rustic.
#
#   bash benches/compare.sh [--runs N] [--workdir DIR] [--tools "strata restic borg rustic"]
#                           [--rustic] [--data DIR] [--skip-extras] [--out FILE] [--no-build] [--keep]
#
# Builds strata (cargo build --release -p strata-cli), installs what is missing with apt-get
# (restic, borgbackup, linux-source-6.1, time), extracts the Linux 6.1 source tree into the work
# directory and times, under /usr/bin/time, every tool on: first backup, unchanged re-backup,
# re-backup after changing 1% of the files plus a new 50 MB file, full restore, check,
# check --read-data, forget --keep-last 1 + prune, and listing a snapshot. Best of N runs, the
# tools' order rotated between runs. Extras: a ~300 MB SQL dump (first backup, then 0.1% of the
# rows changed) and a tree of 500,000 small files. Writes benches/RESULTS.md (markdown) and
# benches/RESULTS.tsv (the raw records). See benches/README.md.
#
# Size knobs (environment): SQL_MB (300), SMALL_FILES (500000), SMALL_DIRS (1000),
# CHANGE_PCT (1), NEW_FILE_MB (50), SQL_CHANGE_PCT (0.1), SEED (20240601), SETTLE_SECS (35),
# RUSTIC_VERSION (0.11.4, for --rustic).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$here/.." && pwd)

usage() {
    cat <<EOF
usage: bash benches/compare.sh [options]

Benchmark strata against restic, borg (and rustic) on the Linux 6.1 source tree.

options:
  --runs N          best of N runs per step (default 2)
  --workdir DIR     scratch directory: data, repositories, restores, logs
                    (default /var/tmp/strata-compare; needs ~25 GB free for the default data)
  --tools "LIST"    tools to compare, from: strata restic borg rustic
                    (default: strata restic borg, plus rustic when it is installed or --rustic)
  --rustic          install rustic with 'cargo install rustic-rs --locked' if it is missing
  --data DIR        benchmark a copy of DIR instead of the Linux source (quick tests)
  --skip-extras     skip the SQL dump and small-files extras
  --out FILE        markdown report (default benches/RESULTS.md; raw records go to FILE.tsv)
  --no-build        do not run cargo build; use the existing release binary
  --keep            keep restore targets and pruned copies at the end (default: delete them)
  -h, --help        this help

environment knobs: SQL_MB=$SQL_MB SMALL_FILES=$SMALL_FILES SMALL_DIRS=$SMALL_DIRS
  CHANGE_PCT=$CHANGE_PCT NEW_FILE_MB=$NEW_FILE_MB SQL_CHANGE_PCT=$SQL_CHANGE_PCT SEED=$SEED
  SETTLE_SECS=$SETTLE_SECS RUSTIC_VERSION=$RUSTIC_VERSION CARGO_TARGET_DIR
EOF
}

say() { printf '[compare %s] %s\n' "$(date +%T)" "$*"; }
warn() { printf '[compare %s] WARNING: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    printf 'compare.sh: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- options and knobs
SQL_MB=${SQL_MB:-300}
SMALL_FILES=${SMALL_FILES:-500000}
SMALL_DIRS=${SMALL_DIRS:-1000}
CHANGE_PCT=${CHANGE_PCT:-1}
NEW_FILE_MB=${NEW_FILE_MB:-50}
SQL_CHANGE_PCT=${SQL_CHANGE_PCT:-0.1}
SEED=${SEED:-20240601}
SETTLE_SECS=${SETTLE_SECS:-35}
RUSTIC_VERSION=${RUSTIC_VERSION:-0.11.4}

runs=2
workdir=/var/tmp/strata-compare
tools_arg=""
want_rustic=0
data_dir=""
skip_extras=0
out="$here/RESULTS.md"
no_build=0
keep=0

while (($# > 0)); do
    case $1 in
    --runs)
        runs=${2:?--runs needs a number}
        shift 2
        ;;
    --workdir)
        workdir=${2:?--workdir needs a directory}
        shift 2
        ;;
    --tools)
        tools_arg=${2:?--tools needs a list}
        shift 2
        ;;
    --rustic)
        want_rustic=1
        shift
        ;;
    --data)
        data_dir=${2:?--data needs a directory}
        shift 2
        ;;
    --skip-extras)
        skip_extras=1
        shift
        ;;
    --out)
        out=${2:?--out needs a file}
        shift 2
        ;;
    --no-build)
        no_build=1
        shift
        ;;
    --keep)
        keep=1
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        die "unknown option: $1"
        ;;
    esac
done

[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, not '$runs'"
for knob in SQL_MB SMALL_FILES SMALL_DIRS NEW_FILE_MB SEED SETTLE_SECS; do
    [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a non-negative integer, not '${!knob}'"
done
[[ $CHANGE_PCT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "CHANGE_PCT must be a number, not '$CHANGE_PCT'"
[[ $SQL_CHANGE_PCT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "SQL_CHANGE_PCT must be a number"
((SMALL_DIRS > 0)) || die "SMALL_DIRS must be at least 1"

case $workdir in /*) ;; *) workdir="$PWD/$workdir" ;; esac
case $out in /*) ;; *) out="$PWD/$out" ;; esac
tsv_out="${out%.md}.tsv"
if [[ -n $data_dir ]]; then
    [[ -d $data_dir ]] || die "--data $data_dir is not a directory"
    data_dir=$(realpath -- "$data_dir")
fi

linux_tar=/usr/src/linux-source-6.1.tar.xz

# ---------------------------------------------------------------- which tools
find_rustic() {
    if command -v rustic >/dev/null 2>&1; then
        command -v rustic
    elif [[ -x $HOME/.cargo/bin/rustic ]]; then
        echo "$HOME/.cargo/bin/rustic"
    fi
}

rustic_bin=$(find_rustic || true)
if [[ -n $tools_arg ]]; then
    read -r -a tools <<<"$tools_arg"
else
    tools=(strata restic borg)
    if [[ -n $rustic_bin || $want_rustic == 1 ]]; then tools+=(rustic); fi
fi
((${#tools[@]} > 0)) || die "--tools is empty"
for t in "${tools[@]}"; do
    case $t in strata | restic | borg | rustic) ;; *) die "unknown tool '$t' (known: strata restic borg rustic)" ;; esac
done
have_tool() {
    local t
    for t in "${tools[@]}"; do [[ $t == "$1" ]] && return 0; done
    return 1
}

# ---------------------------------------------------------------- installs
as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

missing=()
pkg_missing() { ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in time python3; do pkg_missing "$p" && missing+=("$p"); done
if have_tool restic && pkg_missing restic; then missing+=(restic); fi
if have_tool borg && pkg_missing borgbackup; then missing+=(borgbackup); fi
if [[ -z $data_dir ]]; then
    pkg_missing xz-utils && missing+=(xz-utils)
    if [[ ! -f $linux_tar ]] || pkg_missing linux-source-6.1; then missing+=(linux-source-6.1); fi
fi
if ((${#missing[@]} > 0)); then
    say "installing with apt-get: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is missing"
if [[ -z $data_dir && ! -f $linux_tar ]]; then die "$linux_tar not found after installing linux-source-6.1"; fi

if ! command -v cargo >/dev/null 2>&1 && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

if have_tool rustic && [[ -z $rustic_bin ]]; then
    if [[ $want_rustic == 1 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo is needed to install rustic"
        say "installing rustic $RUSTIC_VERSION with cargo (this compiles for a while)"
        cargo install rustic-rs --locked --version "$RUSTIC_VERSION"
        rustic_bin=$(find_rustic || true)
        [[ -n $rustic_bin ]] || die "rustic still not found after cargo install"
    else
        die "rustic is not installed: pass --rustic to install it with cargo, or leave it out of --tools"
    fi
fi
restic_bin=""
borg_bin=""
if have_tool restic; then restic_bin=$(command -v restic) || die "restic not found"; fi
if have_tool borg; then borg_bin=$(command -v borg) || die "borg not found"; fi

# ---------------------------------------------------------------- build strata
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
case $target_dir in /*) ;; *) target_dir="$repo_root/$target_dir" ;; esac
strata_bin="$target_dir/release/strata"
if have_tool strata; then
    if [[ $no_build == 0 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup"
        say "building strata: cargo build --release -p strata-cli (target dir $target_dir)"
        (cd -- "$repo_root" && cargo build --release -p strata-cli) || die "cargo build failed"
    fi
    [[ -x $strata_bin ]] || die "strata binary not found at $strata_bin"
fi

# ---------------------------------------------------------------- work directory
marker="$workdir/.strata-compare"
if [[ -d $workdir && ! -e $marker ]] && [[ -n $(ls -A -- "$workdir") ]]; then
    die "$workdir exists, is not empty and was not made by compare.sh; choose another --workdir"
fi
mkdir -p -- "$workdir"
workdir=$(realpath -- "$workdir")
touch -- "$marker"
wd=$workdir
cd -- "$wd"
if [[ -z $data_dir ]]; then
    avail_gb=$(df -P -B1G -- "$wd" | awk 'NR == 2 {print $4}')
    if [[ $avail_gb =~ ^[0-9]+$ ]] && ((avail_gb < 25)); then
        warn "only ${avail_gb} GB free in $wd; a full run needs about 25 GB (restores are kept until the end)"
    fi
fi

# Identity of the pristine data tree: reused across invocations while it is unmodified.
if [[ -n $data_dir ]]; then
    data_id="copy of $data_dir"
    tree="$wd/data/$(basename -- "$data_dir")"
else
    data_id="$linux_tar $(stat -c '%s %Y' -- "$linux_tar")"
    tree="$wd/data/linux-source-6.1"
fi
small_id="small $SMALL_DIRS $SMALL_FILES $SEED"

leftovers=("$wd/repos" "$wd/home" "$wd/restore" "$wd/prune" "$wd/trash" "$wd/logs" "$wd/time"
    "$wd/tmp" "$wd/extras/repos" "$wd/extras/home" "$wd/extras/sql" "$wd/bin" "$wd/results.tsv" "$wd/meta.tsv")
if [[ ! -f $wd/data/.pristine || $(cat "$wd/data/.pristine" 2>/dev/null) != "$data_id" ]]; then
    leftovers+=("$wd/data")
fi
if [[ ! -f $wd/extras/small/.pristine || $(cat "$wd/extras/small/.pristine" 2>/dev/null) != "$small_id" ]]; then
    leftovers+=("$wd/extras/small")
fi
deleted=0
for f in "${leftovers[@]}"; do
    if [[ -e $f ]]; then
        ((deleted == 0)) && say "work directory $wd: removing leftovers of a previous run"
        rm -rf -- "$f"
        deleted=1
    fi
done
sync
if ((deleted == 1 && SETTLE_SECS > 0)); then
    say "sleeping ${SETTLE_SECS}s after the deletions (ext4 without journal reuses recently deleted inodes slowly)"
    sleep "$SETTLE_SECS"
fi
mkdir -p -- "$wd/repos" "$wd/home" "$wd/restore" "$wd/prune" "$wd/trash" "$wd/logs" "$wd/time" "$wd/bin" "$wd/tmp"

password_file="$wd/password"
(umask 077 && printf 'strata-compare-benchmark-password\n' >"$password_file")
password=$(head -n1 "$password_file")

results="$wd/results.tsv"
printf 'tool\tstep\trun\twall_s\tuser_s\tsys_s\tmaxrss_kib\tstatus\tbytes\tnote\n' >"$results"
meta="$wd/meta.tsv"
: >"$meta"
meta_set() { printf '%s\t%s\n' "$1" "$2" >>"$meta"; }

# ---------------------------------------------------------------- helper python scripts
cat >"$wd/bin/modify.py" <<'PY'
"""Deterministically change CHANGE_PCT % of the regular files of a tree and add a new file.

usage: modify.py TREE RUN SEED PCT NEW_MB
Run r takes the r-th slice of one seeded shuffle of all regular files (so every run changes
different files), appends a text line to each, and writes TREE/strata-bench-new-rR.bin with
NEW_MB MiB of seeded random (incompressible) bytes.
"""
import os, random, stat, sys

tree, run, seed, pct, new_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
files = []
for dirpath, dirnames, filenames in os.walk(tree):
    dirnames.sort()
    for name in sorted(filenames):
        if name.startswith("strata-bench-new-"):
            continue
        p = os.path.join(dirpath, name)
        if stat.S_ISREG(os.lstat(p).st_mode):
            files.append(p)
files.sort()
rng = random.Random(seed)
rng.shuffle(files)
k = max(1, round(len(files) * pct / 100.0))
start = ((run - 1) * k) % max(1, len(files))
chosen = (files + files)[start:start + k]
for p in chosen:
    with open(p, "ab") as f:
        f.write(b"\n/* strata-bench: changed in run %d */\n" % run)
new = os.path.join(tree, "strata-bench-new-r%d.bin" % run)
data = random.Random(seed * 1000 + run).randbytes(new_mb * 1024 * 1024)
with open(new, "wb") as f:
    f.write(data)
print("changed %d of %d files, wrote %s (%d MiB)" % (len(chosen), len(files), new, new_mb))
PY

cat >"$wd/bin/gen_sql.py" <<'PY'
"""Deterministic pg_dump-style SQL dump (CREATE TABLE + one INSERT per row).

usage: gen_sql.py OUT MB SEED [CHANGE_SEED CHANGE_PCT]
The row count is fixed by MB and SEED. With CHANGE_SEED, about CHANGE_PCT % of the rows, spread
over the whole file, are generated from the change seed instead (same ids): an in-place update
of those rows, everything else byte-identical.
"""
import random, sys, time

out, mb, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
change_seed = int(sys.argv[4]) if len(sys.argv) > 4 else None
change_frac = float(sys.argv[5]) / 100.0 if len(sys.argv) > 5 else 0.001
target = int(mb * 1_000_000)

FIRST = ["Anna", "Ben", "Carla", "David", "Elif", "Fatima", "Georg", "Hannah", "Ivan", "Julia",
         "Karim", "Lena", "Marco", "Nora", "Oskar", "Paula", "Quentin", "Rosa", "Sven", "Tara",
         "Ulrich", "Vera", "William", "Xenia", "Yusuf", "Zoe", "José", "Zoë", "Łukasz", "Søren"]
LAST = ["Schmidt", "Müller", "Garcia", "O''Brien", "Nguyen", "Kowalski", "Rossi", "Dubois",
        "Jensen", "Yilmaz", "Smith", "Novak", "Silva", "Kim", "Ivanova", "Fischer", "Weber",
        "Martin", "Larsen", "Costa", "Horvath", "Meyer", "Brown", "Lopez", "Sato", "Haddad"]
CITIES = [("Berlin", "DE"), ("Hamburg", "DE"), ("München", "DE"), ("Paris", "FR"), ("Lyon", "FR"),
          ("Madrid", "ES"), ("Roma", "IT"), ("Milano", "IT"), ("Wien", "AT"), ("Zürich", "CH"),
          ("Amsterdam", "NL"), ("København", "DK"), ("Warszawa", "PL"), ("Praha", "CZ"),
          ("Lisboa", "PT"), ("Dublin", "IE"), ("Oslo", "NO"), ("Stockholm", "SE")]
PRODUCTS = [("USB-C cable 2m", 9.99), ("Mechanical keyboard", 89.0), ("27in monitor", 249.0),
            ("Wireless mouse", 24.5), ("Laptop stand", 39.9), ("Noise-cancelling headphones", 199.0),
            ("SSD 1TB NVMe", 79.0), ("HDMI adapter", 14.9), ("Webcam 1080p", 49.0),
            ("Desk lamp LED", 29.0), ("Office chair", 179.0), ("Notebook A5 dotted", 4.5),
            ("Fountain pen", 34.0), ("Coffee beans 1kg", 18.9), ("Backpack 25l", 59.0)]
STATUS = ["new", "paid", "packed", "shipped", "delivered", "returned", "cancelled"]
WORDS = ("please deliver to the back door call before arrival gift wrap requested invoice to "
         "company address fragile handle with care leave at reception customer asked for express "
         "shipping second attempt partial refund issued replacement sent damaged box reported "
         "weekend delivery not possible signature required contact via email discount code applied").split()


def row(i, r):
    fn, ln = r.choice(FIRST), r.choice(LAST)
    city, cc = r.choice(CITIES)
    prod, price = r.choice(PRODUCTS)
    qty = r.randint(1, 12)
    unit = price * (0.8 + 0.4 * r.random())
    cust = r.randrange(1, 250000)
    t = time.gmtime(1577836800 + r.randrange(0, 4 * 365 * 86400))
    note = " ".join(r.choices(WORDS, k=r.randint(0, 16)))
    email = "%s.%s%d@example.%s" % (fn.lower(), ln.lower().replace("''", ""), cust % 100, cc.lower())
    return ("INSERT INTO public.orders VALUES (%d, %d, '%s %s', '%s', '%s', '%s', '%s', %d, %.2f, %.2f, "
            "'%s', '%04d-%02d-%02d %02d:%02d:%02d+00', '%s');\n"
            % (i, cust, fn, ln, email, city, cc, prod, qty, unit, unit * qty, r.choice(STATUS),
               t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, note)).encode()


header = b"""--
-- PostgreSQL database dump (generated by strata benches/compare.sh)
--
SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

CREATE TABLE public.orders (
    id bigint NOT NULL,
    customer_id integer NOT NULL,
    customer_name text NOT NULL,
    email text NOT NULL,
    city text,
    country character(2),
    product text NOT NULL,
    quantity integer NOT NULL,
    unit_price numeric(10,2) NOT NULL,
    total numeric(12,2) NOT NULL,
    status text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    note text
);

BEGIN;
"""
footer = b"""COMMIT;

ALTER TABLE ONLY public.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id);
CREATE INDEX orders_customer_idx ON public.orders USING btree (customer_id);

--
-- PostgreSQL database dump complete
--
"""
base = random.Random(seed)
ch = random.Random(change_seed) if change_seed is not None else None
size, i, changed, buf = len(header), 0, 0, []
with open(out, "wb") as f:  # same inode: an in-place rewrite
    f.write(header)
    while size < target:
        i += 1
        line = row(i, base)
        size += len(line)  # the base row decides the row count, with or without changes
        if ch is not None and ch.random() < change_frac:
            line = row(i, ch)
            changed += 1
        buf.append(line)
        if len(buf) >= 20000:
            f.write(b"".join(buf))
            buf.clear()
    f.write(b"".join(buf))
    f.write(footer)
print("%s: %d rows, %d changed" % (out, i, changed))
PY

cat >"$wd/bin/gen_small.py" <<'PY'
"""Deterministic tree of small text files: DIRS directories, FILES files in all, 100 B - 4 KiB each.

usage: gen_small.py ROOT DIRS FILES SEED
"""
import os, random, sys

root, ndirs, nfiles, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
words = ("the of and to in is for on that with as by this be are from at or an it not which "
         "config server value error request file user data system time process memory network "
         "return function module build release update version test debug cache index backup").split()
pool_words = []
for n in range(400000):
    pool_words.append(r.choice(words))
    if n % 11 == 10:
        pool_words.append("\n")
pool = " ".join(pool_words).replace(" \n ", "\n")
per, rem = divmod(nfiles, ndirs)
for d in range(ndirs):
    dp = os.path.join(root, "d%04d" % d)
    os.makedirs(dp, exist_ok=True)
    for k in range(per + (1 if d < rem else 0)):
        size = r.randint(100, 4096)
        off = r.randrange(0, len(pool) - size)
        with open(os.path.join(dp, "f%04d.txt" % k), "w") as f:
            f.write(pool[off:off + size])
print("%s: %d files in %d directories" % (root, nfiles, ndirs))
PY

# ---------------------------------------------------------------- data
warm() { # read a tree once so that it sits in the page cache
    tar -C "$(dirname -- "$1")" -cf - "$(basename -- "$1")" 2>/dev/null | cat >/dev/null || true
}

if [[ -f $wd/data/.pristine ]]; then
    say "reusing the unmodified data tree $tree"
else
    rm -rf -- "$wd/data"
    mkdir -p -- "$wd/data"
    if [[ -n $data_dir ]]; then
        say "copying $data_dir to $tree"
        cp -a -- "$data_dir" "$tree"
    else
        say "extracting $linux_tar into $wd/data"
        tar -C "$wd/data" -xJf "$linux_tar"
    fi
    [[ -d $tree ]] || die "data tree $tree missing after extraction"
    printf '%s' "$data_id" >"$wd/data/.pristine"
    sync
fi
data_files=$(find "$tree" -type f | wc -l)
data_bytes=$(du -sb -- "$tree" | cut -f1)
say "data: $tree, $data_files files, $data_bytes bytes"

# ---------------------------------------------------------------- machine and versions
meta_set date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta_set cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
meta_set nproc "$(nproc)"
meta_set ram "$(free -b | awk '/^Mem:/ {printf "%.1f GiB", $2/1073741824}')"
meta_set kernel "$(uname -sr)"
meta_set fs "$(findmnt -n -o FSTYPE,SOURCE --target "$wd" 2>/dev/null | tr -s ' ' || stat -f -c %T "$wd")"
meta_set workdir "$wd"
meta_set runs "$runs"
meta_set tools "${tools[*]}"
if [[ -n $data_dir ]]; then
    meta_set data "copy of $data_dir"
else
    meta_set data "Linux 6.1 source tree from Debian's linux-source-6.1 $(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true) ($linux_tar, extracted)"
fi
meta_set data_files "$data_files"
meta_set data_bytes "$data_bytes"
meta_set change_pct "$CHANGE_PCT"
meta_set new_file_mb "$NEW_FILE_MB"
meta_set skip_extras "$skip_extras"
meta_set sql_mb "$SQL_MB"
meta_set sql_change_pct "$SQL_CHANGE_PCT"
meta_set small_files "$SMALL_FILES"
meta_set small_dirs "$SMALL_DIRS"
meta_set seed "$SEED"
if have_tool strata; then
    strata_rev=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$repo_root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then strata_rev+="+dirty"; fi
    meta_set version_strata "$("$strata_bin" --version 2>&1 | head -n1) (git $strata_rev)"
fi
if have_tool restic; then meta_set version_restic "$("$restic_bin" version 2>&1 | head -n1)"; fi
if have_tool borg; then meta_set version_borg "$("$borg_bin" --version 2>&1 | head -n1)"; fi
if have_tool rustic; then meta_set version_rustic "$("$rustic_bin" --version 2>&1 | head -n1)"; fi

# ---------------------------------------------------------------- tool commands
# tool_env TOOL HOME: sets TENV, the environment (VAR=value words) for one tool, with every cache
# and config inside HOME (a directory of the work dir).
TENV=()
tool_env() {
    local tool=$1 home=$2
    mkdir -p -- "$home/cache" "$home/config" "$home/tmp"
    TENV=("XDG_CACHE_HOME=$home/cache" "XDG_CONFIG_HOME=$home/config" "TMPDIR=$home/tmp")
    case $tool in
    restic) TENV+=("RESTIC_PASSWORD=$password" "RESTIC_CACHE_DIR=$home/cache/restic") ;;
    borg) TENV+=("BORG_PASSPHRASE=$password" "BORG_BASE_DIR=$home" "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes") ;;
    rustic) TENV+=("RUSTIC_PASSWORD=$password" "RUSTIC_CACHE_DIR=$home/cache/rustic" "RUSTIC_NO_PROGRESS=true") ;;
    strata) ;;
    esac
}

# tool_cmd TOOL ACTION REPO [ARG]: sets CMD (the command words) and CWD (where it runs).
CMD=()
CWD=""
tool_cmd() {
    local tool=$1 action=$2 repo=$3 arg=${4:-}
    CWD=$wd
    case $tool:$action in
    strata:init) CMD=("$strata_bin" -r "$repo" --password-file "$password_file" init -q) ;;
    strata:backup) CMD=("$strata_bin" -r "$repo" --password-file "$password_file" backup -q "$arg") ;;
    strata:restore) CMD=("$strata_bin" -r "$repo" --password-file "$password_file" restore -q latest --target "$arg") ;;
    strata:check) CMD=("$strata_bin" -r "$repo" --password-file "$password_file" check -q) ;;
    strata:read_data) CMD=("$strata_bin" -r "$repo" --password-file "$password_file" check --read-data -q) ;;
    strata:prune) CMD=("$strata_bin" -r "$repo" --password-file "$password_file" forget --keep-last 1 --prune) ;;
    strata:ls) CMD=("$strata_bin" -r "$repo" --password-file "$password_file" ls latest) ;;

    restic:init) CMD=("$restic_bin" -r "$repo" init) ;;
    restic:backup) CMD=("$restic_bin" -r "$repo" backup "$arg") ;;
    restic:restore) CMD=("$restic_bin" -r "$repo" restore latest --target "$arg") ;;
    restic:check) CMD=("$restic_bin" -r "$repo" check) ;;
    restic:read_data) CMD=("$restic_bin" -r "$repo" check --read-data) ;;
    restic:prune) CMD=("$restic_bin" -r "$repo" forget --keep-last 1 --prune) ;;
    restic:ls) CMD=("$restic_bin" -r "$repo" ls latest) ;;

    borg:init) CMD=("$borg_bin" init -e repokey-blake2 "$repo") ;;
    borg:backup) CMD=("$borg_bin" create --compression "zstd,3" "$repo::$BORG_ARCHIVE" "$arg") ;;
    borg:restore)
        CMD=("$borg_bin" extract "$repo::$BORG_ARCHIVE")
        CWD=$arg # borg extracts into the current directory
        ;;
    borg:check) CMD=("$borg_bin" check --archives-only "$repo") ;;
    borg:read_data) CMD=("$borg_bin" check --verify-data "$repo") ;;
    borg:prune)
        # shellcheck disable=SC2016 # $0/$1 are expanded by sh -c
        CMD=(sh -c '"$0" prune --keep-last 1 "$1" && "$0" compact "$1"' "$borg_bin" "$repo")
        ;;
    borg:ls) CMD=("$borg_bin" list "$repo::$BORG_ARCHIVE") ;;

    rustic:init) CMD=("$rustic_bin" -r "$repo" init) ;;
    rustic:backup) CMD=("$rustic_bin" -r "$repo" backup "$arg") ;;
    rustic:restore) CMD=("$rustic_bin" -r "$repo" restore latest "$arg") ;;
    rustic:check) CMD=("$rustic_bin" -r "$repo" check) ;;
    rustic:read_data) CMD=("$rustic_bin" -r "$repo" check --read-data) ;;
    rustic:prune) CMD=("$rustic_bin" -r "$repo" forget --keep-last 1 --prune) ;;
    rustic:ls) CMD=("$rustic_bin" -r "$repo" ls latest) ;;
    *) die "internal: no command for $tool $action" ;;
    esac
}

# Exit codes that still mean success: strata and restic exit 3 when a snapshot was written but
# some files were unreadable; borg exits 1 on warnings.
ok_rc() {
    local tool=$1 rc=$2
    [[ $rc == 0 ]] && return 0
    case $tool:$rc in strata:3 | restic:3 | borg:1) return 0 ;; esac
    return 1
}

BORG_ARCHIVE=""
borg_latest() { # name of the newest archive of a borg repo
    local repo=$1 home=$2
    tool_env borg "$home"
    env "${TENV[@]}" "$borg_bin" list --last 1 --short "$repo" 2>/dev/null | tail -n1
}

record() { # tool step run wall user sys rss status bytes note
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$results"
}

# measure TOOL STEP RUN HOME ACTION REPO [ARG]: runs one tool command under /usr/bin/time,
# records its wall/user/sys/max RSS and status, and syncs afterwards (outside the timing).
# STDOUT_NULL=1 sends the tool's stdout to /dev/null (listings). Returns 0 unless the tool
# failed ("n/a" counts as not failed).
STDOUT_NULL=0
measure() {
    local tool=$1 step=$2 run=$3 home=$4 action=$5 repo=$6 arg=${7:-}
    local log="$wd/logs/$tool-$step-r$run.log" tf="$wd/time/$tool-$step-r$run.time"
    local rc=0 status note="" wall="-" user="-" sys="-" rss="-" out_target=$log
    tool_env "$tool" "$home"
    tool_cmd "$tool" "$action" "$repo" "$arg"
    [[ $STDOUT_NULL == 1 ]] && out_target=/dev/null
    rm -f -- "$tf"
    printf '$ (cd %q &&' "$CWD" >"$log"
    printf ' %q' "${CMD[@]}" >>"$log"
    printf ')\n' >>"$log"
    (cd -- "$CWD" && exec /usr/bin/time -f '%e %U %S %M' -o "$tf" env "${TENV[@]}" "${CMD[@]}") \
        >>"$out_target" 2>>"$log" </dev/null || rc=$?
    if [[ -s $tf ]]; then
        read -r wall user sys rss < <(tail -n1 "$tf") || true
        [[ $wall =~ ^[0-9.]+$ ]] || { wall="-" user="-" sys="-" rss="-"; }
    fi
    if ok_rc "$tool" "$rc"; then
        status=ok
        [[ $rc != 0 ]] && note="exit $rc"
    elif [[ $tool == strata ]] && grep -qE "unrecognized subcommand|unexpected argument" "$log"; then
        status="n/a"
        note="not implemented"
        [[ $action == prune ]] && note="not implemented (issue #4)"
    else
        status=failed
        note="exit $rc"
    fi
    record "$tool" "$step" "$run" "$wall" "$user" "$sys" "$rss" "$status" "-" "$note"
    sync
    case $status in
    ok) say "  $tool $step run $run: ${wall}s wall, $(((${rss/-/0} + 512) / 1024)) MiB" ;;
    n/a) say "  $tool $step run $run: n/a ($note)" ;;
    failed)
        warn "$tool $step run $run FAILED (exit $rc); last lines of $log:"
        tail -n 15 -- "$log" | sed 's/^/    | /' >&2
        return 1
        ;;
    esac
    return 0
}

# untimed TOOL HOME ACTION REPO [ARG] LOGNAME: setup commands (init), logged, failure warned.
untimed() {
    local tool=$1 home=$2 action=$3 repo=$4 arg=$5 logname=$6 rc=0
    local log="$wd/logs/$tool-$logname.log"
    tool_env "$tool" "$home"
    tool_cmd "$tool" "$action" "$repo" "$arg"
    (cd -- "$CWD" && exec env "${TENV[@]}" "${CMD[@]}") >"$log" 2>&1 </dev/null || rc=$?
    if ! ok_rc "$tool" "$rc"; then
        warn "$tool $action failed (exit $rc); last lines of $log:"
        tail -n 15 -- "$log" | sed 's/^/    | /' >&2
        return 1
    fi
}

repo_bytes() { if [[ -d $1 ]]; then du -sb -- "$1" | cut -f1; else echo "-"; fi; }

# order RUN: the tools, rotated by RUN-1 so that no tool always goes first
order() {
    local r=$1 n=${#tools[@]} i
    ORDER=()
    for ((i = 0; i < n; i++)); do ORDER+=("${tools[$(((i + r - 1) % n))]}"); done
}
ORDER=()

skip_step() { # tool step: true when an earlier run of this step said n/a
    awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s && $8 == "n/a" {f = 1} END {exit !f}' "$results"
}

# ---------------------------------------------------------------- main benchmark
repo_of() { echo "$wd/repos/$1"; }
home_of() { echo "$wd/home/$1"; }

say "step 1/8: first backup (fresh repository each run, best of $runs)"
for ((r = 1; r <= runs; r++)); do
    order "$r"
    for t in "${ORDER[@]}"; do
        # the previous run's repository and caches go to the trash (deleted at the very end)
        if [[ -e $(repo_of "$t") ]]; then mv -- "$(repo_of "$t")" "$wd/trash/repo-$t-r$r"; fi
        if [[ -e $(home_of "$t") ]]; then mv -- "$(home_of "$t")" "$wd/trash/home-$t-r$r"; fi
        mkdir -p -- "$(home_of "$t")"
        untimed "$t" "$(home_of "$t")" init "$(repo_of "$t")" "" "init-r$r" || true
    done
    sync
    warm "$tree"
    for t in "${ORDER[@]}"; do
        BORG_ARCHIVE="first-r$r"
        measure "$t" backup_first "$r" "$(home_of "$t")" backup "$(repo_of "$t")" "$tree" || true
    done
    for t in "${ORDER[@]}"; do
        record "$t" repo_size_first "$r" - - - - ok "$(repo_bytes "$(repo_of "$t")")" ""
    done
done

say "step 2/8: re-backup, nothing changed"
for ((r = 1; r <= runs; r++)); do
    order "$r"
    warm "$tree"
    for t in "${ORDER[@]}"; do
        BORG_ARCHIVE="unchanged-r$r"
        measure "$t" backup_unchanged "$r" "$(home_of "$t")" backup "$(repo_of "$t")" "$tree" || true
    done
done

say "step 3/8: re-backup after changing ${CHANGE_PCT}% of the files and adding a ${NEW_FILE_MB} MiB file"
rm -f -- "$wd/data/.pristine" # the tree is modified from here on
for ((r = 1; r <= runs; r++)); do
    order "$r"
    python3 "$wd/bin/modify.py" "$tree" "$r" "$SEED" "$CHANGE_PCT" "$NEW_FILE_MB" >"$wd/logs/modify-r$r.log"
    say "  $(cat "$wd/logs/modify-r$r.log")"
    sync
    warm "$tree"
    for t in "${ORDER[@]}"; do
        BORG_ARCHIVE="changed-r$r"
        measure "$t" backup_changed "$r" "$(home_of "$t")" backup "$(repo_of "$t")" "$tree" || true
    done
done
for t in "${tools[@]}"; do
    record "$t" repo_size_final 0 - - - - ok "$(repo_bytes "$(repo_of "$t")")" ""
done

say "step 4/8: full restore (a new directory each time)"
for ((r = 1; r <= runs; r++)); do
    order "$r"
    for t in "${ORDER[@]}"; do
        target="$wd/restore/$t-r$r"
        mkdir -p -- "$target"
        if [[ $t == borg ]]; then BORG_ARCHIVE=$(borg_latest "$(repo_of "$t")" "$(home_of "$t")"); fi
        measure "$t" restore "$r" "$(home_of "$t")" restore "$(repo_of "$t")" "$target" || true
    done
done
say "  verifying one restore per tool with diff -r -q (not timed)"
for t in "${tools[@]}"; do
    target="$wd/restore/$t-r1"
    restored="$target$tree"
    if [[ ! -d $restored ]]; then
        restored=$(find "$target" -maxdepth 12 -type d -name "$(basename -- "$tree")" -print -quit 2>/dev/null || true)
    fi
    dlog="$wd/logs/$t-verify.log"
    if [[ -z $restored || ! -d $restored ]]; then
        record "$t" verify 1 - - - - missing - "restored tree not found under $target"
        warn "$t: restored tree not found under $target"
        continue
    fi
    if diff -r -q --no-dereference -- "$tree" "$restored" >"$dlog" 2>&1; then
        record "$t" verify 1 - - - - ok - "identical"
        say "  $t: restore identical to the source"
    else
        n=$(wc -l <"$dlog")
        record "$t" verify 1 - - - - mismatch - "$n differences (logs/$t-verify.log)"
        warn "$t: restore differs from the source in $n places; first ones:"
        head -n 5 -- "$dlog" | sed 's/^/    | /' >&2
    fi
done

say "step 5/8: check (structure)"
for ((r = 1; r <= runs; r++)); do
    order "$r"
    for t in "${ORDER[@]}"; do
        measure "$t" check "$r" "$(home_of "$t")" check "$(repo_of "$t")" || true
    done
done

say "step 6/8: check --read-data"
for ((r = 1; r <= runs; r++)); do
    order "$r"
    for t in "${ORDER[@]}"; do
        skip_step "$t" check_read_data && continue
        measure "$t" check_read_data "$r" "$(home_of "$t")" read_data "$(repo_of "$t")" || true
    done
done

say "step 7/8: forget --keep-last 1 + prune (on a copy of the repository and its caches)"
for ((r = 1; r <= runs; r++)); do
    order "$r"
    for t in "${ORDER[@]}"; do
        skip_step "$t" prune && continue
        copy="$wd/prune/$t-r$r"
        mkdir -p -- "$copy"
        if [[ -d $(repo_of "$t") ]]; then cp -a -- "$(repo_of "$t")" "$copy/repo"; fi
        cp -a -- "$(home_of "$t")" "$copy/home"
        sync
        measure "$t" prune "$r" "$copy/home" prune "$copy/repo" || true
    done
done

say "step 8/8: list all files of the latest snapshot"
for ((r = 1; r <= runs; r++)); do
    order "$r"
    for t in "${ORDER[@]}"; do
        if [[ $t == borg ]]; then BORG_ARCHIVE=$(borg_latest "$(repo_of "$t")" "$(home_of "$t")"); fi
        STDOUT_NULL=1
        measure "$t" ls "$r" "$(home_of "$t")" ls "$(repo_of "$t")" || true
        STDOUT_NULL=0
    done
done

# ---------------------------------------------------------------- extras
if [[ $skip_extras == 0 ]]; then
    ex="$wd/extras"
    mkdir -p -- "$ex/repos" "$ex/home" "$ex/sql"
    sql="$ex/sql/dump.sql"
    say "extra 1/2: SQL dump of ~${SQL_MB} MB, then ${SQL_CHANGE_PCT}% of its rows changed in place"
    python3 "$wd/bin/gen_sql.py" "$sql" "$SQL_MB" "$SEED" >"$wd/logs/gen-sql.log"
    say "  $(cat "$wd/logs/gen-sql.log")"
    sync
    cat -- "$sql" >/dev/null
    for t in "${tools[@]}"; do
        untimed "$t" "$ex/home/sql-$t" init "$ex/repos/sql-$t" "" init-sql || true
    done
    sync
    BORG_ARCHIVE="sql-first"
    for t in "${tools[@]}"; do
        measure "$t" sql_first 1 "$ex/home/sql-$t" backup "$ex/repos/sql-$t" "$sql" || true
        record "$t" repo_size_sql_first 1 - - - - ok "$(repo_bytes "$ex/repos/sql-$t")" ""
    done
    python3 "$wd/bin/gen_sql.py" "$sql" "$SQL_MB" "$SEED" "$((SEED + 1))" "$SQL_CHANGE_PCT" >"$wd/logs/gen-sql-change.log"
    say "  $(cat "$wd/logs/gen-sql-change.log")"
    sync
    cat -- "$sql" >/dev/null
    BORG_ARCHIVE="sql-change"
    for t in "${tools[@]}"; do
        measure "$t" sql_change 1 "$ex/home/sql-$t" backup "$ex/repos/sql-$t" "$sql" || true
        record "$t" repo_size_sql_change 1 - - - - ok "$(repo_bytes "$ex/repos/sql-$t")" ""
    done

    small="$ex/small/tree"
    say "extra 2/2: $SMALL_FILES small files in $SMALL_DIRS directories"
    if [[ -f $ex/small/.pristine ]]; then
        say "  reusing $small"
    else
        rm -rf -- "$ex/small"
        mkdir -p -- "$small"
        python3 "$wd/bin/gen_small.py" "$small" "$SMALL_DIRS" "$SMALL_FILES" "$SEED" >"$wd/logs/gen-small.log"
        say "  $(cat "$wd/logs/gen-small.log")"
        printf '%s' "$small_id" >"$ex/small/.pristine"
        sync
    fi
    for t in "${tools[@]}"; do
        untimed "$t" "$ex/home/small-$t" init "$ex/repos/small-$t" "" init-small || true
    done
    sync
    warm "$small"
    BORG_ARCHIVE="small-first"
    for t in "${tools[@]}"; do
        measure "$t" small_first 1 "$ex/home/small-$t" backup "$ex/repos/small-$t" "$small" || true
        record "$t" repo_size_small 1 - - - - ok "$(repo_bytes "$ex/repos/small-$t")" ""
    done
    warm "$small"
    BORG_ARCHIVE="small-unchanged"
    for t in "${tools[@]}"; do
        measure "$t" small_unchanged 1 "$ex/home/small-$t" backup "$ex/repos/small-$t" "$small" || true
    done
fi

# ---------------------------------------------------------------- report
cat >"$wd/bin/report.py" <<'PY'
"""Turn results.tsv + meta.tsv into the markdown report."""
import csv, sys

results_path, meta_path, out_path = sys.argv[1:4]
meta = {}
with open(meta_path, encoding="utf-8") as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition("\t")
        meta[k] = v
rows = list(csv.DictReader(open(results_path, encoding="utf-8"), delimiter="\t"))
tools = meta["tools"].split()
others = [t for t in tools if t != "strata"]


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def recs(tool, step):
    return [r for r in rows if r["tool"] == tool and r["step"] == step]


def best(tool, step):
    """(best wall, record of that run, text for the cell)"""
    rs = recs(tool, step)
    ok = [r for r in rs if r["status"] == "ok" and num(r["wall_s"]) is not None]
    failed = [r for r in rs if r["status"] == "failed"]
    if ok:
        b = min(ok, key=lambda r: num(r["wall_s"]))
        text = "%.2f" % num(b["wall_s"])
        if failed:
            text += " (%d/%d failed)" % (len(failed), len(rs))
        return num(b["wall_s"]), b, text
    if any(r["status"] == "n/a" for r in rs):
        note = next(r["note"] for r in rs if r["status"] == "n/a")
        return None, None, "n/a" + (" (issue #4)" if "issue #4" in note else "")
    if failed:
        return None, None, "failed"
    return None, None, "—"


def peak_kib(tool, steps):
    vals = [num(r["maxrss_kib"]) for s in steps for r in recs(tool, s)
            if r["status"] == "ok" and num(r["maxrss_kib"]) is not None]
    return max(vals) if vals else None


def mib(kib):
    return "—" if kib is None else "%.0f" % (kib / 1024.0)


def size(tool, step, run=None):
    rs = [r for r in recs(tool, step) if num(r["bytes"]) is not None]
    if run is not None:
        rs = [r for r in rs if r["run"] == str(run)]
    return num(rs[-1]["bytes"]) if rs else None


def mb(b):
    return "—" if b is None else "%.1f" % (b / 1e6)


def fmt_goal(g):
    return "≤ %g" % g


pct, newmb = meta.get("change_pct", "1"), meta.get("new_file_mb", "50")
MAIN = [
    ("backup_first", "first backup", 0.5),
    ("backup_unchanged", "re-backup, nothing changed", 0.3),
    ("backup_changed", "re-backup, %s%% of files changed + a new %s MB file" % (pct, newmb), 0.4),
    ("restore", "full restore", 0.5),
    ("check", "check (structure)", 1.0),
    ("check_read_data", "check --read-data", 0.6),
    ("prune", "forget --keep-last 1 + prune", 1.0),
    ("ls", "list all files of a snapshot", 0.7),
]
main_steps = [s for s, _, _ in MAIN]

L = []
L.append("# Strata vs restic / borg / rustic")
L.append("")
L.append("Generated by `benches/compare.sh` on %s." % meta.get("date", "?"))
L.append("")
L.append("- **Machine:** %s cores (%s), %s RAM, %s; work dir `%s` on %s"
         % (meta.get("nproc"), meta.get("cpu"), meta.get("ram"), meta.get("kernel"), meta.get("workdir"), meta.get("fs")))
L.append("- **Versions:** " + "; ".join("%s: %s" % (t, meta.get("version_" + t, "?")) for t in tools))
L.append("- **Data:** %s — %s files, %s bytes (%.2f GB)"
         % (meta.get("data"), meta.get("data_files"), meta.get("data_bytes"), int(meta.get("data_bytes", 0)) / 1e9))
L.append("- **Runs:** best of %s (tools' order rotated between runs); page cache warm; `sync` after every "
         "timed command, outside the timing. Times are wall-clock seconds from `/usr/bin/time`." % meta.get("runs"))
L.append("- **Settings:** encrypted repositories with default zstd-class compression: restic repo v2 "
         "(compression auto), borg `repokey-blake2` + `--compression zstd,3`, rustic and strata defaults. "
         "Structure check: restic `check`, borg `check --archives-only`, rustic `check`, strata `check`. "
         "Prune runs on a copy of the repository (and the tool's cache) holding all snapshots of the "
         "previous steps; borg's time is `prune` + `compact`.")
L.append("")
L.append("## Wall time (s)")
L.append("")
hdr = ["step"] + tools + ["best anchor", "strata ratio", "goal", "met?"]
L.append("| " + " | ".join(hdr) + " |")
L.append("|" + "---|" * len(hdr))
for step, label, goal in MAIN:
    cells, walls = [], {}
    for t in tools:
        w, _, text = best(t, step)
        walls[t] = w
        cells.append(text)
    anchors = [(walls[t], t) for t in others if walls[t] is not None]
    anchor = min(anchors) if anchors else None
    anchor_txt = "%.2f (%s)" % anchor if anchor else "—"
    ratio = met = "—"
    if "strata" in tools and anchor and walls["strata"] is not None and anchor[0] > 0:
        rv = walls["strata"] / anchor[0]
        ratio = "%.2f" % rv
        met = "yes" if rv <= goal else "**no**"
    elif "strata" in tools and best("strata", step)[2].startswith("n/a"):
        ratio, met = "n/a", "no"
    elif "strata" in tools and best("strata", step)[2] == "failed":
        ratio, met = "failed", "**no**"
    L.append("| " + " | ".join([label] + cells + [anchor_txt, ratio, fmt_goal(goal), met]) + " |")
# peak memory over all main steps (absolute goal)
peaks = {t: peak_kib(t, main_steps) for t in tools}
met = "—"
if "strata" in tools and peaks["strata"] is not None:
    met = "yes" if peaks["strata"] / 1024 <= 100 else "**no**"
L.append("| " + " | ".join(["peak memory, any step (MiB)"] + [mib(peaks[t]) for t in tools]
                           + ["—", "—", "≤ 100 MiB", met]) + " |")
sizes = {t: size(t, "repo_size_first", meta.get("runs")) for t in tools}
met = "—"
if "strata" in tools and sizes["strata"] is not None:
    s = sizes["strata"] / 1e6
    met = ("yes (stretch too)" if s <= 245 else "yes (stretch: no)") if s <= 272 else "**no**"
L.append("| " + " | ".join(["repository size after first backup (MB)"] + [mb(sizes[t]) for t in tools]
                           + ["—", "—", "≤ 272 MB (stretch ≤ 245)", met]) + " |")
L.append("")
L.append("Ratios are Strata's best time over the best time of the fastest other tool in the same run "
         "of the script. n/a: the command does not exist in this Strata version.")
L.append("")

L.append("## CPU time (user+sys, s) / peak RSS (MiB)")
L.append("")
L.append("CPU time of the run with the best wall time; peak RSS over all runs.")
L.append("")
L.append("| step | " + " | ".join(tools) + " |")
L.append("|---|" + "---|" * len(tools))
for step, label, _ in MAIN:
    cells = []
    for t in tools:
        w, b, text = best(t, step)
        if b is None:
            cells.append(text)
        else:
            cpu = num(b["user_s"]) + num(b["sys_s"])
            cells.append("%.2f / %s" % (cpu, mib(peak_kib(t, [step]))))
    L.append("| " + label + " | " + " | ".join(cells) + " |")
L.append("")

L.append("## Repository size (MB, 10^6 bytes, `du -sb`)")
L.append("")
L.append("| when | " + " | ".join(tools) + " |")
L.append("|---|" + "---|" * len(tools))
L.append("| after first backup | " + " | ".join(mb(sizes[t]) for t in tools) + " |")
L.append("| after all backups (%s runs of each backup step) | " % meta.get("runs")
         + " | ".join(mb(size(t, "repo_size_final")) for t in tools) + " |")
L.append("")

ver = [(t, recs(t, "verify")) for t in tools]
L.append("## Restore verification (`diff -r -q` of run 1's restore against the source)")
L.append("")
for t, rs in ver:
    if rs:
        L.append("- %s: %s%s" % (t, rs[-1]["status"], (" — " + rs[-1]["note"]) if rs[-1]["note"] else ""))
L.append("")

if meta.get("skip_extras") != "1":
    L.append("## Extra: SQL dump (~%s MB, then %s%% of the rows changed in place)" % (meta.get("sql_mb"), meta.get("sql_change_pct")))
    L.append("")
    L.append("| tool | first backup (s) | CPU (s) | peak RSS (MiB) | repo (MB) | re-backup after change (s) | CPU (s) | peak RSS (MiB) | bytes added |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for t in tools:
        cells = [t]
        for step in ("sql_first", "sql_change"):
            w, b, text = best(t, step)
            cells.append(text)
            if b is None:
                cells += ["—", "—"]
            else:
                cells += ["%.2f" % (num(b["user_s"]) + num(b["sys_s"])), mib(num(b["maxrss_kib"]))]
            if step == "sql_first":
                cells.append(mb(size(t, "repo_size_sql_first")))
        s1, s2 = size(t, "repo_size_sql_first"), size(t, "repo_size_sql_change")
        if s1 is not None and s2 is not None:
            d = s2 - s1
            cells.append("%.2f MB" % (d / 1e6) if abs(d) >= 1e5 else "%.1f KB" % (d / 1e3))
        else:
            cells.append("—")
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L.append("## Extra: %s small files in %s directories (100 B – 4 KiB each, one run)" % (meta.get("small_files"), meta.get("small_dirs")))
    L.append("")
    L.append("| tool | first backup (s) | CPU (s) | peak RSS (MiB) | unchanged re-backup (s) | CPU (s) | peak RSS (MiB) | repo (MB) |")
    L.append("|---|---|---|---|---|---|---|---|")
    for t in tools:
        cells = [t]
        for step in ("small_first", "small_unchanged"):
            w, b, text = best(t, step)
            cells.append(text)
            if b is None:
                cells += ["—", "—"]
            else:
                cells += ["%.2f" % (num(b["user_s"]) + num(b["sys_s"])), mib(num(b["maxrss_kib"]))]
        cells.append(mb(size(t, "repo_size_small")))
        L.append("| " + " | ".join(cells) + " |")
    L.append("")

failed = [r for r in rows if r["status"] == "failed"]
if failed:
    L.append("## Failures")
    L.append("")
    for r in failed:
        L.append("- %s %s run %s: %s (log: `logs/%s-%s-r%s.log` in the work dir)"
                 % (r["tool"], r["step"], r["run"], r["note"], r["tool"], r["step"], r["run"]))
    L.append("")
L.append("Raw records: `%s`." % (out_path[:-3] + ".tsv" if out_path.endswith(".md") else out_path + ".tsv"))
with open(out_path, "w", encoding="utf-8") as f:
    f.write("\n".join(L) + "\n")
PY

mkdir -p -- "$(dirname -- "$out")"
cp -- "$results" "$tsv_out"
python3 "$wd/bin/report.py" "$results" "$meta" "$out"
say "report written to $out (raw records: $tsv_out)"

# ---------------------------------------------------------------- clean up
if [[ $keep == 0 ]]; then
    say "deleting restore targets, pruned copies and old repositories"
    rm -rf -- "$wd/restore" "$wd/prune" "$wd/trash"
    sync
fi
echo
cat -- "$out"
