"""What a file may make us allocate, walk or read: the ceilings of every reader."""
# Ceilings on what a file may make us allocate or walk (hostile input: a
# few-kB file must not cost gigabytes or crash the process; see docs/hostile.md).
MAX_HEADER_BYTES = 2 ** 20       # real headers are < 10 kB; comments of a few kB
MAX_SIGNALS = 256                # 12 leads + auxiliaries; EEG-style exports reach 256
FS_RANGE = (1.0, 500_000.0)      # Hz; resample_ratio needs a ratio within 1/1000..500
# Readers that must load a whole matrix for any window (v5 .mat through scipy,
# the CPSC2018 struct): 12 leads x 30 min at 500 Hz, 86 MB as float64.
WHOLE_MAX_VALUES = 12 * 500 * 1800
# One window read (rows x channels at the record's rate): 30 s x 12 leads at
# 500 Hz is 180 k values; this admits ~45 s of 12 leads at 30 kHz.
READ_MAX_VALUES = 2 ** 24
MAT_MAX_DEPTH = 2                # containers at depth 0 (ECG struct) and 1 only
MAT_MAX_ELEMENTS = 4096          # matrices in one .mat (scipy builds one object each)
REASON_MAX = 300                 # characters of a RecordError's reason
OUTSIDE_HINT = 'pass --allow-outside-folder to read it anyway'
MAX_XML_BYTES = 64 << 20   # a resting ECG's XML is < 5 MB; refuse before parsing a giant
