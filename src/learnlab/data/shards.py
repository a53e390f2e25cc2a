"""Sharded datasets: Parquet shards plus an index, and read adapters for .npy and WebDataset tars.

A dataset is a directory (any fsspec URL) of shards ``shard-00000.parquet, ...`` and an
``index.json`` written last: shard names, record counts, byte sizes, SHA-256 checksums,
each shard's row-group byte ranges, and the schema. One row is one record; a column holds
numbers, fixed-shape arrays (stored as fixed-size lists) or bytes.

Every source offers the same two reads, each one storage request:
``read_shard(i)`` (the whole block, sequentially) and ``read_record(i, row)`` (random
access: the byte range of the record's row group, decoded with the cached footer).
Both verify what they read: the whole shard against its SHA-256, a row group and the
footer against their own (``row_group_sha256``, ``footer_sha256`` in the index).

``write_arrays`` checks its columns first (one row per record, the same number of rows,
at least one row, types a shard can hold), refuses an existing destination, and writes
to a temporary sibling (``<destination>.partial``) that it moves into place once the
index is written: a destination holds a complete dataset or nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from typing import Protocol

import numpy as np

from learnlab.data.storage import DataError, Storage

__all__ = ["ShardSource", "ShardWriter", "ShardedDataset", "NpySource", "WebDatasetSource", "write_arrays",
           "check_columns", "refuse_existing", "open_source", "INDEX", "LINEAGE_SHARD", "LINEAGE_ROW"]

INDEX = "index.json"
FORMAT = "learnlab-shards/1"
LINEAGE_SHARD, LINEAGE_ROW = "_lineage_shard", "_lineage_row"

Records = dict[str, np.ndarray]


class ShardSource(Protocol):
    storage: Storage
    shard_sizes: np.ndarray  # (n_shards,) records per shard

    def read_shard(self, shard: int) -> Records: ...
    def read_record(self, shard: int, row: int) -> Records: ...


# ----------------------------------------------------------------------------- encoding


def _to_arrow(records: Records):
    import pyarrow as pa

    columns = {}
    for name, values in records.items():
        values = np.asarray(values)
        if values.dtype == object or values.dtype.kind == "S":
            columns[name] = pa.array([bytes(v) for v in values], type=pa.binary())
        elif values.ndim == 1:
            columns[name] = pa.array(values)
        else:
            flat = pa.array(np.ascontiguousarray(values).reshape(-1))
            columns[name] = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(values.shape[1:])))
    return pa.table(columns)


def _from_arrow(table, schema: Mapping[str, dict]) -> Records:
    out = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        spec = schema.get(name, {})
        if spec.get("kind") == "bytes":
            out[name] = np.array(column.to_pylist(), dtype=object)
        elif spec.get("shape"):
            values = column.values.to_numpy(zero_copy_only=False)
            out[name] = values.reshape(len(column), *spec["shape"]).astype(spec["dtype"], copy=False)
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out


def _schema_of(records: Records) -> dict[str, dict]:
    schema = {}
    for name, values in records.items():
        values = np.asarray(values)
        if values.dtype == object or values.dtype.kind == "S":
            schema[name] = {"kind": "bytes"}
        else:
            schema[name] = {"kind": "array" if values.ndim > 1 else "number", "dtype": values.dtype.str,
                            "shape": list(values.shape[1:])}
    return schema


# ----------------------------------------------------------------------------- writing


class ShardWriter:
    """Records in, Parquet shards of ``records_per_shard`` out, the index written last.

    ``write(batch)`` takes a dict of arrays with a common first dimension (any number of
    records); ``close()`` flushes the last, possibly shorter, shard and commits the index.
    ``lineage=True`` adds each record's (shard, row) as ``_lineage_shard`` /
    ``_lineage_row`` unless the batch carries them already (as the offline pass does).
    """

    def __init__(self, url: str | Storage, records_per_shard: int, *, row_group_size: int | None = None,
                 lineage: bool = False, prefix: str = "shard", start_index: int = 0):
        if records_per_shard < 1:
            raise DataError(f"records_per_shard must be >= 1; got {records_per_shard}")
        self.storage = url if isinstance(url, Storage) else Storage(url)
        self.records_per_shard, self.row_group_size = records_per_shard, row_group_size
        self.lineage, self.prefix = lineage, prefix
        self.entries: list[dict] = []
        self.schema: dict | None = None
        self._pending: list[Records] = []
        self._pending_rows = 0
        self._next = start_index

    def write(self, batch: Mapping[str, np.ndarray]) -> None:
        batch = {name: np.asarray(values) for name, values in batch.items()}
        rows = {len(v) for v in batch.values()}
        if len(rows) != 1:
            raise DataError(f"columns of a batch must have the same length; got {sorted(rows)}")
        self._pending.append(batch)
        self._pending_rows += rows.pop()
        while self._pending_rows >= self.records_per_shard:
            self._flush(self.records_per_shard)

    def _take(self, count: int) -> Records:
        merged = {name: np.concatenate([b[name] for b in self._pending]) for name in self._pending[0]}
        head = {name: values[:count] for name, values in merged.items()}
        rest = {name: values[count:] for name, values in merged.items()}
        self._pending = [rest] if len(next(iter(rest.values()))) else []
        self._pending_rows -= count
        return head

    def _flush(self, count: int) -> None:
        records = self._take(count)
        shard_number = self._next
        if self.lineage and LINEAGE_SHARD not in records:
            records[LINEAGE_SHARD] = np.full(count, shard_number, dtype=np.int32)
            records[LINEAGE_ROW] = np.arange(count, dtype=np.int32)
        self.write_shard(f"{self.prefix}-{shard_number:05d}.parquet", records)
        self._next += 1

    def write_shard(self, name: str, records: Records) -> dict:
        """Write one shard now; returns (and keeps) its index entry."""
        import pyarrow.parquet as pq

        schema = _schema_of(records)
        if self.schema is None:
            self.schema = schema
        elif schema != self.schema:
            raise DataError(f"shard {name} has schema {schema}, the dataset {self.schema}")
        buffer = io.BytesIO()
        rows = len(next(iter(records.values())))
        pq.write_table(_to_arrow(records), buffer, row_group_size=self.row_group_size or max(rows, 1))
        data = buffer.getvalue()
        self.storage.write(name, data)
        entry = _entry(name, data)
        self.entries.append(entry)
        return entry

    def close(self, extra: Mapping | None = None) -> dict:
        if self._pending_rows:
            self._flush(self._pending_rows)
        index = make_index(self.entries, self.schema or {}, extra)
        self.storage.write_json(INDEX, index)
        return index

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:  # an exception leaves no index: the dataset does not look complete
            self.close()


def _entry(name: str, data: bytes) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(pa.BufferReader(data)).metadata
    groups = []
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        starts = [min(o for o in (group.column(c).dictionary_page_offset, group.column(c).data_page_offset)
                      if o is not None and o > 0) for c in range(group.num_columns)]
        ends = [s + group.column(c).total_compressed_size for c, s in enumerate(starts)]
        groups.append([min(starts), max(ends), group.num_rows])
    footer = data[-(int.from_bytes(data[-8:-4], "little") + 8):]
    return {"name": name, "records": metadata.num_rows, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "row_groups": groups,
            "row_group_sha256": [hashlib.sha256(data[start:end]).hexdigest() for start, end, _ in groups],
            "footer_sha256": hashlib.sha256(footer).hexdigest()}


def make_index(entries: list[dict], schema: dict, extra: Mapping | None = None) -> dict:
    """The index of ``entries``, sealed with the SHA-256 of its own content (``index_sha256``)."""
    index = {"format": FORMAT, "records": int(sum(e["records"] for e in entries)), "schema": schema,
             "shards": list(entries), **(dict(extra) if extra else {})}
    index["index_sha256"] = _index_digest(index)
    return index


def _index_digest(index: Mapping) -> str:
    content = {key: value for key, value in index.items() if key != "index_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


_STORABLE = "biufSOU"  # numpy kinds a shard holds: bool, ints, floats, bytes, str


def check_columns(arrays: Mapping[str, np.ndarray], source: str = "the arrays") -> dict[str, np.ndarray]:
    """The columns as arrays, each checked: at least one row per record (no 0-d arrays), the
    same number of rows everywhere, at least one record, and a type a shard can store.
    Raises ``DataError`` naming ``source`` and the column otherwise."""
    columns = {str(name): np.asarray(values) for name, values in arrays.items()}
    if not columns:
        raise DataError(f"{source} holds no arrays")
    for name, values in columns.items():
        if values.ndim == 0:
            raise DataError(f"{source}: column {name!r} is a 0-d array (one value); every column needs one row "
                            f"a record")
        if values.dtype.kind not in _STORABLE:
            raise DataError(f"{source}: column {name!r} has dtype {values.dtype}, which a shard cannot store "
                            f"(numbers, booleans, strings or bytes)")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        counts = ", ".join(f"{name} {n:,}" for name, n in lengths.items())
        raise DataError(f"{source}: columns have different numbers of rows ({counts}); every record needs every column")
    if not next(iter(lengths.values())):
        raise DataError(f"{source} has no records (0 rows)")
    return columns


def refuse_existing(storage: Storage) -> None:
    """Refuse a destination that already holds anything (a dataset, a file, a non-empty folder)."""
    fs, root = storage.fs, storage.root.rstrip("/")
    if fs.exists(root) and (not fs.isdir(root) or fs.ls(root, detail=False)):
        what = "a dataset" if storage.exists(INDEX) else "files" if fs.isdir(root) else "a file"
        raise DataError(f"{storage.url} already exists (it holds {what}); choose a new destination")


def write_arrays(url: str | Storage, arrays: Mapping[str, np.ndarray], records_per_shard: int, *,
                 row_group_size: int | None = None, lineage: bool = True, extra: Mapping | None = None) -> dict:
    """Write arrays (a common first dimension) as a new sharded dataset at ``url``; returns the index.

    The columns are checked first (``check_columns``); an existing destination is refused.
    Shards and the index go to ``<url>.partial`` first, moved into place at the end, so an
    interrupted write leaves ``url`` untouched (and its ``.partial`` is cleared by the next write).
    """
    columns = check_columns(arrays)
    target = url if isinstance(url, Storage) else Storage(url)
    refuse_existing(target)
    staging = Storage(target.url.rstrip("/") + ".partial")
    fs = staging.fs
    if fs.exists(staging.root):  # an interrupted write's leftovers: ours, by name
        fs.rm(staging.root, recursive=True)
    writer = ShardWriter(staging, records_per_shard, row_group_size=row_group_size, lineage=lineage)
    writer.write(columns)
    index = writer.close(extra)
    root = target.root.rstrip("/")
    if fs.exists(root):  # an empty folder stands there (refuse_existing allowed it)
        fs.rmdir(root)
    fs.mv(staging.root.rstrip("/"), root, recursive=True)
    target.stats.bytes_written += staging.stats.bytes_written
    target.stats.write_requests += staging.stats.write_requests
    return index


# ----------------------------------------------------------------------------- reading


class _RangeFile(io.RawIOBase):
    """A read-only file of ``size`` bytes of which only [start, start + len(data)) is held:
    enough for pyarrow to decode one row group when the footer is given separately."""

    def __init__(self, size: int, start: int, data: bytes):
        self._size, self._start, self._data, self._position = size, start, data, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        self._position = offset if whence == 0 else self._position + offset if whence == 1 else self._size + offset
        return self._position

    def readinto(self, buffer) -> int:
        begin = self._position - self._start
        if begin < 0 or begin + len(buffer) > len(self._data):
            raise OSError("read outside the fetched row group")
        buffer[:] = self._data[begin:begin + len(buffer)]
        self._position += len(buffer)
        return len(buffer)


class ShardedDataset:
    """A Parquet-sharded dataset opened from its index (one request)."""

    def __init__(self, url: str | Storage, *, verify: bool = True, latency: float = 0.0):
        self.storage = url if isinstance(url, Storage) else Storage(url, latency=latency)
        self.index = self.storage.read_json(INDEX)
        if not isinstance(self.index, dict) or self.index.get("format") != FORMAT:
            raise DataError(f"{self.storage.url}/{INDEX} is not a learnlab shard index")
        sealed = self.index.get("index_sha256")  # absent: an index written before indexes were sealed
        if sealed is not None and sealed != _index_digest(self.index):
            raise DataError(f"{self.storage.url}/{INDEX} is corrupt: its content does not match its checksum")
        try:
            self.entries = list(self.index["shards"])
            self.schema = dict(self.index["schema"])
            self.shard_sizes = np.array([int(e["records"]) for e in self.entries], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{self.storage.url}/{INDEX} is corrupt ({type(error).__name__}: {error})") from None
        # Shards laid end to end in index order: a read is contiguous if it starts where the last one ended.
        starts = np.concatenate([[0], np.cumsum([e["bytes"] for e in self.entries])[:-1]])
        self.storage.layout.update({e["name"]: int(s) for e, s in zip(self.entries, starts)})
        self.verify = verify
        self._footers: dict[int, object] = {}
        # What this dataset is, for work that depends on it (the offline pass's task markers).
        self.digest = hashlib.sha256(json.dumps(self.index, sort_keys=True).encode()).hexdigest()

    @property
    def n_records(self) -> int:
        return int(self.shard_sizes.sum())

    def _decode(self, shard: int, data: bytes):
        import pyarrow as pa
        import pyarrow.parquet as pq

        entry = self.entries[shard]
        if len(data) != entry["bytes"]:
            raise DataError(f"shard '{entry['name']}' is truncated: {len(data)} of {entry['bytes']} bytes")
        if self.verify and hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DataError(f"shard '{entry['name']}' is corrupt: its checksum does not match the index")
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            self._footers[shard] = parquet.metadata
            return parquet.read()
        except Exception as error:  # pyarrow raises several kinds for a damaged file
            raise DataError(f"shard '{entry['name']}' cannot be decoded ({error})") from None

    def read_shard(self, shard: int) -> Records:
        """The whole shard: one sequential request, checked against its size and checksum."""
        return _from_arrow(self._decode(shard, self.storage.read(self.entries[shard]["name"])), self.schema)

    def read_record(self, shard: int, row: int) -> Records:
        """One record by random access: one ranged request for its row group (the footer is
        read once per shard and cached)."""
        import pyarrow.parquet as pq

        entry = self.entries[shard]
        checksums = entry.get("row_group_sha256")
        if self.verify and (checksums is None or "footer_sha256" not in entry):
            # An index written before row-group checksums: only the whole shard can be verified.
            records = self.read_shard(shard)
            if not 0 <= row < int(self.shard_sizes[shard]):
                raise DataError(f"row {row} is beyond shard '{entry['name']}' ({self.shard_sizes[shard]} records)")
            return {k: v[row:row + 1] for k, v in records.items()}
        if shard not in self._footers:
            size = entry["bytes"]
            tail = self.storage.read(entry["name"], max(0, size - 65_536), size)
            checksum = entry.get("footer_sha256") if self.verify else None
            self._footers[shard] = _footer(tail, size, entry["name"], checksum)
        first = 0
        for group, (start, end, rows) in enumerate(entry["row_groups"]):
            if row < first + rows:
                data = self.storage.read(entry["name"], start, end)
                if len(data) != end - start:
                    raise DataError(f"shard '{entry['name']}' is truncated: row group {group} ends past its end")
                if self.verify and hashlib.sha256(data).hexdigest() != checksums[group]:
                    raise DataError(f"shard '{entry['name']}' is corrupt: row group {group} does not match "
                                    f"its checksum in the index")
                try:
                    table = pq.ParquetFile(_RangeFile(entry["bytes"], start, data),
                                           metadata=self._footers[shard]).read_row_group(group)
                except Exception as error:
                    raise DataError(f"shard '{entry['name']}' cannot be decoded ({error})") from None
                return {k: v[row - first:row - first + 1] for k, v in _from_arrow(table, self.schema).items()}
            first += rows
        raise DataError(f"row {row} is beyond shard '{entry['name']}' ({first} records)")


def _footer(tail: bytes, size: int, name: str, sha256: str | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(tail) < 8 or tail[-4:] != b"PAR1":
        raise DataError(f"shard '{name}' is truncated or not Parquet (no footer)")
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 8 > len(tail):
        raise DataError(f"shard '{name}' has a footer larger than 64 KiB; read it whole")
    if sha256 is not None and hashlib.sha256(tail[-(length + 8):]).hexdigest() != sha256:
        raise DataError(f"shard '{name}' is corrupt: its footer does not match its checksum in the index")
    # The footer alone, framed as a minimal file (magic, footer, length, magic), parses as metadata.
    try:
        return pq.ParquetFile(pa.BufferReader(b"PAR1" + tail[-(length + 8):])).metadata
    except Exception as error:  # pyarrow raises several kinds for a damaged footer
        raise DataError(f"shard '{name}' has a footer that cannot be decoded ({error})") from None


class NpySource:
    """Plain ``.npy`` arrays (one file per column, a common first dimension) read as
    blocks of ``records_per_block`` rows: a block is one ranged request per column."""

    def __init__(self, url: str | Storage, columns: Mapping[str, str], records_per_block: int):
        self.storage = url if isinstance(url, Storage) else Storage(url)
        self.columns, self.block = dict(columns), records_per_block
        self.layout = {}
        for name, file in self.columns.items():
            head = self.storage.read(file, 0, 4096)
            stream = io.BytesIO(head)
            version = np.lib.format.read_magic(stream)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(stream)
            if fortran:
                raise DataError(f"{file}: Fortran-ordered arrays are not supported")
            row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            self.layout[name] = (file, stream.tell(), shape, dtype, row_bytes)
        lengths = {shape[0] for _, _, shape, _, _ in self.layout.values()}
        if len(lengths) != 1:
            raise DataError(f"the .npy columns have different lengths: {sorted(lengths)}")
        total = lengths.pop()
        self.shard_sizes = np.array([min(self.block, total - s) for s in range(0, total, self.block)], dtype=np.int64)
        self.storage.reset_stats()

    def _rows(self, start: int, count: int) -> Records:
        out = {}
        for name, (file, offset, shape, dtype, row_bytes) in self.layout.items():
            data = self.storage.read(file, offset + start * row_bytes, offset + (start + count) * row_bytes)
            out[name] = np.frombuffer(data, dtype=dtype).reshape(count, *shape[1:])
        return out

    def read_shard(self, shard: int) -> Records:
        return self._rows(shard * self.block, int(self.shard_sizes[shard]))

    def read_record(self, shard: int, row: int) -> Records:
        return self._rows(shard * self.block + row, 1)


class WebDatasetSource:
    """Existing WebDataset tar shards: a record is the tar members sharing a key
    (``000123.x.npy``, ``000123.cls``). Members ending in .npy are arrays, .cls / .idx
    integers, anything else bytes. Opening scans each tar once (one request a shard) to
    learn every record's byte range; a record read is then one ranged request."""

    def __init__(self, url: str | Storage, shards: Iterable[str]):
        self.storage = url if isinstance(url, Storage) else Storage(url)
        self.names = list(shards)
        self.records: list[list[tuple[str, int, int, list[tuple[str, int, int]]]]] = []
        for name in self.names:
            data = self.storage.read(name)
            try:
                members = tarfile.open(fileobj=io.BytesIO(data)).getmembers()
            except tarfile.TarError as error:
                raise DataError(f"shard '{name}' is not a readable tar ({error})") from None
            grouped: dict[str, list] = {}
            for member in members:
                if member.isfile():
                    key, _, suffix = member.name.partition(".")
                    grouped.setdefault(key, []).append((suffix, member.offset_data, member.size))
            self.records.append([(key, min(o for _, o, _ in parts), max(o + s for _, o, s in parts), parts)
                                 for key, parts in grouped.items()])
        self.shard_sizes = np.array([len(r) for r in self.records], dtype=np.int64)
        self.storage.reset_stats()

    @staticmethod
    def _decode(suffix: str, payload: bytes):
        if suffix.endswith("npy"):
            return np.load(io.BytesIO(payload), allow_pickle=False)
        if suffix in ("cls", "idx"):
            return np.int64(int(payload.decode().strip()))
        return payload

    def _collect(self, pieces: list[Records]) -> Records:
        return {k: np.stack([p[k] for p in pieces]) if not isinstance(pieces[0][k], bytes)
                else np.array([p[k] for p in pieces], dtype=object) for k in pieces[0]}

    def _records(self, shard: int, rows: Iterable[int], data: bytes, base: int) -> Records:
        pieces = []
        for row in rows:
            _, _, _, parts = self.records[shard][row]
            pieces.append({suffix: self._decode(suffix, data[o - base:o - base + s]) for suffix, o, s in parts})
        return self._collect(pieces)

    def read_shard(self, shard: int) -> Records:
        return self._records(shard, range(len(self.records[shard])), self.storage.read(self.names[shard]), 0)

    def read_record(self, shard: int, row: int) -> Records:
        _, start, end, _ = self.records[shard][row]
        return self._records(shard, [row], self.storage.read(self.names[shard], start, end), start)


def open_source(url: str, *, latency: float = 0.0, verify: bool = True) -> ShardedDataset:
    """A Parquet-sharded dataset at ``url`` (``index.json`` inside)."""
    return ShardedDataset(url, verify=verify, latency=latency)
