"""Byte streams for manifests: one adapter over anything that yields bytes, read a bounded piece at a time.

A manifest may hold millions of rows (tens of MB and more), so no reader here ever calls
``read()`` without a size: memory stays at a few buffers whatever the object's size. The adapter
accepts a botocore ``StreamingBody`` (``read(amt)``, ``iter_chunks()``), any binary file object, or
an iterable of ``bytes``, and presents it as a buffered ``BinaryIO`` that ``gzip``, ``io`` and
``csv`` can consume.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast, runtime_checkable

from isal import isal_zlib

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

BUFFER_SIZE = 64 * 1024


@runtime_checkable
class SupportsRead(Protocol):
    def read(self, size: int, /) -> bytes: ...


@runtime_checkable
class SupportsIterChunks(Protocol):
    def iter_chunks(self, chunk_size: int = ..., /) -> Iterator[bytes]: ...


ByteSource = SupportsRead | SupportsIterChunks | Iterable[bytes]


class SourceReader(io.RawIOBase):
    """A raw, read-only stream over a byte source, pulling at most the caller's buffer size at a time.

    ``on_data`` sees every byte exactly once, in order (used to hash compressed inventory files
    while they are being decompressed, without a second pass). ``close_source`` decides whether
    closing this stream closes the source: True for an HTTP body we own (returns the connection),
    False for a stream the caller lent us.
    """

    def __init__(
        self,
        source: ByteSource,
        *,
        close_source: bool,
        on_data: Callable[[bytes], None] | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._close_source = close_source
        self._on_data = on_data
        self._chunks: Iterator[bytes] | None = None
        self._pending = b""
        self._eof = False
        if not isinstance(source, SupportsRead):
            if isinstance(source, SupportsIterChunks):
                self._chunks = iter(source.iter_chunks(BUFFER_SIZE))
            else:
                self._chunks = iter(source)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        wanted = len(view)
        if wanted == 0:
            return 0
        data = self._pending or self._next(wanted)
        taken, self._pending = data[:wanted], data[wanted:]
        if taken and self._on_data is not None:
            self._on_data(taken)
        count = len(taken)
        view[:count] = taken
        return count

    def _next(self, size: int) -> bytes:
        """The next non-empty piece of the source, or b"" at its end."""
        while not self._eof:
            piece = self._pull(size)
            if piece:
                return bytes(piece)
            self._eof = True
        return b""

    def _pull(self, size: int) -> bytes:
        """One read from the source; overridden to translate a transport's errors."""
        if self._chunks is None:
            assert isinstance(self._source, SupportsRead)
            return self._source.read(size)
        while True:
            try:
                piece = next(self._chunks)
            except StopIteration:
                return b""
            if piece:
                return piece

    def close(self) -> None:
        if not self.closed and self._close_source:
            closer = getattr(self._source, "close", None)
            if callable(closer):
                closer()
        super().close()


def as_binary_io(body: ByteSource, *, close_source: bool = True) -> BinaryIO:
    """Wrap an HTTP body, a file or an iterable of bytes as a buffered ``BinaryIO``.

    Closing the result closes ``body`` unless ``close_source`` is False.
    """
    return io.BufferedReader(SourceReader(body, close_source=close_source), BUFFER_SIZE)


def drain(stream: BinaryIO) -> None:
    """Read a stream to its end in bounded pieces (so a hash over it sees every byte)."""
    while stream.read(BUFFER_SIZE):
        pass


class Offset:
    """Bytes consumed so far by ``iter_lines``; read it between lines."""

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value


UTF8_BOM = b"\xef\xbb\xbf"


def iter_lines(stream: BinaryIO, consumed: Offset) -> Iterator[str]:
    """The UTF-8 text lines of ``stream``, line ends kept, as ``csv.reader`` wants them.

    ``consumed.value`` starts at the byte offset ``stream`` starts at and, once a line has been
    handed out, is the offset just after it: when ``csv.reader`` returns a record (it asks for
    lines only as it needs them, reading nothing ahead), that is where the next record starts.
    Lines end at LF, CR or CRLF, as with ``newline=""``; those bytes never occur inside a UTF-8
    character, so every line decodes on its own. A BOM is skipped at offset 0 only.
    Raises UnicodeDecodeError for a line that is not UTF-8.
    """
    pending = b""
    at_start = consumed.value == 0
    while True:
        block = stream.read(BUFFER_SIZE)
        data = pending + block if pending else block
        if at_start:
            if block and len(data) < len(UTF8_BOM):
                pending = data
                continue
            at_start = False
            if data.startswith(UTF8_BOM):
                consumed.value += len(UTF8_BOM)
                data = data[len(UTF8_BOM) :]
        if not block:
            if data:
                consumed.value += len(data)
                yield data.decode()
            return
        lines = data.splitlines(keepends=True)
        # The last piece may go on in the next block: a line not ended yet, or a CR whose LF
        # has not arrived.
        pending = b"" if not lines or lines[-1].endswith(b"\n") else lines.pop()
        for line in lines:
            consumed.value += len(line)
            yield line.decode()


