"""MATLAB files checked before scipy reads them."""
import os
import zlib

import numpy as np

from records.errors import RecordError
from records.limits import MAT_MAX_DEPTH, MAT_MAX_ELEMENTS, WHOLE_MAX_VALUES

# --------------------------------------------------------------------------
# MATLAB files: checked before scipy reads them. scipy.io.loadmat recurses in
# C through nested cells (20,000 levels in 40 kB overflow the stack: exit
# 139, which no `except` catches) and allocates whatever a matrix declares.
# Walking the v5 tags here costs 0.2 ms for a 144-s CPSC2018 record, against
# 0.64 s for a child process that imports scipy and loads it (measured on
# 2 CPU cores, docs/hostile.md), so the file is walked, not sandboxed: a
# layout other than the flat ones read here is refused.

# MATLAB v4 precision codes (the P digit of the type field) -> numpy dtype.
MAT4_DTYPES = {0: 'f8', 1: 'f4', 2: 'i4', 3: 'i2', 4: 'u2', 5: 'u1'}


def _mat4_header(head, name, path):
    """A MATLAB v4 matrix header (20 bytes) -> (dtype, rows, cols, imagf,
    namelen), or None when it is not one."""
    if len(head) < 20:
        raise RecordError(name, f'truncated .mat file {path.name} ({len(head)} bytes)')
    for order in '<>':
        mopt, rows, cols, imagf, namelen = (int(v) for v in np.frombuffer(head[:20], f'{order}i4'))
        m, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
        if 0 <= mopt < 5000 and o == 0 and t == 0 and p in MAT4_DTYPES and 0 < namelen < 64 \
                and (m == 0) == (order == '<') and imagf in (0, 1) and rows >= 0 and cols >= 0:
            return np.dtype(order + MAT4_DTYPES[p]), rows, cols, imagf, namelen
    return None


def _mat4_layout(path, name):
    """(dtype, offset, rows, cols) of a MATLAB v4 file's first matrix, or None
    when the file is not MATLAB v4. Complex data is refused, not halved."""
    with open(path, 'rb') as f:
        head = f.read(20)
    layout = _mat4_header(head, name, path)
    if layout is None:
        return None
    dtype, rows, cols, imagf, namelen = layout
    if imagf:
        raise RecordError(name, f'{path.name} holds complex data; an ECG is real')
    return dtype, 20 + namelen, rows, cols


MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
MX_CELL, MX_STRUCT, MX_CHAR = 1, 2, 4
MX_NUMERIC = set(range(6, 16))  # double, single, int8 ... uint64
MX_NAMES = {3: 'object', 5: 'sparse', 16: 'function', 17: 'opaque'}


class _MatBytes:
    """The bytes of a v5 .mat in order, from the file or inflated from one
    compressed element, never more than 1 MB held at a time."""

    def __init__(self, f, size, name, inflate=False):
        self.f, self.left, self.name, self.pos = f, size, name, 0
        self.z = zlib.decompressobj() if inflate else None

    def _raw(self, n):
        data = self.f.read(min(n, self.left))
        self.left -= len(data)
        return data

    def _inflate(self, n):
        out, got = [], 0
        while got < n and not self.z.eof:
            data = self.z.unconsumed_tail or self._raw(2 ** 16)
            if not data:
                break
            try:
                piece = self.z.decompress(data, min(n - got, 2 ** 20))
            except zlib.error as e:
                raise RecordError(self.name, f'corrupt compressed .mat element ({e})') from None
            out.append(piece)
            got += len(piece)
        return b''.join(out)

    def read(self, n):
        data = self._inflate(n) if self.z else self._raw(n)
        if len(data) < n:
            raise RecordError(self.name, 'truncated .mat file (an element runs past its end)')
        self.pos += n
        return data

    def skip(self, n):
        if self.z is None:
            if n > self.left:
                raise RecordError(self.name, 'truncated .mat file (an element runs past its end)')
            self.f.seek(n, 1)
            self.left -= n
            self.pos += n
            return
        while n > 0:
            step = min(n, 2 ** 20)
            self.read(step)
            n -= step


