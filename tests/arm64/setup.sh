#!/usr/bin/env bash
# Sets up a real aarch64 CPython 3.11 + aarch64 onnxruntime under QEMU user mode on an x86 Debian machine
# (recipe: ../shared/ARM64.md). Usage: bash tests/arm64/setup.sh [ROOT]   (ROOT defaults to .edgeft/arm64; a
# relative ROOT is taken from the repository root). Needs root for apt-get. Idempotent: a finished runtime holds
# ROOT/.ready with this script's sha256 and a second run exits at once; edit the script and it rebuilds.
#
# Result:
#   ROOT/python   runs the aarch64 python3.11 under qemu-aarch64; extra import paths come from
#                 $EDGEFT_ARM64_PYTHONPATH and then from an incoming $PYTHONPATH (both after the aarch64 site),
#                 e.g. `PYTHONPATH=$PWD .edgeft/arm64/python -c 'import edgeft.runtime'`.
#   ROOT/qemu     qemu-aarch64 (QEMU 10 from bookworm-backports, else Debian's qemu-user-static 7.2)
#   ROOT/rootfs   arm64 Debian bookworm files (python3.11, libstdc++6, libgomp1), extracted, nothing run
#   ROOT/site     aarch64 wheels: onnxruntime numpy tokenizers pydantic pyyaml, pinned by constraints.txt
#
# Knobs (environment): EDGEFT_ARM64_MIRROR (Debian mirror; default: the one the system's apt sources use),
# EDGEFT_ARM64_QEMU=system (skip backports, use qemu-user-static), EDGEFT_ARM64_HOST_PYTHON (python whose pip
# fetches the wheels; default python3). The system's apt sources are never changed: backports are read through
# a private sources list and lists folder.
set -Eeuo pipefail

say() { echo "arm64 runtime: $*" >&2; }
info() { echo "arm64 runtime: $*"; }
die() { say "$*"; exit 1; }
trap 'rc=$?; say "failed (exit $rc) at line $LINENO: $BASH_COMMAND"; exit $rc' ERR

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SCRIPT")/../.." && pwd)
HASH=$(sha256sum "$SCRIPT" | cut -d' ' -f1)

