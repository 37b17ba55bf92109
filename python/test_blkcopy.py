# SPDX-License-Identifier: MIT
"""The Python module (import blkcopy) on real files and, as root, real loop
devices: copies with and without ranges, devices and their info, jobs with
progress by iteration and by callback, cancel, errors as OSError with the
library's errno and words, options as the CLI's."""
import errno
import os
import shutil
import subprocess

import pytest

import blkcopy

MiB = 1 << 20


def rand_file(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return path


def read(path, off=0, length=None):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(length if length is not None else -1)


@pytest.fixture
def files(tmp_path):
    src = rand_file(tmp_path / "src", 8 * MiB)
    dst = rand_file(tmp_path / "dst", 8 * MiB)
    return str(src), str(dst), read(dst)


def test_version():
    assert blkcopy.version() == blkcopy.__version__
    assert blkcopy.__version__.count(".") == 2


def test_copy_whole_source(files):
    src, dst, _ = files
    assert blkcopy.copy(src, dst) == 8 * MiB
    assert read(dst) == read(src)


def test_copy_ranges_to_offset(files):
    src, dst, before = files
    ranges = [(4096, 8192), (3 * MiB, 4096), (0, 512)]
    n = blkcopy.copy(src, dst, ranges, dst_offset=MiB, no_offload=True)
    assert n == 8192 + 4096 + 512
    want = read(src, 4096, 8192) + read(src, 3 * MiB, 4096) + read(src, 0, 512)
    got = read(dst)
    assert got[MiB:MiB + n] == want
    assert got[:MiB] == before[:MiB] and got[MiB + n:] == before[MiB + n:]


def test_devices_and_info(files):
    src, dst, _ = files
    with blkcopy.open(src) as s, blkcopy.Device(dst, write=True) as d:
        info = s.info()
        assert info["kind"] == "file" and info["capacity"] == 8 * MiB
        assert info["logical_block_size"] == 1 and info["read_only"] is False
        assert set(info["limits"]) == {"copy_offload", "max_copy_sectors",
                                       "max_copy_nr_ranges", "max_copy_range_sectors"}
        assert s.p2p() is None  # a file is on no PCI function
        assert blkcopy.copy(s, d, [(0, MiB)], dst_offset=2 * MiB) == MiB
        assert not s.closed
    assert s.closed
    with pytest.raises(ValueError):
        s.info()
    assert read(dst, 2 * MiB, MiB) == read(src, 0, MiB)


def test_job_iteration_and_stats(files):
    src, dst, _ = files
    job = blkcopy.submit(src, dst, [(0, 8 * MiB)], no_offload=True, rate=16 * MiB,
                         chunk_size=256 << 10, max_inflight=MiB)
    seen = [p for p in job]
    assert seen and seen[-1].finished and seen[-1].done == 8 * MiB
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert len(seen) >= 3  # 8 MiB at 16 MiB/s: half a second
    assert seen[-1].methods == {"emulate": 8 * MiB}
    assert job.finish() == 8 * MiB
    assert read(dst) == read(src)


def test_progress_callback(files):
    src, dst, _ = files
    calls = []
    n = blkcopy.copy(src, dst, no_offload=True, rate=32 * MiB, progress=calls.append)
    assert n == 8 * MiB and calls
    assert all(isinstance(p, blkcopy.Progress) and p.total == 8 * MiB for p in calls)


def test_stats_and_verify(files):
    src, dst, _ = files
    with blkcopy.submit(src, dst, [(0, 2 * MiB)], no_offload=True, verify=True) as job:
        assert job.wait(timeout=30)
        st = job.stats()
        assert st["verified_bytes"] == 2 * MiB and st["mismatch_offset"] is None
        assert st["emulated"] == {"no_offload": 2 * MiB} and st["p2p_bytes"] == 0
        assert job.finish() == 2 * MiB


def test_cancel_keeps_the_committed_prefix(files):
    src, dst, _ = files
    job = blkcopy.submit(src, dst, no_offload=True, rate=4 * MiB, chunk_size=64 << 10,
                         max_inflight=256 << 10)
    assert not job.wait(timeout=0.3)
    job.cancel()
    with pytest.raises(OSError) as e:
        job.finish()
    assert e.value.errno == errno.ECANCELED
    assert "cancelled" in e.value.strerror
    c = e.value.committed
    assert 0 < c < 8 * MiB
    assert read(dst, 0, c) == read(src, 0, c)


def test_a_callback_that_raises_stops_the_copy(files):
    src, dst, _ = files

    def stop(p):
        raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        blkcopy.copy(src, dst, no_offload=True, rate=4 * MiB, progress=stop)


@pytest.mark.parametrize("ranges, err", [
    ([(0, 0)], errno.ENODATA),
    ([(8 * MiB - 4096, 8192)], errno.ENXIO),
    ([(0, 4096)] * 0, errno.ENODATA),
])
def test_errors_are_oserror(files, ranges, err):
    src, dst, before = files
    with pytest.raises(OSError) as e:
        blkcopy.copy(src, dst, ranges)
    assert e.value.errno == err
    assert e.value.strerror  # the library's words
    assert read(dst) == before


def test_errors_with_the_reason(files):
    src, dst, before = files
    with pytest.raises(OSError) as e:
        blkcopy.copy(src, dst, [(0, 4096)], p2p=True)
    assert e.value.errno == errno.EOPNOTSUPP
    assert "no P2P memory" in e.value.strerror and "not on a PCI device" in e.value.strerror
    with pytest.raises(OSError) as e:
        blkcopy.copy(src, dst, [(0, 4096)], dst_offset=8 * MiB)
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as e:
        blkcopy.open(src + ".missing")
    assert e.value.errno == errno.ENOENT and e.value.filename.endswith(".missing")
    assert read(dst) == before


def test_bad_arguments(files):
    src, dst, _ = files
    with pytest.raises(TypeError, match="unknown blkcopy option 'no_ofload'"):
        blkcopy.copy(src, dst, no_ofload=True)
    with pytest.raises(TypeError):
        blkcopy.copy(src, dst, [(0, "4096")])
    with pytest.raises(ValueError):
        blkcopy.copy(src, dst, [(0, 1, 2)])
    with pytest.raises(ValueError):
        blkcopy.copy(src, dst, [(-1, 4096)])
    with pytest.raises(ValueError):
        blkcopy.copy(src, dst, p2p="cmb")
    with pytest.raises(TypeError):
        blkcopy.copy(src)


def have_loop():
    return os.geteuid() == 0 and shutil.which("losetup")


@pytest.mark.skipif(not have_loop(), reason="needs root and loop devices")
def test_loop_devices(files):
    src, dst, before = files
    loops = []
    try:
        for f in (src, dst):
            loops.append(subprocess.run(["losetup", "-f", "--show", "--direct-io=on", f],
                                        check=True, capture_output=True, text=True).stdout.strip())
        with blkcopy.open(loops[0]) as s, blkcopy.open(loops[1], write=True) as d:
            assert s.info()["kind"] == "loop" and s.info()["logical_block_size"] == 512
            n = blkcopy.copy(s, d, [(MiB, 2 * MiB), (0, 4096)], dst_offset=4096, no_offload=True)
            assert n == 2 * MiB + 4096
            with pytest.raises(OSError) as e:
                blkcopy.copy(s, d, [(1, 512)])  # not at a block boundary
            assert e.value.errno == errno.EINVAL
            d.flush()
    finally:
        for lo in loops:
            subprocess.run(["losetup", "-d", lo], check=False)
    got = read(dst)
    assert got[4096:4096 + 2 * MiB] == read(src, MiB, 2 * MiB)
    assert got[4096 + 2 * MiB:4096 + 2 * MiB + 4096] == read(src, 0, 4096)
    assert got[:4096] == before[:4096]


def test_several_destinations(tmp_path, files):
    src, dst, before = files
    dst2 = str(rand_file(tmp_path / "dst2", 8 * MiB))
    n = blkcopy.copy(src, [dst, dst2], [(0, MiB), (4 * MiB, 4096)], dst_offset=[0, 2 * MiB],
                     no_offload=True)
    assert n == MiB + 4096
    want = read(src, 0, MiB) + read(src, 4 * MiB, 4096)
    assert read(dst, 0, n) == want and read(dst2, 2 * MiB, n) == want
    assert read(dst, n) == before[n:]
    job = blkcopy.submit(src, (dst, dst2), [(0, 2 * MiB)], dst_offset=4 * MiB, no_offload=True)
    assert job.wait(timeout=30)
    assert job.progress(target=1).done == 2 * MiB and job.progress(0).committed == 2 * MiB
    with pytest.raises(IndexError):
        job.progress(2)
    assert job.finish() == 2 * MiB
    assert job.progress(1).committed == 2 * MiB  # kept after finish
    assert read(dst2, 4 * MiB, 2 * MiB) == read(src, 0, 2 * MiB)
    with pytest.raises(ValueError):
        blkcopy.copy(src, [dst, dst2], [(0, 4096)], dst_offset=[0])
    with pytest.raises(ValueError):
        blkcopy.copy(src, [], [(0, 4096)])
    with pytest.raises(OSError) as e:  # the destinations overlap
        blkcopy.copy(src, [dst, dst], [(0, 4096)], dst_offset=[0, 2048])
    assert e.value.errno == errno.EADDRINUSE and "overlaps destination" in e.value.strerror
