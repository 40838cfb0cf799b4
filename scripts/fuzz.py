#!/usr/bin/env python
"""Coverage-guided fuzzing of the wire decoders (atheris, libFuzzer for Python), within a time budget.

    .venv/bin/python scripts/fuzz.py                        # every target, 60 s in all
    .venv/bin/python scripts/fuzz.py --seconds 600 --target websocket
    .venv/bin/python scripts/fuzz.py --corpus var/fuzz      # keep what each target found, to start from next time

Each target feeds the fuzzer's bytes to one listener's decoding path, in reads of sizes the fuzzer also picks,
exactly as the drivers do, and lets through only the documented protocol errors (PROTOCOL.md: a
``ProtocolViolation`` closes the connection with its code; a ``BadEnvelope`` is a ``bad_request`` reply):

- ``gate-tcp``: PROXY header, 4-byte length frames, msgpack, the request envelope (raw TCP gate);
- ``gate-json``: JSON text, the request envelope (a WebSocket text frame on ``/gate``);
- ``websocket``: WebSocket frames (RFC 6455) into messages, each decoded as the gate would;
- ``chat``: CRLF chat lines (TCP chat edge) and one WebSocket chat frame;
- ``proxy``: PROXY protocol v1 and v2 headers.

Anything else escaping (an ``IndexError``, a ``UnicodeDecodeError``, a broken invariant) is a crash: libFuzzer
prints it with the input's bytes, saves the input as ``crash-<sha1>`` in the working directory, and this script
exits 1. Targets run one after another, each in its own process (libFuzzer exits when its time is up) and its
share of ``--seconds``. ``tests/reliability/test_fuzz.py`` runs a short budget in CI.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

TARGETS = ("gate-tcp", "gate-json", "websocket", "chat", "proxy")
MAX_FRAME = 4096  # small limits, so that the fuzzer reaches "too big" as easily as "just fits"
MAX_INPUT = 8192  # bytes per input: above every limit here
READS = 8  # reads an input is split into at most


def target(name: str) -> Callable[[bytes], None]:
    """The function libFuzzer calls with each input; imports the decoders under atheris' instrumentation."""
    import atheris

    with atheris.instrument_imports(include=["gameserver.protocol"]):
        from gameserver.errors import ProtocolViolation
        from gameserver.protocol.codec import decode_json, decode_msgpack
        from gameserver.protocol.envelope import BadEnvelope, parse_request
        from gameserver.protocol.frames import FrameDecoder
        from gameserver.protocol.lines import LineDecoder, parse_frame
        from gameserver.protocol.proxy import ProxyHeaderDecoder
        from gameserver.protocol.websocket import WebSocketCodec

    def reads(data: bytes) -> tuple[list[bytes], bytes]:
        """Split the input into reads: its first bytes say where, the rest is what arrives."""
        provider = atheris.FuzzedDataProvider(data)
        sizes = [provider.ConsumeIntInRange(1, 64) for _ in range(provider.ConsumeIntInRange(1, READS))]
        stream = provider.ConsumeBytes(provider.remaining_bytes())
        chunks, pos = [], 0
        for size in sizes[:-1]:
            chunks.append(stream[pos : pos + size])
            pos += size
        chunks.append(stream[pos:])
        return chunks, stream

    def gate_tcp(data: bytes) -> None:
        chunks, _ = reads(data)
        proxy, frames = ProxyHeaderDecoder(), FrameDecoder(MAX_FRAME)
        header = None
        try:
            for chunk in chunks:
                if header is None and chunks[0][:1] in (b"P", b"\r"):  # a PROXY header first, as behind nginx
                    header = proxy.feed(chunk)
                    if header is None:
                        continue
                    chunk = proxy.rest
                for payload in frames.feed(chunk):
                    assert len(payload) <= MAX_FRAME
                    try:
                        parse_request(decode_msgpack(payload))
                    except BadEnvelope:
                        pass  # a reply, and the connection goes on
        except ProtocolViolation:
            pass

    def gate_json(data: bytes) -> None:
        try:
            parse_request(decode_json(data))
        except (ProtocolViolation, BadEnvelope):
            pass

    def websocket(data: bytes) -> None:
        chunks, _ = reads(data)
        codec = WebSocketCodec(MAX_FRAME)
        try:
            for chunk in chunks:
                for message in codec.feed(chunk):
                    assert len(message) <= MAX_FRAME
                    try:
                        parse_request(decode_json(message) if isinstance(message, str) else decode_msgpack(message))
                    except BadEnvelope:
                        pass
                    except ProtocolViolation:
                        break  # the driver fails the connection: codec.fail()
                assert all(frame[:1] in (b"\x88", b"\x8a") for frame in codec.output)  # only close and pong
        except ProtocolViolation:
            pass

    def chat(data: bytes) -> None:
        chunks, stream = reads(data)
        decoder = LineDecoder(256)
        try:
            for chunk in chunks:
                for line in decoder.feed(chunk):
                    assert isinstance(line.payload, str)
                assert decoder.pending <= 256
        except ProtocolViolation:
            pass
        try:
            parse_frame(stream, 256)
        except ProtocolViolation:
            pass

    def proxy(data: bytes) -> None:
        chunks, _ = reads(data)
        decoder = ProxyHeaderDecoder()
        try:
            for chunk in chunks:
                if decoder.feed(chunk) is not None:
                    break
        except ProtocolViolation:
            pass

    return {"gate-tcp": gate_tcp, "gate-json": gate_json, "websocket": websocket, "chat": chat, "proxy": proxy}[name]


def run_one(name: str, seconds: int, corpus: Path | None) -> None:
    """In this process: fuzz ``name`` for ``seconds`` (libFuzzer exits the process when done or on a crash)."""
    import atheris

    fuzz = target(name)
    argv = [sys.argv[0], f"-max_total_time={seconds}", f"-max_len={MAX_INPUT}", "-print_final_stats=1"]
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        argv.append(str(corpus))
    atheris.Setup(argv, fuzz)
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="time budget for all targets together")
    parser.add_argument("--target", choices=TARGETS, action="append", help="only this target (repeatable)")
    parser.add_argument("--corpus", type=Path, help="a folder to keep each target's corpus in (<folder>/<target>)")
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.child, args.seconds, args.corpus)
        return 0
    targets = args.target or list(TARGETS)
    share = max(1, args.seconds // len(targets))
    failed = []
    with tempfile.TemporaryDirectory(prefix="gameserver-fuzz-") as scratch:
        for name in targets:
            corpus = (args.corpus / name) if args.corpus else Path(scratch) / name
            command = [sys.executable, __file__, "--child", name, "--seconds", str(share), "--corpus", str(corpus)]
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
            print(f"fuzz: {name} for {share}s", flush=True)
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            stats = [line for line in result.stderr.splitlines() if line.startswith(("stat::", "Done "))]
            print("\n".join(f"  {line}" for line in stats), flush=True)
            if result.returncode != 0:
                print(result.stderr[-6000:], file=sys.stderr)
                failed.append(name)
    print(
        f"fuzz: {len(targets) - len(failed)} of {len(targets)} targets clean"
        + (f"; crashed: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
