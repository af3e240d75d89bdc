"""Uploaded files -> records: the one upload path of the web app (app.py) and
the API. Files come in as (browser name, bytes); they are written under
sanitised names into a temporary folder, paired into records (a WFDB header
with the signal files it names, a CPSC2018 .mat on its own), read through
records.read_record as every script reads them, and the folder is removed as
soon as the records are read (they are kept in memory only, each a
records.Reading: the Record, its model input and its display).

    from records import uploads
    readings, problems = uploads.load_uploads([('A0001.hea', b'...'), ('A0001.mat', b'...')],
                                              leads, window)
    readings[0].x, readings[0].signal, readings[0].record.device_measurements
    with tempfile.TemporaryDirectory() as tmp:
        paths, problems = uploads.stage(files, tmp)   # record paths inside tmp

A bad file is one (file, reason) problem; the rest of the upload goes on.
Hostile uploads (docs/hostile.md): one budget per request for the bytes and
files staged (MAX_UPLOAD_BYTES, MAX_MEMBERS: all zips together), members
streamed to disk 1 MB at a time and counted as they come (a zip's declared
sizes are not trusted), each bad member (encrypted, unknown compression, a
name that is not the UTF-8 it claims, ../ or absolute, CRC) one problem
line, and case twins (x.HEA / x.hea) both refused. Records are read with
records.read_record's containment rule: every file a header names lies in
the staging folder. Files may be bytes or binary files (an UploadedFile: not
copied).
"""
import io
import re
import struct
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from records import formats
from records.errors import RecordError
from records.find import csv_names_a_lead
from records.leads import LEADS, missing_leads
from records.prepare import FS, Reading, length_at_fs, prepare
from records.read import read_record

# One uploaded or unpacked file, and everything one request stages (zips
# unpacked, all zips together): an ECG of 24 h at 500 Hz x 12 leads in int16
# is ~1 GB; 10-60 s records are < 2 MB. MAX_FILE_BYTES is kept equal to
# server.maxUploadSize (MB) in .streamlit/config.toml.
MAX_FILE_BYTES = 50 * 2 ** 20
MAX_UPLOAD_BYTES = 200 * 2 ** 20
MAX_MEMBERS = 1000             # files one request stages (a zip's members count each)
CHUNK = 2 ** 20                # members are copied to disk 1 MB at a time
UNSAFE = re.compile(r'[^A-Za-z0-9._+-]')
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def safe_filename(name):
    """A browser's file name -> a plain file name, or None. Folders ('../',
    'C:\\'), and characters outside [A-Za-z0-9._+-] are dropped, so nothing
    from the browser chooses where a file is written."""
    base = str(name).replace('\\', '/').split('/')[-1]
    base = UNSAFE.sub('_', base).lstrip('.')[:128]
    return base or None


def _size(n):
    return f'{n / 2 ** 20:.1f} MB' if n >= 2 ** 20 else f'{n / 1024:.0f} kB'


class _Staging:
    """What one request has staged in `folder`: the names (case twins such as
    x.HEA / x.hea are one name on many disks and to records.header_path's
    users, so both are refused), and one budget of bytes and files for the
    whole request, not per zip."""

    def __init__(self, folder):
        self.folder, self.staged, self.problems = Path(folder), {}, []
        self.lower, self.twins = {}, set()
        self.bytes_left, self.members_left = MAX_UPLOAD_BYTES, MAX_MEMBERS

    def refuse(self, name, reason):
        self.problems.append((name, reason))

    def claim(self, name, declared=0):
        """-> the safe name to write `name` under, or None (a problem line)."""
        safe = safe_filename(name)
        if safe is None:
            return self.refuse(name, 'not a usable file name')
        if safe in self.staged:
            return self.refuse(name, f'a second file named {safe} in this upload; upload '
                                     'records with the same name separately')
        low = safe.lower()
        if low in self.twins or low in self.lower:
            if low in self.lower:  # the first twin, already written: refused too
                first = self.lower.pop(low)
                (self.folder / first).unlink(missing_ok=True)
                self.refuse(self.staged.pop(first), f'{first} and {safe} differ only in '
                                                    'case; both refused (rename one)')
            self.twins.add(low)
            return self.refuse(name, f'{safe} differs only in case from another file of '
                                     'this upload; both refused (rename one)')
        if self.members_left <= 0:
            return self.refuse(name, f'over the size limit of {MAX_MEMBERS} files an upload')
        if declared > min(MAX_FILE_BYTES, self.bytes_left):
            return self.refuse(name, self._over())
        return safe

    def _over(self):
        return (f'over the size limit ({_size(MAX_FILE_BYTES)} a file, '
                f'{_size(MAX_UPLOAD_BYTES)} an upload, zips unpacked)')

    def write(self, name, safe, src):
        """Copy the stream src to folder/safe, CHUNK at a time, stopping at the
        limits whatever the stream declared. -> True, or False (a problem line;
        nothing left on disk). Errors of src (a zip member's CRC, ...) propagate."""
        limit, done, path = min(MAX_FILE_BYTES, self.bytes_left), 0, self.folder / safe
        try:
            with open(path, 'wb') as out:
                while chunk := src.read(CHUNK):
                    done += len(chunk)
                    if done > limit:
                        path.unlink()
                        self.refuse(name, self._over())
                        return False
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.bytes_left -= done
        self.members_left -= 1
        self.staged[safe] = name
        self.lower[safe.lower()] = safe
        return True


