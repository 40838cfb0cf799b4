"""gameserver/features/mailbox/maildir.py and store.py: Maildir delivery, new -> cur, paths that cannot escape, the
cap."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from enums import MailKind
from gameserver.errors import BadRequest
from gameserver.features.mailbox import SYSTEM, Mail, MailboxFull, MailNotFound, MailStore
from gameserver.features.mailbox.maildir import COUNT_FILE, TMP_MAX_AGE, Entry, Maildir, check_id, check_key

ROOT = Path(__file__).resolve().parents[3]


def mail(subject: str = "hi", sent_at: int = 0) -> Mail:
    return Mail(MailKind.PLAYER, 2, "Bob", subject, "body", sent_at=sent_at)


def files(path: Path) -> dict[str, list[str]]:
    return {sub: sorted(os.listdir(path / sub)) for sub in ("tmp", "new", "cur")}


async def test_deliver_list_read_delete(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    first = await store.deliver(1, 10, mail("first"))
    second = await store.deliver(1, 10, mail("second"))
    box = tmp_path / "1" / "10"
    assert files(box) == {"tmp": [], "new": sorted([first.mail_id, second.mail_id]), "cur": []}

    page = await store.page(1, 10, 0, 10)
    assert [m.subject for m in page.mails] == ["second", "first"]  # newest first
    assert (page.total, page.unread) == (2, 2)

    read = await store.get(1, 10, first.mail_id, mark_seen=True)
    assert read.subject == "first" and read.unread is False
    assert files(box)["cur"] == [f"{first.mail_id}:2,S"]
    assert (await store.page(1, 10, 0, 10)).unread == 1
    assert (await store.get(1, 10, first.mail_id, mark_seen=True)).unread is False  # reading again is fine

    await store.delete(1, 10, first.mail_id)
    with pytest.raises(MailNotFound):
        await store.get(1, 10, first.mail_id)
    with pytest.raises(MailNotFound):
        await store.delete(1, 10, first.mail_id)
    page = await store.page(1, 10, 0, 10)
    assert [m.mail_id for m in page.mails] == [second.mail_id]


async def test_paging(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    for n in range(5):
        await store.deliver(1, 1, mail(f"m{n}", sent_at=1000 + n))
    pages = [await store.page(1, 1, offset, 2) for offset in (0, 2, 4, 6)]
    assert [[m.subject for m in p.mails] for p in pages] == [["m4", "m3"], ["m2", "m1"], ["m0"], []]
    assert all(p.total == 5 for p in pages)


async def test_an_empty_box(tmp_path: Path) -> None:
    page = await MailStore(tmp_path).page(3, 4, 0, 10)
    assert (page.mails, page.total, page.unread) == ([], 0, 0)


async def test_boxes_are_per_world_and_player(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    sent = await store.deliver(1, 10, mail())
    with pytest.raises(MailNotFound):
        await store.get(2, 10, sent.mail_id)
    with pytest.raises(MailNotFound):
        await store.get(1, 11, sent.mail_id)


@pytest.mark.parametrize("world", ["1", "../1", "..", -1, 1.5, True, None, 2**63, "1/../../etc"])
async def test_bad_world_or_uid_never_touches_a_path(tmp_path: Path, world: object) -> None:
    store = MailStore(tmp_path / "root")
    with pytest.raises(BadRequest) as info:
        await store.deliver(world, 1, mail())  # type: ignore[arg-type]
    assert info.value.code == "bad_request"
    with pytest.raises(BadRequest):
        await store.page(1, world, 0, 10)  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        await store.page(1, 0, 0, 10)  # uids start at 1, worlds at 0
    assert not (tmp_path / "root").exists()
    await store.deliver(0, 1, mail())  # world 0 is a world (auth.world may be 0)


@pytest.mark.parametrize("key", ["../x", "..", ".hidden", "a/b", "", "x" * 200, "a:2,S", "ä", 5, None])
async def test_bad_mail_id(tmp_path: Path, key: object) -> None:
    store = MailStore(tmp_path)
    await store.deliver(1, 1, mail())
    for call in (store.get(1, 1, key), store.delete(1, 1, key)):  # type: ignore[arg-type]
        with pytest.raises(BadRequest):
            await call


def test_check_id_and_key() -> None:
    assert check_id("uid", 5) == 5
    assert check_key("1700000000.P1Q2R3.host") == "1700000000.P1Q2R3.host"


async def test_a_delivery_that_fails_after_writing_tmp_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MailStore(tmp_path)

    def broken_rename(src: object, dst: object) -> None:
        assert os.listdir(tmp_path / "1" / "1" / "tmp")  # the mail was written to tmp/ first
        raise OSError("disk gone")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError, match="disk gone"):
        await store.deliver(1, 1, mail())
    monkeypatch.undo()
    assert files(tmp_path / "1" / "1") == {"tmp": [], "new": [], "cur": []}
    assert (await store.page(1, 1, 0, 10)).total == 0


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from enums import MailKind
    from gameserver.features.mailbox.maildir import Maildir
    from gameserver.features.mailbox.message import Mail, compose

    def stop_before_rename(src, dst):
        print("written", flush=True)  # the mail is in tmp/, fsynced; the parent kills us now
        time.sleep(60)

    os.rename = stop_before_rename
    box = Maildir(Path(sys.argv[1]))
    box.deliver(compose(Mail(MailKind.PLAYER, 1, "a", "half a mail", "x" * 100000, sent_at=1)))
    """
)


