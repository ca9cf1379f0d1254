#!/usr/bin/env python3
"""rampart gateway vs nginx as a reverse proxy, on the same backend, in one run.

    bench/gateway_vs_nginx.py [--duration 15] [--connections 64] [--threads 2] [--json]

Starts one backend (a private nginx, 1 worker: `return 200 "ok\\n"` at / and
a 4 KiB file at /4k.html), then, one at a time and each freshly started,
the proxies in front of it:

  nginx     worker_processes auto, upstream keepalive 64, limit_req in the
            path (per-client rate far above wrk's), buffered access log
  rampart   `rampart gateway --monitor` (detection runs on every request,
            nothing is blocked), its default SQLite request log on
  rampart   block mode with 127.0.0.1 whitelisted (`[policy] whitelist`),
            request log on
  rampart   --monitor with the request log off (informative: what the log costs)

and runs `wrk -t2 -c64 -d15s --latency` against the backend directly and
each proxy, after a 3 s warm-up run.  wrk's single client is 127.0.0.1:
rampart's flood detection would ban it in block mode, hence the monitor row
and the whitelisted block row.

Reports requests/s, latency p50/p99, the p99 added over the direct run,
rampart/nginx ratios, peak RSS (sampled every 0.2 s: rampart's process,
nginx's workers summed), the proxy's CPU time per request and the CPU used
by processes outside the benchmark (other builds on a shared machine).
Rows with more than 0.1% non-2xx/3xx answers or socket errors are flagged,
and so are rows during which other processes used more than 10% of the CPU.
Before each row the script waits (up to --wait-quiet seconds) for the
machine to be quiet.  --single-connection SECONDS adds a wrk -t1 -c1 run per
target: the latency each proxy adds without queueing.  --rounds N repeats
everything N times, interleaved, and reports medians.

Results: a table on stdout (or JSON with --json) and
bench/out/gateway/results.json; raw wrk output and the proxies' logs go to
bench/out/gateway/.  Every process started here is stopped on exit, error
or Ctrl-C.
"""

import argparse
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TEMPLATES = os.path.join(HERE, "gateway")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# nginx limit_req: the per-client rate and burst (see bench/gateway/nginx-proxy.conf).
NGINX_RATE = 1_000_000
NGINX_BURST = 100_000

# Rows: (key, label), in the order they run.  The goals are checked on GOAL_ROWS.
ROWS = [
    ("direct", "backend directly"),
    ("nginx", "nginx (limit_req, access_log buffered)"),
    ("rampart-monitor", "rampart --monitor (request log on)"),
    ("rampart-block", "rampart block, 127.0.0.1 whitelisted (request log on)"),
    ("rampart-nolog", "rampart --monitor, request log off"),
]
GOAL_ROWS = ("rampart-monitor", "rampart-block")
BAD_SHARE = 0.001  # flag a row when more than 0.1% of answers are not 2xx/3xx, or fail
BUSY_FLAG = 10.0  # flag a row when other processes used more than this % of all cores during it
P99_FLOOR_MS = 0.5  # below this, nginx's added p99 is noise: no ratio is printed


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Fatal(Exception):
    pass


# ---------------------------------------------------------------- processes

