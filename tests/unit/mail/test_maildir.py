"""gameserver/mail/maildir.py and store.py: Maildir delivery, new -> cur, paths that cannot escape."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from enums import MailKind
from gameserver.errors import BadRequest
from gameserver.mail import Mail, MailNotFound, MailStore
from gameserver.mail.maildir import TMP_MAX_AGE, Maildir, check_id, check_key

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
    from gameserver.mail.maildir import Maildir
    from gameserver.mail.message import Mail, compose

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
