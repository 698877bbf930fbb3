# IPython start-up file of the Colab-like kernel (tests/test_colab_kernel.py copies it into the kernel's
# $IPYTHONDIR/profile_default/startup/): before the first cell runs, google.colab is loaded and %pip is
# captured, as tests/colab/fake_colab.py describes. It leaves no name behind in the notebook's namespace.


def _fake_colab():
    import importlib.util
    import os
    import sys

    spec = importlib.util.spec_from_file_location("fake_colab", os.environ["FAKE_COLAB_MODULE"])
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_colab"] = module
    spec.loader.exec_module(module)
    module.FakeColab().install(get_ipython())  # noqa: F821  (IPython's namespace has it)


_fake_colab()
del _fake_colab
