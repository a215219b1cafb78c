# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/guide/07-errors.md: the errors the bridge raises, to a type checker.

`mypy --strict` accepts this file with the stubs of the package
(pytests/test_gio.py: test_stubs_mypy_strict; tools/check-wheel against the
installed wheel).
"""
import asyncio
import os
import tempfile
from typing import TYPE_CHECKING, Optional, Tuple, cast

import gasyncbridge
from gasyncbridge import gio


# [guide:errors-typing]
if TYPE_CHECKING:
    from gasyncbridge import GErrorInfo   # a Protocol, for type checkers only


async def load(path: str) -> Tuple[Optional[bytes], str]:
    try:
        return await gio.load_contents(path), "ok"
    except FileNotFoundError as e:         # Python's class: no .domain to mypy
        gerror = cast("GErrorInfo", e)     # but the bridge raised it: it has one
        return None, f"{gerror.domain} {gerror.code}"
    except gasyncbridge.GLibError as e:    # declares .domain and .code itself
        return None, f"{e.domain} {e.code}"
# [/guide:errors-typing]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data, how = await load(os.path.join(tmp, "missing"))
        assert data is None and how == "g-io-error-quark 1", how
        data, how = await load(__file__)
        assert data is not None and how == "ok", how
    print("typed errors: ok")


asyncio.run(main())
