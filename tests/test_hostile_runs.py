"""Issue 28, "runs that die, results that lie": predict.py --records keeps
going past any bad file (the measurement columns on), the outside-folder rule
for every format, a minimum duration, inverted leads, the synthetic flag from
the data's provenance, and a DICOM whose median beat is broken. Every file is
made here."""
import base64
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FAST, ecg_like, make_signal, write_record, wrsamp

import main as main_py
from archive import read_rows
import predict
import preprocess
import runs
import synthetic
import utils
from records import (
    RecordError,
    channel_lead,
    prepare,
    read_record,
)
from records.formats import lead_name
from records.limits import MIN_SECONDS
from resnet import build_model

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 1000  # 2 s: the model here is a random ResNet-18, read, not trained


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    """A random lead-I ResNet-18 (2-s window): every hostile file below has
    lead I, so each is refused for its own defect, not for a missing lead."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('runs') / 'models' / 'TINY-I-s42-f7' / 'best.pt'
    utils.atomic_torch_save({'model': build_model('resnet18', 1).state_dict(), 'leads': ['I'],
                             'classes': utils.CLASSES, 'arch': 'resnet18', 'window': WINDOW,
                             'args': {'data_dir': 'data/TINY', 'seed': 42}}, path)
    return path


# --------------------------------------------------------------------------
# Files.

def csv_file(path, signal, fs, leads=('I', 'II'), time_col=True):
    """A CSV of `signal` (n, len(leads)) mV with a time column in seconds."""
    n = len(signal)
    cols = ([np.arange(n) / fs] if time_col else []) + [signal[:, j] for j in range(len(leads))]
    head = (['time'] if time_col else []) + list(leads)
    np.savetxt(path, np.column_stack(cols), delimiter=',', header=','.join(head), comments='',
               fmt='%.10g')
    return path


def muse_file(path, sample_base, n=5000):
    digital = np.rint(ecg_like(n, 500, 2) * 200).astype('<i2')
    leads = ''.join(
        f'<LeadData><LeadAmplitudeUnitsPerBit>4.88</LeadAmplitudeUnitsPerBit>'
        f'<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadID>{lead}</LeadID>'
        f'<WaveFormData>{base64.b64encode(col.tobytes()).decode()}'
        f'</WaveFormData></LeadData>' for lead, col in zip(('I', 'II'), digital.T.copy()))
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<RestingECG><Waveform>'
                    f'<WaveformType>Rhythm</WaveformType><SampleBase>{sample_base}</SampleBase>'
                    f'{leads}</Waveform></RestingECG>')
    return path


def nested_cells_mat(path, depth=50):
    """A v5 .mat `ECG` of cells nested `depth` deep (refused when read)."""
    def el(mtype, data):
        return struct.pack('<II', mtype, len(data)) + data + bytes(-len(data) % 8)

    def head(cls, name, content_len):
        body = el(6, struct.pack('<II', cls, 0)) + el(5, struct.pack('<2i', 1, 1)) + el(1, name)
        return struct.pack('<II', 14, len(body) + content_len) + body
    leaf = head(6, b'', 16) + el(9, struct.pack('<d', 1.0))
    element, inner = leaf, len(leaf)
    for level in range(depth):
        h = head(1, b'ECG' if level == depth - 1 else b'', inner)
        element, inner = h + element, inner + len(h)
    data = b'\x78\x01' + zlib.compress(element)[2:]
    path.write_bytes(b'MATLAB 5.0 MAT-file'.ljust(116) + bytes(8) + struct.pack('<H', 0x0100)
                     + b'IM' + struct.pack('<II', 15, len(data)) + data)
    return path


def hostile_folder(folder, outside):
    """A folder of bad records beside one good one (GOOD, 4 s) -> folder."""
    folder.mkdir(parents=True, exist_ok=True)
    write_record(folder, 'GOOD', make_signal(500 * 4, seed=1))
    nested_cells_mat(folder / 'NESTH.mat')   # read lazily: fails when its samples are read
    (folder / 'NESTH.hea').write_text('NESTH 1 500 2000\nNESTH.mat 16 1000/mV 16 0 0 0 0 I\n')
    sig = ecg_like(3000, 500, 2)
    csv_file(folder / 'GIGA.csv', sig, 1e9)                  # 1e9 Hz
    csv_file(folder / 'TENTH.csv', sig[:50], 500)            # 0.1 s
    csv_file(folder / 'FAST.csv', ecg_like(6000, 300_000, 2), 300_000)  # 0.02 s at 300 kHz
    muse_file(folder / 'NEGRATE.xml', -500)
    muse_file(folder / 'GIGARATE.xml', 1e9)
    muse_file(outside / 'elsewhere.xml', 500)
    os.symlink(outside / 'elsewhere.xml', folder / 'link.xml')
    return folder


BAD = {'NESTH': '.mat layout refused', 'GIGA': 'sampling rate', 'TENTH': 'under the 2.5 s',
       'FAST': 'under the 2.5 s', 'NEGRATE': 'sampling rate', 'GIGARATE': 'sampling rate',
       'link': "resolves outside the record's folder"}


# --------------------------------------------------------------------------
# 1-3. predict.py --records over hostile files; containment; minimum duration.

def test_predict_scores_the_good_record_past_every_bad_one(model, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    data = hostile_folder(tmp_path / 'records', outside)
    out = tmp_path / 'p.csv'
    done = subprocess.run(
        [sys.executable, 'predict.py', '--model-path', str(model), '--device', 'cpu',
         '--precision', 'fp32', '--records', str(data), '--out', str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert 'Traceback' not in done.stderr, done.stderr
    df = pd.read_csv(out)
    assert df['record'].tolist() == ['GOOD'] and np.isfinite(df['hr']).all()  # measured
    skipped = [line for line in done.stderr.splitlines() if line.startswith('skipped ')]
    why = {line.split()[1].rstrip(':'): line for line in skipped}
    assert sorted(why) == sorted(BAD) and len(skipped) == len(BAD), skipped
    assert all(BAD[name] in line and len(line) < 400 for name, line in why.items()), skipped
    assert f'{len(BAD)} skipped' in done.stdout
    # --segments: the same records, each window its own row, in this process
    seg = read_rows(predict.main(['--model-path', str(model), '--device', 'cpu', '--precision',
                                  'fp32', '--records', str(data), '--out', str(tmp_path / 's.csv'),
                                  '--segments']))
    assert set(seg['record']) == {'GOOD'} and len(seg) == 2


def test_every_format_keeps_to_its_folder_unless_allowed(tmp_path):
    outside, data = tmp_path / 'outside', tmp_path / 'records'
    outside.mkdir()
    data.mkdir()
    muse_file(outside / 'elsewhere.xml', 500)
    csv_file(outside / 'elsewhere.csv', ecg_like(3000, 500, 2), 500)
    for name in ('elsewhere.xml', 'elsewhere.csv'):
        link = data / f'link{Path(name).suffix}'
        os.symlink(outside / name, link)
        with pytest.raises(RecordError, match=r"resolves outside the record's folder; refused "
                                              r'\(pass --allow-outside-folder'):
            read_record(link)
        n = read_record(link, allow_outside=True).sig_len
        assert n == (5000 if name.endswith('xml') else 3000)
    # a folder that is itself a link is the folder: its files are inside it
    os.symlink(outside, tmp_path / 'linked')
    assert read_record(tmp_path / 'linked' / 'elsewhere.xml').fs == 500


def test_a_record_under_the_floor_is_refused_and_a_short_one_flagged(tmp_path):
    sig = ecg_like(500 * 10, 500, 2)
    for name, n, fs in (('TENTH', 50, 500), ('FAST', 6000, 300_000), ('TWO', 1000, 500)):
        x = sig[:n] if fs == 500 else ecg_like(n, fs, 2)
        rec = read_record(csv_file(tmp_path / f'{name}.csv', x, fs))
        with pytest.raises(RecordError, match=rf'^{name}: .* s of signal, under the '
                                              rf'{MIN_SECONDS:g} s a diagnosis needs'):
            prepare(rec, ['II'])
    four = read_record(csv_file(tmp_path / 'FOUR.csv', sig[:2000], 500))
    assert str(prepare(four, ['II']).quality) == 'short 4.0 s'       # the 30-s window
    assert str(prepare(four, ['II'], window=1000).quality) == 'ok'    # a 2-s model's
    ten = read_record(csv_file(tmp_path / 'TEN.csv', sig, 500))
    assert str(prepare(ten, ['II']).quality) == 'ok'  # CPSC2018's own lengths: no flag
    assert MIN_SECONDS >= 2.0  # two beats even at 60/min


def test_preprocess_skips_what_would_break_the_cache(tmp_path):
    data = tmp_path / 'exports'
    data.mkdir()
    sig = ecg_like(500 * 8, 500, 2)
    csv_file(data / 'OK.csv', sig, 500)
    csv_file(data / 'GIGA.csv', sig, 1e9)
    csv_file(data / 'TENTH.csv', sig[:50], 500)
    labels = tmp_path / 'labels.csv'
    labels.write_text('record,dx\nOK,426783006\nGIGA,426783006\nTENTH,426783006\n')
    preprocess.main(['--data-dir', str(data), '--labels', str(labels), '--workers', '1'])
    skipped = pd.read_csv(data / 'skipped.csv')
    assert sorted(skipped['patient_id']) == ['GIGA', 'TENTH']
    assert pd.read_csv(data / 'labels.csv')['patient_id'].tolist() == ['OK']


# --------------------------------------------------------------------------
# 4. Inverted leads.

@pytest.mark.parametrize('label, lead, sign', [
    ('aVR', 'aVR', 1), ('MDC_ECG_LEAD_AVR', 'aVR', 1), ('Lead II', 'II', 1), ('V5-Ref', 'V5', 1),
    ('-aVR', 'aVR', -1), ('\u2212aVR', 'aVR', -1), ('MDC_ECG_LEAD_-aVR', 'aVR', -1),
    ('aVR (neg)', 'aVR', -1), ('AVR(NEG)', 'aVR', -1), ('II (inverted)', 'II', -1),
    ('Lead II (inverted)', 'II', -1), ('inv II', 'II', -1), ('ECG -aVR', 'aVR', -1),
    ('negative aVR', 'aVR', -1), ('V1-inv', 'V1', -1), ('neg', None, 1), ('Pleth', None, 1)])
def test_inverted_lead_names(label, lead, sign):
    assert channel_lead(label) == (lead, sign)
    assert lead_name(label) == (lead if sign > 0 else None)  # never the lead itself


def test_inverted_leads_are_read_negated_in_every_spelling(tmp_path):
    sig = ecg_like(500 * 6, 500, 3, seed=4)
    for k, names in enumerate([('I', 'II (inverted)', '-aVR'), ('I', 'inv II', 'aVR (neg)'),
                               ('I', 'MDC_ECG_LEAD_-II', 'MDC_ECG_LEAD_-aVR')]):
        rec = read_record(csv_file(tmp_path / f'C{k}.csv', sig, 500, names))
        assert rec.leads == ['I', 'II', 'aVR'] and rec.signs.tolist() == [1, -1, -1]
        np.testing.assert_allclose(rec.signal, sig * [1, -1, -1], atol=1e-9)
        x, real, _ = prepare(rec, ['II', 'aVR'])
        np.testing.assert_allclose(x[:, -3000:], -sig[:, 1:].T, atol=1e-3)
    # a WFDB header and a MUSE file alike
    rec = read_record(wrsamp(tmp_path, 'W', sig, 500, ['I', '-aVR', 'II']))
    assert rec.leads == ['I', 'aVR', 'II']
    np.testing.assert_allclose(rec.signal[:, 1], -sig[:, 1], atol=2e-3)
    path = muse_file(tmp_path / 'm.xml', 500)
    path.write_text(path.read_text().replace('<LeadID>II</LeadID>', '<LeadID>-aVR</LeadID>'))
    muse, plain = read_record(path), read_record(muse_file(tmp_path / 'p.xml', 500))
    assert muse.leads == ['I', 'aVR']
    np.testing.assert_allclose(muse.signal[:, 1], -plain.signal[:, 1])
    # derived limb leads use the lead, not the inverted trace: II from I and -aVR
    both = read_record(csv_file(tmp_path / 'D.csv', np.column_stack(
        [sig[:, 0], 0.5 * (sig[:, 0] + sig[:, 1])]), 500, ('I', '-aVR')))
    x, real, _ = prepare(both, ['II'])
    assert not real[0]
    np.testing.assert_allclose(x[0, -3000:], sig[:, 1], atol=2e-3)


def test_a_lead_map_keeps_the_sign_its_channel_name_gives(tmp_path):
    sig = ecg_like(500 * 4, 500, 2)
    path = csv_file(tmp_path / 'M.csv', sig, 500, ('aVR (neg)', 'chest'))
    rec = read_record(path, lead_map='aVR (neg)=aVR,chest=V2')
    assert rec.leads == ['aVR', 'V2'] and rec.signs.tolist() == [-1, 1]
    np.testing.assert_allclose(rec.signal, sig * [-1, 1], atol=1e-9)


def test_clip_limits_of_an_inverted_lead_are_swapped(tmp_path):
    sig = ecg_like(500 * 4, 500, 2)
    rec = read_record(wrsamp(tmp_path, 'W', sig, 500, ['I', '-aVR']))
    lo, hi, _ = rec.clip_limits()
    assert (lo < hi).all() and np.allclose(lo, -hi)


# --------------------------------------------------------------------------
# 5. The synthetic flag from the data's provenance.

def test_a_model_of_synthetic_data_is_synthetic_whatever_its_folder(tmp_path):
    data = tmp_path / 'hospital_data'
    synthetic.write_dataset(data, 24, seed=0, workers=1, duration=10.0, progress=False)
    assert json.loads((data / 'synthetic.json').read_text())['provenance'] == 'synthetic'
    preprocess.main(['--data-dir', str(data), '--workers', '1'])
    assert json.loads((data / 'folds.json').read_text())['provenance']['synthetic'] is True
    main_py.main(['--data-dir', str(data), '--epochs', '1', '--leads', 'all',
                  '--root', str(tmp_path), *FAST])
    path = next((tmp_path / 'models').glob('hospital_data-*/best.pt'))
    run = runs.load_run(path, tmp_path)
    assert run.database == 'hospital_data' and run.synthetic
    assert run.ckpt['provenance']['synthetic'] is True


def test_other_data_is_not_synthetic_and_old_checkpoints_keep_the_name_rule(tmp_path):
    assert preprocess.data_provenance(tmp_path) == {'synthetic': False}
    assert not runs.is_synthetic({'provenance': {'synthetic': False}}, 'SYNTH')
    assert runs.is_synthetic({'provenance': {'synthetic': True}}, 'hospital')
    assert runs.is_synthetic({}, 'SYNTH') and not runs.is_synthetic({}, 'CPSC')


# --------------------------------------------------------------------------
# 6. A DICOM whose median beat is broken.

def dicom_file(path, digital, fs, median_bytes=None):
    """A 12-lead ECG DICOM of two leads: RHYTHM, and a MEDIAN BEAT group whose
    data holds `median_bytes` bytes (None: as many as it declares)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    sop = '1.2.840.10008.5.1.4.1.1.9.1.1'
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID

    def group(data, label, nbytes=None):
        g = Dataset()
        g.MultiplexGroupLabel, g.SamplingFrequency = label, fs
        g.NumberOfWaveformChannels, g.NumberOfWaveformSamples = data.shape[1], data.shape[0]
        g.WaveformBitsAllocated, g.WaveformSampleInterpretation = 16, 'SS'
        chans = []
        for code in (1, 2):
            ch, src = Dataset(), Dataset()
            src.CodeValue, src.CodingSchemeDesignator = f'5.6.3-9-{code}', 'SCPECG'
            src.CodeMeaning = ['Lead I', 'Lead II'][code - 1]
            ch.ChannelSourceSequence = [src]
            ch.ChannelSensitivity, ch.ChannelSensitivityCorrectionFactor = 2.5, 1
            ch.ChannelBaseline, ch.ChannelSampleSkew, ch.WaveformBitsStored = 0, 0, 16
            chans.append(ch)
        g.ChannelDefinitionSequence = chans
        raw = np.asarray(data, '<i2').tobytes()
        g.WaveformData = raw if nbytes is None else raw[:nbytes]
        return g
    ds.WaveformSequence = [group(digital, 'RHYTHM'),
                           group(digital[:fs // 2], 'MEDIAN BEAT', median_bytes)]
    ds.save_as(str(path), enforce_file_format=True)
    return path


def test_a_broken_median_beat_is_dropped_and_the_rhythm_read(tmp_path):
    digital = np.rint(ecg_like(5000, 500, 2) * 400).astype(np.int16)
    good = read_record(dicom_file(tmp_path / 'good.dcm', digital, 500))
    assert good.median['signal'].shape == (250, 2) and good.ignored == []
    rec = read_record(dicom_file(tmp_path / 'broken.dcm', digital, 500, median_bytes=10))
    assert rec.median is None and rec.leads == ['I', 'II'] and rec.sig_len == 5000
    np.testing.assert_allclose(rec.signal, good.signal)
    assert len(rec.ignored) == 1 and rec.ignored[0].startswith('median beat (unreadable')
    assert str(prepare(rec, ['II']).quality) == 'ok'
