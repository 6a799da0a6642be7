"""sd_notify over a real AF_UNIX datagram socket, as systemd would receive it."""

from __future__ import annotations

import os
import socket

from firmware.systemd import SystemdNotifier, under_systemd


def test_notify_reaches_the_socket(tmp_path):
    path = str(tmp_path / "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(5)
    n = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000",
                         "WATCHDOG_PID": str(os.getpid())})  # fmt: skip
    assert n.watchdog_interval == 10.0
    assert n.ready(status="up")
    assert srv.recv(100) == b"READY=1\nSTATUS=up"
    assert n.watchdog()
    assert srv.recv(100) == b"WATCHDOG=1"
    assert n.stopping()
    assert srv.recv(100) == b"STOPPING=1"
    n.close()
    srv.close()


def test_abstract_socket(tmp_path):
    name = f"fieldterm-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind("\0" + name)
    srv.settimeout(5)
    n = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
    assert n.ready()
    assert srv.recv(100) == b"READY=1"
    srv.close()


def test_outside_systemd_everything_is_a_no_op():
    n = SystemdNotifier({})
    assert not n.enabled and n.watchdog_interval is None
    assert n.ready() is False and n.watchdog() is False
    assert not under_systemd({})
    assert under_systemd({"JOURNAL_STREAM": "8:1234"})


def test_watchdog_for_another_pid_is_ignored():
    n = SystemdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval is None
