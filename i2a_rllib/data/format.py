"""The on-disk transition dataset: Parquet shards + a JSON manifest.

Pure pyarrow + numpy (no Ray). Layout of a dataset directory (local path or any
pyarrow filesystem URI):

    manifest.json                  env id, obs shape, num actions, policy, counts, shards
    shard-a003-000017.parquet      one shard: rows of consecutive transitions of one actor

Each row is one transition (zstd-compressed; frames stay uint8):

    obs          fixed-size binary   the (C, H, W) uint8 observation
    action       int32
    reward       float32             unclipped
    terminated   bool
    truncated    bool
    next_frame   fixed-size binary   the newest frame of the next observation (fc, H, W)
    actor, env_index, episode, step  where the transition comes from, so held-out
                                     trajectories can be replayed in order

Flat observation vectors (CartPole's (4,) float32) are stored as what they are: `obs`
and `next_frame` are fixed-size lists of float32 (the next state, whole), and the
manifest's `obs_dtype` says "float32" (frames: "uint8").

Shards are written to a temporary name and renamed: a partial shard is never visible.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

MANIFEST_FILE = "manifest.json"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".parquet"
FORMAT_VERSION = 1

COLUMNS = (
    "obs",
    "action",
    "reward",
    "terminated",
    "truncated",
    "next_frame",
    "actor",
    "env_index",
    "episode",
    "step",
)


class DatasetError(ValueError):
    """A dataset that is missing, empty, corrupt or of the wrong shape."""


# Observation dtypes a dataset stores: uint8 frames, float32 vectors.
FRAME_DTYPE, VECTOR_DTYPE = "uint8", "float32"


def obs_dtype_of(obs_shape: Tuple[int, ...]) -> str:
    """How observations of `obs_shape` are stored: (D,) vectors as float32, frames uint8."""
    return VECTOR_DTYPE if len(obs_shape) == 1 else FRAME_DTYPE


def _observation_type(size: int, obs_dtype: str) -> pa.DataType:
    if obs_dtype == VECTOR_DTYPE:
        return pa.list_(pa.float32(), size)
    return pa.binary(size)


def transition_schema(
    obs_shape: Tuple[int, ...], frame_channels: int, obs_dtype: str = FRAME_DTYPE
) -> pa.Schema:
    frame_size = int(np.prod(obs_shape[1:])) * frame_channels
    return pa.schema(
        [
            ("obs", _observation_type(int(np.prod(obs_shape)), obs_dtype)),
            ("action", pa.int32()),
            ("reward", pa.float32()),
            ("terminated", pa.bool_()),
            ("truncated", pa.bool_()),
            ("next_frame", _observation_type(frame_size, obs_dtype)),
            ("actor", pa.int32()),
            ("env_index", pa.int32()),
            ("episode", pa.int64()),
            ("step", pa.int32()),
        ]
    )


@dataclass
class Manifest:
    """What a dataset holds; written next to the shards."""

    env_id: str
    obs_shape: List[int]
    num_actions: int
    frame_channels: int
    policy: str
    env_config: Dict[str, Any] = field(default_factory=dict)
    # Distinct rewards seen (None once there are too many to treat as classes).
    reward_values: Optional[List[float]] = field(default_factory=list)
    num_transitions: int = 0
    shards: Dict[str, int] = field(default_factory=dict)  # shard name -> rows
    format_version: int = FORMAT_VERSION
    # "uint8" frames or "float32" vectors (manifests written before vectors: frames).
    obs_dtype: str = FRAME_DTYPE

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Manifest":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


MAX_REWARD_CLASSES = 32


def merge_reward_values(known: Optional[List[float]], new) -> Optional[List[float]]:
    """Union of distinct rewards; None when there are too many to be classes."""
    if known is None:
        return None
    merged = sorted(set(float(v) for v in known) | set(float(v) for v in new))
    return merged if len(merged) <= MAX_REWARD_CLASSES else None


def filesystem_and_path(uri: str) -> Tuple[pafs.FileSystem, str]:
    """Local path or URI (s3://, gs://, file://, ...) -> (pyarrow filesystem, path)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    import os

    return pafs.LocalFileSystem(), os.path.abspath(uri)


def shard_name(actor: int, index: int) -> str:
    return f"{SHARD_PREFIX}a{actor:03d}-{index:06d}{SHARD_SUFFIX}"


def parse_shard_name(name: str) -> Tuple[int, int]:
    stem = name[len(SHARD_PREFIX) : -len(SHARD_SUFFIX)]
    actor, index = stem.split("-")
    return int(actor[1:]), int(index)


def list_shards(fs: pafs.FileSystem, root: str) -> List[str]:
    """Names of the complete shards (temporary files are not listed)."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        posixpath.basename(i.path)
        for i in infos
        if i.type == pafs.FileType.File
        and posixpath.basename(i.path).startswith(SHARD_PREFIX)
        and i.path.endswith(SHARD_SUFFIX)
    )


def write_shard_atomically(
    fs: pafs.FileSystem, root: str, name: str, table: pa.Table
) -> None:
    """Writes to a hidden temporary file, then renames: readers never see a partial shard."""
    tmp = posixpath.join(root, f".tmp-{uuid.uuid4().hex}-{name}")
    try:
        with fs.open_output_stream(tmp) as out:
            pq.write_table(table, out, compression="zstd", compression_level=3)
        fs.move(tmp, posixpath.join(root, name))
    except BaseException:
        try:
            fs.delete_file(tmp)
        except Exception:
            pass
        raise


def write_manifest(fs: pafs.FileSystem, root: str, manifest: Manifest) -> None:
    tmp = posixpath.join(root, f".tmp-{uuid.uuid4().hex}-{MANIFEST_FILE}")
    with fs.open_output_stream(tmp) as out:
        out.write(manifest.to_json().encode())
    fs.move(tmp, posixpath.join(root, MANIFEST_FILE))


def read_manifest(uri: str) -> Manifest:
    """Reads `<uri>/manifest.json`.

    Raises:
        DatasetError: missing directory, missing or corrupt manifest, empty dataset.
    """
    fs, root = filesystem_and_path(uri)
    info = fs.get_file_info(root)
    if info.type != pafs.FileType.Directory:
        raise DatasetError(
            f"Dataset {uri!r} does not exist. Create it with `i2a collect --output {uri}`."
        )
    try:
        with fs.open_input_stream(posixpath.join(root, MANIFEST_FILE)) as f:
            data = json.loads(f.read().decode())
    except FileNotFoundError:
        raise DatasetError(
            f"{uri!r} has no {MANIFEST_FILE}: it is not a dataset written by `i2a collect` "
            "(or the collection never finished a shard)."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{uri}/{MANIFEST_FILE} is corrupt ({e}).") from None
    manifest = Manifest.from_dict(data)
    if manifest.num_transitions <= 0 or not manifest.shards:
        raise DatasetError(
            f"Dataset {uri!r} is empty (0 transitions). Run `i2a collect` with "
            "--num-transitions > 0."
        )
    return manifest


def check_shard(uri: str, name: str, manifest: Manifest) -> int:
    """Opens a shard's footer and checks its schema; returns its row count.

    Raises:
        DatasetError: a corrupt or truncated shard, or a schema that does not match.
    """
    fs, root = filesystem_and_path(uri)
    path = posixpath.join(root, name)
    try:
        with fs.open_input_file(path) as f:
            parquet = pq.ParquetFile(f)
            schema = parquet.schema_arrow
            rows = parquet.metadata.num_rows
    except Exception as e:
        raise DatasetError(
            f"Shard {path!r} is corrupt or truncated ({type(e).__name__}: {e}). Delete it "
            "and run `i2a collect` again with the same --output: it refills what is missing."
        ) from None
    expected = transition_schema(
        tuple(manifest.obs_shape), manifest.frame_channels, manifest.obs_dtype
    )
    if not schema.equals(expected):
        raise DatasetError(
            f"Shard {path!r} has schema {schema.names} / {[str(t) for t in schema.types]}, "
            f"expected {expected.names} / {[str(t) for t in expected.types]}; it was not "
            "written for this dataset's observation shape."
        )
    return rows


def shard_reward_values(uri: str, name: str) -> List[float]:
    """Distinct rewards in one shard (reads only the reward column)."""
    fs, root = filesystem_and_path(uri)
    with fs.open_input_file(posixpath.join(root, name)) as f:
        rewards = pq.read_table(f, columns=["reward"]).column("reward").to_numpy()
    return np.unique(rewards).tolist()


def decode_frames(column: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """An array of fixed-size binary values -> uint8 array (N, *shape); of float vectors
    (a fixed-size list column's `to_numpy`) -> float32 array (N, *shape)."""
    if len(column) == 0:
        return np.zeros((0, *shape), dtype=np.uint8)
    if column.dtype == object and not isinstance(column[0], bytes):
        return np.stack(column).astype(np.float32).reshape(len(column), *shape)
    joined = b"".join(column.tolist()) if column.dtype == object else column.tobytes()
    # bytearray: a writable buffer, so torch.from_numpy needs no further copy.
    return np.frombuffer(bytearray(joined), dtype=np.uint8).reshape(len(column), *shape)


def split_shards(shards: List[str], validation_fraction: float) -> Tuple[List[str], List[str]]:
    """Whole shards go to the held-out split, so held-out trajectories stay intact."""
    if len(shards) < 2:
        raise DatasetError(
            f"A held-out split needs at least 2 shards, the dataset has {len(shards)}. "
            "Collect more transitions or use a smaller --shard-size."
        )
    num_validation = min(len(shards) - 1, max(1, round(len(shards) * validation_fraction)))
    # Every k-th shard: spreads the held-out data over actors and time.
    step = len(shards) / num_validation
    held_out = {shards[int(i * step)] for i in range(num_validation)}
    return [s for s in shards if s not in held_out], sorted(held_out)


def read_rows(
    uri: str, names: List[str], max_rows: Optional[int] = None
) -> pa.Table:
    """Reads whole shards (in order) until `max_rows`; for evaluation, not training."""
    fs, root = filesystem_and_path(uri)
    tables, rows = [], 0
    for name in names:
        with fs.open_input_file(posixpath.join(root, name)) as f:
            table = pq.read_table(f)
        tables.append(table)
        rows += table.num_rows
        if max_rows is not None and rows >= max_rows:
            break
    if not tables:
        raise DatasetError(f"No shards to read in {uri!r}.")
    return pa.concat_tables(tables)
