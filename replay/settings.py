"""Where replay keeps things, read once from the environment.

Defaults are the embedded, server-less ones: everything project-local lives in
`.replay/` of the working directory; caches that are worth keeping across projects
on one machine (base-image root filesystem, registry storage) in `~/.cache/replay`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    cache: Path
    tracking_uri: str
    registry: str
    base_image: str | None
    artifact_root: str
    blobs: str  # a folder or s3://bucket/prefix
    ledger: str  # a SQLite file or postgresql:// URL

    @property
    def default_base_repository(self) -> str:
        return f"{self.registry}/replay/python"


def _location(location: str) -> str:
    """URLs as given; paths made absolute."""
    return location if "://" in location else str(Path(location).absolute())


def load_settings() -> Settings:
    home = Path(os.environ.get("REPLAY_HOME", ".replay")).absolute()
    cache = Path(os.environ.get("REPLAY_CACHE", Path.home() / ".cache" / "replay")).absolute()
    tracking = os.environ.get("REPLAY_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    artifacts = os.environ.get("REPLAY_ARTIFACT_ROOT") or (home / "mlartifacts").as_uri()
    return Settings(
        home=home,
        cache=cache,
        tracking_uri=tracking,
        registry=os.environ.get("REPLAY_REGISTRY", "127.0.0.1:5000"),
        base_image=os.environ.get("REPLAY_BASE_IMAGE") or None,
        artifact_root=artifacts,
        blobs=_location(os.environ.get("REPLAY_BLOBS") or str(home / "blobs")),
        ledger=_location(os.environ.get("REPLAY_LEDGER") or str(home / "ledger.db")),
    )
