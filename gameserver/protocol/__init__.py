"""Wire formats as pure functions and state machines: bytes in, values out, and back.

Nothing here awaits, sleeps, reads a clock or touches a socket (websockets' sans-I/O layering); the
connection of ``gameserver/drivers/connection.py`` owns one framer (``framing.py``: length prefix, CRLF lines, the
WebSocket handshake then frames) and feeds bytes in and writes bytes out.
"""
