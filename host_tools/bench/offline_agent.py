"""The agent's own resident memory with an offline list installed (issue 12: a 24 M-record
list must add no more than 5 MB to the agent's resident memory).

:func:`measure_agent_rss` runs a real kiosk on a local region (``host_tools.localregion``:
provisioning, a real Mosquitto with mutual TLS, ``fieldterm agent`` as its own process):

1. the agent starts with no list; its ``VmRSS`` is read once it is ready (``ready_kb``);
2. warm-up: the broker is stopped and a few documents are scanned (UNKNOWN: no list), so
   the scan path's code is loaded before the baseline; then the broker comes back and
   ``VmRSS`` is read again (``before_kb``, the baseline the list is measured against);
3. a full list of ``records`` keys (random keyed hashes plus the scanned documents' own)
   is built and signed with the region's key by the server's builder, and published on
   the region's list topics with the regional's broker identity as the regional publishes
   it (every chunk retained, QoS 1, PUBACKs awaited, then the manifest); the agent
   downloads, verifies and installs it (its ``list`` event);
4. the broker is stopped again and the same documents are scanned, each answered from the
   list (``offline`` events), and ``VmRSS`` is read (``after_kb``).

``added_kb`` = ``after_kb`` - ``before_kb``; ``RssAnon``/``RssFile`` of each reading say
whether the growth is heap or mapped file pages. No regional service runs (it would
publish its own list). Only processes this code started are stopped.

    python -m host_tools.bench.offline_agent --records 24000000    # one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from firmware.config import ConfigDoc
from firmware.mrz import make_td3, parse
from firmware.offline.listkey import key_id, list_hash, load_list_key
from firmware.protocol import topics
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.keys import load_ed25519_private
from firmware.transport.mqtt import BrokerConfig, MqttLink
from host_tools.localregion import AgentProcess, LocalRegion
from host_tools.offline.builder import Built, build_full
from host_tools.offline.config import OfflineBuildConfig

TID = "kiosk-001"
MAX_ADDED_KB = 5 * 1024  # issue 12, a 24 M-record list
PUBACK_TIMEOUT = 60.0
#: Documents scanned in the warm-up and again with the list: the first two are put in
#: the list (LISTED), the others not (NOT_LISTED, or a false positive at ~0.4 %).
LISTED_NUMBERS = ("L898902C3", "C01X00T47")
UNLISTED_NUMBERS = ("X12345678", "Y98765432", "Z55511177")


def rss_kb(pid: int) -> dict[str, int]:
    """``VmRSS``, ``RssAnon``, ``RssFile`` and ``VmHWM`` of ``pid`` in kB (/proc)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def _documents() -> list[tuple[list[str], bool]]:
    """(MRZ lines, put in the list) for each scanned document, unlisted first (a listed
    one latches the screen until acknowledged)."""
    docs = [(n, False) for n in UNLISTED_NUMBERS] + [(n, True) for n in LISTED_NUMBERS]
    return [(make_td3(document_number=n), listed) for n, listed in docs]


def _keys(records: int, own: list[int], seed: int) -> np.ndarray:
    """About ``records`` distinct keyed hashes: ``own`` and random ones (a collision among
    random 64-bit values, which would make one fewer, is a 1-in-10^7 event at 24 M)."""
    rng = np.random.default_rng(seed)
    random = rng.integers(0, 2**64, max(0, records - len(own)), dtype=np.uint64)
    return np.unique(np.concatenate([np.array(own, dtype=np.uint64), random]))


def _publish(region: LocalRegion, built: Built) -> float:
    """Every chunk, then the manifest, retained with QoS 1 as the regional publishes them,
    each acknowledged by the broker; seconds taken."""
    cfg = BrokerConfig.from_section(ConfigDoc.load(region.regional_toml).section("broker"))
    link = MqttLink(cfg, "bench-offline-agent", on_message=lambda t, p: None)
    link.start()
    t0 = time.perf_counter()
    try:
        if not link.wait_ready(PUBACK_TIMEOUT):
            raise RuntimeError("the regional's identity never got a broker link")
        m = built.manifest
        infos = [
            link.publish(
                topics.list_chunk_topic(region.region, m.kind, m.version, i),
                built.payload[slice(*m.chunk_span(i))],
                qos=1,
                retain=True,
            )
            for i in range(len(m.chunks))
        ]
        infos.append(
            link.publish(
                topics.list_manifest_topic(region.region, m.kind),
                built.manifest_bytes,
                qos=1,
                retain=True,
            )
        )
        for info in infos:
            info.wait_for_publish(PUBACK_TIMEOUT)
            if not info.is_published():
                raise RuntimeError("the broker did not acknowledge a list message")
    finally:
        link.close()
    return time.perf_counter() - t0


def _link(agent: AgentProcess, up: bool, mark: int) -> None:
    agent.wait_event(lambda e: e["event"] == "link" and e["up"] is up, f"link up={up}", mark)