class Procs:
    """Every process this script starts; stopped in reverse order on exit."""

    def __init__(self):
        self.procs = []  # (name, Popen, stop signal)

    def start(self, name, cmd, stdout, stderr, stop_sig=signal.SIGTERM, env=None):
        log("$ " + " ".join(cmd))
        # Own session: a Ctrl-C in the terminal reaches only this script,
        # which then stops the children in order (and their workers, by group).
        p = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
        self.procs.append((name, p, stop_sig))
        return p

    def stop(self, p, timeout=15.0):
        entry = next((e for e in self.procs if e[1] is p), None)
        if entry is None:
            return None
        name, p, sig = entry
        self.procs.remove(entry)
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log("%s (pid %d) did not stop within %.0f s: killing its process group" % (name, p.pid, timeout))
            except ProcessLookupError:
                pass
        # nginx workers (and anything else left in the group this script created).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return p.returncode

    def stop_all(self):
        for _, p, _ in reversed(list(self.procs)):
            self.stop(p, timeout=5.0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, log_path, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Fatal("%s exited (code %s) before listening on %d; see %s:\n%s"
                        % (what, proc.returncode, port, log_path, tail(log_path)))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise Fatal("%s not listening on %d after %.0f s; see %s" % (what, port, timeout, log_path))


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def http_get(url, timeout=5.0):
    req = urllib.request.Request(url, headers={"User-Agent": "gateway_vs_nginx.py"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def fill(template, values, dest):
    with open(os.path.join(TEMPLATES, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"^[^#\n]*?(@[A-Z_]+@)", text, re.M)
    if left:
        raise Fatal("%s: placeholders not filled: %s" % (template, ", ".join(sorted(set(left)))))
    with open(dest, "w") as f:
        f.write(text)
    return dest


def user_directive():
    # nginx started as root switches its workers to `nobody`; keep them as
    # the user running the benchmark (it owns the temp dirs).
    if os.geteuid() != 0:
        return ""
    name = pwd.getpwuid(os.geteuid()).pw_name
    return "user %s;" % name


# ------------------------------------------------------------- /proc reading

def proc_children(pid):
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def rss_kb(pid):
    """(VmRSS, VmHWM) in kB, or (None, None) if the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            text = f.read()
    except OSError:
        return None, None
    rss = re.search(r"^VmRSS:\s+(\d+)", text, re.M)
    hwm = re.search(r"^VmHWM:\s+(\d+)", text, re.M)
    return (int(rss.group(1)) if rss else None), (int(hwm.group(1)) if hwm else None)


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_cpu():
    """(busy seconds, steal seconds) over all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK, steal / CLK_TCK


class Sampler(threading.Thread):
    """Samples the summed VmRSS of `pids()` every `every` seconds."""

    def __init__(self, pids, every=0.2):
        super().__init__(daemon=True)
        self.pids, self.every = pids, every
        self.peak_kb = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            total = 0
            for pid in self.pids():
                rss, _ = rss_kb(pid)
                total += rss or 0
            self.peak_kb = max(self.peak_kb, total)
            self.samples += 1
            self._halt.wait(self.every)

    def stop(self):
        self._halt.set()
        self.join()


# -------------------------------------------------------------------- wrk

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
SIZE = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def to_ms(text):
    m = re.match(r"([0-9.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def parse_wrk(text):
    r = {}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+), ", text, re.M)
    r["requests"] = int(m.group(1)) if m else None
    r["wall_ms"] = to_ms(m.group(2)) if m else None
    r["latency"] = {}
    for pct, val in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M):
        r["latency"]["p" + pct] = to_ms(val)
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        r["latency"]["avg"], r["latency"]["stdev"], r["latency"]["max"] = (to_ms(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), (int(x) for x in m.groups()))) if m else {}
    return r


def run_wrk(args, procs, url, out_path, seconds, threads=None, connections=None):
    cmd = ["wrk", "-t%d" % (threads or args.threads), "-c%d" % (connections or args.connections),
           "-d%ds" % seconds, "--latency", url]
    with open(out_path, "w") as out:
        p = procs.start("wrk", cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            p.wait(seconds + 60)
        finally:
            procs.stop(p)
    if p.returncode != 0:
        raise Fatal("wrk failed (exit %s): %s\n%s" % (p.returncode, " ".join(cmd), tail(out_path)))
    with open(out_path) as f:
        text = f.read()
    return " ".join(cmd), parse_wrk(text)


# ---------------------------------------------------------------- targets

class Target:
    """A running server under test: its port, processes and logs."""

    def __init__(self, key, port, main_proc, pids, logs):
        self.key, self.port, self.proc = key, port, main_proc
        self.pids = pids          # callable: the pids whose RSS and CPU count
        self.logs = logs          # files worth keeping
        self.admin = None
        self.db = None
        self.cmd = None
        self.config = None


def start_nginx(procs, tmp, name, template, values, err):
    prefix = os.path.join(tmp, name)
    os.makedirs(prefix, exist_ok=True)
    values = dict(values, PREFIX=prefix, USER=user_directive())
    conf = fill(template, values, os.path.join(prefix, "nginx.conf"))
    cmd = ["nginx", "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", conf, "-g", "daemon off;"]
    with open(err, "w") as e:
        p = procs.start(name, cmd, stdout=e, stderr=subprocess.STDOUT, stop_sig=signal.SIGQUIT)
    wait_port(values["PORT"], p, name, err)
    # Workers are forked right after the listen sockets are opened.
    workers = []
    deadline = time.time() + 5
    while time.time() < deadline:
        workers = proc_children(p.pid)
        if workers:
            time.sleep(0.2)
            workers = proc_children(p.pid)
            break
        time.sleep(0.05)
    t = Target(name, values["PORT"], p, lambda: workers, [err, os.path.join(prefix, "error.log"), conf])
    t.master = p.pid
    t.workers = workers
    t.cmd = " ".join(cmd)
    t.config = conf
    return t


def start_rampart(args, procs, tmp, key, backend_port, err):
    port, admin = free_port(), free_port()
    db = os.path.join(tmp, key + ".db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    backend = "http://127.0.0.1:%d" % backend_port
    conf = None
    if key == "rampart-monitor":
        # The quick start: flags only.
        cmd = [args.rampart, "gateway", "--listen", "127.0.0.1:%d" % port, "--backend", backend,
               "--admin", "127.0.0.1:%d" % admin, "--monitor", "--database", "sqlite://" + db]
    else:
        block = key == "rampart-block"
        conf = fill("rampart.toml", {
            "DB": db, "PORT": port, "ADMIN_PORT": admin, "BACKEND_PORT": backend_port,
            "MODE": "block" if block else "monitor",
            "WHITELIST": '"127.0.0.1"' if block else "",
            "REQUEST_LOG": "true" if block else "false",
        }, os.path.join(tmp, key + ".toml"))
        cmd = [args.rampart, "gateway", "-c", conf]
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    with open(err, "w") as e:
        p = procs.start(key, cmd, stdout=e, stderr=subprocess.STDOUT, env=env)
    wait_port(port, p, key, err)
    wait_port(admin, p, key + " admin", err)
    t = Target(key, port, p, lambda: [p.pid], [err] + ([conf] if conf else []))
    t.admin, t.db, t.cmd, t.config = admin, db, " ".join(cmd), conf
    return t


def rampart_report(t):
    """What rampart says about itself after the run: /stats, a few metrics."""
    rep = {}
    try:
        _, body = http_get("http://127.0.0.1:%d/stats" % t.admin)
        rep["stats"] = json.loads(body)
    except Exception as e:  # noqa: BLE001 - report, do not fail the benchmark
        rep["stats_error"] = str(e)
    try:
        _, body = http_get("http://127.0.0.1:%d/metrics" % t.admin)
        metrics = {}
        for line in body.decode(errors="replace").splitlines():
            m = re.match(r"^(rampart_gateway_(?:requests_total|request_log_\w+_total|store_errors_total|bans_total|"
                         r"errors_total|connections_total|tracked_clients|banned_clients)(?:\{[^}]*\})?)\s+(\S+)", line)
            if m:
                metrics[m.group(1)] = float(m.group(2))
        rep["metrics"] = metrics
    except Exception as e:  # noqa: BLE001
        rep["metrics_error"] = str(e)
    return rep


def count_request_log(db):
    import sqlite3
    try:
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            n = con.execute("SELECT count(*) FROM request_log").fetchone()[0]
            blocked = con.execute("SELECT count(*) FROM request_log WHERE blocked != 0").fetchone()[0]
            decisions = con.execute("SELECT count(*) FROM decisions").fetchone()[0]
            predictions = dict(con.execute("SELECT prediction, count(*) FROM request_log GROUP BY prediction").fetchall())
        finally:
            con.close()
        return {"rows": n, "blocked_rows": blocked, "decisions": decisions, "predictions": predictions,
                "db_mb": sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s)) / 1e6}
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


def log_warnings(path, limit=10):
    """WARN/ERROR lines of a rampart or nginx log (ANSI colours removed)."""
    found = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                clean = re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip()
                if re.search(r"\b(WARN|ERROR|\[warn\]|\[error\]|\[crit\]|\[alert\]|\[emerg\]|panicked)\b", clean):
                    found.append(clean)
    except OSError:
        pass
    return found[:limit], len(found)


# ---------------------------------------------------------------- measure

def wait_quiet(args):
    """Waits (up to --wait-quiet seconds) until the machine is quiet: less
    than --quiet-below % of all cores busy over 2 s while nothing of the
    benchmark runs.  Returns (seconds waited, busy % of the last check)."""
    start = time.time()
    ncpu = os.cpu_count() or 1
    while True:
        b0, _ = system_cpu()
        t0 = time.time()
        time.sleep(2.0)
        busy = 100.0 * (system_cpu()[0] - b0) / ((time.time() - t0) * ncpu)
        waited = time.time() - start
        if busy < args.quiet_below or waited >= args.wait_quiet:
            if busy >= args.quiet_below:
                log("   machine still busy (%.0f%% of %d cores) after %.0f s: measuring anyway" % (busy, ncpu, waited))
            return waited, busy
        log("   machine busy (%.0f%% of %d cores, other work): waiting" % (busy, ncpu))
        time.sleep(3.0)


def file_tag(key, path, rnd):
    """The name of a row's raw files: rampart-monitor_root, nginx_4k.html.r2 ..."""
    return "%s_%s%s" % (key, path.strip("/").replace("/", "_") or "root", ".r%d" % rnd if rnd > 1 else "")


def measure(args, procs, target, path, out_dir, backend, rnd):
    url = "http://127.0.0.1:%d%s" % (target.port, path)
    status, body = http_get(url)
    want = b"ok\n" if path == "/" else None
    if status != 200 or (want is not None and body != want):
        raise Fatal("%s: GET %s answered %d (%d bytes): not a working setup" % (target.key, url, status, len(body)))
    tag = file_tag(target.key, path, rnd)
    waited, busy_before = wait_quiet(args)
    run_wrk(args, procs, url, os.path.join(out_dir, tag + ".warmup.txt"), args.warmup)

    direct = target is backend
    # The server's processes: rampart's one process, or nginx's master and
    # workers; the backend's worker(s) are counted apart.
    server_pids = set(target.pids()) | ({target.proc.pid} if not direct else set())
    backend_pids = set() if direct else set(backend.pids()) | {backend.proc.pid}
    sampler = Sampler(target.pids)
    cpu0 = {pid: cpu_seconds(pid) for pid in server_pids | backend_pids}
    sys0, steal0 = system_cpu()
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    sampler.start()
    try:
        cmd, r = run_wrk(args, procs, url, os.path.join(out_dir, tag + ".txt"), args.duration)
    finally:
        sampler.stop()
    wall = time.time() - t0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys1, steal1 = system_cpu()

    server_cpu = sum(cpu_seconds(p) - cpu0[p] for p in server_pids)
    backend_cpu = sum(cpu_seconds(p) - cpu0[p] for p in backend_pids)
    wrk_cpu = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)
    busy = sys1 - sys0
    other = max(0.0, busy - server_cpu - backend_cpu - wrk_cpu)
    ncpu = os.cpu_count() or 1

    time.sleep(1.0)  # a moment after the load, for the "RSS after" figure
    rss_after = sum((rss_kb(p)[0] or 0) for p in target.pids())
    hwm = sum((rss_kb(p)[1] or 0) for p in target.pids())
    total = r["requests"] or 0
    bad = r["non_2xx_3xx"] + sum(r["socket_errors"].values())
    flags = []
    if not total:
        flags.append("no request completed")
    elif r["non_2xx_3xx"] / total > BAD_SHARE:
        flags.append("non-2xx/3xx %d of %d" % (r["non_2xx_3xx"], total))
    errs = {k: v for k, v in r["socket_errors"].items() if v}
    if errs and total and sum(errs.values()) / total > BAD_SHARE:
        flags.append("socket errors %s" % errs)
    if wall and 100.0 * other / (wall * ncpu) > BUSY_FLAG:
        flags.append("disturbed: other processes used %.0f%% of the CPU" % (100.0 * other / (wall * ncpu)))
    res = {
        "target": target.key, "path": path, "url": url, "wrk": cmd, "server_command": target.cmd,
        "requests": total, "rps": r["rps"], "latency_ms": r["latency"],
        "non_2xx_3xx": r["non_2xx_3xx"], "socket_errors": r["socket_errors"], "bad_answers": bad,
        "flags": flags,
        "peak_rss_mb": sampler.peak_kb / 1024, "rss_samples": sampler.samples,
        "vm_hwm_mb": hwm / 1024, "rss_after_mb": rss_after / 1024,
        "rss_processes": "nginx workers (master excluded)" if target.key in ("direct", "nginx") else "rampart process",
        "cpu_seconds": {"server": server_cpu, "backend": None if direct else backend_cpu,
                        "wrk": wrk_cpu, "other_processes": other, "system_busy": busy,
                        "steal": steal1 - steal0, "wall": wall, "cpus": ncpu},
        "server_cpu_us_per_request": server_cpu / total * 1e6 if total else None,
        "other_cpu_percent": 100.0 * other / (wall * ncpu) if wall else None,
        "waited_for_quiet_s": waited, "busy_percent_before": busy_before,
    }
    if args.single_connection:
        # One connection, one request at a time: the latency a proxy adds
        # without queueing (under -c64 every target runs saturated, and its
        # latency mostly mirrors its throughput).
        cmd1, r1 = run_wrk(args, procs, url, os.path.join(out_dir, tag + ".c1.txt"), args.single_connection,
                           threads=1, connections=1)
        res["single_connection"] = {"wrk": cmd1, "rps": r1["rps"], "latency_ms": r1["latency"],
                                    "requests": r1["requests"], "non_2xx_3xx": r1["non_2xx_3xx"],
                                    "socket_errors": r1["socket_errors"]}
    return res


def run_row(args, procs, tmp, out_dir, key, path, backend, rnd):
    tag = file_tag(key, path, rnd)
    if key == "direct":
        return measure(args, procs, backend, path, out_dir, backend, rnd)
    if key == "nginx":
        port = free_port()
        access = ("access_log %s combined buffer=64k flush=1s;" % os.path.join(tmp, "nginx-proxy", "access.log")
                  if args.nginx_access_log == "buffered" else "access_log off;")
        t = start_nginx(procs, tmp, "nginx-proxy", "nginx-proxy.conf", {
            "PORT": port, "BACKEND_PORT": backend.port, "RATE": NGINX_RATE, "BURST": NGINX_BURST,
            "ACCESS_LOG": access}, os.path.join(out_dir, tag + ".stderr"))
        t.key = "nginx"
        try:
            res = measure(args, procs, t, path, out_dir, backend, rnd)
            res["workers"] = len(t.workers)
        finally:
            procs.stop(t.proc)
            keep(os.path.join(tmp, "nginx-proxy", "error.log"), os.path.join(out_dir, tag + ".error.log"))
            keep(t.config, os.path.join(out_dir, "nginx-proxy.conf"))
        warn, n = log_warnings(os.path.join(out_dir, tag + ".error.log"))
        res["log_warnings"], res["log_warning_count"] = warn, n
        return res
    t = start_rampart(args, procs, tmp, key, backend.port, os.path.join(out_dir, tag + ".log"))
    try:
        res = measure(args, procs, t, path, out_dir, backend, rnd)
        res["rampart"] = rampart_report(t)
    finally:
        rc = procs.stop(t.proc, timeout=20.0)
    res["exit_code"] = rc
    res["rampart"]["request_log_db"] = count_request_log(t.db)
    if t.config:
        keep(t.config, os.path.join(out_dir, key + ".toml"))
    warn, n = log_warnings(os.path.join(out_dir, tag + ".log"))
    res["log_warnings"], res["log_warning_count"] = warn, n
    if rc not in (0, None):
        res["flags"].append("exit code %s" % rc)
    return res


def keep(src, dst):
    try:
        shutil.copyfile(src, dst)
    except OSError:
        pass


# ----------------------------------------------------------------- report

def ms(x):
    if x is None:
        return "-"
    return "%.3f" % x if abs(x) < 1 else "%.2f" % x if abs(x) < 10 else "%.1f" % x


def ratio(a, b):
    return a / b if a is not None and b else None


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def aggregate(runs, paths, keys):
    """One row per (path, target): the median over rounds of req/s, p50,
    p99 and CPU per request; the largest RSS; every flag."""
    rows = []
    for path in paths:
        for key in keys:
            rs = [r for r in runs if r["path"] == path and r["target"] == key]
            if len(rs) == 1:
                row = dict(rs[0])
            else:
                row = {k: rs[0][k] for k in ("target", "path", "url", "wrk", "server_command", "rss_processes")}
                row["rps"] = median(r["rps"] for r in rs)
                row["latency_ms"] = {p: median(r["latency_ms"].get(p) for r in rs) for p in ("p50", "p75", "p90", "p99")}
                row["requests"] = sum(r["requests"] for r in rs)
                row["non_2xx_3xx"] = sum(r["non_2xx_3xx"] for r in rs)
                row["flags"] = ["round %d: %s" % (r["round"], f) for r in rs for f in r["flags"]]
                for k in ("peak_rss_mb", "rss_after_mb", "vm_hwm_mb"):
                    row[k] = max(r[k] for r in rs)
                row["server_cpu_us_per_request"] = median(r["server_cpu_us_per_request"] for r in rs)
                row["other_cpu_percent"] = sum(r["other_cpu_percent"] or 0 for r in rs) / len(rs)
            row["rounds"] = [{"round": r["round"], "rps": r["rps"], "p50_ms": r["latency_ms"].get("p50"),
                              "p99_ms": r["latency_ms"].get("p99"), "peak_rss_mb": r["peak_rss_mb"],
                              "other_cpu_percent": r["other_cpu_percent"]} for r in rs]
            rows.append(row)
    return rows


def analyse(results, paths):
    """Adds the added p99 and the ratios; returns the goal verdicts."""
    goals = []
    for path in paths:
        rows = {r["target"]: r for r in results if r["path"] == path}
        direct = rows.get("direct")
        nginx = rows.get("nginx")
        for r in rows.values():
            p99 = r["latency_ms"].get("p99")
            r["added_p99_ms"] = p99 - direct["latency_ms"]["p99"] if direct and p99 is not None and r is not direct else None
        for r in rows.values():
            if r["target"].startswith("rampart") and nginx:
                r["rps_ratio_vs_nginx"] = ratio(r["rps"], nginx["rps"])
                a, b = r.get("added_p99_ms"), nginx.get("added_p99_ms")
                r["added_p99_ratio_vs_nginx"] = a / b if a is not None and b is not None and b > 0 else None
        for key in GOAL_ROWS:
            r = rows.get(key)
            if not (r and nginx):
                continue
            a, b = r.get("added_p99_ms"), nginx.get("added_p99_ms")
            goals.append({
                "path": path, "target": key,
                "throughput": {"rampart_rps": r["rps"], "nginx_rps": nginx["rps"],
                               "ratio": r.get("rps_ratio_vs_nginx"),
                               "met": r["rps"] is not None and nginx["rps"] is not None and r["rps"] >= nginx["rps"]},
                "added_p99": {"rampart_ms": a, "nginx_ms": b, "ratio": r.get("added_p99_ratio_vs_nginx"),
                              "rampart_p99_ms": r["latency_ms"].get("p99"), "nginx_p99_ms": nginx["latency_ms"].get("p99"),
                              # Both subtract the same direct p99: this is rampart's p99 <= nginx's,
                              # whatever the sign (the saturated direct run can have the highest p99).
                              "met": a is not None and b is not None and a <= b},
                "flagged": bool(r["flags"] or nginx["flags"] or (direct or {}).get("flags")),
            })
    return goals


def nginx_added(results, row):
    n = next((x for x in results if x["path"] == row["path"] and x["target"] == "nginx"), None)
    return n.get("added_p99_ms") if n else None


def print_table(results, runs, goals, args, labels):
    head = ("path", "target", "req/s", "p50 ms", "p99 ms", "+p99 ms", "req/s ÷ nginx", "+p99 ÷ nginx",
            "peak RSS MB", "RSS after MB", "CPU µs/req", "other CPU %", "flags")
    rows = []
    for r in results:
        rr = r.get("rps_ratio_vs_nginx")
        ar = r.get("added_p99_ratio_vs_nginx")
        rows.append((r["path"], labels[r["target"]], "%.0f" % r["rps"] if r["rps"] else "-",
                     ms(r["latency_ms"].get("p50")), ms(r["latency_ms"].get("p99")),
                     ms(r.get("added_p99_ms")) if r["target"] != "direct" else "-",
                     "%.2fx" % rr if rr is not None else ("1x" if r["target"] == "nginx" else "-"),
                     "1x" if r["target"] == "nginx" else "-" if not r["target"].startswith("rampart")
                     else ("%.2fx" % ar if ar is not None else "-") if (nginx_added(results, r) or 0) >= P99_FLOOR_MS
                     else "n/a",
                     "%.1f" % r["peak_rss_mb"], "%.1f" % r["rss_after_mb"],
                     "%.0f" % r["server_cpu_us_per_request"] if r["server_cpu_us_per_request"] else "-",
                     "%.0f" % r["other_cpu_percent"] if r["other_cpu_percent"] is not None else "-",
                     "; ".join(r["flags"]) or "ok"))
    widths = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(head)]
    line = lambda x: "| " + " | ".join(c.ljust(w) for c, w in zip(x, widths)) + " |"  # noqa: E731
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for x in rows:
        print(line(x))
    print()
    print("wrk -t%d -c%d -d%ds --latency after a %d s warm-up, from 127.0.0.1 (one client)%s. "
          "+p99 = p99 minus the direct run's p99. Ratios: rampart ÷ nginx." % (
              args.threads, args.connections, args.duration, args.warmup,
              "; medians of %d interleaved rounds" % args.rounds if args.rounds > 1 else ""))
    print("n/a: nginx added less than %.1f ms at p99 (or its p99 was below the direct run's, which runs saturated at "
          "far more req/s): a ratio would mean nothing; compare the p99 columns." % P99_FLOOR_MS)
    print("peak RSS: sampled every 0.2 s during the run; nginx rows sum the workers (master excluded), "
          "rampart rows are its one process. RSS after: 1 s after wrk ended.")
    print("CPU µs/req: the server's user+system CPU time (rampart process, nginx master+workers) per request. "
          "other CPU %%: CPU used by processes outside the benchmark, as a share of all %d cores "
          "(rows above %.0f%% are flagged)." % (os.cpu_count() or 1, BUSY_FLAG))
    print()
    print("Goals (rampart's throughput >= nginx's; its added p99 <= nginx's):")
    lw = max([len(labels[g["target"]]) for g in goals] or [0])
    for g in goals:
        t, a = g["throughput"], g["added_p99"]
        print("  %-9s %-*s  throughput %s (%s)   added p99 %s (%s ms vs %s ms; p99 %s vs %s ms)%s" % (
            g["path"], lw, labels[g["target"]],
            "%.2fx" % t["ratio"] if t["ratio"] is not None else "-", "met" if t["met"] else "NOT met",
            "met" if a["met"] else "NOT met", ms(a["rampart_ms"]), ms(a["nginx_ms"]),
            ms(a.get("rampart_p99_ms")), ms(a.get("nginx_p99_ms")),
            "  [a row involved is flagged]" if g["flagged"] else ""))
    single = [r for r in results if r.get("single_connection")]
    if single:
        print()
        print("One connection (wrk -t1 -c1 -d%ds --latency): latency without queueing; + = over the direct run." % args.single_connection)
        head1 = ("path", "target", "req/s", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "+p99 ÷ nginx")
        rows1 = []
        for r in single:
            sc = r["single_connection"]
            d = next((x["single_connection"] for x in single if x["path"] == r["path"] and x["target"] == "direct"), None)
            n = next((x["single_connection"] for x in single if x["path"] == r["path"] and x["target"] == "nginx"), None)
            add = lambda c, p: c["latency_ms"].get(p) - d["latency_ms"].get(p) if d and c is not d else None  # noqa: E731
            a99, n99 = add(sc, "p99"), (add(n, "p99") if n else None)
            rows1.append((r["path"], labels[r["target"]], "%.0f" % sc["rps"] if sc["rps"] else "-",
                          ms(sc["latency_ms"].get("p50")), ms(sc["latency_ms"].get("p99")),
                          ms(add(sc, "p50")) if sc is not d else "-", ms(a99) if sc is not d else "-",
                          "1x" if r["target"] == "nginx" else
                          "%.2fx" % (a99 / n99) if r["target"].startswith("rampart") and a99 is not None and n99 and n99 > 0
                          else "-"))
        widths1 = [max(len(h), *(len(x[i]) for x in rows1)) for i, h in enumerate(head1)]
        line1 = lambda x: "| " + " | ".join(c.ljust(w) for c, w in zip(x, widths1)) + " |"  # noqa: E731
        print(line1(head1))
        print("|" + "|".join("-" * (w + 2) for w in widths1) + "|")
        for x in rows1:
            print(line1(x))
    notes = []
    for r in runs:
        ram = r.get("rampart")
        if not ram:
            continue
        st = ram.get("stats") or {}
        met = ram.get("metrics") or {}
        db = ram.get("request_log_db") or {}
        dropped = met.get("rampart_gateway_request_log_dropped_total", 0)
        written = met.get("rampart_gateway_request_log_written_total")
        bans = {re.sub(r'.*reason="([^"]*)".*', r"\1", k): int(v) for k, v in met.items()
                if k.startswith("rampart_gateway_bans_total") and v}
        notes.append("  %-9s %-15s tracked clients %s, bans %s, decisions stored %s, requests %s, refused %s; "
                     "request log: %s written, %d dropped, %s rows in the db (%.1f MB, %s); store errors %d; exit %s; "
                     "%d WARN/ERROR log lines" % (
                         r["path"] + (" r%d" % r["round"] if args.rounds > 1 else ""), r["target"],
                         st.get("tracked_clients"), json.dumps(bans, sort_keys=True) if bans else "none",
                         db.get("decisions"),
                         json.dumps((st.get("requests") or {}).get("total")),
                         json.dumps((st.get("requests") or {}).get("blocked")),
                         "%d" % written if written is not None else "?", dropped,
                         db.get("rows", db.get("error")), db.get("db_mb", 0.0),
                         ", ".join("%s %d" % kv for kv in sorted((db.get("predictions") or {}).items())) or "-",
                         met.get("rampart_gateway_store_errors_total", 0), r.get("exit_code"),
                         r.get("log_warning_count", 0)))
    if notes:
        print()
        print("rampart after each run (admin /stats and /metrics, then the SQLite file after a graceful stop):")
        for n in notes:
            print(n)
        if all(((r.get("rampart") or {}).get("stats") or {}).get("tracked_clients") == 0
               for r in runs if r.get("rampart")):
            print("  note: detection tracked no client in any run: this build's detection may not be wired in yet.")
    for r in runs:
        for w in r.get("log_warnings") or []:
            print("  %s %s: %s" % (r["path"], r["target"], w[:200]))


