"""The node registry (seed 002): each process keeps its roles, addresses and load in Redis, so that a front
(openresty) and a lobby route players to live nodes without a config reload. See docs/operations.md, "Node
registry".

- :mod:`record`: one node's entry, as Redis hash fields and as JSON; which entries are live; the pick.
- :mod:`advertise`: the addresses and URLs a node gives for its listeners.
- :mod:`store`: the entries in Redis: write one (a heartbeat), remove one, read the live ones.
- :mod:`heartbeat`: a process's refresh loop, from its first listener accepting to its drain.
- :mod:`routes`: ``GET /nodes`` and ``GET /nodes/pick``.
- :mod:`feature`: the set-up every process runs (its lifespan, composed in ``gameserver/app.py``).
- :mod:`command`: ``gameserver nodes``.
"""
