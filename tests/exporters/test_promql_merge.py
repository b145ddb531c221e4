"""The PromQL recipe of docs/deploy.md merges replicas' window statistics exactly (promtool)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def _recipe() -> tuple[str, str]:
    """The mean and variance expressions from docs/deploy.md's promql block, one line each."""
    block = re.search(r"```promql\n(.*?)```", DEPLOY.read_text(encoding="utf-8"), re.S)
    assert block is not None, "docs/deploy.md has no promql block"
    text = block.group(1)
    mean_expr = text.split("# mean\n", 1)[1].split("\n# variance", 1)[0].strip()
    var_expr = " ".join(text.split("# variance", 1)[1].split("\n", 1)[1].split())
    return mean_expr.replace("(c)", "(cell)"), var_expr.replace("(c)", "(cell)")


@pytest.mark.prometheus
def test_deploy_recipe_merges_mean_and_variance_exactly(tmp_path: Path, promtool_bin: str) -> None:
    rng = np.random.default_rng(11)
    replicas = [rng.random(n) for n in (3, 4, 9)]
    everything = np.concatenate(replicas)
    series = []
    for r, x in enumerate(replicas):
        labels = f'{{cell="x",replica="{r}"}}'
        m2 = float(((x - x.mean()) ** 2).sum())
        for name, value in (
            ("tilewatch_window_score_summed", repr(float(x.sum()))),
            ("tilewatch_window_score_m2", repr(m2)),
            ("tilewatch_window_events", str(len(x))),
        ):
            series.append(f"      - series: '{name}{labels}'\n        values: '{value}'")
    mean_expr, var_expr = _recipe()
    (tmp_path / "rules.yml").write_text("groups: []\n")
    (tmp_path / "test.yml").write_text(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n"
        "    input_series:\n"
        + "\n".join(series)
        + "\n    promql_expr_test:\n"
        + "".join(
            # within 1e-12: Prometheus and numpy may round the last digit differently
            f"      - expr: abs(({expr}) - {want!r}) < bool 1e-12\n"
            "        eval_time: 0m\n        exp_samples:\n"
            "          - labels: '{cell=\"x\"}'\n            value: 1\n"
            for expr, want in (
                (mean_expr, float(everything.mean())),
                (var_expr, float(everything.var(ddof=1))),
            )
        )
    )
    result = subprocess.run(
        [promtool_bin, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