class ReadAhead:
    """Reads ``stream`` on a thread of its own, up to ``depth`` blocks ahead of the reader.

    Decompressing and hashing a manifest release the GIL, so with this the reading runs on one
    core while rows are split on another, as ``zcat | wc -l`` does with two processes. Errors
    of the stream are raised to the reader, where they would have been raised without it.
    Leaving the ``with`` block stops the thread (and waits for it) before anyone else may touch
    ``stream``, also when the reader stops early.
    """

    def __init__(self, stream: SupportsRead, block_size: int = BUFFER_SIZE, depth: int = 4) -> None:
        self._stream = stream
        self._block_size = block_size
        self._blocks: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._pending = b""
        self._at = 0  # how much of _pending was handed out
        self._ended = False
        self._thread = threading.Thread(target=self._fill, name="manifest-read-ahead", daemon=True)

    def __enter__(self) -> ReadAhead:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._blocks.get_nowait()  # unblocks a thread waiting to put
        self._thread.join()

    def read(self, size: int = -1, /) -> bytes:
        """At most ``size`` bytes (all that is left when negative); b"" only at the end."""
        if size < 0:
            return b"".join(iter(lambda: self.read(self._block_size), b""))
        if self._at >= len(self._pending) and not self._ended:
            item = self._blocks.get()
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            self._pending, self._at = item, 0
            self._ended = not item
        piece = self._pending[self._at : self._at + size]
        self._at += len(piece)
        return piece

    def _fill(self) -> None:
        try:
            while not self._stop.is_set():
                block = self._stream.read(self._block_size)
                self._put(block)
                if not block:
                    return
        except BaseException as exc:  # raised again on the reader's side
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._blocks.put(item, timeout=0.05)
                return
            except queue.Full:
                continue


GUNZIP_STEP = 4 * 1024 * 1024
_INFLATE_ERROR = cast("type[Exception]", isal_zlib.error)
_GZIP_MAGIC = b"\x1f\x8b"


class Gunzip:
    """The decompressed text of a gzip stream (every member, as ``gzip`` reads them), produced
    ``GUNZIP_STEP`` bytes at a time.

    ``gzip.GzipFile`` decompresses 8 KiB of input a call and checks the CRC in a pass of its own;
    zlib with ``wbits=31`` parses the header and checks CRC and length itself. The zlib here is
    ISA-L's (``isal``: the same API and streams, inflating in about 0.55 of zlib's time, which
    leaves the core that splits rows less to share), and a call that
    yields up to ``GUNZIP_STEP`` bytes holds the GIL only between such steps, so on a thread
    (``ReadAhead``) it decompresses while another thread splits rows. Steps are large because
    each one takes the GIL back a few times (zlib grows its output in blocks), and a thread
    waits up to a switch interval (5 ms) for it behind one that splits rows. The first steps are
    smaller (a sixteenth of a step, doubling), so the reader has rows to split a few milliseconds
    after the first bytes arrive, not a whole step later. Like ``GzipFile``: zero bytes between or
    after members are skipped, an empty stream is empty text, a stream cut short raises EOFError
    and bytes that are not gzip raise ``zlib.error``.
    """

    def __init__(self, compressed: SupportsRead, step: int = GUNZIP_STEP) -> None:
        self._compressed = compressed
        self._step = step
        self._room = max(1, step // 16)  # this step's size: grows to ``step``
        self._member: isal_zlib.Decompress | None = None
        self._input = b""
        self._input_ended = False
        self._pending = b""
        self._at = 0

    def read(self, size: int = -1, /) -> bytes:
        """At most ``size`` bytes of text (all that is left when negative); b"" only at the end."""
        if size < 0:
            return b"".join(iter(lambda: self.read(self._step), b""))
        if self._at >= len(self._pending):
            self._pending, self._at = self._produce(), 0
        piece = self._pending[self._at : self._at + size]
        self._at += len(piece)
        return piece

    def _produce(self) -> bytes:
        while True:
            if self._member is None or self._member.eof:
                rest = (self._member.unused_data if self._member is not None else b"") + self._input
                self._member, self._input = None, rest.lstrip(b"\x00")
                while not self._input:
                    if not self._more():
                        return b""
                    self._input = self._input.lstrip(b"\x00")
                # ISA-L is handed a member's whole header at once: it misreads a header with a
                # CRC, or with a name and a comment, that comes in over several calls.
                while _header_length(self._input) is None and self._more():
                    if len(self._input) > _LONGEST_HEADER:  # names and comments are short
                        raise zlib.error("the gzip member header runs on for more than a megabyte")
                self._member = isal_zlib.decompressobj(wbits=31)
            if not self._input and not self._member.unconsumed_tail and not self._more():
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            source = self._member.unconsumed_tail or self._input
            if not self._member.unconsumed_tail:
                self._input = b""
            try:
                text = self._member.decompress(source, self._room)
            except _INFLATE_ERROR as exc:
                raise zlib.error(str(exc)) from exc
            if text:
                self._room = min(self._step, 2 * self._room)
                return text

    def _more(self) -> bool:
        """Read more compressed input; False at its end."""
        if self._input_ended:
            return False
        data = self._compressed.read(max(1, self._room // 4))
        if not data:
            self._input_ended = True
            return False
        self._input += data
        return True


_LONGEST_HEADER = 1024 * 1024


def _header_length(data: bytes) -> int | None:
    """How long the gzip member header ``data`` starts with is (RFC 1952, 2.3), or None while
    ``data`` ends within it. Raises ``zlib.error`` for bytes that are not a gzip member (zlib
    says so at once; ISA-L first waits for a whole header)."""
    if len(data) >= len(_GZIP_MAGIC) and not data.startswith(_GZIP_MAGIC):
        raise zlib.error("incorrect header check: not a gzip member")
    if len(data) < 10:
        return None
    flags, at = data[3], 10
    if flags & 0x04:  # FEXTRA: a length, then that many bytes
        if len(data) < at + 2:
            return None
        at += 2 + int.from_bytes(data[at : at + 2], "little")
    for flag in (0x08, 0x10):  # FNAME, FCOMMENT: each ends with a zero byte
        if flags & flag:
            end = data.find(b"\x00", at)
            if end < 0:
                return None
            at = end + 1
    if flags & 0x02:  # FHCRC
        at += 2
    return at if len(data) >= at else None
