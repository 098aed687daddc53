"""Debian packages in images: apt pointed at the base image, the manifest's record, the
Containerfiles, the runner's fingerprint of them and the checks on it (no Docker, no
network: apt-get is a stand-in script where it would be called)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from replay.images import debian, runner
from replay.images.build import (
    check_fingerprint,
    environment_tag,
    remove_image,
    render_deployment,
    render_environment,
)
from replay.manifests.manifest import Manifest, SystemPackage

from replay.errors import BadInput, EnvironmentProblem, IntegrityError
from tests.factories import manifest_document

LIBGOMP = {
    "name": "libgomp1",
    "version": "12.2.0-14+deb12u1",
    "architecture": "amd64",
    "filename": "libgomp1_12.2.0-14+deb12u1_amd64.deb",
    "sha256": "8" * 64,
}
STATUS = textwrap.dedent(
    """\
    Package: dpkg
    Status: install ok installed
    Architecture: amd64
    Version: 1.21.22

    Package: libgomp1
    Status: install ok installed
    Architecture: amd64
    Multi-Arch: same
    Version: 12.2.0-14+deb12u1
    Description: GCC OpenMP (GOMP) support library
     a continuation line: not a field

    Package: gone
    Status: deinstall ok config-files
    Architecture: amd64
    Version: 1.0
    """
)


def with_packages(*packages: dict) -> Manifest:
    document = manifest_document()
    document["environment"]["system_packages"] = [dict(p) for p in packages]
    return Manifest(document)


# --- the manifest ---------------------------------------------------------------------


def test_a_manifest_without_system_packages_has_no_key_and_keeps_its_id():
    plain = Manifest(manifest_document())
    assert "system_packages" not in plain.document["environment"]
    assert plain.environment.system_packages == ()
    with_one = with_packages(LIBGOMP)
    assert with_one.environment.system_packages == (SystemPackage(**LIBGOMP),)
    assert with_one.manifest_id != plain.manifest_id


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda p: p.update(origin="debian"), "Additional properties"),
        (lambda p: p.pop("sha256"), "sha256"),
        (lambda p: p.update(filename="../../etc/passwd.deb"), "filename"),
        (lambda p: p.update(filename="libgomp1.tar"), "filename"),
        (lambda p: p.update(name="LibGomp"), "name"),
    ],
)
def test_the_schema_refuses_a_malformed_system_package(change, where):
    package = dict(LIBGOMP)
    change(package)
    with pytest.raises(BadInput, match=where):
        with_packages(package)


def test_assemble_manifest_omits_an_empty_list(tmp_path):
    from tests.unit.test_spec import manifest_of

    folder = tmp_path / "deployment"
    example = Path(__file__).parents[2] / "examples" / "credit" / "deployment"
    folder.mkdir()
    for name in ("replay.yaml", "requirements.in"):
        shutil.copy(example / name, folder / name)
    for name in ("model/model.joblib", "data/reference.csv"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text("stand-in")
    assert "system_packages" not in manifest_of(folder, tmp_path).document["environment"]


# --- the Containerfiles ----------------------------------------------------------------


def test_the_environment_installs_the_debs_only_when_there_are_some():
    plain = render_environment(Manifest(manifest_document()))
    assert "dpkg" not in plain and "debs/" not in plain
    text = render_environment(with_packages(LIBGOMP))
    assert "COPY debs/ /tmp/replay/debs/" in text
    assert "RUN dpkg -i /tmp/replay/debs/*.deb" in text
    assert "/var/log/dpkg.log /var/cache/ldconfig/aux-cache" in text  # differ per build
    assert "libgomp1:amd64 > /opt/replay/system-packages.txt" in text
    assert text.index("dpkg -i") < text.index("python3 -m venv")  # as root, before pip
    deployment = render_deployment(with_packages(LIBGOMP), "localhost/replay/environment:x")
    assert "dpkg" not in deployment and "USER 10001:10001" in deployment


def test_the_environment_depends_only_on_the_base_lock_and_packages():
    """Another manifest with the same requirements (here: another version, another
    commit) has the same environment image; other system packages another."""
    first = Manifest(manifest_document())
    second = Manifest(manifest_document(version="2.0"))
    assert first.manifest_id != second.manifest_id
    assert render_environment(first) == render_environment(second)
    assert first.manifest_id not in render_environment(first)
    builder = "buildah 1.28.2"
    assert environment_tag(first, builder) == environment_tag(second, builder)
    assert environment_tag(with_packages(LIBGOMP), builder) != environment_tag(first, builder)
    assert environment_tag(first, "buildah 1.29.0") != environment_tag(first, builder)


# --- the runner's fingerprint ----------------------------------------------------------


def fake_image(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A root with libgomp1 installed as dpkg records it; (listing, dpkg dir, root)."""
    root = tmp_path / "root"
    library = root / "usr/lib/x86_64-linux-gnu"
    library.mkdir(parents=True)
    (library / "libgomp.so.1.0.0").write_bytes(b"\x7fELF gomp")
    (library / "libgomp.so.1").symlink_to("libgomp.so.1.0.0")
    dpkg = tmp_path / "dpkg"
    (dpkg / "info").mkdir(parents=True)
    (dpkg / "status").write_text(STATUS)
    (dpkg / "info" / "libgomp1:amd64.list").write_text(
        "/.\n/usr\n/usr/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0\n"
        "/usr/lib/x86_64-linux-gnu/libgomp.so.1\n"
    )
    listing = tmp_path / runner.SYSTEM_PACKAGES_FILE
    listing.write_text("libgomp1:amd64\n")
    return listing, dpkg, root


