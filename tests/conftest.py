"""Settings shared by every test folder: offline, single-threaded, and no run store by default.

Kept minimal on purpose: nothing here is autouse, so folders with their own needs (backends,
merge, store, ensemble) are unaffected. A test that wants the run store on sets
``ACCORD_DURABILITY`` itself (``monkeypatch.setenv("ACCORD_DURABILITY", "sync")``).
"""

from __future__ import annotations

import os

# Offline and quiet: no test may reach the Hugging Face Hub, and one thread keeps timings stable.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No test writes ./.accord/ unless it opts in.
os.environ["ACCORD_DURABILITY"] = "off"

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from accord.testing import forbid_real_backends  # noqa: E402


@pytest.fixture
def no_real_backends() -> Iterator[None]:
    """Make any real backend call fail loudly (use with ``pytest.mark.usefixtures``)."""
    with forbid_real_backends():
        yield
