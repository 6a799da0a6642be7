"""Live fuzz (issue 14): mutated raw MQTT payloads from a terminal's certificate, through a
real broker, to a real regional, with every payload accounted for.

    fieldterm chaos fuzz-mqtt --payloads 100000 --seed 7    # or python -m host_tools.chaos.fuzz_mqtt
    python -m host_tools.chaos.fuzz_mqtt --payloads 2000 --refusal-burst 50   # product limits

It starts a :class:`~host_tools.localregion.LocalRegion` (provisioning, a synthetic list,
Mosquitto with mutual TLS from the generated ``mosquitto.conf``, one ``fieldterm regional``
process), connects a paho MQTT v5 client with ``kiosk-001``'s real certificate, and
publishes N payloads at QoS 1:

- to the query topic, from :class:`PayloadFuzzer` (seeded; made from valid envelopes and
  tickets that the real terminal code seals): raw bytes; valid envelopes with structural
  mutations; envelopes that authenticate under the terminal's real session around a fuzzed
  plaintext (any u64 timestamp, a document key with fuzzed parts, a pending box mutated);
  tickets laid out field by field and sealed to the regional (right or wrong signature,
  times up to 2**64-1 ms); replays; and, every ``--honest-every`` payloads, a genuine query
  of a listed or unlisted document whose sealed answer must say so;
- a few percent to the other topics a terminal may publish on (its status, retained, and
  its telemetry), as junk.

Accounting, from the broker's PUBACKs and the regional's own health: every query payload
the broker accepted is an answer or a refusal with a reason (``answered`` plus the sum of
``refusals`` grows by exactly that many); the regional's log has no handler exception; the
sealed answers the fuzzing terminal receives are as many as the regional says it answered
and hinted; every genuine query's answer agrees with the list. Broker limits: payloads stay
under the generated ``max_packet_size`` (a bigger one costs the sender its connection), and
the client waits whenever more than ``--backlog`` accepted payloads are not yet handled by the
regional, far below the broker's ``max_queued_messages`` for the regional's session, so the
broker drops none. Afterwards the regional must be alive and answer real queries correctly,
from the fuzzing terminal and from another one, and its RSS growth must stay under
``--max-rss-growth-mb``. Memory is shown bounded, not just small: the regional runs with
small caches (``--max-sessions`` 2000, ``--max-refused-tickets`` 20000), full within the
first half of a long run, and RSS sampled every tenth of the run may grow at most
``--max-late-growth-mb`` over the second half.

By default the regional's refusal budget (``refusal_burst``/``refusal_rate``, guard.py) is
lifted, so junk tickets reach the HPKE and signature code instead of the rate limiter;
``--refusal-burst 50 --refusal-rate 5`` keeps the provisioned values.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import ssl
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from firmware.client.client import QueryClient
from firmware.client.config import ClientConfig
from firmware.errors import EnvelopeError
from firmware.mrz.engine import parse
from firmware.protocol import keys, telemetry, topics
from firmware.protocol import session as sess
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.pending import seal_document_key
from host_tools.localregion import LocalRegion
from host_tools.provision import broker_config as bc

FUZZER, OTHER = "kiosk-001", "kiosk-002"
WAIT = 120.0  # upper bound of every wait here (never a timing assertion)


def dk_of(lines: list[str]) -> DocumentKey:
    return DocumentKey.from_mrz(parse(lines))


class PayloadFuzzer:
    """Seeded payloads for one terminal (see the module docstring). ``honest`` maps the
    nonce of each genuine query to the outcome the list implies."""

    def __init__(
        self,
        rng: random.Random,
        cfg: ClientConfig,
        listed: list[DocumentKey],
        unlisted: list[DocumentKey],
        honest_every: int = 500,
    ):
        self.rng, self.cfg = rng, cfg
        self.identity = keys.load_ed25519_private(cfg.identity_key)
        self.kem = keys.load_x25519_public(cfg.regional_kem_public)
        self.listed, self.unlisted = listed, unlisted
        self.honest_every = honest_every
        self.lock = threading.Lock()  # the session's pending map is shared with paho's thread
        self.session = self._new_session()
        self.honest: dict[bytes, str] = {}
        self.made: Counter[str] = Counter()
        self._recent: list[bytes] = []
        self._n = 0
        self.qtopic = topics.query_topic(cfg.region, cfg.terminal_id)
        self.others = (
            topics.status_topic(cfg.region, cfg.terminal_id),
            telemetry.topic(cfg.region, cfg.terminal_id),
        )

    def _new_session(self, now: float | None = None, lifetime: float = 86400) -> Any:
        return sess.TerminalSession.new(
            region=self.cfg.region,
            terminal_id=self.cfg.terminal_id,
            identity_key=self.identity,
            regional_kem_public=self.kem,
            now=time.time() if now is None else now,
            lifetime=lifetime,
            rng=self.rng.randbytes,
        )

    def _bytes(self, lo: int, hi: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(lo, hi))

    def _mutate(self, data: bytes) -> bytes:
        r, b = self.rng, bytearray(data)
        for _ in range(r.randint(1, 4)):
            op, pos = r.randrange(8), r.randrange(max(1, len(b)))
            if op == 0 and b:
                b[pos] ^= 1 << r.randrange(8)
            elif op == 1 and b:
                b[pos] = r.randrange(256)
            elif op == 2:
                b[pos:pos] = self._bytes(1, 64)
            elif op == 3:
                del b[pos : pos + r.randint(1, 64)]
            elif op == 4:
                del b[r.randint(0, len(b)) :]
            elif op == 5:
                b += self._bytes(1, 256)
            elif op == 6 and len(b) >= 4:
                b[2:4] = r.randrange(65536).to_bytes(2, "big")
            elif len(b) >= 2:
                b[r.randrange(2)] = r.randrange(256)
        return bytes(b)

    def _valid(self, dk: DocumentKey | None = None) -> bytes:
        qid = self.rng.randbytes(16)
        with self.lock:
            sq = self.session.seal_query(qid, dk or self.rng.choice(self.unlisted), time.time())
        self._recent = [*self._recent[-31:], sq.payload]
        return sq.payload

    def _timestamp_ms(self) -> int:
        r, now = self.rng, int(time.time() * 1000)
        return r.choice(
            (now + r.randint(-400_000, 400_000), r.choice((0, 2**63, 2**64 - 1)), r.getrandbits(64))
        )

    def _resealed(self) -> bytes:
        r, s = self.rng, self.session
        qid = r.randbytes(16)
        shape = r.randrange(4)
        if shape == 0:
            parts = [self._bytes(0, 4), self._bytes(0, 2), self._bytes(0, 24)][: r.randint(1, 4)]
            body = b"|".join(parts).ljust(sess.QUERY_KEY_SIZE, b"\0")
        elif shape == 1:
            box = seal_document_key(self.kem, s.region, s.terminal_id, qid, self.unlisted[0]).box
            body = self._mutate(box) if r.random() < 0.5 else box
        elif shape == 2:
            body = sess.pad_document_key(self.rng.choice(self.unlisted))
        else:
            body = self._bytes(0, 128)
        kind = r.choice((sess.TYPE_QUERY, sess.TYPE_RESEND, r.randrange(256)))
        pt = qid + struct.pack(">Q", self._timestamp_ms()) + body
        nonce = r.randbytes(12)
        header = bytes([sess.VERSION, kind]) + struct.pack(">H", len(s.ticket)) + s.ticket + nonce
        aead = sess._query_aead(s._secret, s.session_id)
        return header + aead.encrypt(nonce, pt, header + s.terminal_id.encode())

    def _ticket(self) -> bytes:
        """A query whose ticket is laid out field by field (docs/protocol.md), then sealed."""
        r = self.rng
        tid = self.cfg.terminal_id.encode() if r.random() < 0.7 else self._bytes(0, 70)
        sid, secret = r.randbytes(16), r.randbytes(32)
        now = int(time.time() * 1000)
        issued = r.choice((now, now - r.randint(0, 10**9), r.getrandbits(64), 0))
        expires = r.choice((issued + 86_400_000, issued + 10**10, r.getrandbits(64), 2**64 - 1))
        issued, expires = issued % 2**64, expires % 2**64
        sig = r.randbytes(64)
        if r.random() < 0.5:
            try:
                msg = sess._sig_input(self.cfg.region, tid.decode(), sid, issued, expires, secret)
                sig = self.identity.sign(msg)
            except (UnicodeDecodeError, ValueError):
                pass
        plain = bytes([1 if r.random() < 0.9 else r.randrange(256), len(tid) & 0xFF]) + tid
        plain += struct.pack(">16sQQ32s64s", sid, issued, expires, secret, sig)
        if r.random() < 0.1:
            plain = plain[: r.randint(0, len(plain))]
        ticket = sess.SUITE.encrypt(plain, self.kem, info=sess.ticket_info(self.cfg.region))
        if r.random() < 0.1:
            ticket = self._mutate(ticket)
        nonce = r.randbytes(12)
        pt = r.randbytes(16) + struct.pack(">Q", now) + sess.pad_document_key(self.unlisted[0])
        header = bytes([1, sess.TYPE_QUERY]) + struct.pack(">H", len(ticket) & 0xFFFF)
        header += ticket + nonce
        aead = sess._query_aead(secret, sid)
        return header + aead.encrypt(nonce, pt, header + tid.decode(errors="replace").encode())

    def next(self) -> tuple[str, bytes, str]:
        """``(topic, payload, kind)`` of the next payload."""
        self._n += 1
        r = self.rng
        if self._n % self.honest_every == 0:
            listed = (self._n // self.honest_every) % 2 == 1
            dk = r.choice(self.listed if listed else self.unlisted)
            payload = self._valid(dk)
            with self.lock:
                nonce = payload[4 + len(self.session.ticket) : 16 + len(self.session.ticket)]
                self.honest[nonce] = "POSSIBLE_MATCH" if listed else "NO_MATCH"
            return self._made(self.qtopic, payload, "honest")
        roll = r.random()
        if roll < 0.04:
            return self._made(r.choice(self.others), self._bytes(0, 2048), "other-topic")
        if roll < 0.16:
            return self._made(self.qtopic, self._bytes(0, 1024), "raw")
        if roll < 0.46:
            return self._made(self.qtopic, self._mutate(self._valid()), "mutated")
        if roll < 0.78:
            return self._made(self.qtopic, self._resealed(), "resealed")
        if roll < 0.92:
            return self._made(self.qtopic, self._ticket(), "ticket")
        if self._recent:
            return self._made(self.qtopic, r.choice(self._recent), "replay")
        return self._made(self.qtopic, self._valid(), "valid")

    def _made(self, topic: str, payload: bytes, kind: str) -> tuple[str, bytes, str]:
        assert len(payload) < bc.MAX_PACKET_SIZE - 1024  # the broker's limit, with headers
        self.made[kind] += 1
        return topic, payload, kind


@dataclass
class Report:
    """What one live fuzz run did; :meth:`problems` is empty when it passed."""

    payloads: int = 0
    made: dict[str, int] = field(default_factory=dict)
    to_query: int = 0
    broker_refused: int = 0
    handled: int = 0  # answered + refused, as the regional counts them, during the run
    answered: int = 0
    hints: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    responses: int = 0
    honest: int = 0
    honest_right: int = 0
    after_ok: list[str] = field(default_factory=list)
    after_wrong: list[str] = field(default_factory=list)
    handler_errors: int = 0
    rss_before_kb: int = 0
    rss_peak_kb: int = 0
    rss_after_kb: int = 0
    #: (payloads sent, VmRSS kB) every 10 % of the run: flat once the caches are full
    rss_samples: list[tuple[int, int]] = field(default_factory=list)
    sessions: int = 0  # the regional's session cache at the end (at most max_sessions)
    #: its negative cache of refused tickets at the end (at most max_refused_tickets)
    bad_tickets_cached: int = 0
    seconds: float = 0.0
    max_rss_growth_mb: float = 64.0
    max_late_growth_mb: float = 8.0
    alive: bool = False

    @property
    def rss_growth_mb(self) -> float:
        return (self.rss_peak_kb - self.rss_before_kb) / 1024

    @property
    def late_growth_mb(self) -> float:
        """RSS growth over the second half of the run: the caches are full by then (the
        harness starts the regional with small limits), so anything here is a leak."""
        if len(self.rss_samples) < 2:
            return 0.0
        mid = self.rss_samples[len(self.rss_samples) // 2 - 1][1]
        return (max(kb for _, kb in self.rss_samples) - mid) / 1024

    def problems(self) -> list[str]:
        out = []
        if self.handled != self.to_query - self.broker_refused:
            out.append(
                f"unaccounted: {self.to_query - self.broker_refused} query payloads reached the "
                f"broker, the regional handled {self.handled}"
            )
        if self.responses != self.answered + self.hints:
            out.append(
                f"{self.responses} sealed replies, regional says {self.answered}+{self.hints}"
            )
        if self.honest_right != self.honest:
            out.append(f"genuine queries: {self.honest_right} of {self.honest} answered right")
        if self.after_wrong or not self.after_ok:
            out.append(f"after the fuzz: wrong or no answers {self.after_wrong}")
        if self.handler_errors:
            out.append(f"{self.handler_errors} handler exceptions in the regional's log")
        if not self.alive:
            out.append("the regional process is not running")
        if self.rss_growth_mb > self.max_rss_growth_mb:
            out.append(f"regional RSS grew {self.rss_growth_mb:.1f} MB")
        if self.late_growth_mb > self.max_late_growth_mb:
            out.append(
                f"regional RSS grew {self.late_growth_mb:.1f} MB in the second half of the run "
                "(caches full: a leak)"
            )
        return out

    def text(self) -> str:
        rate = self.payloads / self.seconds if self.seconds else 0.0
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(self.refusals.items()))
        made = ", ".join(f"{k} {v:,}" for k, v in sorted(self.made.items()))
        return "\n".join(
            [
                f"payloads      {self.payloads:,} in {self.seconds:.1f} s ({rate:,.0f}/s): {made}",
                f"query topic   {self.to_query:,} published, {self.broker_refused} refused by "
                f"the broker, {self.handled:,} handled by the regional",
                f"answered      {self.answered:,} (+{self.hints:,} time hints), "
                f"{self.responses:,} sealed replies received",
                f"refusals      {reasons}",
                f"genuine       {self.honest_right}/{self.honest} right during the fuzz, "
                f"after it: {', '.join(self.after_ok)}",
                f"regional RSS  {self.rss_before_kb / 1024:.1f} MB before, peak "
                f"{self.rss_peak_kb / 1024:.1f} MB, {self.rss_after_kb / 1024:.1f} MB after "
                f"(growth {self.rss_growth_mb:.1f} MB); {self.sessions:,} sessions and "
                f"{self.bad_tickets_cached:,} refused tickets cached",
                "RSS by payload "
                + ", ".join(f"{n // 1000:,}k {kb / 1024:.0f}" for n, kb in self.rss_samples)
                + f" MB (second half {self.late_growth_mb:+.1f} MB)",
                f"handler exceptions {self.handler_errors}; regional alive: {self.alive}",
            ]
        )


def _rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in kB."""
    status = Path(f"/proc/{pid}/status").read_text()
    got = {k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.+)$", status, re.M)}
    return got["VmRSS"], got["VmHWM"]


