"""A prefetching stream gives the batches, states and resumes of one that draws in line."""

import threading

import torch

from learnlab.train import ReplicaStream


def _sampler(g: torch.Generator, n_batches: int):
    x = torch.randn(n_batches, 3, 5, generator=g)
    return x, x.sum(-1)


def _stream(prefetch: bool) -> ReplicaStream:
    return ReplicaStream([_sampler] * 2, [11, 12], "cpu", block=4, prefetch=prefetch)


def test_a_prefetching_stream_draws_the_same_batches_and_resumes_the_same():
    in_line, ahead = _stream(False), _stream(True)
    saved = {}
    for step in range(23):
        if step == 9:
            saved = {"in_line": in_line.state_dict(), "ahead": ahead.state_dict()}
        for a, b in zip(in_line.next_batch(), ahead.next_batch()):
            assert torch.equal(a, b)
    assert ahead._next is not None  # a block was in flight
    # resume both from step 9 (the prefetching one while its next block is being drawn)
    in_line.load_state_dict(saved["in_line"])
    ahead.load_state_dict(saved["ahead"])
    fresh = _stream(True)
    fresh.load_state_dict(saved["ahead"])
    for _ in range(15):
        a, b, c = in_line.next_batch(), ahead.next_batch(), fresh.next_batch()
        assert torch.equal(a[0], b[0]) and torch.equal(a[0], c[0])


def test_the_next_block_is_drawn_in_a_worker_thread():
    threads = []

    def sampler(g, n):
        threads.append(threading.current_thread().name)
        return _sampler(g, n)

    stream = ReplicaStream([sampler], [1], "cpu", block=2, prefetch=True)
    for _ in range(5):
        stream.next_batch()
    stream._settle()
    assert threads[0] == threading.current_thread().name  # the first block: nothing to overlap yet
    assert all(name.startswith("learnlab-prefetch") for name in threads[1:]) and len(threads) == 4