def test_the_runner_reports_version_and_a_digest_of_installed_files(tmp_path):
    listing, dpkg, root = fake_image(tmp_path)
    found = runner.system_packages(str(listing), str(dpkg), str(root))
    content = hashlib.sha256(b"\x7fELF gomp").hexdigest()
    only_file = f"/usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0\0{content}\n".encode()
    assert found == {
        "libgomp1": {
            "version": "12.2.0-14+deb12u1",
            "architecture": "amd64",
            "files_sha256": hashlib.sha256(only_file).hexdigest(),  # the link is left out
        }
    }
    (root / "usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0").write_bytes(b"\x7fELF forged")
    assert runner.system_packages(str(listing), str(dpkg), str(root)) != found


def test_the_runner_leaves_out_what_dpkg_has_not_installed(tmp_path):
    listing, dpkg, root = fake_image(tmp_path)
    listing.write_text("libgomp1:arm64\ngone:amd64\nnever:amd64\n")
    assert runner.system_packages(str(listing), str(dpkg), str(root)) == {}
    assert runner.system_packages(str(tmp_path / "absent"), str(dpkg), str(root)) == {}


def test_the_runner_speaks_protocol_8_or_later_and_fingerprints_system_packages():
    from replay.images.container import PROTOCOLS

    assert int(runner.RUNNER_VERSION) >= 8 and {"8", runner.RUNNER_VERSION} <= PROTOCOLS
    assert "8 fingerprints the Debian packages" in " ".join((runner.__doc__ or "").split())


# --- the host's check of the fingerprint -----------------------------------------------


@pytest.fixture
def fingerprint() -> dict:
    return {
        "python": "3.11.2",
        "runner_sha256": "7" * 64,
        "distributions": {"joblib": "1.4.2", "numpy": "2.1.3"},
        "model_files": {"model/model.joblib": "2" * 64},
        "system_packages": {
            "libgomp1": {
                "version": "12.2.0-14+deb12u1",
                "architecture": "amd64",
                "files_sha256": "9" * 64,
            }
        },
    }


def test_an_image_with_the_manifests_packages_passes(fingerprint):
    check_fingerprint(with_packages(LIBGOMP), fingerprint)
    check_fingerprint(Manifest(manifest_document()), fingerprint)  # extra ones: the base's


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f["system_packages"].clear(), "lacks system package libgomp1 12.2.0-14"),
        (lambda f: f.pop("system_packages"), "lacks system package libgomp1"),
        (
            lambda f: f["system_packages"]["libgomp1"].update(version="12.2.0-14"),
            r"has system package libgomp1 12\.2\.0-14 \(amd64\), the manifest pins "
            r"12\.2\.0-14\+deb12u1",
        ),
        (
            lambda f: f["system_packages"]["libgomp1"].update(architecture="i386"),
            "libgomp1 .* \\(i386\\)",
        ),
    ],
)
def test_an_image_missing_a_package_or_at_another_version_is_refused(fingerprint, change, message):
    changed = copy.deepcopy(fingerprint)
    change(changed)
    with pytest.raises(IntegrityError, match=message):
        check_fingerprint(with_packages(LIBGOMP), changed)


# --- apt, pointed at the base image -----------------------------------------------------