ROOT=${1:-.edgeft/arm64}
[[ $ROOT == /* ]] || ROOT=$REPO/$ROOT
ROOT=$(readlink -m "$ROOT")
[[ $ROOT != / && $ROOT != *\'* ]] || die "refusing to use '$ROOT' as the runtime folder"

is_ready() { [[ -f $ROOT/.ready && $(cat "$ROOT/.ready") == "$HASH" && -x $ROOT/python ]]; }
is_ready && exit 0

mkdir -p "$(dirname "$ROOT")"
# One builder at a time per ROOT; a second one waits and then finds the runtime ready.
exec 9>"$ROOT.lock"
flock 9
is_ready && exit 0

START=$SECONDS
TMP=$ROOT.tmp
rm -rf "$TMP"                      # leftovers of an interrupted run
mkdir -p "$TMP/logs" "$TMP/apt"
LOGS=$TMP/logs

# run_step LOGNAME "what failed" command...: output goes to a log; on failure show its tail and one clear line.
run_step() {
    local log=$LOGS/$1.log what=$2
    shift 2
    if ! "$@" >"$log" 2>&1; then
        tail -n 15 "$log" | sed 's/^/    /' >&2
        trap - ERR
        die "$what (full log: $log)"
    fi
}

[[ $(id -u) == 0 ]] || die "must run as root (apt-get, mmdebstrap); run it with sudo"
command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian-based host"
[[ $(dpkg --print-architecture) == amd64 ]] || die "host architecture is $(dpkg --print-architecture), expected amd64"

# ---- the system's Debian release and mirror (read from its apt config, never written) -----------------------
CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
system_mirror() {
    # First enabled "deb" source whose suites include the release codename itself (not -security/-updates).
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        sed -E 's/#.*//; s/\[[^]]*\]//' "$f" |
            awk -v c="$CODENAME" '$1 == "deb" && $3 == c && $2 ~ /^(https?|file):/ { print $2; exit }'
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk -v c="$CODENAME" '
            function flush() { if (deb && on && uri != "" && (" " suites " ") ~ (" " c " ")) { print uri; exit }
                               deb = 0; on = 1; uri = ""; suites = "" }
            BEGIN { on = 1 }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "types:"   { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            tolower($1) == "enabled:" { on = (tolower($2) != "no") }
            tolower($1) == "uris:"    { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { uri = $i; break } }
            tolower($1) == "suites:"  { suites = ""; for (i = 2; i <= NF; i++) suites = suites " " $i }
            END { flush() }' "$f"
    done
}
MIRROR=${EDGEFT_ARM64_MIRROR:-$(system_mirror | head -n 1)}
[[ -n $MIRROR ]] || die "no Debian mirror for '${CODENAME:-?}' in the system's apt sources; set EDGEFT_ARM64_MIRROR"
MIRROR=${MIRROR%/}
info "Debian release ${CODENAME:-unknown}, mirror $MIRROR, building in $TMP"

APT_UPDATED=0
system_apt_update() {
    ((APT_UPDATED)) && return 0
    run_step apt-update "apt-get update failed; check the system's apt sources and network" apt-get update -qq
    APT_UPDATED=1
}

# ---- 1. mmdebstrap ---------------------------------------------------------------------------------------------
if ! command -v mmdebstrap >/dev/null; then
    system_apt_update
    run_step apt-mmdebstrap "apt-get could not install mmdebstrap" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap
fi

# ---- 2. qemu-aarch64, unpacked into ROOT/qemu (no binfmt registration, nothing installed system-wide) ----------
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
QEMU_FLAVOUR=
qemu_from_backports() {
    local p=$TMP/apt/backports
    mkdir -p "$p/lists/partial" "$p/cache/archives/partial" "$p/debs"
    local signed=
    [[ -f $KEYRING ]] && signed="[signed-by=$KEYRING] "
    echo "deb ${signed}$MIRROR bookworm-backports main" >"$p/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$p/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o "Dir::State::Lists=$p/lists" -o "Dir::Cache=$p/cache" -o Dir::Cache::pkgcache=
                -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root -o Debug::NoLocking=1)
    apt-get "${opts[@]}" -qq update >"$LOGS/apt-backports.log" 2>&1 || return 1
    (cd "$p/debs" && apt-get "${opts[@]}" -q download qemu-user/bookworm-backports) >>"$LOGS/apt-backports.log" 2>&1 ||
        return 1
    dpkg-deb -x "$p"/debs/qemu-user_*.deb "$TMP/qemu/pkg" || return 1
    QEMU_BIN=$TMP/qemu/pkg/usr/bin/qemu-aarch64
    [[ -x $QEMU_BIN ]] || return 1
    "$QEMU_BIN" --version >/dev/null 2>&1 || return 1     # must run here (static build, or libs the host has)
    QEMU_FLAVOUR="qemu-user from bookworm-backports"
}
qemu_from_system() {
    system_apt_update
    local d=$TMP/apt/system-debs
    mkdir -p "$d"
    run_step apt-qemu-static "apt-get could not download qemu-user-static from the system's sources" \
        bash -c "cd '$d' && apt-get -q -o APT::Sandbox::User=root download qemu-user-static"
    run_step dpkg-qemu-static "dpkg-deb could not unpack qemu-user-static" \
        bash -c "dpkg-deb -x '$d'/qemu-user-static_*.deb '$TMP/qemu/pkg'"
    QEMU_BIN=$TMP/qemu/pkg/usr/bin/qemu-aarch64-static
    [[ -x $QEMU_BIN ]] || die "qemu-user-static has no usr/bin/qemu-aarch64-static"
    QEMU_FLAVOUR="qemu-user-static from the system release"
}
rm -rf "$TMP/qemu"
mkdir -p "$TMP/qemu"
if [[ ${EDGEFT_ARM64_QEMU:-} != system ]] && qemu_from_backports; then
    :
else
    [[ ${EDGEFT_ARM64_QEMU:-} == system ]] || {
        tail -n 5 "$LOGS/apt-backports.log" 2>/dev/null | sed 's/^/    /' >&2
        say "qemu-user from bookworm-backports not usable; falling back to Debian's qemu-user-static (QEMU 7.2)"
    }
    rm -rf "$TMP/qemu/pkg"
    qemu_from_system
fi
# Keep only the one binary we need (the packages carry ~40 other targets).
cp -L "$QEMU_BIN" "$TMP/qemu/qemu-aarch64"
rm -rf "$TMP/qemu/pkg" "$TMP/apt"
QEMU_VERSION=$("$TMP/qemu/qemu-aarch64" --version | head -n 1)
info "qemu: $QEMU_VERSION ($QEMU_FLAVOUR)"

# ---- 3. arm64 root file system, extracted only (nothing runs under emulation) ------------------------------------
run_step mmdebstrap "mmdebstrap could not build the arm64 bookworm rootfs from $MIRROR" \
    mmdebstrap --arch=arm64 --variant=extract --include=python3.11,libstdc++6,libgomp1 \
    bookworm "$TMP/rootfs" "$MIRROR"
[[ -e $TMP/rootfs/usr/bin/python3.11 ]] || die "the arm64 rootfs has no usr/bin/python3.11"
rm -rf "$TMP/rootfs/usr/share/doc" "$TMP/rootfs/usr/share/man" "$TMP/rootfs/usr/share/locale" \
       "$TMP/rootfs/var/cache/apt/archives/"*.deb
if [[ $QEMU_FLAVOUR == qemu-user-static* ]]; then
    # QEMU 7.2 passes the x86 /proc/cpuinfo through and onnxruntime's CPU detection crashes on import; empty
    # cpu lists (found first through QEMU_LD_PREFIX) turn that into a warning. QEMU >= 8 emulates these files.
    mkdir -p "$TMP/rootfs/sys/devices/system/cpu"
    : >"$TMP/rootfs/sys/devices/system/cpu/possible"
    : >"$TMP/rootfs/sys/devices/system/cpu/present"
