"""How a manifest becomes an image: context, hermetic build, fingerprint check.

The caller lays out a build context (`wheels/`, `debs/`, `source.tar`, `model/`,
`reference.csv`, `requirements.lock`, `runner.py`) from the stores, each checked
against the manifest; this module adds the Dockerfile, builds with the network off,
and proves the result. A build that fails leaves no image of its own behind.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
import shlex
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from replay.images.runner import SYSTEM_PACKAGES_FILE
from replay.manifests.canonical import document_id
from replay.manifests.manifest import Manifest

from replay.errors import EnvironmentProblem, IntegrityError

if TYPE_CHECKING:
    import docker

LABEL_MANIFEST = "replay.manifest_id"
LABEL_DEPLOYMENT = "replay.deployment"
# Where the image keeps the runner and the environment, and how it starts: the
# Dockerfile writes them, and an image is checked against them before it starts.
RUNNER_PATH = "/opt/replay/runner.py"
SYSTEM_PACKAGES_PATH = posixpath.join(posixpath.dirname(RUNNER_PATH), SYSTEM_PACKAGES_FILE)
DEBS_FOLDER = "debs"  # in the build context
ENVIRONMENT_PATH = "/opt/venv"
ENTRYPOINT = [f"{ENVIRONMENT_PATH}/bin/python", RUNNER_PATH]
CONTAINER_ENV = {
    "PYTHONPATH": "/opt/deployment/src",
    "HOME": "/tmp",
    "REPLAY_DEPLOYMENT_DIR": "/opt/deployment",
}


def image_tag(manifest: Manifest) -> str:
    return f"replay/{manifest.name}:{manifest.short_id}"


def _system_packages_step(manifest: Manifest) -> str:
    """The final stage's steps installing the manifest's .deb files (none without any):
    dpkg, offline, then the list of what was installed for the runner's fingerprint."""
    packages = manifest.environment.system_packages
    if not packages:
        return ""
    listed = " ".join(shlex.quote(f"{p.name}:{p.architecture}") for p in packages)
    return (
        "# Debian packages fetched at capture for the base's release and checked against\n"
        "# the manifest; the runner fingerprints the ones listed.\n"
        f"COPY {DEBS_FOLDER}/ /tmp/replay/debs/\n"
        "RUN dpkg -i /tmp/replay/debs/*.deb \\\n"
        " && rm -rf /tmp/replay/debs \\\n"
        f" && mkdir -p {posixpath.dirname(SYSTEM_PACKAGES_PATH)} \\\n"
        f" && printf '%s\\n' {listed} > {SYSTEM_PACKAGES_PATH}\n"
    )


def render_dockerfile(manifest: Manifest) -> str:
    template = resources.files("replay.images").joinpath("Dockerfile.template").read_text()
    env = {**manifest.runtime.env, **CONTAINER_ENV}
    return Template(template).substitute(
        manifest_id=manifest.manifest_id,
        base=manifest.image.base,
        system_packages=_system_packages_step(manifest),
        runner=RUNNER_PATH,
        entrypoint=json.dumps(ENTRYPOINT),
        env=" \\\n    ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(env.items())),
        labels=" \\\n      ".join(
            f"{key}={shlex.quote(value)}"
            for key, value in {
                LABEL_MANIFEST: manifest.manifest_id,
                LABEL_DEPLOYMENT: manifest.name,
            }.items()
        ),
    )


def find_image(client: docker.DockerClient, manifest_id: str) -> Any | None:
    """A local image labelled with this manifest id, if one exists."""
    images = client.images.list(filters={"label": f"{LABEL_MANIFEST}={manifest_id}"})
    return images[0] if images else None


class BuildSteps:
    """The images a build creates, read from the engine's build stream as it comes: each
    step's ` ---> ID` line, unless the step was taken from the cache or is a `FROM` (the
    base, or another manifest's stage, belong to others). What a failed build leaves is
    exactly these, and only these are removed."""

    _ID = re.compile(r"^---> ([0-9a-f]{12,64})$")

    def __init__(self) -> None:
        self.created: list[str] = []
        self._not_ours = False

    def feed(self, line: str) -> None:
        line = line.strip()
        if (line.startswith("Step ") and " : FROM " in line) or line == "---> Using cache":
            self._not_ours = True
        elif match := self._ID.match(line):
            if not self._not_ours:
                self.created.append(match.group(1))
            self._not_ours = False


def remove_images(client: docker.DockerClient, image_ids: list[str]) -> list[str]:
    """Remove the images (newest first: a step's image is the parent of the next); the
    ids removed. One already gone, or still used by a container, is left alone."""
    import docker

    removed = []
    for image_id in reversed(image_ids):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.images.remove(image_id, force=True)
            removed.append(image_id)
    return removed


