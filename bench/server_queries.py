#!/usr/bin/env python3
"""rampart server: request-log ingest rate, and query latency over a day of requests.

    bench/server_queries.py [--rows 10000000] [--backends sqlite,postgres] [--quick] [--no-build]

For each backend (SQLite in a temp file; PostgreSQL in a scratch database of
the cluster `.ci/postgres` starts), the script starts
`rampart server --listen 127.0.0.1:PORT --database URL` with an operator
token made by `rampart token create`, then:

  ingest   loads --rows request-log records through `POST /api/v1/logs`, in
           JSON arrays of --batch records (5000), over keep-alive HTTP/1.1
           connections.  Every body is generated before the clock starts, so
           the client's JSON encoding is not measured.  The load runs in
           three phases: a warm phase with 1 client, a warm phase with
           --clients clients, then the rest with --clients clients.  Reported:
           rows/s of each warm phase (the first 2 batches excluded), of the
           last tenth of the load, and of the whole load.  On SQLite the
           sizes of the database and its WAL are watched during the load,
           and the load stops when the disk has less than --min-free-gb left
           (a failed load is reported, not queried).
  queries  after the load, --calls sequential calls of each query (round
           robin, after --warmup calls each): `GET /api/v1/stats?hours=24`
           and filtered, paginated `GET /api/v1/requests`.  Reported: p50,
           p99, mean and max latency, client-side (request sent to body read).

The records are one day of a busy site's gateways (all within the last
--span-hours, 23 h: the server keeps 24 h): most NORMAL from tens of
thousands of clients on a few hundred paths with a daily curve, DDoS
floods from a few hundred addresses in episodes, ATTACK scans from a few
hundred scanners on known and random paths, BLOCKED requests from banned
clients; three gateways.  The same for a --seed, apart from the timestamps:
they end at the time of generation, and the daily curve follows the clock.

Goals checked: ingest >= 100,000 rows/s on SQLite (warm phases); query p99
< 100 ms.  The script only measures and reports them; it exits 0 either way.

Results: a markdown table on stdout and bench/out/server/results.json; the
servers' logs go to bench/out/server/.  Every process started here is stopped
on exit, error or Ctrl-C; scratch databases are removed unless --keep.
"""

import argparse
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")

INGEST_GOAL = 100_000  # rows/s on SQLite
P99_GOAL_MS = 100.0
BUSY_FLAG = 10.0  # flag a measurement when other processes used more than this % of all cores
WARM_SKIP = 2  # batches at the start of the first warm phase not counted in its figure
GATEWAYS = ("gw-eu-1", "gw-eu-2", "gw-us-1")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Fatal(Exception):
    pass


# ---------------------------------------------------------------- processes

class Procs:
    """Every process this script starts; stopped in reverse order on exit."""

    def __init__(self):
        self.procs = []  # (name, Popen)

    def start(self, name, cmd, stdout, stderr, env=None):
        log("$ " + " ".join(cmd))
        p = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
        self.procs.append((name, p))
        return p

    def stop(self, p, timeout=30.0):
        entry = next((e for e in self.procs if e[1] is p), None)
        if entry is None:
            return None
        name, p = entry
        self.procs.remove(entry)
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log("%s (pid %d) did not stop within %.0f s: killing it" % (name, p.pid, timeout))
                p.kill()
                p.wait(5)
            except ProcessLookupError:
                pass
        return p.returncode

    def stop_all(self):
        for _, p in reversed(list(self.procs)):
            self.stop(p, timeout=10.0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def wait_health(port, proc, log_path, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Fatal("rampart server exited (code %s) before answering; see %s:\n%s"
                        % (proc.returncode, log_path, tail(log_path)))
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise Fatal("rampart server not healthy on %d after %.0f s; see %s" % (port, timeout, log_path))


# ------------------------------------------------------------- /proc reading

def cpu_seconds(pid, children=False):
    """utime + stime of a process (all its threads), seconds; with children,
    also the CPU of the children it has waited for."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return kids


def peak_rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            m = re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M)
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None


def system_busy():
    """Busy CPU seconds over all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu():
    t = os.times()
    return t.user + t.system


class CpuMeter:
    """CPU used during a measurement: the server, the PostgreSQL cluster (if
    any), this script, and everything else on the machine."""

    def __init__(self, server_pid, pg_pid):
        self.server_pid, self.pg_pid = server_pid, pg_pid

    def pg(self):
        if not self.pg_pid:
            return 0.0
        return cpu_seconds(self.pg_pid, children=True) + sum(cpu_seconds(k) for k in children_of(self.pg_pid))

    def snap(self):
        return (time.time(), system_busy(), cpu_seconds(self.server_pid), self.pg(), own_cpu())

    @staticmethod
    def diff(a, b):
        wall = b[0] - a[0]
        server, pg, client = b[2] - a[2], b[3] - a[3], b[4] - a[4]
        other = max(0.0, (b[1] - a[1]) - server - pg - client)
        ncpu = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 3),
            "server_cpu_s": round(server, 2),
            "postgres_cpu_s": round(pg, 2),
            "client_cpu_s": round(client, 2),
            "other_cpu_s": round(other, 2),
            "other_cpu_percent": round(100.0 * other / (wall * ncpu), 1) if wall > 0 else 0.0,
        }


def wait_quiet(args, what):
    """Waits (up to --wait-quiet seconds) until no compiler runs and the
    machine is quiet (less than --quiet-below % of all cores busy over 2 s).
    Returns (seconds waited, busy % of the last check)."""
    start = time.time()
    ncpu = os.cpu_count() or 1
    while True:
        b0, t0 = system_busy(), time.time()
        time.sleep(2.0)
        busy = 100.0 * (system_busy() - b0) / ((time.time() - t0) * ncpu)
        compiling = subprocess.run(["pgrep", "-x", "rustc"], capture_output=True).returncode == 0
        waited = time.time() - start
        if (busy < args.quiet_below and not compiling) or waited >= args.wait_quiet:
            if busy >= args.quiet_below or compiling:
                log("   machine still busy before %s (%.0f%% of %d cores%s) after %.0f s: measuring anyway"
                    % (what, busy, ncpu, ", rustc running" if compiling else "", waited))
            return round(waited, 1), round(busy, 1)
        log("   machine busy before %s (%.0f%% of %d cores%s): waiting" % (
            what, busy, ncpu, ", rustc running" if compiling else ""))
        time.sleep(8.0)


