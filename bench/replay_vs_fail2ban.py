#!/usr/bin/env python3
"""rampart replay vs fail2ban-regex on the same generated logs, in the same run.

    bench/replay_vs_fail2ban.py [--lines 1000000] [--seed 42] [--out bench/out]

Builds rampart (release), generates bench/out/{auth,access}.log and truth.json
with bench/gen_logs.py (skipped when present with the same seed, size and
generator), then for each log runs, under /usr/bin/time -v:

  rampart replay --type sshd|nginx --json --no-progress --reference END LOG
  fail2ban-regex --out row LOG /etc/fail2ban/filter.d/{sshd,nginx-botsearch}.conf

and prints lines/s, the ratio, max RSS, and how many known attackers each
banned and how many benign addresses.  fail2ban-regex reports matches, not
bans: its bans are computed here with the stock jail's defaults (maxretry = 5
matches within findtime = 10 min) from the (address, time) of every match.

Results: a table on stdout and bench/out/results.json.  No thresholds on time
are checked: this measures, it does not pass or fail.
"""

import argparse
import hashlib
import ipaddress
import json
import os
import platform
import re
import subprocess
import sys
from collections import defaultdict, deque

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
F2B_FILTERS = {"auth": "/etc/fail2ban/filter.d/sshd.conf", "access": "/etc/fail2ban/filter.d/nginx-botsearch.conf"}
RAMPART_TYPE = {"auth": "sshd", "access": "nginx"}
F2B_MAXRETRY = 5
F2B_FINDTIME = 600.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def generate(args):
    gen = os.path.join(HERE, "gen_logs.py")
    stamp_path = os.path.join(args.out, "stamp.json")
    want = {"seed": args.seed, "lines": args.lines, "generator_sha256": sha256(gen)}
    have = None
    if os.path.exists(stamp_path) and all(os.path.exists(os.path.join(args.out, f)) for f in ("auth.log", "access.log", "truth.json")):
        with open(stamp_path) as f:
            have = json.load(f)
    if have == want:
        log("logs in %s are up to date (seed %d, %d lines)" % (args.out, args.seed, args.lines))
        return
    log("generating %d-line logs with seed %d into %s" % (args.lines, args.seed, args.out))
    subprocess.run([sys.executable, gen, "--seed", str(args.seed), "--lines", str(args.lines), "--out", args.out], check=True)
    with open(stamp_path, "w") as f:
        json.dump(want, f)


def build():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    if not os.path.isabs(target):
        target = os.path.join(ROOT, target)
    log("cargo build --release -p rampart")
    subprocess.run(["cargo", "build", "--release", "-p", "rampart"], cwd=ROOT, check=True)
    return os.path.join(target, "release", "rampart")


def timed(cmd, stdout_path):
    """Runs cmd under /usr/bin/time -v; returns (wall seconds, max RSS in MB, exit code)."""
    time_path = stdout_path + ".time"
    with open(stdout_path, "wb") as out, open(time_path, "wb") as err:
        rc = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=out, stderr=err).returncode
    with open(time_path, errors="replace") as f:
        text = f.read()
    wall = rss = None
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    if m:
        parts = [float(x) for x in m.group(1).split(":")]
        wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        rss = int(m.group(1)) / 1024
    if rc != 0:
        tail = "".join(text.splitlines(True)[-15:])
        log("command failed (exit %d): %s\n%s" % (rc, " ".join(cmd), tail))
    return wall, rss, rc


class Bans:
    """Banned addresses and prefixes; answers "is this address covered"."""

    def __init__(self):
        self.exact = set()
        self.prefixes = defaultdict(set)  # (version, prefixlen) -> network ints
        self.by_net = {}

    def add(self, net, info=None):
        n = ipaddress.ip_network(net, strict=False)
        if n.prefixlen == n.max_prefixlen:
            self.exact.add(str(n.network_address))
        else:
            self.prefixes[(n.version, n.prefixlen)].add(int(n.network_address))
        self.by_net.setdefault(str(n) if n.prefixlen != n.max_prefixlen else str(n.network_address), info)

    def covering(self, addr):
        """The ban that covers addr (an address string), or None."""
        if addr in self.exact:
            return addr
        a = ipaddress.ip_address(addr)
        for (version, plen), nets in self.prefixes.items():
            if version != a.version:
                continue
            mask = ((1 << plen) - 1) << (a.max_prefixlen - plen)
            if int(a) & mask in nets:
                return "%s/%d" % (ipaddress.ip_address(int(a) & mask), plen)
        return None

    def __len__(self):
        return len(self.by_net)


