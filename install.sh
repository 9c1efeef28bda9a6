#!/usr/bin/env bash
# Installs strata with its shell completions and man pages, or builds its Debian package.
# Run ./install.sh --help for the details.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<'EOF'
Usage: ./install.sh [--prefix DIR] [--binary PATH] [--dry-run]
       ./install.sh --deb [--out DIR] [--binary PATH] [--dry-run] [-- CARGO-DEB-OPTIONS...]

Builds strata (cargo build --release -p strata-cli) and installs:
  PREFIX/bin/strata                                   the binary
  PREFIX/share/bash-completion/completions/strata     bash completion
  PREFIX/share/zsh/site-functions/_strata             zsh completion
  PREFIX/share/fish/vendor_completions.d/strata.fish  fish completion
  PREFIX/share/man/man1/strata.1, strata-*.1          man pages (man strata, man strata-backup)
PREFIX is /usr/local when run as root, else ~/.local. The completions and man pages are
made by the installed binary itself (strata generate). Running it again installs the same
files again: what is unchanged is left alone, what changed is replaced.

Options:
  --prefix DIR    install under DIR instead
  --binary PATH   install this strata binary instead of building one
  --dry-run       print what would be done and change nothing (the build, without
                  --binary, still runs: it only writes to the target directory)
  --deb           build the Debian package instead of installing (needs cargo-deb:
                  cargo install --locked cargo-deb); then install it with
                  apt install ./strata_VERSION_ARCH.deb
  --out DIR       with --deb: where the .deb goes (default: TARGET/debian)
  -- ARGS         with --deb: more options for cargo deb (e.g. --fast)
  -h, --help      show this help
EOF
}

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install.sh: %s (see --help)\n' "$*" >&2; exit 2; }

prefix=
binary=
dry_run=false
deb=false
out=
deb_args=()
while (($# > 0)); do
    case $1 in
        --prefix) (($# > 1)) || usage_error "--prefix needs a directory"; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --binary) (($# > 1)) || usage_error "--binary needs a path"; binary=$2; shift 2 ;;
        --binary=*) binary=${1#*=}; shift ;;
        --out) (($# > 1)) || usage_error "--out needs a directory"; out=$2; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --dry-run) dry_run=true; shift ;;
        --deb) deb=true; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; deb_args=("$@"); break ;;
        *) usage_error "unknown option: $1" ;;
    esac
done
[[ -z $prefix || $deb == false ]] || usage_error "--prefix is for installing, not for --deb"
[[ -z $out || $deb == true ]] || usage_error "--out is only for --deb"
((${#deb_args[@]} == 0)) || $deb || usage_error "options after -- are only for --deb"

# Runs a command, or only prints it with --dry-run.
run() {
    if $dry_run; then
        printf '(dry run)'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

target_dir=${CARGO_TARGET_DIR:-$root/target}

# --- The binary ---------------------------------------------------------------------
if [[ -z $binary ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs), or give --binary PATH"
    say "building strata: cargo build --release --locked -p strata-cli"
    (cd -- "$root" && cargo build --release --locked -p strata-cli)
    binary=$target_dir/release/strata
fi
[[ -f $binary && -x $binary ]] || die "$binary is not an executable file"
version=$("$binary" --version) || die "$binary --version failed: is it strata?"
say "$version"

# --- Completions and man pages, made by the binary ----------------------------------
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
generate() { # DIR: completions/ and man/ for the binary into DIR
    mkdir -p -- "$1/completions" "$1/man"
    "$binary" generate --completion bash >"$1/completions/strata.bash"
    "$binary" generate --completion zsh >"$1/completions/_strata"
    "$binary" generate --completion fish >"$1/completions/strata.fish"
    "$binary" generate --man "$1/man" >/dev/null
}

# --- The Debian package -------------------------------------------------------------
if $deb; then
    command -v cargo-deb >/dev/null 2>&1 || $dry_run ||
        die "cargo-deb not found: cargo install --locked cargo-deb"
    # cargo deb takes the binary and the assets from TARGET/release (see
    # [package.metadata.deb] in cli/Cargo.toml): a staging target directory holds a copy
    # of the binary and what it generated, so no release build is needed when --binary
    # names another one (and the real target directory is not touched).
    stage=$work/target
    mkdir -p -- "$stage/release"
    cp -- "$binary" "$stage/release/strata"
    generate "$stage/release/strata-assets"
    gzip -9n -- "$stage/release/strata-assets/man/"*.1 # as Debian ships man pages
    out=${out:-$target_dir/debian}
    run mkdir -p -- "$out"
    (cd -- "$root" && CARGO_TARGET_DIR=$stage run cargo deb -p strata-cli --no-build \
        --output "$out" "${deb_args[@]}")
    $dry_run || say "the package is in $out; install it with: apt install $out/strata_*.deb"
    exit 0
fi

# --- Installing ---------------------------------------------------------------------
if [[ -z $prefix ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        prefix=/usr/local
    else
        [[ -n ${HOME:-} ]] || die "HOME is not set: give --prefix DIR"
        prefix=$HOME/.local
    fi
fi
share=$prefix/share
generate "$work"

changed=0
# place SOURCE DEST MODE: installs SOURCE as DEST unless DEST already has its content and mode.
place() {
    local src=$1 dst=$2 mode=$3
    if [[ -f $dst ]] && cmp -s -- "$src" "$dst" && [[ $(stat -c %a -- "$dst") == "$mode" ]]; then
        say "unchanged  $dst"
        return
    fi
    if $dry_run; then
        say "(dry run) would install $dst"
    else
        install -D -m "$mode" -- "$src" "$dst"
        say "installed  $dst"
    fi
    changed=$((changed + 1))
}

place "$binary" "$prefix/bin/strata" 755
place "$work/completions/strata.bash" "$share/bash-completion/completions/strata" 644
place "$work/completions/_strata" "$share/zsh/site-functions/_strata" 644
place "$work/completions/strata.fish" "$share/fish/vendor_completions.d/strata.fish" 644
for page in "$work"/man/*.1; do
    place "$page" "$share/man/man1/${page##*/}" 644
done
if $dry_run; then
    say "dry run: $changed file(s) would be installed or replaced; nothing was changed"
else
    say "done: $changed file(s) installed or replaced"
fi

# Hints for what the shell will not find by itself.
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) say "note: $prefix/bin is not on PATH; add it (e.g. in ~/.profile: export PATH=\"$prefix/bin:\$PATH\")" ;;
esac
if [[ $prefix != /usr/local && $prefix != /usr ]] && command -v zsh >/dev/null 2>&1; then
    say "note: for zsh completion, add to ~/.zshrc before compinit: fpath+=($share/zsh/site-functions)"
fi