def _scan_all(agent: AgentProcess, docs: list[tuple[list[str], bool]]) -> list[dict[str, Any]]:
    """Scan each document with the link down; its ``offline`` event. A LISTED answer
    (latched) is acknowledged before the next scan."""
    answers = []
    for lines, _ in docs:
        mark = agent.events.mark()
        agent.scanner.send(lines)
        off = agent.wait_event(lambda e: e["event"] == "offline", "the offline answer", mark)
        answers.append(off)
        if off["outcome"] == "LISTED":
            mark = agent.events.mark()
            agent.signal(signal.SIGUSR1)
            agent.wait_event(lambda e: e.get("cause") == "acknowledged", "the acknowledge", mark)
    return answers


def _outage(
    region: LocalRegion, agent: AgentProcess, docs: list[tuple[list[str], bool]]
) -> list[dict[str, Any]]:
    """The broker stopped, then every document scanned: their ``offline`` events."""
    assert region.broker is not None
    mark = agent.events.mark()
    region.broker.stop()
    _link(agent, False, mark)
    return _scan_all(agent, docs)


def _broker_back(region: LocalRegion, agent: AgentProcess) -> None:
    mark = agent.events.mark()
    region.start_broker()
    _link(agent, True, mark)


def measure_agent_rss(records: int, work: Path, *, seed: int = 12) -> dict[str, Any]:
    """See the module docstring. ``work`` holds the region (removed afterwards); the
    broker's user must be able to traverse it (mode 0711, as for any local region)."""
    home = Path(work) / "offline-agent-region"
    if home.exists():
        shutil.rmtree(home)
    docs = _documents()
    with LocalRegion(home, terminals=(TID,)) as region:
        region.provision()
        region.start_broker()
        agent = region.start_agent(TID, signals="mock", display="mock")
        ready = rss_kb(agent.pid)

        warm = _outage(region, agent, docs)  # no list yet: UNKNOWN each
        _broker_back(region, agent)
        before = rss_kb(agent.pid)

        cfg = OfflineBuildConfig.load(region.regional_toml)
        list_key = load_list_key(cfg.list_key)
        own = [list_hash(list_key, DocumentKey.from_mrz(parse(d))) for d, listed in docs if listed]
        t0 = time.perf_counter()
        built = build_full(
            _keys(records, own, seed),
            region=region.region,
            version=int(time.time()),
            sign_key=load_ed25519_private(cfg.sign_key),
            key_id=key_id(list_key),
            bits=cfg.fingerprint_bits,
            chunk_size=cfg.chunk_size,
        )
        build_s = time.perf_counter() - t0
        mark = agent.events.mark()
        t0 = time.perf_counter()
        publish_s = _publish(region, built)
        installed = agent.wait_event(
            lambda e: e["event"] == "list" and e["list_version"] == built.manifest.version,
            "the list installed",
            mark,
            timeout=max(120.0, records / 100_000),
        )
        install_s = time.perf_counter() - t0
        installed_rss = rss_kb(agent.pid)

        answers = _outage(region, agent, docs)
        after = rss_kb(agent.pid)
        _broker_back(region, agent)
        agent.stop()
    shutil.rmtree(home, ignore_errors=True)
    return {
        "benchmark": "offline_agent",
        "records": int(built.manifest.records),
        "file_bytes": int(built.manifest.size),
        "chunks": len(built.manifest.chunks),
        "bits_per_record": round(built.manifest.size * 8 / built.manifest.records, 3),
        "ready_kb": ready["VmRSS"],
        "before_kb": before["VmRSS"],
        "installed_kb": installed_rss["VmRSS"],
        "after_kb": after["VmRSS"],
        "added_kb": after["VmRSS"] - before["VmRSS"],
        "added_anon_kb": after["RssAnon"] - before["RssAnon"],
        "added_file_kb": after["RssFile"] - before["RssFile"],
        "peak_kb": after["VmHWM"],
        "within_bound": after["VmRSS"] - before["VmRSS"] <= MAX_ADDED_KB,
        "bound_kb": MAX_ADDED_KB,
        "build_s": round(build_s, 2),
        "publish_s": round(publish_s, 2),
        "install_s": round(install_s, 2),
        "list_version": installed["list_version"],
        "warmup_outcomes": [a["outcome"] for a in warm],
        "outcomes": [a["outcome"] for a in answers],
        "expected_listed": [listed for _, listed in docs],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m host_tools.bench.offline_agent",
        description="The real agent's resident memory before and after an offline list "
        "of N records is installed (one JSON line).",
    )
    p.add_argument("--records", type=int, default=1_000_000, help="keys in the list (1 M)")
    p.add_argument("--work", type=Path, help="work directory (a temporary one by default)")
    args = p.parse_args(argv)
    if args.records < 1:
        p.error("--records: must be at least 1")
    work = args.work or Path(tempfile.mkdtemp(prefix="fieldterm-bench-agent-", dir="/tmp"))
    if args.work is None:
        work.chmod(0o711)  # Mosquitto, dropped to its own user, must traverse to its config
    try:
        res = measure_agent_rss(args.records, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    sys.stdout.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
