"""The house rules of the package layout, checked on the source (no imports run)."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
# package name -> folder (pyproject's package-dir)
FOLDERS = {
    "replay": ROOT / "replay",
    "replay.cli": ROOT / "cli",
    "replay.images": ROOT / "images",
    "replay.manifests": ROOT / "manifests",
}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if package == "replay" and parts and parts[0] in {"cli", "images", "manifests"}:
                continue
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules `name` imports anywhere in its body (lazy imports too; not
    under TYPE_CHECKING, which never runs)."""
    tree = ast.parse(path.read_text())
    found = set()
    checking = {
        id(node)
        for stmt in ast.walk(tree)
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)
        for node in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {target for target in targets if target in known and target != name}
    return found


def test_no_import_cycle_inside_the_package():
    known = modules()
    graph = {name: imports(name, path, set(known)) for name, path in known.items()}
    visiting, done = [], set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join([*visiting, name])
        visiting.append(name)
        for target in sorted(graph[name]):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_imports_point_one_way():
    known = modules()
    lower = {"replay.manifests": 0, "replay.images": 1}
    for name, path in known.items():
        layer = next((rank for prefix, rank in lower.items() if name.startswith(prefix)), None)
        if layer is None:
            continue
        for target in imports(name, path, set(known)):
            if target == "replay.errors":
                continue  # the one leaf every layer raises
            target_layer = next(
                (rank for prefix, rank in lower.items() if target.startswith(prefix)), 2
            )
            assert target_layer <= layer, f"{name} imports {target}, a layer above it"


def test_the_top_of_replay_holds_only_its_leaves():
    top = sorted(path.name for path in (ROOT / "replay").glob("*.py"))
    assert len(top) <= 6, top


def test_the_cli_entry_only_assembles():
    assert len((ROOT / "cli" / "main.py").read_text().splitlines()) < 120


def test_the_library_never_imports_the_cli_and_rooms_keep_to_their_own():
    known = modules()
    # They share execution, ledger and stores, and call each other's public functions
    # only: what a room's package exports, never one of its modules.
    apart = ("replay.questions", "replay.web", "replay.history", "replay.ingestion")
    for name, path in known.items():
        targets = imports(name, path, set(known))
        if not name.startswith("replay.cli"):
            assert not any(t.startswith("replay.cli") for t in targets), name
        for room in apart:
            if name.startswith(room):
                others = [r for r in apart if r != room]
                inside = [t for t in targets for o in others if t.startswith(o + ".")]
                assert not inside, f"{name} imports {inside[0]}, inside another room"
