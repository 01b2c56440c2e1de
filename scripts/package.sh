#!/usr/bin/env bash
# Assembles the Azure Functions app folder for the custom handler and zips it.
#
#   scripts/package.sh [--target TRIPLE] [--binary PATH] [--out DIR] [--extra FILE]... [--no-zip]
#
# Result (default --out dist):
#   dist/app/host.json
#   dist/app/<function-folder>/function.json   one per function folder at the repository root
#   dist/app/handler                           the executable host.json names (mode 0755)
#   dist/app.zip                               the same tree, for
#       az functionapp deployment source config-zip -g RG -n APP --src dist/app.zip
#
# Options
#   --target TRIPLE  The Rust target to build (default x86_64-unknown-linux-gnu.2.17).
#                    A glibc target with a version suffix (x86_64-unknown-linux-gnu.2.17) is built
#                    with cargo-zigbuild, which links against that glibc version whatever the build
#                    machine has; zig and cargo-zigbuild come from PyPI (pinned below) into
#                    .local/venv-zig on first use. Any other triple (e.g. x86_64-unknown-linux-musl)
#                    is built with plain `cargo build --target`, which needs that Rust target and
#                    its C toolchain installed.
#   --binary PATH    Do not build: package this existing Linux executable instead (the tests use
#                    the debug binary this way; CI can pass one it built earlier).
#   --out DIR        Where to put app/ and app.zip (default: dist/ in the repository). DIR/app is
#                    replaced.
#   --extra FILE     Also copy FILE into the app root (e.g. a logo for PORTAL_LOGO_FILE=logo.png).
#   --no-zip         Assemble the folder only.
#
# Portability: Microsoft does not document which image runs the `custom` runtime, and its Linux
# Functions images include Debian 11 (glibc 2.31) as well as Debian 12 (2.36). A binary linked on
# the build machine needs that machine's glibc (2.34 on Debian 12), so the default build links
# against glibc 2.17 (the oldest Rust supports) and runs on every current image. Whatever was
# built or given, the script reads the newest GLIBC_x.y symbol version the executable requires
# (readelf) and refuses it when that is newer than MAX_GLIBC (default 2.31, Debian 11) or than
# the glibc the target asked for. MAX_GLIBC can be raised for a binary meant for one known image.
set -euo pipefail

MAX_GLIBC="${MAX_GLIBC:-2.31}"
DEFAULT_TARGET="x86_64-unknown-linux-gnu.2.17"
ZIGLANG_VERSION="0.17.0"
CARGO_ZIGBUILD_VERSION="0.24.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

target=""
binary=""
out=""
zip_it=1
extras=()

die() { echo "package.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --target) [ $# -ge 2 ] || die "--target needs a value"; target="$2"; shift 2 ;;
    --target=*) target="${1#*=}"; shift ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary="$2"; shift 2 ;;
    --binary=*) binary="${1#*=}"; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out="$2"; shift 2 ;;
    --out=*) out="${1#*=}"; shift ;;
    --extra) [ $# -ge 2 ] || die "--extra needs a file"; extras+=("$2"); shift 2 ;;
    --extra=*) extras+=("${1#*=}"); shift ;;
    --no-zip) zip_it=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed -e 's/^# //' -e 's/^#$//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[ -n "$target" ] && [ -n "$binary" ] && die "--target and --binary exclude each other"

