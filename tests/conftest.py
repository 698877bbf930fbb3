import logging

import pytest
import torch

from simclr_helpers.config import get_profile
from simclr_helpers.data import load_bundled


@pytest.fixture(scope="session")
def bundled():
    return load_bundled()


@pytest.fixture(scope="session")
def tiny_profile():
    """A few seconds of pretraining: enough to exercise every code path, not to learn much."""
    return get_profile("smoke").with_overrides(epochs=2, batch_size=64, knn_every=1, knn_k=20, linear_epochs=5)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, bundled, tiny_profile):
    from simclr_helpers.data import DataSpec
    from simclr_helpers.runs import PretrainData, run_pretrain

    train = bundled.train.balanced_subset(320)
    bank, held = train.split(0.25)
    out = tmp_path_factory.mktemp("tiny_run")
    result = run_pretrain(tiny_profile, PretrainData(train, (bank, held), DataSpec("bundled"), None), out,
                          progress=False)
    return result


@pytest.fixture(scope="session")
def classifier_ckpt(tiny_run):
    from simclr_helpers.runs import run_evaluate

    res = run_evaluate(tiny_run.checkpoint, method="linear", progress=False)
    return res["classifier"]


@pytest.fixture(autouse=True)
def _package_lines_as_they_were():
    """A test that shows the package's lines (the command line, a notebook's setup) leaves them as it found them."""
    logger = logging.getLogger("simclr_helpers")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
