#!/usr/bin/env python3
"""A TCP proxy that makes a loopback server look like one across a WAN (for benches/remote.sh).

usage: wanproxy.py --listen PORT --target PORT [--rtt-ms MS] [--mbit MBIT] [--http]
                   [--control PORT] [--stats-file FILE]

Listens on 127.0.0.1:LISTEN and forwards every connection to 127.0.0.1:TARGET (this
machine's kernel has no `tc netem`, so latency and bandwidth are added here):

- Latency: every chunk read from one side is written to the other RTT/2 after it arrived,
  so a request and its response cost one round trip. A chunk's delivery time is its arrival
  time plus the delay (not a sleep per chunk in turn), so a stream is not limited to one
  chunk per round trip. A new connection costs the round trip of TCP's handshake: the
  server sees it 1.5 RTT after the client connected, and the client's first bytes arrive
  there no earlier than a real handshake would let them.
- Bandwidth: each direction is one link of MBIT Mbit/s (0: unlimited) shared by all
  connections: a chunk occupies the link for len/rate after the link is free (first come,
  first served), then travels RTT/2. A connection holds at most twice the bandwidth-delay
  product (at least 1 MiB) in flight per direction; past that the proxy stops reading from
  it, and TCP pushes back on the sender.
- Byte order within a connection is kept; half-closes are passed on.

Counters, per direction ("up": client to server, "down": server to client): bytes moved and
connections opened; with --http, also the HTTP requests the clients sent (request lines
found by following each request's headers, Content-Length and chunked bodies, so
keep-alive and pipelined requests are counted once each), by method (a GET whose query
lists a bucket counts as LIST).

Reading the counters:
- a control connection to 127.0.0.1:CONTROL sends one line: `stats` (the counters as one
  JSON line), `take` (the same, then the counters are reset) or `reset` (answers `ok`);
- SIGUSR1 writes the counters as JSON to --stats-file; SIGUSR2 resets them.

Only the standard library; Python 3.8 or newer.
"""
import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time

CHUNK = 256 * 1024
REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]$")


