"""Aggregate runs into medians, compute ratios and the goals, render the table, the JSON and
the chart."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

METRICS = (
    "msgs_per_s",
    "mb_per_s",
    "lat_p50_us",
    "lat_p99_us",
    "client_cpu_us_per_msg",
    "server_cpu_us_per_msg",
    "peak_rss_mb",
    "client_sys_share",
)
#: Paths whose figure of merit is a latency (lower is better); the others are rates.
LATENCY_PATHS = ("latency", "connect")
CLIENT_ORDER = ("memphis-fast", "memphis-py", "nats-py", "raw", "memphis-go", "nats-go")
#: How clients are named in ratio labels and goals.
CLIENT_NAMES = {
    "memphis-fast": "memphis-fast",
    "memphis-py": "memphis-py",
    "nats-py": "nats-py",
    "raw": "raw",
    "memphis-go": "memphis.go",
    "nats-go": "nats.go",
}
#: (client, ratio key, column head): the references every row is compared with.
REFERENCES = (
    ("memphis-py", "x_memphis_py", "x m-py"),
    ("raw", "x_raw", "x raw"),
    ("memphis-go", "x_memphis_go", "x m.go"),
    ("nats-go", "x_nats_go", "x nats.go"),
)
PATH_ORDER = (
    "produce-sync",
    "produce-nonblocking",
    "produce-batch",
    "consume-ack",
    "latency",
    "schema-json",
    "connect",
    "memory-bound",
)
COLORS = {
    "memphis-fast": "#d62728",
    "memphis-py": "#1f77b4",
    "nats-py": "#2ca02c",
    "raw": "#7f7f7f",
    "memphis-go": "#17becf",
    "nats-go": "#9467bd",
}


def config_key(payload: int, partitions: int, storage: str = "memory") -> str:
    """``128B/1p`` (memory storage) or ``128B/1p/file``."""
    key = f"{payload}B/{partitions}p"
    return key if storage == "memory" else f"{key}/{storage}"


def config_text(cfg: str) -> str:
    """``128B/3p/file`` -> ``128 B payloads, 3 partitions, file storage``."""
    parts = cfg.split("/")
    payload, k = parts[0][:-1], int(parts[1][:-1])
    storage = parts[2] if len(parts) > 2 else "memory"
    return f"{payload} B payloads, {k} partition{'s' if k != 1 else ''}, {storage} storage"


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _run_key(r: dict[str, Any]) -> str:
    return config_key(r["payload"], r["partitions"], r.get("storage") or "memory")


MEMORY_KEYS = (
    "baseline_rss_mb",
    "peak_rss_stopped_mb",
    "rss_growth_mb",
    "window_bytes_mb",
    "bound_mb",
    "calls_before_stop",
    "calls_after_stop",
    "progress_second_half",
    "drain_after_resume_s",
)


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (config, path, client, variant): medians over the runs, and their spread."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        key = (_run_key(r), r["path"], r["client"], r.get("variant") or "")
        groups.setdefault(key, []).append(r)
    rows = []
    for (cfg, path, client, variant), rs in groups.items():
        good = [r for r in rs if r.get("ok")]
        row: dict[str, Any] = {
            "config": cfg,
            "payload": rs[0]["payload"],
            "partitions": rs[0]["partitions"],
            "storage": rs[0].get("storage") or "memory",
            "path": path,
            "client": client,
            "variant": variant,
            "runs": len(rs),
            "ok_runs": len(good),
            "ok": len(good) == len(rs) and bool(rs),
            "errors": sorted({str(r.get("error")) for r in rs if not r.get("ok")}),
            "messages": rs[0].get("messages"),
        }
        for m in METRICS:
            row[m] = _median(r.get(m) for r in good)
        # run-to-run spread: the lowest and highest run, of the figure that matters for the path
        for m in ("msgs_per_s", "lat_p50_us"):
            vals = [float(r[m]) for r in good if r.get(m) is not None]
            row[f"{m}_min"] = min(vals) if vals else None
            row[f"{m}_max"] = max(vals) if vals else None
        if path == "memory-bound":
            extras = [r.get("extra", {}) for r in good]
            row["memory"] = {k: _median(e.get(k) for e in extras) for k in MEMORY_KEYS}
            row["memory"]["window_messages"] = extras[0].get("window_messages") if extras else None
            row["memory"]["blocked_all_runs"] = all(e.get("blocked") for e in extras) and bool(extras)
            row["memory"]["within_bound_all_runs"] = all(e.get("within_bound") for e in extras) and bool(extras)
        row["per_run"] = [
            {k: r.get(k) for k in ("run", "ok", "error", "msgs_per_s", "lat_p50_us", "client_cpu_us_per_msg", "server_cpu_us_per_msg")}
            for r in rs
        ]
        rows.append(row)
    _add_ratios(rows)
    order = {c: i for i, c in enumerate(CLIENT_ORDER)}
    path_order = {p: i for i, p in enumerate(PATH_ORDER)}
    config_order: dict[str, int] = {}
    for r in runs:
        config_order.setdefault(_run_key(r), len(config_order))
    rows.sort(
        key=lambda r: (
            config_order[r["config"]], path_order.get(r["path"], 99), order.get(r["client"], 9), r["variant"]
        )
    )
    return rows


def merit(row: dict[str, Any]) -> float | None:
    """Higher is better: msgs/s for rates, 1/p50 for latencies."""
    if row["path"] in LATENCY_PATHS:
        p50 = row.get("lat_p50_us")
        return 1e6 / p50 if p50 else None
    v: float | None = row.get("msgs_per_s")
    return v


def spread(row: dict[str, Any]) -> float | None:
    """(highest run - lowest run) / median, of the path's figure (rate, or p50 latency)."""
    m = "lat_p50_us" if row["path"] in LATENCY_PATHS else "msgs_per_s"
    lo, hi, med = row.get(f"{m}_min"), row.get(f"{m}_max"), row.get(m)
    if lo is None or hi is None or not med or row.get("ok_runs", 0) < 2:
        return None
    return float((hi - lo) / med)