async def test_a_writer_killed_between_tmp_and_rename_leaves_no_partial_mail(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    done = await store.deliver(1, 1, mail("whole"))
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path / "1" / "1")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "written"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert len(os.listdir(tmp_path / "1" / "1" / "tmp")) == 1  # the crash left its tmp file
    page = await store.page(1, 1, 0, 10)
    assert [m.mail_id for m in page.mails] == [done.mail_id] and page.total == 1


def test_stale_tmp_files_are_cleaned(tmp_path: Path) -> None:
    box = Maildir(tmp_path)
    box.create()
    old, fresh = tmp_path / "tmp" / "old", tmp_path / "tmp" / "fresh"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    now = old.stat().st_mtime + TMP_MAX_AGE + 1
    os.utime(fresh, (now, now))
    assert box.clean_tmp(now) == 1
    assert os.listdir(tmp_path / "tmp") == ["fresh"]


async def test_unreadable_files_are_skipped(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    good = await store.deliver(1, 1, mail())
    (tmp_path / "1" / "1" / "new" / "1.junk").write_bytes(b"not a mail")
    (tmp_path / "1" / "1" / "new" / ".dotfile").write_bytes(b"ignored")
    page = await store.page(1, 1, 0, 10)
    assert [m.mail_id for m in page.mails] == [good.mail_id]
    with pytest.raises(MailNotFound):
        await store.get(1, 1, "1.junk")


# The cap (mail.max_messages): player mail refused past it, system mail always delivered --------------------


def system_mail(subject: str = "notice") -> Mail:
    return Mail(MailKind.SYSTEM, SYSTEM, "System", subject)


def count_file(box: Path) -> str:
    return (box / COUNT_FILE).read_text()


async def test_player_mail_past_the_cap_is_refused_and_system_mail_still_arrives(tmp_path: Path) -> None:
    store = MailStore(tmp_path, max_messages=3)
    box = tmp_path / "1" / "1"
    sent = [await store.deliver(1, 1, mail(f"m{n}")) for n in range(3)]
    with pytest.raises(MailboxFull) as info:
        await store.deliver(1, 1, mail("one too many"))
    assert info.value.code == "mailbox_full"
    assert files(box) == {"tmp": [], "new": sorted(m.mail_id for m in sent), "cur": []}  # nothing left behind

    gift = await store.deliver(1, 1, system_mail())  # the game's own mail is not capped
    await store.deliver_many([(1, 1), (1, 2)], system_mail("to the world"))
    assert (await store.page(1, 1, 0, 10)).total == 5 and count_file(box) == "5\n"

    for one in (sent[0], sent[1], gift):  # read or not, any mail deleted makes room
        await store.delete(1, 1, one.mail_id)
    assert count_file(box) == "2\n"
    await store.deliver(1, 1, mail("fits again"))
    with pytest.raises(MailboxFull):
        await store.deliver(1, 1, mail("full again"))
    assert Maildir(box).count() == 3


async def test_the_count_survives_a_restart_and_spares_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):
        await MailStore(tmp_path, max_messages=3).deliver(1, 1, mail())
    assert count_file(tmp_path / "1" / "1") == "2\n"

    def no_scan(self: Maildir) -> Iterator[Entry]:
        raise AssertionError("a delivery below the cap lists the box")

    monkeypatch.setattr(Maildir, "entries", no_scan)
    restarted = MailStore(tmp_path, max_messages=3)  # a new process: it knows only the files
    await restarted.deliver(1, 1, mail())
    assert count_file(tmp_path / "1" / "1") == "3\n"


