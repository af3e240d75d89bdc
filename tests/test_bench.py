"""bench.py --quick: every section of `make bench` still runs.

Timings are not tested (they belong to bench.py, and these machines are
shared): this checks that each section runs to its end on today's code and
reports what docs/performance.md reads from it. A section that
breaks (an API it used was removed, say) fails here rather than in the next
person's `make bench`.
"""
import json
import math
import subprocess
import sys

import pytest

from conftest import ROOT


def finite_positive(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


@pytest.mark.slow
def test_every_bench_section_runs_quick(tmp_path):
    import bench
    proc = subprocess.run([sys.executable, str(ROOT / 'bench.py'), '--quick'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith('SUMMARY ')]
    assert len(line) == 1, proc.stdout[-2000:]
    summary = json.loads(line[0][len('SUMMARY '):])
    assert set(summary) == set(bench.SECTIONS)
    # the ratios docs/performance.md quotes, present and sane (their size is bench's business)
    train = summary['train']
    for key in ('train_speedup', 'fast_dropout_speedup', 'flop_efficiency',
                'length_aware_speedup', 'infer_ms_batch1'):
        assert finite_positive(train[key]), (key, train[key])
    assert finite_positive(summary['loader']['loader_samples_per_s'])
    la = summary['length_aware']
    assert all(finite_positive(la[run]['samples_per_s']) for run in ('full', 'aware'))
    assert finite_positive(summary['shap_population']['ratio'])
