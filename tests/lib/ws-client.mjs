#!/usr/bin/env node
// tests/lib/ws-client.mjs — a small WebSocket client (RFC 6455) for the bash
// integration tests: node's http 'upgrade' event plus masked frames (node 18
// and 20 have no global WebSocket). Verifies Sec-WebSocket-Accept itself.
//
// Usage: node tests/lib/ws-client.mjs URL [-H 'Name: value']... [--timeout MS] STEP...
// Steps run in order, one output line each; the first failure prints
// "error: ..." and exits 1.
//   status          print the upgrade's HTTP status (101, 401, 403, ...) and stop;
//                   any status is a success
//   recv            wait for one message; print "recv " and its text as JSON
//   echo TEXT       send TEXT; expect it back; print "echo TEXT"
//   fragments TEXT  send TEXT in three fragments with a ping between them;
//                   expect the pong and TEXT back whole
//   binary N        send N random bytes; expect the same bytes back
//   ping            expect a pong with the same payload
//   hold PATH       keep the connection open, pinging every second, until the
//                   file PATH exists (at most 600 s); print "held S s, N pings"
//   send TEXT       send TEXT as one text message; print "sent"
//   until TEXT      wait for a message (text or binary) holding TEXT, passing
//                   over the others; print "until " and its text as JSON
//                   (the application's protocol: a Jupyter kernel's reply, a
//                   VNC server's "RFB 003.008" greeting)
//   every MS PATH   send a message every MS milliseconds and expect it back,
//                   until the file PATH exists (at most 600 s); print
//                   "every S s, N messages"
//   quiet PATH      send nothing until the file PATH exists or the server
//                   closes the connection (at most 600 s); print "quiet S s,
//                   PATH appeared" or "quiet S s, closed by the server"
//   close           close handshake (1000); print "closed CODE"
// Without "status", anything but 101 is an error ("error: status 403").
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function die(msg) {
    console.log(`error: ${msg}`);
    process.exit(1);
}

const argv = process.argv.slice(2);
const headers = {};
let url = null;
let timeout = 10000;
const steps = [];
for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-H' || a === '--header') {
        const h = argv[++i] ?? die('-H needs a value');
        const c = h.indexOf(':');
        if (c < 1) die(`bad header '${h}'`);
        headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
    } else if (a === '--timeout') {
        timeout = Number(argv[++i]);
        if (!(timeout > 0)) die('--timeout takes milliseconds');
    } else if (url === null) {
        url = a;
    } else {
        const arity = { status: 0, recv: 0, echo: 1, fragments: 1, binary: 1, ping: 0, hold: 1, send: 1, until: 1, every: 2, quiet: 1, close: 0 }[a];
        if (arity === undefined) die(`unknown step '${a}'`);
        const args = argv.slice(i + 1, i + 1 + arity);
        if (args.length !== arity) die(`step '${a}' needs ${arity} argument(s)`);
        steps.push([a, ...args]);
        i += arity;
    }
}
if (!url || steps.length === 0) die('usage: ws-client.mjs URL [-H h]... [--timeout MS] STEP...');

// One connection: frames in, messages and control frames out as events.
class Conn {
    constructor(socket, head) {
        this.socket = socket;
        this.buf = Buffer.from(head);
        this.events = [];
        this.waiter = null;
        this.fragments = null; // {op, parts} of a message being reassembled
        this.ended = null;
        socket.setNoDelay(true);
        socket.on('data', (d) => {
            this.buf = Buffer.concat([this.buf, d]);
            this.parse();
        });
        socket.on('end', () => this.end('the server closed the connection'));
        socket.on('close', () => this.end('the connection closed'));
        socket.on('error', (e) => this.end(`socket error: ${e.message}`));
        this.parse();
    }

    end(why) {
        if (this.ended === null) this.ended = why;
        this.wake();
    }

    push(ev) {
        this.events.push(ev);
        this.wake();
    }

    wake() {
        if (this.waiter) {
            const w = this.waiter;
            this.waiter = null;
            w();
        }
    }

