"""The runner that lives inside every replay image.

It runs in the deployment's own Python with only the standard library and the
deployment's locked packages: it must import nothing from the replay project.

Protocol (JSON Lines; stdout carries only protocol lines, the deployment's own prints
go to stderr):

    out  {"type": "hello", "runner": "5", "python": "3.11.2", "fingerprint": {...}}
    in   {"type": "load", "seed": 1729}
                                   (sent once the host has checked the fingerprint:
                                    no deployment code or model runs before that; the
                                    manifest's seed is set just before `load()`)
    out  {"type": "ready"}         (or with "error" when the entrypoint cannot be loaded)
    in   {"id": "r1", "inputs": {...}, "seed": 42}
    out  {"id": "r1", "outputs": {...}}   or   {"id": "r1", "error": {"type", "message"}}
    in   {"id": "r2", "rows": 3, "columns": {"income": [1, 2, 3]}, "shared": {...}, "seed": 42}
    out  {"id": "r2", "columns": {"score": [...], ...}}
    in   {"id": "r3", "rows": 2, "columns": {...}, "shared": {...}, "seeds": [42, 7]}
                                   (a seed per row: logged decisions replayed in one batch)
    in   {"id": "r4", "rows": 2, "columns": {...}, "seed": 42, "alone": true}
                                   (every row through `predict`, as its single request)
    in   {"id": "r5", "rows": 64, "columns": {"income": {"f8": "AAAAAABq6EA..."}},
          "shared": {...}, "seed": 42, "pack": true}
    out  {"id": "r5", "columns": {"decision": {"strings": ["approved", "rejected"],
          "index": "AAAAAAEAAAA..."}, "score": {"f8": "..."}, "audit": {"b1": "..."}}}
                                   (columns packed: see `pack_column`)
    in   {"id": "r6", "describe": true}
    out  {"id": "r6", "model": [{"name": "_pipeline", "class": "Pipeline", ...}]}

A batch travels by column: each field that varies is one list, the fields every row
has in common are sent once in "shared" (a 10,000-point sweep of two features sends
two lists, not 10,000 objects), and the outputs come back the same way. The runner
makes the rows (shared fields first) and answers each row exactly as a single request
with the batch's seed would be answered, random draws included: a sweep's variants
are the same decision with edited inputs, so five identical rows get five identical
answers. How, fastest first:
- a `predict_batch(rows, seeds)` gets one seed per row and promises to draw row i's
  random numbers as if the process had just been seeded with seeds[i] (for example
  from `random.Random(seeds[i])`);
- a `predict_batch(rows)` is called once, seeded; if it drew no random number (the
  global generators of random, numpy and torch, the ones the runner seeds, are where
  they were) its answers stand, else the batch is answered again row by row;
- otherwise `predict` row by row, reseeded before each row.
A batch marked `alone` skips `predict_batch` and goes row by row: a model's batch
arithmetic is not always its single-row arithmetic (a BLAS kernel chosen by matrix shape
and CPU can change the last bit of a score), so only a deployment that declares
`batch_exact`, checked on its reference sample, has its rows batched.

Each request is seeded before the deployment's code runs (`random`, and numpy or torch
when the deployment imported them), so a replay with the logged seed takes the same
random draws; so is `load()`, with the manifest's seed, so a model that draws random
numbers while loading loads the same way in every container. Floats are written as
Python's shortest round-trip repr. A failing request answers with an error and the
loop goes on.

Versions: 2 sent batches by column; 3 adds the seed to `load`; 4 seeds every row of a
batch (before, a batch was seeded once and its random draws ran on from row to row); 5
fingerprints content: every file of the source and of the installed environment; 6 takes
a seed per row of a batch (`seeds`), so decisions made with different seeds are
replayed in one batch, each row answered as its single request would be; 7 answers a
batch `alone` (row by row through `predict`) and describes the loaded model; 8
fingerprints the Debian packages the build installed from the manifest's `.deb` files
(`system_packages`: each one's version, architecture and a sha256 over its installed
regular files, as dpkg lists them); 9 takes and, asked with `pack`, answers columns
packed (numbers as their bytes, repeated strings once), and keeps the loaded model out of
the garbage collector's full passes.

    python runner.py --fingerprint   print only the fingerprint, as one JSON line
"""

