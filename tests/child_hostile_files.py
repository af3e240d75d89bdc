"""Peak memory and time of reading each hostile file, each in its own forked
child, for tests/test_hostile.py. The parent imports numpy, scipy, wfdb and
the record layer once, so each figure is the file's own cost on top of that
base (the case 'imports' measures the base alone):

    PYTHONPATH=. python tests/child_hostile_files.py '{"base": ["imports"], "a": ["read", "A.mat"]}'

A case is [kind, *arguments], kind one of CASES. Prints one JSON line,
{name: {result, seconds, rss_mb, status}}: result is 'ok', 'ok: <what the
case returned>' or '<exception type>: <message>'; status is the child's wait
status (non-zero: it crashed or was killed).
"""
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy  # noqa: F401 (part of the base every figure includes)
import scipy.io  # noqa: F401
import scipy.signal  # noqa: F401
import wfdb  # noqa: F401

import records
from records import uploads


def read_one_lead(path):
    """records.read_record, then prepare its first named lead."""
    r = records.read_record(path)
    records.prepare(r, [lead for lead in r.leads if lead][:1])


def stage_zips(folder, tmp_parent):
    """uploads.stage_files on every .zip of a folder, as one upload -> what it
    staged and refused."""
    files = [(p.name, p.read_bytes()) for p in sorted(Path(folder).glob('*.zip'))]
    with tempfile.TemporaryDirectory(dir=tmp_parent) as tmp:
        staged, problems = uploads.stage_files(files, tmp)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    return f'{len(staged)} staged, {size} bytes, {len(problems)} problems'


def load_all(path):
    """records.read_record, then every sample of every channel -> how many
    values (the decoded signal is 8 bytes a value: the memory multiple's
    denominator)."""
    r = records.read_record(path)
    return r.read(0, r.sig_len).size


CASES = {'imports': lambda: None, 'read': read_one_lead, 'load': load_all,
         'stage': stage_zips}


def in_child(fn, args):
    """fn(*args) in a forked child -> {result, seconds, rss_mb, status}."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        t = time.perf_counter()
        try:
            value = fn(*args)
            result = 'ok' if value is None else f'ok: {value}'
        except BaseException as e:  # the figure of any failure, crashes aside
            result = f'{type(e).__name__}: {e}'
        seconds = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        os.write(w, json.dumps({'result': result[:400], 'seconds': seconds,
                                'rss_mb': rss}).encode())
        os._exit(0)
    os.close(w)
    data = b''
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return dict(json.loads(data) if data else {'result': 'died'}, status=status)


def main(cases):
    print(json.dumps({name: in_child(CASES[kind], args)
                      for name, (kind, *args) in cases.items()}))


if __name__ == '__main__':
    main(json.loads(sys.argv[1]))
