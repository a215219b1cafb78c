# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's "Python awaits GIO" example, run by `meson test --suite examples`.
# [guide:readme-python]
import asyncio
import gasyncbridge
from gasyncbridge import gio

async def main():
    source = await gio.load_contents(__file__)               # GIO, on the runtime thread
    code, out, err = await gio.communicate(["uname", "-s"])  # a GSubprocess
    late = await gasyncbridge.sleep(0.05, result="late")     # a GLib timeout
    print(len(source), code, out.decode().strip(), late)

asyncio.run(main())          # any loop: uvloop.install() first, and it is uvloop's
# [/guide:readme-python]
