"""The shipped nginx config (deploy/nginx/gameserver.conf) run for real in front of `gameserver run`: a TCP gate, a
TCP chat, a wss:// and an HTTPS client each get through, and the server counts each of them as the address it
connected to nginx from (PROXY header on raw TCP, X-Forwarded-For on HTTPS and wss://), not as nginx.

TLS uses a certificate made here for 127.0.0.1 (the openssl command), trusted by the clients. Plain HTTP answers
only redirects to HTTPS, Let's Encrypt's challenge files, and 403 to a ws:// upgrade.

The clients connect from 127.0.0.2 and up; nginx reaches the server from 127.0.0.1, its trusted proxy. With
per-address caps of 1 (connections) and a registration limit of 1 per address, a second client from the same
address is refused and one from another address is not: had the server counted nginx, both would pass (a trusted
proxy is exempt from the caps) or both would fail (one registration for everyone).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from tests.blackbox.support import run_command, start_logged, stop
from tests.clients import ChatClient, TcpClient, WsClient
from tests.conftest import IN_CI
from tests.integration.private_services import free_port

pytestmark = pytest.mark.blackbox

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "gameserver.conf"
NGINX = "/usr/sbin/nginx"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
CERT_DAYS = "2"  # the test's certificate outlives any run
START_TIMEOUT = 30.0  # for nginx to accept
PASSWORD = "correct horse battery"
SETTINGS = {
    "chat.tcp_port": "0",
    "http.trusted_proxies": "127.0.0.1",
    "gate.proxy_protocol": "true",
    "chat.proxy_protocol": "true",
    "gate.max_per_address": "1",
    "chat.max_per_address": "1",
    "auth.register_limit": "1",
    "auth.hash_memory_kib": "8",
    "auth.hash_time_cost": "1",
}


def require_nginx() -> None:
    if os.path.exists(NGINX) and os.path.exists(STREAM_MODULE) and shutil.which("openssl"):
        return
    message = "nginx with its stream module, or openssl, is not installed (apt-get install nginx-light "
    message += "libnginx-mod-stream openssl; scripts/services does in CI)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Front:
    """nginx's public ports in front of one server, a TLS context trusting its certificate, the server's log, and
    the folder nginx serves Let's Encrypt's challenges from."""

    http: int
    https: int
    gate: int
    chat: int
    cert: Path
    tls: ssl.SSLContext
    log: Path
    webroot: Path

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")


def render(text: str, replacements: list[tuple[str, str]]) -> str:
    """The shipped config with each setting replaced exactly once, so that a change to the file shows up here."""
    for old, new in replacements:
        assert text.count(old) == 1, f"deploy/nginx/gameserver.conf no longer has {old!r} exactly once"
        text = text.replace(old, new)
    return text


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], dict[str, int], Path]:
    """`gameserver run` on free ports; its ports, from the ready line it logs once every listener accepts."""
    log = tmp / "server.log"
    settings = [arg for key, value in SETTINGS.items() for arg in ("--set", f"{key}={value}")]
    process, ports = start_logged(run_command(tmp / "var", *settings, roles="gate,chat,auth,worker"), tmp, log)
    return process, ports, log


def make_certificate(root: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate for 127.0.0.1 and its key (RSA, so that a TLS 1.2 client can offer the RSA key
    exchange nginx must refuse)."""
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", CERT_DAYS, "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def client_tls(cert: Path) -> ssl.SSLContext:
    """What a game client does: verify the server's certificate (here, trusting the test's own)."""
    return ssl.create_default_context(cafile=str(cert))