def best(rows: list[dict[str, Any]], config: str, path: str, client: str) -> dict[str, Any] | None:
    """The client's best variant on a path (e.g. memphis-py's best consume path)."""
    cands = [r for r in rows if r["config"] == config and r["path"] == path and r["client"] == client and r["ok"]]
    cands = [r for r in cands if merit(r) is not None]
    return max(cands, key=lambda r: merit(r) or 0.0) if cands else None


def find(rows: list[dict[str, Any]], config: str, path: str, client: str, variant: str) -> dict[str, Any] | None:
    for r in rows:
        if r["config"] == config and r["path"] == path and r["client"] == client and r["variant"] == variant:
            return r if r["ok"] else None
    return None


def _reference(rows: list[dict[str, Any]], config: str, path: str, client: str) -> dict[str, Any] | None:
    """The row a path is compared with: the client's best variant on the same path. The batch
    API has no counterpart in the other clients: produce-batch is compared with their pipelined
    produce, which the raw reference runs again in the produce-batch path itself, beside
    memphis-fast's batches. The plan interleaves the clients of one path, and this kind of VM
    changes speed by tens of percent between paths of one run (against the raw client's
    produce-nonblocking runs, four to six jobs earlier, memphis-fast's batches ran 0.62x to 1.23x
    run by run in a 7-run bench of 2026-12-03); without that row (the Go peers, an older JSON),
    their produce-nonblocking row."""
    if path == "produce-batch":
        return best(rows, config, path, client) or best(rows, config, "produce-nonblocking", client)
    return best(rows, config, path, client)


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        mine = merit(r)
        for ref_client, key, _ in REFERENCES:
            ref = _reference(rows, r["config"], r["path"], ref_client)
            theirs = merit(ref) if ref is not None else None
            r[key] = mine / theirs if mine is not None and theirs else None


