"""Thread count, ISA dispatch and the configuration report."""

import os
import subprocess
import sys

import pytest

import ffnc


def test_show_config_names_the_isa_path(capsys):
    ffnc.show_config()
    out = capsys.readouterr().out
    assert f"ISA path:        {ffnc.get_isa()}" in out
    assert "OpenMP" in out
    assert ffnc.__version__ in out


def test_none_follows_openmp_again():
    saved = ffnc._core.configured_num_threads()
    try:
        ffnc.set_num_threads(3)
        assert ffnc._core.configured_num_threads() == 3
        ffnc.set_num_threads(None)
        assert ffnc._core.configured_num_threads() is None
        assert ffnc.get_num_threads() >= 1
    finally:
        ffnc.set_num_threads(saved)


def test_fit_threads_leaves_the_default_as_it_was():
    import numpy as np

    from ffnc import nn
    saved = ffnc._core.configured_num_threads()
    ffnc.set_num_threads(None)
    try:
        model = nn.Sequential([nn.Dense(2)], input_shape=(3,), loss="mse")
        x = np.ones((4, 3), np.float32)
        model.fit(x, np.zeros((4, 2), np.float32), epochs=1, threads=1, verbose=0)
        assert ffnc._core.configured_num_threads() is None
    finally:
        ffnc.set_num_threads(saved)


def test_num_threads_round_trip():
    saved = ffnc.get_num_threads()
    try:
        ffnc.set_num_threads(1)
        assert ffnc.get_num_threads() == 1
        ffnc.set_num_threads(3)
        assert ffnc.get_num_threads() == 3
    finally:
        ffnc.set_num_threads(saved)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                        (True, TypeError), ("2", TypeError)])
def test_num_threads_rejects_bad_values(bad, error):
    with pytest.raises(error, match="n must be"):
        ffnc.set_num_threads(bad)


def test_set_isa_validates():
    with pytest.raises(ValueError, match="isa must be one of"):
        ffnc.set_isa("sse9")
    for name in ("generic", "avx2", "avx512"):
        if name not in ffnc.supported_isas():
            with pytest.raises(ValueError, match="not supported"):
                ffnc.set_isa(name)
    assert ffnc.supported_isas()[0] == "generic"


def _run(env_isa, code="import ffnc; print(ffnc.get_isa())"):
    env = dict(os.environ, FFNC_ISA=env_isa)
    return subprocess.run([sys.executable, "-P", "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)


def test_ffnc_isa_environment_forces_the_path():
    for name in ffnc.supported_isas():
        result = _run(name)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == name


def test_ffnc_isa_environment_rejects_unknown_paths():
    result = _run("sse9")
    assert result.returncode != 0
    assert "FFNC_ISA='sse9' is not a path" in result.stderr