async def test_a_count_gone_wrong_is_rebuilt_from_the_files(tmp_path: Path) -> None:
    store = MailStore(tmp_path, max_messages=3)
    box = tmp_path / "1" / "1"
    first = await store.deliver(1, 1, mail())
    (box / COUNT_FILE).write_text("99\n")  # too high (mails removed by hand, a crash before a rename)
    await store.deliver(1, 1, mail())  # "full" is checked by a scan before anyone is refused
    assert count_file(box) == "2\n"

    for garbage in ("", "12\n0\n", "-1\n", "x\n"):  # cut short or garbled by a crash mid-write
        (box / COUNT_FILE).write_text(garbage)
        assert Maildir(box).count() == 2

    (box / "new" / f"{first.mail_id}.copy").write_bytes((box / "new" / first.mail_id).read_bytes())
    assert count_file(box) == "2\n"  # too low now: a file added behind the server's back
    page = await store.page(1, 1, 0, 10)  # the owner's mail.list scans anyway and puts it right
    assert page.total == 3 and count_file(box) == "3\n"
    with pytest.raises(MailboxFull):
        await store.deliver(1, 1, mail())

    (box / COUNT_FILE).unlink()  # boxes from before the count: counted on first use
    assert Maildir(box).count() == 3


RACER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from enums import MailKind
    from gameserver.features.mailbox import MailboxFull
    from gameserver.features.mailbox.maildir import Maildir
    from gameserver.features.mailbox.message import Mail, compose

    path, limit, threads, each = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    data = compose(Mail(MailKind.PLAYER, 2, "racer", "race", "x", sent_at=1))
    accepted, refused, lock = [], [], threading.Lock()
    go = threading.Event()

    def send():
        go.wait()
        for _ in range(each):
            try:
                key = Maildir(path).deliver(data, limit=limit)
            except MailboxFull:
                with lock:
                    refused.append(1)
            else:
                with lock:
                    accepted.append(key)

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    print("ready", flush=True)
    sys.stdin.readline()
    go.set()
    for worker in workers:
        worker.join()
    print(len(accepted), len(refused), flush=True)
    """
)


async def test_senders_in_many_processes_and_threads_racing_at_the_cap_fill_it_exactly(tmp_path: Path) -> None:
    cap, before, processes, threads, each, in_loop = 60, 10, 4, 8, 4, 16
    store = MailStore(tmp_path, max_messages=cap)
    for _ in range(before):
        await store.deliver(1, 1, mail())
    box = tmp_path / "1" / "1"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(box), str(cap), str(threads), str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    try:
        for racer in racers:
            assert racer.stdin is not None and racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        ours = await asyncio.gather(*(store.deliver(1, 1, mail()) for _ in range(in_loop)), return_exceptions=True)
        results = [racer.communicate(timeout=60)[0].split() for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    accepted = sum(int(a) for a, _ in results) + sum(1 for r in ours if isinstance(r, Mail))
    refused = sum(int(r) for _, r in results) + sum(1 for r in ours if isinstance(r, MailboxFull))
    assert (accepted, refused) == (cap - before, processes * threads * each + in_loop - (cap - before))
    assert len(os.listdir(box / "new")) == cap and os.listdir(box / "tmp") == []
    assert count_file(box) == f"{cap}\n"
