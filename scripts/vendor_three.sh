#!/usr/bin/env bash
# Reproduce vocagan/assets/: the vendored three.js build that the HTML viewer inlines.
# three@0.170.0 is the last release whose npm package ships a single self-contained minified ES
# module (build/three.module.min.js, no imports); later ones split it into three.core + three.module.
# Needs npm (the npm registry); writes vocagan/assets/three.module.min.js, THREE_LICENSE, THREE_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${THREE_VERSION:-0.170.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "three@$VERSION" >/dev/null && tar xzf "three-$VERSION.tgz")
mkdir -p vocagan/assets
cp "$work/package/build/three.module.min.js" vocagan/assets/three.module.min.js
cp "$work/package/LICENSE" vocagan/assets/THREE_LICENSE
echo "three@$VERSION (npm) build/three.module.min.js" > vocagan/assets/THREE_VERSION
sha256sum vocagan/assets/three.module.min.js