fi

# ---- 4. aarch64 wheels, fetched by the host's pip (no emulation) -------------------------------------------------
HOST_PY=${EDGEFT_ARM64_HOST_PYTHON:-python3}
if ! "$HOST_PY" -m pip --version >/dev/null 2>&1; then
    [[ -x $REPO/.venv/bin/python ]] && HOST_PY=$REPO/.venv/bin/python ||
        die "no pip on the host: '$HOST_PY -m pip' failed (set EDGEFT_ARM64_HOST_PYTHON)"
fi
PACKAGES=(onnxruntime numpy tokenizers pydantic pyyaml)
# The same pins as the x86 stack: only these packages' lines of constraints.txt, plus huggingface-hub (a
# dependency of tokenizers; unpinned it resolves to a 1.x release with a different dependency tree than x86's).
grep -iE '^[[:space:]]*(onnxruntime|numpy|tokenizers|pydantic|pyyaml|huggingface[-_]hub)[[:space:]]*(===?|~=|>=|<=|!=|<|>)' \
    "$REPO/constraints.txt" >"$TMP/constraints.txt" 2>/dev/null || true
grep -qi '^[[:space:]]*onnxruntime' "$TMP/constraints.txt" ||
    say "warning: no onnxruntime pin in $REPO/constraints.txt; taking the newest aarch64 wheel"
PLATFORMS=(--platform manylinux2014_aarch64)
for v in 17 26 27 28 31 34 35 36; do PLATFORMS+=(--platform "manylinux_2_${v}_aarch64"); done
# Every manylinux tag is listed: with only one, pip silently picks years-old releases.
run_step pip "pip could not fetch aarch64 cp311 wheels for ${PACKAGES[*]} (pins: $(tr '\n' ' ' <"$TMP/constraints.txt"))" \
    env PIP_REQUIRE_VIRTUALENV=0 "$HOST_PY" -m pip install --no-input --progress-bar off --target "$TMP/site" \
    --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    "${PLATFORMS[@]}" -c "$TMP/constraints.txt" "${PACKAGES[@]}"
rm -rf "$TMP/site/bin"                  # x86-side console scripts, useless here

# ---- 5. the wrapper ----------------------------------------------------------------------------------------------
cat >"$TMP/python" <<EOF
#!/bin/sh
# aarch64 CPython 3.11 under qemu-aarch64 ($QEMU_VERSION); made by tests/arm64/setup.sh.
# Extra import paths: \$EDGEFT_ARM64_PYTHONPATH, then an incoming \$PYTHONPATH, both after the aarch64 site.
unset PYTHONHOME
QEMU_LD_PREFIX='$ROOT/rootfs'
QEMU_CPU="\${EDGEFT_ARM64_QEMU_CPU:-neoverse-n1}"
PYTHONPATH='$ROOT/site'"\${EDGEFT_ARM64_PYTHONPATH:+:\$EDGEFT_ARM64_PYTHONPATH}\${PYTHONPATH:+:\$PYTHONPATH}"
PYTHONNOUSERSITE=1
export QEMU_LD_PREFIX QEMU_CPU PYTHONPATH PYTHONNOUSERSITE
exec '$ROOT/qemu/qemu-aarch64' '$ROOT/rootfs/usr/bin/python3.11' "\$@"
EOF
chmod +x "$TMP/python"
{
    echo "qemu: $QEMU_VERSION ($QEMU_FLAVOUR)"
    echo "mirror: $MIRROR"
    ls "$TMP/site" | sed -n 's/\.dist-info$//p' | sort
} >"$TMP/versions.txt"

# ---- 6. into place, smoke check, then mark ready -----------------------------------------------------------------
if [[ -e $ROOT ]]; then
    mv "$ROOT" "$ROOT.old.$$"
    mv "$TMP" "$ROOT"
    rm -rf "$ROOT.old.$$"
else
    mv "$TMP" "$ROOT"
fi
LOGS=$ROOT/logs
SMOKE='import platform, onnxruntime, numpy, tokenizers, pydantic, yaml; print(platform.machine(), onnxruntime.__version__)'
if ! env -u PYTHONPATH -u EDGEFT_ARM64_PYTHONPATH "$ROOT/python" -c "$SMOKE" >"$LOGS/smoke.out" 2>"$LOGS/smoke.log"; then
    tail -n 15 "$LOGS/smoke.log" | sed 's/^/    /' >&2
    die "the aarch64 python could not import onnxruntime/numpy/tokenizers/pydantic/yaml (log: $LOGS/smoke.log)"
fi
read -r MACHINE ORT_VERSION <"$LOGS/smoke.out" || true
[[ ${MACHINE:-} == aarch64 ]] || die "smoke check printed '$(head -c 200 "$LOGS/smoke.out")', expected aarch64"
echo "$HASH" >"$ROOT/.ready"
info "ready: $ROOT/python ($MACHINE, onnxruntime $ORT_VERSION, $QEMU_VERSION) in $((SECONDS - START)) s," \
    "$(du -sh "$ROOT" | cut -f1)"
