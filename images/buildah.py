"""Low-level access to buildah, the builder whose images are the same bytes every time.

The engine's own builder stamps every image with the time it was built, so no rebuild
ever has the id of the image that decided. buildah's `--timestamp 0` sets the created
time, the history and every file's time in the layers it writes, and its `vfs` storage
writes a layer the same way on any filesystem (its overlay driver gave another id for
the same build). The storage is replay's own (`<cache>/buildah`), so a machine's other
containers-storage settings change nothing. Images reach the engine through the
registry, by digest: the engine then fetches only the layers it lacks.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from replay.errors import EnvironmentProblem, one_line

STORAGE_DRIVER = "vfs"  # the same layers on any filesystem (see above)
LOCAL_REGISTRIES = ("localhost", "127.0.0.1")


def insecure(reference: str) -> bool:
    """Whether `reference` names a registry on this machine (plain HTTP, as the engine
    allows for loopback registries)."""
    host = reference.split("/", 1)[0].split(":", 1)[0]
    return host in LOCAL_REGISTRIES


class Buildah:
    """buildah with replay's storage under `root`."""

    def __init__(self, root: Path) -> None:
        if shutil.which("buildah") is None:
            raise EnvironmentProblem(
                "buildah is not installed: `replay up` installs it (Debian: apt-get install "
                "buildah)"
            )
        self.root = root

    def _run(self, *arguments: str, on_line: Callable[[str], None] | None = None) -> str:
        command = [
            "buildah",
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            STORAGE_DRIVER,
            *arguments,
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None  # stdout=PIPE
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip())
            if on_line is not None and line.strip():
                on_line(line.strip())
        if process.wait() != 0:
            last = [line for line in lines if line.strip()][-3:]
            raise EnvironmentProblem(
                f"buildah {arguments[0]} failed: {one_line(' | '.join(last), 400)}"
            )
        return "\n".join(lines)

    def version(self) -> str:
        """`buildah 1.28.2`: an image id is promised for the same builder."""
        found = re.search(r"^Version:\s+(\S+)", self._run("version"), re.MULTILINE)
        return f"buildah {found.group(1) if found else 'unknown'}"

    def build(
        self,
        context: Path,
        containerfile: Path,
        tag: str,
        base: str,
        progress: Callable[[str], None],
    ) -> str:
        """Build `containerfile` in `context` with the network off, every time in it 0;
        the new image's id (`sha256:…`)."""
        with tempfile.TemporaryDirectory() as scratch:
            written = Path(scratch) / "id"
            self._run(
                "bud",
                "--timestamp",
                "0",
                "--identity-label=false",  # the builder's version is kept in the record
                "--format",  # docker's format records the id of the build's container
                "oci",
                "--network",
                "none",
                "--pull=false",  # the base by digest: fetched once, then the same bytes
                # no cache is used anyway (one layer a stage); it lets --force-rm remove
                # the working container of a build that fails
                "--no-cache",
                "--force-rm",
                f"--tls-verify={str(not insecure(base)).lower()}",
                "--iidfile",
                str(written),
                "--file",
                str(containerfile),
                "--tag",
                tag,
                str(context),
                on_line=progress,
            )
            image_id = written.read_text().strip()
        return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"

    def image_id(self, tag: str) -> str | None:
        """The id of the image tagged `tag` in replay's storage, if there is one."""
        try:
            found = self._run("inspect", "--type", "image", "--format", "{{.FromImageID}}", tag)
        except EnvironmentProblem:
            return None
        return f"sha256:{found.strip()}" if found.strip() else None

    def push(self, tag: str, destination: str, progress: Callable[[str], None]) -> str:
        """Push `tag` to `destination` (`registry/repository:tag`); the registry's digest
        of what it received."""
        with tempfile.TemporaryDirectory() as scratch:
            written = Path(scratch) / "digest"
            self._run(
                "push",
                f"--tls-verify={str(not insecure(destination)).lower()}",
                "--digestfile",
                str(written),
                tag,
                f"docker://{destination}",
                on_line=progress,
            )
            return written.read_text().strip()

    def remove(self, tag: str) -> None:
        """Remove the image tagged `tag` from replay's storage (none: nothing to do)."""
        with contextlib.suppress(EnvironmentProblem):  # already gone
            self._run("rmi", "--force", tag)
