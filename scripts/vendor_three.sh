#!/usr/bin/env bash
# Reproduce vocagan/assets/: the vendored three.js build that the HTML pages inline (viewer, serve).
# three@0.170.0 is the last release whose npm package ships a single self-contained minified ES
# module (build/three.module.min.js, no imports); later ones split it into three.core + three.module.
# Its glTF loader comes from the same package (examples/jsm/loaders/GLTFLoader.js and the one module it
# imports, utils/BufferGeometryUtils.js; the pages rewrite their `import` specifiers to blob URLs).
# Needs npm (the npm registry); writes vocagan/assets/three.module.min.js, GLTFLoader.js,
# BufferGeometryUtils.js, THREE_LICENSE, THREE_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${THREE_VERSION:-0.170.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "three@$VERSION" >/dev/null && tar xzf "three-$VERSION.tgz")
mkdir -p vocagan/assets
cp "$work/package/build/three.module.min.js" vocagan/assets/three.module.min.js
cp "$work/package/examples/jsm/loaders/GLTFLoader.js" vocagan/assets/GLTFLoader.js
cp "$work/package/examples/jsm/utils/BufferGeometryUtils.js" vocagan/assets/BufferGeometryUtils.js
cp "$work/package/LICENSE" vocagan/assets/THREE_LICENSE
echo "three@$VERSION (npm) build/three.module.min.js, examples/jsm/loaders/GLTFLoader.js, examples/jsm/utils/BufferGeometryUtils.js" > vocagan/assets/THREE_VERSION
sha256sum vocagan/assets/three.module.min.js vocagan/assets/GLTFLoader.js vocagan/assets/BufferGeometryUtils.js
