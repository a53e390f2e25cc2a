from learnlab.runtime import replica_seeds
from learnlab.seeding import stream, streams


def test_a_named_stream_depends_on_its_seed_and_name_alone():
    init, data = streams(3, "init", "data")
    assert (init, data) == (stream(3, "init"), stream(3, "data")) == streams(3, "data", "init")[::-1]
    assert len({init, data, stream(4, "init"), *replica_seeds(3, 8)}) == 11  # no collisions, nor with replica seeds
    assert all(0 <= s < 2**63 for s in (init, data))