def score(bans, truth):
    res = {}
    for cls in ("attackers", "benign", "unscored"):
        hits = {}
        for a in truth[cls]:
            c = bans.covering(a)
            if c is not None:
                hits[a] = c
        res[cls] = hits
    listed = set(truth["attackers"]) | set(truth["benign"]) | set(truth["unscored"])
    # Bans that cover no address of the log at all (should not happen).
    covered = set(res["attackers"].values()) | set(res["benign"].values()) | set(res["unscored"].values())
    res["stray"] = sorted(n for n in bans.by_net if n not in covered and n not in listed)
    return res


def run_rampart(binary, name, path, truth, out_dir):
    out = os.path.join(out_dir, "rampart-%s.jsonl" % name)
    cmd = [binary, "replay", "--type", RAMPART_TYPE[name], "--json", "--no-progress", "--reference", truth["end"], path]
    log("$ " + " ".join(cmd))
    wall, rss, rc = timed(cmd, out)
    summary, bans, scenarios, logged = None, Bans(), defaultdict(int), 0
    with open(out) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            obj = json.loads(line)
            if "summary" in obj:
                summary = obj["summary"]
                continue
            if obj.get("action") == "ban":
                bans.add(obj["ip"], obj)
                scenarios[obj.get("scenario")] += 1
            else:
                logged += 1
    return {"tool": "rampart", "cmd": cmd, "wall": wall, "rss_mb": rss, "exit": rc, "summary": summary,
            "bans": bans, "scenarios": dict(scenarios), "logged_only": logged}


def run_fail2ban(name, path, out_dir):
    out = os.path.join(out_dir, "fail2ban-%s.rows" % name)
    cmd = ["fail2ban-regex", "--out", "row", path, F2B_FILTERS[name]]
    log("$ " + " ".join(cmd))
    wall, rss, rc = timed(cmd, out)
    row = re.compile(r"^\['([^']*)',\s*([0-9.]+),")
    per_ip = defaultdict(deque)
    bans = Bans()
    matches = 0
    with open(out, errors="replace") as f:
        for line in f:
            m = row.match(line)
            if not m:
                continue
            matches += 1
            ip, t = m.group(1), float(m.group(2))
            if ip in bans.exact:
                continue
            q = per_ip[ip]
            q.append(t)
            while q and q[0] < t - F2B_FINDTIME:
                q.popleft()
            if len(q) >= F2B_MAXRETRY:
                try:
                    bans.add(ip, {"at": t})
                except ValueError:
                    pass  # a host name (usedns), not an address
    return {"tool": "fail2ban", "cmd": cmd, "wall": wall, "rss_mb": rss, "exit": rc, "matches": matches, "bans": bans}


