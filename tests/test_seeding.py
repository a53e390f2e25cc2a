import numpy as np
import pytest

from learnlab import runtime
from learnlab.seeding import replica_seeds, stream, streams


def test_a_named_stream_depends_on_its_seed_and_name_alone():
    init, data = streams(3, "init", "data")
    assert (init, data) == (stream(3, "init"), stream(3, "data")) == streams(3, "data", "init")[::-1]
    assert len({init, data, stream(4, "init"), *replica_seeds(3, 8)}) == 11  # no collisions, nor with replica seeds
    assert all(0 <= s < 2**63 for s in (init, data))


def test_streams_do_not_collide_where_offsets_did():
    # seed + 7 of run 0 was seed + 6 of run 1, and seed + 2 + i of teacher 1 was seed + 3;
    # named streams share nothing across seeds, names or members of a family.
    seeds = [stream(seed, name) for seed in range(50) for name in ("init", "data", "test", "student-0", "student-1")]
    family = [stream(0, f"length-{n}") for n in range(200)] + replica_seeds(stream(0, "students"), 200)
    assert len(set(seeds)) == len(seeds) and len(set(family)) == len(family)


def test_independent_streams_draw_uncorrelated_numbers():
    # Adjacent names and adjacent seeds (what an offset would have made related) give
    # generators whose draws are uncorrelated: |r| within 4 standard errors of 0.
    n = 20_000
    pairs = [(stream(0, "student-0"), stream(0, "student-1")), (stream(0, "init"), stream(1, "init")),
             (stream(0, "data"), replica_seeds(0, 1)[0])]
    for a, b in pairs:
        x, y = np.random.default_rng(a).standard_normal(n), np.random.default_rng(b).standard_normal(n)
        assert abs(np.corrcoef(x, y)[0, 1]) < 4 / np.sqrt(n)


def test_replica_seeds_keep_their_values():
    # Values computed before replica_seeds moved from learnlab.runtime to learnlab.seeding
    # (commit b7e39de): stored runs' seeds must not change with the move.
    assert replica_seeds(0, 3) == [7896617691693857887, 2918264622725855778, 8597659618385908031]
    assert replica_seeds(1234, 2) == [3441174691461436243, 7507151824637222014]
    assert replica_seeds(2**62, 1) == [2429058864781716452]
    assert (stream(0, "init"), stream(7, "data")) == (4545720607200715556, 800072112545972157)


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_replica_i_has_the_same_seed_whatever_the_number_of_replicas(n):
    assert replica_seeds(42, n) == replica_seeds(42, 17)[:n]
    assert len(set(replica_seeds(42, n))) == n


def test_seeds_have_one_home():
    assert not hasattr(runtime, "replica_seeds")  # learnlab.seeding holds every seed derivation