    parse() {
        for (;;) {
            const b = this.buf;
            if (b.length < 2) return;
            const fin = (b[0] & 0x80) !== 0, op = b[0] & 0x0f;
            if (b[0] & 0x70) return this.protocolError('reserved bits set');
            if (b[1] & 0x80) return this.protocolError('a server frame is masked');
            let len = b[1] & 0x7f, hl = 2;
            if (len === 126) {
                if (b.length < 4) return;
                len = b.readUInt16BE(2);
                hl = 4;
            } else if (len === 127) {
                if (b.length < 10) return;
                const big = b.readBigUInt64BE(2);
                if (big > BigInt(Number.MAX_SAFE_INTEGER)) return this.protocolError('frame too long');
                len = Number(big);
                hl = 10;
            }
            if (b.length < hl + len) return;
            const payload = b.subarray(hl, hl + len);
            this.buf = b.subarray(hl + len);
            if (op >= 8) {
                if (!fin || len > 125) return this.protocolError('bad control frame');
                if (op === 8) {
                    this.push({ type: 'close', code: len >= 2 ? payload.readUInt16BE(0) : 1005 });
                } else if (op === 9) {
                    this.send(10, payload);
                } else if (op === 10) {
                    this.push({ type: 'pong', data: Buffer.from(payload) });
                } else {
                    return this.protocolError(`control opcode ${op}`);
                }
                continue;
            }
            if (op === 0) {
                if (!this.fragments) return this.protocolError('continuation without a message');
                this.fragments.parts.push(Buffer.from(payload));
            } else if (op === 1 || op === 2) {
                if (this.fragments) return this.protocolError('new message inside a fragmented one');
                this.fragments = { op, parts: [Buffer.from(payload)] };
            } else {
                return this.protocolError(`data opcode ${op}`);
            }
            if (fin) {
                const data = Buffer.concat(this.fragments.parts);
                this.push({ type: this.fragments.op === 1 ? 'text' : 'binary', data });
                this.fragments = null;
            }
        }
    }

    protocolError(why) {
        this.end(`protocol error from the server: ${why}`);
        this.socket.destroy();
    }

    // A client frame: always masked (RFC 6455 5.3).
    send(op, payload, fin = true) {
        const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
        const mask = crypto.randomBytes(4);
        let head;
        if (data.length < 126) {
            head = Buffer.alloc(2);
            head[1] = 0x80 | data.length;
        } else if (data.length <= 0xffff) {
            head = Buffer.alloc(4);
            head[1] = 0x80 | 126;
            head.writeUInt16BE(data.length, 2);
        } else {
            head = Buffer.alloc(10);
            head[1] = 0x80 | 127;
            head.writeBigUInt64BE(BigInt(data.length), 2);
        }
        head[0] = (fin ? 0x80 : 0) | op;
        const masked = Buffer.alloc(data.length);
        for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ mask[i & 3];
        this.socket.write(Buffer.concat([head, mask, masked]));
    }

    // The next event, or an error after ms.
    async next(ms = timeout) {
        const deadline = Date.now() + ms;
        while (this.events.length === 0) {
            if (this.ended !== null) throw new Error(this.ended);
            const left = deadline - Date.now();
            if (left <= 0) throw new Error(`nothing from the server within ${ms} ms`);
            await new Promise((resolve) => {
                const t = setTimeout(resolve, left);
                this.waiter = () => {
                    clearTimeout(t);
                    resolve();
                };
            });
        }
        return this.events.shift();
    }

    async expect(type, ms) {
        const ev = await this.next(ms);
        if (ev.type !== type) {
            const what = ev.type === 'close' ? `close ${ev.code}` : ev.type;
            throw new Error(`expected ${type}, got ${what}`);
        }
        return ev;
    }
}

function connect() {
    return new Promise((resolve, reject) => {
        const u = new URL(url);
        const key = crypto.randomBytes(16).toString('base64');
        const lib = u.protocol === 'https:' || u.protocol === 'wss:' ? https : http;
        const req = lib.request({
            host: u.hostname,
            port: u.port || (lib === https ? 443 : 80),
            path: u.pathname + u.search,
            method: 'GET',
            headers: {
                ...headers,
                Connection: 'Upgrade',
                Upgrade: 'websocket',
                'Sec-WebSocket-Version': '13',
                'Sec-WebSocket-Key': key,
            },
            timeout,
        });
        req.on('timeout', () => req.destroy(new Error(`no answer to the upgrade within ${timeout} ms`)));
        req.on('error', reject);
        req.on('response', (res) => {
            res.resume();
            resolve({ status: res.statusCode });
        });
        req.on('upgrade', (res, socket, head) => {
            req.setTimeout(0);
            const want = crypto.createHash('sha1').update(key + GUID).digest('base64');
            if (res.headers['sec-websocket-accept'] !== want) {
                socket.destroy();
                reject(new Error(`Sec-WebSocket-Accept is ${res.headers['sec-websocket-accept']}, not ${want}`));
                return;
            }
            resolve({ status: res.statusCode, conn: new Conn(socket, head) });
        });
        req.end();
    });
}

