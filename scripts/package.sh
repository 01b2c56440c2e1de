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
#   --target TRIPLE  Build `cargo build --release --bin handler --target TRIPLE`.
#                    Without it the build is for the machine's own target, which must be
#                    x86_64 Linux (what Azure Functions on Linux runs).
#                    x86_64-unknown-linux-musl gives a static binary that does not depend on the
#                    image's glibc; it needs `rustup target add x86_64-unknown-linux-musl` and a
#                    musl C toolchain (the TLS crates compile C code).
#   --binary PATH    Do not build: package this existing Linux executable instead (the tests use
#                    the debug binary this way; CI can pass one it built earlier).
#   --out DIR        Where to put app/ and app.zip (default: dist/ in the repository). DIR/app is
#                    replaced.
#   --extra FILE     Also copy FILE into the app root (e.g. a logo for PORTAL_LOGO_FILE=logo.png).
#   --no-zip         Assemble the folder only.
#
# glibc: a binary built for x86_64-unknown-linux-gnu needs a glibc at least as new as the newest
# GLIBC_x.y symbol version it references. The Functions Linux host image is Debian 12 (bookworm,
# glibc 2.36), so the script refuses a glibc build that needs more than MAX_GLIBC (override with
# the environment variable MAX_GLIBC if Microsoft moves the image forward).
set -euo pipefail

MAX_GLIBC="${MAX_GLIBC:-2.36}"
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

# --- the executable ----------------------------------------------------------------------------
if [ -z "$binary" ]; then
  command -v cargo >/dev/null || die "cargo is not installed (or pass --binary PATH)"
  if [ -z "$target" ]; then
    host="$(rustc -vV | sed -n 's/^host: //p')"
    case "$host" in
      x86_64-unknown-linux-*) ;;
      *) die "this machine builds for $host; pass --target x86_64-unknown-linux-gnu or x86_64-unknown-linux-musl" ;;
    esac
    echo "package.sh: cargo build --release --bin handler (target $host)" >&2
    (cd "$ROOT" && cargo build --release --locked --bin handler)
    binary="$ROOT/target/release/handler"
  else
    if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
      die "the Rust target $target is not installed (rustup target add $target)"
    fi
    echo "package.sh: cargo build --release --bin handler --target $target" >&2
    (cd "$ROOT" && cargo build --release --locked --bin handler --target "$target")
    binary="$ROOT/target/$target/release/handler"
  fi
fi

[ -f "$binary" ] || die "no executable at $binary"
head -c 4 "$binary" | grep -q 'ELF' || die "$binary is not a Linux (ELF) executable"

# The Functions host runs x86_64 Linux; refuse anything else.
if command -v readelf >/dev/null; then
  machine="$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')"
  case "$machine" in
    *X86-64*) ;;
    *) die "$binary is built for '$machine', Azure Functions on Linux needs x86-64" ;;
  esac
  # glibc requirement: the newest GLIBC_x.y version the binary asks for (none when static/musl).
  needed="$(readelf -V --wide "$binary" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1 || true)"
  if [ -n "$needed" ]; then
    newest="$(printf '%s\n%s\n' "$needed" "$MAX_GLIBC" | sort -V | tail -n1)"
    if [ "$newest" != "$MAX_GLIBC" ]; then
      die "$binary needs glibc $needed but the Functions image has $MAX_GLIBC: build on Debian 12 or use --target x86_64-unknown-linux-musl"
    fi
    echo "package.sh: dynamically linked, needs glibc >= $needed (image has $MAX_GLIBC)" >&2
  else
    echo "package.sh: no glibc symbol versions referenced (static binary)" >&2
  fi
else
  echo "package.sh: readelf not found, skipping the architecture and glibc checks" >&2
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
