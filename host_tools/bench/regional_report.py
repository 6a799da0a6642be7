"""Figures, ratios and the readable summary of ``bench regional`` (pure functions).

Ratios are the sealed system's figure over a baseline's: below 1 for throughput
(``qps``, ``serial_qps``: the share of the baseline's rate the sealed path keeps), above 1
for latencies (``p50``/``p99`` one at a time, ``loaded_p50``/``loaded_p99`` under load).
:mod:`host_tools.bench.regional` computes them only when every query was accounted for.
"""

from __future__ import annotations

import math
from typing import Any

from host_tools.bench.loadgen import LoadResult

BASELINES = ("echo_v5", "echo_min")
LABELS = {
    "echo_v5": "echo-v5 (paho v5 ResponseTopic + CorrelationData)",
    "echo_min": "echo-min (id in payload, no v5 properties)",
    "sealed": "sealed (fieldterm regional, lookup + audit)",
}


def figures(loaded: LoadResult, serial: LoadResult) -> dict[str, float]:
    """The figures of one system: under load (windowed) and one query at a time."""
    return {
        "qps": loaded.qps,
        "loaded_p50_us": loaded.percentile_us(50),
        "loaded_p99_us": loaded.percentile_us(99),
        "serial_qps": serial.qps,
        "p50_us": serial.percentile_us(50),
        "p99_us": serial.percentile_us(99),
    }


def _over(a: float, b: float) -> float | None:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else None


def ratios(systems: dict[str, dict[str, Any]], per_pass: list[dict[str, Any]]) -> dict[str, Any]:
    """``sealed_over_<baseline>`` for each baseline that ran, pooled and pass by pass."""
    out: dict[str, Any] = {}
    s = systems.get("sealed")
    if s is None:
        return out
    for base in BASELINES:
        b = systems.get(base)
        if b is None:
            continue
        r: dict[str, Any] = {
            "qps": _over(s["qps"], b["qps"]),
            "serial_qps": _over(s["serial_qps"], b["serial_qps"]),
            "p50": _over(s["p50_us"], b["p50_us"]),
            "p99": _over(s["p99_us"], b["p99_us"]),
            "loaded_p50": _over(s["loaded_p50_us"], b["loaded_p50_us"]),
            "loaded_p99": _over(s["loaded_p99_us"], b["loaded_p99_us"]),
        }
        by_pass = {(p["pass"], p["system"]): p for p in per_pass}
        passes = sorted({p["pass"] for p in per_pass})
        r["qps_by_pass"] = [
            _over(by_pass[(n, "sealed")]["qps"], by_pass[(n, base)]["qps"]) for n in passes
        ]
        out[f"sealed_over_{base}"] = r
    return out


def _num(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def format_text(res: dict[str, Any]) -> str:
    """The readable summary printed without ``--json``."""
    lines = [
        f"== bench regional == {res['records']:,} records, {res['terminals']} terminals, "
        f"window {res['window']}; mTLS, QoS 1",
        f"  {res['passes']} interleaved passes of "
        f"{res['duration_s']:g} s under load + {res['serial_queries']} serial queries "
        f"({', '.join(res['order'])})",
        f"  {'':<52} {'q/s load':>9} {'p50 load':>9} {'p99 load':>9}"
        f" {'q/s 1-by-1':>10} {'p50':>8} {'p99':>8}",
    ]
    for name in res["order"]:
        f = res["systems"][name]
        lines.append(
            f"  {LABELS.get(name, name):<52} {_num(f['qps'], ',.0f'):>9}"
            f" {_num(f['loaded_p50_us'], ',.0f'):>7}us {_num(f['loaded_p99_us'], ',.0f'):>7}us"
            f" {_num(f['serial_qps'], ',.0f'):>10} {_num(f['p50_us'], ',.0f'):>6}us"
            f" {_num(f['p99_us'], ',.0f'):>6}us"
        )
    if res.get("ratios"):
        for key in [f"sealed_over_{b}" for b in BASELINES if f"sealed_over_{b}" in res["ratios"]]:
            r = res["ratios"][key]
            by_pass = ", ".join(_num(x, ".2f") for x in r["qps_by_pass"])
            lines.append(
                f"  {key}: q/s {_num(r['qps'], '.2f')}x (passes {by_pass}),"
                f" p50 {_num(r['p50'], '.2f')}x, p99 {_num(r['p99'], '.2f')}x;"
                f" under load p50 {_num(r['loaded_p50'], '.2f')}x,"
                f" p99 {_num(r['loaded_p99'], '.2f')}x"
            )
    elif not res.get("valid", True):
        lines.append("  ratios: INVALID, withheld (work was lost, refused, wrong or not audited)")
    acct = [f"lost {res['lost']}", f"wrong {res['wrong']}"]
    if "audited" in res:
        acct += [
            f"refused {res['refused']}",
            f"audited {res['audited']} of {res['answered']} answered sealed queries",
        ]
    lines.append("  " + ", ".join(acct) + (": OK" if res.get("valid") else ": FAILED"))
    for why in res.get("failures", []):
        lines.append(f"  FAILED: {why}")
    lines.append("  per pass (q/s under load):")
    for n in sorted({p["pass"] for p in res["per_pass"]}):
        row = sorted(
            (p for p in res["per_pass"] if p["pass"] == n),
            key=lambda p: res["order"].index(p["system"]),
        )
        parts = []
        for p in row:
            extra = ""
            if p["lost"] or p["wrong"] or p.get("refused"):
                extra = f" (lost {p['lost']}, wrong {p['wrong']}, refused {p.get('refused', 0)})"
            parts.append(f"{p['system']} {_num(p['qps'], ',.0f')}{extra}")
        lines.append(f"    {n}: " + ", ".join(parts))
    return "\n".join(lines)
