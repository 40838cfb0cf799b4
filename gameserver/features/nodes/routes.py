"""``GET /nodes`` and ``GET /nodes/pick``: the node registry over HTTP (docs/operations.md, "Node registry").

``GET /nodes[?role=R]`` lists the live nodes with everything in their entry: internal addresses, hosts, PIDs and
load are for operators, so it takes ``nodes.admin_key`` (``Authorization: Bearer <key>`` or ``X-Admin-Key``; 403
until one is set). ``GET /nodes/pick[?role=R]`` (default role ``gate``) is public: it answers the least loaded
live node with that role as ``{"node", "roles", "urls"}``, only where clients connect, which they learn by
connecting anyway; 503 ``unavailable`` when no such node is live.
"""

from __future__ import annotations

from aiohttp import web

from gameserver.config import ROLES, NodesConfig
from gameserver.drivers.http import check_admin_key
from gameserver.errors import BadRequest, Unavailable
from gameserver.features.nodes.store import NodeStore

PICK_DEFAULT_ROLE = "gate"


def role_of(request: web.Request, default: str | None) -> str | None:
    role = request.query.get("role", default)
    if role is not None and role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    return role


def node_routes(store: NodeStore, config: NodesConfig) -> list[web.RouteDef]:
    async def list_nodes(request: web.Request) -> web.Response:
        check_admin_key(request, config.admin_key, "nodes.admin_key")
        records = await store.live(role_of(request, None))
        return web.json_response({"nodes": [record.to_json() for record in records]})

    async def pick(request: web.Request) -> web.Response:
        role = role_of(request, PICK_DEFAULT_ROLE)
        assert role is not None
        record = await store.pick(role)
        if record is None:
            raise Unavailable(f"no live {role} node")
        return web.json_response(record.public())

    return [web.get("/nodes", list_nodes), web.get("/nodes/pick", pick)]