from __future__ import annotations

import array
import base64
import csv
import gc
import hashlib
import importlib
import inspect
import io
import json
import os
import platform
import random
import sys
from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the runner must start on any Python from 3.7
    from collections.abc import Callable, Mapping
    from typing import TextIO

RUNNER_VERSION = "9"
# Beside the runner, written by the build: the Debian packages it installed (`name:arch`
# a line). The manifest names them, so the image is asked about exactly those.
SYSTEM_PACKAGES_FILE = "system-packages.txt"
DPKG_DIR = "/var/lib/dpkg"
DESCRIBED_DEPTH = 4  # pipelines inside pipelines are described this many levels down


def deployment_dir() -> str:
    """Where the image keeps the deployment (source, model, reference sample)."""
    return os.environ.get("REPLAY_DEPLOYMENT_DIR", "/opt/deployment")


def model_dir() -> str:
    return os.path.join(deployment_dir(), "model")


def environment_dir() -> str:
    """The installed environment (the image's venv: the Python running this)."""
    return os.environ.get("REPLAY_ENVIRONMENT_DIR", sys.prefix)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tree(root: str, skip: str | None = None) -> dict[str, str]:
    """Every file under `root` (but the `skip` folder) by relative path: its sha256, or
    where a symbolic link points (a link is not followed out of the tree)."""
    files = {}
    for folder, folders, names in os.walk(root):
        folders[:] = [f for f in folders if os.path.join(folder, f) != skip]
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            files[relative] = "link:" + os.readlink(path) if os.path.islink(path) else _sha256(path)
    return files


SITE_FOLDERS = ("site-packages", "dist-packages")


def _record_sha256(text: str) -> str | None:
    """A RECORD hash (`sha256=` urlsafe base64 without padding) as hex; None if absent."""
    algorithm, _, value = text.partition("=")
    if algorithm != "sha256" or not value:
        return None
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()


def recorded_files(records: Mapping[str, str]) -> dict[str, tuple[str, str | None]]:
    """Every file the RECORDs list (`records`: each RECORD's text by its path relative
    to the environment), by path: its distribution and the sha256 it gives (hex)."""
    listed = {}
    for relative, text in sorted(records.items()):
        folder = os.path.dirname(relative)
        distribution = os.path.basename(folder).split("-")[0].lower().replace("_", "-")
        site = os.path.dirname(folder)
        for row in csv.reader(io.StringIO(text)):
            if row:
                path = os.path.normpath(os.path.join(site, row[0]))
                listed[path] = (distribution, _record_sha256(row[1]) if len(row) > 1 else None)
    return listed


def is_record(relative: str) -> bool:
    """A distribution's RECORD: in a `.dist-info` folder directly in a site folder. One a
    package vendors inside its own folder (setuptools' copy of wheel, whose RECORD names
    a script it never installed) is a data file of that package, covered by its RECORD."""
    folder, name = os.path.split(relative)
    site = os.path.basename(os.path.dirname(folder))
    return name == "RECORD" and folder.endswith(".dist-info") and site in SITE_FOLDERS


def modified_files(
    files: Mapping[str, str], listed: Mapping[str, tuple[str, str | None]]
) -> list[str]:
    """The files whose content differs from the hash their RECORD gives (missing ones too)."""
    return sorted(
        path for path, (_, sha) in listed.items() if sha is not None and files.get(path) != sha
    )


def environment_content(root: str) -> dict[str, Any]:
    """Every installed file, checked against its distribution's RECORD: one digest per
    distribution (over its files' paths and contents, RECORD included), the files no
    RECORD lists with their sha256, and the files that differ from their RECORD hash."""
    files = _tree(root)
    records = {}
    for relative in files:
        if is_record(relative):
            with open(os.path.join(root, relative), newline="", encoding="utf-8") as handle:
                records[relative] = handle.read()
    listed = recorded_files(records)
    digests: dict[str, Any] = {}
    for path in sorted(listed):
        digest = digests.setdefault(listed[path][0], hashlib.sha256())
        digest.update(f"{path}\0{files.get(path, 'missing')}\n".encode())
    return {
        "distributions": {name: digest.hexdigest() for name, digest in sorted(digests.items())},
        "unrecorded": {path: sha for path, sha in sorted(files.items()) if path not in listed},
        "modified": modified_files(files, listed),
    }


