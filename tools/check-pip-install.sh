#!/usr/bin/env bash
# `pip install .` the way a Python user would (meson-python backend), from a
# copy of the tracked sources, into a scratch target; then use the module.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$src" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$src" && xargs -0 cp --parents -t "$work" 2>/dev/null || true)
cd "$work"
/usr/bin/python3 -m pip install --quiet --no-build-isolation --no-deps \
  --disable-pip-version-check --root-user-action=ignore --target "$work/site" .
cd /
PYTHONPATH="$work/site" /usr/bin/python3 - <<'PY'
import asyncio, os, gasyncbridge
assert gasyncbridge.__file__.startswith(os.environ["PYTHONPATH"]), gasyncbridge.__file__
async def main():
    assert await gasyncbridge.sleep(0, "ok") == "ok"
    assert len(await gasyncbridge.gio.load_contents("/etc/passwd")) > 0
asyncio.run(main())
print("pip install: ok", gasyncbridge.__file__)
PY