def build_image(
    client: docker.DockerClient,
    manifest: Manifest,
    context: Path,
    steps: BuildSteps,
    progress: Callable[[str], None] = lambda _: None,
) -> str:
    """Build the manifest's image from a prepared context with the network off; the
    images it creates are noted in `steps` as they come, so that a caller can remove
    them whatever fails, here or later."""
    import docker

    (context / "Dockerfile").write_text(render_dockerfile(manifest))
    image_id = None
    try:
        for event in client.api.build(
            path=str(context),
            tag=image_tag(manifest),
            network_mode="none",
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        ):
            if "error" in event:
                raise EnvironmentProblem(f"image build failed: {event['error'].strip()}")
            line = (event.get("stream") or "").strip()
            if line:
                steps.feed(line)
                progress(line[:90])
            image_id = (event.get("aux") or {}).get("ID", image_id)
    except docker.errors.APIError as error:
        raise EnvironmentProblem(f"image build failed: {error.explanation or error}") from None
    if image_id is None:
        raise EnvironmentProblem("image build reported no image id")
    return str(image_id)


def image_fingerprint(client: docker.DockerClient, image: str) -> dict[str, Any]:
    """Ask the image itself what it contains (python, distributions, model file hashes)."""
    output = client.containers.run(
        image,
        ["--fingerprint"],
        remove=True,
        network_mode="none",
        stdout=True,
        stderr=False,
    )
    fingerprint: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    return fingerprint


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    return document_id(fingerprint)


def fingerprint_difference(recorded: dict[str, Any], found: dict[str, Any]) -> str:
    """Where an image's fingerprint differs from the recorded one, naming a file where
    one is known: an installed file that no longer matches its RECORD hash, else the
    first differing entry (a model, source or unrecorded file by its path)."""
    modified = found.get("environment", {}).get("modified")
    if modified and modified != recorded.get("environment", {}).get("modified"):
        return f"{modified[0]} differs from its distribution's RECORD hash"
    return _first_difference(recorded, found)


def _first_difference(expected: dict[str, Any], found: dict[str, Any], prefix: str = "") -> str:
    for key in sorted(set(expected) | set(found)):
        left, right = expected.get(key), found.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            if left != right:
                return _first_difference(left, right, f"{prefix}{key}: ")
        elif left != right:
            return f"{prefix}{key}: recorded {_short(left)}, found {_short(right)}"
    return "no difference"


def _short(value: Any) -> str:
    """A sha256 cut to 12 digits; anything else as it is."""
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    return "nothing" if value is None else repr(value)


def check_fingerprint(manifest: Manifest, fingerprint: dict[str, Any]) -> None:
    """Refuse an image whose contents differ from what the manifest promises."""
    modified = fingerprint.get("environment", {}).get("modified")
    if modified:
        raise IntegrityError(
            f"image file {modified[0]} differs from the hash its distribution's RECORD gives"
        )
    expected_models = {item.path: item.sha256 for item in manifest.model_files}
    for path in sorted(set(expected_models) | set(fingerprint["model_files"])):
        found, digest = fingerprint["model_files"].get(path), expected_models.get(path)
        if found != digest:
            raise IntegrityError(
                f"image model file {path}: sha256 {found} differs from the manifest's {digest}"
            )
    installed = fingerprint["distributions"]
    for requirement in manifest.environment.requirements:
        if installed.get(requirement.key) != requirement.version:
            raise IntegrityError(
                f"image has {requirement.key} {installed.get(requirement.key)}, "
                f"the lock pins {requirement.version}"
            )
    runner = manifest.image.runner_sha256
    if fingerprint.get("runner_sha256") != runner:
        raise IntegrityError(
            f"image runner sha256 {fingerprint.get('runner_sha256')} differs from the "
            f"manifest's {runner}"
        )
    python = manifest.environment.python
    if not fingerprint["python"].startswith(python + "."):
        raise IntegrityError(f"image runs Python {fingerprint['python']}, manifest wants {python}")
    installed_packages = fingerprint.get("system_packages") or {}
    for package in manifest.environment.system_packages:
        found = installed_packages.get(package.name)
        if found is None:
            raise IntegrityError(
                f"image lacks system package {package.name} {package.version} "
                f"({package.architecture}), which the manifest installs"
            )
        if (found.get("version"), found.get("architecture")) != (
            package.version,
            package.architecture,
        ):
            raise IntegrityError(
                f"image has system package {package.name} {found.get('version')} "
                f"({found.get('architecture')}), the manifest pins {package.version} "
                f"({package.architecture})"
            )
