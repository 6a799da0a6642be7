"""The region ``bench regional`` runs in: the shared :class:`~host_tools.localregion.LocalRegion`.

:func:`bench_region` builds it with the product's own tools (``fieldterm provision``,
``fieldterm sltd generate`` with samples of listed and unlisted documents, Mosquitto from
the generated config, one ``fieldterm regional`` process, ready by the one readiness
rule: its health file says ``ready`` on the SUBACK of its query subscription) and yields a
:class:`RunningRegion`, all the benchmark needs from it. One addition: the echo baselines'
topics are appended to the generated broker ACL before the broker starts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.client.config import ClientConfig
from firmware.transport.mqtt import BrokerConfig
from host_tools.localregion import LocalRegion, RegionalProcess
from host_tools.provision import broker_config as bc
from host_tools.regional.config import RegionalConfig

#: Topics of the two echo baselines (host_tools.bench.echo), granted to every client of
#: the regional broker's dynamic-security file next to the product's roles.
ECHO_ACLS = bc.extra_acls(
    subscribe=("$share/echo/bench/echo/q/+", "$share/echomin/bench/min/q/+"),
    patterns=("bench/echo/#", "bench/min/#"),
)


@dataclass
class RunningRegion:
    """A provisioned region with its broker and one regional process running."""

    local: LocalRegion
    regional: RegionalConfig
    process: RegionalProcess
    listed: list[Any]  # DocumentKey of listed documents (must answer POSSIBLE_MATCH)
    unlisted: list[Any]  # DocumentKey of unlisted documents (must answer NO_MATCH)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.local.dir

    @property
    def terminals(self) -> tuple[str, ...]:
        return self.local.terminals

    def terminal_config(self, tid: str) -> ClientConfig:
        """The kiosk's config, pointed at the broker's loopback service listener: the
        benchmark opens one connection per system per terminal certificate, and on the
        terminals' listener (client id = certificate CN) they would take each other's
        session over. Same broker, same TLS, same plugin checks."""
        cfg = ClientConfig.load(self.local.terminal_toml(tid))
        return dataclasses.replace(
            cfg, broker=dataclasses.replace(cfg.broker, port=self.local.service_port)
        )

    def terminal_broker(self, tid: str) -> BrokerConfig:
        return self.terminal_config(tid).broker

    @property
    def responder_broker(self) -> BrokerConfig:
        """The identity the echo responders use: the regional service's own."""
        return self.regional.broker

    @property
    def audit_db(self) -> Path:
        return self.regional.audit_db

    def stop_regional(self) -> dict[str, Any]:
        """Stop the regional process (it flushes its audit trail, then writes its health a
        last time) and return that health."""
        self.process.stop()
        return self.process.health()


def _document_keys(samples: list[list[str]]) -> list[Any]:
    """Document keys of sample documents (MRZ lines each)."""
    from firmware.mrz import parse  # noqa: PLC0415
    from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415

    return [DocumentKey.from_mrz(parse(lines)) for lines in samples]


def _build_index(cfg: RegionalConfig) -> float:
    """Build the list's index file before the service starts, so it maps it at once."""
    from host_tools.sltd.lookup import SltdLookup, read_index_key  # noqa: PLC0415

    t0 = time.perf_counter()
    with SltdLookup.open(cfg.sltd_db, read_index_key(cfg.index_key)):
        pass
    return time.perf_counter() - t0


@contextmanager
def bench_region(work: Path, *, terminals: int, records: int) -> Iterator[RunningRegion]:
    """Provision, generate the list, start Mosquitto and one regional process (ready);
    stop everything on exit."""
    tids = tuple(f"bench-term-{i:03d}" for i in range(terminals))
    with LocalRegion(
        work, region="bench", terminals=tids, records=records, seed=1, sample_size=200
    ) as local:
        t0 = time.perf_counter()
        local.provision()
        t1 = time.perf_counter()
        local.generate_list()
        t2 = time.perf_counter()
        cfg = RegionalConfig.load(local.regional_toml)
        info = {
            "provision_s": t1 - t0,
            "store_generate_s": t2 - t1,
            "index_build_s": _build_index(cfg),
        }
        bc.grant_all(local.broker_dir / bc.DYNSEC_FILE, "bench-echo", ECHO_ACLS)
        local.start_broker()
        process = local.start_regional(env={"FIELDTERM_LOG_LEVEL": "WARNING"})
        yield RunningRegion(
            local=local,
            regional=cfg,
            process=process,
            listed=_document_keys(local.listed),
            unlisted=_document_keys(local.unlisted),
            info=info,
        )