class _MatWalk:
    """Walks the v5 elements: depth, count, classes and declared sizes."""

    def __init__(self, name, order):
        self.name, self.order, self.values, self.elements = name, order, 0, 0

    def refuse(self, why):
        raise RecordError(self.name, f'.mat layout refused: {why}')

    def tag(self, s):
        """-> (type, nbytes, data of a small element or None)."""
        raw = s.read(8)
        mtype, nbytes = np.frombuffer(raw, f'{self.order}u4').tolist()
        if mtype >> 16:  # small data element: up to 4 bytes inside the tag
            return mtype & 0xFFFF, mtype >> 16, raw[4:4 + (mtype >> 16)]
        return mtype, nbytes, None

    def element(self, s, limit=2 ** 16):
        """-> (type, bytes) of a small sub-element (flags, dims, names)."""
        mtype, nbytes, small = self.tag(s)
        if small is not None:
            return mtype, small
        if nbytes > limit:
            self.refuse(f'a header element of {nbytes} bytes')
        data = s.read(nbytes)
        s.read(-nbytes % 8)  # padding to 8 bytes
        return mtype, data

    def matrix(self, s, nbytes, depth):
        """One miMATRIX of nbytes (its tag read): checked, then skipped."""
        self.elements += 1
        if self.elements > MAT_MAX_ELEMENTS:
            self.refuse(f'more than {MAT_MAX_ELEMENTS} matrices')
        if nbytes == 0:  # an empty cell or field
            return
        end = s.pos + nbytes
        mtype, flags = self.element(s)
        if mtype != MI_UINT32 or len(flags) != 8:
            self.refuse('a matrix without array flags')
        word = int(np.frombuffer(flags[:4], f'{self.order}u4')[0])
        cls, is_complex = word & 0xFF, bool(word & 0x800)
        mtype, dims = self.element(s)
        if mtype != MI_INT32 or not 0 < len(dims) <= 16 or len(dims) % 4:
            self.refuse('a matrix without dimensions')
        dims = np.frombuffer(dims, f'{self.order}i4').astype(np.int64)
        if (dims < 0).any():
            self.refuse(f'negative dimensions {dims.tolist()}')
        count = int(np.prod(dims, dtype=object))
        self.element(s)  # the array's name
        if cls in MX_NUMERIC or cls == MX_CHAR:
            if is_complex:
                raise RecordError(self.name, 'the .mat holds complex data; an ECG is real')
            self.values += count
            if self.values > WHOLE_MAX_VALUES:
                self.refuse(f'{self.values} values declared, over the {WHOLE_MAX_VALUES} '
                            'read from one .mat')
            if s.pos < end:  # scipy reads the data element whole: its size, not the dims'
                _, n, small = self.tag(s)
                if small is None and n > 8 * count + 8:
                    self.refuse(f'{n} bytes of data for {count} values')
        elif cls in (MX_CELL, MX_STRUCT):
            if depth >= MAT_MAX_DEPTH:
                self.refuse(f'cells or structs nested more than {MAT_MAX_DEPTH} deep')
            if cls == MX_STRUCT:
                _, width = self.element(s)
                width = int(np.frombuffer(width[:4], f'{self.order}i4')[0])
                _, names = self.element(s)
                if width <= 0 or len(names) % width:
                    self.refuse('malformed struct field names')
                count *= len(names) // width
            if count > MAT_MAX_ELEMENTS - self.elements:
                self.refuse(f'{count} cells or fields, over {MAT_MAX_ELEMENTS}')
            for _ in range(count):
                mtype, n, small = self.tag(s)
                if mtype != MI_MATRIX or small is not None:
                    self.refuse('a cell or field that is not a matrix')
                self.matrix(s, n, depth + 1)
        else:
            self.refuse(f"{MX_NAMES.get(cls, f'class {cls}')} arrays are not read")
        if s.pos > end:
            self.refuse('a matrix overruns its declared size')
        s.skip(end - s.pos)


def _mat4_check(f, size, name, path):
    """MATLAB v4: a flat list of matrices; their declared sizes and no complex."""
    values = 0
    while f.tell() < size:
        layout = _mat4_header(f.read(20), name, path)
        if layout is None:
            raise RecordError(name, f'corrupt .mat file {path.name}: no MATLAB layout scipy '
                                    'reads safely')
        dtype, rows, cols, imagf, namelen = layout
        if imagf:
            raise RecordError(name, f'{path.name} holds complex data; an ECG is real')
        values += rows * cols
        if values > WHOLE_MAX_VALUES:
            raise RecordError(name, f'.mat layout refused: {values} values declared, over the '
                                    f'{WHOLE_MAX_VALUES} read from one .mat')
        f.seek(namelen + rows * cols * dtype.itemsize, 1)


def mat_check(path, name):
    """Refuse a .mat before scipy reads it unless it is one of the flat
    layouts read here (numeric matrices; a struct of numeric/char fields such
    as CPSC2018's ECG), with no complex data and at most WHOLE_MAX_VALUES
    values declared in all. Costs the tags only: compressed elements are
    inflated 1 MB at a time and data is skipped, never held."""
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(128)
        order = {b'IM': '<', b'MI': '>'}.get(head[126:128]) if len(head) == 128 else None
        if order is None:
            f.seek(0)
            return _mat4_check(f, size, name, path)
        if head[124:126] not in (b'\x00\x01', b'\x01\x00'):
            raise RecordError(name, f'{path.name} is a MATLAB v7.3 (HDF5) or unknown .mat; '
                                    'save it with -v7 or -v4')
        walk, variables = _MatWalk(name, order), 0
        while f.tell() < size:
            top = _MatBytes(f, size - f.tell(), name)
            mtype, nbytes, small = walk.tag(top)
            start = f.tell()
            variables += 1
            if small is not None or mtype not in (MI_MATRIX, MI_COMPRESSED) \
                    or variables > MAT_MAX_ELEMENTS:
                walk.refuse(f'an element of type {mtype} at the top level')
            if nbytes > size - start:
                raise RecordError(name, 'truncated .mat file (an element runs past its end)')
            if mtype == MI_COMPRESSED:
                inner = _MatBytes(f, nbytes, name, inflate=True)
                mtype, n, small = walk.tag(inner)
                if mtype != MI_MATRIX or small is not None:
                    walk.refuse('a compressed element that is not a matrix')
                walk.matrix(inner, n, 0)
            else:
                walk.matrix(_MatBytes(f, nbytes, name), nbytes, 0)
            f.seek(start + nbytes)
    return walk.values