# ------------------------------------------------------------ the records

def _ipv4(rnd):
    first = rnd.choice((2, 5, 23, 31, 37, 41, 45, 46, 62, 77, 78, 81, 82, 85, 86, 88, 89, 91, 93, 94, 95,
                        101, 103, 109, 112, 121, 138, 141, 146, 151, 159, 176, 178, 185, 188, 190, 193,
                        195, 200, 201, 203, 212, 213, 217))
    return "%d.%d.%d.%d" % (first, rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255))


def _ipv6(rnd):
    return "2a0%d:%x:%x:%x:%x:%x:%x:%x" % (rnd.randrange(1, 10), rnd.randrange(0x1000, 0xffff),
                                              rnd.randrange(0x10000), rnd.randrange(0x10000),
                                              rnd.randrange(0x10000), rnd.randrange(0x10000),
                                              rnd.randrange(0x10000), rnd.randrange(1, 0x10000))


def _zipf_pool(items, size, s=0.9, offset=5):
    """A list in which item i appears about in proportion to 1/(i+offset)^s:
    rnd.choice on it draws a Zipf-like distribution cheaply."""
    w = [1.0 / (i + offset) ** s for i in range(len(items))]
    scale = size / sum(w)
    pool = []
    for item, wi in zip(items, w):
        pool.extend([item] * max(1, round(wi * scale)))
    return pool


WORDS = ("red", "blue", "shoe", "jacket", "lamp", "desk", "chair", "phone", "case", "cable", "mug", "tea",
         "coffee", "book", "pen", "bag", "watch", "ring", "scarf", "hat", "sock", "boot", "sofa", "rug",
         "oak", "steel", "wool", "linen", "mini", "pro", "max", "eco", "classic", "summer", "winter")