# -- goals --------------------------------------------------------------------------------------
def targets(rows: list[dict[str, Any]], base_config: str) -> list[dict[str, Any]]:
    """The project's performance goals that this run can decide (ratios of medians, in the same
    run; the detail adds the median of the per-run ratios)."""
    out: list[dict[str, Any]] = []

    def add(
        name: str, a: dict[str, Any] | None, b: dict[str, Any] | None, goal: float, *, latency: bool = False,
        config: str = base_config,
    ) -> None:
        """``a`` against ``b``: rate ratio >= goal, or (latency) p50 ratio <= goal."""
        value: float | None = None
        if a is not None and b is not None:
            if latency:
                pa, pb = a.get("lat_p50_us"), b.get("lat_p50_us")
                value = pa / pb if pa and pb else None
            else:
                ma, mb = merit(a), merit(b)
                value = ma / mb if ma is not None and mb else None
        met = None if value is None else (value <= goal if latency else value >= goal)
        if latency:
            text = f"p50 {_who(a)} {_lat(a)} vs {_who(b)} {_lat(b)}"
        else:
            text = f"{_who(a)} {_fmt_rate(merit(a) if a else None)} vs {_who(b)} {_fmt_rate(merit(b) if b else None)}"
            paired = paired_ratio(a, b)
            if paired is not None:
                text += f"; median of per-run ratios {paired:.2f}x"
        out.append({
            "target": name, "config": config, "value": value, "goal": goal, "unit": "x",
            "below": latency, "met": met, "detail": text,
        })

    def b(path: str, client: str, config: str = base_config) -> dict[str, Any] | None:
        return best(rows, config, path, client)

    fast_nb = b("produce-nonblocking", "memphis-fast")
    fast_sync = b("produce-sync", "memphis-fast")
    fast_batch = b("produce-batch", "memphis-fast")
    # against the Python clients
    add("pipelined produce vs memphis-py (nonblocking)", fast_nb, b("produce-nonblocking", "memphis-py"), 15)
    add("pipelined produce vs nats-py (publish_async)", fast_nb, b("produce-nonblocking", "nats-py"), 4)
    add("sync produce vs memphis-py", fast_sync, b("produce-sync", "memphis-py"), 1.5)
    add("sync produce vs raw reference", fast_sync, b("produce-sync", "raw"), 0.85)
    add("produce_batch vs raw reference (pipelined)", fast_batch, _reference(rows, base_config, "produce-batch", "raw"), 0.95)
    add("consume + ack vs memphis-py's best consume path", b("consume-ack", "memphis-fast"), b("consume-ack", "memphis-py"), 8)
    # against the Go clients
    nats_sync = b("produce-sync", "nats-go")
    add("sync produce vs memphis.go SyncProduce", fast_sync, b("produce-sync", "memphis-go"), 1.0)
    add("sync produce vs nats.go js.Publish", fast_sync, nats_sync, 1.0)
    add("sync produce p50 latency vs nats.go js.Publish", fast_sync, nats_sync, 1.5, latency=True)
    add("pipelined produce vs nats.go PublishAsync", fast_nb, b("produce-nonblocking", "nats-go"), 1.2)
    add("pipelined produce vs memphis.go AsyncProduce", fast_nb, b("produce-nonblocking", "memphis-go"), 1.5)
    # consume + ack, each way, on every partition count of the base payload and storage
    base = next((r for r in rows if r["config"] == base_config), None)
    configs = [base_config]
    if base is not None:
        for r in rows:
            if (
                r["payload"] == base["payload"] and r["storage"] == base["storage"]
                and r["partitions"] != base["partitions"] and r["config"] not in configs
            ):
                configs.append(r["config"])
    for cfg in configs:
        parts = int(cfg.split("/")[1][:-1])
        where = f", {parts} partition{'s' if parts != 1 else ''}"
        for variant, name in (("consume", "consume()"), ("fetch", "fetch()")):
            mine = find(rows, cfg, "consume-ack", "memphis-fast", variant)
            add(f"consume + ack by {name} vs memphis.go{where}", mine, b("consume-ack", "memphis-go", cfg), 1.4, config=cfg)
            add(f"consume + ack by {name} vs raw reference{where}", mine, b("consume-ack", "raw", cfg), 0.95, config=cfg)
    async_for = find(rows, base_config, "consume-ack", "memphis-fast", "async-for")
    if async_for is not None or any(r["variant"] == "async-for" for r in rows):
        add("consume by async for vs consume()", async_for, find(rows, base_config, "consume-ack", "memphis-fast", "consume"), 0.9)
    conn = b("connect", "memphis-fast")
    p50 = conn["lat_p50_us"] / 1000 if conn and conn.get("lat_p50_us") is not None else None
    out.append({
        "target": "connect median (password, localhost)", "config": base_config, "value": p50, "goal": 5.0,
        "unit": "ms", "below": True, "met": None if p50 is None else p50 < 5.0,
        "detail": f"p50 {_num(p50, 2)} ms",
    })
    mem = next((r for r in rows if r["path"] == "memory-bound" and r["client"] == "memphis-fast"), None)
    if mem is not None:
        info = mem.get("memory") or {}
        met = bool(mem["ok"] and info.get("blocked_all_runs") and info.get("within_bound_all_runs"))
        out.append({
            "target": "memory bound with nats-server stopped",
            "config": mem["config"],
            "value": info.get("rss_growth_mb"),
            "goal": None,
            "unit": "MB",
            "below": True,
            "met": met if mem["ok_runs"] else None,
            "detail": (
                f"growth {_num(info.get('rss_growth_mb'))} MB (bound: window {_num(info.get('window_bytes_mb'))} MB + 20 MB), "
                f"{_num(info.get('calls_after_stop'), 0)} calls after SIGSTOP (window {info.get('window_messages')}), "
                f"blocked in every run: {info.get('blocked_all_runs')}, all messages stored after SIGCONT: {mem['ok']}"
            ),
        })
    return out


