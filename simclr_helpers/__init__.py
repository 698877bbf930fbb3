"""simclr_helpers: the package behind the course "SimCLR, step by step".

One module per concern: ``config`` (profiles, paths, normalisation), ``data``,
``augment``, ``models``, ``train``, ``evaluate``, ``predict``, ``checkpoints``,
``runs`` (whole runs for the CLI and notebooks) and ``cli``.
"""

__version__ = "0.1.0"