# ------------------------------------------------------------------- main

def build():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    if not os.path.isabs(target):
        target = os.path.join(ROOT, target)
    log("cargo build --release -p rampart")
    if subprocess.run(["cargo", "build", "--release", "-p", "rampart"], cwd=ROOT).returncode != 0:
        raise Fatal("cargo build --release -p rampart failed")
    return os.path.join(target, "release", "rampart")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=15, help="seconds of each measured wrk run (default 15)")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of the warm-up run before each (default 3)")
    ap.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    ap.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    ap.add_argument("--paths", default="/,/4k.html", help="paths measured, comma-separated (default /,/4k.html)")
    ap.add_argument("--rows", default=",".join(k for k, _ in ROWS),
                    help="targets measured (default all: %s)" % ",".join(k for k, _ in ROWS))
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every row this many times, interleaved; the table shows medians (default 1)")
    ap.add_argument("--wait-quiet", type=float, default=120.0,
                    help="before each row, wait up to this many seconds for the machine to be quiet (default 120; 0: never)")
    ap.add_argument("--quiet-below", type=float, default=10.0,
                    help="quiet means less than this %% of all cores busy over 2 s (default 10)")
    ap.add_argument("--single-connection", type=int, default=0, metavar="SECONDS",
                    help="also measure each target with one connection (wrk -t1 -c1) for this long: "
                         "latency added without queueing (default 0: off)")
    ap.add_argument("--rampart", help="rampart binary (default: build target/release/rampart)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/rampart as it is")
    ap.add_argument("--nginx-access-log", choices=("buffered", "off"), default="buffered",
                    help="nginx proxy's access log (default buffered: rampart's request log is on)")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "gateway"))
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    args = ap.parse_args()

    missing = [t for t in ("nginx", "wrk") if shutil.which(t) is None and not os.path.exists("/usr/sbin/" + t)]
    if missing:
        log("missing: %s. Install with:\n  sudo apt-get install -y %s" % (", ".join(missing), " ".join(missing)))
        return 2
    if shutil.which("nginx") is None:
        os.environ["PATH"] += os.pathsep + "/usr/sbin"
    keys = [k for k in args.rows.split(",") if k]
    known = {k for k, _ in ROWS}
    if not keys or any(k not in known for k in keys):
        ap.error("--rows: choose among %s" % ", ".join(sorted(known)))
    if "direct" not in keys:
        keys.insert(0, "direct")  # the reference for added latency
    keys = [k for k, _ in ROWS if k in keys]
    paths = [p for p in args.paths.split(",") if p]
    if any(not p.startswith("/") for p in paths):
        ap.error("--paths: each path starts with /")
    labels = {k: l for k, l in ROWS}
    if args.nginx_access_log == "off":
        labels["nginx"] = "nginx (limit_req, access_log off)"

    procs = Procs()

    def on_term(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C works even when started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    tmp = tempfile.mkdtemp(prefix="rampart-gw-bench-")
    os.makedirs(args.out, exist_ok=True)
    try:
        if any(k.startswith("rampart") for k in keys):
            if args.rampart:
                args.rampart = os.path.abspath(args.rampart)
            elif args.no_build:
                args.rampart = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                                            "release", "rampart")
            else:
                args.rampart = build()
            if not os.access(args.rampart, os.X_OK):
                raise Fatal("no rampart binary at %s" % args.rampart)

        # The backend: up for the whole run.
        root = os.path.join(tmp, "www")
        os.makedirs(root)
        with open(os.path.join(root, "4k.html"), "w") as f:
            line = "<p>rampart gateway benchmark: a static file of exactly 4096 bytes.</p>\n"
            body = (line * (4096 // len(line) + 1))[:4095] + "\n"
            f.write(body)
        backend = start_nginx(procs, tmp, "backend", "backend.conf",
                              {"PORT": free_port(), "ROOT": root}, os.path.join(args.out, "backend.stderr"))
        backend.key = "direct"
        keep(backend.config, os.path.join(args.out, "backend.conf"))
        status, body = http_get("http://127.0.0.1:%d/4k.html" % backend.port)
        if status != 200 or len(body) != 4096:
            raise Fatal("backend: /4k.html answered %d with %d bytes" % (status, len(body)))

        versions = {"nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
                    "wrk": (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines() or [""])[0]}
        if args.rampart:
            versions["rampart"] = subprocess.run([args.rampart, "--version"], capture_output=True, text=True).stdout.strip()
            versions["rampart_binary"] = args.rampart
        git = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True)
        versions["commit"] = git.stdout.strip()[:100] + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")

        runs = []
        for rnd in range(1, args.rounds + 1):
            for path in paths:
                for key in keys:
                    log("== %s%s %s" % ("round %d: " % rnd if args.rounds > 1 else "", path, labels[key]))
                    res = run_row(args, procs, tmp, args.out, key, path, backend, rnd)
                    res["round"] = rnd
                    runs.append(res)
                    log("   %.0f req/s, p50 %s ms, p99 %s ms, peak RSS %.1f MB%s" % (
                        res["rps"] or 0, ms(res["latency_ms"].get("p50")), ms(res["latency_ms"].get("p99")),
                        res["peak_rss_mb"], ("  FLAGGED: " + "; ".join(res["flags"])) if res["flags"] else ""))
        results = aggregate(runs, paths, keys)
        keep(os.path.join(tmp, "backend", "error.log"), os.path.join(args.out, "backend.error.log"))
        goals = analyse(results, paths)
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        out = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_at_end": load},
            "versions": versions,
            "wrk": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration,
                    "warmup_s": args.warmup},
            "nginx": {"limit_req_rate_per_s": NGINX_RATE, "limit_req_burst": NGINX_BURST,
                      "access_log": args.nginx_access_log, "worker_processes": "auto"},
            "labels": labels,
            "results": results,
            "runs": runs,
            "goals": goals,
        }
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
            f.write("\n")
        if args.json:
            json.dump(out, sys.stdout, indent=1, sort_keys=True)
            print()
        else:
            print_table(results, runs, goals, args, labels)
            print("%s; %s; %s; %d cores; load average at the end %s" % (
                versions.get("rampart", "rampart not run"), versions["nginx"], versions["wrk"],
                os.cpu_count() or 1, " ".join(load)))
            print("details: %s" % os.path.join(args.out, "results.json"))
        return 0
    except Fatal as e:
        log("error: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("interrupted: stopping everything started")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