def test_the_base_image_is_read_from_its_os_release_and_dpkg_status():
    fields = debian.parse_os_release('ID=debian\nVERSION_CODENAME=bookworm\nNAME="Debian"\n')
    assert fields == {"ID": "debian", "VERSION_CODENAME": "bookworm", "NAME": "Debian"}
    assert debian.native_architecture(STATUS) == "amd64"
    assert debian.native_architecture("Package: bash\nArchitecture: arm64\n") is None


def test_apt_reads_none_of_the_hosts_sources_preferences_or_keys(tmp_path):
    options = debian.apt_options(
        tmp_path, tmp_path / "lists", tmp_path / "archives", "arm64", debian.KEYRING
    )
    given = dict(option.split("=", 1) for option in options[1::2])
    assert given["Dir::State::status"] == str(tmp_path / "status")
    assert (
        given["Dir::Etc::SourceParts"] == given["Dir::Etc::TrustedParts"] == str(tmp_path / "empty")
    )
    assert given["Dir::Etc::PreferencesParts"] == str(tmp_path / "empty")
    assert given["APT::Architecture"] == given["APT::Architectures"] == "arm64"
    assert given["APT::Install-Recommends"] == "false"
    sources = debian.sources_list("trixie", "http://mirror/debian", None, Path("/k.gpg"))
    assert sources == (
        "deb [signed-by=/k.gpg] http://mirror/debian trixie main\n"
        "deb [signed-by=/k.gpg] http://mirror/debian trixie-updates main\n"
    )


def test_the_simulated_install_names_every_package_with_its_version():
    lines = [
        "The following NEW packages will be installed:",
        "Inst libgomp1 (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])",
        "Inst gcc-12-base [12.2.0-14] (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])",
        "Inst fonts-dejavu-core (2.37-6 Debian:12.15/oldstable [all])",
        "Conf libgomp1 (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])",
    ]
    assert debian.planned_installs(lines) == [
        ("libgomp1", "12.2.0-14+deb12u1", "amd64"),
        ("gcc-12-base", "12.2.0-14+deb12u1", "amd64"),
        ("fonts-dejavu-core", "2.37-6", "all"),
    ]
    assert debian.deb_filename("libc6", "2.36-9", "amd64") == "libc6_2.36-9_amd64.deb"
    assert debian.deb_filename("tzdata", "1:2024a-0", "all") == "tzdata_1%3a2024a-0_all.deb"


FAKE_APT = """\
#!/bin/sh
# apt-get as this test needs it: arguments are logged, `update` succeeds, an install
# plans what PLAN says (or fails as apt does for an unknown package) and a download
# copies the prepared .deb into Dir::Cache::archives.
echo "$@" >> "{log}"
archives=""
for argument in "$@"; do
  case "$argument" in Dir::Cache::archives=*) archives="${{argument#*=}}";; esac
done
case "$*" in
  *" update"*) echo "Hit:1 http://mirror bookworm InRelease"; exit 0;;
  *nosuchpkg*) echo "E: Unable to locate package nosuchpkg"; exit 100;;
  *--simulate*) cat "{plan}"; exit 0;;
  *--download-only*) cp "{deb}" "$archives/"; echo "Download complete"; exit 0;;
esac
exit 1
"""


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """apt-get replaced by a script on PATH, the base image by a stand-in release, and a
    real .deb (made with dpkg-deb) for it to "download"."""
    package = tmp_path / "package"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN" / "control").write_text(
        "Package: libdemo1\nVersion: 1:2.0-1\nArchitecture: amd64\n"
        "Maintainer: t <t@t>\nDescription: demo\n"
    )
    deb = tmp_path / "libdemo1_1%3a2.0-1_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(package), str(deb)],
        check=True,
        capture_output=True,
    )
    plan = tmp_path / "plan"
    plan.write_text("Inst libdemo1 (1:2.0-1 Debian:12 [amd64])\n")
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    log = tmp_path / "apt.log"
    script = bin_folder / "apt-get"
    script.write_text(FAKE_APT.format(log=log, plan=plan, deb=deb))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_folder}:{Path(shutil.which('dpkg-deb') or '').parent}")
    monkeypatch.setattr(debian, "KEYRING", tmp_path / "keyring.gpg")
    (tmp_path / "keyring.gpg").write_bytes(b"keys")
    release = debian.BaseRelease("bookworm", "amd64", STATUS.encode())
    monkeypatch.setattr(debian, "base_release", lambda client, image: release)
    return SimpleNamespace(deb=deb, plan=plan, log=log, cache=tmp_path / "cache")


