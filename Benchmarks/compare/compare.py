#!/usr/bin/env python3
"""Helpers of Benchmarks/compare/compare.sh (make compare): runs a load while sampling a server's
CPU time, turns each run's output into one JSON record (checked), and writes the report:
table4.md, table4.json, fig19.csv, fig19-runs.csv and fig19-paper.csv.

  compare.py run-load --record R --stdout F --stderr F --timeout S [--cpu-pid PID | --cpu-pid-file F] -- CMD...
  compare.py kv-result --record R --pktgen-json J --col C --round N --server-status S
                       --switch-status S --server-cmd C --load-cmd C --switch-cmd C --out F
  compare.py tx-result --kind pktgen|testpmd --path P --size B --round N --rc RC --log F --cmd C --out F
  compare.py switch-check --log LOG --size B --status S --out F RUN-RECORD...
  compare.py skip --col C --note TEXT --out F [--round N]
  compare.py report --out DIR --runs DIR --meta META.json
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Table 4's columns, in the paper's order (Linux, then the specialized paths).
COLUMNS = [
    ("linux-single", "Linux single"),
    ("linux-batch", "Linux batch"),
    ("dpdk", "DPDK"),
    ("lwip", "lwIP"),
    ("netdev", "netdev (vhost-user)"),
    ("unikernel", "unikernel netdev"),
]
EXTRA = [("memcached", "memcached 1.6.18 -t 1")]

# The paper's own figures: unikraft/eurosys21-artifacts at d88853d509c43f4bcd1633e9fec49e4d02241985,
# experiments/tab_04_kvs_compare/paperresults/merged.csv (the data behind the paper's Table 4) and
# experiments/fig_19_compare-dpdk/paperresults/*.csv (fig. 19, Mpps received by testpmd rxonly on a
# second machine over a 10 GbE link).
ARTIFACTS = "https://github.com/unikraft/eurosys21-artifacts/blob/d88853d509c43f4bcd1633e9fec49e4d02241985"
PAPER_TABLE4_SOURCE = ARTIFACTS + "/experiments/tab_04_kvs_compare/paperresults/merged.csv"
PAPER_TABLE4 = {  # requests/s, as merged.csv writes them; Linux guest = Linux in a KVM VM
    "linux-metal-single": 590e3, "linux-metal-batch": 985e3,
    "linux-guest-single": 105e3, "linux-guest-batch": 276e3, "linux-guest-dpdk": 6.1e6,
    "unikraft-guest-lwip": 250e3, "unikraft-guest-uknetdev": 6e6, "unikraft-guest-dpdk": 6.1e6,
}
# Which of the paper's setups each of our columns stands beside.
PAPER_FOR = {
    "linux-single": "linux-guest-single", "linux-batch": "linux-guest-batch",
    "dpdk": "linux-guest-dpdk", "lwip": "unikraft-guest-lwip",
    "netdev": "unikraft-guest-uknetdev", "unikernel": "unikraft-guest-uknetdev",
}
PAPER_FIG19_SOURCE = ARTIFACTS + "/experiments/fig_19_compare-dpdk/paperresults/"
PAPER_FIG19 = {  # Mpps by frame size
    "paper-unikraft-vhost-user": {64: 14.19142, 128: 8.214138, 256: 4.445678, 512: 2.329066, 1024: 1.190099, 1500: 0.818558},
    "paper-linux-dpdk-vm-vhost-user": {64: 14.15583, 128: 8.220263, 256: 4.446257, 512: 2.331321, 1024: 1.192632, 1500: 0.820041},
}
FIG19_PATHS = [
    ("pktgen-virtionet", "pktgen tx over our VirtioNet (vhost-user)"),
    ("pktgen-dpdk", "pktgen tx over DPDK net_virtio_user"),
    ("testpmd-txonly", "testpmd txonly on net_virtio_user"),
]


def cpu_ticks(pid):
    """utime + stime of the process (all its threads), in clock ticks; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None


