#!/usr/bin/env python3
"""Client side of bench/memory.sh and bench/soak.sh: many SFTP (paramiko) or FTP (ftplib) sessions
against one server process, with that process's RSS sampled from /proc.

  memory_clients.py concurrent PROTO PID PORT --sessions 100 --size 1048576 [--key KEY]
      every session at once: log in, put SIZE random bytes, get them back, compare SHA-256.
      Prints idle RSS, peak RSS while they run, RSS once they end, and throughput.
  memory_clients.py soak PROTO PID PORT --clients 50 --minutes 30 [--key KEY]
      CLIENTS sessions for MINUTES of puts, gets, listings, renames, uploads cut mid-way and
      wrong logins; one line a minute: RSS, operations, errors and MB/s.

PROTO is sftp (key login as user `bench` with --key, else demo/demo) or ftp (demo/demo).
Threads, not processes: the clients spend most of their time waiting on sockets, and the
machine is small.
"""

import argparse
import ftplib
import hashlib
import io
import os
import random
import socket
import sys
import threading
import time

RSS_PERIOD = 0.1


TREE = False
KEY_USER = "bench"


def own_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    """The process's RSS; with --tree, summed over it and all its descendants (sshd forks one
    process per session)."""
    if not TREE:
        return own_rss_kib(pid)
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += own_rss_kib(p)
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total


