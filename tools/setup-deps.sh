#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs, on Debian 12, the packages the build, the tests and the demo need.
# Only what is missing is installed; `apt-get update` runs at most once, so a
# second run on a ready machine costs a dpkg query and nothing else.
set -euo pipefail

pkgs=(meson ninja-build pkg-config gcc libc6-dev libglib2.0-dev libglib2.0-bin
      python3 python3-dev python3-gi python3-pytest python3-uvloop valgrind
      python3-pip python3-mesonpy patchelf python3-gbulb gtk-doc-tools
      python3-hypothesis python3-pyflakes dbus python3-dbg clang libclang-rt-14-dev llvm
      mypy python3-venv python-gi-dev)
# tools/test-pythons: Debian's pytest on pyenv's 3.9 and 3.10 imports it.
pkgs+=(python3-exceptiongroup)
pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