def cpu_between(samples, t0, t1):
    """CPU seconds spent between t0 and t1, interpolated between (time, ticks) samples."""
    def at(t):
        if not samples:
            return None
        if t <= samples[0][0]:
            return samples[0][1]
        for (ta, ca), (tb, cb) in zip(samples, samples[1:]):
            if ta <= t <= tb:
                return ca + (cb - ca) * ((t - ta) / (tb - ta) if tb > ta else 0)
        return samples[-1][1]
    a, b = at(t0), at(t1)
    return None if a is None or b is None else (b - a) / CLK_TCK


def run_load(a):
    """Runs the load command, sampling --cpu-pid every 50 ms; stops it (INT, then KILL) after --timeout."""
    samples, timed_out = [], False
    with open(a.stdout, "w") as out, open(a.stderr, "w") as err:
        start = time.monotonic()
        proc = subprocess.Popen(a.cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        while True:
            now = time.monotonic()
            if not a.cpu_pid and a.cpu_pid_file:   # the server starts after the load (vhost-user columns)
                try:
                    a.cpu_pid = int(open(a.cpu_pid_file).read().strip() or 0)
                except (OSError, ValueError):
                    pass
            if a.cpu_pid:
                ticks = cpu_ticks(a.cpu_pid)
                if ticks is not None:
                    samples.append((now, ticks))
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            except KeyboardInterrupt:   # ^C: the load got it too; let it end, then stop
                try:
                    proc.wait(timeout=5)
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    proc.kill()
                    proc.wait()
                return 130
            if now - start > a.timeout:
                timed_out = True
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                break
        end = time.monotonic()
    alive = bool(a.cpu_pid) and cpu_ticks(a.cpu_pid) is not None
    if a.cpu_pid and alive:
        samples.append((end, cpu_ticks(a.cpu_pid)))
    rec = {"rc": proc.returncode, "timed_out": timed_out, "start": start, "end": end,
           "server_alive_at_end": alive, "samples": samples}
    with open(a.record, "w") as f:
        json.dump(rec, f)
    return 0


def kv_result(a):
    """One KV run's record: pktgen's result, the server's CPU over the measured load, checks."""
    load = json.load(open(a.record))
    run = {"col": a.col, "round": a.round, "commands": {"switch": a.switch_cmd, "server": a.server_cmd, "load": a.load_cmd},
           "pktgen_status": load["rc"], "server_status": a.server_status, "switch_status": a.switch_status}
    problems = []
    try:
        r = json.load(open(a.pktgen_json))
    except (OSError, ValueError):
        r = None
        problems.append("pktgen printed no result")
    if load["timed_out"]:
        problems.append("pktgen did not end in time")
    if r is not None:
        lat = r.get("latency", {})
        run.update({
            "requests": r["requests"], "seconds": r["seconds"], "replies_per_second": r["replies_per_second"],
            "p50_us": lat.get("p50_us"), "p99_us": lat.get("p99_us"), "timeouts": r["timeouts"],
            "wrong_values": r["wrong_values"], "bad_replies": r["bad_replies"], "retries": r["retries"],
            "gets": r["gets"], "sets": r["sets"], "hits": r["hits"], "misses": r["misses"]})
        for key in ("wrong_values", "bad_replies", "timeouts"):
            if r[key]:
                problems.append(f"{r[key]} {key.replace('_', ' ')}")
        if r.get("failure"):
            problems.append(f"pktgen: {r['failure']}")
        if r["requests"] <= 0:
            problems.append("no request answered")
        # The server's CPU over the measured load: the last `seconds` before pktgen ended.
        cpu = cpu_between([tuple(s) for s in load["samples"]], load["end"] - r["seconds"], load["end"])
        if cpu is None:
            problems.append("could not read the server's CPU time")
        elif r["requests"] > 0:
            run["server_cpu_seconds"] = cpu
            run["cpu_us_per_request"] = cpu / r["requests"] * 1e6
    # Busy time per request: a polling store prints its own (time in polls that received frames,
    # "busy: ... N ns per request"); a server that blocks when idle (kernel sockets, memcached) is
    # busy for all the CPU time it used.
    busy = None
    if a.server_log:
        text = open(a.server_log, errors="replace").read()
        m = re.search(r"busy: .* (\d+) ns per request", text)
        if m:
            busy = int(m.group(1)) / 1000
        # How full its bursts were (a store faster than its client sees short ones).
        m = re.search(r"\(([\d.]+) requests per poll\)", text)
        if m:
            run["requests_per_busy_poll"] = float(m.group(1))
    if busy is None and a.col in ("linux-single", "linux-batch", "memcached") and "cpu_us_per_request" in run:
        busy = run["cpu_us_per_request"]
    if busy is not None:
        run["busy_us_per_request"] = busy
    if load["rc"] != 0:
        problems.append(f"pktgen exit status {load['rc']}")
    # On the vhost-user columns the client is the store's backend: when the load ends it closes the
    # socket, and a store on our vhost-user frontend then ends by itself with status 3 ("the
    # vhost-user backend ... went away"), as it is meant to (maybe before the load's last sample).
    backend_left = a.server_status == 3 and a.server_log and "went away mid-run" in open(a.server_log, errors="replace").read()
    if not load["server_alive_at_end"] and not backend_left:
        problems.append("the server was gone before the load ended")
    if a.server_status != 0 and not backend_left:
        problems.append(f"server exit status {a.server_status}")
    if a.switch_status not in (0, -1):   # -1: no switch on this path
        problems.append(f"switch (testpmd) exit status {a.switch_status}")
    run["status"] = "ok" if not problems else "failed: " + "; ".join(problems)
    json.dump(run, open(a.out, "w"), indent=1)
    if r is not None and "replies_per_second" in run:
        us = lambda v: "-" if v is None else f"{v:.0f} us"
        cpu = f", {run['cpu_us_per_request']:.2f} us CPU/request" if "cpu_us_per_request" in run else ""
        print(f"{run['replies_per_second']:,.0f} req/s, p50 {us(run['p50_us'])}, p99 {us(run['p99_us'])}{cpu}"
              + ("" if run["status"] == "ok" else f"  [{run['status']}]"))
    else:
        print(run["status"])
    return 0 if run["status"] == "ok" else 1


def testpmd_tx(text):
    """testpmd txonly's log: (median steady Tx-pps, as run-vhost-bench.sh takes it; frames sent)."""
    rates = [int(x) for x in re.findall(r"Tx-pps:\s+(\d+)", text)]
    rates = [x for x in rates if x > 0]
    rates = (rates[1:] if len(rates) > 2 else rates) or [0]   # the first second is partial
    m = re.search(r"Accumulated forward statistics.*?TX-packets:\s+(\d+)", text, re.S)
    return statistics.median(rates), (int(m.group(1)) if m else None)


def switch_rx(text):
    m = re.search(r"Accumulated forward statistics.*?RX-packets:\s+(\d+)", text, re.S)
    return int(m.group(1)) if m else None


def tx_result(a):
    text = open(a.log, errors="replace").read()
    run = {"path": a.path, "frame_bytes": a.size, "round": a.round, "command": a.cmd, "status": "ok", "rc": a.rc}
    problems = []
    if a.kind == "pktgen":
        try:
            res = json.loads(text)["results"][0]
            run["pps"], run["sent"] = res["pps"], res["packets"]
        except (ValueError, KeyError, IndexError):
            problems.append("pktgen printed no result")
        if a.rc != 0:
            problems.append(f"pktgen exit status {a.rc}")
    else:
        pps, sent = testpmd_tx(text)
        run["pps"], run["sent"] = pps, sent
        if a.rc != 124:   # ended by timeout -s INT: 124 is the expected status
            problems.append(f"testpmd exit status {a.rc} (124 expected: stopped by its timeout)")
        if sent is None:
            problems.append("testpmd printed no final statistics")
    if not problems and not run.get("pps"):
        problems.append("no frame sent")
    if problems:
        run["status"] = "failed: " + "; ".join(problems)
    json.dump(run, open(a.out, "w"), indent=1)
    pps = run.get("pps") or 0
    print(f"{pps / 1e6:.2f} Mpps, {pps * a.size * 8 / 1e9:.2f} Gbit/s" + ("" if run["status"] == "ok" else f"  [{run['status']}]"))
    return 0 if run["status"] == "ok" else 1


def skip(a):
    json.dump({"col": a.col, "round": a.round, "status": a.note}, open(a.out, "w"), indent=1)
    return 0


# --- the report ---------------------------------------------------------------------------------

def fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}K"
    return f"{x:.0f}"


