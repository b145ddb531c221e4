"""aggregators imports no Kafka, Prometheus, JSON codec or network library."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys

    BLOCKED = ("kafka", "prometheus_client", "orjson", "urllib.request", "http")

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"blocked import of {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    for name in list(sys.modules):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            del sys.modules[name]

    import numpy as np

    import tilewatch.aggregators
    from tilewatch.aggregators import CellSettings, ReplicaState

    rs = ReplicaState(CellSettings(dimensions=("segment",), window_seconds=10, grace_seconds=0))
    rs.apply(("t", 0), [("m", "a"), ("m", "b")], np.array([1.0, 2.0]), np.array([0.1, 0.3]), 2)
    rs.apply(("t", 0), [("m", "a")], np.array([15.0]), np.array([0.5]), 3)
    rs.refresh()
    snap = rs.snapshot()
    i = snap.cell(("m", "__all__"))
    assert int(snap.window_count[i]) == 2, snap.window_count
    assert int(snap.events_total[i]) == 3
    leaked = sorted(
        n for n in sys.modules if any(n == b or n.startswith(b + ".") for b in BLOCKED)
    )
    assert not leaked, leaked
    print("ok", tilewatch.aggregators.__name__)
    """
)


def test_aggregators_import_and_run_with_io_libraries_blocked() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok tilewatch.aggregators"


def test_blocker_really_blocks() -> None:
    """The finder in SCRIPT does block: importing a blocked name fails."""
    probe = SCRIPT.split("import numpy as np")[0] + "\nimport http.client\n"
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "blocked import of http" in proc.stderr
