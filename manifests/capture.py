"""Assemble a Manifest v1 from the facts gathered at capture.

This module decides *what* goes into a manifest; gathering the facts that need the
engine or the network (base digest, wheels, engine version) is the caller's job.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from replay.manifests.canonical import sha256_bytes, sha256_file
from replay.manifests.manifest import IMAGE_RECIPE, SCHEMA_VERSION, Manifest
from replay.manifests.source import SourceState
from replay.manifests.spec import DeploymentSpec

from replay.errors import BadInput

# Pinned so a float computed today is computed the same way in every replay: the
# deployment's declared number of BLAS/OpenMP threads (summation order), MKL's
# conditional numerical reproducibility, a fixed hash seed and time zone.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


# The numeric kernels of x86-64 images, pinned to code every x86-64 CPU runs (SSE3):
# OpenBLAS and numpy otherwise pick kernels by the CPU they find (AVX2, AVX-512), whose
# results differ in the last bit, so a decision made on one server would not replay bit
# for bit on another. OpenBLAS's oldest x86-64 kernels; numpy 2's dispatch limited to
# its baseline; PyTorch's and oneDNN's vector code likewise (MKL: MKL_CBWR above).
KERNEL_PINS = {
    "x86_64": {
        "OPENBLAS_CORETYPE": "Prescott",
        "NPY_ENABLE_CPU_FEATURES": "SSE SSE2 SSE3",
        "ATEN_CPU_CAPABILITY": "default",
        "DNNL_MAX_CPU_ISA": "SSE41",
    },
}


def machine_of(architecture: str) -> str:
    """The engine's architecture (`amd64`, `x86_64`, `arm64`) as the kernel names it."""
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(architecture, architecture)


def runtime_env(threads: int, architecture: str = "", kernels: str = "baseline") -> dict[str, str]:
    """The environment every container of a new manifest runs with."""
    pins = KERNEL_PINS.get(machine_of(architecture), {}) if kernels == "baseline" else {}
    return {
        "PYTHONHASHSEED": "0",
        **dict.fromkeys(THREAD_VARIABLES, str(threads)),
        "MKL_CBWR": "COMPATIBLE",
        **pins,
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def image_platforms(architecture: str) -> list[str]:
    """Wheel platform tags the image can install (glibc 2.17 up to Debian 12's 2.36)."""
    arch = machine_of(architecture)
    return [f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)] + [
        f"manylinux2014_{arch}"
    ]


def cpu_facts() -> dict[str, Any]:
    """The CPU model and flags: a float divergence on another CPU can then be explained."""
    model, flags = platform.processor() or platform.machine(), list[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = sorted(value.split())
    except OSError:
        pass
    return {"model": model, "flags": flags}


def model_file_facts(
    spec: DeploymentSpec, dvc_remote: tuple[str | None, str | None]
) -> list[dict[str, Any]]:
    """sha256 and size of each model file; the DVC md5 and remote where DVC tracks it."""
    files = []
    for relative in spec.model:
        path = spec.root / relative
        tracked = Path(f"{path}.dvc")
        dvc = None
        if tracked.is_file():
            outs = (yaml.safe_load(tracked.read_text()) or {}).get("outs") or [{}]
            md5 = outs[0].get("md5")
            if not md5:
                raise BadInput(f"{tracked} records no md5; run `dvc add {relative}` again")
            name, url = dvc_remote
            dvc = {"md5": md5, "remote": name, "remote_url": url}
        files.append(
            {"path": relative, "sha256": sha256_file(path), "size": path.stat().st_size, "dvc": dvc}
        )
    return files


def assemble_manifest(
    *,
    spec: DeploymentSpec,
    source: SourceState,
    archive: Path,
    model_files: list[dict[str, Any]],
    lock_text: str,
    python: str,
    platforms: list[str],
    wheels: list[dict[str, str]],
    base_image: str,
    requested_base: str,
    runner: Path,
    engine: dict[str, Any],
    model_source: dict[str, Any] | None = None,
    system_packages: list[dict[str, str]] | None = None,
    created_at: datetime | None = None,
) -> Manifest:
    reference = spec.root / spec.reference_sample
    with open(reference, newline="") as handle:
        rows = max(sum(1 for _ in handle) - 1, 0)
    if rows < 1:
        raise BadInput(f"reference sample {spec.reference_sample} has no rows")
    environment: dict[str, Any] = {
        "python": python,
        "platforms": platforms,
        "lock": lock_text,
        "lock_sha256": sha256_bytes(lock_text.encode()),
        "wheels": wheels,
    }
    if system_packages:  # absent, not empty: manifests without any keep their ids
        environment["system_packages"] = sorted(
            system_packages, key=lambda package: (package["name"], package["architecture"])
        )
    document = {
        "schema_version": SCHEMA_VERSION,
        "name": spec.name,
        "version": spec.version,
        "created_at": (created_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "code": {
            "repository": source.repository,
            "subdirectory": source.subdirectory,
            "commit": source.commit,
            "dirty": source.dirty,
            "archive_sha256": sha256_file(archive),
            "archive_size": archive.stat().st_size,
            "entrypoint": spec.entrypoint,
        },
        # where a model captured from MLflow came from (absent for a folder deployment)
        "model": {"files": model_files, **({"source": model_source} if model_source else {})},
        "environment": environment,
        "image": {
            "base": base_image,
            "requested_base": requested_base,
            "runner_sha256": sha256_file(runner),
            "recipe": IMAGE_RECIPE,
        },
        "runtime": {
            "seeds": spec.seeds,
            "threads": spec.threads,
            "batch_exact": spec.batch_exact,
            "env": runtime_env(spec.threads, engine.get("architecture", ""), spec.kernels),
            "cpu": cpu_facts(),
            "engine": engine,
        },
        "io": spec.io,
        "reference": {
            "path": spec.reference_sample,
            "sha256": sha256_file(reference),
            "rows": rows,
        },
    }
    return Manifest(document)
