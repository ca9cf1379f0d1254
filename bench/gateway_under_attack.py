#!/usr/bin/env python3
"""rampart gateway under `rampart simulate`'s attacks, against the issue's goals.

    bench/gateway_under_attack.py [--duration 30s] [--seed 1] [--rampart PATH] [--json]

Starts a backend (a private nginx, as in gateway_vs_nginx.py; it must serve
what normal clients browse, so every path answers 200 except /missing*),
then `rampart gateway` (release build, block mode, default detection) in
front of it, then `rampart simulate --json` against the gateway, and checks:

  - every flooding client (extreme, sustained, distributed) is blocked
    within 1 s of its first request;
  - at least 99 % of a flooding client's requests after its first block
    are refused;
  - no normal client is blocked;
  - normal clients' p99 latency under attack is at most twice their p99
    in the baseline phase.

Prints simulate's table, then the goals with the measured values; raw
output goes to bench/out/attack/.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway_vs_nginx import (  # noqa: E402
    Fatal, Procs, build, fill, free_port, log, start_nginx, wait_port,
)

HERE = os.path.dirname(os.path.abspath(__file__))
FLOODS = ("extreme-flood", "sustained-flood", "distributed-flood")

BACKEND_CONF = """\
worker_processes 1;
@USER@
pid @PREFIX@/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path @PREFIX@/body;
    proxy_temp_path @PREFIX@/proxy;
    fastcgi_temp_path @PREFIX@/fastcgi;
    uwsgi_temp_path @PREFIX@/uwsgi;
    scgi_temp_path @PREFIX@/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:@PORT@;
        location /missing { return 404 "not found\\n"; }
        location / { return 200 "<html>ok</html>\\n"; }
    }
}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="30s", help="simulate --duration (default 30s)")
    ap.add_argument("--seed", default="1", help="simulate --seed (default 1)")
    ap.add_argument("--rampart", help="rampart binary (default: build target/release/rampart)")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "attack"))
    ap.add_argument("--json", action="store_true", help="print the goals as JSON")
    args = ap.parse_args()
    if subprocess.run(["sh", "-c", "command -v nginx || test -x /usr/sbin/nginx"],
                      capture_output=True).returncode != 0:
        log("missing: nginx. Install with:\n  sudo apt-get install -y nginx")
        return 2
    os.environ["PATH"] += os.pathsep + "/usr/sbin"
    rampart = os.path.abspath(args.rampart) if args.rampart else build()
    os.makedirs(args.out, exist_ok=True)
    procs = Procs()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    tmp = tempfile.mkdtemp(prefix="rampart-attack-bench-")
    try:
        template = os.path.join(tmp, "backend.conf.in")
        with open(template, "w") as f:
            f.write(BACKEND_CONF)
        backend = start_nginx(procs, tmp, "backend", template, {"PORT": free_port()},
                              os.path.join(args.out, "backend.stderr"))
        port, admin = free_port(), free_port()
        db = os.path.join(tmp, "rampart.db")
        err = os.path.join(args.out, "gateway.stderr")
        cmd = [rampart, "gateway", "--listen", "127.0.0.1:%d" % port,
               "--backend", "http://127.0.0.1:%d" % backend.port,
               "--admin", "127.0.0.1:%d" % admin, "--database", "sqlite://" + db]
        with open(err, "w") as e:
            gw = procs.start("gateway", cmd, stdout=e, stderr=subprocess.STDOUT)
        wait_port(port, gw, "gateway", err)
        sim = subprocess.run([rampart, "--log", "warn", "simulate", "--target", "http://127.0.0.1:%d" % port,
                              "--duration", args.duration, "--seed", args.seed, "--json"],
                             capture_output=True, text=True)
        with open(os.path.join(args.out, "simulate.json"), "w") as f:
            f.write(sim.stdout)
        if sim.returncode != 0:
            raise Fatal("simulate failed (%d): %s" % (sim.returncode, sim.stderr[-2000:]))
        report = json.loads(sim.stdout)
        stats = subprocess.run(["curl", "-s", "http://127.0.0.1:%d/stats" % admin], capture_output=True, text=True)
        with open(os.path.join(args.out, "stats.json"), "w") as f:
            f.write(stats.stdout)
    except (Fatal, KeyboardInterrupt) as e:
        log("error: %s" % e)
        return 1
    finally:
        procs.stop_all()

    scen = {s["name"]: s for s in report["scenarios"]}
    goals = []
    for name in FLOODS:
        s = scen[name]
        fb = s["first_block"]
        goals.append({
            "goal": "%s: every client blocked within 1 s" % name,
            "measured": "%d/%d blocked, slowest after %.3f s (median %.3f s)" % (
                fb["clients_blocked"], s["clients"], fb["max_secs"] or 0.0, fb["median_secs"] or 0.0),
            "met": fb["clients_never_blocked"] == 0 and (fb["max_secs"] or 99) <= 1.0,
        })
        after = s["after_first_block"]
        goals.append({
            "goal": "%s: ≥ 99 %% of requests refused after the first block" % name,
            "measured": "%.2f %% (%d of %d)" % (100 * after["rate"], after["blocked"], after["requests"]),
            "met": after["rate"] >= 0.99,
        })
    normal = report["normal"]
    goals.append({
        "goal": "no normal client blocked",
        "measured": "%d of %d clients, %d of %d requests" % (
            normal["false_positive_clients"], normal["clients"],
            normal["false_positive_requests"], normal["requests"]),
        "met": normal["false_positive_clients"] == 0,
    })
    goals.append({
        "goal": "normal p99 under attack ≤ 2 × baseline p99",
        "measured": "%.1f ms vs %.1f ms (× %.2f)" % (
            normal["under_attack"]["p99_ms"], normal["baseline"]["p99_ms"], normal["p99_ratio"]),
        "met": normal["p99_ratio"] <= 2.0,
    })
    if args.json:
        print(json.dumps({"goals": goals, "report": report}, indent=2))
        return 0
    print("%-22s %9s %9s %8s %10s %10s %10s" % ("scenario", "requests", "blocked", "rate",
                                                 "1st block", "max", "after 1st"))
    for s in report["scenarios"]:
        fb = s["first_block"]
        after = s["after_first_block"]
        print("%-22s %9d %9d %7.1f%% %9s %10s %9s" % (
            s["name"], s["requests"], s["blocked"], 100 * (s["block_rate"] or 0),
            "%.3fs" % fb["median_secs"] if fb["median_secs"] is not None else "-",
            "%.3fs" % fb["max_secs"] if fb["max_secs"] is not None else "-",
            "%.1f%%" % (100 * after["rate"]) if after["requests"] else "-"))
    print()
    for g in goals:
        print("[%s] %s: %s" % ("met" if g["met"] else "NOT MET", g["goal"], g["measured"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
