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
# Hospital formats (records/formats/): every reader but ISHNE and EDF (memory-
# mapped or read per window) decodes the whole signal into memory, so each is
# held to the whole-matrix budget, counted as leads x the longest lead (short
# leads are padded to it). Checked on the sizes a file declares, before
# anything is decoded, and again on what a decoder produces, inside its loop.
FORMAT_MAX_VALUES = WHOLE_MAX_VALUES
# The real exports of ../shared/data/formats are 57-518 kB of XML with at most
# 2,516 '<'; a 12-lead 10-s XML is < 5 MB whatever its encoding (UTF-16,
# CardioSoft's full disclosure in text). ElementTree costs ~100 B per element,
# so 10 MB of tiny elements cost 267 MB: both the bytes and the elements are
# capped before parsing.
MAX_XML_BYTES = {'muse': 8 << 20, 'philips': 8 << 20, 'cardiosoft': 8 << 20,
                 'aecg': 16 << 20}   # an aECG may hold minutes of rhythm as text
MAX_XML_ELEMENTS = 100_000       # real files: < 2,600 (counted as '<' in the bytes)
# CSV text: ~8 characters a value; 32 MB is ~4 M values (12 leads x 11 min at
# 500 Hz), parsed by numpy's C reader from the file, not from a list of lines.
MAX_CSV_BYTES = 32 << 20
# SCP-ECG: the record is read whole and its CRC computed over it; the budget
# stored as uncompressed int16 plus 1 MB of other sections.
MAX_SCP_BYTES = 2 * FORMAT_MAX_VALUES + (1 << 20)
# Section 2 may hold up to 65,535 Huffman tables; carts write one to a few, of
# a few dozen codes. Each table a lead enters costs a pass over the lead's bits
# (its codes at every bit position, found a block of bits at a time).
SCP_MAX_TABLES = 16
SCP_MAX_CODES = 1024
SCP_BLOCK_BITS = 1 << 13
SCP_TABLE_PASSES = 3             # table blocks one lead may need, in passes over its bits
# Bimodal compression: carts decimate 500 Hz to 125 Hz (4); above 8 is corrupt.
SCP_MAX_DECIMATION = 8
# DICOM: pydicom reads a waveform sequence whole (~2x the file in memory,
# deferred reading or not); the budget as 32-bit samples plus 8 MB of other
# elements. The channels x samples the header declares are checked after.
MAX_DICOM_BYTES = 4 * FORMAT_MAX_VALUES + (8 << 20)
# MFER (.mwf): the file is read whole; the budget as 32-bit samples (MFER's
# widest common type) plus 1 MB of definitions and a monitor's non-ECG
# channels at lower rates. Real files hold a few hundred definitions (events
# of a Holter a few thousand): a walk over more is a damaged or hostile file.
MAX_MFER_BYTES = 4 * FORMAT_MAX_VALUES + (1 << 20)
MFER_MAX_DEFINITIONS = 100_000
# Distinct frame layouts kept (a copy of up to 256 channels' definitions
# each): a cart writes one or two (rhythm, median beat).
MFER_MAX_LAYOUTS = 16
# The shortest record diagnosed: two whole RR intervals (three beats) at 72/min,
# and at least two beats at any rate from 48/min, what a rhythm needs (AF is
# irregular RR, a PAC or PVC is a beat early against the one before). Below
# it a record is refused; below the model's window (at most 6 s, CPSC2018's
# shortest record) it is flagged 'short'.
MIN_SECONDS = 2.5
