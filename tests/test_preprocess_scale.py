"""preprocess.py at dataset scale, on synthetic.py's records: the output is
the same byte for byte whatever --workers; a build killed with SIGKILL and
resumed gives the files of an uninterrupted one; a resume whose inputs
changed is refused; peak memory does not grow with the number of records."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from helpers import ctrl_c_on_third_record

import preprocess
import synthetic

OUTPUTS = ('reference.csv', 'labels.csv', 'skipped.csv', 'folds.json',
           'cache/signals.npy', 'cache/index.csv', 'cache/meta.json')
RECORDS = 48  # 30-s records: 360 kB of int16 rows each in the cache


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """RECORDS synthetic 30-s records (seed 0), written once for the module."""
    src = tmp_path_factory.mktemp('synthetic')
    synthetic.write_dataset(src, RECORDS, seed=0, workers=2, duration=30, progress=False)
    return src


def records(source, dst, n, truncated=None):
    """A copy (not links: tests change files) of the first n records of
    source in dst, the record `truncated` cut short (a bad record, skipped)."""
    dst.mkdir()
    shutil.copy(source / 'synthetic.json', dst)
    for hea in sorted(source.glob('*.hea'))[:n]:
        for ext in ('.hea', '.mat'):
            shutil.copy(hea.with_suffix(ext), dst / (hea.stem + ext))
    if truncated:
        mat = dst / f'{truncated}.mat'
        mat.write_bytes(mat.read_bytes()[:5000])
    return dst


def outputs(data):
    """Every file preprocess.py writes -> its bytes; the outputs are then
    removed, so that the next run starts from nothing (new folds included)."""
    out = {name: (data / name).read_bytes() for name in OUTPUTS}
    for name in OUTPUTS:
        (data / name).unlink()
    return out


def run(data, *extra):
    preprocess.main(['--data-dir', str(data), *extra])


def test_two_workers_write_the_same_bytes_as_one_process(source, tmp_path, capsys):
    data = records(source, tmp_path / 'd', 13, truncated='A0005')
    run(data, '--workers', '0')
    serial = outputs(data)
    run(data, '--workers', '2')
    assert 'skip A0005: truncated' in capsys.readouterr().out
    pooled = outputs(data)
    assert sorted(pooled) == sorted(serial)
    for name in OUTPUTS:
        assert pooled[name] == serial[name], name
    assert len(serial['cache/signals.npy']) > 12 * 15000 * 12 * 2  # 12 records of 30 s


# The killed child: records after the fourth hang (a slow disk), so the kill
# always lands part-way, after four records are in the progress file.
CHILD = '''
import sys, time
sys.path.insert(0, {root!r})
import preprocess
real, calls = preprocess._cache_one, []

def hang_after_four(job):
    calls.append(job)
    if len(calls) > 4:
        time.sleep(120)
    return real(job)

preprocess._cache_one = hang_after_four
preprocess.main(['--data-dir', sys.argv[1], '--workers', '0'])
'''


def kill_part_way(data, done=4, wait_s=60):
    """preprocess.py in a child, SIGKILLed once its progress file lists
    `done` records (within wait_s)."""
    progress = data / 'cache' / preprocess.PROGRESS
    child = subprocess.Popen([sys.executable, '-c', CHILD.format(root=str(ROOT)), str(data)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + wait_s
        while not (progress.exists() and progress.read_text().count('\n') > done):
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, f'no {done} records done in {wait_s} s'
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def test_killed_build_resumes_to_the_files_of_an_uninterrupted_one(source, tmp_path, capsys):
    data = records(source, tmp_path / 'd', 12, truncated='A0003')
    run(data, '--workers', '0')
    whole = outputs(data)
    capsys.readouterr()

    kill_part_way(data)
    cache = data / 'cache'
    assert not (cache / 'meta.json').exists() and not (cache / 'signals.npy').exists()
    # A kill between the two writes: a record's rows without its line, and a
    # line torn half-way. Both are cut away on resume.
    with open(cache / preprocess.PARTIAL, 'ab') as f:
        f.write(b'\x01' * 24 * 100)
    with open(cache / preprocess.PROGRESS, 'a') as f:
        f.write('{"id": "A00')
    run(data, '--workers', '2', '--resume')
    out = capsys.readouterr().out
    assert 'resume: 4 of 12 records already in the partial cache' in out
    assert out.count('skip A0003: truncated') == 1  # found before the kill, reported once
    assert outputs(data) == whole
    assert not list(cache.iterdir())  # no partial cache left


def interrupt_build(data, monkeypatch):
    """A build stopped by Ctrl-C at its third record: the partial cache stays."""
    ctrl_c_on_third_record(monkeypatch, lambda: run(data, '--workers', '0'))
    assert (data / 'cache' / preprocess.PROGRESS).exists()


def test_resume_with_changed_inputs_is_refused_and_a_plain_run_starts_again(
        source, tmp_path, capsys, monkeypatch):
    data = records(source, tmp_path / 'd', 6)
    interrupt_build(data, monkeypatch)
    hea = data / 'A0004.hea'
    hea.write_text(hea.read_text().replace('# Age: ', '# Age: 1'))  # edited since
    with pytest.raises(SystemExit) as e:
        run(data, '--workers', '0', '--resume')
    message = str(e.value)
    assert message.startswith('error: --resume: the partial cache in ') and '\n' not in message
    assert message.endswith('run without --resume to rebuild the cache from the start')
    assert (data / 'cache' / preprocess.PARTIAL).exists()  # kept: the refusal changes nothing

    capsys.readouterr()
    run(data, '--workers', '0')
    out = capsys.readouterr().out
    assert 'discarding the partial cache of an interrupted run (2 records done)' in out
    assert 'cache: 6 records' in out
    assert not (data / 'cache' / preprocess.PROGRESS).exists()


PEAK = '''
import runpy, sys
sys.path.insert(0, {root!r})
sys.argv = [{script!r}, '--data-dir', sys.argv[1], '--workers', '0']
runpy.run_path(sys.argv[0], run_name='__main__')
print('VmHWM', next(line.split()[1] for line in open('/proc/self/status')
                    if line.startswith('VmHWM')))
'''


def peak_rss_mb(data):
    """Peak resident memory of `python preprocess.py --data-dir DATA --workers 0`,
    in a fresh interpreter (VmHWM: getrusage would include this process,
    forked before the exec)."""
    code = PEAK.format(root=str(ROOT), script=str(ROOT / 'preprocess.py'))
    done = subprocess.run([sys.executable, '-c', code, str(data)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.rsplit('VmHWM', 1)[1].split()[0]) / 1024


def test_peak_memory_does_not_grow_with_the_number_of_records(source, tmp_path):
    few = peak_rss_mb(records(source, tmp_path / 'few', RECORDS // 6))
    many = peak_rss_mb(records(source, tmp_path / 'many', RECORDS))
    # 40 records more: 14 MB if their int16 rows were held in memory (a
    # memory-mapped cache filled in place grew 10 MB), 58 MB as float.
    # Measured growth: 0.2 MB; run to run noise is under 1 MB.
    assert many - few < 4, (few, many)
    assert os.path.getsize(tmp_path / 'many' / 'cache' / 'signals.npy') > 40 * 360e3
