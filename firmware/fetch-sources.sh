#!/usr/bin/env bash
# Obtain MicroPython and mbedTLS sources from Debian's trixie source packages,
# verify them against pinned sha256 values, unpack them once, and apply our
# patches. The machine's apt configuration is never touched: a private
# sources list and private list/cache folders live under $BUILD/apt.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
# shellcheck source=sources.lock
. "$HERE/sources.lock"

SRC=$BUILD/micropython
patches_sum=$(cat "$HERE"/patches/*.patch 2>/dev/null | sha256sum | cut -c1-12 || true)
STAMP=$SRC/.unpacked-$MPY_DEB_VERSION-$MBEDTLS_DEB_VERSION-$patches_sum
if [ -f "$STAMP" ]; then
    exit 0
fi

say() { printf '[sources] %s\n' "$*"; }
die() { printf '[sources] ERROR: %s\n' "$*" >&2; exit 1; }

APT=$BUILD/apt
DL=$BUILD/downloads
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$DL"

# Reuse the mirror the machine already uses for Debian (deb822 or one-line format).
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f")
    [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list(.d); add one, then run again"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat > "$APT/sources.list" <<LIST
deb-src [signed-by=$keyring] $mirror trixie main
deb-src [signed-by=$keyring] ${mirror%/debian}/debian-security trixie-security main
LIST
APTOPTS=(-o "Dir::Etc::SourceList=$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache::Archives=$APT/archives"
         -o APT::Sandbox::User=root -q)

fetch_orig() {  # package version tarball sha256
    local pkg=$1 ver=$2 tarball=$3 sha=$4
    if [ -f "$DL/$tarball" ] && echo "$sha  $DL/$tarball" | sha256sum -c --status; then
        return 0
    fi
    if [ ! -f "$APT/lists/.updated" ]; then
        say "reading Debian trixie source index (once)"
        apt-get "${APTOPTS[@]}" update >"$APT/update.log" 2>&1 \
            || die "apt-get update for the trixie source index failed; see $APT/update.log"
        touch "$APT/lists/.updated"
    fi
    say "downloading source package $pkg $ver"
    if ! (cd "$DL" && apt-get "${APTOPTS[@]}" source --download-only "$pkg=$ver" >"$APT/source-$pkg.log" 2>&1); then
        local avail
        avail=$(apt-cache "${APTOPTS[@]}" showsrc "$pkg" 2>/dev/null | awk '/^Version:/ {print $2}' | sort -uV | tr '\n' ' ')
        die "Debian no longer serves $pkg $ver (it serves: ${avail:-nothing}).
    If that is a newer security release of the same series, review its changelog,
    then update firmware/sources.lock (version, tarball name, sha256) and run again.
    We do not build from an unreviewed tarball."
    fi
    echo "$sha  $DL/$tarball" | sha256sum -c --status \
        || die "sha256 of $tarball does not match the pin in firmware/sources.lock; refusing to unpack"
    say "verified $tarball"
}

fetch_orig micropython "$MPY_DEB_VERSION" "$MPY_TARBALL" "$MPY_SHA256"
fetch_orig mbedtls "$MBEDTLS_DEB_VERSION" "$MBEDTLS_TARBALL" "$MBEDTLS_SHA256"

say "unpacking MicroPython $MPY_VERSION and mbedTLS $MBEDTLS_VERSION into $SRC"
rm -rf "$SRC" "$SRC.tmp"
mkdir -p "$SRC.tmp"
tar -xJf "$DL/$MPY_TARBALL" -C "$SRC.tmp" --strip-components=1
rm -rf "$SRC.tmp/lib/mbedtls"
mkdir -p "$SRC.tmp/lib/mbedtls"
tar -xjf "$DL/$MBEDTLS_TARBALL" -C "$SRC.tmp/lib/mbedtls" --strip-components=1
for p in "$HERE"/patches/*.patch; do
    [ -f "$p" ] || continue
    say "applying $(basename "$p")"
    patch -d "$SRC.tmp" -p1 --quiet --forward < "$p" || die "patch $(basename "$p") does not apply"
done
mv "$SRC.tmp" "$SRC"
touch "$STAMP"
say "sources ready"
