"""``underpaint serve --workers ray``: the engines on Ray Serve replicas, one per GPU of a Ray cluster.

Needs the ``ray`` extra. Only "run the engine" moves to Ray; see ARCHITECTURE.md.
"""

import os

# Serve's router waits this long for a replica that has the job's model warm before it falls back to
# any replica. Its default (1 s) is shorter than a routing probe can take on a busy machine, and a
# wrong choice here costs a model load (seconds to minutes), so wait longer. Read when ray.serve is
# first imported, hence here; the environment can still override it.
os.environ.setdefault("RAY_SERVE_MULTIPLEXED_MODEL_ID_MATCHING_TIMEOUT_S", "10")
