from gameserver.app import App
from tests.clients import TcpClient, WsClient


async def test_echo_over_tcp_and_websocket(app: App) -> None:
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    assert await tcp.call("sys.echo", {"a": [1, "x"]}) == {"id": 1, "ok": True, "data": {"a": [1, "x"]}}
    await tcp.close()
    for binary in (True, False):
        ws = await WsClient.open(app.ports["ws"], binary=binary)
        assert await ws.call("sys.echo", {"b": 2}) == {"id": 1, "ok": True, "data": {"b": 2}}
        await ws.close()