def start_nginx(root: Path, conf: str, ports: list[int]) -> subprocess.Popen[bytes]:
    """nginx in the foreground with its own prefix, pid and logs in ``root``, once it accepts on ``ports``."""
    (root / "nginx.conf").write_text(conf)
    startup = root / "startup.log"
    command = [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(startup), "-g", "daemon off;"]
    with open(startup, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out)
    deadline = time.monotonic() + START_TIMEOUT
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stop(process)
                    raise AssertionError(f"nginx did not start:\n{startup.read_text(errors='replace')}") from None
                time.sleep(0.02)
    return process


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    require_nginx()
    tmp = tmp_path_factory.mktemp("nginx")
    server, backend, log = start_server(tmp)
    nginx: subprocess.Popen[bytes] | None = None
    webroot: Path | None = None
    try:
        public = {"http": free_port(), "https": free_port(), "gate": free_port(), "chat": free_port()}
        root = tmp / "nginx"
        # nginx's workers run as www-data when started by root: pytest's folders are private to root, this is not
        webroot = Path(tempfile.mkdtemp(prefix="gameserver-acme-"))
        (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
        for folder in (webroot, webroot / ".well-known", webroot / ".well-known" / "acme-challenge"):
            folder.chmod(0o755)
        root.mkdir()
        cert, key = make_certificate(root)
        temp_paths = "".join(f"    {kind}_temp_path {root / kind};\n" for kind in ("client_body", "proxy", "fastcgi"))
        conf = render(
            CONF.read_text(),
            [
                ("pid /run/nginx.pid;", f"pid {root / 'nginx.pid'};"),
                ("error_log /var/log/nginx/error.log warn;", f"error_log {root / 'error.log'} info;"),
                ("access_log /var/log/nginx/gameserver.access.log;", f"access_log {root / 'access.log'};"),
                ("    server_tokens off;\n", "    server_tokens off;\n" + temp_paths),
                ("listen 80;", f"listen 127.0.0.1:{public['http']};"),
                ("listen 443 ssl;", f"listen 127.0.0.1:{public['https']} ssl;"),
                ("/etc/letsencrypt/live/play.example.com/fullchain.pem;", f"{cert};"),
                ("/etc/letsencrypt/live/play.example.com/privkey.pem;", f"{key};"),
                ("root /var/www/letsencrypt;", f"root {webroot};"),
                ("https://$host$request_uri;", f"https://$host:{public['https']}$request_uri;"),
                ("listen 8880;", f"listen 127.0.0.1:{public['gate']};"),
                ("listen 8890;", f"listen 127.0.0.1:{public['chat']};"),
                ("server 127.0.0.1:8000;", f"server 127.0.0.1:{backend['http']};"),
                ("server 127.0.0.1:8881;", f"server 127.0.0.1:{backend['ws']};"),
                ("server 127.0.0.1:18880;", f"server 127.0.0.1:{backend['gate-tcp']};"),
                ("server 127.0.0.1:18890;", f"server 127.0.0.1:{backend['chat-tcp']};"),
            ],
        )
        nginx = start_nginx(root, conf, list(public.values()))
        ports = (public["http"], public["https"], public["gate"], public["chat"])
        yield Front(*ports, cert, client_tls(cert), log, webroot)
    finally:
        if nginx is not None:
            stop(nginx)
        if webroot is not None:
            shutil.rmtree(webroot)
        assert stop(server) == 0, log.read_text(errors="replace")


def local_port(client: TcpClient | ChatClient) -> int:
    assert client.writer is not None
    port: int = client.writer.get_extra_info("sockname")[1]
    return port


async def test_tcp_gate_clients_are_counted_as_themselves(front: Front) -> None:
    first = await TcpClient.open(front.gate, local_addr=("127.0.0.2", 0))
    assert await first.call("sys.echo", {"via": "nginx"}) == {"id": 1, "ok": True, "data": {"via": "nginx"}}
    second = await TcpClient.open(front.gate, local_addr=("127.0.0.2", 0))
    assert await second.closed()  # gate.max_per_address = 1 counts 127.0.0.2, not nginx
    refusal = f"gate-tcp: refusing 127.0.0.2:{local_port(second)}: 1 connections open from 127.0.0.2"
    assert refusal in front.server_log()  # the PROXY header carried the client's address and port
    other = await TcpClient.open(front.gate, local_addr=("127.0.0.3", 0))
    assert (await other.call("sys.echo"))["ok"] is True
    for client in (first, second, other):
        await client.close()


async def register(client: TcpClient | WsClient, name: str) -> dict[str, Any]:
    return await client.call("auth.register", {"username": name, "password": PASSWORD})


async def test_tcp_chat_clients_are_counted_as_themselves(front: Front) -> None:
    gate = await TcpClient.open(front.gate, local_addr=("127.0.0.4", 0))
    assert (await register(gate, "bea"))["ok"] is True
    nonces = [(await gate.call("auth.nonce"))["data"]["nonce"] for _ in range(2)]
    first = await ChatClient.tcp(front.chat, local_addr=("127.0.0.4", 0))
    assert (await first.login(nonces[0]))["name"] == "bea"
    second = await ChatClient.tcp(front.chat, local_addr=("127.0.0.4", 0))
    assert await second.closed()  # chat.max_per_address = 1 counts 127.0.0.4
    assert f"chat-tcp: refusing 127.0.0.4:{local_port(second)}: 1 connections open from 127.0.0.4" in (
        front.server_log()
    )
    other = await ChatClient.tcp(front.chat, local_addr=("127.0.0.5", 0))
    assert (await other.login(nonces[1]))["name"] == "bea"
    await first.send("PUBLIC", "through nginx")
    for client in (first, other):
        assert (await client.recv_message())[1]["text"] == "through nginx"
    for each in (first, second, other):
        await each.close()
    await gate.close()


async def reopen(front: Front, path: str, address: str) -> WsClient:
    """A wss:// client from ``address`` once its previous one is counted out (the server sees that close shortly)."""
    for _ in range(100):
        try:
            return await WsClient.open(front.https, path, local_addr=(address, 0), ssl=front.tls)
        except InvalidStatus as refused:
            assert refused.response.status_code == 503
            await asyncio.sleep(0.05)
    raise AssertionError(f"{address} is still at its cap")


async def test_wss_clients_reach_the_gate_and_chat_as_their_forwarded_address(front: Front) -> None:
    first = await WsClient.open(front.https, "/gate", local_addr=("127.0.0.6", 0), ssl=front.tls)
    assert (await register(first, "cyd"))["ok"] is True
    with pytest.raises(InvalidStatus) as refused:  # gate.max_per_address = 1 counts 127.0.0.6, not nginx
        await WsClient.open(front.https, "/gate", local_addr=("127.0.0.6", 0), ssl=front.tls)
    assert refused.value.response.status_code == 503
    nonce = (await first.call("auth.nonce"))["data"]["nonce"]
    chat = await ChatClient.websocket(front.https, "/chat", ssl=front.tls)
    assert (await chat.login(nonce))["name"] == "cyd"
    await first.close()
    again = await reopen(front, "/gate", "127.0.0.6")
    assert (await register(again, "cyd2"))["error"]["code"] == "rate_limited"  # one registration per address
    other = await WsClient.open(front.https, "/", local_addr=("127.0.0.7", 0), ssl=front.tls)  # the gate's other path
    assert (await register(other, "dee"))["ok"] is True
    for client in (again, other):
        await client.close()
    await chat.close()


async def http_session(front: Front, address: str = "127.0.0.1") -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), ssl=front.tls))


