"""The package's layering, documented as a test: leaf helpers below, the training loop in the middle,
whole runs above it; the lab wing (``simclr_helpers.lab``: what measures and publishes the course) on top of
the learner's package, and the command line over both. Only what drives training (``runs``, the lab wing, the
command line) imports ``train``: a helper comes from ``runtime``, saving and opening a run from ``checkpoints``;
the learner's modules never import the lab; ``lab.results`` does not depend on the training loop at all."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "simclr_helpers"
TOP = {"cli", "__main__"}  # the command line: the learner's commands and the lab's
LEAVES = {"runtime", "lines", "errors", "config"}  # import nothing else of the package (config may name errors)


def _name(path: Path) -> str:
    """``lab.results`` for ``simclr_helpers/lab/results.py``; ``train`` for ``simclr_helpers/train.py``."""
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


MODULES = sorted(_name(p) for p in PACKAGE.rglob("*.py") if p.stem != "__init__")
LAB = {m for m in MODULES if m.startswith("lab.")}
CORE = set(MODULES) - LAB - TOP  # what a learner reads
DRIVERS = {"runs"} | LAB | TOP  # what starts or measures training runs: the only importers of ``train``


def imports(module: str) -> dict[str, set[str]]:
    """``{imported package module: names}`` for every import of the package in ``module`` (functions included),
    the module named from the package's root (``lab.results``, ``train``)."""
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text())
    here = module.split(".")[:-1]  # the module's subpackage, from the package's root
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = here[:len(here) - node.level + 1]
            name = ".".join([*base, node.module] if node.module else base)
        elif (node.module or "").startswith("simclr_helpers"):
            name = node.module.removeprefix("simclr_helpers").lstrip(".")
        else:
            continue
        if name in ("", "lab"):  # ``from . import x``, ``from .lab import x``: x is a module
            for alias in node.names:
                found.setdefault(f"{name}.{alias.name}".lstrip("."), set()).add(alias.name)
        else:
            found.setdefault(name, set()).update(a.name for a in node.names)
    return found


def test_only_what_drives_training_imports_train():
    """Evaluation, checkpoints, models, data, the notebook set-up and the other learner's modules never import
    the training loop: what they share with it lives below it (``runtime``, ``checkpoints``)."""
    for module in set(MODULES) - DRIVERS:
        assert "train" not in imports(module), (f"{module} imports {sorted(imports(module)['train'])} from train; "
                                                "only runs, the lab wing and the command line drive training")
    assert "train" in imports("runs")  # the rule names the real importers


def test_the_learners_package_never_imports_the_lab():
    assert LAB >= {"lab.results", "lab.benchmark", "lab.ablations", "lab.gpucheck", "lab.label_efficiency",
                   "lab.reproduce"}
    for module in CORE:
        lab = sorted(name for name in imports(module) if name == "lab" or name.startswith("lab."))
        assert not lab, f"{module} imports {lab}: the learner's modules never import the lab wing"
    for module in LAB:  # the lab imports the learner's package and itself, never the command line
        assert not set(imports(module)) & TOP, f"{module} imports the command line"


def test_results_does_not_depend_on_the_training_loop():
    assert "train" not in imports("lab.results") and "runs" not in imports("lab.results")


def test_leaves_stand_alone():
    for module in LEAVES:
        assert set(imports(module)) <= {"errors"}, f"{module} imports {sorted(imports(module))}"
    assert set(imports("runtime")) == set()


def test_no_import_cycles():
    graph = {m: {i for i in imports(m) if i in MODULES} for m in MODULES}

    def visit(node, path):
        assert node not in path, f"import cycle: {' -> '.join([*path, node])}"
        for nxt in graph[node]:
            visit(nxt, [*path, node])

    for module in MODULES:
        visit(module, [])


def test_no_data_back_channel_or_string_keys_outside_the_record():
    """The data a run used is a field of its record; nothing reads checkpoints through string keys."""
    for path in [*PACKAGE.rglob("*.py"), *PACKAGE.parent.glob("notebooks/*.ipynb")]:
        text = path.read_text()
        assert 'extra"' not in text and "extra\\\"" not in text and "extra={" not in text, path.name
        if path.name != "checkpoints.py":
            assert 'state["settings"]' not in text and "state[\\\"settings\\\"]" not in text, path.name
            assert 'settings["' not in text and "settings[\\\"" not in text, path.name