# Paths given on the command line are relative to where the script was called from; the default
# output is dist/ in the repository, wherever the script is called from (azd runs it as a hook).
if [ -z "$out" ]; then out="$ROOT/dist"; fi
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
if [ -n "$binary" ]; then case "$binary" in /*) ;; *) binary="$PWD/$binary" ;; esac; fi

# The version a glibc target asks for: x86_64-unknown-linux-gnu.2.17 -> 2.17 (empty otherwise).
target_glibc() { sed -n 's/^.*-gnu\.\([0-9][0-9]*\.[0-9][0-9]*\)$/\1/p' <<<"$1"; }

# zig and cargo-zigbuild, pinned, from PyPI into .local/venv-zig (nothing else is downloaded).
zig_tools() {
  local venv="$ROOT/.local/venv-zig"
  if ! "$venv/bin/cargo-zigbuild" --version 2>/dev/null | grep -qx "cargo-zigbuild $CARGO_ZIGBUILD_VERSION" \
    || [ "$("$venv/bin/python3" -m ziglang version 2>/dev/null)" != "$ZIGLANG_VERSION" ]; then
    echo "package.sh: installing ziglang $ZIGLANG_VERSION and cargo-zigbuild $CARGO_ZIGBUILD_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
  fi
  # cargo-zigbuild runs `python3 -m ziglang` when no `zig` is on PATH: the venv's python3.
  PATH="$venv/bin:$PATH"
}

# --- the executable ----------------------------------------------------------------------------
wanted_glibc=""
if [ -z "$binary" ]; then
  command -v cargo >/dev/null || die "cargo is not installed (or pass --binary PATH)"
  target="${target:-$DEFAULT_TARGET}"
  triple="${target%.*.*}"
  wanted_glibc="$(target_glibc "$target")"
  [ -n "$wanted_glibc" ] || triple="$target"
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$triple"; then
    die "the Rust target $triple is not installed (rustup target add $triple)"
  fi
  if [ -n "$wanted_glibc" ]; then
    zig_tools
    echo "package.sh: cargo zigbuild --release --bin handler --target $target" >&2
    (cd "$ROOT" && cargo zigbuild --release --locked --bin handler --target "$target")
  else
    echo "package.sh: cargo build --release --bin handler --target $target" >&2
    (cd "$ROOT" && cargo build --release --locked --bin handler --target "$target")
  fi
  binary="$ROOT/target/$triple/release/handler"
fi

[ -f "$binary" ] || die "no executable at $binary"
head -c 4 "$binary" | grep -q 'ELF' || die "$binary is not a Linux (ELF) executable"

# The Functions host runs x86_64 Linux; refuse anything else, and anything that needs a newer
# glibc than the oldest current image has.
command -v readelf >/dev/null || die "readelf is needed to check the executable (apt-get install binutils)"
machine="$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')"
case "$machine" in
  *X86-64*) ;;
  *) die "$binary is built for '$machine', Azure Functions on Linux needs x86-64" ;;
esac
# The newest GLIBC_x.y version the binary requires (none when it is static or musl).
needed="$(readelf -V --wide "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1 || true)"
newer() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n1)" = "$1" ] && [ "$1" != "$2" ]; }
if [ -n "$needed" ]; then
  if [ -n "$wanted_glibc" ] && newer "$needed" "$wanted_glibc"; then
    die "$binary needs glibc $needed although it was built for glibc $wanted_glibc"
  fi
  if newer "$needed" "$MAX_GLIBC"; then
    die "$binary needs glibc $needed, but the oldest current Functions image has $MAX_GLIBC (Debian 11): build it with scripts/package.sh (no --binary) for a binary that runs on every image"
  fi
  echo "package.sh: glibc check passed: needs glibc >= $needed, allowed up to $MAX_GLIBC (MAX_GLIBC; Debian 11 has 2.31)" >&2
else
  if readelf -d "$binary" | grep -q 'NEEDED'; then
    die "$binary is dynamically linked but requires no GLIBC_ symbol version: not a glibc binary the check can vouch for"
  fi
  echo "package.sh: glibc check passed: statically linked, needs no glibc" >&2
fi

# --- the app folder ----------------------------------------------------------------------------
app="$out/app"
rm -rf "$app"
mkdir -p "$app"

cp "$ROOT/host.json" "$app/host.json"

exe="$(tr -d '\n' < "$ROOT/host.json" | sed -n 's/.*"defaultExecutablePath"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')"
case "$exe" in
  ""|/*|*..*) die "host.json defaultExecutablePath must be a relative path inside the app, got '$exe'" ;;
esac

found=0
for fj in "$ROOT"/*/function.json; do
  [ -f "$fj" ] || continue
  dir="$(basename "$(dirname "$fj")")"
  mkdir -p "$app/$dir"
  cp "$fj" "$app/$dir/function.json"
  found=$((found + 1))
done
[ "$found" -gt 0 ] || die "no <function>/function.json folders found under $ROOT"

mkdir -p "$(dirname "$app/$exe")"
cp "$binary" "$app/$exe"
chmod 0755 "$app/$exe"

for extra in "${extras[@]+"${extras[@]}"}"; do
  [ -f "$extra" ] || die "--extra $extra: no such file"
  cp "$extra" "$app/$(basename "$extra")"
done

# --- the zip -----------------------------------------------------------------------------------
if [ "$zip_it" -eq 1 ]; then
  rm -f "$out/app.zip"
  if command -v zip >/dev/null; then
    # zip keeps the Unix mode bits, so the handler stays executable after deployment.
    (cd "$app" && zip -q -r -X "$out/app.zip" .)
  else
    python3 - "$app" "$out/app.zip" <<'PY'
import os, sys, zipfile
root, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            z.write(path, os.path.relpath(path, root))  # ZipInfo.from_file keeps st_mode
PY
  fi
  echo "package.sh: wrote $out/app.zip" >&2
fi

echo "package.sh: assembled $app ($found functions, executable '$exe')" >&2