def dpkg_status(text: str) -> dict[tuple[str, str], str]:
    """The version of each package dpkg's status file says is installed, by (name, arch)."""
    installed = {}
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            key, colon, value = line.partition(":")
            if colon and not line.startswith((" ", "\t")):
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            installed[(fields["Package"], fields.get("Architecture", ""))] = fields.get(
                "Version", ""
            )
    return installed


def installed_files_sha256(list_file: str, root: str = "/") -> str:
    """One sha256 over a package's installed regular files (paths and contents) as its
    dpkg `.list` names them; directories and symbolic links are left out."""
    with open(list_file, encoding="utf-8", errors="surrogateescape") as handle:
        paths = sorted({line.rstrip("\n") for line in handle if line.strip()})
    digest = hashlib.sha256()
    for path in paths:
        where = os.path.join(root, path.lstrip("/"))
        if os.path.isfile(where) and not os.path.islink(where):
            digest.update(f"{path}\0{_sha256(where)}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def system_packages(
    listing: str | None = None, dpkg_dir: str = DPKG_DIR, root: str = "/"
) -> dict[str, dict[str, str]]:
    """Each Debian package the build installed (`listing`, beside the runner by default):
    its installed version and architecture, and the sha256 of its files. A package dpkg
    does not have installed is left out, which the host refuses."""
    if listing is None:
        listing = os.path.join(os.path.dirname(os.path.abspath(__file__)), SYSTEM_PACKAGES_FILE)
    try:
        with open(listing, encoding="utf-8") as handle:
            wanted = [line.strip() for line in handle if line.strip()]
    except FileNotFoundError:
        return {}  # an image built without system packages
    with open(os.path.join(dpkg_dir, "status"), encoding="utf-8", errors="replace") as handle:
        installed = dpkg_status(handle.read())
    found = {}
    for entry in wanted:
        name, _, architecture = entry.partition(":")
        version = installed.get((name, architecture))
        if version is None:
            continue
        info = os.path.join(dpkg_dir, "info")
        candidates = [os.path.join(info, f"{name}:{architecture}.list")]
        candidates.append(os.path.join(info, f"{name}.list"))
        lists = [path for path in candidates if os.path.isfile(path)]
        found[name] = {
            "version": version,
            "architecture": architecture,
            "files_sha256": installed_files_sha256(lists[0], root) if lists else "no file list",
        }
    return dict(sorted(found.items()))


def fingerprint() -> dict[str, Any]:
    """What this image really contains: Python, installed distributions and every file
    of them, the deployment's source and model bytes, the runner."""
    from importlib import metadata  # only the fingerprint needs it: hosts import this too

    model_files = _tree(model_dir())
    source_files = _tree(deployment_dir(), skip=model_dir())
    distributions = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            distributions[name.lower().replace("_", "-").replace(".", "-")] = dist.version
    return {
        "runner": RUNNER_VERSION,
        "runner_sha256": _sha256(os.path.abspath(__file__)),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "distributions": dict(sorted(distributions.items())),
        "model_files": dict(sorted(model_files.items())),
        "source_files": dict(sorted(source_files.items())),
        "environment": environment_content(environment_dir()),
        "system_packages": system_packages(),
    }


# Packed columns (protocol 9). A batch's columns of numbers as JSON text cost more to
# write and parse than many models take to answer them (a 10,000-row sweep: about 12 ms
# of JSON against 110 ms of model), so a column whose values are all of one plain kind
# travels as base64 of its machine values, little-endian: float64 ("f8"), int64 ("i8"),
# booleans a byte each ("b1"), or strings as their distinct values and an index into
# them ("strings", "index": uint32, little-endian). A float's 8 bytes are its exact bits,
# as its JSON repr was; anything else (None among the values, mixed kinds, dicts,
# integers beyond 64 bits, strings mostly distinct) stays a JSON list.
PACK_AT_LEAST = 32  # rows: a short column stays readable JSON
_INT64 = (-(2**63), 2**63 - 1)
_INDEX = next(code for code in "IL" if array.array(code).itemsize == 4)