async function main() {
    const { status, conn } = await connect();
    if (steps[0][0] === 'status') {
        console.log(String(status));
        conn?.socket.destroy();
        return;
    }
    if (!conn) throw new Error(`status ${status}`);
    for (const [step, arg, ...rest] of steps) {
        switch (step) {
        case 'status':
            throw new Error('"status" must be the first step');
        case 'recv': {
            const ev = await conn.next();
            if (ev.type !== 'text' && ev.type !== 'binary') throw new Error(`expected a message, got ${ev.type}`);
            console.log(`recv ${JSON.stringify(ev.data.toString('utf8'))}`);
            break;
        }
        case 'echo': {
            conn.send(1, arg);
            const ev = await conn.expect('text');
            if (ev.data.toString('utf8') !== arg) throw new Error(`echo: got ${JSON.stringify(ev.data.toString())}`);
            console.log(`echo ${arg}`);
            break;
        }
        case 'fragments': {
            const b = Buffer.from(arg);
            const a1 = Math.floor(b.length / 3), a2 = Math.floor((2 * b.length) / 3);
            conn.send(1, b.subarray(0, a1), false);
            conn.send(9, 'mid'); // control frames may come between fragments
            conn.send(0, b.subarray(a1, a2), false);
            conn.send(0, b.subarray(a2), true);
            const pong = await conn.expect('pong');
            if (pong.data.toString() !== 'mid') throw new Error('pong payload differs');
            const ev = await conn.expect('text');
            if (!ev.data.equals(b)) throw new Error(`fragments: got ${JSON.stringify(ev.data.toString())}`);
            console.log(`fragments ${arg}`);
            break;
        }
        case 'binary': {
            const n = Number(arg);
            if (!Number.isInteger(n) || n < 0) throw new Error('binary takes a byte count');
            const data = crypto.randomBytes(n);
            conn.send(2, data);
            const ev = await conn.expect('binary', Math.max(timeout, n / 1000));
            if (!ev.data.equals(data)) throw new Error(`binary: ${ev.data.length} bytes back, different`);
            console.log(`binary ${n}`);
            break;
        }
        case 'ping': {
            const p = crypto.randomBytes(8);
            conn.send(9, p);
            const ev = await conn.expect('pong');
            if (!ev.data.equals(p)) throw new Error('pong payload differs');
            console.log('ping');
            break;
        }
        case 'hold': {
            const started = Date.now();
            let pings = 0;
            while (!fs.existsSync(arg)) {
                if (Date.now() - started > 600000) throw new Error(`hold: ${arg} did not appear in 600 s`);
                await new Promise((r) => setTimeout(r, 1000));
                const p = Buffer.from(`hold ${++pings}`);
                conn.send(9, p);
                const ev = await conn.expect('pong');
                if (!ev.data.equals(p)) throw new Error('hold: pong payload differs');
            }
            console.log(`held ${Math.round((Date.now() - started) / 1000)} s, ${pings} pings`);
            break;
        }
        case 'send':
            conn.send(1, arg);
            console.log('sent');
            break;
        case 'until': {
            const deadline = Date.now() + timeout;
            for (;;) {
                const left = deadline - Date.now();
                if (left <= 0) throw new Error(`until: no message holding ${JSON.stringify(arg)} within ${timeout} ms`);
                const ev = await conn.next(left);
                if (ev.type === 'close') throw new Error(`until: closed ${ev.code} before a message holding ${JSON.stringify(arg)}`);
                if (ev.type !== 'text' && ev.type !== 'binary') continue;
                const text = ev.data.toString('utf8');
                if (text.includes(arg)) {
                    console.log(`until ${JSON.stringify(text)}`);
                    break;
                }
            }
            break;
        }
        case 'every': {
            const ms = Number(arg), path = rest[0];
            if (!(ms > 0)) throw new Error('every takes milliseconds');
            const started = Date.now();
            let n = 0;
            while (!fs.existsSync(path)) {
                if (Date.now() - started > 600000) throw new Error(`every: ${path} did not appear in 600 s`);
                const text = `every ${++n}`;
                conn.send(1, text);
                const ev = await conn.expect('text');
                if (ev.data.toString('utf8') !== text) throw new Error(`every: got ${JSON.stringify(ev.data.toString())}`);
                await new Promise((r) => setTimeout(r, ms));
            }
            console.log(`every ${Math.round((Date.now() - started) / 1000)} s, ${n} messages`);
            break;
        }
        case 'quiet': {
            const started = Date.now();
            let why = null;
            while (why === null) {
                if (fs.existsSync(arg)) why = `${arg} appeared`;
                else if (conn.ended !== null) why = 'closed by the server';
                else if (Date.now() - started > 600000) throw new Error(`quiet: ${arg} did not appear in 600 s`);
                else await new Promise((r) => setTimeout(r, 250));
            }
            console.log(`quiet ${Math.round((Date.now() - started) / 1000)} s, ${why}`);
            if (conn.ended !== null) return;
            break;
        }
        case 'close': {
            const code = Buffer.alloc(2);
            code.writeUInt16BE(1000);
            conn.send(8, code);
            const ev = await conn.expect('close');
            console.log(`closed ${ev.code}`);
            conn.socket.end();
            break;
        }
        }
    }
    conn.socket.destroy();
}

main().catch((e) => die(e.message));
