"""The benchmark harness in smoke mode: every benchmark of ours, tiny sizes.

Benchmarks never assert timings; this only checks that none of them crashes
(``bench/run.py --smoke`` exits non-zero when one does) and that each printed
its JSON result line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_bench_smoke(tmp_path):
    raw = tmp_path / "smoke.jsonl"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke",
         "--workdir", str(tmp_path / "work"), "--results", str(raw)],
        capture_output=True, text=True, timeout=540, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads(line) for line in raw.read_text().splitlines()]
    benches = {r["bench"] for r in records}
    assert {"cold", "warm", "chain", "fanout", "payload", "disk"} <= benches, benches
    assert not [r for r in records if "error" in r], proc.stderr[-4000:]
