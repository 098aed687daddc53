"""How a manifest becomes an image: context, reproducible build, fingerprint check.

The caller lays out a build context (`wheels/`, `debs/`, `source.tar`, `model/`,
`reference.csv`, `requirements.lock`, `runner.py`) from the stores, each checked
against the manifest; this module adds the Containerfiles and builds in two images,
both with buildah (`images/buildah.py`), the network off and every time 0: the
environment (base, system packages, the locked wheels installed, bytecode compiled),
shared by every manifest with the same base and lock, and on it the deployment. The
same manifest then always gives the same image id. The image reaches the engine
through the registry, by digest.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from replay.images.base import qualified, repository_of
from replay.images.buildah import Buildah
from replay.images.engine import in_engine
from replay.images.host import registry_answers
from replay.images.runner import SYSTEM_PACKAGES_FILE
from replay.manifests.canonical import canonical_json, document_id, sha256_bytes
from replay.manifests.manifest import Manifest

from replay.errors import EnvironmentProblem, IntegrityError

if TYPE_CHECKING:
    import docker

LABEL_MANIFEST = "replay.manifest_id"
LABEL_DEPLOYMENT = "replay.deployment"
# Where the image keeps the runner and the environment, and how it starts: the
# Containerfiles write them, and an image is checked against them before it starts.
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
ENVIRONMENT_FILE = "Containerfile.environment"
BYTECODE_SCRIPT = "bytecode.py"  # in the build context: see images/bytecode.py
COMPILE_STEP = (
    f" && PYTHONHASHSEED=0 {ENVIRONMENT_PATH}/bin/python /tmp/replay/{BYTECODE_SCRIPT} "
    f"{ENVIRONMENT_PATH}/lib \\\n"
)
DEPLOYMENT_FILE = "Containerfile.deployment"


def image_tag(manifest: Manifest) -> str:
    return f"replay/{manifest.name}:{manifest.short_id}"


def local_tag(manifest: Manifest) -> str:
    """The image's tag in the builder's storage."""
    return f"localhost/{image_tag(manifest)}"


def _system_packages_step(manifest: Manifest) -> str:
    """The environment's steps installing the manifest's .deb files (none without any):
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
        # dpkg's log and ldconfig's cache hold the time and the files' inodes: every
        # build would differ; neither is read by what runs
        " && rm -rf /tmp/replay/debs /var/log/dpkg.log /var/cache/ldconfig/aux-cache \\\n"
        f" && mkdir -p {posixpath.dirname(SYSTEM_PACKAGES_PATH)} \\\n"
        f" && printf '%s\\n' {listed} > {SYSTEM_PACKAGES_PATH}\n"
    )


def _template(name: str) -> Template:
    return Template(resources.files("replay.images").joinpath(name).read_text())


def render_environment(manifest: Manifest) -> str:
    """The Containerfile of the manifest's environment image."""
    compiled = manifest.image.recipe >= 2  # older manifests' images hold no bytecode
    return _template(ENVIRONMENT_FILE).substitute(
        base=qualified(manifest.image.base),
        system_packages=_system_packages_step(manifest),
        compile=COMPILE_STEP if compiled else "",
    )


def environment_tag(manifest: Manifest, builder: str) -> str:
    """The environment image's tag: a hash of its Containerfile, of everything it copies
    and of the `builder` (`buildah 1.28.2`), so manifests with the same base, lock and
    packages share it, and another builder's is never taken for this one's."""
    environment = manifest.environment
    inputs = {
        "builder": builder,
        "containerfile": render_environment(manifest),
        "bytecode": sha256_bytes(
            resources.files("replay.images").joinpath(BYTECODE_SCRIPT).read_bytes()
        ),
        "lock": environment.lock_sha256,
        "wheels": sorted(wheel.sha256 for wheel in environment.wheels),
        "debs": sorted(package.sha256 for package in environment.system_packages),
    }
    return f"localhost/replay/environment:{sha256_bytes(canonical_json(inputs))[:16]}"