class Counters:
    """What went through the proxy since the last reset."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.since = time.time()
        self.up_bytes = 0
        self.down_bytes = 0
        self.connections = 0
        self.requests = 0
        self.methods = {}

    def snapshot(self):
        return {
            "since": round(self.since, 3),
            "seconds": round(time.time() - self.since, 3),
            "up_bytes": self.up_bytes,
            "down_bytes": self.down_bytes,
            "connections": self.connections,
            "requests": self.requests,
            "methods": dict(sorted(self.methods.items())),
        }

    def request(self, method):
        self.requests += 1
        self.methods[method] = self.methods.get(method, 0) + 1


class Link:
    """One direction of the emulated line, shared by every connection: first come, first
    served at `rate` bytes per second (None: unlimited)."""

    def __init__(self, mbit):
        self.rate = mbit * 1e6 / 8 if mbit > 0 else None
        self.free_at = 0.0

    def send(self, now, n):
        """The time the last of `n` bytes handed over at `now` has left."""
        if self.rate is None:
            return now
        start = max(now, self.free_at)
        self.free_at = start + n / self.rate
        return self.free_at


class HttpRequests:
    """Follows the client's side of one HTTP/1.x connection and counts each request once."""

    def __init__(self, counters):
        self.counters = counters
        self.state = "head"
        self.buf = bytearray()
        self.remaining = 0

    def feed(self, data):
        data = bytes(data)
        while data:
            if self.state == "body":
                take = min(self.remaining, len(data))
                self.remaining -= take
                data = data[take:]
                if self.remaining == 0:
                    self.state = "head"
            elif self.state == "chunk-data":
                take = min(self.remaining, len(data))
                self.remaining -= take
                data = data[take:]
                if self.remaining == 0:
                    self.state = "chunk-size"
            elif self.state == "lost":
                return  # something this parser does not follow: count no more requests here
            else:
                self.buf += data
                data = b""
                data = self._line_states()

    def _line_states(self):
        """Consumes what `buf` holds in a line-based state; returns the bytes left over."""
        while True:
            if self.state == "head":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    self._guard()
                    return b""
                head, rest = bytes(self.buf[:end]), bytes(self.buf[end + 4:])
                self.buf.clear()
                self._request(head)
                if self.state in ("body", "chunk-data", "lost"):
                    return rest
                if self.state == "head" and not rest:
                    return b""
                self.buf += rest
            elif self.state == "chunk-size":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    self._guard()
                    return b""
                line = bytes(self.buf[:end]).split(b";")[0].strip()
                del self.buf[:end + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    self.state = "lost"
                    return b""
                if size == 0:
                    self.state = "trailer"
                else:
                    self.state, self.remaining = "chunk-data", size + 2  # the data, then CRLF
                    rest = bytes(self.buf)
                    self.buf.clear()
                    return rest
            elif self.state == "trailer":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    self._guard()
                    return b""
                empty = end == 0
                del self.buf[:end + 2]
                if empty:
                    self.state = "head"
            else:
                rest = bytes(self.buf)
                self.buf.clear()
                return rest

    def _guard(self):
        if len(self.buf) > 1 << 20:
            self.state = "lost"
            self.buf.clear()

    def _request(self, head):
        lines = head.split(b"\r\n")
        m = REQUEST_LINE.match(lines[0])
        if not m:
            self.state = "lost"
            return
        method, target = m.group(1).decode(), m.group(2)
        if method == "GET" and (b"list-type=" in target or b"prefix=" in target or b"delimiter=" in target):
            method = "LIST"
        self.counters.request(method)
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    self.state = "lost"
                    return
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            self.state = "chunk-size"
        elif length > 0:
            self.state, self.remaining = "body", length
        else:
            self.state = "head"


class Proxy:
    def __init__(self, args):
        self.target = args.target
        self.delay = args.rtt_ms / 2000.0
        self.rtt = args.rtt_ms / 1000.0
        self.http = args.http
        self.up = Link(args.mbit)
        self.down = Link(args.mbit)
        rate = args.mbit * 1e6 / 8 if args.mbit > 0 else 100e6
        self.window = max(1 << 20, int(2 * rate * self.rtt))
        self.counters = Counters()
        self.stats_file = args.stats_file

    async def handle(self, client_r, client_w):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        self.counters.connections += 1
        http = HttpRequests(self.counters) if self.http else None
        # The client may send once the handshake's SYN-ACK is back (t0 + RTT); the server
        # sees the connection when the handshake's last ACK arrives (t0 + 1.5 RTT).
        up_q, down_q = asyncio.Queue(), asyncio.Queue()
        up_pipe = Pipe(self, self.up, up_q, "up_bytes", ready_at=t0 + self.rtt, http=http)
        down_pipe = Pipe(self, self.down, down_q, "down_bytes", ready_at=t0)
        up_reader = asyncio.ensure_future(up_pipe.read(client_r))
        server_w = None
        try:
            wait = t0 + 1.5 * self.rtt - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError as e:
            print("wanproxy: cannot reach 127.0.0.1:%d: %s" % (self.target, e), file=sys.stderr)
            up_reader.cancel()
            client_w.close()
            return
        tasks = [
            up_reader,
            asyncio.ensure_future(up_pipe.write(server_w)),
            asyncio.ensure_future(down_pipe.read(server_r)),
            asyncio.ensure_future(down_pipe.write(client_w)),
        ]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.exception() for t in done if not t.cancelled()):
                for t in pending:
                    t.cancel()
        finally:
            for w in (client_w, server_w):
                try:
                    w.close()
                except OSError:
                    pass

    def dump(self):
        if not self.stats_file:
            return
        tmp = self.stats_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.counters.snapshot(), f)
            f.write("\n")
        os.replace(tmp, self.stats_file)

    async def control(self, reader, writer):
        try:
            line = (await reader.readline()).decode(errors="replace").strip()
            if line in ("stats", "take"):
                answer = json.dumps(self.counters.snapshot())
                if line == "take":
                    self.counters.reset()
            elif line == "reset":
                self.counters.reset()
                answer = "ok"
            else:
                answer = "error: unknown command %r (stats, take, reset)" % line
            writer.write(answer.encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()


class Pipe:
    """One direction of one connection: chunks in arrival order, each written out at its
    delivery time."""

    def __init__(self, proxy, link, queue, counter, ready_at, http=None):
        self.proxy, self.link, self.queue, self.counter = proxy, link, queue, counter
        self.ready_at = ready_at
        self.http = http
        self.queued = 0
        self.space = asyncio.Event()
        self.last = 0.0

    async def read(self, reader):
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await reader.read(CHUNK)
                while data and self.queued >= self.proxy.window:
                    self.space.clear()
                    await self.space.wait()
                now = max(loop.time(), self.ready_at)
                if not data:
                    self.queue.put_nowait((max(self.last, now + self.proxy.delay), None))
                    return
                c = self.proxy.counters
                setattr(c, self.counter, getattr(c, self.counter) + len(data))
                if self.http is not None:
                    self.http.feed(data)
                self.last = self.link.send(now, len(data)) + self.proxy.delay
                self.queued += len(data)
                self.queue.put_nowait((self.last, data))
        except (ConnectionError, OSError):
            self.queue.put_nowait((0.0, None))

    async def write(self, writer):
        loop = asyncio.get_running_loop()
        while True:
            at, data = await self.queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                try:
                    if writer.can_write_eof():
                        writer.write_eof()
                except OSError:
                    pass
                return
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                # The receiver is gone: drop what is queued, stop reading the sender.
                self.queued = 0
                self.space.set()
                raise
            self.queued -= len(data)
            self.space.set()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=int, required=True, help="port to listen on (127.0.0.1)")
    ap.add_argument("--target", type=int, required=True, help="port to forward to (127.0.0.1)")
    ap.add_argument("--rtt-ms", type=float, default=0.0, help="round-trip time to add (ms)")
    ap.add_argument("--mbit", type=float, default=0.0, help="bandwidth per direction, Mbit/s (0: unlimited)")
    ap.add_argument("--http", action="store_true", help="count HTTP/1.x requests")
    ap.add_argument("--control", type=int, help="control port (127.0.0.1): stats, take, reset")
    ap.add_argument("--stats-file", help="where SIGUSR1 writes the counters (JSON)")
    args = ap.parse_args()
    proxy = Proxy(args)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, proxy.dump)
    loop.add_signal_handler(signal.SIGUSR2, proxy.counters.reset)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", args.listen, backlog=256)
    servers = [server]
    if args.control:
        servers.append(await asyncio.start_server(proxy.control, "127.0.0.1", args.control))
    print("wanproxy: 127.0.0.1:%d -> 127.0.0.1:%d, RTT %g ms, %s" % (
        args.listen, args.target, args.rtt_ms,
        "%g Mbit/s each way" % args.mbit if args.mbit > 0 else "unlimited bandwidth"), flush=True)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
