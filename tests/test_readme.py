"""The README's Python examples run as written (and the XOR one learns XOR)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples save checkpoints in the working directory
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert float(namespace["value"]) < 0.05  # the XOR net has learned XOR
    assert namespace["scores"]["accuracy"] > 0.9  # the digits model has learned digits
    assert (tmp_path / "digits.safetensors").is_file()