def fmt_rate(x):
    return "%.0f" % x if x is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--no-build", action="store_true", help="use the rampart binary already built")
    ap.add_argument("--logs", default="auth,access", help="which logs (default auth,access)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    binary = build() if not args.no_build else os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "rampart")
    generate(args)
    with open(os.path.join(args.out, "truth.json")) as f:
        truth = json.load(f)

    results = {"lines": args.lines, "seed": args.seed, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
               "fail2ban_jail": {"maxretry": F2B_MAXRETRY, "findtime_s": F2B_FINDTIME}, "logs": {}}
    rows = []
    for name in args.logs.split(","):
        path = os.path.join(args.out, name + ".log")
        tr = truth[name]
        with open(path, "rb") as f:
            n_lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        r = run_rampart(binary, name, path, tr, args.out)
        b = run_fail2ban(name, path, args.out)
        entry = {}
        rates = {}
        for run in (r, b):
            s = score(run["bans"], tr)
            rate = n_lines / run["wall"] if run["wall"] else None
            rates[run["tool"]] = rate
            e = {
                "command": " ".join(run["cmd"]), "exit": run["exit"], "lines": n_lines,
                "wall_seconds": run["wall"], "lines_per_second_wall": rate, "max_rss_mb": run["rss_mb"],
                "bans": len(run["bans"]),
                "attackers_found": len(s["attackers"]), "attackers_known": len(tr["attackers"]),
                "benign_banned": len(s["benign"]), "benign_known": len(tr["benign"]),
                "unscored_banned": len(s["unscored"]), "unscored_known": len(tr["unscored"]),
                "stray_bans": s["stray"],
                "missed": {a: tr["profiles"].get(a) for a in tr["attackers"] if a not in s["attackers"]},
                "benign_banned_detail": {},
            }
            for a, net in sorted(s["benign"].items()):
                info = run["bans"].by_net.get(net) or {}
                e["benign_banned_detail"][a] = {k: info.get(k) for k in ("ip", "scenario", "reason", "at", "first_line", "last_line") if k in info} or {"ban": net}
            if run["tool"] == "rampart":
                e["summary"] = run["summary"]
                e["self_reported_lines_per_second"] = (run["summary"] or {}).get("lines_per_second")
                e["scenarios"] = run["scenarios"]
                e["logged_only_decisions"] = run["logged_only"]
            else:
                e["matches"] = run["matches"]
                e["found_means"] = "addresses with >= %d fail2ban-regex matches within %d s (stock jail defaults)" % (F2B_MAXRETRY, F2B_FINDTIME)
            entry[run["tool"]] = e
        ratio = rates["rampart"] / rates["fail2ban"] if rates["rampart"] and rates["fail2ban"] else None
        entry["ratio_rampart_over_fail2ban"] = ratio
        results["logs"][name] = entry
        for tool in ("rampart", "fail2ban"):
            e = entry[tool]
            rows.append((name + ".log", tool + (" (" + os.path.basename(F2B_FILTERS[name]) + ")" if tool == "fail2ban" else ""),
                         str(e["lines"]), "%.2f" % e["wall_seconds"] if e["wall_seconds"] is not None else "-",
                         fmt_rate(e["lines_per_second_wall"]), ("%.1fx" % ratio if ratio else "-") if tool == "rampart" else "1x",
                         "%.0f" % e["max_rss_mb"] if e["max_rss_mb"] is not None else "-",
                         "%d / %d" % (e["attackers_found"], e["attackers_known"]),
                         "%d / %d" % (e["benign_banned"], e["benign_known"]),
                         "%d / %d" % (e["unscored_banned"], e["unscored_known"])))

    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")

    head = ("log", "tool", "lines", "seconds", "lines/s", "ratio", "max RSS MB", "attackers found", "benign banned", "unscored banned")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()
    print("seconds = wall clock under /usr/bin/time (process start to exit); lines/s = lines / seconds; "
          "ratio = rampart lines/s / fail2ban lines/s.")
    print("fail2ban 'found' = addresses with >= %d fail2ban-regex matches within %d min (stock jail maxretry/findtime), "
          "computed from its --out row output." % (F2B_MAXRETRY, F2B_FINDTIME / 60))
    for name, entry in results["logs"].items():
        r = entry["rampart"]
        print("%s.log rampart: self-reported %s lines/s, %d bans by scenario %s" % (
            name, r.get("self_reported_lines_per_second"), r["bans"], json.dumps(r.get("scenarios"), sort_keys=True)))
        for tool in ("rampart", "fail2ban"):
            e = entry[tool]
            if e["missed"]:
                print("  %s missed %d: %s" % (tool, len(e["missed"]), "; ".join(
                    "%s [%s]" % (a, p) for a, p in list(e["missed"].items())[:8]) + (" ..." if len(e["missed"]) > 8 else "")))
            if e["benign_banned_detail"]:
                print("  %s banned benign %d: %s" % (tool, len(e["benign_banned_detail"]), "; ".join(
                    "%s (%s)" % (a, d.get("scenario") or d.get("ban") or "") for a, d in list(e["benign_banned_detail"].items())[:8])))
            if e["stray_bans"]:
                print("  %s banned %d networks covering no address of the log" % (tool, len(e["stray_bans"])))
    print("details: %s" % os.path.join(args.out, "results.json"))


if __name__ == "__main__":
    main()
