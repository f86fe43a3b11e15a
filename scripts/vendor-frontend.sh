#!/bin/sh
# Copies the front-end libraries this repository commits under static/vendor/ from the npm
# registry: each at a pinned version, its tarball checked against a pinned SHA-512, only the
# built file and its licences kept. Run it (`make vendor`) to move to a new version: change the
# version and hash below, run, review the diff, run the tests, commit static/vendor/ with it.
#
# They are committed, not fetched at run or test time, so that the site and CI never depend on a
# CDN or on reaching a registry. Needs npm (only to fetch) and sha512sum.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENDOR="$ROOT/static/vendor"

# axe-core: the accessibility rules the browser tests run in each page (tests only; no page
# of the site loads it). MPL-2.0.
AXE_VERSION=4.14.1
AXE_SHA512=1477dafa598d8d065f273d6af302aa203c02e83131707b7fa648cd41bd3d6b734f8c22a0dab86ee6a6f64b8afbe804b214d36db85a2826965edfb3a0b9d546b5

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# fetch NAME VERSION SHA512: the package's tarball, checked, unpacked into $WORK/NAME/package.
fetch() {
    (cd "$WORK" && npm pack --silent "$1@$2" >/dev/null)
    tarball="$WORK/$1-$2.tgz"
    echo "$3  $tarball" | sha512sum --check --quiet
    mkdir "$WORK/$1"
    tar -xzf "$tarball" -C "$WORK/$1"
}

fetch axe-core "$AXE_VERSION" "$AXE_SHA512"
rm -rf "$VENDOR/axe-core"
mkdir -p "$VENDOR/axe-core"
cp "$WORK/axe-core/package/axe.min.js" "$WORK/axe-core/package/LICENSE" \
    "$WORK/axe-core/package/LICENSE-3RD-PARTY.txt" "$VENDOR/axe-core/"

echo "static/vendor/: axe-core $AXE_VERSION"
