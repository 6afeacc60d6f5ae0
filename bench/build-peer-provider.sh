#!/bin/sh
# bench/build-peer-provider.sh SRC_DIR PREFIX
#
# Builds a pkcs11-provider (github.com/latchset/pkcs11-provider) source tree,
# checked out somewhere outside this repository, with meson + ninja, puts the
# module at PREFIX/lib/ossl-modules/pkcs11.so and prints that path.
#
# Why: the benchmark's --peer-provider compares hsmtls with another OpenSSL 3
# PKCS#11 provider, which has to be built outside this repository. This script
# never copies that code into the repository: the build tree is PREFIX/build.
#
# The module is copied rather than `meson install`ed, because upstream installs
# it into OpenSSL's system modulesdir whatever the prefix is.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 SRC_DIR PREFIX" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
prefix=$(realpath -m "$2")
here=$(cd "$(dirname "$0")/.." && pwd -P)
case "$prefix/" in
"$here"/*) echo "$0: PREFIX must be outside the repository" >&2; exit 2 ;;
esac
[ -f "$src/meson.build" ] || { echo "$0: no meson.build in $src" >&2; exit 2; }

if [ -f "$prefix/build/build.ninja" ]; then
    meson setup --reconfigure "$prefix/build" "$src" --buildtype=release >&2
else
    meson setup "$prefix/build" "$src" --buildtype=release --prefix="$prefix" >&2
fi
ninja -C "$prefix/build" src/pkcs11.so >&2
install -D -m 0755 "$prefix/build/src/pkcs11.so" "$prefix/lib/ossl-modules/pkcs11.so"
echo "$prefix/lib/ossl-modules/pkcs11.so"