def _handled(h: dict[str, Any]) -> int:
    return int(h.get("answered", 0)) + sum(int(v) for v in h.get("refusals", {}).values())


class _Client:
    """paho v5 with a terminal's certificate: QoS 1 publishes, PUBACK reason codes counted,
    replies on its response topic opened under the fuzzer's session."""

    def __init__(self, region: LocalRegion, tid: str, fuzzer: PayloadFuzzer):
        bundle = region.bundle(tid)
        self.fuzzer = fuzzer
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=tid, protocol=mqtt.MQTTv5
        )
        ctx = ssl.create_default_context(cafile=str(bundle / "ca.crt"))
        ctx.load_cert_chain(str(bundle / "client.crt"), str(bundle / "client.key"))
        self.client.tls_set_context(ctx)
        self.cond = threading.Condition()
        self.acked = 0
        self.refused_mids: set[int] = set()
        self.query_mids: set[int] = set()
        self.broker_refused = 0
        self.subscribed = False
        self.connected = False
        self.responses = 0
        self.honest_right = 0
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", region.port, keepalive=60)
        self.client.loop_start()
        rtopic = topics.response_topic(region.region, tid)
        self._wait(lambda: self.connected, "CONNACK")
        self.client.subscribe(rtopic, qos=1)
        self._wait(lambda: self.subscribed, "SUBACK of the response topic")

    def _wait(self, pred: Any, what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(pred, WAIT):
                raise TimeoutError(f"fuzz client: no {what} after {WAIT:.0f} s")

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        with self.cond:
            self.connected = not rc.is_failure
            self.cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, rcs: Any, _p: Any = None) -> None:
        with self.cond:
            self.subscribed = not rcs[0].is_failure
            self.cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any = None) -> None:
        with self.cond:
            self.acked += 1
            if rc.is_failure and mid in self.query_mids:
                self.broker_refused += 1
            self.query_mids.discard(mid)
            self.cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        f = self.fuzzer
        with self.cond:
            self.responses += 1
            self.cond.notify_all()
        with f.lock:
            try:
                nonce, r = f.session.open_reply(msg.payload, None)
            except EnvelopeError:
                return  # a reply to a query sealed outside the session's pending map
            want = f.honest.pop(nonce, None)
        if want is not None and getattr(r, "outcome", None) == want:
            with self.cond:
                self.honest_right += 1

    def publish(self, topic: str, payload: bytes, query: bool) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"fuzz client: publish failed ({mqtt.error_string(info.rc)})")
        if query:
            with self.cond:
                self.query_mids.add(info.mid)

    def close(self, region: LocalRegion, tid: str) -> None:
        # the junk retained on the status topic goes, as a real kiosk's next status replaces it
        self.client.publish(topics.status_topic(region.region, tid), b"", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()


def run(
    region: LocalRegion,
    payloads: int,
    *,
    seed: int = 7,
    backlog: int = 2000,
    honest_every: int = 500,
    max_rss_growth_mb: float = 64.0,
    max_late_growth_mb: float = 8.0,
    progress: Any = None,
) -> Report:
    """The live fuzz against a running broker and regional of ``region`` (see the module
    docstring); the region's first regional process is the one checked."""
    regional = region.regional
    rep = Report(max_rss_growth_mb=max_rss_growth_mb, max_late_growth_mb=max_late_growth_mb)
    cfg = ClientConfig.load(region.terminal_toml(FUZZER))
    listed = [dk_of(x) for x in region.listed]
    unlisted = [dk_of(x) for x in region.unlisted]
    fuzzer = PayloadFuzzer(random.Random(seed), cfg, listed, unlisted, honest_every)
    before = regional.wait_health(lambda h: "refusals" in h, "regional health")
    base_handled, base_answered = _handled(before), int(before.get("answered", 0))
    base_hints = int(before.get("counts", {}).get("time_hints", 0))
    base_refusals = Counter({k: int(v) for k, v in before.get("refusals", {}).items()})
    rep.rss_before_kb, _ = _rss_kb(regional.pid)
    say = progress or (lambda _msg: None)
    client = _Client(region, FUZZER, fuzzer)
    say("connected")
    t0 = time.monotonic()
    sent_queries = handled = 0
    try:
        for i in range(payloads):
            topic, payload, _kind = fuzzer.next()
            is_query = topic == fuzzer.qtopic
            if is_query and (sent_queries % 256 == 0 or sent_queries - handled > backlog):
                handled = _handled(regional.health()) - base_handled
                while sent_queries - handled > backlog:  # wait for the regional to catch up
                    if not regional.running():
                        raise RuntimeError("the regional process exited during the fuzz")
                    time.sleep(0.02)
                    handled = _handled(regional.health()) - base_handled
            client.publish(topic, payload, is_query)
            sent_queries += is_query
            if (i + 1) % 20000 == 0:
                say(f"{i + 1:,} payloads, {time.monotonic() - t0:.0f} s")
            if (i + 1) % max(1, payloads // 10) == 0:
                rep.rss_samples.append((i + 1, _rss_kb(regional.pid)[0]))
        with client.cond:  # every PUBACK
            if not client.cond.wait_for(lambda: client.acked >= payloads, WAIT):
                raise TimeoutError(f"{payloads - client.acked} PUBACKs missing")
        rep.broker_refused = client.broker_refused
        say("every PUBACK")
        target = sent_queries - rep.broker_refused
        regional.wait_health(
            lambda h: _handled(h) - base_handled >= target, "every query payload handled", WAIT
        )
        rep.seconds = time.monotonic() - t0
        say("every query payload handled")
        after = regional.health()
        rep.answered = int(after.get("answered", 0)) - base_answered
        rep.hints = int(after.get("counts", {}).get("time_hints", 0)) - base_hints
        with client.cond:  # every sealed reply the regional published
            client.cond.wait_for(lambda: client.responses >= rep.answered + rep.hints, WAIT)
    finally:
        client.close(region, FUZZER)
    rep.payloads, rep.to_query, rep.made = payloads, sent_queries, dict(fuzzer.made)
    rep.handled = _handled(after) - base_handled
    rep.sessions = int(after.get("sessions", 0))
    rep.bad_tickets_cached = int(after.get("bad_tickets_cached", 0))
    rep.refusals = dict(Counter(after.get("refusals", {})) - base_refusals)
    rep.responses, rep.honest_right = client.responses, client.honest_right
    rep.honest = fuzzer.made["honest"]
    say("replies in")
    _check_after(region, rep, listed, unlisted)
    say("real queries answered")
    # VmHWM covers the process's whole life, start-up included: peak minus the RSS before
    # the fuzz is an upper bound of what the fuzz cost
    rep.rss_after_kb, rep.rss_peak_kb = _rss_kb(regional.pid)
    rep.handler_errors = len(re.findall(r"handler failed|Traceback", regional.logs()))
    rep.alive = regional.running()
    return rep


def _check_after(
    region: LocalRegion, rep: Report, listed: list[DocumentKey], unlisted: list[DocumentKey]
) -> None:
    """Real queries, from another terminal and from the fuzzing one: answers agree with the
    list. The fuzzing terminal's new session may meet its spent refusal budget (guard.py:
    a certificate that sent junk gets new tickets refused unopened until tokens return),
    so its client resends a timed-out query, at most 5 times, as a kiosk does."""
    for tid in (OTHER, FUZZER):
        if tid not in region.terminals:
            continue
        with QueryClient(ClientConfig.load(region.terminal_toml(tid))) as qc:
            if not qc.wait_connected(WAIT):
                rep.after_wrong.append(f"{tid}: no connection")
                continue
            for dk, want in ((listed[0], "POSSIBLE_MATCH"), (unlisted[0], "NO_MATCH")):
                got, attempt = "TIMEOUT", 0
                while got == "TIMEOUT" and attempt < 5:
                    attempt += 1
                    got = qc.query(dk, timeout=5.0).outcome
                note = f"{tid} {got}" + (f" (attempt {attempt})" if attempt > 1 else "")
                (rep.after_ok if got == want else rep.after_wrong).append(note)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The live fuzz's options (``python -m host_tools.chaos.fuzz_mqtt`` and
    ``fieldterm chaos fuzz-mqtt``)."""
    p.add_argument("--payloads", type=int, default=10000, help="payloads to publish (10000)")
    p.add_argument("--seed", type=int, default=None, help="seed (printed; random if not given)")
    p.add_argument("--backlog", type=int, default=2000, help="accepted but unhandled, at most")
    p.add_argument("--honest-every", type=int, default=500, help="a genuine query every N")
    p.add_argument("--records", type=int, default=2000, help="synthetic list size (2000)")
    p.add_argument("--refusal-burst", type=int, default=1_000_000, help="regional refusal_burst")
    p.add_argument("--refusal-rate", type=float, default=1_000_000.0, help="regional refusal_rate")
    p.add_argument(
        "--max-sessions", type=int, default=2000,
        help="the regional's max_sessions (2000: the cache fills early in the run)",
    )  # fmt: skip
    p.add_argument(
        "--max-refused-tickets", type=int, default=20000,
        help="the regional's max_refused_tickets (20000: fills early in the run)",
    )  # fmt: skip
    p.add_argument("--max-rss-growth-mb", type=float, default=64.0, help="fail above (64)")
    p.add_argument(
        "--max-late-growth-mb", type=float, default=8.0,
        help="fail above this RSS growth over the run's second half (8)",
    )  # fmt: skip
    p.add_argument("--workdir", type=Path, help="region directory (a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the region directory")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m host_tools.chaos.fuzz_mqtt",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    return main_args(p.parse_args(argv))


def main_args(args: argparse.Namespace) -> int:
    """Run the live fuzz with parsed options; 0 when every payload was accounted for."""
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    print(f"fuzz-mqtt: seed {seed} (replay: --seed {seed} --payloads {args.payloads})", flush=True)
    with LocalRegion(
        args.workdir, terminals=(FUZZER, OTHER), records=args.records, keep=args.keep
    ) as region:
        region.provision().generate_list()
        region.start_broker()
        region.start_regional(
            env=regional_env(
                args.refusal_burst, args.refusal_rate, args.max_sessions, args.max_refused_tickets
            )
        )
        rep = run(
            region, args.payloads, seed=seed, backlog=args.backlog,
            honest_every=args.honest_every, max_rss_growth_mb=args.max_rss_growth_mb,
            max_late_growth_mb=args.max_late_growth_mb,
            progress=lambda s: print(f"fuzz-mqtt: {s}", flush=True),
        )  # fmt: skip
        print(rep.text(), flush=True)
        problems = rep.problems()
        for msg in problems:
            print(f"fuzz-mqtt: FAIL: {msg}", file=sys.stderr)
        if problems and args.workdir is None and not args.keep:
            print(f"fuzz-mqtt: logs were in {region.dir} (use --keep)", file=sys.stderr)
    print(
        f"fuzz-mqtt: {rep.payloads:,} payloads, {rep.handler_errors} crashes, "
        f"{len(problems)} problems"
    )
    return 1 if problems else 0


def regional_env(
    burst: int, rate: float, max_sessions: int = 100_000, max_refused: int = 100_000
) -> dict[str, str]:
    """The regional's environment for a fuzz run: its refusal budget, its cache limits, and
    a health report every 0.1 s (the client's backlog is measured from it)."""
    return {
        "FIELDTERM_REGIONAL__REFUSAL_BURST": str(burst),
        "FIELDTERM_REGIONAL__REFUSAL_RATE": str(rate),
        "FIELDTERM_REGIONAL__MAX_SESSIONS": str(max_sessions),
        "FIELDTERM_REGIONAL__MAX_REFUSED_TICKETS": str(max_refused),
        "FIELDTERM_REGIONAL__HEALTH_INTERVAL": "0.1",
    }


if __name__ == "__main__":
    sys.exit(main())