async def test_https_clients_are_their_forwarded_address(front: Front) -> None:
    url = f"https://127.0.0.1:{front.https}"
    body = {"username": "eve", "password": PASSWORD}
    async with await http_session(front, "127.0.0.8") as first, await http_session(front, "127.0.0.9") as other:
        async with first.post(f"{url}/auth/register", json=body) as response:
            assert response.status == 201
        async with first.post(f"{url}/auth/register", json={**body, "username": "eve2"}) as response:
            assert response.status == 429 and (await response.json())["error"]["code"] == "rate_limited"
        async with other.post(f"{url}/auth/register", json={**body, "username": "fay"}) as response:
            assert response.status == 201
        async with other.get(f"{url}/healthz") as response:
            assert response.status == 200 and (await response.json())["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", "/auth/login", {"data": b"x" * 70_000}, 413, "too_big"),  # client_max_body_size = http.max_body
        ("GET", "/healthz", {"headers": {"X-Big": "y" * 10_000}}, 400, "bad_request"),
        ("GET", "/metrics", {}, 404, "not_found"),  # for Prometheus on 127.0.0.1:8000, not the public
        ("GET", "/", {}, 404, "not_found"),  # the console
    ],
    ids=["body too big", "header too big", "metrics", "console"],
)
async def test_what_nginx_answers_itself_is_json(
    front: Front, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    async with await http_session(front) as session:
        async with session.request(method, f"https://127.0.0.1:{front.https}{path}", **kwargs) as response:
            assert response.status == status
            assert response.content_type == "application/json"
            assert (await response.json())["error"]["code"] == code


def test_no_connection_was_closed_for_its_proxy_header(front: Front) -> None:
    assert "PROXY header" not in front.server_log()


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz"), ("POST", "/auth/login"), ("GET", "/config?x=1"), ("GET", "/gate")],
)
async def test_plain_http_is_redirected_to_https(front: Front, method: str, path: str) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{front.http}{path}"
        async with session.request(method, url, allow_redirects=False, json={"a": 1}) as response:
            assert response.status == 308  # keeps the method and the body
            assert response.headers["Location"] == f"https://127.0.0.1:{front.https}{path}"


