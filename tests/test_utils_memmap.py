"""Streaming a read-only memmap: blocks read from the file, same values, no pages kept mapped."""

from __future__ import annotations

import numpy as np

from ncal._utils.memmap import read_rows


def _rss_file_kb() -> int:
    with open("/proc/self/status") as fh:
        return int(fh.read().split("RssFile:")[1].split()[0])


def test_blocks_equal_the_slices_and_do_not_map_the_file(tmp_path) -> None:
    data = np.arange(200_000 * 64, dtype=np.float32).reshape(200_000, 64)  # 51 MB
    np.save(tmp_path / "a.npy", data)
    x = np.load(tmp_path / "a.npy", mmap_mode="r")
    before = _rss_file_kb()
    total = 0.0
    for s in range(0, len(x), 4096):
        block = read_rows(x, s, s + 4096)
        assert block.flags.writeable and block.base is None  # its own memory
        total += float(block.sum(dtype=np.float64))
    assert total == float(data.sum(dtype=np.float64))
    assert _rss_file_kb() - before < 10_000  # the file's 51 MB were not mapped in
    view = np.asarray(x)[1000:]  # a view: rows count from the view's first row
    assert np.array_equal(read_rows(view, 5, 3000), data[1005:4000])
    assert np.array_equal(read_rows(x, 199_990, 300_000), data[199_990:])  # clipped at the end


def test_other_arrays_get_the_plain_slice(tmp_path) -> None:
    np.save(tmp_path / "a.npy", np.ones((1000, 8), np.float32))
    cow = np.load(tmp_path / "a.npy", mmap_mode="c")  # copy-on-write: may hold changes
    cow[0] = 7.0
    assert read_rows(cow, 0, 2)[0, 0] == 7.0
    mem = np.arange(40.0).reshape(10, 4)
    assert np.shares_memory(read_rows(mem, 2, 5), mem)
    ro = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert read_rows(ro[:, ::2], 0, 3).shape == (3, 4)  # not contiguous: sliced
    assert read_rows(ro, 5, 5).shape == (0, 8)
