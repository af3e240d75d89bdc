"""predict.py --records at archive scale (archive.py): rows streamed as they
are scored, the same file from the main process, worker processes and Ray, a
killed run resumed to the same file, a list of paths. (Memory over 1,000 and
10,000 records: bench.py --only archive.)"""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import ROOT
from helpers import ecg_like, tiny_checkpoint, write_record

import archive
import predict
from records import read_record
from resnet import probabilities

WINDOW = 2500   # 5 s: a small model, quick to run


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp('archive'), 'ARCH', WINDOW)[1]


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """24 twelve-lead 8-s records, in a folder and a subfolder."""
    root = tmp_path_factory.mktemp('records')
    for i in range(24):
        write_record(root / ('sub' if i % 3 == 0 else ''), f'R{i:03d}',
                     ecg_like(500 * 8, 500, 12, seed=i))
    return root


def score(model, out, *paths, extra=()):
    return predict.main(['--model-path', str(model), '--device', 'cpu', '--precision', 'fp32',
                         '--batch-size', '4', '--records', *map(str, paths),
                         '--out', str(out), *extra])


def test_streamed_rows_are_the_models_scores_in_csv_and_parquet(model, folder, tmp_path):
    csv = archive.read_rows(score(model, tmp_path / 'p.csv', folder))
    assert len(csv) == 24 and not list(tmp_path.glob('*.partial'))
    # the model applied directly, record by record, to what records.prepare gives
    run = predict.runs.load_run(model, '.', device=torch.device('cpu'))
    for _, row in csv.sample(4, random_state=0).iterrows():
        x = archive.prepare(read_record(row['path']), run.leads, run.window)[0]
        want = probabilities(run.model, x[None], torch.device('cpu'), 'fp32', batch_size=1)[0]
        got = row[[f'score_{c}' for c in run.classes]].to_numpy(float)
        assert np.allclose(got, want, atol=2e-6), row['record']
    parquet = archive.read_rows(score(model, tmp_path / 'p.parquet', folder))
    assert parquet.columns.tolist() == csv.columns.tolist()
    assert parquet['record'].tolist() == csv['record'].tolist()
    assert np.allclose(parquet.filter(like='score_').to_numpy(float),
                       csv.filter(like='score_').to_numpy(float), atol=1e-6)
    assert (parquet['sha256'] == csv['sha256']).all()


def test_workers_write_the_same_file_records_and_windows(model, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(archive, 'CHUNK_WINDOWS', 5)   # a Holter's windows in 3 tasks
    holter = tmp_path / 'holter'
    write_record(holter, 'LONG', ecg_like(500 * 60, 500, 12, seed=99))
    for extra in ((), ('--segments',)):
        files = []
        for workers in ('0', '2'):
            out = tmp_path / f'w{workers}{len(extra)}.csv'
            score(model, out, folder / 'sub', holter, extra=('--workers', workers, *extra))
            files.append(out.read_bytes())
        assert files[0] == files[1], extra
    seg = archive.read_rows(out)
    assert (seg['record'] == 'LONG').sum() == 12 and seg['end_s'].max() == 60


def test_a_killed_run_resumes_to_the_same_file(model, folder, tmp_path):
    flags = ['--model-path', str(model), '--device', 'cpu', '--precision', 'fp32',
             '--batch-size', '2', '--records', str(folder)]
    whole = tmp_path / 'whole.csv'
    predict.main(flags + ['--out', str(whole), '--fhir', str(tmp_path / 'whole.ndjson')])
    out, fhir = tmp_path / 'cut.csv', tmp_path / 'cut.ndjson'
    partial = tmp_path / 'cut.csv.partial'
    child = subprocess.Popen([sys.executable, str(ROOT / 'predict.py'), *flags, '--out', str(out),
                              '--fhir', str(fhir)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if partial.exists() and partial.read_bytes().count(b'\n') >= 5:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not out.exists() and partial.exists(), 'the run ended before it could be killed'
    kept = partial.read_bytes().count(b'\n') - 1
    assert 4 <= kept < 24
    with pytest.raises(SystemExit, match='--resume'):
        predict.main(flags + ['--out', str(out)])   # never overwritten without a word
    predict.main(flags + ['--out', str(out), '--fhir', str(fhir), '--resume'])
    assert out.read_bytes() == whole.read_bytes()
    assert len(fhir.read_text().splitlines()) == 24
    # a finished CSV takes new records: only they are scored
    write_record(folder / 'later', 'NEW', ecg_like(500 * 8, 500, 12, seed=77))
    try:
        predict.main(flags + ['--out', str(out), '--resume'])
    finally:
        (folder / 'later' / 'NEW.hea').unlink()
    rows = archive.read_rows(out)
    assert len(rows) == 25 and rows['record'].tolist()[-1] == 'NEW'


def test_records_from_a_list_and_the_refusals(model, folder, tmp_path, capsys):
    listing = tmp_path / 'list.txt'
    listing.write_text(f'# the archive\n{folder / "sub"}\n\n{folder}/R00[12].hea\n'
                       f'{tmp_path / "missing"}\n')
    rows = archive.read_rows(predict.main(
        ['--model-path', str(model), '--device', 'cpu', '--records-from', str(listing),
         '--out', str(tmp_path / 'l.csv')]))
    assert rows['record'].tolist() == [f'R{i:03d}' for i in range(0, 24, 3)] + ['R001', 'R002']
    assert 'skipped ' + str(tmp_path / 'missing') in capsys.readouterr().err
    with pytest.raises(SystemExit, match='no records match'):
        predict.main(['--model-path', str(model), '--records', str(tmp_path / 'none*'),
                      '--out', str(tmp_path / 'n.csv')])
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'A0.hea').write_text('A0 12 500\n')   # a header with no signal lines
    with pytest.raises(SystemExit, match='^error: A0'):
        predict.main(['--model-path', str(model), '--records', str(bad), str(folder), '--strict',
                      '--out', str(tmp_path / 's.csv')])
    assert not list(tmp_path.glob('s.csv*'))   # stopped before any row: nothing left behind
    with pytest.raises(SystemExit, match='--engine ray'):
        predict.main(['--model-path', str(model), '--records', str(folder),
                      '--address', 'auto'])


@pytest.mark.slow
def test_ray_gives_the_same_scores_record_by_record(model, folder, tmp_path):
    local = score(model, tmp_path / 'local.csv', folder)
    on_ray = score(model, tmp_path / 'ray.csv', folder, extra=('--engine', 'ray',
                                                                '--workers', '1'))
    a, b = archive.read_rows(local), archive.read_rows(on_ray)
    assert a['record'].tolist() == b['record'].tolist()
    assert np.allclose(a.filter(like='score_').to_numpy(float),
                       b.filter(like='score_').to_numpy(float), atol=1e-6)
    assert a.drop(columns=list(a.filter(like='score_'))).equals(
        b.drop(columns=list(b.filter(like='score_'))))
