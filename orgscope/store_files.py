"""Where the store's files live: a local folder or an S3 prefix, behind one small interface.

The store's logic (partitions, file names, deduplication, snapshots, compaction) is written once
in :mod:`orgscope.store` against :class:`StoreFiles`; this module holds the only code that
differs by place. docs/scaling.md, "Store on S3", explains the S3 side: credentials (boto3's
standard chain), the endpoint (the URL's ``endpoint_override``, which
:func:`orgscope.wiring.store_base` fills from ``aws.endpoint_url``, else
``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``), why S3 is read through pyarrow rather than
DuckDB's ``httpfs``, consistency and the compaction lock. Invariants:

* Adding a file never replaces another: locally a temporary file hard-linked into place, on S3
  one PutObject with ``If-None-Match: *``.
* Reads: locally DuckDB's ``read_parquet`` on the paths; on S3 one Arrow dataset per view
  (pyarrow ``S3FileSystem``, ListObjectsV2), each file a fragment whose partition expression
  carries its ``date`` and ``filename``, so a query bounded by ``date`` opens only that day's
  objects.
* The compaction lock: locally an ``fcntl`` lock on ``<dataset>/.lock``; on S3 a lock object
  ``<dataset>/.lock`` (conditional PUT, with an expiry).
* Durability (local only; an S3 PUT is durable when it returns): a file is fsynced before it
  is linked into place, and its folder after, so a merged file is on disk before compaction
  deletes what it replaces (docs/datasets.md, "Faults").
* A file that cannot be Parquet (too short, no ``PAR1`` at either end, a footer longer than
  the file) is moved under ``<root>/_quarantine/<dataset>/`` by the store, never read.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.parse
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import count
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import boto3
import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from orgscope.datasets import Dataset

log = logging.getLogger(__name__)

TMP_SUFFIX = ".parquet.tmp"
LOCK_NAME = ".lock"
#: Where unreadable files are moved: ``<root>/_quarantine/<dataset>/date=.../<name>``.
QUARANTINE = "_quarantine"
#: A temporary file older than this was left by a writer that died (a write takes seconds).
STALE_TMP = timedelta(minutes=15)
#: The magic bytes a Parquet file starts and ends with.
PARQUET_MAGIC = b"PAR1"
#: Files checked as whole Parquet files that this process keeps (see LocalFiles.unreadable).
CHECKED_CACHE_SIZE = 100_000
READ_OPTIONS = "hive_partitioning = true, union_by_name = true, hive_types = {'date': 'DATE'}"
#: A compaction lock object older than this is taken over (its holder is presumed dead).
LOCK_TTL = timedelta(minutes=15)
#: How long a compaction waits for another one's lock on the same dataset before giving up.
LOCK_WAIT_S = 60.0
S3_URL_OPTIONS = ("region", "endpoint_override")

_PARTITION_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_scan_names = count()
_CHECKED: set[str] = set()
_CHECKED_LOCK = threading.Lock()


class StoreError(Exception):
    """The store cannot be used (bad path, unknown dataset, bad query)."""


def quote_identifier(name: str) -> str:
    """``name`` as a DuckDB identifier (double-quoted, quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    """``text`` as a DuckDB string literal (single-quoted, quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


_SIMPLE_TYPES = (
    (pa.types.is_string, "VARCHAR"),
    (pa.types.is_large_string, "VARCHAR"),
    (pa.types.is_boolean, "BOOLEAN"),
    (pa.types.is_integer, "BIGINT"),
    (pa.types.is_floating, "DOUBLE"),
    (pa.types.is_date, "DATE"),
)


def duckdb_type(arrow_type: Any) -> str:
    """The DuckDB type of an Arrow type, for typed empty views."""
    for check, name in _SIMPLE_TYPES:
        if check(arrow_type):
            return name
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_list(arrow_type):
        return duckdb_type(arrow_type.value_type) + "[]"
    raise StoreError(f"no DuckDB type for {arrow_type}")


def parquet_shape_error(size: int, head: bytes, tail: bytes) -> str | None:
    """Why a file of ``size`` bytes that starts with ``head`` (4 bytes) and ends with ``tail``
    (8 bytes: the footer's length, then the magic) cannot be a whole Parquet file; None when
    its shape is right. A cheap check: it reads 12 bytes, not the footer."""
    if size < 12:
        return f"{size} bytes: too short to be Parquet (12 bytes at least)"
    if head != PARQUET_MAGIC:
        return "does not start with PAR1: not a Parquet file"
    if tail[4:] != PARQUET_MAGIC:
        return "does not end with PAR1: truncated, or not a Parquet file"
    footer = int.from_bytes(tail[:4], "little")
    if footer > size - 12:
        return f"its footer ({footer} bytes) is longer than the file ({size} bytes): truncated"
    return None


def quarantine_path(root: PurePath, path: PurePath) -> PurePath:
    """Where ``<root>/<dataset>/<partition>/<name>`` goes when it is unreadable."""
    return root / QUARANTINE / path.parent.parent.name / path.parent.name / path.name


def _fsync_folder(folder: Path) -> None:
    """Make ``folder``'s entries (a file linked in, a sub-folder made) durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _make_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each entry fsynced into its parent."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
        _fsync_folder(made.parent)


def is_data_file(folder: PurePath, path: PurePath) -> bool:
    """``<folder>/date=YYYY-MM-DD/<name>.parquet``, not a hidden temporary file."""
    return (path.parent.parent == folder and _PARTITION_RE.match(path.parent.name) is not None
            and path.name.endswith(".parquet") and not path.name.startswith("."))


class StoreFiles(ABC):
    """The files of one store: list, add, read, delete, lock, and scan them in DuckDB.

    Paths are :class:`~pathlib.PurePath` objects: real :class:`~pathlib.Path` objects for a
    local folder, ``PurePosixPath("bucket/prefix/...")`` for S3.
    """

    #: the folder (local) or ``bucket/prefix`` (S3) under which the datasets live
    root: PurePath

    @property
    @abstractmethod
    def location(self) -> str:
        """The store's place, for people: a folder or an s3:// URL (without options)."""

    @abstractmethod
    def list_files(self, folder: PurePath, partition: str = "") -> list[PurePath]:
        """Every data file under ``folder`` (``date=*/*.parquet``), sorted by path; only those
        of ``partition`` (a ``date=YYYY-MM-DD`` name) when one is given."""

    @abstractmethod
    def create(self, table: pa.Table, path: PurePath) -> bool:
        """Write ``table`` as Parquet at ``path`` atomically, unless something is there already.

        Returns False (writing nothing) when ``path`` exists: names are never reused, so two
        writers can never replace each other's files.
        """

    @abstractmethod
    def read_table(self, path: PurePath) -> pa.Table: ...

    @abstractmethod
    def read_metadata(self, path: PurePath) -> Mapping[bytes, bytes]:
        """The key-value metadata of a Parquet file's schema (reads the footer only)."""

    @abstractmethod
    def delete(self, paths: Iterable[PurePath]) -> None: ...

    @abstractmethod
    def unreadable(self, paths: Iterable[PurePath]) -> dict[PurePath, str]:
        """Of ``paths``, those that cannot be whole Parquet files, each with why (cheap: no
        footer is parsed). A file gone since it was listed is not in the answer."""

    @abstractmethod
    def quarantine(self, path: PurePath) -> PurePath:
        """Move ``path`` to :func:`quarantine_path` (never over another file); returns where
        it went. Raises OSError or StoreError when it cannot be moved."""

    @abstractmethod
    def remove_stale_temporaries(self, folder: PurePath, now: datetime) -> list[PurePath]:
        """Delete the temporary files under ``folder`` (a dataset) older than
        :data:`STALE_TMP` at ``now``, left by writers that died; returns them."""

    @abstractmethod
    def lock(self, folder: PurePath) -> AbstractContextManager[None]:
        """A context manager held by one compaction of the dataset in ``folder`` at a time."""

    @abstractmethod
    def scan_sql(self, connection: duckdb.DuckDBPyConnection, files: list[PurePath],
                 dataset: Dataset, with_filename: bool) -> str:
        """A DuckDB relation over ``files`` of ``dataset``: their columns by name, the ``date``
        partition, and (when asked) the ``filename`` each row came from."""

    def vanished(self, error: duckdb.Error) -> bool:
        """Whether a DuckDB error means a listed file was gone by the time it was read."""
        text = str(error)
        return isinstance(error, duckdb.IOException) or "Path does not exist" in text \
            or "NoSuchKey" in text


# --- a local folder ----------------------------------------------------------------------------


class LocalFiles(StoreFiles):
    """A folder on this machine (a plain path or a ``file://`` URL)."""

    def __init__(self, folder: Path) -> None:
        self.root = folder

    @property
    def location(self) -> str:
        return str(self.root)

    def list_files(self, folder: PurePath, partition: str = "") -> list[PurePath]:
        """os.scandir, not Path.glob: every query lists its datasets' files, thousands a day
        at 100 accounts, and glob costs ten times as much."""
        path = Path(folder)
        found: list[PurePath] = []
        try:
            partitions = [partition] if partition else [
                entry.name for entry in os.scandir(path)
                if _PARTITION_RE.match(entry.name) and entry.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        for name in sorted(partitions):
            try:
                with os.scandir(path / name) as entries:
                    files = sorted(entry.name for entry in entries
                                   if entry.name.endswith(".parquet")
                                   and not entry.name.startswith(".") and entry.is_file())
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed since it was listed
            folder_path = path / name
            found += [folder_path / file for file in files]
        return found

    def create(self, table: pa.Table, path: PurePath) -> bool:
        final = Path(path)
        _make_folder(final.parent)
        if final.exists():
            return False
        tmp = final.parent / f".{final.stem}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        try:
            with open(tmp, "wb") as handle:
                pq.write_table(table, handle, compression="zstd")
                handle.flush()
                os.fsync(handle.fileno())  # the bytes, before any name points at them
            try:
                os.link(tmp, final)  # atomic, and fails rather than replace a file
            except FileExistsError:
                return False
            except OSError:  # a file system without hard links
                if final.exists():
                    return False
                os.replace(tmp, final)
            _fsync_folder(final.parent)  # the name: only now may a merge delete what it holds
            return True
        finally:
            if tmp.exists():
                tmp.unlink()

    def read_table(self, path: PurePath) -> pa.Table:
        return pq.read_table(Path(path))

    def read_metadata(self, path: PurePath) -> Mapping[bytes, bytes]:
        return pq.read_schema(Path(path)).metadata or {}

    def delete(self, paths: Iterable[PurePath]) -> None:
        for path in paths:
            Path(path).unlink(missing_ok=True)

    def unreadable(self, paths: Iterable[PurePath]) -> dict[PurePath, str]:
        """Reads 4 bytes at each end of every file not yet found whole by this process (a file
        is never rewritten under its name, so each is opened once per process)."""
        bad: dict[PurePath, str] = {}
        for path in paths:
            key = str(path)
            if key in _CHECKED:
                continue
            try:
                with open(path, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    head = handle.read(4)
                    if size >= 12:
                        handle.seek(size - 8)
                    tail = handle.read(8)
            except FileNotFoundError:
                continue  # moved or deleted since it was listed
            except OSError as error:
                bad[path] = f"cannot be read: {error}"
                continue
            reason = parquet_shape_error(size, head, tail)
            if reason is None:
                with _CHECKED_LOCK:
                    if len(_CHECKED) >= CHECKED_CACHE_SIZE:
                        _CHECKED.clear()
                    _CHECKED.add(key)
            else:
                bad[path] = reason
        return bad

    def quarantine(self, path: PurePath) -> PurePath:
        target = Path(quarantine_path(self.root, path))
        _make_folder(target.parent)
        while target.exists():
            target = target.with_name(f"{target.stem}-{uuid.uuid4().hex[:8]}{target.suffix}")
        os.rename(path, target)
        _fsync_folder(target.parent)
        return target

    def remove_stale_temporaries(self, folder: PurePath, now: datetime) -> list[PurePath]:
        oldest = (now - STALE_TMP).timestamp()
        removed: list[PurePath] = []
        for path in sorted(Path(folder).glob(f"date=*/.*{TMP_SUFFIX}")):
            try:
                if path.stat().st_mtime < oldest:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue  # its writer finished (or gave up) meanwhile
        return removed

    @contextmanager
    def lock(self, folder: PurePath) -> Iterator[None]:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with open(Path(folder) / LOCK_NAME, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def scan_sql(self, connection: duckdb.DuckDBPyConnection, files: list[PurePath],
                 dataset: Dataset, with_filename: bool) -> str:
        paths = "[" + ", ".join(sql_string(str(p)) for p in files) + "]"
        filename = ", filename = true" if with_filename else ""
        scan = f"SELECT * FROM read_parquet({paths}, {READ_OPTIONS}{filename})"
        if not dataset.optional_columns:
            return scan
        # union_by_name fills a column some files lack, not one every file lacks: files
        # written before an optional column existed read it as null either way
        nulls = ", ".join(
            f"CAST(NULL AS {duckdb_type(dataset.schema.field(c).type)}) AS {quote_identifier(c)}"
            for c in dataset.optional_columns)
        return f"{scan} UNION ALL BY NAME SELECT {nulls} WHERE false"


# --- an S3 prefix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Target:
    """Where in S3, parsed from ``s3://bucket/prefix?region=..&endpoint_override=..``."""

    bucket: str
    prefix: str
    region: str | None = None
    endpoint: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def parse_s3_url(url: str) -> S3Target:
    """Parse an s3:// store URL; raise :class:`StoreError` saying what is wrong."""
    parts = urllib.parse.urlsplit(url)
    bucket = parts.netloc
    if not _BUCKET_RE.match(bucket):
        raise StoreError(f"store.path {url!r}: {bucket!r} is not an S3 bucket name "
                         "(3-63 lower-case letters, digits, dots and hyphens)")
    options = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - set(S3_URL_OPTIONS))
    if unknown or parts.fragment:
        raise StoreError(f"store.path {url!r}: unknown option {(unknown or ['#'])[0]!r} "
                         f"(allowed: {', '.join(S3_URL_OPTIONS)})")
    endpoint = options.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL_S3") \
        or os.environ.get("AWS_ENDPOINT_URL") or None
    return S3Target(bucket, parts.path.strip("/"), options.get("region") or None, endpoint)


class S3Files(StoreFiles):
    """Objects under ``s3://bucket/prefix``.

    Data files go up as one PutObject of the finished Parquet bytes (an object appears whole or
    not at all, so no temporary name is needed) with ``If-None-Match: *``, so a name is never
    reused. Listing, reading and deleting go through pyarrow's S3FileSystem, built from the
    boto3 session's current credentials (rebuilt when botocore refreshes them).
    """

    def __init__(self, target: S3Target, session: boto3.Session | None = None) -> None:
        self.target = target
        self.root = PurePosixPath(target.bucket, *filter(None, target.prefix.split("/")))
        self._session = session or boto3.Session()
        self._guard = threading.Lock()
        self._region: str | None = None
        self._fs: tuple[tuple[str | None, ...], pafs.S3FileSystem] | None = None
        self._client: Any = None
        #: object sizes from the latest listings (what :meth:`unreadable` checks)
        self._sizes: dict[str, int] = {}

    @property
    def location(self) -> str:
        return self.target.url

    # -- connections

    def region(self) -> str:
        """The URL's region; else, on AWS, the bucket's own; else the session's (us-east-1)."""
        with self._guard:
            if self._region is None:
                region = self.target.region
                if region is None and self.target.endpoint is None:
                    try:
                        region = pafs.resolve_s3_region(self.target.bucket)
                    except OSError as error:
                        log.warning("cannot find the region of bucket %s (%s); using the "
                                    "session's", self.target.bucket, error)
                self._region = region or self._session.region_name or "us-east-1"
            return self._region

    def filesystem(self) -> pafs.S3FileSystem:
        credentials = self._session.get_credentials()
        if credentials is None:
            raise StoreError(f"store {self.location}: no AWS credentials found (boto3's chain: "
                             "environment, profile, SSO or instance role)")
        frozen = credentials.get_frozen_credentials()
        key: tuple[str | None, ...] = (frozen.access_key, frozen.secret_key, frozen.token)
        region = self.region()
        with self._guard:
            if self._fs is None or self._fs[0] != key:
                filesystem = pafs.S3FileSystem(
                    access_key=frozen.access_key, secret_key=frozen.secret_key,
                    session_token=frozen.token, region=region,
                    endpoint_override=self.target.endpoint,
                    allow_bucket_creation=False, allow_bucket_deletion=False,
                    retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=5),
                )
                self._fs = (key, filesystem)
            return self._fs[1]

    def client(self) -> Any:
        region = self.region()
        with self._guard:
            if self._client is None:
                self._client = self._session.client(
                    "s3", region_name=region, endpoint_url=self.target.endpoint,
                    config=BotoConfig(retries={"mode": "standard", "max_attempts": 5},
                                      connect_timeout=5, read_timeout=60),
                )
            return self._client

    @staticmethod
    def _key(path: PurePath) -> str:
        return str(PurePosixPath(*path.parts[1:]))

    def _s3_error(self, doing: str, error: Exception) -> StoreError:
        return StoreError(f"store {self.location}: cannot {doing}: {error}")

    # -- files

    def list_files(self, folder: PurePath, partition: str = "") -> list[PurePath]:
        where = folder / partition if partition else folder
        selector = pafs.FileSelector(str(where), recursive=True, allow_not_found=True)
        try:
            infos = self.filesystem().get_file_info(selector)
        except OSError as error:
            raise self._s3_error(f"list {folder}", error) from None
        found = sorted((PurePosixPath(info.path), info.size) for info in infos
                       if info.type == pafs.FileType.File)
        files: list[PurePath] = [path for path, _size in found if is_data_file(folder, path)]
        with self._guard:
            if len(self._sizes) >= CHECKED_CACHE_SIZE:
                self._sizes.clear()  # names of deleted objects pile up otherwise
            self._sizes.update((str(path), size) for path, size in found if size is not None)
        return files

    def create(self, table: pa.Table, path: PurePath) -> bool:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        body = sink.getvalue().to_pybytes()
        try:
            self.client().put_object(Bucket=self.target.bucket, Key=self._key(path), Body=body,
                                     IfNoneMatch="*")
        except ClientError as error:
            # 409: a concurrent conditional PUT of the same name; the caller picks another name
            if _code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise self._s3_error(f"write {path}", error) from None
        except BotoCoreError as error:
            raise self._s3_error(f"write {path}", error) from None
        return True

    def read_table(self, path: PurePath) -> pa.Table:
        return pq.read_table(str(path), filesystem=self.filesystem())

    def read_metadata(self, path: PurePath) -> Mapping[bytes, bytes]:
        return pq.read_schema(str(path), filesystem=self.filesystem()).metadata or {}

    def delete(self, paths: Iterable[PurePath]) -> None:
        keys = [{"Key": self._key(p)} for p in paths]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1,000 keys
            try:
                response = self.client().delete_objects(
                    Bucket=self.target.bucket, Delete={"Objects": keys[start:start + 1000],
                                                       "Quiet": True})
            except (ClientError, BotoCoreError) as error:
                raise self._s3_error("delete compacted files", error) from None
            failed = response.get("Errors", [])
            if failed:
                first = failed[0]
                raise StoreError(f"store {self.location}: cannot delete {first.get('Key')}: "
                                 f"{first.get('Code')} {first.get('Message', '')}".strip())

    def unreadable(self, paths: Iterable[PurePath]) -> dict[PurePath, str]:
        """Objects the listing says are too short to be Parquet (free: no request). An object
        is one PUT of a finished file, so it cannot be truncated by orgscope's writers; one
        otherwise broken fails compaction's read of it and is quarantined then."""
        with self._guard:
            sizes = {path: self._sizes.get(str(path)) for path in paths}
        return {path: f"{size} bytes: too short to be Parquet (12 bytes at least)"
                for path, size in sizes.items() if size is not None and size < 12}

    def quarantine(self, path: PurePath) -> PurePath:
        target = quarantine_path(self.root, path)
        target = target.with_name(f"{target.stem}-{uuid.uuid4().hex[:8]}{target.suffix}")
        try:
            self.filesystem().move(str(path), str(target))  # a copy, then a delete
        except OSError as error:
            raise self._s3_error(f"move {path} to {target}", error) from None
        return target

    def remove_stale_temporaries(self, folder: PurePath, now: datetime) -> list[PurePath]:
        return []  # objects go up in one PUT: there are no temporary names

    @contextmanager
    def lock(self, folder: PurePath) -> Iterator[None]:
        lock = S3Lock(self.client(), self.target.bucket, self._key(folder / LOCK_NAME))
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def scan_sql(self, connection: duckdb.DuckDBPyConnection, files: list[PurePath],
                 dataset: Dataset, with_filename: bool) -> str:
        """An Arrow dataset of one fragment per object, registered with DuckDB.

        Each fragment's partition expression says what holds for every row in it: its ``date``,
        its ``filename``, and the day's bounds of the partition column when that is a timestamp
        (rows are partitioned by its UTC date). DuckDB hands its filters to the Arrow scan,
        which then skips, unopened, every object a ``date`` or time-column bound rules out.
        """
        filesystem = self.filesystem()
        fields = [f.with_nullable(True) for f in dataset.schema]
        if "date" not in dataset.schema.names:
            fields.append(pa.field("date", pa.date32()))
        fields.append(pa.field("filename", pa.string()))
        time_type = dataset.schema.field(dataset.partition_column).type
        bounded = pa.types.is_timestamp(time_type)
        parquet = pads.ParquetFileFormat()
        fragments = []
        for path in files:
            day = datetime.strptime(path.parent.name, "date=%Y-%m-%d").date()
            holds = ((pads.field("date") == pa.scalar(day, pa.date32()))
                     & (pads.field("filename") == f"s3://{path}"))
            if bounded:
                start = datetime.combine(day, datetime.min.time(), UTC)
                column = pads.field(dataset.partition_column)
                holds = holds & (column >= pa.scalar(start, time_type)) \
                    & (column < pa.scalar(start + timedelta(days=1), time_type))
            fragments.append(parquet.make_fragment(str(path), filesystem=filesystem,
                                                   partition_expression=holds))
        arrow = pads.FileSystemDataset(fragments, pa.schema(fields), parquet, filesystem)
        name = f"__s3_scan_{next(_scan_names)}"
        connection.register(name, arrow)
        columns = "*" if with_filename else "* EXCLUDE (filename)"
        return f"SELECT {columns} FROM {name}"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Lock:
    """A lock object taken with a conditional PUT (``If-None-Match: *``).

    The object holds its owner and an expiry; a lock past its expiry is taken over with
    ``If-Match`` on its ETag (so two processes cannot both take over), and released with a
    conditional delete, so a process never removes a lock it no longer holds.
    """

    def __init__(self, client: Any, bucket: str, key: str, ttl: timedelta = LOCK_TTL,
                 wait_s: float = LOCK_WAIT_S) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.ttl = ttl
        self.wait_s = wait_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.etag: str | None = None

    def _body(self) -> bytes:
        now = datetime.now(UTC)
        return json.dumps({"owner": self.owner, "acquired_at": now.isoformat(),
                           "expires_at": (now + self.ttl).isoformat()}).encode()

    def _put(self, **condition: str) -> bool:
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=self.key,
                                              Body=self._body(), **condition)
        except ClientError as error:
            if _code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
        self.etag = response["ETag"]
        return True

    def _holder(self) -> tuple[str, datetime, str] | None:
        """(owner, expiry, ETag) of the lock object, or None when there is none."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404"):
                return None
            raise
        try:
            held = json.loads(response["Body"].read())
            expires = datetime.fromisoformat(held["expires_at"])
            owner = str(held["owner"])
        except (ValueError, KeyError, TypeError):
            expires, owner = datetime.min.replace(tzinfo=UTC), "unreadable lock"
        return owner, expires, response["ETag"]

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            if self._put(IfNoneMatch="*"):
                return
            holder = self._holder()
            if holder is None:  # released in the meantime: try again at once
                continue
            owner, expires, etag = holder
            if expires < datetime.now(UTC):
                log.warning("taking over the expired compaction lock s3://%s/%s of %s",
                            self.bucket, self.key, owner)
                if self._put(IfMatch=etag):
                    return
            elif time.monotonic() >= deadline:
                raise StoreError(
                    f"compaction lock s3://{self.bucket}/{self.key} is held by {owner} until "
                    f"{expires:%Y-%m-%d %H:%M:%S} UTC; only one compaction runs at a time "
                    "(try again later)")
            time.sleep(1.0)

    def release(self) -> None:
        if self.etag is None:
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except ClientError as error:
            if _code(error) not in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise
            log.warning("compaction lock s3://%s/%s was taken over before it was released",
                        self.bucket, self.key)
        finally:
            self.etag = None


# --- choosing ----------------------------------------------------------------------------------


def open_files(base: str) -> StoreFiles:
    """The files of the store at ``base``: a folder, a ``file://`` URL or an ``s3://`` URL."""
    if base.startswith("s3://"):
        return _s3_files(parse_s3_url(base))
    if base.startswith("file://"):
        return LocalFiles(Path(base.removeprefix("file://")).expanduser().resolve())
    if "://" in base:
        scheme = base.split("://", 1)[0]
        raise StoreError(
            f"store.path {base!r}: the {scheme}:// scheme is not supported; use a local "
            "folder, a file:// URL or s3://bucket/prefix"
        )
    return LocalFiles(Path(base).expanduser().resolve())


@lru_cache(maxsize=32)
def _s3_files(target: S3Target) -> S3Files:
    """One S3Files (one boto3 session, client and pyarrow file system) per place and endpoint:
    the dashboard opens the store for every query, and clients are worth reusing."""
    return S3Files(target)
