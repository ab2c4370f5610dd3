"""The package's shape, read from its source: stages that import one way and no import
circle (both also through imports inside functions), no module over 500 lines, every
name imported from the module that defines it."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Dict, List, Set

import pytest

from conftest import REPO

PACKAGE = REPO / "pydarknet"
MAX_LINES = 500
EXTENSION = "pydarknet._darknet"  # compiled: binding.py imports it
BUILT = ("darknet_data", "darknet_patches")  # copied in by the build (upstream's files, the series)


def sources() -> List[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in BUILT]


def modules() -> Dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package is its __init__)."""
    found = {}
    for path in sources():
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _base(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` names, with relative levels resolved."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: Dict[str, Path]) -> Dict[str, Set[str]]:
    """Modules of the package that ``name`` imports, anywhere in it -> the names it takes
    from each (empty for ``import x``)."""
    found: Dict[str, Set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    found.setdefault(alias.name, set())
        elif isinstance(node, ast.ImportFrom):
            base = _base(name, path, node)
            for alias in node.names:
                if f"{base}.{alias.name}" == EXTENSION:
                    continue
                if f"{base}.{alias.name}" in known:  # a submodule
                    found.setdefault(f"{base}.{alias.name}", set())
                elif base in known:
                    found.setdefault(base, set()).add(alias.name)
    return found


def defined_names(path: Path) -> Set[str]:
    """Names a module binds at top level other than by importing them."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def test_no_import_circle():
    known = modules()
    graph = {name: set(imports(name, path, known)) - {name} for name, path in known.items()}
    circles: List[List[str]] = []
    state: Dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: List[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                circles.append(trail[trail.index(other):] + [other])
            elif other not in state:
                visit(other, trail + [other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


# The stages, each importing only from those before it (deferred imports included).
# Shared helpers without pydarknet imports of their own above them sit at the bottom;
# the package's __init__ (the public names, loaded on first use) may name any module.
STAGES = [
    ("errors", "limits", "atomic", "cache", "cpus"),  # shared helpers
    ("source",),  # upstream's tree and our patches (build time)
    ("formats",),  # file formats: Darknet, Caffe, ONNX, preprocessing
    ("binding",),  # the compiled extension
    ("runtime",),  # Network, images, layers, drawing, results
    ("transforms",),  # folding, converters, exporter
    ("api",),  # the zoo (which converts), predict/detect/classify, streams, export_onnx
    ("ray",),  # Ray Data on the API
    ("cli", "__main__", "fold_bn", "caffe2darknet", "onnx2darknet", "darknet2onnx"),  # the command line
]


def stage(module: str) -> int:
    part = module.split(".")[1]
    return next(i for i, names in enumerate(STAGES) if part in names)


def test_stages_point_one_way():
    known = modules()
    back = []
    for name, path in known.items():
        if name == "pydarknet":
            continue
        for other in imports(name, path, known):
            if other != "pydarknet" and stage(other) > stage(name):
                back.append(f"{name} ({STAGES[stage(name)][0]}) imports {other} ({STAGES[stage(other)][0]})")
    assert not back, "imports against the stage order: " + "; ".join(sorted(back))


def test_every_module_has_a_stage():
    assert [m for m in modules() if m != "pydarknet" and not any(m.split(".")[1] in s for s in STAGES)] == []


def test_no_module_over_500_lines():
    """The package's modules, and every other Python and C source of ours: C, tools, tests."""
    ours = sources() + [p for pattern in ("*.py", "csrc/**/*.[ch]", "tools/*.py", "tests/**/*.py")
                        for p in REPO.glob(pattern)]
    long = {str(p.relative_to(REPO)): n for p in ours if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_names_are_imported_from_where_they_are_defined():
    known = modules()
    borrowed = []
    for name, path in known.items():
        for module, names in imports(name, path, known).items():
            missing = names - defined_names(known[module])
            borrowed += [f"{name} takes {n} from {module}" for n in sorted(missing)]
    assert not borrowed, "; ".join(borrowed)


def test_the_stages_are_packages():
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == \
        {"source", "formats", "transforms", "runtime", "api", "cli"}


def run(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO)


def test_every_entry_point_answers():
    import pydarknet

    version = run("pydarknet", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"pydarknet {pydarknet.__version__}"
    assert {"Network", "detect", "zoo", "upstream_path", "__version__"} <= set(dir(pydarknet))
    for module, command in (("pydarknet.fold_bn", "fold-bn"), ("pydarknet.caffe2darknet", "convert")):
        done = run(module, "--help")
        assert done.returncode == 0 and f"pydarknet {command}" in done.stdout
    for command in ("detect", "classify", "info", "fold-bn", "convert", "to-onnx", "zoo", "patches"):
        assert run("pydarknet", command, "--help").returncode == 0
    assert run("pydarknet", "patches", "lint").returncode == 0


def test_cli_refuses_out_of_range_options_before_any_work():
    for option, value in (("--thresh", "1.5"), ("--nms", "-0.1"), ("--batch", "0")):
        done = run("pydarknet", "detect", "missing.jpg", option, value)
        assert done.returncode == 2 and f"argument {option}" in done.stderr, done.stderr
    shown = " ".join(run("pydarknet", "detect", "--help").stdout.split())
    assert "(default: None)" not in shown and "(default: 0.5)" in shown and "(default: 0.45)" in shown


def test_one_error_convention():
    missing = run("pydarknet", "fold-bn", "missing.cfg", "missing.weights", "-o", "out")
    assert missing.returncode == 2 and missing.stderr.startswith("pydarknet: error: ")
    assert len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.network
def test_options_may_stand_between_sources_and_flags_show_no_true_false(tmp_path):
    dog, eagle = (str(pydarknet_sample(n)) for n in ("dog.jpg", "eagle.jpg"))
    done = run("pydarknet", "detect", dog, "--json", eagle, "--thresh", "0.4")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["source"] for line in done.stdout.splitlines()] == [dog, eagle]
    assert run("pydarknet", "detect", dog, "--bogus").returncode == 2
    shown = " ".join(run("pydarknet", "convert", "--help").stdout.split())
    assert "(default: True)" not in shown and "(default: False)" not in shown


def test_the_patch_commands_work_outside_a_checkout(tmp_path):
    """From the installed package (its darknet_patches/), not ./darknet_patches."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pydarknet", "patches", "list"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0 and "0001-recoverable-errors.patch" in done.stdout, done.stderr


def pydarknet_sample(name: str):
    from pydarknet.runtime import samples

    return samples.path(name)


def test_the_command_line_loads_the_extension_only_when_a_command_needs_it():
    """`python -m pydarknet patches ...` works in a checkout before anything is built:
    building the parser and the patch commands import nothing that loads the extension."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['pydarknet._darknet'] = None; from pydarknet.cli import main; "
            "sys.exit(main(['patches', 'list']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and "0001-recoverable-errors.patch" in done.stdout, done.stderr
