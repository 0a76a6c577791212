# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blob transfer flows on top of the client: file uploads, cross-repository mounts, streamed copies.

Every flow checks the target first (HEAD), so a second run sends no write; bytes are streamed from
the file or the source registry, never held whole in memory.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from dataclasses import dataclass, asdict
from typing import Callable, Iterator, TypeVar

from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError

DEFAULT_CHUNK_SIZE = 64 << 20
READ_BLOCK = 1 << 20
MAX_RESUMES = 5
S3_MIN_PART = 5 << 20  # the smallest non-final part S3 multipart uploads (and so ECR) accept
# Read size of a blob streamed between registries: a mirror streams up to concurrency x concurrency / 2 blobs at
# once (32 by default), so each holds little; the sends are 16 KiB anyway.
COPY_CHUNK = 256 << 10

T = TypeVar("T")


@dataclass
class BlobResult:
    """How one blob reached (or would reach) the target repository."""

    digest: str
    size: int | None
    how: str  # exists | mounted | uploaded (or would_mount / would_upload in check mode)
    changed: bool
    source: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


class FileSlice(io.RawIOBase):
    """A re-readable window of a file: requests streams it with a Content-Length, and a retry can rewind it.
    ``on_read(offset in the file, data)`` sees every block read, to hash the very bytes that are sent."""

    def __init__(self, path: str, start: int, length: int,
                 on_read: Callable[[int, bytes], None] | None = None) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._start = start
        self._length = length
        self._on_read = on_read
        self.seek(0)

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset != 0:
            raise OSError("FileSlice only rewinds to its start")
        self._file.seek(self._start)
        self._left = self._length
        return 0

    def tell(self) -> int:
        return self._length - self._left

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        if size is None or size < 0 or size > self._left:
            size = self._left
        position = self._start + self._length - self._left
        data = self._file.read(min(size, READ_BLOCK * 4))
        self._left -= len(data)
        if self._on_read is not None:
            self._on_read(position, data)
        return data

    def close(self) -> None:
        self._file.close()
        super().close()


class IterStream(io.RawIOBase):
    """File-like view over a byte iterator of known length (a source registry's blob)."""

    def __init__(self, chunks: Iterator[bytes], length: int | None) -> None:
        super().__init__()
        self._chunks = chunks
        self._buffer = b""
        self._offset = 0  # how much of _buffer was read
        self._length = length
        self._position = 0

    def __len__(self) -> int:
        return self._length or 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        # requests sizes a body as len() - tell(); RawIOBase.tell() would raise and make that 0
        # (chunked encoding next to our Content-Length, which registries reject or hang on).
        return self._position

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes, from the current chunk only (a raw stream may return less; requests sends
        what it gets and stops at b""): nothing is copied but what is returned, nor held beyond one chunk."""
        if size < 0:
            rest = b"".join([self._buffer[self._offset:], *self._chunks])
            self._buffer, self._offset = b"", 0
            self._position += len(rest)
            return rest
        while self._offset >= len(self._buffer):
            try:
                self._buffer, self._offset = next(self._chunks), 0
            except StopIteration:
                return b""
        data = self._buffer[self._offset:self._offset + size]
        self._offset += len(data)
        self._position += len(data)
        return data


class RunningDigest:
    """The sha256 of a file, fed in order with the blocks read to send it: each byte is read once for both, in the
    thread that sends it. A hashing thread of its own would read the file a second time and compete with the send
    and the registry for the CPU: on 2 cores, a 1 GiB upload given its digest took longer that way than hashing the
    whole file first. Bytes sent again (a retried or resumed chunk) are not hashed twice; should bytes ever come
    after a gap, the file is hashed whole at the end instead."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._hash = hashlib.sha256()
        self._offset = 0
        self._in_order = True

    def feed(self, offset: int, data: bytes) -> None:
        if offset > self._offset:
            self._in_order = False
        elif offset + len(data) > self._offset:
            self._hash.update(memoryview(data)[self._offset - offset:])
            self._offset = offset + len(data)

    def digest(self, size: int) -> str:
        if not self._in_order or self._offset != size:
            return file_digest(self._path)[0]
        return "sha256:" + self._hash.hexdigest()