class RssSampler(threading.Thread):
    """Samples a process's RSS every RSS_PERIOD seconds and keeps the peak since the last reset."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            rss = rss_kib(self.pid)
            with self.lock:
                self.peak = max(self.peak, rss)
            time.sleep(RSS_PERIOD)

    def take_peak(self):
        with self.lock:
            peak, self.peak = self.peak, rss_kib(self.pid)
        return peak


def mib(kib):
    return kib / 1024.0


# --- sessions --------------------------------------------------------------------------------


class SftpSession:
    def __init__(self, port, key, password=None, user=None, source="127.0.0.1"):
        import paramiko

        sock = socket.create_connection(("127.0.0.1", port), timeout=120, source_address=(source, 0))
        self.transport = paramiko.Transport(sock)
        self.transport.start_client(timeout=120)
        if password is not None:
            self.transport.auth_password(user or "demo", password)
        elif key is not None:
            self.transport.auth_publickey(KEY_USER, paramiko.Ed25519Key.from_private_key_file(key))
        else:
            self.transport.auth_password("demo", "demo")
        self.sftp = paramiko.SFTPClient.from_transport(self.transport)
        self.sftp.get_channel().settimeout(120)

    def put(self, name, data):
        with self.sftp.open(name, "wb") as f:
            f.set_pipelined(True)
            for i in range(0, len(data), 32768):
                f.write(data[i : i + 32768])

    def put_cut(self, name, data):
        """Writes half the data, then drops the connection with the file open."""
        f = self.sftp.open(name, "wb")
        f.set_pipelined(True)
        half = len(data) // 2
        for i in range(0, half, 32768):
            f.write(data[i : min(i + 32768, half)])
        self.transport.close()

    def get(self, name):
        with self.sftp.open(name, "rb") as f:
            f.prefetch()
            return f.read()

    def listdir(self, path="."):
        return self.sftp.listdir(path)

    def rename(self, a, b):
        self.sftp.posix_rename(a, b)

    def close(self):
        self.transport.close()


class FtpSession:
    def __init__(self, port, key=None, password="demo", user="demo", source="127.0.0.1"):
        self.ftp = ftplib.FTP()
        self.ftp.connect("127.0.0.1", port, timeout=120, source_address=(source, 0))
        self.ftp.login(user, password)

    def put(self, name, data):
        self.ftp.storbinary(f"STOR {name}", io.BytesIO(data), blocksize=65536)

    def put_cut(self, name, data):
        """Sends half the data on the data connection, then resets both connections."""
        conn = self.ftp.transfercmd(f"STOR {name}")
        conn.sendall(data[: len(data) // 2])
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()
        self.ftp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.ftp.sock.close()

    def get(self, name):
        out = io.BytesIO()
        self.ftp.retrbinary(f"RETR {name}", out.write, blocksize=65536)
        return out.getvalue()

    def listdir(self, path=""):
        return self.ftp.nlst(path) if path else self.ftp.nlst()

    def rename(self, a, b):
        self.ftp.rename(a, b)

    def close(self):
        try:
            self.ftp.quit()
        except Exception:
            self.ftp.close()


def session(proto, port, key, **kw):
    return (SftpSession if proto == "sftp" else FtpSession)(port, key, **kw)


# --- concurrent ------------------------------------------------------------------------------


def concurrent(args):
    sampler = RssSampler(args.pid)
    idle = rss_kib(args.pid)
    sampler.start()
    barrier = threading.Barrier(args.sessions)
    errors = []
    bad = []

    def one(i):
        data = os.urandom(args.size)
        digest = hashlib.sha256(data).hexdigest()
        try:
            s = session(args.proto, args.port, args.key)
            barrier.wait(timeout=600)
            s.put(f"c{i}.bin", data)
            back = s.get(f"c{i}.bin")
            if hashlib.sha256(back).hexdigest() != digest:
                bad.append(i)
            s.close()
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            errors.append(f"session {i}: {e!r}")
            try:
                barrier.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.sessions)]
    sampler.take_peak()
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    peak = sampler.take_peak()
    time.sleep(args.settle)
    after = rss_kib(args.pid)
    # Idle worker threads (tokio keeps blocking threads 10 s) and the allocator's purge need
    # a few more seconds: the RSS once they are gone too.
    time.sleep(args.late)
    late = rss_kib(args.pid)
    for e in errors[:5]:
        print(e, file=sys.stderr)
    moved = 2 * args.sessions * args.size
    print(
        f"{args.proto}: {args.sessions} sessions x {args.size >> 10} KiB up+down: "
        f"{len(errors)} errors, {len(bad)} sha256 mismatches, {elapsed:.1f} s, "
        f"{moved / elapsed / 1e6:.1f} MB/s; RSS idle {mib(idle):.0f} MiB, peak {mib(peak):.0f} MiB, "
        f"{args.settle:.0f} s after {mib(after):.0f} MiB (idle + {mib(after - idle):.0f}), "
        f"{args.settle + args.late:.0f} s after {mib(late):.0f} MiB (idle + {mib(late - idle):.0f})"
    )
    return 1 if errors or bad else 0


# --- soak ------------------------------------------------------------------------------------


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = 0
        self.errors = 0
        self.bytes = 0
        self.last_error = ""

    def add(self, ops=0, errors=0, nbytes=0, error=""):
        with self.lock:
            self.ops += ops
            self.errors += errors
            self.bytes += nbytes
            if error:
                self.last_error = error

    def take(self):
        with self.lock:
            out = (self.ops, self.errors, self.bytes, self.last_error)
            self.ops = self.errors = self.bytes = 0
            self.last_error = ""
        return out


def soak_client(args, i, deadline, counters):
    rng = random.Random(i)
    sizes = [4096, 65536, 1 << 20, 3 << 20]
    data = {n: os.urandom(n) for n in sizes}
    digests = {n: hashlib.sha256(d).digest() for n, d in data.items()}
    stored = {}
    s = None
    # Each client logs in from its own loopback address: the gateway throttles failed logins
    # per address, and one client's wrong passwords must not lock the others out.
    source = f"127.0.{args.subnet}.{i + 2}"
    last_wrong = 0.0
    while time.time() < deadline:
        time.sleep(rng.uniform(0, 2 * args.think))
        try:
            if s is None:
                s = session(args.proto, args.port, args.key, source=source)
                s.listdir()
                try:
                    s.sftp.mkdir(f"w{i}") if args.proto == "sftp" else s.ftp.mkd(f"w{i}")
                except Exception:
                    pass
            op = rng.random()
            # Only files written in the last minute are read back: soak.sh deletes big shares
            # older than three minutes (the grid never collects replaced files' shares, and a
            # 30-minute soak would write ~100 GB of them).
            recent = [name for name, (_, at) in stored.items() if time.time() - at < 60]
            if op < 0.30 or not recent:
                n = rng.choice(sizes)
                name = f"w{i}/f{rng.randrange(8)}"
                s.put(name, data[n])
                stored[name] = (n, time.time())
                counters.add(ops=1, nbytes=n)
            elif op < 0.60:
                name = rng.choice(recent)
                back = s.get(name)
                if hashlib.sha256(back).digest() != digests[stored[name][0]]:
                    raise RuntimeError(f"{name}: content differs")
                counters.add(ops=1, nbytes=len(back))
            elif op < 0.75:
                s.listdir(f"w{i}")
                counters.add(ops=1)
            elif op < 0.85:
                a = rng.choice(list(stored))
                b = f"w{i}/f{rng.randrange(8)}"
                if a != b:
                    s.rename(a, b)
                    stored[b] = stored.pop(a)
                counters.add(ops=1)
            elif op < 0.93:
                # An upload cut mid-way: the session goes away with the file half written.
                s.put_cut(f"w{i}/cut", data[1 << 20])
                s = None
                counters.add(ops=1)
            elif time.time() - last_wrong > 20:
                # A wrong login (at most 3 a minute per address: 10 would block it for a minute).
                last_wrong = time.time()
                try:
                    session(args.proto, args.port, None, password="wrong", user="demo", source=source).close()
                    raise RuntimeError("a wrong password was accepted")
                except RuntimeError:
                    raise
                except Exception:
                    pass
                counters.add(ops=1)
        except Exception as e:  # noqa: BLE001 - counted, reported and the session restarted
            counters.add(errors=1, error=f"{type(e).__name__}: {e}"[:160])
            try:
                if s is not None:
                    s.close()
            except Exception:
                pass
            s = None
            time.sleep(1)
    if s is not None:
        try:
            s.close()
        except Exception:
            pass


def soak(args):
    counters = Counters()
    deadline = time.time() + args.minutes * 60
    sampler = RssSampler(args.pid)
    sampler.start()
    threads = []
    for i in range(args.clients):
        t = threading.Thread(target=soak_client, args=(args, i, deadline, counters), daemon=True)
        t.start()
        threads.append(t)
        time.sleep(0.05)
    start = time.time()
    minute = 0
    print(f"{args.proto}: {args.clients} clients for {args.minutes} min; RSS at start {mib(rss_kib(args.pid)):.0f} MiB")
    total_errors = 0
    while minute < args.minutes:
        minute += 1
        time.sleep(max(0, start + minute * 60 - time.time()))
        ops, errors, nbytes, last = counters.take()
        total_errors += errors
        peak = sampler.take_peak()
        print(
            f"{args.proto} minute {minute:3d}: RSS {mib(rss_kib(args.pid)):6.0f} MiB (peak {mib(peak):4.0f}), "
            f"{ops:5d} ops, {errors:3d} errors, {nbytes / 60 / 1e6:6.2f} MB/s" + (f"  last error: {last}" if last else ""),
            flush=True,
        )
    for t in threads:
        t.join(timeout=180)
    time.sleep(args.settle)
    print(f"{args.proto}: after the clients left: RSS {mib(rss_kib(args.pid)):.0f} MiB; {total_errors} errors in all")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["concurrent", "soak"])
    p.add_argument("proto", choices=["sftp", "ftp"])
    p.add_argument("pid", type=int)
    p.add_argument("port", type=int)
    p.add_argument("--key")
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--size", type=int, default=1 << 20)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--late", type=float, default=12.0, help="seconds after --settle for a last RSS reading")
    p.add_argument("--think", type=float, default=0.5, help="mean pause between a client's operations (s)")
    p.add_argument("--subnet", type=int, default=1, help="soak clients log in from 127.0.SUBNET.x")
    p.add_argument("--tree", action="store_true", help="RSS of the process and its descendants")
    p.add_argument("--user", default="bench", help="SFTP key login user")
    args = p.parse_args()
    global TREE, KEY_USER
    TREE = args.tree
    KEY_USER = args.user
    sys.exit(concurrent(args) if args.mode == "concurrent" else soak(args))


if __name__ == "__main__":
    main()