def _packed(code: str, values: Any) -> str:
    items = array.array(code, values)
    if sys.byteorder == "big":
        items.byteswap()
    return base64.b64encode(items.tobytes()).decode("ascii")


def packed_bytes(text: Any) -> bytes:
    """A packed column's bytes; anything but strict base64 text is refused."""
    if not isinstance(text, str):
        raise ValueError("a packed column's data is base64 text")
    return base64.b64decode(text, validate=True)  # binascii.Error is a ValueError


def packed_booleans(text: Any) -> bytes:
    """A boolean column's bytes, each 0 or 1."""
    data = packed_bytes(text)
    if data.translate(None, b"\x00\x01"):
        raise ValueError("a boolean column holds a byte other than 0 and 1")
    return data


def packed_strings(column: dict[str, Any]) -> list[str]:
    """A strings column's distinct values (its index is checked where it is read)."""
    strings = column.get("strings")
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        raise ValueError("a packed strings column needs a list of strings")
    return strings


def _unpacked(code: str, text: Any) -> list[Any]:
    items = array.array(code)
    items.frombytes(packed_bytes(text))
    if sys.byteorder == "big":
        items.byteswap()
    return items.tolist()


def pack_column(values: list[Any]) -> Any:
    """`values` packed when they are all floats, all integers, all booleans or all
    strings with repeats; else the list itself."""
    if len(values) < PACK_AT_LEAST:
        return values
    kinds = set(map(type, values))
    if len(kinds) != 1:
        return values
    kind = kinds.pop()
    if issubclass(kind, float):  # numpy's float64 too: the same 8 bytes
        return {"f8": _packed("d", values)}
    if kind is bool:
        return {"b1": base64.b64encode(bytes(values)).decode("ascii")}
    if kind is int and _INT64[0] <= min(values) and max(values) <= _INT64[1]:
        return {"i8": _packed("q", values)}
    if kind is str:
        distinct = list(dict.fromkeys(values))
        if len(distinct) * 2 <= len(values):
            position = {value: index for index, value in enumerate(distinct)}
            index = _packed(_INDEX, map(position.__getitem__, values))
            return {"strings": distinct, "index": index}
    return values


def unpack_column(column: Any) -> list[Any]:
    """A column as `pack_column` sent it, as the list it was."""
    if isinstance(column, list):
        return column
    if not isinstance(column, dict):
        raise ValueError("a column is a list or a packed column")
    if "f8" in column:
        return _unpacked("d", column["f8"])
    if "i8" in column:
        return _unpacked("q", column["i8"])
    if "b1" in column:
        return list(map(bool, packed_booleans(column["b1"])))
    if "strings" in column:
        strings = packed_strings(column)
        return list(map(strings.__getitem__, _unpacked(_INDEX, column.get("index"))))
    raise ValueError(f"unknown packed column {sorted(column)}")


def plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays the deployment may return."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def seed_everything(seed: int) -> None:
    """Seed `random`, and numpy and torch when the deployment has imported them."""
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def random_states() -> list[Any]:
    """Where the generators `seed_everything` seeds stand, to tell whether code drew."""
    states: list[Any] = [random.getstate()]
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        _, key, *rest = numpy.random.get_state()
        states.append((key.tobytes(), *rest))
    torch = sys.modules.get("torch")
    if torch is not None:
        states.append(bytes(torch.get_rng_state().tolist()))
    return states


def _takes_seeds(function: Callable[..., Any] | None) -> bool:
    if function is None:
        return False
    try:
        return "seeds" in inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin or C function without a signature
        return False


def _error(error: BaseException) -> dict[str, str]:
    return {"type": type(error).__name__, "message": str(error)[:1000]}


