"""Wire formats as pure functions and state machines: bytes in, values out, and back.

Nothing here awaits, sleeps, reads a clock or touches a socket (websockets' sans-I/O layering); the
drivers in ``gameserver/drivers/gate.py``, ``websocket.py`` and ``chat.py`` feed bytes in and write bytes out.
"""