def _binary(data):
    """bytes or a binary file (Streamlit's UploadedFile, an open file) -> a
    seekable binary stream at its start."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(data)
    data.seek(0)
    return data


def _stream_size(f):
    size = f.seek(0, io.SEEK_END)
    f.seek(0)
    return size


def _eocd(f):
    """The zip's end-of-central-directory record -> (entries it claims, cd
    size, its position), or None (none found: zipfile reports that)."""
    size = _stream_size(f)
    f.seek(max(0, size - 65557))
    tail = f.read()
    f.seek(0)
    at = tail.rfind(b'PK\x05\x06')
    if at < 0 or len(tail) - at < 22:
        return None
    _, _, _, _, entries, cd_size, _, _ = struct.unpack('<4s4H2LH', tail[at:at + 22])
    return entries, cd_size, max(0, size - 65557) + at


def zip_directory(data, most=None):
    """A zip's central directory, walked by us and bounded, before zipfile
    reads it (zipfile lists every entry the directory holds, whatever the
    end record claims: a 1-MB directory of 20,000 entries that claims 1).
    -> ([(name bytes, flags, compressed size, size)], at most most + 1 of
    them), or a reason (str) the zip is refused: no end record, a zip64
    end record (an ECG upload is far below 4 GB and 65,535 files), a
    directory larger than the file, more than `most` entries."""
    most = MAX_MEMBERS if most is None else most
    f = _binary(data)
    eocd = _eocd(f)
    if eocd is None:
        return 'not a readable .zip (no end of central directory)'
    claimed, cd_size, end = eocd
    if claimed == 0xFFFF or cd_size == 0xFFFFFFFF or (
            end >= 20 and _read_at(f, end - 20, 4) == b'PK\x06\x07'):
        return 'a zip64 archive; zip the records without zip64'
    if cd_size > end:
        return 'not a readable .zip (its directory is larger than the file)'
    cd = _read_at(f, end - cd_size, cd_size)
    out, pos = [], 0
    while pos + 46 <= len(cd) and cd[pos:pos + 4] == b'PK\x01\x02':
        if len(out) > most:
            break
        flags, = struct.unpack_from('<H', cd, pos + 8)
        csize, usize, n, extra, comment = struct.unpack_from('<2L3H', cd, pos + 20)
        out.append((bytes(cd[pos + 46:pos + 46 + n]), flags, csize, usize))
        pos += 46 + n + extra + comment
    if len(out) > most:
        return f'more members than the size limit of {MAX_MEMBERS} files an upload allows'
    if len(out) != claimed:
        return (f'not a readable .zip (its end record claims {claimed} members, its '
                f'directory holds {len(out)})')
    return out


def _read_at(f, pos, n):
    f.seek(pos)
    data = f.read(n)
    f.seek(0)
    return data


def _clear_bad_utf8_flags(f, eocd):
    """zipfile decodes every name when the zip is opened, so one name that
    sets the UTF-8 flag without being UTF-8 makes the whole zip unreadable.
    -> (a copy with that flag cleared on such names, their indexes)."""
    f.seek(0)  # zipfile's failed attempt left it anywhere
    data = bytearray(f.read())
    _, cd_size, end = eocd
    pos, bad, i = end - cd_size, set(), 0
    while pos + 46 <= end and data[pos:pos + 4] == b'PK\x01\x02':
        flags, = struct.unpack_from('<H', data, pos + 8)
        n, extra, comment = struct.unpack_from('<3H', data, pos + 28)
        if flags & 0x800:
            try:
                bytes(data[pos + 46:pos + 46 + n]).decode('utf-8')
            except UnicodeDecodeError:
                struct.pack_into('<H', data, pos + 8, flags & ~0x800)
                bad.add(i)
        pos, i = pos + 46 + n + extra + comment, i + 1
    return io.BytesIO(bytes(data)), bad


def _open_zip(name, data, staging):
    """-> (ZipFile, indexes of members whose names are not valid UTF-8), or
    None (one problem line for the zip). The directory is walked with a
    bound (zip_directory: MAX_MEMBERS) before zipfile lists it."""
    listed = zip_directory(data)   # the request's budget is claim()'s, member by member
    if isinstance(listed, str):
        return staging.refuse(name, listed)
    f, bad = _binary(data), set()
    try:
        try:
            return zipfile.ZipFile(f), bad
        except UnicodeDecodeError:
            f, bad = _clear_bad_utf8_flags(f, _eocd(f))
            return zipfile.ZipFile(f), bad
    except Exception:  # noqa: BLE001 (BadZipFile, OSError, struct.error, ...)
        return staging.refuse(name, 'not a readable .zip (damaged)')


def _member_problem(info, bad_name):
    """Why a member cannot be unpacked, before reading it, or None."""
    parts = PurePosixPath(info.filename.replace('\\', '/')).parts
    if bad_name:
        return 'its name is not valid UTF-8 although the zip says it is'
    if info.filename.startswith(('/', '\\')) or '..' in parts \
            or re.match(r'[A-Za-z]:', info.filename):
        return 'an absolute or ../ path inside the zip; refused'
    if info.flag_bits & 0x1:
        return 'encrypted; upload it unencrypted'
    if info.compress_type not in ZIP_METHODS:
        return f'unknown compression method {info.compress_type}'
    return None


def _unzip(name, data, staging):
    """Members of a zip -> staged files, streamed to disk one at a time;
    folders are flattened, AppleDouble '._' files and __MACOSX/ are skipped.
    A member that cannot be unpacked is one problem line; the rest goes on."""
    opened = _open_zip(name, data, staging)
    if opened is None:
        return
    zf, bad = opened
    with zf:
        for i, info in enumerate(zf.infolist()):
            member = PurePosixPath(info.filename.replace('\\', '/'))
            label = f'{name}/{_clip(info.filename)}'
            if info.is_dir() or '__MACOSX' in member.parts or member.name.startswith('._'):
                continue
            why = _member_problem(info, i in bad)
            if why:
                staging.refuse(label, why)
                continue
            safe = staging.claim(str(member), info.file_size)
            if safe is None:
                continue
            try:
                with zf.open(info) as src:
                    staging.write(label, safe, src)
            except Exception as e:  # noqa: BLE001 (CRC, zlib, lzma, EOF: this member only)
                # zipfile's text names the member only, never a folder of ours
                staging.refuse(label, f'corrupt member ({type(e).__name__}: {_clip(str(e))})')


def _clip(text, n=120):
    return text if len(text) <= n else text[:n - 3] + '...'


def stage_files(files, folder):
    """[(browser name, bytes or binary file)] -> (staged {safe name: browser
    name}, problems). Zips are unpacked; each file is streamed into `folder`
    under its safe name, within one budget for the whole request."""
    staging = _Staging(folder)
    for name, data in files:
        name = _clip(str(name))
        if str(name).lower().endswith('.zip'):
            _unzip(name, data, staging)
            continue
        src = _binary(data)
        size = _stream_size(src)
        if size > MAX_FILE_BYTES:
            staging.refuse(name, f'{_size(size)} is over the size limit of '
                                 f'{_size(MAX_FILE_BYTES)} a file')
            continue
        safe = staging.claim(name, size)
        if safe is not None:
            staging.write(name, safe, src)
    return staging.staged, staging.problems


def stage(files, folder):
    """[(browser name, bytes)] -> (record paths inside `folder`, problems):
    staged under safe names and paired into records."""
    staged, problems = stage_files(files, folder)
    paths, more = pair_records(folder, staged)
    return paths, user_problems(problems + more, folder)


# A reason is for the person who uploaded: it names the upload's own files
# and the app's or API's inputs, never the server's folders, a command-line
# flag or a library's exception text.
ABSOLUTE = re.compile(r'(?<![\w.:/])(?:[A-Za-z]:)?[/\\](?:[^\s/\\\'"]+[/\\])+(?=[^\s/\\\'"])')
FOR_UPLOADS = (('give the sampling rate with --fs HZ',
                'add a time column (seconds, or ms with ms in its name) to the CSV'),
               ('--fs HZ', 'a time column in the CSV'))
LEAD_MAP_FLAG = re.compile(r"with --lead-map, e\.g\. --lead-map '([^']*)'")


def user_reason(reason, folder=None):
    """A problem's reason as an uploader may read it: the staging folder and
    any other absolute path cut to the file's own name, CLI flags replaced
    by what an upload can give instead."""
    text = str(reason)
    for root in {str(folder), str(Path(folder).resolve())} if folder else ():
        text = text.replace(root + '/', '').replace(root, '')
    text = ABSOLUTE.sub('', text)
    for flag, instead in FOR_UPLOADS:
        text = text.replace(flag, instead)
    return LEAD_MAP_FLAG.sub(r"in the lead map (the app's field), e.g. \1, or name the "
                             r'channels in the file', text)


def user_problems(problems, folder=None):
    return [(name, user_reason(why, folder)) for name, why in problems]


def header_files(text):
    """Signal-file names a WFDB header gives (first field of each signal line)."""
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith('#')]
    try:
        nsig = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return []
    return list(dict.fromkeys(ln.split()[0] for ln in lines[1:nsig + 1]))


def pair_records(folder, staged):
    """-> (record paths, problems). Records are paired by the signal-file names
    each header gives, not by basenames; a .mat no header names is taken as
    an original CPSC2018 .mat; any other file no header names is reported."""
    folder = Path(folder)
    records, problems, used = [], [], set()
    for safe in staged:
        if not safe.lower().endswith('.hea'):
            continue
        try:
            names = header_files((folder / safe).read_text(errors='replace'))
        except OSError as e:
            problems.append((staged[safe], f'unreadable header ({e})'))
            continue
        used.update(names)
        missing = [n for n in names if n not in staged]
        if missing:
            problems.append((staged[safe], f"signal file {', '.join(missing)} named by the "
                                           'header is missing from the upload'))
            continue
        records.append(folder / safe)
    headers = {Path(s).stem for s in staged if s.lower().endswith('.hea')}
    for safe, original in staged.items():
        low = safe.lower()
        if safe in used or low.endswith('.hea'):
            continue
        if Path(safe).stem in headers:  # its header is unreadable: reported once, there
            continue
        if low.endswith('.mat'):
            records.append(folder / safe)
        elif _hospital_format(folder / safe):  # DICOM, XML, SCP, ... (records.formats, by content)
            records.append(folder / safe)
        elif not low.endswith(('.atr', '.json', '.txt', '.csv', '.ann')):  # annotations, notes
            problems.append((original, 'no .hea header in the upload names this file; '
                                       'upload the header with it'))
    return records, problems


def _hospital_format(path):
    """True for a file records.formats reads, whatever its extension says."""
    try:
        fmt = formats.sniff(path)
    except OSError:
        return False
    if fmt == 'csv':
        return csv_names_a_lead(path)
    return fmt is not None and fmt != 'ishne-ann'  # other XML: read, and told why not


# The display (printout, interactive view, QRS detector) shows the model's
# window, and at least 10 s (a printout) when the record has them.
DISPLAY_MIN = 10 * FS


def read_prepared(path, leads, window, lead_map=None, source=None):
    """The ONE place the app and the API read a record: records.read_record and
    records.prepare, as every script (any rate, lead order, lead-name case or
    alias; limb leads derived) -> Reading: x the (len(leads), window) model
    input, signal the display ((n, k) mV at 500 Hz of the standard leads the
    record gives: the model's window, at least 10 s), source the file as the
    user named it (`source`, else the file's name)."""
    path = Path(path)
    rec = read_record(path, lead_map=lead_map)
    prep = prepare(rec, leads, window)
    total = length_at_fs(rec)
    shown = [lead for lead in LEADS if lead not in missing_leads(rec, LEADS)]
    n = min(total, max(window, DISPLAY_MIN))
    display = prepare(rec, shown, n).x.T
    length = min(total, window)
    if rec.name != path.stem:  # the file name is an identifier (formats.common.record_name)
        source = rec.name + path.suffix
    return Reading(record=rec, name=safe_filename(rec.name or path.stem),
                   source=source or path.name, signal=np.ascontiguousarray(display),
                   leads=shown, fs=FS, x=np.ascontiguousarray(prep.x), real=prep.real,
                   quality=prep.quality, length=length, offset=n - length)


def read_records(paths, leads, window, staged=None, lead_map=None):
    """Record paths -> (Readings, problems); a bad record is one problem line.
    Each Reading's record reads its samples from `paths` until closed."""
    out, problems = [], []
    for path in paths:
        label = (staged or {}).get(Path(path).name, Path(path).name)
        try:
            out.append(read_prepared(path, leads, window, lead_map, label))
        except RecordError as e:
            problems.append((label, e.reason))
        except Exception:  # noqa: BLE001 (a damaged file must not stop the batch)
            problems.append((label, 'unreadable (a damaged file, or one the readers '
                                    'do not know)'))
    folder = Path(paths[0]).parent if paths else None
    return out, user_problems(problems, folder)


def load_uploads(files, leads, window, lead_map=None):
    """[(browser name, bytes)] -> (Readings, problems [(file, reason)]). The
    files live in a temporary folder only while they are read: the Readings'
    records hold their header fields, not their samples."""
    with tempfile.TemporaryDirectory(prefix='ecg-upload-') as tmp:
        staged, problems = stage_files(files, tmp)
        paths, more = pair_records(tmp, staged)
        records, bad = read_records(paths, leads, window, staged, lead_map)
        for r in records:  # the folder goes now: the Records let go of its files first
            r.record.close()
    return records, user_problems(problems + more, tmp) + bad
