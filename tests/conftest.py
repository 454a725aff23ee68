"""Settings shared by every test folder: offline, single-threaded, and the run-store fixture.

The library records a run only when it is given a store, so a test writes nothing unless it asks.
``ACCORD_STORE`` is removed here so that a developer's own setting cannot reach the suite.

Graph and runtime tests run both with and without a store with one line::

    pytestmark = pytest.mark.usefixtures("store_mode")

which runs each test of the module three times: with no store, and with a store in ``tmp_path``
set with ``accord.configure(store=...)`` in durability "async" and "sync". After each recorded
test the fixture checks that every run the test finished was recorded as it ended.
"""

from __future__ import annotations

import os

# Offline and quiet: no test may reach the Hugging Face Hub, and one thread keeps timings stable.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.pop("ACCORD_STORE", None)
os.environ.pop("ACCORD_DURABILITY", None)

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from accord.testing import forbid_real_backends  # noqa: E402


@pytest.fixture
def no_real_backends() -> Iterator[None]:
    """Make any real backend call fail loudly (use with ``pytest.mark.usefixtures``)."""
    with forbid_real_backends():
        yield


@pytest.fixture(params=["no-store", "store-async", "store-sync"])
def store_mode(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Run the test with no store, or with every run recorded into a store in ``tmp_path``
    (``accord.configure(store=...)``) in durability "async" or "sync"; yields the mode."""
    import accord

    mode: str = request.param
    if mode == "no-store":
        yield mode
        return
    monkeypatch.setenv("ACCORD_DURABILITY", mode.removeprefix("store-"))
    store = accord.open_store(tmp_path / "recorded-runs.db")
    accord.configure(store=store)
    try:
        yield mode
        stuck = [r.run_id for r in store.list_runs({"status": "running"}, limit=1000)]
        assert not stuck, f"runs left 'running' in the store after the test: {stuck}"
    finally:
        accord.configure(store=None)
        store.close()
