"""The chat edge (PROTOCOL.md, "Chat edge: line protocol"): raw TCP on ``chat.tcp_port`` (8890) and the
WebSocket path ``/chat``, with the same behaviour on both.

A client's first line is ``LOGIN <nonce>``; the nonce is redeemed once (GETDEL) for the identity that
``auth.nonce`` stored, and the server answers ``OK`` + that identity. Then ``PUBLIC`` goes to everyone in the
sender's world (channel ``chat.<world>.public``), ``FAMILY`` to the sender's family
(``chat.<world>.family.<family>``), ``PING`` is answered ``PONG``. Anything else closes the connection.

Fan-out (docs/chat.md): each process keeps one :class:`Channel` per channel it has members for, subscribed
on the fan-out bus (``server.bus``: :class:`~gameserver.bus.local.LocalBus` in one process; between processes,
the :class:`~gameserver.bus.fanout.RedisFanout` of the process's :class:`~gameserver.bus.redispubsub.RedisBus`). A
message is encoded once where it is published; each process adds the CRLF once and builds the WebSocket
frame once, then writes the same bytes to every member's transport. A member whose transport holds more than
``chat.send_queue`` bytes gets nothing until it drains, and is disconnected if it stays over the bound for
``chat.send_timeout`` seconds: a slow reader never slows anyone else.

The package: :mod:`.channel` (one channel's members and the fan-out), :mod:`.service` (:class:`Chat`, the
``chat`` resource: channels, users, family moves), :mod:`.client` (one connection's session: login, commands,
rate), :mod:`.drivers` (the TCP listener's driver and the ``/chat`` WebSocket route), :mod:`.setup` (the
feature's lifespan).

Handlers reach the chat through the injected ``chat`` resource (:class:`Chat`): ``await chat.system(world,
text)``, ``await chat.set_family(uid, world, family)``.
"""

from __future__ import annotations

from gameserver.features.chatedge.service import CHAT_PATH, Chat

__all__ = ["CHAT_PATH", "Chat"]
