#!/usr/bin/env bash
# Builds libkmod as a static archive from Debian's source package of the installed
# libkmod-dev, for the static kmm-loader (see KMM_STATIC_LOADER in CMakeLists.txt). Debian
# ships libkmod only as a shared library, and a dynamically linked kmm-loader spends most of
# a short load or unload process in the dynamic linker.
#
# Usage: build-static-libkmod.sh
# Prints, on its last line, a directory holding libkmod.a (libkmod and kmod's shared helpers,
# built with xz and zstd support like Debian's, without OpenSSL, which only modinfo's
# signature details use). Cached outside the repository, keyed by the Debian version:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kmm/libkmod-<version>/
# Needs the apt sources of this machine (as deb-src), dpkg-dev, autoconf, automake, libtool
# (`make deps` installs them). About 15 s.
set -euo pipefail

version=$(dpkg-query -W -f='${Version}' libkmod-dev 2>/dev/null) || {
  echo "build-static-libkmod: libkmod-dev is not installed; run \`make deps\`" >&2
  exit 1
}
out=${XDG_CACHE_HOME:-$HOME/.cache}/kmm/libkmod-${version//:/_}
if [[ -f $out/libkmod.a ]]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/build.log
fail() {
  echo "build-static-libkmod: $1 (log below)" >&2
  tail -n 30 "$log" >&2
  exit 1
}

# The machine's own apt sources, as source entries, in a private apt state: apt-get update
# here neither needs root nor touches the system's package lists.
mkdir -p "$work/apt/lists/partial" "$work/apt/parts" "$work/src"
shopt -s nullglob
for file in /etc/apt/sources.list.d/*.sources; do
  sed -E 's/^Types:.*/Types: deb-src/' "$file" >"$work/apt/parts/$(basename "$file")"
done
for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [[ -f $file ]] && sed -nE 's/^deb[[:space:]]/deb-src /p' "$file"
done >"$work/apt/parts/from-lists.list"
apt_options=(-o "Dir::Etc::SourceList=$work/apt/parts/from-lists.list"
  -o "Dir::Etc::SourceParts=$work/apt/parts" -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache" -o APT::Sandbox::User=root -qq)
# A source without source indexes fails its part of the update; apt-get source then says
# plainly whether the one package needed was found.
apt-get "${apt_options[@]}" update >>"$log" 2>&1 || true
(cd "$work/src" && apt-get "${apt_options[@]}" source --download-only "libkmod-dev=$version") \
  >>"$log" 2>&1 || fail "cannot download Debian's source of libkmod-dev $version"
(cd "$work/src" && dpkg-source -x ./*.dsc tree) >>"$log" 2>&1 || fail "cannot unpack the source"

# Only the library is built: no tools, manual pages or API documentation. Its Makefile
# includes gtk-doc's fragment even when the documentation is off, so an empty one stands in.
cd "$work/src/tree"
touch libkmod/docs/gtk-doc.make
autoreconf -fi >>"$log" 2>&1 || fail "autoreconf failed"
./configure --sysconfdir=/etc --with-xz --with-zstd --without-openssl --disable-tools \
  --disable-manpages --disable-test-modules >>"$log" 2>&1 || fail "configure failed"
# libkmod-internal is kmod's own test build of libkmod: the same sources and kmod's shared
# helpers, as one archive.
make -j "$(nproc)" libkmod/libkmod-internal.la >>"$log" 2>&1 || fail "make failed"

mkdir -p "$out.tmp.$$"
cp libkmod/.libs/libkmod-internal.a "$out.tmp.$$/libkmod.a"
rm -rf "$out" && mv "$out.tmp.$$" "$out"
echo "$out"