def _who(row: dict[str, Any] | None) -> str:
    return label(row) if row else "-"


def _lat(row: dict[str, Any] | None) -> str:
    v = row.get("lat_p50_us") if row else None
    return "-" if v is None else f"{v:,.1f} us"


def paired_ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """Median over runs of a's rate / b's rate in the same run."""
    if a is None or b is None:
        return None
    rb = {r.get("run"): r.get("msgs_per_s") for r in b.get("per_run", []) if r.get("ok")}
    ratios = [
        r["msgs_per_s"] / rb[r.get("run")]
        for r in a.get("per_run", [])
        if r.get("ok") and r.get("msgs_per_s") and rb.get(r.get("run"))
    ]
    return statistics.median(ratios) if ratios else None


# -- text ----------------------------------------------------------------------------------------
def _num(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def _fmt_rate(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v / 1000:,.1f}k/s"
    return f"{v:,.0f}/s"


def _ratio(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}x" if v < 10 else f"{v:.1f}x"


def label(row: dict[str, Any]) -> str:
    v = row["variant"]
    if row["client"] == "memphis-py" and row["path"] == "produce-nonblocking":
        v = v or "drain"
    name = CLIENT_NAMES.get(row["client"], row["client"])
    return f"{name} ({v})" if v else name


def table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table, one block per configuration."""
    refs = [(c, k, h) for c, k, h in REFERENCES if any(r["client"] == c for r in rows)]
    head = (
        "path", "client", "msgs/s", "spread", "MB/s", "p50 us", "p99 us", "cli us/msg", "srv us/msg",
        "RSS MB", *(h for _, _, h in refs), "runs",
    )
    lines: list[str] = []
    configs: list[str] = []
    for r in rows:
        if r["config"] not in configs:
            configs.append(r["config"])
    for cfg in configs:
        body = []
        for r in rows:
            if r["config"] != cfg:
                continue
            status = f"{r['ok_runs']}/{r['runs']}" + ("" if r["ok"] else " FAIL")
            sp = spread(r)
            body.append((
                r["path"], label(r), _num(r["msgs_per_s"], 0), "-" if sp is None else f"{sp * 100:.0f}%",
                _num(r["mb_per_s"], 2), _num(r["lat_p50_us"]), _num(r["lat_p99_us"]),
                _num(r["client_cpu_us_per_msg"], 2), _num(r["server_cpu_us_per_msg"], 2), _num(r["peak_rss_mb"]),
                *(_ratio(r[k]) for _, k, _ in refs), status,
            ))
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
        lines.append(f"== {config_text(cfg)} ==")
        fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
        lines.append(fmt.format(*head))
        lines.append("  ".join("-" * w for w in widths))
        prev = None
        for b in body:
            cells = list(b)
            if cells[0] == prev:
                cells[0] = ""
            else:
                prev = cells[0]
            lines.append(fmt.format(*cells))
        lines.append("")
    return "\n".join(lines)


def legend_text(rows: list[dict[str, Any]]) -> str:
    refs = [(c, h) for c, _, h in REFERENCES if any(r["client"] == c for r in rows)]
    names = ", ".join(f"{h}: {CLIENT_NAMES[c]}" for c, h in refs)
    return (
        "msgs/s, p50, ...: medians over the runs; spread: (highest - lowest run) / median of msgs/s "
        "(latency paths: of p50)\n"
        f"x ...: rate (latency paths: 1/p50) relative to that client's best variant ({names}); "
        "produce-batch is compared with their pipelined produce (the raw reference's, run again in that path)\n"
    )


def memory_text(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        if r["path"] != "memory-bound" or not r.get("memory"):
            continue
        m = r["memory"]
        out.append(
            f"memory-bound {r['client']}: baseline {_num(m['baseline_rss_mb'])} MB, peak while stopped "
            f"{_num(m['peak_rss_stopped_mb'])} MB (growth {_num(m['rss_growth_mb'])} MB; window "
            f"{m.get('window_messages')} msgs = {_num(m['window_bytes_mb'], 2)} MB); {_num(m['calls_before_stop'], 0)} produce "
            f"calls in the 0.3 s before SIGSTOP, {_num(m['calls_after_stop'], 0)} after it, {_num(m['progress_second_half'], 0)} in the second half, drained "
            f"{_num(m['drain_after_resume_s'], 2)} s after SIGCONT; {'ok' if r['ok'] else 'FAILED: ' + '; '.join(r['errors'])}"
        )
    return "\n".join(out)


def targets_text(ts: list[dict[str, Any]], base_config: str = "") -> str:
    where = f" ({config_text(base_config)} unless stated)" if base_config else ""
    lines = [f"goals{where}: MET / MISS / n/a (not measured in this run)"]
    for t in ts:
        state = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        if t["unit"] == "x" and t["value"] is not None:
            op = "<=" if t.get("below") else ">="
            val = f"{t['value']:.2f}x (goal {op} {t['goal']}x)"
        elif t["unit"] == "ms" and t["value"] is not None:
            val = f"{t['value']:.2f} ms (goal < {t['goal']} ms)"
        else:
            val = ""
        lines.append(f"  [{state}] {t['target']}: {val}  {t['detail']}")
    return "\n".join(lines)


def failures_text(rows: list[dict[str, Any]]) -> str:
    bad = [r for r in rows if not r["ok"]]
    if not bad:
        return ""
    lines = ["FAILED (a failed run does not count in the medians):"]
    for r in bad:
        lines.append(f"  {r['config']} {r['path']} {label(r)}: {r['ok_runs']}/{r['runs']} ok; " + " | ".join(r["errors"]))
    return "\n".join(lines)


def json_text(meta: dict[str, Any], rows: list[dict[str, Any]], ts: list[dict[str, Any]], runs: list[dict[str, Any]]) -> str:
    doc = {"meta": meta, "results": rows, "targets": ts, "runs": runs}
    return json.dumps(doc, indent=1, default=str)


def write_json(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]], ts: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_text(meta, rows, ts, runs))


# -- chart ---------------------------------------------------------------------------------------
def _compact(v: float) -> str:
    if v >= 100_000:
        return f"{v / 1000:,.0f}k"
    if v >= 1000:
        return f"{v / 1000:,.1f}k"
    if v >= 10:
        return f"{v:,.0f}"
    return f"{v:,.2f}"


def _ratio_label(row: dict[str, Any], latency: bool) -> str:
    """``24x memphis-py · 1.4x memphis.go · 0.97x raw`` for memphis-fast's bars."""
    parts = []
    for client, key, _ in REFERENCES:
        v = row.get(key)
        if v is None or client == row["client"]:
            continue
        parts.append(f"{_ratio(v)} {CLIENT_NAMES[client]}")
    if not parts:
        return ""
    return ("1/p50: " if latency else "") + " · ".join(parts)


def _value_text(v: float, unit: str) -> str:
    if unit == "messages/s":
        return _compact(v)
    return f"{v:,.0f} {unit}" if v >= 10 else f"{v:,.2f} {unit}"


def _panel(ax: Any, rows: list[dict[str, Any]], title: str, key: str, unit: str, scale: float, latency: bool, n_runs: int) -> None:
    """Horizontal bars (linear axis) of one path in one configuration, with min-max whiskers;
    under each of memphis-fast's bars a line with its ratios to the other clients."""
    vals = [float(r[key]) * scale for r in rows]
    lo = [float(r.get(f"{key}_min") or r[key]) * scale for r in rows]
    hi = [float(r.get(f"{key}_max") or r[key]) * scale for r in rows]
    # A bar more than 10x the smallest one (memphis-py's 1 s connect) would squash the others:
    # the axis stops at 2.5x the largest of the rest and the bar is labelled "off scale".
    cap: float | None = None
    small = min(vals) if vals else 0.0
    if latency and small > 0:
        near = [i for i, v in enumerate(vals) if v <= 10 * small]
        if len(near) < len(vals):
            cap = max(hi[i] for i in near) * 2.5
    y = 0.0
    ticks: list[float] = []
    for r, v, a, b in zip(rows, vals, lo, hi, strict=True):
        shown = min(v, cap) if cap else v
        color = COLORS.get(r["client"], "#999999")
        ax.barh(y, shown, color=color, height=0.75)
        if not cap or v <= cap:
            if n_runs > 1 and b > a:
                ax.errorbar(v, y, xerr=[[v - a], [b - v]], fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
            ax.text(max(b, v), y, " " + _value_text(v, "messages/s" if not latency else unit), va="center", fontsize=7)
        else:
            ax.text(shown, y, f" {_value_text(v, unit)} (off scale)", va="center", fontsize=7, fontweight="bold")
        ticks.append(y)
        y += 1.0
        if r["client"] == "memphis-fast":
            text = _ratio_label(r, latency)
            if text:
                ax.text(0, y - 0.38, " " + text, va="center", ha="left", fontsize=7, color="#8b0000", style="italic")
                y += 0.55
    ax.set_yticks(ticks)
    ax.set_yticklabels([label(r) for r in rows], fontsize=7)
    ax.set_ylim(y - 0.4, -0.6)
    drawn = [h for h, v in zip(hi, vals, strict=True) if cap is None or v <= cap]
    right = max(max(drawn or [1.0]) * 1.18, cap * 1.35 if cap else 0.0)
    ax.set_xlim(0, right or 1.0)
    ax.set_title(title, fontsize=8.5, loc="left")
    ax.set_xlabel(f"{unit} ({'lower' if latency else 'higher'} is better)", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)


def _short_config(cfg: str) -> str:
    """``128B/3p/file`` -> ``128 B, 3 partitions, file``."""
    return config_text(cfg).replace(" payloads", "").replace(" storage", "")


def _memory_panel(ax: Any, rows: list[dict[str, Any]]) -> None:
    ys = list(range(len(rows)))
    growth = [float((r.get("memory") or {}).get("rss_growth_mb") or 0.0) for r in rows]
    for y, r, g in zip(ys, rows, growth, strict=True):
        m = r.get("memory") or {}
        ax.barh(y, g, color=COLORS.get(r["client"], "#999999"), height=0.6)
        window = m.get("window_messages")
        what = (
            f" +{_num(g)} MB; {_num(m.get('calls_after_stop'), 0)} calls after SIGSTOP"
            + (f" (window {window})" if window else " (no window)")
            + ("" if r["ok"] else "; FAILED")
        )
        ax.text(g, y, what, va="center", fontsize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels([label(r) for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max(growth + [1.0]) * 2.2)
    ax.set_title("memory-bound: RSS growth, nats-server stopped 2 s", fontsize=8.5, loc="left")
    ax.set_xlabel("MB above the steady-state RSS (lower is better)", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)


def chart(path: Path, rows: list[dict[str, Any]], title: str, n_runs: int = 1) -> None:
    """One panel per (configuration, path), each with its own linear axis: bars per client and
    variant (medians), whiskers from the slowest to the fastest run, and memphis-fast's ratios
    written on its bar. The base configuration adds end-to-end latency, connect and the
    memory-bound result."""
    import matplotlib  # only here: the client never imports matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    configs: list[str] = []
    for r in rows:
        if r["config"] not in configs:
            configs.append(r["config"])
    if not configs:
        return
    base = configs[0]
    rate_paths = [p for p in PATH_ORDER if p not in LATENCY_PATHS and p != "memory-bound"]
    grid: list[list[tuple[str, list[dict[str, Any]], str] | None]] = []
    for p in rate_paths:
        line: list[tuple[str, list[dict[str, Any]], str] | None] = []
        for cfg in configs:
            sel = [r for r in rows if r["config"] == cfg and r["path"] == p and r.get("msgs_per_s")]
            line.append((p, sel, cfg) if sel else None)
        if any(line):
            grid.append(line)
    line = []
    for cfg in configs:
        sel = [r for r in rows if r["config"] == cfg and r["path"] == "latency" and r.get("lat_p50_us")]
        line.append(("latency", sel, cfg) if sel else None)
    if any(line):
        grid.append(line)
    extras: list[tuple[str, list[dict[str, Any]], str] | None] = []
    for p in ("connect", "memory-bound"):
        key = "rss" if p == "memory-bound" else "lat_p50_us"
        sel = [r for r in rows if r["config"] == base and r["path"] == p and (r.get("memory") if key == "rss" else r.get(key))]
        if sel:
            extras.append((p, sel, base))
    ncols = max(len(configs), len(extras), 1)
    nrows = len(grid) + (1 if extras else 0)
    if nrows == 0:
        return
    heights = []
    def rows_height(cells: list[tuple[str, list[dict[str, Any]], str] | None]) -> float:
        units = max(sum(1.55 if r["client"] == "memphis-fast" else 1.0 for r in c[1]) for c in cells if c)
        return units * 0.24 + 1.0

    for line in grid:
        heights.append(rows_height(line))
    if extras:
        heights.append(rows_height(extras))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.6 * ncols, sum(heights) + 1.7), squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for i, line in enumerate(grid):
        for j in range(ncols):
            ax = axes[i][j]
            cell = line[j] if j < len(line) else None
            if cell is None:
                ax.axis("off")
                continue
            p, sel, cfg = cell
            if p == "latency":
                ptitle = f"latency produce -> consume, p50 · {_short_config(cfg)}"
                _panel(ax, sel, ptitle, "lat_p50_us", "µs", 1.0, True, n_runs)
            else:
                _panel(ax, sel, f"{p} · {_short_config(cfg)}", "msgs_per_s", "messages/s", 1.0, False, n_runs)
    if extras:
        for j in range(ncols):
            ax = axes[-1][j]
            cell = extras[j] if j < len(extras) else None
            if cell is None:
                ax.axis("off")
                continue
            p, sel, cfg = cell
            if p == "memory-bound":
                _memory_panel(ax, sel)
            else:
                _panel(ax, sel, "connect + close, p50 (password, host localhost)", "lat_p50_us", "ms", 1e-3, True, n_runs)
    clients = [c for c in CLIENT_ORDER if any(r["client"] == c for r in rows)]
    handles = [Patch(color=COLORS[c], label=CLIENT_NAMES[c]) for c in clients]
    fig.legend(
        handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False,
        bbox_to_anchor=(0.5, 1 - 0.6 / (sum(heights) + 1.7)),
    )
    # Two lines: on one, a long title ran off both edges of the figure.
    fig.suptitle(
        title + ("" if n_runs < 2 else f"; whiskers: slowest to fastest of {n_runs} runs")
        + "\nlabels on memphis-fast's bars: its ratio to each client's best variant",
        fontsize=10, y=1 - 0.08 / (sum(heights) + 1.7), va="top",
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.85 / (sum(heights) + 1.7)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