BROWSER_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "ShopApp/4.12.0 (iOS 18.1; iPhone15,2)",
    "ShopApp/4.12.0 (Android 14; Pixel 7)",
)
FLOOD_UAS = ("python-requests/2.31.0", "Go-http-client/1.1", "curl/8.5.0", "Mozilla/5.0", "",
             "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
SCANNER_UAS = ("Mozilla/5.0 zgrab/0.x", "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
               "sqlmap/1.8.4#stable (https://sqlmap.org)", "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)",
               "gobuster/3.6", "Fuzz Faster U Fool v2.1.0", "python-requests/2.28.1", "Mozilla/5.0 (l9scan/2.0.)",
               "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.88 Safari/537.36")
SCANNER_PATHS = (
    "/.env", "/.env.bak", "/.env.production", "/.git/config", "/.git/HEAD", "/.aws/credentials", "/.DS_Store",
    "/wp-login.php", "/wp-admin/setup-config.php", "/xmlrpc.php", "/wp-content/plugins/wp-file-manager/readme.txt",
    "/phpmyadmin/index.php", "/pma/index.php", "/admin/config.php", "/administrator/index.php",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/actuator/env", "/actuator/health", "/server-status",
    "/cgi-bin/luci/;stok=/locale", "/boaform/admin/formLogin", "/HNAP1/", "/owa/auth/logon.aspx",
    "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession", "/dana-na/auth/url_default/welcome.cgi",
    "/global-protect/login.esp", "/console/login/LoginForm.jsp", "/solr/admin/info/system", "/jenkins/login",
    "/config.json", "/backup.zip", "/backup.sql", "/db.sql", "/dump.sql", "/site.tar.gz", "/info.php", "/phpinfo.php",
    "/shell.php", "/cmd.php", "/.well-known/security.txt", "/api/v1/auth/login", "/login.action", "/user/login",
    "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP",
    "/?id=1%27%20OR%20%271%27=%271", "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
    "/products?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
    "/download?file=../../../../etc/passwd", "/static/../../../../etc/shadow", "/cgi-bin/.%2e/.%2e/.%2e/bin/sh",
)
SCANNER_SUFFIXES = (".php", ".bak", ".sql", ".zip", ".old", ".tar.gz", "/.env", "/config.php", ".asp", ".jsp")
REASONS_DDOS = ("flood: rate", "flood: behaviour score", "flood: hard limit")
REASONS_ATTACK = ("sqli", "xss", "traversal", "scanner", "probe", "bad-user-agent")


class Mix:
    """The traffic: pools of clients and paths, and which floods and scans
    are on in each 10-minute window."""

    WINDOW_S = 600

    def __init__(self, seed, span_s):
        rnd = random.Random(seed)
        self.rnd = random.Random(seed + 1)
        self.span_s = span_s
        # Clients: 40,000 visitors (10% IPv6), a few with much traffic (NAT, CGNAT).
        visitors = [(_ipv6(rnd) if rnd.random() < 0.1 else _ipv4(rnd)) for _ in range(40_000)]
        self.visitor_pool = _zipf_pool(visitors, 400_000, s=0.8, offset=20)
        # Flooders: 320 addresses, many in a few hosting /24s (botnets).
        flooders = []
        for _ in range(12):
            net = _ipv4(rnd).rsplit(".", 1)[0]
            flooders += ["%s.%d" % (net, h) for h in rnd.sample(range(1, 255), rnd.randint(8, 20))]
        while len(flooders) < 320:
            flooders.append(_ipv6(rnd) if rnd.random() < 0.1 else _ipv4(rnd))
        self.flooders = flooders
        self.scanners = [(_ipv6(rnd) if rnd.random() < 0.15 else _ipv4(rnd)) for _ in range(400)]
        # Paths: the site's ~300.
        paths = ["/", "/products", "/cart", "/checkout", "/account", "/account/login", "/search",
                 "/api/v1/cart", "/api/v1/session", "/api/v1/auth/login", "/favicon.ico", "/robots.txt",
                 "/sitemap.xml", "/static/js/app.3f9c2a.js", "/static/css/site.81be04.css",
                 "/static/js/vendor.c7d2e1.js", "/static/fonts/inter.woff2"]
        for i in range(150):
            paths.append("/products/%s-%s-%d" % (rnd.choice(WORDS), rnd.choice(WORDS), 100 + i))
        for i in range(20):
            paths.append("/category/%s" % WORDS[i])
        for i in range(50):
            paths.append("/blog/%d/%s-%s" % (2020 + i % 6, rnd.choice(WORDS), rnd.choice(WORDS)))
        for i in range(45):
            paths.append("/images/%s-%d.jpg" % (rnd.choice(WORDS), i))
        for i in range(15):
            paths.append("/search?q=%s+%s" % (rnd.choice(WORDS), rnd.choice(WORDS)))
        self.site_paths = paths
        enc = {p: json.dumps(p) for p in paths}
        self.site_pool = _zipf_pool([enc[p] for p in paths], 20_000, s=1.0, offset=3)
        self.flood_paths = [enc[p] for p in ("/", "/", "/", "/search", "/api/v1/auth/login", "/products",
                                             "/api/v1/cart", "/account/login")]
        self.scanner_paths = [json.dumps(p) for p in SCANNER_PATHS]
        self.browser_uas = [json.dumps(u) for u in BROWSER_UAS]
        self.flood_uas = [json.dumps(u) if u else "null" for u in FLOOD_UAS]
        self.scanner_uas = [json.dumps(u) for u in SCANNER_UAS]
        # Windows: whether a flood is on, its addresses, the active scanners.
        self.windows = []
        for _ in range(span_s // self.WINDOW_S + 2):
            flood = rnd.random() < 0.35
            if flood:
                net = rnd.choice(flooders).rsplit(".", 1)[0]
                active = [f for f in flooders if f.startswith(net + ".")][:rnd.randint(3, 12)]
                active += rnd.sample(flooders, rnd.randint(2, 25))
            else:
                active = rnd.sample(flooders, rnd.randint(0, 2))
            scanning = rnd.sample(self.scanners, rnd.randint(8, 30))
            banned = active + scanning[: len(scanning) // 2]
            # Shares of DDoS, BLOCKED and ATTACK rows in this window.
            shares = (0.33, 0.10, 0.03) if flood else ((0.01 if active else 0.0), 0.015, 0.03)
            self.windows.append((shares, active or flooders[:1], scanning, banned))

    def batches(self, n, end, batch):
        """n records, oldest first, between end - span and end (a Unix time),
        as lists of `batch` JSON texts.  Afterwards self.flood_count holds the
        number of DDoS and BLOCKED records per address, self.counts the
        records per prediction."""
        rnd = self.rnd
        start = end - self.span_s
        minutes = self.span_s // 60
        # A daily curve: busiest at 20:00 UTC, quietest at 08:00 UTC.
        dens = [1.0 + 0.6 * math.sin(2 * math.pi * (((start + 60 * m) % 86400) / 3600.0 - 14) / 24.0)
                for m in range(minutes)]
        total = sum(dens)
        cum, acc = [], 0.0
        for d in dens:
            acc += d
            cum.append(round(n * acc / total))
        flood_count = self.flood_count = {}
        normal = ddos = blocked_n = attack = 0
        out = []
        append = out.append
        random_ = rnd.random
        choice = rnd.choice
        randint = rnd.randint
        visitor_pool, site_pool = self.visitor_pool, self.site_pool
        browser_uas, flood_uas, scanner_uas = self.browser_uas, self.flood_uas, self.scanner_uas
        flood_paths, scanner_paths = self.flood_paths, self.scanner_paths
        fmt = ('{"timestamp":"%s.%03dZ","source_ip":"%s","request_path":%s,"request_method":"%s",'
               '"user_agent":%s,"prediction":"%s","confidence_score":%.3f,"is_blocked":%d,'
               '"response_status_code":%d,"response_time_ms":%.1f,"request_size_bytes":%d,'
               '"response_size_bytes":%d,"gateway_id":"%s"%s}')
        last_sec, sec_text = None, ""
        prev = 0
        for m in range(minutes):
            count = cum[m] - prev
            prev = cum[m]
            if len(out) >= batch:
                yield out[:batch]
                del out[:batch]
            if count <= 0:
                continue
            base = start + 60 * m
            shares, active, scanning, banned = self.windows[(60 * m) // self.WINDOW_S]
            p_ddos, p_blocked, p_attack = shares
            c1, c2, c3 = p_ddos, p_ddos + p_blocked, p_ddos + p_blocked + p_attack
            step = 60.0 / count
            for j in range(count):
                t = base + j * step
                sec = int(t)
                if sec != last_sec:
                    last_sec = sec
                    sec_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
                ms = int((t - sec) * 1000)
                gw = GATEWAYS[0] if random_() < 0.45 else GATEWAYS[1] if random_() < 0.6 else GATEWAYS[2]
                r = random_()
                if r >= c3:
                    normal += 1
                    u = random_()
                    status = 200 if u < 0.82 else 304 if u < 0.88 else 404 if u < 0.93 else \
                        302 if u < 0.97 else 401 if u < 0.985 else 500 if u < 0.993 else 502
                    post = random_() < 0.07
                    append(fmt % (sec_text, ms, choice(visitor_pool), choice(site_pool), "POST" if post else "GET",
                                  choice(browser_uas), "NORMAL", random_() * 0.35, 0, status,
                                  rnd.lognormvariate(2.8, 0.9), randint(120, 4000) if post else 0,
                                  randint(300, 60000) if status == 200 else randint(0, 600), gw, ""))
                elif r < c1:
                    ddos += 1
                    ip = choice(active)
                    flood_count[ip] = flood_count.get(ip, 0) + 1
                    blocked = random_() < 0.85
                    append(fmt % (sec_text, ms, ip, choice(flood_paths), "GET" if random_() < 0.8 else "POST",
                                  choice(flood_uas), "DDoS", 0.75 + random_() * 0.25, blocked,
                                  429 if blocked else (200 if random_() < 0.7 else 503),
                                  random_() * 0.5 if blocked else rnd.lognormvariate(3.5, 0.8), 0,
                                  120 if blocked else randint(300, 30000), gw,
                                  ',"reason":"%s"' % choice(REASONS_DDOS)))
                elif r < c2:
                    blocked_n += 1
                    ip = choice(banned)
                    flood_count[ip] = flood_count.get(ip, 0) + 1
                    append(fmt % (sec_text, ms, ip, choice(flood_paths) if random_() < 0.7 else choice(scanner_paths),
                                  "GET", choice(flood_uas), "BLOCKED", 1.0, 1, 403, random_() * 0.3, 0, 120, gw,
                                  ',"reason":"banned"'))
                else:
                    attack += 1
                    if random_() < 0.5:
                        path = choice(scanner_paths)
                    else:
                        word = "".join(choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(randint(4, 10)))
                        path = json.dumps("/" + (choice(WORDS) + "/" if random_() < 0.3 else "") + word
                                          + choice(SCANNER_SUFFIXES))
                    blocked = random_() < 0.8
                    append(fmt % (sec_text, ms, choice(scanning), path, "GET" if random_() < 0.85 else "POST",
                                  choice(scanner_uas), "ATTACK", 0.6 + random_() * 0.4, blocked,
                                  403 if blocked else (404 if random_() < 0.8 else 400),
                                  random_() * 0.4 if blocked else rnd.lognormvariate(2.0, 0.7), 0,
                                  120 if blocked else randint(150, 2000), gw,
                                  ',"reason":"%s"' % choice(REASONS_ATTACK)))
        while out:
            yield out[:batch]
            del out[:batch]
        self.counts = {"NORMAL": normal, "DDoS": ddos, "BLOCKED": blocked_n, "ATTACK": attack}


def make_bodies(mix, n, batch, end):
    """The request bodies: JSON arrays of `batch` records, oldest first."""
    bodies = [(len(chunk), ("[" + ",".join(chunk) + "]").encode()) for chunk in mix.batches(n, end, batch)]
    return bodies, mix.flood_count, mix.counts


# ---------------------------------------------------------------- clients

def request(conn, method, path, token, body=None):
    headers = {"Authorization": "Bearer " + token}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def ingest(port, token, bodies, phases, note=lambda: "", halt=lambda: None):
    """Sends the bodies in order: for each phase (name, first, end, clients),
    bodies[first:end] over `clients` keep-alive connections taking the next
    body in turn.  Returns per-batch (phase, index, start, end, rows) of the
    batches stored, and the first errors (empty when all went in); the load
    stops at the first failed batch, or when `halt()` gives a reason.
    `note()` is added to progress lines."""
    timings = []
    lock = threading.Lock()
    errors = []
    conns = []
    progress = {"rows": 0, "last": time.time(), "last_rows": 0}
    total_rows = sum(n for n, _ in bodies)

    def worker(phase, conn, cursor, end):
        while not errors:
            why = halt()
            if why:
                errors.append(why)
                return
            with lock:
                i = cursor[0]
                if i >= end:
                    return
                cursor[0] += 1
            n, body = bodies[i]
            t0 = time.perf_counter()
            try:
                status, data = request(conn, "POST", "/api/v1/logs", token, body)
            except (OSError, http.client.HTTPException) as e:
                errors.append("batch %d: %s" % (i, e))
                return
            t1 = time.perf_counter()
            if status != 200:
                errors.append("batch %d: HTTP %d: %s" % (i, status, data[:300]))
                return
            res = json.loads(data)
            if res.get("accepted") != n or res.get("rejected"):
                errors.append("batch %d: accepted %s of %d, rejected %s: %s"
                              % (i, res.get("accepted"), n, res.get("rejected"), json.dumps(res.get("errors"))[:300]))
                return
            with lock:
                timings.append((phase, i, t0, t1, n))
                progress["rows"] += n
                now = time.time()
                if now - progress["last"] >= 15:
                    rate = (progress["rows"] - progress["last_rows"]) / (now - progress["last"])
                    log("   %d / %d rows, %.0f rows/s over the last %.0f s%s" % (
                        progress["rows"], total_rows, rate, now - progress["last"], note()))
                    progress["last"], progress["last_rows"] = now, progress["rows"]

    for name, first, end, clients in phases:
        while len(conns) < clients:
            conns.append(http.client.HTTPConnection("127.0.0.1", port, timeout=600))
        cursor = [first]
        threads = [threading.Thread(target=worker, args=(name, conns[k], cursor, end), daemon=True)
                   for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            break
    for c in conns:
        c.close()
    timings.sort(key=lambda x: x[1])
    return timings, errors[:3]


class FileWatch(threading.Thread):
    """Samples the sizes of the SQLite files and the free disk space every
    0.5 s: the WAL's peak, the smallest free space."""

    def __init__(self, db, min_free_gb):
        super().__init__(daemon=True)
        self.db = db
        self.min_free_gb = min_free_gb
        self.peak_wal = 0
        self.wal = 0
        self.main = 0
        self.min_free = None
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                self.wal = os.path.getsize(self.db + "-wal") if os.path.exists(self.db + "-wal") else 0
                self.main = os.path.getsize(self.db)
                st = os.statvfs(os.path.dirname(self.db))
                free = st.f_bavail * st.f_frsize
                self.min_free = free if self.min_free is None else min(self.min_free, free)
            except OSError:
                pass
            self.peak_wal = max(self.peak_wal, self.wal)
            self._halt.wait(0.5)

    def halt(self):
        if self.min_free is not None and self.min_free < self.min_free_gb * 1e9:
            return "stopped by the benchmark: less than %.1f GB free on the database's disk (WAL %.2f GB)" % (
                self.min_free_gb, self.wal / 1e9)
        return None

    def note(self):
        return "; database %.2f GB, WAL %.2f GB, disk free %.1f GB" % (
            self.main / 1e9, self.wal / 1e9, (self.min_free or 0) / 1e9)

    def stop(self):
        self._halt.set()
        self.join()


def pct(sorted_values, p):
    """The p-th percentile (nearest rank) of sorted values."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def rate_of(timings):
    """rows/s of a run of batches: rows over the time from the first send
    to the last answer, and the POST latencies."""
    if not timings:
        return None
    rows = sum(t[4] for t in timings)
    wall = max(t[3] for t in timings) - min(t[2] for t in timings)
    lat = sorted((t[3] - t[2]) * 1000 for t in timings)
    return {"rows": rows, "batches": len(timings), "seconds": round(wall, 3),
            "rows_per_s": round(rows / wall) if wall > 0 else None,
            "post_ms": {"p50": round(pct(lat, 50), 1), "p99": round(pct(lat, 99), 1), "max": round(lat[-1], 1)}}


def run_queries(port, token, queries, calls, warmup, budget_s):
    """Sequential calls, round robin over the queries, after `warmup` calls of
    each.  A query that has used its budget of seconds stops early (after
    at least 20 calls)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    first = {}
    for key, path in queries:
        for _ in range(warmup):
            status, data = request(conn, "GET", path, token)
            if status != 200:
                raise Fatal("GET %s answered %d: %s" % (path, status, data[:300]))
            first[key] = data
    lat = {k: [] for k, _ in queries}
    spent = {k: 0.0 for k, _ in queries}
    for _ in range(calls):
        for key, path in queries:
            if spent[key] > budget_s and len(lat[key]) >= 20:
                continue
            t0 = time.perf_counter()
            status, data = request(conn, "GET", path, token)
            dt = time.perf_counter() - t0
            if status != 200:
                raise Fatal("GET %s answered %d: %s" % (path, status, data[:300]))
            lat[key].append(dt * 1000)
            spent[key] += dt
    conn.close()
    out = {}
    for key, path in queries:
        v = sorted(lat[key])
        body = json.loads(first[key])
        info = {}
        if "total" in body:
            info = {"total": body["total"], "returned": len(body.get("requests", []))}
        elif "total_requests" in body:
            info = {"total_requests": body["total_requests"], "by_hour": len(body.get("by_hour", [])),
                    "top_attacking_ips": len(body.get("top_attacking_ips", []))}
        out[key] = {"path": path, "calls": len(v), "p50_ms": round(pct(v, 50), 2), "p99_ms": round(pct(v, 99), 2),
                    "mean_ms": round(sum(v) / len(v), 2), "max_ms": round(v[-1], 2),
                    "answer": info, "budget_hit": len(v) < calls}
    return out, first


# ---------------------------------------------------------------- backends

def sqlite_size(path):
    return sum(os.path.getsize(path + s) for s in ("", "-wal", "-shm") if os.path.exists(path + s))


def psql(url, sql):
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Fatal("psql %s: %s" % (sql, r.stderr.strip()))
    return r.stdout.strip()


class Postgres:
    """The cluster `.ci/postgres` runs, and a scratch database in it."""

    def __init__(self, args):
        self.admin_url = None
        self.url = None
        self.name = None
        self.postmaster = None
        self.version = None
        self.settings = {}
        self.keep = args.keep

    def start(self):
        if shutil.which("psql") is None:
            return "psql not found (Debian package postgresql-client)"
        script = os.path.join(ROOT, ".ci", "postgres")
        r = subprocess.run([script], capture_output=True, text=True)
        if r.returncode != 0 or not r.stdout.strip():
            return "%s failed (exit %d): %s" % (script, r.returncode, (r.stderr or r.stdout).strip()[-500:])
        self.admin_url = r.stdout.strip().splitlines()[-1]
        try:
            self.version = psql(self.admin_url, "SHOW server_version")
            for s in ("shared_buffers", "fsync", "synchronous_commit", "work_mem", "max_wal_size"):
                self.settings[s] = psql(self.admin_url, "SHOW %s" % s)
            pid_file = os.path.join(psql(self.admin_url, "SHOW data_directory"), "postmaster.pid")
            with open(pid_file) as f:
                self.postmaster = int(f.readline())
        except (Fatal, OSError, ValueError) as e:
            return "PostgreSQL at %s not usable: %s" % (self.admin_url, e)
        return None

    def create(self):
        self.name = "rampart_bench_%d_%d" % (os.getpid(), int(time.time()))
        psql(self.admin_url, "CREATE DATABASE %s" % self.name)
        u = urllib.parse.urlsplit(self.admin_url)
        self.url = urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + self.name, u.query, u.fragment))
        return self.url

    def size(self):
        return int(psql(self.url, "SELECT pg_database_size(current_database())"))

    def drop(self):
        if self.name and not self.keep:
            try:
                psql(self.admin_url, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)
            except Fatal as e:
                log("warning: %s" % e)
            self.name = None


def run_backend(args, procs, tmp, backend, pg, mix):
    out = {"backend": backend}
    if backend == "sqlite":
        db = os.path.join(tmp, "server.db")
        url = "sqlite://" + db
        out["database"] = url
    else:
        url = pg.create()
        out["database"] = url
        out["postgres"] = {"version": pg.version, "settings": pg.settings}

    # Token first (this also creates the schema), then the server.
    r = subprocess.run([args.rampart, "token", "create", "bench-ingest", "--role", "operator", "--database", url],
                       capture_output=True, text=True)
    token = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else None
    if not token:
        raise Fatal("rampart token create failed (exit %d): %s" % (r.returncode, r.stderr.strip()))
    port = free_port()
    err = os.path.join(args.out, "%s.stderr" % backend)
    cmd = [args.rampart, "server", "--listen", "127.0.0.1:%d" % port, "--database", url]
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    with open(err, "w") as e:
        server = procs.start("rampart server", cmd, stdout=e, stderr=subprocess.STDOUT, env=env)
    wait_health(port, server, err)
    out["server_command"] = " ".join(cmd)

    # The bodies, before the clock starts.
    log("   generating %d records in batches of %d ..." % (args.rows, args.batch))
    t0 = time.time()
    bodies, flood_count, counts = make_bodies(mix, args.rows, args.batch, int(time.time()))
    out["generated"] = {"seconds": round(time.time() - t0, 1), "rows": sum(n for n, _ in bodies),
                        "batches": len(bodies), "bytes": sum(len(b) for _, b in bodies),
                        "predictions": counts, "addresses_flooding_or_banned": len(flood_count)}
    log("   generated %d batches, %.0f MB, in %.0f s" % (len(bodies), out["generated"]["bytes"] / 1e6,
                                                      out["generated"]["seconds"]))

    warm = max(WARM_SKIP + 1, min(args.warm_rows // args.batch, len(bodies) // 10))
    clients = "%d client%s" % (args.clients, "" if args.clients == 1 else "s")
    phases = [("warm, 1 client", 0, min(warm, len(bodies)), 1)]
    if warm < len(bodies):
        phases.append(("warm, %s%s" % (clients, " (again)" if args.clients == 1 else ""),
                       warm, min(2 * warm, len(bodies)), args.clients))
    if 2 * warm < len(bodies):
        phases.append(("rest, %s" % clients, 2 * warm, len(bodies), args.clients))

    waited, busy = wait_quiet(args, "the load")
    meter = CpuMeter(server.pid, pg.postmaster if backend == "postgres" else None)
    a = meter.snap()
    watch = FileWatch(db, args.min_free_gb) if backend == "sqlite" else None
    if watch:
        watch.start()
    log("   loading ...")
    timings, errors = ingest(port, token, bodies, phases, watch.note if watch else lambda: "",
                             watch.halt if watch else lambda: None)
    b = meter.snap()
    if watch:
        watch.stop()
    cpu = meter.diff(a, b)
    rows = sum(t[4] for t in timings)
    if errors:
        log("   ingest failed after %d rows: %s" % (rows, "; ".join(errors)))
        if watch:
            log("   " + watch.note()[2:])
        if rows == 0:
            raise Fatal("ingest failed at the first batch: %s" % "; ".join(errors))
    ing = {"waited_for_quiet_s": waited, "busy_percent_before": busy, "cpu": cpu, "errors": errors,
           "rows_stored": rows,
           "server_cpu_us_per_row": round(1e6 * cpu["server_cpu_s"] / rows, 2),
           "postgres_cpu_us_per_row": round(1e6 * cpu["postgres_cpu_s"] / rows, 2),
           "flagged": cpu["other_cpu_percent"] > BUSY_FLAG, "phases": []}
    for name, first, end, clients in phases:
        sel = [t for t in timings if t[0] == name]
        if name.startswith("warm, 1"):
            sel = sel[WARM_SKIP:] if len(sel) > WARM_SKIP else sel
        r = rate_of(sel)
        if r is None:
            continue
        r.update(name=name, clients=clients, first_row=sum(n for n, _ in bodies[:first]))
        ing["phases"].append(r)
    tenth = max(1, len(timings) // 10)
    ing["last_tenth"] = rate_of(timings[-tenth:])
    ing["deciles_rows_per_s"] = [rate_of(timings[k * tenth:(k + 1) * tenth])["rows_per_s"]
                                 for k in range(min(10, len(timings) // tenth))]
    ing["whole"] = rate_of(timings)
    if watch:
        ing["sqlite_peak_wal_bytes"] = watch.peak_wal
        ing["min_disk_free_bytes"] = watch.min_free
    out["ingest"] = ing
    log("   loaded %d rows: %s rows/s over the whole load" % (rows, ing["whole"]["rows_per_s"]))
    del bodies

    out["size_bytes"] = sqlite_size(db) if backend == "sqlite" else pg.size()
    if errors:
        # A failed load (a full disk, say) is reported as it is; its database
        # is not queried, and is removed at once so the disk is free again.
        out["failed"] = "ingest stopped after %d of %d rows: %s" % (rows, args.rows, errors[0][:300])
        out["server_exit"] = procs.stop(server)
        if backend == "sqlite":
            for s in ("", "-wal", "-shm"):
                if os.path.exists(db + s):
                    os.remove(db + s)
        else:
            pg.drop()
        return out
    if backend == "sqlite":
        out["sqlite_files_bytes"] = {s or "db": os.path.getsize(db + s) for s in ("", "-wal", "-shm")
                                     if os.path.exists(db + s)}

    # The queries.
    top = max(flood_count.items(), key=lambda kv: kv[1])
    out["flood_ip"] = {"ip": top[0], "records": top[1]}
    queries = [
        ("stats", "/api/v1/stats?hours=24"),
        ("requests", "/api/v1/requests?hours=24&limit=100"),
        ("ddos_p3", "/api/v1/requests?hours=24&prediction=DDoS&page=3&limit=100"),
        ("blocked_p10", "/api/v1/requests?hours=24&is_blocked=1&page=10&limit=100"),
        ("source_ip", "/api/v1/requests?hours=24&source_ip=%s&limit=100" % urllib.parse.quote(top[0])),
    ]
    waited, busy = wait_quiet(args, "the queries")
    a = meter.snap()
    log("   queries: %d calls each after %d warm-up calls ..." % (args.calls, args.warmup))
    qres, first = run_queries(port, token, queries, args.calls, args.warmup, args.query_budget)
    cpu = meter.diff(a, meter.snap())
    out["queries"] = {"waited_for_quiet_s": waited, "busy_percent_before": busy, "cpu": cpu,
                      "flagged": cpu["other_cpu_percent"] > BUSY_FLAG, "results": qres}
    stats = json.loads(first["stats"])
    out["stats_total_requests"] = stats.get("total_requests")
    if stats.get("total_requests") != rows:
        log("   note: /stats counts %s requests in 24 h, %d were loaded" % (stats.get("total_requests"), rows))
    out["server_peak_rss_mb"] = peak_rss_mb(server.pid)
    code = procs.stop(server)
    out["server_exit"] = code
    plain = re.sub(r"\x1b\[[0-9;]*m", "", tail(err, 2000)).splitlines()
    out["server_log_warnings"] = [l.strip() for l in plain if re.search(r"\b(WARN|ERROR)\b", l)][:10]
    if backend == "sqlite" and not args.keep:
        for s in ("", "-wal", "-shm"):
            if os.path.exists(db + s):
                os.remove(db + s)
    elif backend == "sqlite":
        kept = os.path.join(args.out, "server.db")
        for s in ("", "-wal", "-shm"):
            if os.path.exists(kept + s):
                os.remove(kept + s)
            if os.path.exists(db + s):
                shutil.move(db + s, kept + s)
        out["database"] = "sqlite://" + kept
        log("   kept %s" % kept)
    else:
        if args.keep:
            log("   kept %s" % url)
        pg.drop()
    return out


# ------------------------------------------------------------------ output

def print_tables(results, args):
    print("## Ingest (`POST /api/v1/logs`, %d records a batch)" % args.batch)
    print()
    print("| backend | phase | rows | seconds | rows/s | POST p50 ms | POST p99 ms | server CPU µs/row | other CPU % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ing = r["ingest"]
        extra = lambda: ("%.1f" % ing["server_cpu_us_per_row"] +  # noqa: E731
                         (" (+ postgres %.1f)" % ing["postgres_cpu_us_per_row"] if r["backend"] == "postgres" else ""),
                         "%.0f%s" % (ing["cpu"]["other_cpu_percent"], " FLAGGED" if ing["flagged"] else ""))
        for ph in ing["phases"] + [dict(ing["last_tenth"], name="last tenth of the load"),
                                   dict(ing["whole"], name="**whole load**")]:
            last = ph["name"] == "**whole load**"
            e = extra() if last else ("", "")
            print("| %s | %s | %d | %.1f | %s | %.0f | %.0f | %s | %s |" % (
                r["backend"], ph["name"], ph["rows"], ph["seconds"],
                ("**%d**" if last else "%d") % ph["rows_per_s"], ph["post_ms"]["p50"], ph["post_ms"]["p99"], *e))
    print()
    for r in results:
        print("%s: rows/s in each tenth of the load, in order: %s" % (
            r["backend"], ", ".join("%d" % x for x in r["ingest"]["deciles_rows_per_s"])))
    print()
    print("## Queries (%d sequential calls each, after %d warm-up calls)" % (args.calls, args.warmup))
    print()
    print("| backend | query | calls | p50 ms | p99 ms | mean ms | max ms | answer |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        if r.get("failed"):
            print("| %s | not measured: %s | | | | | | |" % (r["backend"], r["failed"][:150]))
            continue
        for key, q in r["queries"]["results"].items():
            a = q["answer"]
            ans = ("total %d" % a["total"]) if "total" in a else ("%d requests, %d hours" % (
                a.get("total_requests", 0), a.get("by_hour", 0)))
            print("| %s | `%s` | %d%s | %.1f | **%.1f** | %.1f | %.1f | %s |" % (
                r["backend"], q["path"].replace("/api/v1", ""), q["calls"], " (budget)" if q["budget_hit"] else "",
                q["p50_ms"], q["p99_ms"], q["mean_ms"], q["max_ms"], ans))
    print()
    for r in results:
        g = r["generated"]
        if r.get("failed"):
            print("%s: FAILED: %s; %.2f GB of database when it stopped%s" % (
                r["backend"], r["failed"], r["size_bytes"] / 1e9,
                " (peak WAL %.2f GB, least free disk %.1f GB)" % (
                    r["ingest"]["sqlite_peak_wal_bytes"] / 1e9, (r["ingest"]["min_disk_free_bytes"] or 0) / 1e9)
                if "sqlite_peak_wal_bytes" in r["ingest"] else ""))
            continue
        files = r.get("sqlite_files_bytes")
        print("%s: %d rows (%s), %.2f GB of database after the load%s; server peak RSS %s MB; "
              "flood address queried %s (%d records)%s" % (
                  r["backend"], g["rows"], ", ".join("%s %d" % kv for kv in sorted(g["predictions"].items())),
                  r["size_bytes"] / 1e9,
                  " (WAL %.2f GB, peak %.2f GB)" % (files.get("-wal", 0) / 1e9, r["ingest"]["sqlite_peak_wal_bytes"] / 1e9)
                  if files else "",
                  "%.0f" % r["server_peak_rss_mb"] if r["server_peak_rss_mb"] else "?",
                  r["flood_ip"]["ip"], r["flood_ip"]["records"],
                  "; queries FLAGGED (other CPU %.0f%%)" % r["queries"]["cpu"]["other_cpu_percent"]
                  if r["queries"]["flagged"] else ""))
        for w in r.get("server_log_warnings") or []:
            print("  %s server log: %s" % (r["backend"], w[:200]))
    print()
    print("Goals:")
    for r in results:
        if r["backend"] == "sqlite":
            warm = max(p["rows_per_s"] for p in r["ingest"]["phases"] if p["name"].startswith("warm"))
            print("  sqlite    ingest >= %d rows/s: %s (warm %d, whole load %d rows/s)" % (
                INGEST_GOAL, "met" if warm >= INGEST_GOAL else "NOT met", warm, r["ingest"]["whole"]["rows_per_s"]))
        if r.get("failed"):
            print("  %-9s query p99 < %.0f ms: not measured (the load failed)" % (r["backend"], P99_GOAL_MS))
            continue
        slow = [(k, q["p99_ms"]) for k, q in r["queries"]["results"].items() if q["p99_ms"] >= P99_GOAL_MS]
        print("  %-9s query p99 < %.0f ms: %s" % (r["backend"], P99_GOAL_MS, "met" if not slow else "NOT met: " + ", ".join(
            "%s %.0f ms" % kv for kv in slow)))


# ------------------------------------------------------------------- main

def build():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    if not os.path.isabs(target):
        target = os.path.join(ROOT, target)
    log("cargo build --release -p rampart")
    if subprocess.run(["cargo", "build", "--release", "-p", "rampart"], cwd=ROOT).returncode != 0:
        raise Fatal("cargo build --release -p rampart failed")
    return os.path.join(target, "release", "rampart")


def machine():
    model = None
    mem = None
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            model = m.group(1).strip() if m else None
        with open("/proc/meminfo") as f:
            m = re.search(r"^MemTotal:\s+(\d+)", f.read(), re.M)
            mem = round(int(m.group(1)) / 1024 / 1024, 1) if m else None
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gb": mem, "platform": platform.platform(),
            "python": platform.python_version()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="records loaded per backend (default 10,000,000)")
    ap.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both (default both)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 300,000 rows, 100 calls per query (unless --rows/--calls are given)")
    ap.add_argument("--batch", type=int, default=5000, help="records per POST (default 5000)")
    ap.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients after the first warm phase (default 2)")
    ap.add_argument("--warm-rows", type=int, default=500_000,
                    help="rows in each warm phase (default 500,000; at most a tenth of --rows)")
    ap.add_argument("--span-hours", type=float, default=23.0,
                    help="the records span this many hours up to the time of generation (default 23; "
                         "the server keeps 24 h)")
    ap.add_argument("--calls", type=int, help="measured calls per query (default 300)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up calls per query (default 5)")
    ap.add_argument("--query-budget", type=float, default=180.0,
                    help="stop calling a query after this many seconds of its calls (default 180)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--wait-quiet", type=float, default=1200.0,
                    help="before the load and the queries, wait up to this many seconds for no rustc and a "
                         "quiet machine (default 1200; 0: never)")
    ap.add_argument("--quiet-below", type=float, default=15.0,
                    help="quiet means less than this %% of all cores busy over 2 s (default 15)")
    ap.add_argument("--min-free-gb", type=float, default=3.0,
                    help="stop a SQLite load when the disk has less than this many GB free (default 3)")
    ap.add_argument("--require-postgres", action="store_true", help="fail when PostgreSQL cannot be started")
    ap.add_argument("--keep", action="store_true",
                    help="keep the databases (SQLite file to the --out directory, PostgreSQL scratch database)")
    ap.add_argument("--rampart", help="rampart binary (default: build target/release/rampart)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/rampart as it is")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "server"))
    args = ap.parse_args()
    argv = " ".join(["bench/server_queries.py"] + sys.argv[1:])
    if args.quick:
        if "--rows" not in sys.argv:
            args.rows = 300_000
    if args.calls is None:
        args.calls = 100 if args.quick else 300
    backends = [b for b in args.backends.split(",") if b]
    if not backends or any(b not in ("sqlite", "postgres") for b in backends):
        ap.error("--backends: sqlite, postgres or both")
    if args.rows < args.batch or args.batch < 1 or args.batch > 50_000:
        ap.error("--rows must be at least --batch, and --batch within 1..50000")

    procs = Procs()

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    tmp = tempfile.mkdtemp(prefix="rampart-server-bench-")
    os.makedirs(args.out, exist_ok=True)
    pg = Postgres(args)
    try:
        if args.rampart:
            args.rampart = os.path.abspath(args.rampart)
        elif args.no_build:
            target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
            args.rampart = os.path.join(target if os.path.isabs(target) else os.path.join(ROOT, target),
                                        "release", "rampart")
        else:
            args.rampart = build()
        if not os.access(args.rampart, os.X_OK):
            raise Fatal("no rampart binary at %s" % args.rampart)
        skipped = {}
        if "postgres" in backends:
            why = pg.start()
            if why:
                if args.require_postgres:
                    raise Fatal("PostgreSQL unavailable: %s" % why)
                log("skipping PostgreSQL: %s" % why)
                skipped["postgres"] = why
                backends.remove("postgres")
        versions = {"rampart": subprocess.run([args.rampart, "--version"], capture_output=True, text=True).stdout.strip(),
                    "rampart_binary": args.rampart}
        git = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True)
        versions["commit"] = git.stdout.strip()[:100] + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")
        if pg.version:
            versions["postgres"] = pg.version

        mix = Mix(args.seed, int(args.span_hours * 3600))
        results = []
        for backend in backends:
            log("== %s" % backend)
            # The same draws for every backend; the daily curve follows the clock,
            # so the records differ a little when the backends' runs are hours apart.
            mix.rnd.seed(args.seed + 1)
            results.append(run_backend(args, procs, tmp, backend, pg, mix))
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        out = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": argv,
            "machine": dict(machine(), loadavg_at_end=load),
            "versions": versions,
            "parameters": {"rows": args.rows, "batch": args.batch, "clients": args.clients,
                           "warm_rows": args.warm_rows, "span_hours": args.span_hours, "calls": args.calls,
                           "warmup": args.warmup, "seed": args.seed},
            "goals": {"ingest_rows_per_s_sqlite": INGEST_GOAL, "query_p99_ms": P99_GOAL_MS},
            "skipped": skipped,
            "results": results,
        }
        path = os.path.join(args.out, "results.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
            f.write("\n")
        print_tables(results, args)
        m = out["machine"]
        print()
        print("%s (%s); %d cores (%s), %s GB; %s%s" % (
            versions["rampart"], versions["commit"], m["cpus"], m["cpu_model"], m["memory_gb"],
            "PostgreSQL %s; " % pg.version if pg.version else "", "load average at the end " + " ".join(load)))
        for b, why in skipped.items():
            print("%s skipped: %s" % (b, why))
        print("command: %s" % argv)
        print("details: %s" % path)
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
        pg.drop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
