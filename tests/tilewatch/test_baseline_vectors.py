"""``tilewatch baseline`` with embeddings and attributions: the vector reference in the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client import generate_latest

from tilewatch.app import App, build_vectors
from tilewatch.cli import main
from tilewatch.config import load_config
from tilewatch.holdout import BaselineError
from tilewatch.reference_file import load_vectors


def test_baseline_fits_and_writes_the_vector_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 12)) * np.linspace(3, 0.5, 12)
    rows = []
    for i in range(300):
        rows.append(
            {
                "model": "m",
                "score": 0.5,
                "segment": "a" if i % 2 else "b",
                "prediction": "yes" if i % 3 else "no",
                "emb": x[i].tolist(),
                "shap": {"age": float(rng.normal()), "income": 0.1},
            }
        )
    rows[5]["emb"] = [1.0, 2.0]  # a bad vector: left out, the row kept
    data = tmp_path / "holdout.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    config = tmp_path / "tilewatch.toml"
    config.write_text(
        f'[cells]\ndimensions = ["segment"]\n[events]\nembedding = "emb"\nattributions = "shap"\n'
        f'[baseline]\npath = "{tmp_path / "baseline.json"}"\n'
    )
    out = tmp_path / "baseline.json"
    assert (
        main(["baseline", "--config", str(config), "--input", str(data), "--output", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "PCA of 12-dimensional embeddings, 8 components" in printed
    vectors = load_vectors(out)
    mv = vectors["m"]
    assert mv.projection is not None and mv.projection.dim == 12
    assert mv.features == ("age", "income") and mv.classes == ("no", "yes")
    assert mv.groups[(("__all__",), "__all__")].rows == 299
    centered = np.delete(x, 5, axis=0)
    expected = np.linalg.svd(centered - centered.mean(axis=0), compute_uv=False) ** 2
    np.testing.assert_allclose(mv.projection.explained, expected[:8] / expected.sum())
    tracker = build_vectors(load_config(str(config)))
    assert tracker is not None and tracker.references["m"].dim == 12
    app = App(load_config(str(config)))  # the wiring: monitor, collector, drill-down
    assert app.monitor.vectors is app.vectors and app.page.api.vectors is app.vectors
    decoder = app.monitor.decoder
    assert {"embedding", "attributions"} <= set(decoder.columns)
    assert decoder.capture or "prediction" in decoder.columns  # the predicted class
    text = generate_latest(app.registry).decode()
    assert 'tilewatch_embedding_explained_variance_ratio{component="0",model="m"}' in text


def test_load_vectors_names_the_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"format": "x", "vectors": {"m": {"projection": 3}}}')
    with pytest.raises(BaselineError, match=r"vectors\.m\.projection: expected an object"):
        load_vectors(path)
    path.write_text('{"format": "x"}')
    assert load_vectors(path) == {}


def test_vectors_without_a_reference_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "tilewatch.toml"
    config.write_text('[events]\nembedding = "emb"\n')
    with caplog.at_level("WARNING", logger="tilewatch.app"):
        tracker = build_vectors(load_config(str(config)))
    assert tracker is not None and tracker.references == {}
    assert "no vector reference" in caplog.text