def test_fetched_debs_are_described_from_their_own_control_fields(fake_apt):
    debs = debian.fetch_debs(None, "base@sha256:" + "0" * 64, ("libdemo1",), fake_apt.cache)
    assert debs == [
        {
            "name": "libdemo1",
            "version": "1:2.0-1",
            "architecture": "amd64",
            "filename": "libdemo1_1%3a2.0-1_amd64.deb",
            "sha256": hashlib.sha256(fake_apt.deb.read_bytes()).hexdigest(),
        }
    ]
    calls = fake_apt.log.read_text()
    assert "Dir::State::status=" in calls and "Dir::Etc::SourceParts=" in calls
    assert (fake_apt.cache / "archives" / "libdemo1_1%3a2.0-1_amd64.deb").is_file()


def test_a_package_already_in_the_base_needs_no_deb(fake_apt):
    fake_apt.plan.write_text("libc6 is already the newest version (2.36-9).\n")
    assert debian.fetch_debs(None, "base", ("libc6",), fake_apt.cache) == []
    assert "--download-only" not in fake_apt.log.read_text()


def test_an_unknown_package_is_one_line_naming_it(fake_apt):
    with pytest.raises(BadInput, match="system package nosuchpkg is not in Debian bookworm"):
        debian.fetch_debs(None, "base", ("libdemo1", "nosuchpkg"), fake_apt.cache)


def test_a_package_that_would_remove_part_of_the_base_is_refused(fake_apt):
    fake_apt.plan.write_text("Remv libssl3 [3.0.11-1]\nInst libdemo1 (1:2.0-1 D [amd64])\n")
    with pytest.raises(BadInput, match="would remove libssl3"):
        debian.fetch_debs(None, "base", ("libdemo1",), fake_apt.cache)


def test_a_host_without_apt_is_an_environment_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match="need apt-get on this machine"):
        debian.fetch_debs(None, "base", ("libgomp1",), tmp_path)
    assert debian.fetch_debs(None, "base", (), tmp_path) == []  # none asked: apt not needed


# --- the build's context and its leftovers ---------------------------------------------


def test_a_deb_whose_stored_bytes_changed_is_refused_naming_it(tmp_path):
    from replay.deployments.building import _deb_checked
    from replay.stores.blobs import LocalBlobStore

    deb = tmp_path / "libdemo1_1.0_amd64.deb"
    deb.write_bytes(b"!<arch>\ndemo")
    blobs = LocalBlobStore(tmp_path / "blobs")
    digest = blobs.put(deb)
    package = SystemPackage("libdemo1", "1.0", "amd64", deb.name, digest)
    settings = SimpleNamespace(cache=tmp_path / "cache")
    _deb_checked(package, blobs, settings, tmp_path / "context" / deb.name)  # type: ignore[arg-type]
    assert (tmp_path / "context" / deb.name).read_bytes() == deb.read_bytes()

    blobs.path(digest).write_bytes(b"!<arch>\nforged")
    with pytest.raises(IntegrityError, match=f"system package {deb.name} in the blob store"):
        _deb_checked(package, blobs, settings, tmp_path / "again" / deb.name)  # type: ignore[arg-type]

    missing = SystemPackage("libgone", "1.0", "amd64", "libgone_1.0_amd64.deb", "e" * 64)
    with pytest.raises(IntegrityError, match=r"system package libgone_1\.0_amd64\.deb .* not in"):
        _deb_checked(missing, blobs, settings, tmp_path / "more" / "x.deb")  # type: ignore[arg-type]


class FakeImages:
    def __init__(self, gone: set[str]) -> None:
        self.gone, self.removed = gone, []

    def remove(self, image: str, force: bool) -> None:
        import docker

        if image in self.gone:
            raise docker.errors.NotFound(image)
        self.removed.append(image)


def test_an_image_already_gone_is_no_error():
    images = FakeImages(gone={"b"})
    engine = SimpleNamespace(images=images)
    assert remove_image(engine, "a") is True  # type: ignore[arg-type]
    assert remove_image(engine, "b") is False  # type: ignore[arg-type]
    assert images.removed == ["a"]


def test_a_failed_build_is_listed_as_failed_with_its_reason():
    from replay.stores.manifests import DeploymentRecord

    record = DeploymentRecord(
        "a" * 64, "lgbm", "1", "2026-01-01", "c" * 40, False, "base", None, "run"
    )
    assert record.status == "not built" and record.to_dict()["build_failure"] is None
    failed = dataclasses.replace(record, build_failure="the deployment failed to load: OSError")
    assert failed.to_dict()["status"] == "failed"
    assert dataclasses.replace(record, image_id="sha256:1").status == "built"
