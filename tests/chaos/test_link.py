"""The faulty link: real namespaces, TUN devices and the kernel's TCP, faults by counter."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from firmware.errors import SetupError
from host_tools.chaos import netns
from host_tools.chaos.link import KioskLink
from tests.support.require import need


class Echo:
    """An echo server on 127.0.0.1 that counts the bytes it received."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                with self._lock:
                    self.received += len(data)
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def link() -> Iterator[tuple[KioskLink, Echo]]:
    why = netns.available()
    if why:
        need("root", f"network namespaces: {why}")
    echo = Echo()
    with KioskLink(echo.port, index=201, seed=7) as lk:
        yield lk, echo
    echo.close()


def _client(lk: KioskLink) -> socket.socket:
    assert lk.kiosk is not None
    s = lk.kiosk.socket()
    s.settimeout(10)
    s.connect((lk.gateway_ip, lk.broker_port))
    return s


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def test_a_clean_link_carries_tcp_both_ways(link: tuple[KioskLink, Echo]) -> None:
    lk, _ = link
    with _client(lk) as s:
        s.sendall(b"hello")
        assert _recv_exactly(s, 5) == b"hello"
    c = lk.counts()
    assert c["up_passed"] >= 3 and c["down_passed"] >= 2  # handshake and data, each way
    assert c["up_dropped"] == c["down_dropped"] == 0
    assert lk.relay is not None and lk.relay.accepted == 1


def test_a_partition_drops_everything_and_tcp_recovers_after_it(
    link: tuple[KioskLink, Echo],
) -> None:
    lk, echo = link
    with _client(lk) as s:
        lk.set(down=True)
        before = lk.counts()["up_dropped"]
        s.sendall(b"during")
        deadline = time.monotonic() + 10
        while lk.counts()["up_dropped"] == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lk.counts()["up_dropped"] > before  # the segment was dropped by the link
        assert echo.received == 0  # and never reached the server
        lk.clear()
        assert _recv_exactly(s, 6) == b"during"  # TCP retransmitted it once the link healed


def test_thirty_percent_loss_is_what_the_link_drops_and_tcp_still_delivers(
    link: tuple[KioskLink, Echo],
) -> None:
    lk, _ = link
    data = bytes(range(256)) * 800  # 200 kB: ~140 segments each way, plus their ACKs
    with _client(lk) as s:
        s.settimeout(60)
        lk.set(loss=0.3)
        threading.Thread(target=s.sendall, args=(data,), daemon=True).start()
        assert _recv_exactly(s, len(data)) == data  # every byte, in order, despite the loss
        lk.clear()
    c = lk.counts()
    sent = c["up_passed"] + c["up_dropped"] + c["down_passed"] + c["down_dropped"]
    dropped = c["up_dropped"] + c["down_dropped"]
    assert sent > 300, c
    assert 0.2 < dropped / sent < 0.4  # binomial around 0.3: several standard deviations


def test_delay_and_jitter_hold_every_packet_for_their_time(link: tuple[KioskLink, Echo]) -> None:
    lk, _ = link
    with _client(lk) as s:
        lk.set(delay_ms=500, jitter_ms=200)
        held = lk.counts()["up_held"]
        t0 = time.monotonic()
        s.sendall(b"ping")
        assert _recv_exactly(s, 4) == b"ping"
        rtt = time.monotonic() - t0
        lk.clear()
    assert lk.counts()["up_held"] > held
    assert rtt >= 0.6  # each way at least 500 - 200 ms (a slow machine adds, never removes)


def test_a_half_open_link_passes_one_direction_only(link: tuple[KioskLink, Echo]) -> None:
    lk, echo = link
    with _client(lk) as s:
        lk.set(drop={"down"})
        before = lk.counts()
        s.sendall(b"one-way")
        deadline = time.monotonic() + 10
        while echo.received < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert echo.received == 7  # the kiosk's bytes reach the broker side...
        while lk.counts()["down_dropped"] == before["down_dropped"] and time.monotonic() < deadline:
            time.sleep(0.05)
        after = lk.counts()
        assert after["down_dropped"] > before["down_dropped"]  # ...nothing comes back
        assert after["down_passed"] == before["down_passed"]
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(16)


def test_a_second_link_with_the_same_index_is_refused_and_the_first_keeps_working(
    link: tuple[KioskLink, Echo],
) -> None:
    """Two chaos runs on one machine: the second must not delete the first's namespaces
    (CI once saw a kiosk lose its broker link that way)."""
    lk, _ = link
    with pytest.raises(SetupError, match=r"link index 201 .* in use .* --link-index"):
        KioskLink(lk.broker_port, index=201).start()
    s = _client(lk)  # the first link still carries TCP
    s.sendall(b"ping")
    assert _recv_exactly(s, 4) == b"ping"
    s.close()
    lk.stop()  # its lock goes with it: the index can be taken again
    with KioskLink(lk.broker_port, index=201) as again:
        assert again.kiosk is not None and again.kiosk.path.exists()
