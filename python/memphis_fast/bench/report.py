"""Aggregate runs into medians, compute ratios and the issue's targets, render the table,
the JSON and the chart."""

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
CLIENT_ORDER = ("memphis-fast", "memphis-py", "nats-py", "raw")
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


def config_key(payload: int, partitions: int) -> str:
    return f"{payload}B/{partitions}p"


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (config, path, client, variant): medians over the runs."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        key = (config_key(r["payload"], r["partitions"]), r["path"], r["client"], r.get("variant", ""))
        groups.setdefault(key, []).append(r)
    rows = []
    for (cfg, path, client, variant), rs in groups.items():
        good = [r for r in rs if r.get("ok")]
        row: dict[str, Any] = {
            "config": cfg,
            "payload": rs[0]["payload"],
            "partitions": rs[0]["partitions"],
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
        if path == "memory-bound":
            extras = [r.get("extra", {}) for r in good]
            row["memory"] = {
                k: _median(e.get(k) for e in extras)
                for k in (
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
            }
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
        config_order.setdefault(config_key(r["payload"], r["partitions"]), len(config_order))
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


def best(rows: list[dict[str, Any]], config: str, path: str, client: str) -> dict[str, Any] | None:
    """The client's best variant on a path (e.g. memphis-py's best consume path)."""
    cands = [r for r in rows if r["config"] == config and r["path"] == path and r["client"] == client and r["ok"]]
    cands = [r for r in cands if merit(r) is not None]
    return max(cands, key=lambda r: merit(r) or 0.0) if cands else None


def _reference_path(path: str, client: str) -> str:
    # The batch API has no counterpart in memphis-py or the raw client: compare it with their
    # pipelined produce.
    return "produce-nonblocking" if path == "produce-batch" else path


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        mine = merit(r)
        for ref_client, key in (("memphis-py", "x_memphis_py"), ("raw", "x_raw")):
            ref = best(rows, r["config"], _reference_path(r["path"], ref_client), ref_client)
            theirs = merit(ref) if ref is not None else None
            r[key] = mine / theirs if mine is not None and theirs else None


# -- targets ------------------------------------------------------------------------------------
def targets(rows: list[dict[str, Any]], base_config: str) -> list[dict[str, Any]]:
    """The issue's "done when" items that this run can decide."""
    out: list[dict[str, Any]] = []

    def rate(path: str, client: str) -> tuple[float | None, dict[str, Any] | None]:
        b = best(rows, base_config, path, client)
        return (merit(b) if b else None), b

    def add(name: str, value: float | None, goal: float, unit: str, detail: str, *, below: bool = False) -> None:
        if value is None:
            met = None
        else:
            met = value < goal if below else value >= goal
        out.append({"target": name, "value": value, "goal": goal, "unit": unit, "met": met, "detail": detail})

    fast_nb, fast_nb_row = rate("produce-nonblocking", "memphis-fast")
    py_nb, py_nb_row = rate("produce-nonblocking", "memphis-py")
    nats_nb, nats_nb_row = rate("produce-nonblocking", "nats-py")
    raw_nb, raw_nb_row = rate("produce-nonblocking", "raw")
    fast_batch, fast_batch_row = rate("produce-batch", "memphis-fast")
    fast_sync, fast_sync_row = rate("produce-sync", "memphis-fast")
    py_sync, py_sync_row = rate("produce-sync", "memphis-py")
    raw_sync, raw_sync_row = rate("produce-sync", "raw")
    fast_cons, fast_cons_row = rate("consume-ack", "memphis-fast")
    py_cons, py_cons_row = rate("consume-ack", "memphis-py")

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def detail(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
        """Both rates, and the median of the per-run ratios: run k of both clients ran back to
        back, so a paired ratio cancels most of the drift of a shared machine."""
        text = f"{_who(a)} {_fmt_rate(merit(a) if a else None)} vs {_who(b)} {_fmt_rate(merit(b) if b else None)}"
        paired = paired_ratio(a, b)
        return text + (f"; median of per-run ratios {paired:.2f}x" if paired is not None else "")

    add("nonblocking produce vs memphis-py nonblocking", ratio(fast_nb, py_nb), 15, "x", detail(fast_nb_row, py_nb_row))
    add("nonblocking produce vs nats-py publish_async", ratio(fast_nb, nats_nb), 4, "x", detail(fast_nb_row, nats_nb_row))
    add("produce_batch vs raw pipelined", ratio(fast_batch, raw_nb), 0.60, "x", detail(fast_batch_row, raw_nb_row))
    add("sync produce vs memphis-py sync", ratio(fast_sync, py_sync), 1.5, "x", detail(fast_sync_row, py_sync_row))
    add("sync produce vs raw sync", ratio(fast_sync, raw_sync), 0.85, "x", detail(fast_sync_row, raw_sync_row))
    add("consume + ack vs memphis-py's best consume path", ratio(fast_cons, py_cons), 8, "x", detail(fast_cons_row, py_cons_row))
    conn = best(rows, base_config, "connect", "memphis-fast")
    p50 = conn["lat_p50_us"] / 1000 if conn and conn.get("lat_p50_us") is not None else None
    add("connect median (password, localhost)", p50, 5.0, "ms", f"p50 {p50 and round(p50, 2)} ms", below=True)
    mem = next((r for r in rows if r["path"] == "memory-bound" and r["client"] == "memphis-fast"), None)
    if mem is not None:
        info = mem.get("memory") or {}
        met = bool(mem["ok"] and info.get("blocked_all_runs") and info.get("within_bound_all_runs"))
        out.append({
            "target": "memory bound with nats-server stopped",
            "value": info.get("rss_growth_mb"),
            "goal": None,
            "unit": "MB",
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
    return f"{row['client']} ({v})" if v else row["client"]


def table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table, one block per configuration."""
    head = (
        "path", "client", "msgs/s", "MB/s", "p50 us", "p99 us", "cli us/msg", "srv us/msg",
        "RSS MB", "x m-py", "x raw", "runs",
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
            body.append((
                r["path"], label(r), _num(r["msgs_per_s"], 0), _num(r["mb_per_s"], 2), _num(r["lat_p50_us"]),
                _num(r["lat_p99_us"]), _num(r["client_cpu_us_per_msg"], 2), _num(r["server_cpu_us_per_msg"], 2),
                _num(r["peak_rss_mb"]), _ratio(r["x_memphis_py"]), _ratio(r["x_raw"]), status,
            ))
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
        payload, parts = cfg.split("/")
        lines.append(f"== {payload} payloads, {parts[:-1]} partition(s) ==")
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


def targets_text(ts: list[dict[str, Any]]) -> str:
    lines = ["targets (issue 6, base configuration):"]
    for t in ts:
        state = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        if t["unit"] == "x" and t["value"] is not None:
            val = f"{t['value']:.2f}x (goal >= {t['goal']}x)"
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


def write_json(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]], ts: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "results": rows, "targets": ts, "runs": runs}
    path.write_text(json.dumps(doc, indent=1, default=str))


def chart(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Grouped bars of msgs/s per path and client, one panel per configuration, plus latency."""
    import matplotlib  # only here: the client never imports matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs: list[str] = []
    for r in rows:
        if r["config"] not in configs:
            configs.append(r["config"])
    colors = {"memphis-fast": "#d62728", "memphis-py": "#1f77b4", "nats-py": "#2ca02c", "raw": "#7f7f7f"}
    panels = len(configs) + 1
    fig, axes = plt.subplots(panels, 1, figsize=(11, 3.2 * panels), squeeze=False)
    for ax, cfg in zip(axes[:, 0], configs + ["latency"], strict=True):
        if cfg == "latency":
            sel = [r for r in rows if r["config"] == configs[0] and r["path"] in LATENCY_PATHS and r.get("lat_p50_us")]
            value_key, xlabel = "lat_p50_us", "p50 latency, microseconds (log; lower is better)"
            ax.set_title(f"latency ({configs[0]})")
        else:
            sel = [r for r in rows if r["config"] == cfg and r.get("msgs_per_s") and r["path"] not in LATENCY_PATHS and r["path"] != "memory-bound"]
            value_key, xlabel = "msgs_per_s", "messages/s (log; higher is better)"
            ax.set_title(cfg)
        paths: list[str] = []
        for r in sel:
            if r["path"] not in paths:
                paths.append(r["path"])
        y = 0.0
        yticks, ylabels = [], []
        for p in paths:
            prs = [r for r in sel if r["path"] == p]
            for r in prs:
                ax.barh(y, r[value_key], color=colors.get(r["client"], "#999999"), height=0.8)
                ax.text(r[value_key], y, f" {_num(r[value_key], 0)}", va="center", fontsize=7)
                yticks.append(y)
                ylabels.append(f"{p} | {label(r)}")
                y += 1
            y += 0.6
        ax.set_yticks(yticks)
        ax.set_yticklabels(ylabels, fontsize=7)
        ax.invert_yaxis()
        if sel:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
