"""The package's layering, documented as a test: leaf helpers below, the training loop in the middle,
whole runs and the command line on top. A module that needs a small helper imports it from ``runtime``,
never from ``train``; ``results`` does not depend on the training loop at all."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "simclr_helpers"
# The training loop's own names: measuring or driving the loop may import these, nothing else of ``train``.
LOOP = {"pretrain", "train_one_epoch", "training_setup", "TrainingSetup",
        "FastBatches", "training_step", "make_optimizer", "make_scheduler", "knn_due",
        "load_simclr", "PretrainResult", "save_pretrain_checkpoint"}
MAY_IMPORT_TRAIN = {"runs", "benchmark", "ablations", "label_efficiency", "cli"}  # whole runs and experiments, the CLI
LEAVES = {"runtime", "errors", "config"}  # import nothing else of the package (config may name errors)


def imports(module: str) -> dict[str, set[str]]:
    """``{imported package module: names}`` for every ``from .x import ...`` in ``module`` (functions included)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("simclr_helpers")):
            name = (node.module or "").removeprefix("simclr_helpers.") if node.level == 0 else (node.module or "")
            found.setdefault(name, set()).update(a.name for a in node.names)
    return found


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def test_no_module_imports_train_for_a_helper():
    for module in MODULES:
        names = imports(module).get("train", set())
        if names:
            assert module in MAY_IMPORT_TRAIN, f"{module} imports {sorted(names)} from train"
            assert names <= LOOP, f"{module} imports helpers {sorted(names - LOOP)} from train; take them from runtime"


def test_results_does_not_depend_on_the_training_loop():
    assert "train" not in imports("results") and "runs" not in imports("results")


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
    for path in [*PACKAGE.glob("*.py"), *PACKAGE.parent.glob("notebooks/*.ipynb")]:
        text = path.read_text()
        assert 'extra"' not in text and "extra\\\"" not in text and "extra={" not in text, path.name
        if path.name != "checkpoints.py":
            assert 'state["settings"]' not in text and "state[\\\"settings\\\"]" not in text, path.name
            assert 'settings["' not in text and "settings[\\\"" not in text, path.name