def median_of(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize_kv(runs_dir):
    by_col = {}
    for name in sorted(os.listdir(runs_dir)):
        if name.startswith("kv-") and name.endswith(".json"):
            r = json.load(open(os.path.join(runs_dir, name)))
            by_col.setdefault(r["col"], []).append(r)
    out = {}
    for col, _ in COLUMNS + EXTRA:
        runs = sorted(by_col.get(col, []), key=lambda r: r["round"])
        if not runs:
            out[col] = {"status": "not run", "runs": []}
            continue
        failed = [r for r in runs if r["status"].startswith("failed")]
        skipped = [r for r in runs if r["status"] != "ok" and not r["status"].startswith("failed")]
        if skipped:
            out[col] = {"status": skipped[0]["status"], "runs": runs}
            continue
        s = {"status": "ok" if not failed else f"failed (round {failed[0]['round']}: {failed[0]['status'][8:]})",
             "rounds": len(runs), "runs": runs, "ran": next((r["commands"] for r in runs if "commands" in r), None)}
        good = [r for r in runs if r["status"] == "ok"]
        for key in ("replies_per_second", "p50_us", "p99_us", "cpu_us_per_request", "server_cpu_seconds", "busy_us_per_request"):
            s[key] = median_of(good, key)
        out[col] = s
    return out


def summarize_tx(runs_dir):
    runs = []
    for name in sorted(os.listdir(runs_dir)):
        if name.startswith("tx-") and name.endswith(".json"):
            runs.append(json.load(open(os.path.join(runs_dir, name))))
    switch_checks = []
    for name in sorted(os.listdir(runs_dir)):
        if name.startswith("txswitch-") and name.endswith(".json"):
            switch_checks.append(json.load(open(os.path.join(runs_dir, name))))
    rows, failures = [], []
    for path, _ in FIG19_PATHS:
        for size in sorted({r["frame_bytes"] for r in runs}):
            rs = [r for r in runs if r["path"] == path and r["frame_bytes"] == size]
            bad = [r for r in rs if r["status"] != "ok"]
            failures += [f"{path} {size} B round {r['round']}: {r['status']}" for r in bad]
            good = [r["pps"] for r in rs if r["status"] == "ok"]
            if good:
                mpps = statistics.median(good) / 1e6
                rows.append({"path": path, "frame_bytes": size, "mpps": mpps, "gbps": mpps * size * 8 / 1e3,
                             "runs_mpps": [r["pps"] / 1e6 for r in rs if r["status"] == "ok"]})
    failures += [f"switch at {c['frame_bytes']} B: {c['status']}" for c in switch_checks if c["status"] != "ok"]
    return rows, runs, switch_checks, failures


def report(a):
    meta = json.load(open(a.meta))
    kv = summarize_kv(a.runs)
    rows, tx_runs, switch_checks, tx_failures = summarize_tx(a.runs)
    names = dict(COLUMNS + EXTRA)
    batch = kv.get("linux-batch", {}).get("replies_per_second")

    def cell(col, key, f):
        s = kv[col]
        if s["status"] != "ok" and not s["status"].startswith("failed"):
            return s["status"]
        if s["status"].startswith("failed") and s.get(key) is None:
            return "failed"
        v = s.get(key)
        text = "-" if v is None else f(v)
        return text + (" (failed rounds)" if s["status"].startswith("failed") else "")

    cols = [c for c, _ in COLUMNS]
    L = []
    L.append("# Table 4, re-run here: the UDP KV store over six network paths")
    L.append("")
    L.append(f"Measured {meta['date']} on {meta['machine']} at {meta['commit']}"
             f"{' (QUICK: short runs, one round)' if meta['quick'] else ''}; "
             f"{meta['kv_seconds']} s of load per run, median of {meta['rounds']} round(s). "
             "Load, the same for every column: `pktgen kv --preload --keys 1000 --value-size 32 --get-ratio 0.9 "
             "--window 32` (every reply checked; a wrong value or bad reply fails the column).")
    L.append("")
    L.append("| | " + " | ".join(names[c] for c in cols) + " |")
    L.append("|---|" + "---|" * len(cols))
    L.append("| requests/s | " + " | ".join(cell(c, "replies_per_second", fmt_rate) for c in cols) + " |")
    L.append("| p50 latency | " + " | ".join(cell(c, "p50_us", lambda v: f"{v:.0f} us") for c in cols) + " |")
    L.append("| p99 latency | " + " | ".join(cell(c, "p99_us", lambda v: f"{v:.0f} us") for c in cols) + " |")
    L.append("| server CPU per request | " + " | ".join(cell(c, "cpu_us_per_request", lambda v: f"{v:.2f} us") for c in cols) + " |")
    L.append("| server busy time per request | " + " | ".join(cell(c, "busy_us_per_request", lambda v: f"{v:.2f} us") for c in cols) + " |")
    L.append("| one core's capacity at that cost | " + " | ".join(cell(c, "busy_us_per_request", lambda v: fmt_rate(1e6 / v)) for c in cols) + " |")
    L.append("| ratio to Linux batch | " + " | ".join(
        cell(c, "replies_per_second", lambda v: f"{v / batch:.2f}x" if batch else "n/a") for c in cols) + " |")
    L.append("| *paper: requests/s* | " + " | ".join(f"*{fmt_rate(PAPER_TABLE4[PAPER_FOR[c]])}*" for c in cols) + " |")
    pb = PAPER_TABLE4["linux-guest-batch"]
    L.append("| *paper: ratio to Linux batch* | " + " | ".join(f"*{PAPER_TABLE4[PAPER_FOR[c]] / pb:.2f}x*" for c in cols) + " |")
    L.append("")
    L.append("The paper's rows (*italic*) are the figures of the paper's Table 4 (Kuenzer et al., \"Unikraft: Fast, "
             "Specialized Unikernels the Easy Way\", EuroSys'21), as its artifact repository records them "
             f"([merged.csv]({PAPER_TABLE4_SOURCE})): Linux guest (a Linux VM) single 105K, batch 276K, DPDK 6.1M; "
             "Unikraft guest lwIP 250K, uknetdev 6M, DPDK 6.1M requests/s; Linux bare metal single 590K, batch "
             "985K. Their Linux columns are the Linux guest's. So the paper has raw netdev at 6M/276K = 22x Linux "
             "batch and lwIP at 250K/6M = 0.04x netdev. Their server was a UDP echo with an unused hash lookup "
             "(the artifacts' \"KV store\"), driven by a DPDK client on a second machine over 10 GbE, the server "
             "alone on its core; ours is a real memcached-UDP store.")
    L.append("")
    mc = kv.get("memcached", {})
    nd = kv.get("netdev", {})
    ls = kv.get("linux-single", {})
    L.append("## Our store against real memcached, per core")
    L.append("")
    if mc.get("replies_per_second"):
        us = lambda v, unit="us", f=".0f": "-" if v is None else f"{v:{f}} {unit}"
        line = (f"memcached 1.6.18 `-t 1` over Linux UDP (the Linux columns' setup, same client): "
                f"{fmt_rate(mc['replies_per_second'])} requests/s, p50 {us(mc['p50_us'])}, p99 {us(mc['p99_us'])}, "
                f"{us(mc['cpu_us_per_request'], 'us', '.2f')} of server CPU per request")
        if mc["status"] != "ok":
            line += f" ({mc['status']})"
        L.append(line + ".")
        parts = []
        if nd.get("replies_per_second"):
            parts.append(f"netdev (vhost-user) / memcached = **{nd['replies_per_second'] / mc['replies_per_second']:.2f}x**")
        if ls.get("replies_per_second"):
            parts.append(f"our store on the same kernel socket (Linux single) / memcached = "
                         f"{ls['replies_per_second'] / mc['replies_per_second']:.2f}x")
        if nd.get("cpu_us_per_request") and mc.get("cpu_us_per_request"):
            parts.append(f"server CPU per request, memcached / netdev = "
                         f"{mc['cpu_us_per_request'] / nd['cpu_us_per_request']:.1f}x")
        if nd.get("busy_us_per_request") and mc.get("busy_us_per_request"):
            parts.append(f"per core (busy time per request, memcached / netdev) = "
                         f"**{mc['busy_us_per_request'] / nd['busy_us_per_request']:.1f}x**")
        if parts:
            L.append("")
            L.append("; ".join(parts) + ". Both servers are single-threaded, each on CPU 1 with the client on CPU 0; "
                     "memcached's client writes through a TAP into the kernel, ours talks vhost-user to it. Neither "
                     "server's core is saturated at `--window 32`, so the rate ratio is the client's; per core, "
                     "memcached is busy for all its CPU time (it blocks when idle), our store for the time it spends in "
                     "polls that received frames.")
    else:
        L.append(f"memcached: {mc.get('status', 'not run')}")
    L.append("")
    L.append("## How to read it")
    L.append("")
    L.append("- **Linux single / batch, memcached**: the server (`kvstore --stack linux-single|linux-batch`: a UDP socket "
             "with recvfrom/sendto or recvmmsg/sendmmsg; memcached `-t 1`) on the kernel side of a TAP in a private "
             "namespace, pinned to CPU 1; `pktgen kv` on the TAP itself, pinned to CPU 0.")
    L.append("- **DPDK, lwIP, netdev, unikernel**: the store on CPU 1 (for the unikernel, QEMU/KVM pinned there), "
             "connected over vhost-user to `pktgen kv` on CPU 0, which runs DPDK's net_vhost backend: the client is the "
             "host side, the role the paper's host switch (a vhost-user backend) and client machine played. Each program "
             "has a core to itself; with `--window 32` in flight the client's own cost (DPDK's vhost copies and every "
             "reply checked) and the round trip bound these rates, not the store's core (see server CPU).")
    L.append("- **server busy time per request**: for our polling stores (DPDK, lwIP, netdev, unikernel), the time "
             "they spent in polls that received frames (handling the requests and sending the replies; the store's own "
             "meter, one clock read per poll, printed at exit: the hosted store reads the monotonic clock, the "
             "unikernel its TSC), over the requests it answered: the CPU a request costs without the "
             "empty polls between requests (what OVS-DPDK reports as processing cycles); every store also prints how "
             "many requests a busy poll found (table4.json: requests_per_busy_poll). For servers that block when "
             "idle (Linux sockets, memcached) it is their CPU time per request. "
             "**one core's capacity**: the requests/s one core would serve at that cost, an upper bound the client "
             "here cannot reach.")
    L.append("- **server CPU per request**: the server's utime+stime (/proc/PID/stat; for the unikernel the whole QEMU "
             "process) over the measured load, divided by the requests answered. Polling servers burn CPU while "
             "idle, so this is CPU per request at this load, not the cost of a request. Not counted: for TAP the "
             "kernel work done in the client's own write().")
    L.append("- Each cell is the median of the rounds; every run's figures and exact commands are in table4.json.")
    L.append("")
    L.append("## fig. 19: TX throughput over vhost-user (fig19.csv, fig19.png)")
    L.append("")
    sizes = sorted({r["frame_bytes"] for r in rows})
    if rows:
        L.append("| path | " + " | ".join(f"{s} B" for s in sizes) + " |")
        L.append("|---|" + "---|" * len(sizes))
        for path, label in FIG19_PATHS:
            cells = []
            for s in sizes:
                row = next((r for r in rows if r["path"] == path and r["frame_bytes"] == s), None)
                cells.append(f"{row['mpps']:.2f} Mpps / {row['gbps']:.1f} Gbit/s" if row else "failed")
            L.append(f"| {label} | " + " | ".join(cells) + " |")
        for path, data in PAPER_FIG19.items():
            L.append(f"| *{path} (the paper, 10 GbE)* | " + " | ".join(
                f"*{data[s]:.2f} Mpps*" if s in data else "-" for s in sizes) + " |")
        L.append("")
        L.append("Each sender in turn into one `dpdk-testpmd` net_vhost port in rxonly (its poller on CPU 1), the sender on "
                 "CPU 0; the rate is the sender's (pktgen's frames / its seconds; testpmd's steady Tx-pps), and the "
                 "switch's received count is checked against the frames sent. Gbit/s counts frame bytes with the FCS, "
                 "without the 20 bytes of preamble and inter-frame gap. The paper's lines were measured on a second "
                 f"machine behind a 10 GbE NIC (line rate bound; [source]({PAPER_FIG19_SOURCE})); ours never leave "
                 "this host, so only their shape compares.")
    if tx_failures:
        L.append("")
        L.append("fig. 19 failures: " + "; ".join(tx_failures))
    L.append("")
    with open(os.path.join(a.out, "table4.md"), "w") as f:
        f.write("\n".join(L))

    # table4.json: the summary, every run, and the commands.
    table = {"meta": meta, "paper": {"table4_requests_per_second": PAPER_TABLE4, "table4_source": PAPER_TABLE4_SOURCE,
                                     "fig19_mpps": PAPER_FIG19, "fig19_source": PAPER_FIG19_SOURCE},
             "columns": {}, "fig19": {"rows": rows, "runs": tx_runs, "switch_checks": switch_checks}}
    for col, label in COLUMNS + EXTRA:
        s = dict(kv[col])
        s["label"] = label
        if s.get("ran"):
            s["ran_line"] = " ; ".join(f"{k}: {v}" for k, v in s["ran"].items() if v)
        if col in PAPER_FOR:
            s["paper_requests_per_second"] = PAPER_TABLE4[PAPER_FOR[col]]
        if batch and s.get("replies_per_second"):
            s["ratio_to_linux_batch"] = s["replies_per_second"] / batch
        table["columns"][col] = s
    json.dump(table, open(os.path.join(a.out, "table4.json"), "w"), indent=1)

    with open(os.path.join(a.out, "fig19.csv"), "w") as f:
        f.write("# fig. 19 re-run: TX into dpdk-testpmd net_vhost rxonly; mpps = the sender's median rate; gbps = mpps x frame_bytes x 8"
                " / 1000: Gbit/s of frame bytes (FCS included), WITHOUT the 20 bytes of preamble + inter-frame gap\n")
        f.write("path,frame_bytes,mpps,gbps\n")
        for r in rows:
            f.write(f"{r['path']},{r['frame_bytes']},{r['mpps']:.3f},{r['gbps']:.3f}\n")
    with open(os.path.join(a.out, "fig19-runs.csv"), "w") as f:
        f.write("path,frame_bytes,round,mpps,frames_sent,status\n")
        for r in sorted(tx_runs, key=lambda r: (r["path"], r["frame_bytes"], r["round"])):
            f.write(f"{r['path']},{r['frame_bytes']},{r['round']},{(r.get('pps') or 0) / 1e6:.3f},{r.get('sent')},\"{r['status']}\"\n")
    with open(os.path.join(a.out, "fig19-paper.csv"), "w") as f:
        f.write(f"# the paper's fig. 19 (vhost-user), Mpps received over 10 GbE: {PAPER_FIG19_SOURCE}\n")
        f.write("path,frame_bytes,mpps,gbps\n")
        for path, data in PAPER_FIG19.items():
            for s, m in sorted(data.items()):
                f.write(f"{path},{s},{m:.3f},{m * s * 8 / 1e3:.3f}\n")

    failed = [c for c, _ in COLUMNS + EXTRA if kv[c]["status"].startswith("failed") or kv[c]["status"] == "not run"]
    for c in failed:
        print(f"compare: FAILED: {names[c]}: {kv[c]['status']}", file=sys.stderr)
    for t in tx_failures:
        print(f"compare: FAILED: fig. 19: {t}", file=sys.stderr)
    return 1 if failed or tx_failures else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("run-load")
    s.add_argument("--record", required=True)
    s.add_argument("--stdout", required=True)
    s.add_argument("--stderr", required=True)
    s.add_argument("--timeout", type=float, required=True)
    s.add_argument("--cpu-pid", type=int, default=0)
    s.add_argument("--cpu-pid-file", default="")
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s = sub.add_parser("kv-result")
    s.add_argument("--server-log", default="")
    for opt in ("--record", "--pktgen-json", "--col", "--server-cmd", "--load-cmd", "--switch-cmd", "--out"):
        s.add_argument(opt, required=True)
    for opt in ("--round", "--server-status", "--switch-status"):
        s.add_argument(opt, type=int, required=True)
    s = sub.add_parser("tx-result")
    for opt in ("--kind", "--path", "--log", "--cmd", "--out"):
        s.add_argument(opt, required=True)
    for opt in ("--size", "--round", "--rc"):
        s.add_argument(opt, type=int, required=True)
    s = sub.add_parser("switch-check")
    s.add_argument("--log", required=True)
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--status", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("runs", nargs="+")
    s = sub.add_parser("skip")
    for opt in ("--col", "--note", "--out"):
        s.add_argument(opt, required=True)
    s.add_argument("--round", type=int, default=0)
    s = sub.add_parser("report")
    for opt in ("--out", "--runs", "--meta"):
        s.add_argument(opt, required=True)
    a = p.parse_args()
    if a.what == "run-load":
        if a.cmd and a.cmd[0] == "--":
            a.cmd = a.cmd[1:]
        return run_load(a)
    if a.what == "kv-result":
        return kv_result(a)
    if a.what == "tx-result":
        return tx_result(a)
    if a.what == "switch-check":
        return switch_check(a)
    if a.what == "skip":
        return skip(a)
    return report(a)


def switch_check(a):
    """The rxonly switch of one frame size: it must have received what the senders sent (a ring's
    worth, 1024 frames, of slack per run: frames a sender left in flight when it stopped)."""
    received = switch_rx(open(a.log, errors="replace").read())
    runs = [json.load(open(r)) for r in a.runs]
    sent = sum(r.get("sent") or 0 for r in runs)
    problems = []
    if a.status != 0:
        problems.append(f"testpmd exit status {a.status}")
    if received is None:
        problems.append("no final statistics in its log")
    elif not (sent - 1024 * len(runs) <= received <= sent):
        problems.append(f"received {received} frames, the senders sent {sent}")
    rec = {"frame_bytes": a.size, "received": received, "sent": sent,
           "status": "ok" if not problems else "failed: " + "; ".join(problems)}
    json.dump(rec, open(a.out, "w"), indent=1)
    print(f"switch received {received} of {sent} frames sent" + ("" if not problems else f"  [{rec['status']}]"))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
