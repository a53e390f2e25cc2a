"""Sharded storage, storage-aware shuffling (CorgiPile, Corgi^2) and I/O accounting.

``ShardWriter`` / ``write_arrays`` write Parquet shards and an index to any fsspec URL;
``ShardedDataset``, ``NpySource`` and ``WebDatasetSource`` read them back with one
storage request per block or per record; ``ShardedLoader`` is the PyTorch
``IterableDataset`` for any order of ``orders.ORDERS``; ``offline_shuffle`` is the
Corgi^2 offline pass; ``quality`` measures orders and datasets.
"""

from learnlab.data.loader import ShardedLoader
from learnlab.data.offline import offline_shuffle
from learnlab.data.orders import ORDERS, epoch_plan, plan_order, worker_blocks
from learnlab.data.quality import expected_homogeneity, homogeneity, order_quality
from learnlab.data.shards import NpySource, ShardedDataset, ShardWriter, WebDatasetSource, open_source, write_arrays
from learnlab.data.storage import DataError, IOStats, Storage

__all__ = ["DataError", "IOStats", "NpySource", "ORDERS", "ShardWriter", "ShardedDataset", "ShardedLoader", "Storage",
           "WebDatasetSource", "epoch_plan", "expected_homogeneity", "homogeneity", "offline_shuffle", "open_source",
           "order_quality", "plan_order", "worker_blocks", "write_arrays"]