def _library(module_name: str, owners: Mapping[str, list[str]]) -> dict[str, str]:
    """The distribution a module comes from, and its version, where it can be told;
    `owners` maps top-level packages to their distributions."""
    from importlib import metadata

    root = module_name.split(".")[0]
    name = (owners.get(root) or [root])[0]
    try:
        return {"library": name, "version": metadata.version(name)}
    except metadata.PackageNotFoundError:
        return {"library": root}


def describe_object(value: Any, owners: Mapping[str, list[str]], depth: int = 0) -> dict[str, Any]:
    """A model object as a report names it: its class, the library and version it comes
    from, and the parts of a pipeline (`steps`, a column transformer's `transformers`)."""
    kind = type(value)
    described: dict[str, Any] = {"class": kind.__name__, **_library(kind.__module__, owners)}
    if depth >= DESCRIBED_DEPTH:
        return described
    for attribute in ("steps", "transformers_", "transformers"):
        parts = getattr(value, attribute, None)
        if isinstance(parts, list) and all(isinstance(p, tuple) and len(p) >= 2 for p in parts):
            described["parts"] = [
                {"name": str(part[0]), **describe_object(part[1], owners, depth + 1)}
                if not isinstance(part[1], str)
                else {"name": str(part[0]), "class": part[1]}  # "passthrough", "drop"
                for part in parts
            ]
            break
    return described


def describe_module(module: Any) -> list[dict[str, Any]]:
    """The model objects a deployment's module holds once loaded: its globals that are
    instances of classes from other packages (not modules, functions, classes or plain
    data)."""
    from importlib import metadata

    find_owners = getattr(metadata, "packages_distributions", None)  # Python 3.10 and later
    owners: Mapping[str, list[str]] = find_owners() if find_owners is not None else {}
    plain_types = (str, bytes, int, float, bool, list, dict, tuple, set, frozenset)
    found = []
    for name, value in sorted(vars(module).items()):
        kind = type(value)
        origin = kind.__module__.split(".")[0]
        if (
            value is None
            or inspect.ismodule(value)
            or inspect.isroutine(value)
            or inspect.isclass(value)
            or isinstance(value, plain_types)
            or origin in ("builtins", module.__name__.split(".")[0])
            or origin in getattr(sys, "stdlib_module_names", ())  # Python 3.10 and later
        ):
            continue
        found.append({"name": name, **describe_object(value, owners)})
    return found


