"""Resume: gate sessions that survive a dropped connection (docs/PROTOCOL.md, "Resume").

``ring.py`` what a session keeps, ``state.py`` one session, ``hub.py`` a process's sessions and ``session.resume``,
``handover.py`` a session moving between gate processes, ``feature.py`` the lifespan.
"""
