#!/usr/bin/env bash
# Unpacks .gpu.tgz (from scripts/gpu/build.sh) into .gpu/: the binaries travel compressed
# (about 12 MB instead of 43), since a device call carries at most 64 MiB with the working
# tree. Every device script runs this first. Without .gpu.tgz it keeps the .gpu/ a warm
# machine still holds from an earlier call.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ! -f .gpu.tgz ]]; then
    if [[ -x .gpu/bin/iris ]]; then
        exit 0
    fi
    echo "no .gpu/ and no .gpu.tgz: run scripts/gpu/build.sh here and carry .gpu.tgz" >&2
    exit 1
fi
# The same archive already unpacked (all.sh runs the other scripts, each of which unpacks).
stamp=$(stat -c '%s %Y' .gpu.tgz)
if [[ -x .gpu/bin/iris && "$(cat .gpu/.unpacked-from 2>/dev/null)" == "$stamp" ]]; then
    exit 0
fi
rm -rf .gpu
tar xzf .gpu.tgz
echo "$stamp" >.gpu/.unpacked-from
echo "unpacked .gpu.tgz: $(cat .gpu/bin/BUILD 2>/dev/null || echo 'no BUILD file')"