class Deployment:
    """A deployment's predict functions, answering protocol requests."""

    def __init__(
        self,
        predict: Callable[[dict[str, Any]], Any],
        predict_batch: Callable[..., Any] | None = None,
        module: Any = None,
    ) -> None:
        self.predict = predict
        self.predict_batch = predict_batch
        self.batch_takes_seeds = _takes_seeds(predict_batch)
        self.module = module  # the entrypoint's module, described on request

    @classmethod
    def load(cls, entrypoint: str, models: str, seed: int) -> Deployment:
        """Import the entrypoint's module and call its `load(models)`, seeded first."""
        module_name, function_name = entrypoint.split(":")
        module = importlib.import_module(module_name)
        load = getattr(module, "load", None)
        if load is not None:
            seed_everything(seed)  # after the import, so numpy is seeded when present
            load(models)
        return cls(getattr(module, function_name), getattr(module, "predict_batch", None), module)

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("describe"):
            return {"model": describe_module(self.module) if self.module is not None else []}
        if "columns" in request:
            return {"columns": self.answer_batch(request)}
        seed_everything(request["seed"])
        outputs = self.predict(request["inputs"])
        if not isinstance(outputs, dict):
            raise TypeError(f"predict returned {type(outputs).__name__}, not a dict")
        return {"outputs": outputs}

    def answer_batch(self, request: dict[str, Any]) -> dict[str, list[Any]]:
        count, shared = request["rows"], request.get("shared", {})
        columns = {name: unpack_column(values) for name, values in request["columns"].items()}
        if any(len(values) != count for values in columns.values()):
            raise ValueError(f"every column must hold {count} values")
        copy = dict(shared).copy  # rows filled a column at a time: the fastest way
        rows = [copy() for _ in range(count)]
        for name, values in columns.items():
            for row, value in zip(rows, values):
                row[name] = value
        if "seeds" in request:
            seeds = [int(seed) for seed in request["seeds"]]
            if len(seeds) != count:
                raise ValueError(f"a batch of {count} rows needs {count} seeds, not {len(seeds)}")
        else:
            seeds = [int(request["seed"])] * count
        if request.get("alone"):
            outputs = self.row_by_row(rows, seeds)
        else:
            outputs = self.batch_outputs(rows, seeds)
        if not outputs:
            return {}
        fields = list(outputs[0]) if isinstance(outputs[0], dict) else []
        pack = pack_column if request.get("pack") else None
        try:
            if (
                fields
                and all(issubclass(kind, dict) for kind in set(map(type, outputs)))
                and set(map(len, outputs)) == {len(fields)}
            ):
                answered = {field: list(map(itemgetter(field), outputs)) for field in fields}
                return {f: pack(v) for f, v in answered.items()} if pack else answered
        except KeyError:
            pass
        raise TypeError("predict_batch must return dicts that all have the same fields")

    def batch_outputs(self, rows: list[dict[str, Any]], seeds: list[int]) -> list[Any]:
        """Each row's outputs as a single request with its seed would give them."""
        if self.predict_batch is None or not rows:
            return self.row_by_row(rows, seeds)
        seed_everything(seeds[0])
        if self.batch_takes_seeds:
            outputs = list(self.predict_batch(rows, seeds=seeds))
        else:
            before = random_states()
            outputs = list(self.predict_batch(rows))
            if random_states() != before:
                return self.row_by_row(rows, seeds)  # it drew: each row needs its own seed
        if len(outputs) != len(rows):
            raise ValueError(f"predict_batch answered {len(outputs)} of {len(rows)} rows")
        return outputs

    def row_by_row(self, rows: list[dict[str, Any]], seeds: list[int]) -> list[Any]:
        outputs = []
        for row, seed in zip(rows, seeds):
            seed_everything(seed)
            outputs.append(self.predict(row))
        return outputs


def serve(entrypoint: str, stdin: TextIO, protocol: TextIO, *, freeze: bool = False) -> int:
    """Answer the protocol on `stdin` until it ends. With `freeze` (the runner's own
    process), the loaded deployment is frozen out of the garbage collector."""

    def send(document: dict[str, Any]) -> None:
        protocol.write(json.dumps(document, default=plain, sort_keys=True) + "\n")
        protocol.flush()

    send(
        {
            "type": "hello",
            "runner": RUNNER_VERSION,
            "python": platform.python_version(),
            "fingerprint": fingerprint(),
        }
    )
    first = stdin.readline()
    command = json.loads(first) if first.strip() else {}
    if command.get("type") != "load":
        return 0  # the host looked at the fingerprint and chose not to go on
    try:
        deployment = Deployment.load(entrypoint, model_dir(), int(command.get("seed", 0)))
    except BaseException as error:  # reported, never a traceback
        send({"type": "ready", "error": _error(error)})
        return 1
    send({"type": "ready"})
    if freeze:
        # The model and its libraries live as long as the process: frozen out of the
        # collector, a full collection (which a large batch's row dicts set off) no
        # longer walks them all, about a tenth of a 10,000-row sweep's time otherwise.
        gc.collect()  # loading's own garbage first: frozen, it would stay for good
        gc.freeze()
    for line in stdin:
        if not line.strip():
            continue
        request_id = None
        try:
            request = json.loads(line)
            request_id = request.get("id")
            send({"id": request_id, **deployment.answer(request)})
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # SystemExit too: the loop goes on
            send({"id": request_id, "error": _error(error)})
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--fingerprint"]:
        sys.stdout.write(json.dumps(fingerprint(), sort_keys=True) + "\n")
        return 0
    if len(argv) == 3 and argv[1] == "--serve":
        # Keep a private copy of stdout for the protocol and point fd 1 at stderr, so
        # nothing the deployment prints (even from C) can corrupt a protocol line.
        protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        return serve(argv[2], sys.stdin, protocol, freeze=True)
    sys.stderr.write("usage: runner.py --fingerprint | --serve module:function\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
