"""``check-config`` loads every file the config names, as ``run`` would: a missing or broken
baseline or TLS file is an error naming the key and the file, not "ok"."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.tilewatch.test_baseline_cli import _events, _write_jsonl
from tilewatch.cli import main


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tilewatch.toml"
    path.write_text('[kafka]\nbootstrap_servers = "127.0.0.1:9092"\n' + text)
    return path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("baseline")
    data = _write_jsonl(tmp / "holdout.jsonl", _events(400))
    out = tmp / "baseline.json"
    assert (
        main(
            [
                "baseline",
                "--config",
                str(_config(tmp, "")),
                "--input",
                str(data),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_a_missing_baseline_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    absent = tmp_path / "absent.json"
    config = _config(tmp_path, f'[baseline]\npath = "{absent}"\n')
    assert main(["check-config", "--config", str(config)]) == 2
    captured = capsys.readouterr()
    assert "ok" not in captured.out
    err = captured.err.strip()
    assert err.startswith(f"tilewatch: error: {config}: [baseline].path: {absent}: cannot read")
    assert "No such file or directory" in err


def test_a_file_that_is_not_a_baseline_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"hello": 1}))
    config = _config(tmp_path, f'[baseline]\npath = "{bad}"\n')
    assert main(["check-config", "--config", str(config)]) == 2
    assert "not a tilewatch baseline" in capsys.readouterr().err


def test_a_good_baseline_is_loaded_and_reported(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, f'[baseline]\npath = "{baseline}"\n')
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{config}: ok"
    assert f"  baseline: {baseline} loads (models: churn)" in out.splitlines()


def test_exporter_tls_that_does_not_load_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    config = _config(tmp_path, f'[exporter]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        f"tilewatch: error: {config}: [exporter] tls_cert/tls_key: cannot serve metrics over TLS"
        in err
    )
    assert str(cert) in err


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_tls_files_that_load_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = _self_signed(tmp_path)
    config = _config(
        tmp_path,
        f'[kafka.client]\nsecurity_protocol = "SSL"\nssl_cafile = "{cert}"\n'
        f'ssl_certfile = "{cert}"\nssl_keyfile = "{key}"\n'
        f'[exporter]\ntls_cert = "{cert}"\ntls_key = "{key}"\n',
    )
    assert main(["check-config", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"  exporter TLS: certificate {cert} and key {key} load" in lines
    assert f"  kafka TLS: ssl_cafile {cert}, ssl_certfile {cert}, ssl_keyfile {key} load" in lines


@pytest.mark.parametrize(
    ("key", "content", "message"),
    [
        ("ssl_cafile", None, "cannot read"),
        ("ssl_cafile", "garbage\n", "cannot load the TLS files"),
    ],
)
def test_kafka_tls_files_that_do_not_load_are_errors(
    key: str, content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    config = _config(tmp_path, f'[kafka.client]\nsecurity_protocol = "SSL"\n{key} = "{path}"\n')
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"tilewatch: error: {config}: [kafka.client].{key}" in err
    assert message in err


def test_a_kafka_certificate_with_the_wrong_key_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, _ = _self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_key = _self_signed(other)
    config = _config(
        tmp_path,
        f'[kafka.client]\nssl_certfile = "{cert}"\nssl_keyfile = "{wrong_key}"\n',
    )
    assert main(["check-config", "--config", str(config)]) == 2
    assert "cannot load the TLS files" in capsys.readouterr().err
