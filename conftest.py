"""Test-session settings shared by the unit tests and the notebooks (nbval).

The notebooks read their profile and folders from environment variables; the
kernel nbval starts inherits them, so ``pytest`` runs every notebook in the
offline ``smoke`` profile on the bundled data.
"""

import os

os.environ.setdefault("SIMCLR_PROFILE", "smoke")
os.environ.setdefault("TQDM_DISABLE", "1")
