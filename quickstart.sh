#!/usr/bin/env bash
# quickstart.sh DIR
#
# Builds strata (release), creates a local repository protected by a random
# password, backs up DIR and lists the snapshots. Safe to run again: an
# existing repository and password file are reused, so each run simply adds
# a snapshot.
#
#   repository:    ~/.local/share/strata/quickstart-repo
#   password file: ~/.config/strata/quickstart-password  (mode 0600)
set -euo pipefail

die() {
    echo "quickstart: $*" >&2
    exit 1
}

if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
    echo "usage: $0 DIR    (back up DIR into a local quickstart repository)" >&2
    exit 2
fi
[[ -e $1 ]] || die "$1 does not exist"
source_dir=$(realpath -- "$1")
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

# --- 1. What building needs --------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install Rust with rustup (https://rustup.rs), then run this again"

if command -v dpkg >/dev/null 2>&1; then
    missing=()
    for pkg in build-essential pkg-config; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]} > 0)); then
        sudo=()
        if [[ $(id -u) -ne 0 ]]; then
            command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
            sudo=(sudo)
        fi
        echo "quickstart: installing ${missing[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
    fi
else
    echo "quickstart: not a Debian system; make sure a C compiler and pkg-config are installed" >&2
fi

# --- 2. Build ------------------------------------------------------------------
echo "quickstart: building strata (release)"
(cd "$here" && cargo build --release -p strata-cli)
target_dir=${CARGO_TARGET_DIR:-$here/target}
strata=$target_dir/release/strata
[[ -x $strata ]] || die "build finished but $strata is missing"

# --- 3. Repository and password ----------------------------------------------
repo=$HOME/.local/share/strata/quickstart-repo
password_file=$HOME/.config/strata/quickstart-password
export STRATA_REPOSITORY=$repo
export STRATA_PASSWORD_FILE=$password_file
# The only password and location sources: two in the environment would be a usage error.
unset STRATA_PASSWORD_COMMAND STRATA_PASSWORD STRATA_REPOSITORY_FILE

mkdir -p -- "$(dirname -- "$repo")" "$(dirname -- "$password_file")"
if [[ ! -s $password_file ]]; then
    [[ -e $repo/config ]] &&
        die "$repo exists but its password file $password_file is missing"
    (
        umask 077
        printf '%s' "$(head -c 32 /dev/urandom | base64 | tr -d '\n/+=')" >"$password_file"
    )
    echo "quickstart: created password file $password_file"
fi
chmod 600 -- "$password_file"

if [[ -e $repo/config ]]; then
    echo "quickstart: reusing repository $repo"
else
    echo "quickstart: creating repository $repo"
    "$strata" init
fi

# --- 4. The config, and its first run --------------------------------------------
# What a team's cron job runs (`strata run --due`), on a config of one project: DIR into the
# repository above, kept 7 days, 4 weeks and 12 months, recorded in a catalog beside it.
config=$HOME/.config/strata/quickstart.toml
state_dir=$HOME/.local/state/strata/quickstart
# A TOML basic string: backslashes and double quotes escaped.
toml_string() {
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}
(
    umask 077
    cat >"$config" <<EOF
# Written by quickstart.sh; \`strata --config $config config check\` validates it.
state-dir = $(toml_string "$state_dir")

[repositories.local]
url = $(toml_string "$repo")
password-file = $(toml_string "$password_file")

[projects.quickstart]
schedule = "daily 03:00"
paths = [$(toml_string "$source_dir")]
repositories = ["local"]

[projects.quickstart.retention]
keep-daily = 7
keep-weekly = 4
keep-monthly = 12
EOF
)
echo "quickstart: backing up $source_dir (strata run, config $config)"
status=0
"$strata" --config "$config" run quickstart || status=$?
case $status in
0) ;;
3) echo "quickstart: some files could not be read (see above); the snapshot was written anyway" >&2 ;;
*) die "strata run failed (exit code $status)" ;;
esac

"$strata" snapshots
"$strata" --config "$config" health || true

cat <<EOF

Repository:    $repo
Password file: $password_file
Config:        $config
Keep a copy of the password file somewhere safe: without it the backups cannot be decrypted.

To use strata on this repository:
  export STRATA_REPOSITORY=$repo
  export STRATA_PASSWORD_FILE=$password_file
  $strata snapshots
  $strata ls latest
  $strata restore latest --target /tmp/strata-restore

To run it as a team's cron job does (README, "Running it for a team"):
  $strata --config $config run --due        # every few minutes: whatever is due
  $strata --config $config health           # 0 ok, 1 warning, 2 critical
  $strata --config $config log              # what happened
EOF
