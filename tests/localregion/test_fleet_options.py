"""The LocalRegion's fleet options, against the real parts: ``terminals=N`` (bulk
provisioning), ``sites=M`` (site brokers bridged over TLS to the regional broker),
``regionals=K`` (processes sharing the queries) and ``replica=True`` (a PostgreSQL
primary and a streaming replica; every regional indexes the replica in its own
directory)."""

from __future__ import annotations

import json
import tomllib

import pytest

from firmware.errors import SetupError
from firmware.mrz import parse
from firmware.protocol.dockey import DocumentKey
from host_tools.localregion import LocalRegion
from host_tools.sltd import pgcluster
from host_tools.sltd.store import open_store
from tests.support.localregion import TestRegion
from tests.support.require import need

pytestmark = pytest.mark.slow


def _query(region: LocalRegion, tid: str, docs: list[list[str]]) -> list[str]:
    out = region.tool.run(
        "query", "query", "--config", str(region.terminal_toml(tid)),
        "--mrz-jsonl", "--timeout", "5",
        timeout=60,
        input_text="".join(json.dumps(d) + "\n" for d in docs),
    )  # fmt: skip
    return [json.loads(x)["outcome"] for x in out.splitlines() if x.strip()]


def test_sites_regionals_and_replica(tmp_path):
    try:
        pgcluster.pg_bindir()
        import psycopg  # noqa: F401, PLC0415
    except (SetupError, ImportError) as exc:
        need("pg", str(exc))
    d = tmp_path / "region"
    with TestRegion(d, terminals=4, sites=2, regionals=2, replica=True, records=500) as r:
        r.provision().generate_list()
        assert r.terminals == ("kiosk-00001", "kiosk-00002", "kiosk-00003", "kiosk-00004")
        assert r.site_of == {
            "kiosk-00001": "site-01", "kiosk-00002": "site-01",
            "kiosk-00003": "site-02", "kiosk-00004": "site-02",
        }  # fmt: skip
        for tid, site in r.site_of.items():  # each bundle names its site and its broker
            doc = tomllib.loads(r.terminal_toml(tid).read_text())
            assert doc["terminal"]["site"] == site
            assert doc["broker"]["port"] == r.site_ports[site] != r.port
        r.start()
        assert len(r.regionals) == 2 and all(p.is_ready() for p in r.regionals)
        for p in r.regionals:  # both read the replica, not the primary
            assert p.env["FIELDTERM_REGIONAL__SLTD_DB"] == r.pg_replica.url != r.store_url
        listed, unlisted = r.listed[0], r.unlisted[0]
        for tid in ("kiosk-00001", "kiosk-00004"):  # a kiosk behind each site broker
            assert _query(r, tid, [listed, unlisted]) == ["POSSIBLE_MATCH", "NO_MATCH"]
        for n in range(2):  # each regional built its own index from the replica
            assert any(r.regional_index_dir(n).glob("sltd-*.idx-*"))
        # a change on the primary reaches both regionals' indexes through the replica
        dk = DocumentKey.from_mrz(parse(listed))
        with open_store(r.store_url) as st:
            assert st.remove([(dk.issuing_state, dk.category, dk.number)]) == 1
            version = st.version()
        for p in r.regionals:
            p.wait_health(
                lambda h: h.get("list_version", 0) >= version,
                f"list version {version} in the regional's index",
            )
        assert _query(r, "kiosk-00002", [listed] * 4) == ["NO_MATCH"] * 4
