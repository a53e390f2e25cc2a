"""``python _victim.py ARGS...``: runs ``learnlab ARGS...`` with one fault injected at a named
point, chosen by the ``FAULT`` environment variable (the fault suite's kill switch):

``checkpoint:SCOPE:N:ACTION``  at the N-th checkpoint of scope SCOPE (``-`` for the root)
    once the metrics logged since the last checkpoint are in the store, and before the
    checkpoint is written: ``kill`` (SIGKILL itself), ``term`` (SIGTERM itself, as a
    scheduler's time limit does) or ``hang`` (wait, alive, until the test kills it).
``group:N:kill``  the offline pass: SIGKILL itself once N groups are committed.

Nothing else changes: the code under test runs as shipped.
"""

import os
import signal
import sys
import time


def fire(action: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "term":
        os.kill(os.getpid(), signal.SIGTERM)
    elif action == "hang":
        print("hanging", file=sys.stderr, flush=True)
        while True:
            time.sleep(1)
    else:
        raise SystemExit(f"unknown fault action {action!r}")


def install(spec: str) -> None:
    kind, *rest = spec.split(":")
    if kind == "checkpoint":
        from learnlab.runner import Run

        scope, count, action = ("" if rest[0] == "-" else rest[0]), int(rest[1]), rest[2]
        original, seen = Run.save_checkpoint, [0]

        def save_checkpoint(self, step, state):
            if self.scope == scope:
                seen[0] += 1
                if seen[0] == count:
                    self.flush()
                    fire(action)
            return original(self, step, state)

        Run.save_checkpoint = save_checkpoint
    elif kind == "group":
        from learnlab.data import offline

        count, action = int(rest[0]), rest[1]
        original, seen = offline.shuffle_group, [0]

        def shuffle_group(*args, **kwargs):
            result = original(*args, **kwargs)
            seen[0] += 1
            if seen[0] == count:
                fire(action)
            return result

        offline.shuffle_group = shuffle_group
    elif spec:
        raise SystemExit(f"unknown fault {spec!r}")


if __name__ == "__main__":
    install(os.environ.get("FAULT", ""))
    from learnlab.cli import main

    sys.exit(main(sys.argv[1:]))
