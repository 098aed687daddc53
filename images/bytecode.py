"""Run inside the environment image as it is built (stdlib only): compile the bytecode of
every module under the given folders that has none, in checked-hash mode.

Checked-hash bytecode holds a hash of its source, not the time it was compiled, so every
build writes the same bytes, and the interpreter checks it against its source at import.
A .pyc a wheel ships is left as it is: its distribution's RECORD lists its hash, and
`compileall` would replace it (it judges a .pyc by the source's time).
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import sys


def uncompiled(folders: list[str]) -> list[str]:
    """Every .py file under `folders` whose bytecode is missing."""
    found = []
    for folder in folders:
        for directory, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(directory, name)
                if name.endswith(".py") and not os.path.exists(
                    importlib.util.cache_from_source(path)
                ):
                    found.append(path)
    return sorted(found)


def compile_one(path: str) -> None:
    # a module that does not compile (a template, a test of bad syntax) imports as before
    py_compile.compile(
        path, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH, doraise=False, quiet=2
    )


if __name__ == "__main__":
    # one process, in sorted order: marshal writes a shared object once and refers back
    # to it depending on its reference count, which depends on what this process compiled
    # before; the same sequence gives the same bytes (in parallel workers it would not)
    for path in uncompiled(sys.argv[1:]):
        compile_one(path)
