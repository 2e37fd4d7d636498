#!/usr/bin/env bash
# Builds the krew release archive of one target, laid out as
# krew-manifest.yaml says (the binary and LICENSE at the top), and prints
# "<sha256>  <archive>".
#
#   scripts/package.sh x86_64-unknown-linux-musl [OUT_DIR]
#   BINARY=path/to/kubectl-qualys_respond scripts/package.sh TARGET   # archive a binary built elsewhere
set -euo pipefail
target=${1:?usage: scripts/package.sh TARGET [OUT_DIR]}
out=${2:-dist}
cd "$(dirname "$0")/.."
version=v$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
name=kubectl-qualys_respond
exe=""
case $target in *windows*) exe=.exe ;; esac
if [ -z "${BINARY:-}" ]; then
    cargo build --locked --release --bin "$name" --target "$target"
    BINARY=target/$target/release/$name$exe
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$BINARY" "$stage/$name$exe"
chmod 0755 "$stage/$name$exe"
cp LICENSE "$stage/LICENSE"
mkdir -p "$out"
archive=$out/$name-$version-$target.tar.gz
if tar --version 2>/dev/null | grep -q GNU; then
    # Reproducible: no owner, no time.
    tar -C "$stage" --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "$archive" "$name$exe" LICENSE
else
    tar -C "$stage" -czf "$archive" "$name$exe" LICENSE
fi
if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$archive"
else
    shasum -a 256 "$archive"
fi