async def test_a_redirect_followed_reaches_the_server(front: Front) -> None:
    async with await http_session(front) as session:
        async with session.get(f"http://127.0.0.1:{front.http}/healthz") as response:
            assert response.status == 200 and (await response.json())["status"] == "ok"
            assert response.url.scheme == "https"
            assert response.headers["Strict-Transport-Security"] == "max-age=63072000"


@pytest.mark.parametrize("path", ["/gate", "/chat", "/"])
async def test_plain_ws_is_refused(front: Front, path: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await WsClient.open(front.http, path)
    response = refused.value.response
    assert response.status_code == 403
    assert json.loads(response.body or b"")["error"]["code"] == "forbidden"


async def test_lets_encrypt_challenges_are_served_over_plain_http(front: Front) -> None:
    challenge = front.webroot / ".well-known" / "acme-challenge" / "token-1"
    challenge.write_text("token-1.thumbprint")
    challenge.chmod(0o644)
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{front.http}/.well-known/acme-challenge/token-1"
        async with session.get(url, allow_redirects=False) as response:
            assert response.status == 200 and await response.text() == "token-1.thumbprint"


def tls_client(front: Front, version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    context = client_tls(front.cert)
    context.minimum_version = context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def handshake(front: Front, context: ssl.SSLContext) -> tuple[str | None, str | None]:
    """The protocol and cipher nginx agrees to with ``context``, or the TLS error it answers."""
    with socket.create_connection(("127.0.0.1", front.https), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            cipher = tls.cipher()
            return tls.version(), cipher[0] if cipher else None


def test_tls_1_3_and_1_2_with_forward_secret_ciphers(front: Front) -> None:
    assert handshake(front, client_tls(front.cert))[0] == "TLSv1.3"
    for cipher in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"):
        assert handshake(front, tls_client(front, ssl.TLSVersion.TLSv1_2, cipher)) == ("TLSv1.2", cipher)


@pytest.mark.parametrize(
    "cipher",
    ["AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA"],
    ids=["RSA key exchange: no forward secrecy", "CBC: not AEAD"],
)
def test_weak_tls_1_2_ciphers_are_refused(front: Front, cipher: str) -> None:
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|NO_SHARED_CIPHER"):
        handshake(front, tls_client(front, ssl.TLSVersion.TLSv1_2, cipher))


def test_tls_1_1_is_refused(front: Front) -> None:
    with warnings.catch_warnings():  # a client that still offers TLS 1.1, as Python warns
        warnings.simplefilter("ignore", DeprecationWarning)
        context = tls_client(front, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"):  # nginx's answer, not the client's refusal
        handshake(front, context)
