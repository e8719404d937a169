#!/bin/sh
# Builds the zbus driver offline against Debian's crate registry
# (librust-zbus-dev): the sources are copied to $COMPAT_BUILD so that no
# Cargo.lock lands in the repository; the target directory is kept in
# $COMPAT_CACHE because a first build takes minutes.
set -eu
registry=/usr/share/cargo/registry
[ -d "$registry" ] || { echo "no crate registry at $registry (install librust-zbus-dev)" >&2; exit 1; }
# The driver uses zbus 1.x's API; later Debian releases package only newer zbus.
if ! ls -d "$registry"/zbus-1.* >/dev/null 2>&1; then
  echo "the driver needs zbus 1.x; this system packages only $(cd "$registry" && ls -d zbus-[0-9]* 2>/dev/null | tr '\n' ' ')" >&2
  exit 1
fi
# Debian's cargo and rustc are the pair its crates are packaged for.
cargo=cargo
[ -x /usr/bin/cargo ] && cargo=/usr/bin/cargo
[ -x /usr/bin/rustc ] && export RUSTC=/usr/bin/rustc
src="$COMPAT_BUILD/zbus-src"
home="$COMPAT_CACHE/zbus-cargo-home"
mkdir -p "$src" "$home"
cp -r "$(dirname "$0")/Cargo.toml" "$(dirname "$0")/src" "$src/"
cat > "$home/config.toml" <<CONF
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "$registry"
[net]
offline = true
CONF
CARGO_HOME="$home" CARGO_TARGET_DIR="$COMPAT_CACHE/zbus-target" \
  "$cargo" build --quiet --release --offline --manifest-path "$src/Cargo.toml"
cp "$COMPAT_CACHE/zbus-target/release/zbus-driver" "$COMPAT_BUILD/zbus-driver"
