"""Reading ECG records into model input: the one module every script uses.

    from records import RecordError, read_record, prepare
    rec = read_record('../shared/data/mitdb/100')   # header now, samples on demand
    rec.leads                                       # ['II', 'V5'] (MLII is lead II)
    x, real, quality = prepare(rec, ['II'])         # the last 30 s, as the model sees it
    x.shape, real, str(quality)                     # (1, 15000) [ True] ok

No torch here: the web app, visualize.py and the feature scripts import it
cheaply. The contract (kept small and stable on purpose):

read_record(path) -> Record, or RecordError. `path` is NAME.hea, NAME.mat,
NAME.dat or the bare NAME of a WFDB record (any signal format wfdb reads;
MATLAB v4 .mat as in the PhysioNet/CinC 2020/2021 challenges; any sampling
rate), or an original CPSC2018 .mat (struct ECG, no .hea beside it), or a
file of a hospital format, recognised by content and read by
records.formats (DICOM, GE MUSE/CardioSoft XML, Philips XML, HL7 aECG, SCP-ECG, ISHNE, EDF,
CSV; read_record(path, lead_map='ECG=II', fs=250) names generic channels and
gives a CSV's rate). Only the header is parsed; samples are read when asked
for, so a 24-hour Holter costs nothing to open. A Record (records/record.py
declares every field; each reader builds it in one call) has
    name, path, fs (Hz, float), sig_len (samples at fs), duration (s)
    format      'wfdb', 'cpsc2018' (the original .mat), or the hospital
                format's key ('dicom', 'muse', 'edf', ...)
    sig_names   the channel names as written in the file ('MLII', 'avr', 'D1')
    leads       the standard name of each channel (records.LEADS spelling, by
                alias and case: MLII/ML2 -> II, D1..D3/DI..DIII -> I..III,
                AVR/avr -> aVR, ...), None for a channel that is no ECG lead;
                an inverted lead ('-aVR', 'II (inverted)': channel_lead) is
                its lead, with signs -1: read() gives it the right way up
    units       per channel as written ('mV', 'uV', ...); values come in mV
    age (float, NaN if unknown), sex ('Male'/'Female'/'Unknown'),
    dx (list of SNOMED-CT codes, [] without a '# Dx:' comment; has_dx says
    which), comments (header comment lines), files (header and signal files),
    fmts (the WFDB format of each channel)
    device_measurements, device_statements   the cart's own reading where a
                file carries one (records.formats; {} and [] otherwise)
    ignored     channels a reader dropped (ignored_channels(record) adds
                those that name no lead)
    gains, baselines, limit   the ADC where the file gives it (None otherwise)
    median, full_disclosure   kept apart from the rhythm where a file has them
    signal      (sig_len, nchannels) float64 mV, NaN where a sample is missing;
                reads the whole record (use read(start, stop) for a part)
    read(start, stop) -> the samples [start, stop) of every channel, as signal
    clip_limits() -> the ADC's limits in mV (None without gains and limit)
    close()     lets the record's files go (header fields stay)

prepare(record, leads, window=15000, end=None) -> Prepared(x, real, quality):
    x        float32 (len(leads), window) mV at 500 Hz: the `window` samples
             (at 500 Hz) that end at `end` (default: the record's end, i.e.
             the last 30 s, as in the study), front zero-padded when the record
             is shorter, quantised to 1 µV exactly as preprocess.py's cache
    real     bool (len(leads),): True for a lead the record holds, False for
             one derived from two other limb leads (Einthoven/Goldberger)
    quality  Quality: str() is 'ok' or the flags ('flat V3; clipped II 0.4%');
             quality.flags is the tuple of flags
Only the part needed is read: the window plus a margin for the resampling
filter (resample_poly by the exact rational ratio), so the result is the same
as resampling the whole record and cutting, to float precision.

Reading: a record as the app, the API and visualize.py pass it around: record
(the Record), name, signal (n, len(leads)) mV at fs (what is drawn and
measured), leads, source (the file as uploaded), x / real / quality (the
model input, None where no model reads it), length and offset (where the
model's window lies in signal), id (x's hash) and seconds. records.uploads
builds them from uploaded files (read_prepared, load_uploads).

RecordError (str() is 'NAME: reason') for every bad case: no such file,
missing signal file, truncated or corrupt file, zero length, a requested lead
that is neither recorded nor derivable (the message names it and what the
record has), NaN/missing samples inside the window used (outside it they do
no harm), and a window with no usable signal (every lead flat, or amplitudes
~1000x too large for the stated units).

Quality flags (conservative: every real record in ../shared/data passes):
    flat L          lead L is flat or near-flat: in at least half of its 2-s
                    blocks (at ~125 samples/s) the peak-to-peak is under
                    20 µV (electrode off)
    clipped L p%    at least 0.1% of the samples at the ADC's limits, or in
                    recurring plateaus (>= 3 runs of >= 20 ms) at the lead's
                    extreme value: saturation
    amplitude L     robust peak-to-peak over MAX_MV: implausible for an ECG
                    in mV (a lead with a unit or gain error)
    short S s       the record fills only S s of the model's window, under
                    6 s (CPSC2018's shortest record); under MIN_SECONDS
                    (2.5 s, records/limits.py) it is refused
The helpers recorded_leads(record), obtainable(leads) and missing_leads(record,
leads) tell which leads a record has, can give, and lacks.
"""
# The public API, importable as `records.NAME`. The package is torch-free and
# imports nothing from the scripts above it (tests/test_layers.py holds that).
from records.beats import BEAT_SYMBOLS, Beats, read_beats
from records.errors import RecordError
from records.find import (
    FORMAT_SUFFIXES,
    RECORD_SUFFIXES,
    WFDB_SUFFIXES,
    csv_names_a_lead,
    find_records,
    iter_records,
    read_list,
    record_base,
)
from records.leads import (
    LEADS,
    LIMB,
    apply_lead_map,
    canonical_lead,
    channel_lead,
    ignored_channels,
    missing_leads,
    obtainable,
    parse_lead_map,
    parse_leads,
    recorded_leads,
)
from records.mat import mat_check
from records.prepare import (
    FS,
    WINDOW,
    Prepared,
    Quality,
    Reading,
    check_quality,
    length_at_fs,
    segment_ends,
    prepare,
    quantise,
    resample_ratio,
    resampled_length,
    to_mV,
)
from records.read import read_record
from records.record import UNITS_TO_MV, Record
from records.wfdb import contained, header_path, read_header

__all__ = [
    'BEAT_SYMBOLS', 'Beats', 'read_beats', 'RecordError', 'FORMAT_SUFFIXES', 'RECORD_SUFFIXES',
    'WFDB_SUFFIXES', 'csv_names_a_lead', 'find_records', 'iter_records', 'read_list',
    'record_base', 'LEADS', 'LIMB',
    'apply_lead_map', 'canonical_lead', 'channel_lead', 'ignored_channels', 'missing_leads',
    'obtainable',
    'parse_lead_map', 'parse_leads', 'recorded_leads', 'mat_check', 'FS', 'WINDOW', 'Prepared',
    'Quality', 'check_quality', 'length_at_fs', 'segment_ends', 'prepare', 'quantise',
    'resample_ratio',
    'resampled_length', 'to_mV', 'Reading', 'read_record', 'UNITS_TO_MV', 'Record', 'contained',
    'header_path', 'read_header',
]
