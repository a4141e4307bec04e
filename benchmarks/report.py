"""The text table and the PNG plot of a compare.py run, from its JSON document."""

from __future__ import annotations

from rnnrt.bench import BUSY_CORES

from . import machine, scenarios


def fmt_time(s) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}" if s / scale < 100 else f"{s / scale:.0f} {unit}"
    return f"{s / 1e-9:.0f} ns"


def _size(nbytes: int) -> str:
    return f"{nbytes // 1024} KiB" if nbytes < 1 << 20 else f"{nbytes / (1 << 20):.0f} MiB"


def _rates(by_threads: dict) -> str:
    return ", ".join(f"{t} thread{'s' if str(t) != '1' else ''} {g:.0f} GFLOP/s"
                     for t, g in by_threads.items())


def header(doc) -> list:
    m, v = doc["machine"], doc["versions"]
    peers = ", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "torch") if k in v) or "no peer"
    lines = [f"rnnrt {v['rnnrt']} vs {peers} | numpy {v['numpy']}, Python {v['python']} | "
             f"{doc['cpu']}, {doc['cores']} cores | {doc['created']} | {doc['mode']} run",
             f"sgemm (OpenBLAS, {m['sgemm_n']}^3): " + _rates(m["sgemm_gflops"])
             + f"   [{m['openblas']}]"]
    if m.get("openblas_coretype_env"):
        lines += [f"  OPENBLAS_CORETYPE={m['openblas_coretype_env']} is set: OpenBLAS in this "
                  f"process (rnnrt's BLAS) reaches {_rates(m['sgemm_gflops_this_process'])};",
                  f"  without it ({m['openblas_without_coretype']}): "
                  f"{_rates(m['sgemm_gflops_without_coretype'])}. The better is the "
                  f"machine's rate."]
    lines += ["read bandwidth of one core (OpenBLAS sasum, GB/s): " + ", ".join(
                  f"{_size(int(b))} {g:.0f}" for b, g in m["read_gbps_by_bytes"].items()
                  if int(b) // 1024 in machine.BANDWIDTH_GRID_KIB),
              "Per call: median and p10-p90 of all calls in the kept rounds. GFLOP/s: gate "
              "GEMM work / median; %sgemm: of the best sgemm rate at up to that many threads;",
              "x floor: median / floor (step: W and R read once; sequence: input GEMM at "
              "sgemm speed + R read once a step); rnnrt/this: rnnrt's median over this "
              "engine's (below 1: rnnrt faster)."]
    lines += [f"note: {n}" for n in doc["notes"]]
    return lines


def _case_rows(doc) -> list:
    cols = f"{'case':<26}{'engine':<28}{'median':>10}{'p10 - p90':>22}{'GFLOP/s':>9}" \
           f"{'%sgemm':>8}{'x floor':>9}{'rnnrt/this':>12}"
    out = [cols, "-" * len(cols)]
    scenario = None
    for r in doc["cases"]:
        if r["scenario"] != scenario:
            scenario = r["scenario"]
            out.append(f"{scenario}: {scenarios.SCENARIO_TITLE[scenario]}")
        size = f"B={r['batch']}" if r["scenario"] == "C" else f"H={r['hidden']} I={r['input']}"
        label = f"{scenarios.CELL_LABEL[r['cell']]} {size} {r['threads']}t"
        out.append(f"  {label:<24}{'floor':<28}{fmt_time(r['floor_s']):>10}")
        redone = r.get("measurement", {}).get("redone_rounds", 0)
        kept = r.get("measurement", {}).get("disturbed_rounds_kept", 0)
        for name, e in r.get("engines", {}).items():
            spread = f"{fmt_time(e['p10_s'])} - {fmt_time(e['p90_s'])}"
            ratio = f"{e['rnnrt_over_this']:.2f}" if e["rnnrt_over_this"] else ""
            out.append(f"  {'':<24}{name:<28}{fmt_time(e['median_s']):>10}{spread:>22}"
                       f"{e['gflops']:9.2f}{100 * e['fraction_of_sgemm']:7.1f}%"
                       f"{e['x_floor']:9.2f}{ratio:>12}")
        for name, why in r["failed"].items():
            out.append(f"  {'':<24}{name:<28}FAILED: {why}")
        if redone or kept:
            out.append(f"  {'':<24}({redone} disturbed round(s) run again"
                       + (f", {kept} still disturbed)" if kept else ")"))
        busy = r.get("measurement", {}).get("others_cores")
        if busy is not None and busy > BUSY_CORES:
            out.append(f"  {'':<24}(machine busy: other processes used {busy:.1f} core(s) "
                       f"while this case ran)")
    return out


def _startup_rows(doc) -> list:
    s = doc["startup"]
    base = s["numpy_alone"]
    mib = 1024.0
    cols = f"{'model':<24}{'engine':<14}{'file':>9}{'import over numpy':>19}" \
           f"{'load':>10}{'2nd load':>10}{'peak RSS':>10}{'RSS - numpy - file':>20}"
    out = [f"D: {scenarios.SCENARIO_TITLE['D']}, median of "
           f"{doc['settings']['startup_repeats']}; rnnrt imports its engine at the first load",
           cols, "-" * len(cols),
           f"{'numpy alone':<38}{'':>9}{'import ' + fmt_time(base['import_numpy_s']):>19}"
           f"{'':>20}{base['peak_rss_kib'] / mib:6.0f} MiB"]
    for cell, fams in s["cells"].items():
        label = f"{scenarios.CELL_LABEL[cell]} H={s['hidden'][cell]} I={s['hidden'][cell]}"
        for fam, e in fams.items():
            extra = (e["peak_rss_kib"] - base["peak_rss_kib"]) / mib - e["file_bytes"] / 2**20
            out.append(f"{label:<24}{fam:<14}{e['file_bytes'] / 2**20:6.1f} MB"
                       f"{fmt_time(e['import_s']):>19}{fmt_time(e['load_s']):>10}"
                       f"{fmt_time(e['second_load_s']):>10}{e['peak_rss_kib'] / mib:6.0f} MiB"
                       f"{extra:+16.1f} MiB")
            label = ""
    return out


def _primary(r, family):
    """The engine row the README quotes for a family: the first (the plain call)."""
    return next((e for e in r["engines"].values() if e["family"] == family), None)


def markdown(doc) -> str:
    """The README's tables: per case rnnrt, its distance to the floor (1 thread), and each
    peer's plain call with rnnrt's time over it; then start-up."""
    out = ["| | case | rnnrt | x floor | onnxruntime | rnnrt / ort | PyTorch | rnnrt / torch |",
           "|---|---|---|---|---|---|---|---|"]
    for r in doc["cases"]:
        size = f"B={r['batch']}" if r["scenario"] == "C" else f"H={r['hidden']} I={r['input']}"
        row = [r["scenario"], f"{scenarios.CELL_LABEL[r['cell']]} {size} {r['threads']}t"]
        ours = _primary(r, "rnnrt")
        row += [fmt_time(ours["median_s"]) if ours else "-",
                f"{ours['x_floor']:.2f}" if ours and r["threads"] == 1 else "-"]
        for family in ("onnxruntime", "torch"):
            e = _primary(r, family)
            row += [fmt_time(e["median_s"]), f"{e['rnnrt_over_this']:.2f}"] if e else ["-", "-"]
        out.append("| " + " | ".join(row) + " |")
    s = doc.get("startup")
    if s:
        base = s["numpy_alone"]
        out += ["", "| D: 50 MB model | import over numpy | first load | second load | peak RSS |",
                "|---|---|---|---|---|"]
        for cell, fams in s["cells"].items():
            for fam, e in fams.items():
                out.append(f"| {scenarios.CELL_LABEL[cell]} {fam} | {fmt_time(e['import_s'])} | "
                           f"{fmt_time(e['load_s'])} | {fmt_time(e['second_load_s'])} | "
                           f"{e['peak_rss_kib'] / 1024:.0f} MiB |")
        out.append(f"| numpy alone | - | - | - | {base['peak_rss_kib'] / 1024:.0f} MiB |")
    return "\n".join(out)


def table(doc) -> str:
    lines = header(doc) + [""]
    if doc["cases"]:
        lines += _case_rows(doc) + [""]
    if doc.get("startup"):
        lines += _startup_rows(doc)
    return "\n".join(lines).rstrip()


def plot(doc, path) -> bool:
    """Latency against hidden size (A, B) or batch (C), one line per engine and thread count,
    one panel per scenario and cell. False when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [s for s in ("A", "B", "C") if any(r["scenario"] == s for r in doc["cases"])]
    cells = [c for c in scenarios.CELLS if any(r["cell"] == c for r in doc["cases"])]
    if not rows:
        return False
    fig, axes = plt.subplots(len(rows), len(cells), figsize=(5 * len(cells), 3.8 * len(rows)),
                             squeeze=False)
    # One colour per engine and way of calling it, the same in every panel.
    colors = {"rnnrt": "C0", "ort": "C1", "ort-iobinding": "C3", "torch": "C2",
              "torch-cell": "C4"}
    for i, s in enumerate(rows):
        for j, cell in enumerate(cells):
            ax = axes[i][j]
            recs = [r for r in doc["cases"] if r["scenario"] == s and r["cell"] == cell]
            xkey = "batch" if s == "C" else "hidden"
            lines, keys = {}, {}
            for r in recs:
                keys.update(r.get("keys", {}))
                lines.setdefault(("floor", r["threads"]), []).append((r[xkey], r["floor_s"],
                                                                      None, None))
                for name, e in r.get("engines", {}).items():
                    lines.setdefault((name, r["threads"]), []).append(
                        (r[xkey], e["median_s"], e["p10_s"], e["p90_s"]))
            # rnnrt first (same colour in every panel), the floors last
            order = lambda kv: (kv[0][0] == "floor", not kv[0][0].startswith("rnnrt"), kv[0])
            for (name, t), pts in sorted(lines.items(), key=order):
                pts.sort()
                xs = [p[0] for p in pts]
                ys = [p[1] * 1e6 for p in pts]
                style = "-" if t == 1 else "--"
                if name == "floor":
                    ax.plot(xs, ys, ":" if t == 1 else "-.", color="black", label=f"floor {t}t")
                    continue
                color = colors.get(keys.get(name), "C7")
                ax.plot(xs, ys, style, marker="o", ms=3, color=color, label=f"{name} {t}t")
                ax.fill_between(xs, [p[2] * 1e6 for p in pts], [p[3] * 1e6 for p in pts],
                                color=color, alpha=0.12, linewidth=0)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(sorted({r[xkey] for r in recs}) or [1])
            ax.set_xticklabels([str(v) for v in sorted({r[xkey] for r in recs})])
            ax.set_xlabel("batch" if s == "C" else "hidden size")
            ax.set_ylabel("µs per call")
            ax.set_title(f"{s}: {scenarios.CELL_LABEL[cell]}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=5.5, ncol=2)
    fig.suptitle(f"rnnrt vs peers, {doc['cpu']}, {doc['cores']} cores, {doc['mode']} run\n"
                 "band: p10-p90; solid: 1 thread, dashed: 2 threads", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
