"""The same bits on any x86-64 CPU: a deployment's numeric kernels are pinned at capture,
and its answers are compared on two CPUs that QEMU's user mode emulates on this machine
(whatever this machine's own CPU), with the pin and without it (`kernels: native`)."""

from __future__ import annotations

import platform
import shutil

import pytest

from tests.integration.conftest import committed_fixture, unavailable

# SSE4.2 and AVX without AVX2: OpenBLAS and numpy pick other kernels on each. QEMU 7.2
# emulates both faithfully (its AVX2 gives NaN in OpenBLAS's Haswell kernels).
CPUS = ("Nehalem", "SandyBridge")

# Not a missing component: on another architecture there is nothing to pin, so this
# skips under CI=true too (the emulator, a component, fails there when missing).
pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64",
    reason="the pinned kernels are x86-64's: nothing to test on this CPU, under CI too",
)


@pytest.fixture(scope="module")
def emulator():
    if shutil.which("qemu-x86_64-static") is None:
        unavailable("QEMU's user mode is not installed (Debian: qemu-user-static)")


def captured_kernels(tmp_path_factory, kernels: str):
    import replay

    edit = ("replay.yaml", "seeds:", f"kernels: {kernels}\nseeds:")
    manifest = replay.capture(committed_fixture("kernels", tmp_path_factory, [edit]))
    replay.build(manifest.manifest_id)
    return manifest


def scores(manifest, cpu: str | None) -> list[float]:
    """The deployment's score for every reference row, decided on `cpu` (None: this
    machine's own)."""
    from replay.images.container import Sandbox

    from replay.execution.warm import WarmDeployment
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    store = manifest_store(load_settings())
    rows = manifest.schema.read_rows(store.reference_sample(manifest))
    sandbox = Sandbox(cpu=cpu, start_timeout=300, request_timeout=300)
    with WarmDeployment(manifest.manifest_id, sandbox=sandbox) as deployment:
        return [deployment.predict(row, manifest.runtime.seed)["score"] for row in rows]


def test_pinned_kernels_give_the_same_bits_on_other_cpus(registry, emulator, tmp_path_factory):
    pinned = captured_kernels(tmp_path_factory, "baseline")
    native = captured_kernels(tmp_path_factory, "native")
    assert pinned.runtime.env["OPENBLAS_CORETYPE"] == "Prescott"
    assert "OPENBLAS_CORETYPE" not in native.runtime.env

    # without the pin, each CPU's kernels: the last bits differ
    unpinned = [scores(native, cpu) for cpu in CPUS]
    assert unpinned[0] != unpinned[1]
    assert all(abs(a - b) < 1e-12 for a, b in zip(*unpinned, strict=True))  # last bits only

    # with it, both emulated CPUs and this machine's own give the same bits
    here = scores(pinned, None)
    assert [scores(pinned, cpu) for cpu in CPUS] == [here, here]
