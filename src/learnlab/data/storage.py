"""Storage with I/O accounting: every read and write of a dataset goes through here.

A ``Storage`` is a directory on any fsspec file system (a local path, ``file://``,
``memory://``, ``s3://``, ``gs://``, ...). It counts, per epoch or per pass, the requests
it serves (a whole-file read or one byte range), how many of them were *non-contiguous*
(not starting where the previous read ended, with the dataset's files laid end to end in
index order, as an append-only store would hold them), bytes read and written,
the shards touched, and the peak bytes a loader held in its buffer. An optional
per-request latency (seconds) makes the cost of many small requests visible on a local
disk, where the page cache would otherwise hide it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec

from learnlab.errors import LearnlabError

__all__ = ["IOStats", "Storage", "DataError"]


class DataError(LearnlabError):
    """A dataset or shard that is missing, truncated, corrupt or refused."""


@dataclass
class IOStats:
    requests: int = 0
    noncontiguous_requests: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    write_requests: int = 0
    shards_touched: set[str] = field(default_factory=set)
    peak_buffer_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["shards_touched"] = len(self.shards_touched)
        return out


class Storage:
    """A directory of files on an fsspec file system, with I/O accounting."""

    def __init__(self, url: str, *, latency: float = 0.0, **storage_options):
        self.url = str(url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.latency = latency
        self.stats = IOStats()
        self.layout: dict[str, int] = {}  # file -> its offset when files are laid end to end (set by readers)
        self._last_end: int | None = None

    def path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def reset_stats(self) -> IOStats:
        """Start a new accounting period; returns the one that ended."""
        ended, self.stats, self._last_end = self.stats, IOStats(), None
        return ended

    def _count_read(self, name: str, start: int, size: int) -> None:
        if self.latency:
            time.sleep(self.latency)
        self.stats.requests += 1
        position = self.layout.get(name, 0) + start
        if name not in self.layout or self._last_end != position:
            self.stats.noncontiguous_requests += 1
        self._last_end = position + size
        self.stats.bytes_read += size
        self.stats.shards_touched.add(name)

    def read(self, name: str, start: int | None = None, end: int | None = None) -> bytes:
        """One request: the whole file, or bytes [start, end)."""
        try:
            if start is None:
                data = self.fs.cat_file(self.path(name))
            else:
                data = self.fs.cat_file(self.path(name), start=start, end=end)
        except FileNotFoundError:
            raise DataError(f"shard '{name}' is missing from {self.url}") from None
        self._count_read(name, start or 0, len(data))
        return data

    def write(self, name: str, data: bytes) -> None:
        """Write ``name`` atomically where the file system allows: to a temporary name, then move."""
        if self.latency:
            time.sleep(self.latency)
        folder, _, base = name.rpartition("/")
        self.fs.makedirs(self.path(folder) if folder else self.root, exist_ok=True)
        temporary = self.path(f"{folder}/.{base}.partial" if folder else f".{base}.partial")
        with self.fs.open(temporary, "wb") as handle:
            handle.write(data)
        self.fs.mv(temporary, self.path(name))
        self.stats.write_requests += 1
        self.stats.bytes_written += len(data)

    def exists(self, name: str) -> bool:
        return self.fs.exists(self.path(name))

    def size(self, name: str) -> int:
        return int(self.fs.size(self.path(name)))

    def remove(self, name: str) -> None:
        if self.exists(name):
            self.fs.rm(self.path(name))

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.fs.cat_file(self.path(name)))
        except FileNotFoundError:
            raise DataError(f"{self.url} has no {name} (not a dataset, or a write that never finished)") from None
        except json.JSONDecodeError as error:
            raise DataError(f"{self.url}/{name} is corrupt ({error.msg})") from None
        except ValueError as error:  # not UTF-8
            raise DataError(f"{self.url}/{name} is corrupt ({type(error).__name__})") from None

    def write_json(self, name: str, obj: Any) -> None:
        self.write(name, json.dumps(obj, indent=1).encode())

    def note_buffer(self, nbytes: int) -> None:
        """A loader reports its buffer's size; the peak is kept."""
        self.stats.peak_buffer_bytes = max(self.stats.peak_buffer_bytes, int(nbytes))
