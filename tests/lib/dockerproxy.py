#!/usr/bin/env python3
"""dockerproxy.py -- a unix-socket proxy in front of the Docker Engine API, for
fault tests (tests/integration/41-faults.sh). Docker itself is shared by every
stack on the machine and cannot be taken away on demand; a worker pointed at
this proxy can: kill the proxy and Docker is unreachable for that worker only.

    dockerproxy.py LISTEN_SOCKET UPSTREAM_SOCKET [DENY_FILE]

DENY_FILE, when given, is read for every HTTP request the client sends (the
request head is held until it has been checked): each non-empty line of it is
a regular expression, optionally after the word "die". A request whose
"METHOD PATH" matches a plain line is not forwarded and its connection is
closed, as if Docker had failed in the middle of that one call. A request
matching a "die" line makes the proxy exit at once (its socket file stays,
connections are refused), as if Docker had gone away at that call. The file
may change (or disappear) while the proxy runs.

A client's half-close (docker attach does that) is passed on; the connection
ends when Docker's side does.

Stops on SIGTERM/SIGINT and removes its socket.
"""
import asyncio
import os
import re
import signal
import sys

DENIED = "denied"
REQ = re.compile(rb"^(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP/1\.[01]$")


def denied(deny_file, method, path):
    """False, True (drop this call) or exits (Docker gone)."""
    if not deny_file:
        return False
    try:
        with open(deny_file, encoding="utf-8") as f:
            rules = [l.strip() for l in f if l.strip()]
    except OSError:
        return False
    line = f"{method} {path}"
    for r in rules:
        die = r.startswith("die ")
        if re.search(r[4:].strip() if die else r, line):
            if die:
                sys.stderr.write(f"dockerproxy: {line}: exiting as told\n")
                sys.stderr.flush()
                os._exit(0)
            return True
    return False


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


async def requests(reader, writer, deny_file):
    """Client to Docker, one HTTP request at a time: each head is read whole
    and checked against DENY_FILE before it is forwarded; its body
    (Content-Length; curl sends no chunked request bodies) follows as is."""
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = await reader.read(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            m = REQ.match(lines[0])
            if m and denied(deny_file, m.group(1).decode(), m.group(2).decode(errors="replace")):
                return DENIED  # dropped: the connection closes without an answer
            length, upgrade = 0, False
            for l in lines[1:]:
                k, _, v = l.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v.strip() or 0)
                elif k == b"upgrade":
                    upgrade = True
            writer.write(head + b"\r\n\r\n")
            if upgrade:  # a hijacked stream (attach, exec): raw bytes from here on
                writer.write(buf)
                await pipe(reader, writer)
                return
            while length > 0:
                if not buf:
                    buf = await reader.read(65536)
                    if not buf:
                        return
                part, buf = buf[:length], buf[length:]
                writer.write(part)
                length -= len(part)
            await writer.drain()
    except (ConnectionError, OSError, ValueError):
        pass


async def main():
    listen, upstream = sys.argv[1], sys.argv[2]
    deny_file = sys.argv[3] if len(sys.argv) > 3 else None
    conns = set()

    async def handle(creader, cwriter):
        try:
            ureader, uwriter = await asyncio.open_unix_connection(upstream)
        except OSError:
            cwriter.close()
            return
        if deny_file:
            up = asyncio.ensure_future(requests(creader, uwriter, deny_file))
        else:
            up = asyncio.ensure_future(pipe(creader, uwriter))
        down = asyncio.ensure_future(pipe(ureader, cwriter))
        conns.update((up, down))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if up.done() and not down.done() and up.result() != DENIED:
                # the client is done sending (docker attach half-closes):
                # pass that on and let the answer finish
                try:
                    uwriter.write_eof()
                except (OSError, RuntimeError):
                    pass
                await down
        finally:
            for t in (up, down):
                t.cancel()
                conns.discard(t)
            for w in (cwriter, uwriter):
                try:
                    w.close()
                except Exception:
                    pass

    try:
        os.unlink(listen)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(handle, path=listen)
    os.chmod(listen, 0o660)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    server.close()
    for t in list(conns):
        t.cancel()
    try:
        os.unlink(listen)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    asyncio.run(main())