def render_deployment(manifest: Manifest, environment: str) -> str:
    """The Containerfile of the manifest's image, on its `environment` image."""
    env = {**manifest.runtime.env, **CONTAINER_ENV}
    return _template(DEPLOYMENT_FILE).substitute(
        manifest_id=manifest.manifest_id,
        environment=environment,
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


def remove_image(client: docker.DockerClient, image_id: str) -> bool:
    """Remove the image from the engine; whether it was. One already gone, or still used
    by a container, is left alone."""
    import docker

    try:
        client.images.remove(image_id, force=True)
    except (docker.errors.NotFound, docker.errors.APIError):
        return False
    return True


@dataclass(frozen=True)
class BuiltImage:
    image_id: str  # sha256 of the image's config: the same for every build with this builder
    repo_digest: str  # where the registry keeps it: `registry/replay/NAME@sha256:…`
    builder: str  # which builder made it (`buildah 1.28.2`): ids are promised for the same
    # whether this build brought it into the engine: a rebuild gives the very image (same
    # id) the engine may hold already, proven, which a failure must not take away
    arrived: bool = True


def build_image(
    client: docker.DockerClient,
    buildah: Buildah,
    manifest: Manifest,
    context: Path,
    registry: str,
    progress: Callable[[str], None] = lambda _: None,
    *,
    fresh: bool = False,
    check: Callable[[str, str], None] = lambda _id, _builder: None,
) -> BuiltImage:
    """Build the manifest's image from a prepared context (its environment image too,
    unless this machine has it and not `fresh`), let `check(image_id, builder)` refuse
    it before it leaves the builder, push it to `registry` and pull it into the engine
    by digest, tagged `image_tag(manifest)`. Whatever fails, nothing of the deployment's
    image is left in the builder, and nothing this build brought into the engine (an
    identical image the engine held before stays)."""
    import docker

    if not registry_answers(registry):  # found now, not after the whole build
        raise EnvironmentProblem(
            f"no registry answers at {registry}: builds hand their images to the engine "
            "through it; start one with `replay up` or set REPLAY_REGISTRY"
        )
    builder = buildah.version()
    environment = environment_tag(manifest, builder)
    if fresh or buildah.image_id(environment) is None:
        (context / ENVIRONMENT_FILE).write_text(render_environment(manifest))
        script = resources.files("replay.images").joinpath(BYTECODE_SCRIPT)
        (context / BYTECODE_SCRIPT).write_bytes(script.read_bytes())
        progress(f"environment {environment}")
        base = qualified(manifest.image.base)
        buildah.build(context, context / ENVIRONMENT_FILE, environment, base, progress)
    (context / DEPLOYMENT_FILE).write_text(render_deployment(manifest, environment))
    local = local_tag(manifest)
    repository = f"{registry}/replay/{manifest.name}"
    try:
        image_id = buildah.build(context, context / DEPLOYMENT_FILE, local, environment, progress)
        check(image_id, builder)
        digest = buildah.push(local, f"{repository}:{manifest.short_id}", progress)
    finally:  # the registry and the engine keep it; the builder keeps environments only
        buildah.remove(local)
    repo_digest = f"{repository}@{digest}"
    arrived = False  # nothing pulled yet
    try:
        arrived = not in_engine(client, image_id)
        progress(f"pulling {repo_digest[:60]} into the engine")
        pulled = client.images.pull(repo_digest)
        pulled.tag(image_tag(manifest))
    except docker.errors.DockerException as error:
        if arrived:
            remove_image(client, image_id)
        raise EnvironmentProblem(
            f"the engine could not pull the new image from {repository_of(repo_digest)}: {error}"
        ) from None
    if pulled.id != image_id:  # the engine would run other bytes than were built
        remove_image(client, pulled.id)
        raise IntegrityError(
            f"the engine holds the image built as {image_id[:19]} as {pulled.id[:19]}"
        )
    return BuiltImage(image_id, repo_digest, builder, arrived)


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
