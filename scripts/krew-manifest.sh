#!/usr/bin/env bash
# Prints krew-manifest.yaml for a release: every version replaced by VERSION
# and every platform's sha256 by that of its archive in DIST (as made by
# scripts/package.sh). Fails when an archive is missing.
#
#   scripts/krew-manifest.sh v0.1.0 dist > krew-manifest.yaml.new
set -euo pipefail
version=${1:?usage: scripts/krew-manifest.sh VERSION DIST}
dist=${2:?usage: scripts/krew-manifest.sh VERSION DIST}
cd "$(dirname "$0")/.."
current=$(sed -n 's/^  version: //p' krew-manifest.yaml)
sha() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -d' ' -f1
}
while IFS= read -r line; do
    line=${line//$current/$version}
    case $line in
        *"uri: "*)
            archive=$dist/${line##*/}
            [ -f "$archive" ] || { echo "missing archive $archive" >&2; exit 1; }
            digest=$(sha "$archive")
            ;;
        *"sha256: "*)
            line="${line%%sha256:*}sha256: \"$digest\""
            ;;
    esac
    printf '%s\n' "$line"
done < krew-manifest.yaml
