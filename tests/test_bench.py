"""bench.py --quick, one test per section: every section of `make bench` still runs.

Timings are not tested (they belong to bench.py, and these machines are
shared): this checks that each section runs to its end on today's code and
reports what docs/performance.md reads from it. A section that breaks (an API
it used was removed, say) fails here, under its own name, rather than in the
next person's `make bench`. One section: `pytest tests/test_bench.py -k serve`.
"""
import importlib.util
import json
import math
import subprocess
import sys

import pytest
from conftest import ROOT

import bench

# The figures docs/performance.md quotes, per section ('full.samples_per_s' is
# summary['length_aware']['full']['samples_per_s']): present and sane; their
# size is bench's business.
QUOTED = {
    'train': ('train_speedup', 'fast_dropout_speedup', 'flop_efficiency',
              'length_aware_speedup', 'infer_ms_batch1'),
    'loader': ('loader_samples_per_s',),
    'length_aware': ('full.samples_per_s', 'aware.samples_per_s'),
    'shap_population': ('ratio',),
}
TIMEOUT_S = 600  # per section; all sixteen at --quick took 4 min 46 s (docs/performance.md)


def finite_positive(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def test_registry():
    """Each --only name has its module, in one kind only; QUOTED names real sections."""
    assert not set(bench.SPEED) & set(bench.ACCURACY)
    for module in bench.SECTIONS.values():
        assert importlib.util.find_spec(module) is not None, module
    assert set(QUOTED) <= set(bench.SECTIONS)


@pytest.mark.slow
@pytest.mark.parametrize('name', list(bench.SECTIONS))
def test_bench_section_runs_quick(name, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / 'bench.py'), '--only', name, '--quick'],
                          cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith('SUMMARY ')]
    assert len(line) == 1, proc.stdout[-2000:]
    summary = json.loads(line[0][len('SUMMARY '):])
    assert list(summary) == [name]
    for key in QUOTED.get(name, ()):
        value = summary[name]
        for part in key.split('.'):
            value = value[part]
        assert finite_positive(value), (key, value)