def file_digest(path: str) -> tuple[str, int]:
    """sha256 digest and size of a file, read in constant memory."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while True:
            block = handle.read(READ_BLOCK)
            if not block:
                break
            hasher.update(block)
            size += len(block)
    return "sha256:" + hasher.hexdigest(), size


def upload_file(client, repository: str, path: str, *, digest: str | None = None,
                chunk_size: int = DEFAULT_CHUNK_SIZE, check_mode: bool = False) -> BlobResult:
    """Upload a local file as a blob: monolithic (POST + PUT) up to ``chunk_size``, chunked PATCHes above.

    The file is hashed first: the digest says whether the registry already has it. When the caller gives the
    digest, the registry is asked with it instead, and a large file is hashed from the very blocks read to send its
    chunks (the digest is only needed to close the upload), so the file is read once; a file that is not what the
    digest says is refused all the same before the upload is closed, and its upload cancelled.
    """
    size = os.path.getsize(path)
    overlap = bool(digest) and size > chunk_size and not check_mode
    present = overlap and client.head_blob(repository, digest) is not None
    if overlap and not present:
        return _upload_chunks_while_hashing(client, repository, path, size, digest, chunk_size)
    actual, size = file_digest(path)
    _check_file_digest(path, digest, actual)
    if present or client.head_blob(repository, actual) is not None:
        return BlobResult(actual, size, "exists", False)
    if check_mode:
        return BlobResult(actual, size, "uploaded", True)
    if size > chunk_size:
        _upload_in_chunks(client, repository, path, size, actual, chunk_size)
        return BlobResult(actual, size, "uploaded", True)
    location = client.start_upload(repository)
    body = FileSlice(path, 0, size)
    try:
        client.finish_upload(location, repository, actual, body=body, length=size)
    except BaseException:
        client.cancel_upload(location, repository)
        raise
    finally:
        body.close()
    return BlobResult(actual, size, "uploaded", True)


def _check_file_digest(path: str, expected: str | None, actual: str) -> None:
    if expected and expected != actual:
        raise RegistryError(f"the file {path} hashes to {actual}, not the expected {expected}",
                            operation=f"uploading {path}")


def _upload_chunks_while_hashing(client, repository: str, path: str, size: int, digest: str,
                                 chunk_size: int) -> BlobResult:
    """Chunked upload hashing the bytes it sends; closed only if they hash to ``digest``."""
    running = RunningDigest(path)
    _upload_in_chunks(client, repository, path, size, digest, chunk_size,
                      lambda: _check_file_digest(path, digest, running.digest(size)), running.feed)
    return BlobResult(digest, size, "uploaded", True)


def _upload_in_chunks(client, repository: str, path: str, size: int, digest: str, chunk_size: int,
                      before_close: Callable[[], None] | None = None,
                      on_read: Callable[[int, bytes], None] | None = None) -> None:
    """One chunked upload session; sent again in S3-sized parts when the registry refused smaller ones.

    ECR refuses, when the upload is closed, non-final parts under 5 MiB (LayerPartTooSmallException of
    CompleteLayerUpload) without announcing a minimum: the 400 that closes such an upload is answered with one more
    session in 5 MiB parts, never more.
    """
    try:
        _upload_session(client, repository, path, size, digest, chunk_size, before_close, on_read)
    except RegistryError as exc:
        if not _small_parts_refused(exc, client, chunk_size, size):
            raise
        client.warn(f"the registry refused upload chunks under {S3_MIN_PART} bytes; sending {path} again in "
                    f"{S3_MIN_PART}-byte chunks")
        client.chunk_min_length = max(client.chunk_min_length, S3_MIN_PART)
        _upload_session(client, repository, path, size, digest, chunk_size, before_close, on_read)


def _small_parts_refused(exc: RegistryError, client, chunk_size: int, size: int) -> bool:
    """A 400 closing an upload whose non-final chunks were under 5 MiB, for a reason other than the digest."""
    sent_chunk = max(chunk_size, client.chunk_min_length)
    return (exc.status == 400 and exc.method == "PUT" and "DIGEST_INVALID" not in exc.codes
            and sent_chunk < S3_MIN_PART < size)


def _upload_session(client, repository: str, path: str, size: int, digest: str, chunk_size: int,
                    before_close: Callable[[], None] | None, on_read: Callable[[int, bytes], None] | None) -> None:
    location = client.start_upload(repository)
    try:
        location = _upload_chunks(client, repository, location, path, size, chunk_size, on_read)
        if before_close:
            before_close()
        client.finish_upload(location, repository, digest)
    except BaseException:
        client.cancel_upload(location, repository)
        raise


def _upload_chunks(client, repository: str, location: str, path: str, size: int, chunk_size: int,
                   on_read: Callable[[int, bytes], None] | None = None) -> str:
    """PATCH chunk after chunk; after a failure ask the registry where it is and resume from there."""
    offset = 0
    resumes = 0
    chunk_size = max(chunk_size, client.chunk_min_length)  # announced by the session just opened
    while offset < size:
        length = min(chunk_size, size - offset)
        body = FileSlice(path, offset, length, on_read)
        try:
            location, end = client.patch_upload(location, repository, body, length, start=offset)
            offset = end + 1 if end is not None else offset + length
        except RegistryError as exc:
            resumes += 1
            if resumes > MAX_RESUMES or (exc.status is not None and exc.status not in (416, 500, 502, 503, 504)):
                raise
            location, end = client.upload_status(location, repository)
            offset = end + 1 if end is not None and end > 0 else 0
            client.warn(f"upload to {repository} interrupted; resuming at byte {offset}")
        finally:
            body.close()
    return location


def same_registry(source_client, client) -> bool:
    """Whether two clients speak to one registry (same scheme, host and base path): blobs are mounted between its
    repositories, never sent again. Compares their locations only; sends nothing."""
    return source_client is client or source_client.location.base_url == client.location.base_url


class InFlight:
    """Writes under way, by (target client, repository, digest).

    Copies of several tags at once (a mirror entry) share base layers and, across rebuilt indexes, child manifests:
    each is written once, and the other copies wait for it instead of writing it too. Two writes of one blob or
    manifest into one repository at once also race in the CNCF registry's storage: it rewrites the link file, and a
    manifest PUT that checks its references meanwhile reads it empty (400 DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[tuple, threading.Event] = {}

    def once(self, key: tuple, work: Callable[[], T]) -> T | None:
        """``work()``, unless another thread is doing it for ``key``: then wait for that, and return None."""
        with self._lock:
            running = self._running.get(key)
            if running is None:
                done = self._running[key] = threading.Event()
        if running is not None:
            running.wait()
            return None
        try:
            return work()
        finally:
            with self._lock:
                del self._running[key]
            done.set()

    def alone(self, client, repository: str, digest: str, work: Callable[[], T]) -> T:
        """``work()`` with no other write of ``digest`` to ``repository`` under way; after waiting for one it runs
        again, so ``work`` must look first whether the digest is there."""
        while True:
            result = self.once((id(client), repository, digest), work)
            if result is not None:
                return result


IN_FLIGHT = InFlight()


def transfer_blob(source_client, source_repository: str, client, repository: str, digest: str,
                  size: int | None = None, *, check_mode: bool = False, mount_from: tuple[str, ...] = ()) -> BlobResult:
    """Make a blob of another repository available in ``repository``: mount within one registry, else stream.

    ``mount_from`` names repositories of the target registry that may already hold the blob (an earlier
    promotion): across registries each is tried as a mount before any byte is streamed. A transfer of the same
    blob to the same repository already under way is waited for, then the blob is looked for again.
    """
    return IN_FLIGHT.alone(client, repository, digest, lambda: _transfer_blob(
        source_client, source_repository, client, repository, digest, size, check_mode=check_mode,
        mount_from=mount_from))


def _transfer_blob(source_client, source_repository: str, client, repository: str, digest: str,
                   size: int | None, *, check_mode: bool, mount_from: tuple[str, ...]) -> BlobResult:
    if client.head_blob(repository, digest) is not None:
        return BlobResult(digest, size, "exists", False, source_repository)
    within_registry = same_registry(source_client, client)
    if check_mode:
        if within_registry:
            return BlobResult(digest, size, "mounted", True, source_repository)
        holder = next((c for c in mount_from if c != repository and _holds(client, c, digest)), None)
        return BlobResult(digest, size, "mounted" if holder else "uploaded", True, holder or source_repository)
    location = None
    if within_registry:
        location = client.mount_blob(repository, digest, source_repository)
        if location is None:
            return BlobResult(digest, size, "mounted", True, source_repository)
        client.warn(f"the registry did not mount {digest} from {source_repository}; copying its bytes instead")
    else:
        location, mounted_from = _mount_from_candidates(client, repository, digest, mount_from)
        if mounted_from:
            return BlobResult(digest, size, "mounted", True, mounted_from)
    attempt = 0

    def copy_once() -> BlobResult:
        nonlocal attempt, location
        if attempt:
            client.warn(f"copying {digest} to {repository} failed on the source side; trying again ({attempt})")
            location = client.start_upload(repository)
        attempt += 1
        try:
            _stream_copy(source_client, source_repository, client, repository, digest, size, location)
        except BaseException:
            # The upload is abandoned (the target never commits it). When the source broke off or sent bytes that
            # do not hash to the digest (TransientReadError), the copy starts over in a new session, like any read.
            client.cancel_upload(location, repository)
            raise
        return BlobResult(digest, size, "uploaded", True, source_repository)

    return source_client.transport.retrying(copy_once)


def _stream_copy(source_client, source_repository: str, client, repository: str, digest: str, size: int | None,
                 location: str) -> None:
    stream = IterStream(source_client.iter_blob(source_repository, digest, size, chunk_size=COPY_CHUNK), size)
    if size is None:
        # Unknown length: one streamed PATCH (chunked transfer encoding), then an empty PUT.
        location = client.patch_upload(location, repository, stream, None)[0]
        client.finish_upload(location, repository, digest)
    else:
        client.finish_upload(location, repository, digest, body=stream, length=size)


def _holds(client, repository: str, digest: str) -> bool:
    """Whether a mount candidate has the blob; one the credentials cannot read does not."""
    try:
        return client.head_blob(repository, digest) is not None
    except RegistryError as exc:
        if exc.status in (401, 403):
            return False
        raise


def _mount_from_candidates(client, repository: str, digest: str, candidates) -> tuple[str, str | None]:
    """Try each candidate repository as a mount source; returns (upload session, repository mounted from).

    A refused mount opens an upload session (202) that the next candidate or the streamed copy reuses,
    so a miss costs no extra request. A candidate the credentials cannot read is only a miss.
    """
    location = None
    for candidate in candidates:
        if candidate == repository:
            continue
        try:
            opened = client.mount_blob(repository, digest, candidate)
        except RegistryError as exc:
            if exc.status not in (401, 403, 404):
                raise
            continue
        if opened is None:
            if location:
                client.cancel_upload(location, repository)
            return "", candidate
        if location:
            client.cancel_upload(opened, repository)
        else:
            location = opened
    return location or client.start_upload(repository), None
