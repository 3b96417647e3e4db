#!/usr/bin/env python3
"""Writes the replay traces in Traces/: for each scenario NAME, NAME.in.pcap (the frames sent to
the key-value store) and NAME.expected.pcap (the exact frames the store must send back, in order).

Regenerate (from the repository root, with memcached 1.6.18 installed: `apt-get install memcached`):

    python3 scripts/make-traces.py

Python 3 standard library only. The output is deterministic: fixed timestamps, fixed addresses and
ports, and memcached's replies do not depend on the time (no relative expiry short enough to run
out, no absolute expiry times).

Where the replies come from:
  * memcached replies: every scenario except `udp-differences` sends its requests' memcached
    payloads (8-byte frame header + text) to a fresh real memcached 1.6.18 over UDP loopback, in
    order, with the same request ids, and records the datagrams it answers with (a `version`
    request with another id behind each one marks the end of its replies). Those datagrams are
    wrapped into frames exactly as KVServer/DatagramWriter build them: Ethernet (to the client's
    MAC, from the store's, type 0x0800), IPv4 (0x45, TOS 0, identification = a per-trace counter
    that is 1 for the first memcached reply datagram and grows by one per reply datagram; flags
    and offset 0; TTL 64; protocol 17), UDP (from 11211 to the client's port, checksum computed,
    a computed 0 sent as 0xFFFF), then memcached's datagram as it came.
  * `udp-differences`: requests memcached cannot take over UDP (a value running past its
    datagram, an oversized set followed by more data, `quit`); the expected payloads are written
    here by hand from the behaviour documented in MemcachedEngine.swift's header comment.
  * ARP and ICMP echo replies are the request frame turned around in place, as KVServer's
    handleARP/handleICMP do (same length, padding kept); a reassembled echo gets a fresh frame.

Store: 02:00:00:00:00:02 / 192.0.2.2, UDP 11211. Clients: 02:00:00:00:00:01 / 192.0.2.1 and
02:00:00:00:00:03 / 192.0.2.3 (TEST-NET-1 only).
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Traces")

STORE_MAC = bytes.fromhex("020000000002")
STORE_IP = bytes([192, 0, 2, 2])
STORE_PORT = 11211
BROADCAST = b"\xff" * 6


class Client:
    def __init__(self, mac, ip, port):
        self.mac = bytes.fromhex(mac.replace(":", ""))
        self.ip = bytes(int(x) for x in ip.split("."))
        self.port = port


C1 = Client("02:00:00:00:00:01", "192.0.2.1", 40001)
C2 = Client("02:00:00:00:00:03", "192.0.2.3", 40003)
OTHER_MAC = bytes.fromhex("020000000009")

# Timestamps: input frames at T0 + i microseconds; expected frames all at T0 (what the replay
# test's PcapDevice writes with `.fixed(seconds: T0)`), so an output file equals its expected file.
T0 = 1_700_000_000

# --------------------------------------------------------------------------------------------
# Checksums and headers


def csum_sum(data, initial=0):
    if len(data) % 2:
        data = data + b"\0"
    s = initial + sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def checksum(data):
    return ~csum_sum(data) & 0xFFFF


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4_header(src, dst, proto, payload_len, ident, ttl=64, flags_frag=0, tos=0, ihl_words=5,
                total=None, options=b"", bad_checksum=False):
    total = 20 + len(options) + payload_len if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl_words, tos, total, ident, flags_frag, ttl, proto, 0, src, dst) + options
    c = checksum(h)
    if bad_checksum:
        c ^= 0x5555
    return h[:10] + struct.pack("!H", c) + h[12:]


def udp_segment(src_ip, dst_ip, sport, dport, payload, checksum_mode="ok", length=None):
    length = 8 + len(payload) if length is None else length
    h = struct.pack("!HHHH", sport, dport, length, 0)
    if checksum_mode == "zero":
        return h + payload
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, 8 + len(payload))
    c = ~csum_sum(pseudo + h + payload) & 0xFFFF
    if c == 0:
        c = 0xFFFF
    if checksum_mode == "bad":
        c ^= 0x0101
    return h[:6] + struct.pack("!H", c) + payload


def pad60(frame):
    return frame + b"\0" * max(0, 60 - len(frame))


def mc_header(req_id, seq=0, total=1, reserved=0):
    return struct.pack("!HHHH", req_id, seq, total, reserved)


# --------------------------------------------------------------------------------------------
# The store's replies, as KVServer builds them


def udp_reply_frame(client, datagram, ident):
    """A memcached reply datagram (its 8-byte header included) as KVServer/DatagramWriter sends it."""
    udp = udp_segment(STORE_IP, client.ip, STORE_PORT, client.port, datagram)
    ip = ipv4_header(STORE_IP, client.ip, 17, len(udp), ident)
    return eth(client.mac, STORE_MAC, 0x0800, ip + udp)


def arp_reply_in_place(frame):
    """KVServer.handleARP: ARPPacket.makeReply + EthernetFrame.reply, in the request's bytes."""
    f = bytearray(frame)
    arp = 14
    asker_mac, asker_ip = bytes(f[arp + 8:arp + 14]), bytes(f[arp + 14:arp + 18])
    f[arp + 6:arp + 8] = struct.pack("!H", 2)
    f[arp + 18:arp + 24] = asker_mac
    f[arp + 24:arp + 28] = asker_ip
    f[arp + 8:arp + 14] = STORE_MAC
    f[arp + 14:arp + 18] = STORE_IP
    requester = bytes(f[6:12])
    f[0:6] = requester
    f[6:12] = STORE_MAC
    return bytes(f)


def icmp_reply_checksum(message):
    """The ICMP checksum of a reply message (its checksum field ignored), computed over the whole
    message. KVServer updates the request's checksum incrementally (RFC 1624 eqn. 3) instead; the
    two agree except for an all-zero reply message (identifier 0, sequence 0, no data), where only
    0xFFFF verifies: the `icmp-all-zero` trace."""
    return checksum(message[:2] + b"\0\0" + message[4:])


def icmp_reply_in_place(frame):
    """KVServer.handleICMP for an unfragmented request: ICMPEcho.makeReply (type 0, checksum
    updated), addresses swapped, TTL 64, IP header checksum recomputed, Ethernet turned around;
    everything else (identification, options, padding) kept."""
    f = bytearray(frame)
    ip = 14
    ihl = (f[ip] & 0x0F) * 4
    icmp = ip + ihl
    total = struct.unpack("!H", f[ip + 2:ip + 4])[0]
    f[icmp] = 0
    f[icmp + 2:icmp + 4] = struct.pack("!H", icmp_reply_checksum(bytes(f[icmp:ip + total])))
    src, dst = bytes(f[ip + 12:ip + 16]), bytes(f[ip + 16:ip + 20])
    f[ip + 12:ip + 16] = dst
    f[ip + 16:ip + 20] = src
    f[ip + 8] = 64
    f[ip + 10:ip + 12] = b"\0\0"
    f[ip + 10:ip + 12] = struct.pack("!H", checksum(bytes(f[ip:ip + ihl])))
    requester = bytes(f[6:12])
    f[0:6] = requester
    f[6:12] = STORE_MAC
    return bytes(f)


def icmp_reply_reassembled(client, icmp_message):
    """KVServer.handleICMP for a reassembled echo: a fresh frame (IPv4 identification 0, TTL 64, DF
    clear), the message copied and made a reply with the incremental checksum update."""
    reply = b"\0" + icmp_message[1:]
    reply = reply[:2] + struct.pack("!H", icmp_reply_checksum(reply)) + reply[4:]
    ip = ipv4_header(STORE_IP, client.ip, 1, len(reply), 0)
    return eth(client.mac, STORE_MAC, 0x0800, ip + reply)


# --------------------------------------------------------------------------------------------
# Request frames


class Scenario:
    def __init__(self, name, description):
        self.name = name
        self.description = description
        self.events = []
        self.ip_id = 0x1000  # identification of the clients' own packets
        self.next_req = 1

    def new_ip_id(self):
        self.ip_id += 1
        return self.ip_id

    def req_id(self):
        r = self.next_req
        self.next_req += 1
        return r

    # A memcached request in one frame (or in IPv4 fragments, `fragments` = list of
    # (offset, length) over the UDP datagram in the order sent; offsets/lengths in bytes).
    def mc(self, text, client=C1, req_id=None, hand=None, fragments=None, checksum_mode="ok", note=None):
        payload = text.encode("latin-1") if isinstance(text, str) else text
        rid = self.req_id() if req_id is None else req_id
        datagram = mc_header(rid) + payload
        self.events.append(dict(kind="mc", client=client, datagram=datagram, req_id=rid, hand=hand,
                                fragments=fragments, checksum_mode=checksum_mode, note=note))

    # A frame that gets no answer (anything the store drops).
    def silent(self, frame):
        self.events.append(dict(kind="silent", frames=[frame]))

    def frames_answered(self, frames, replies):
        self.events.append(dict(kind="fixed", frames=frames, replies=replies))

    def arp(self, frame):
        self.events.append(dict(kind="fixed", frames=[frame], replies=[arp_reply_in_place(frame)]))

    def icmp(self, frame):
        self.events.append(dict(kind="fixed", frames=[frame], replies=[icmp_reply_in_place(frame)]))

    # Frame builders --------------------------------------------------------------------------

    def udp_frame(self, client, datagram, dport=STORE_PORT, dst_ip=STORE_IP, dst_mac=STORE_MAC,
                  checksum_mode="ok", ttl=64, flags_frag=0x4000):
        udp = udp_segment(client.ip, dst_ip, client.port, dport, datagram, checksum_mode)
        ip = ipv4_header(client.ip, dst_ip, 17, len(udp), self.new_ip_id(), ttl=ttl, flags_frag=flags_frag)
        return pad60(eth(dst_mac, client.mac, 0x0800, ip + udp))

    def fragment_frames(self, client, proto, l4, pieces, ident=None):
        """IPv4 fragments of the transport message `l4`, one per (offset, length), in that order."""
        ident = self.new_ip_id() if ident is None else ident
        frames = []
        for off, length in pieces:
            assert off % 8 == 0
            more = off + length < len(l4)
            ff = (0x2000 if more else 0) | (off // 8)
            chunk = l4[off:off + length]
            ip = ipv4_header(client.ip, STORE_IP, proto, len(chunk), ident, flags_frag=ff)
            frames.append(pad60(eth(STORE_MAC, client.mac, 0x0800, ip + chunk)))
        return frames

    def udp_l4(self, client, datagram):
        return udp_segment(client.ip, STORE_IP, client.port, STORE_PORT, datagram)


def even_pieces(total, size=1480):
    return [(o, min(size, total - o)) for o in range(0, total, size)]


def arp_frame(sender, target_ip, dst=BROADCAST, op=1, htype=1, pad=True):
    arp = struct.pack("!HHBBH6s4s6s4s", htype, 0x0800, 6, 4, op, sender.mac, sender.ip, b"\0" * 6, target_ip)
    f = eth(dst, sender.mac, 0x0806, arp)
    return pad60(f) if pad else f


def icmp_echo(ident, seq, data, type_=8, code=0, bad=False):
    h = struct.pack("!BBHHH", type_, code, 0, ident, seq) + data
    c = checksum(h)
    if bad:
        c ^= 0x00FF
    return h[:2] + struct.pack("!H", c) + h[4:]


def icmp_frame(sc, client, message, ttl=64, dst_mac=STORE_MAC, options=b"", ident=None):
    ip = ipv4_header(client.ip, STORE_IP, 1, len(message), sc.new_ip_id() if ident is None else ident, ttl=ttl,
                     flags_frag=0x4000, options=options, ihl_words=5 + len(options) // 4)
    return pad60(eth(dst_mac, client.mac, 0x0800, ip + message))


# --------------------------------------------------------------------------------------------
# memcached


class Memcached:
    """A fresh memcached 1.6.18 on UDP loopback, killed by PID on close."""

    def __init__(self):
        self.port = 21000 + os.getpid() % 20000
        args = ["memcached", "-U", str(self.port), "-p", "0", "-l", "127.0.0.1", "-t", "1", "-m", "64"]
        if os.getuid() == 0:
            args += ["-u", "root"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.5)
        self.sock.connect(("127.0.0.1", self.port))
        for _ in range(50):
            try:
                if self.exchange(mc_header(0x7000) + b"version\r\n", 0x7000):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.close()
        raise RuntimeError("memcached did not answer on UDP port %d" % self.port)

    def exchange(self, datagram, req_id):
        sentinel = req_id ^ 0x8000
        self.sock.send(datagram)
        self.sock.send(mc_header(sentinel) + b"version\r\n")
        replies = []
        while True:
            d = self.sock.recv(65536)
            if len(d) >= 2 and struct.unpack("!H", d[:2])[0] == sentinel:
                return replies
            replies.append(d)

    def close(self):
        try:
            self.sock.close()
        finally:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# --------------------------------------------------------------------------------------------
# Building a scenario's two files


def build(sc):
    """Returns (input frames, expected frames)."""
    needs_memcached = any(e["kind"] == "mc_prebuilt" or (e["kind"] == "mc" and e["hand"] is None) for e in sc.events)
    mc = Memcached() if needs_memcached else None
    inputs, expected = [], []
    ident = 0  # DatagramWriter.ipIdentification: incremented before each reply datagram
    last_cas = {}
    try:
        for e in sc.events:
            if e["kind"] == "silent":
                inputs += e["frames"]
                continue
            if e["kind"] == "fixed":
                inputs += e["frames"]
                expected += e["replies"]
                continue
            if e["kind"] == "mc_prebuilt":
                # A datagram whose frames were built already (fragments interleaved with others).
                inputs += e["frames"]
                for r in mc.exchange(e["datagram"], e["req_id"]):
                    ident = (ident + 1) & 0xFFFF
                    expected.append(udp_reply_frame(e["client"], r, ident))
                continue
            client, datagram = e["client"], e["datagram"]
            # "{cas:KEY}" in a request stands for KEY's cas value as memcached last reported it.
            if b"{cas:" in datagram:
                start = datagram.index(b"{cas:")
                end = datagram.index(b"}", start)
                key = datagram[start + 5:end]
                datagram = datagram[:start] + last_cas[key] + datagram[end + 1:]
            if e["fragments"]:
                inputs += sc.fragment_frames(client, 17, sc.udp_l4(client, datagram), e["fragments"])
            else:
                frame = sc.udp_frame(client, datagram, checksum_mode=e["checksum_mode"])
                if e.get("pad_junk"):
                    # Ethernet padding (past the IPv4 total length) filled with junk.
                    end = 14 + struct.unpack("!H", frame[16:18])[0]
                    assert end < len(frame)
                    frame = frame[:end] + b"\xa5" * (len(frame) - end)
                inputs.append(frame)
            if e["hand"] is not None:
                replies = [mc_header(e["req_id"], s, t) + p for (s, t, p) in e["hand"]]
            else:
                replies = mc.exchange(datagram, e["req_id"])
            for r in replies:
                for line in r[8:].split(b"\r\n"):
                    parts = line.split(b" ")
                    if len(parts) == 5 and parts[0] == b"VALUE":
                        last_cas[parts[1]] = parts[4]
                ident = (ident + 1) & 0xFFFF
                expected.append(udp_reply_frame(client, r, ident))
    finally:
        if mc is not None:
            mc.close()
    return inputs, expected


def write_pcap(path, frames, timestamps):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for frame, (sec, usec) in zip(frames, timestamps):
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            f.write(frame)


# --------------------------------------------------------------------------------------------
# Scenarios


def scenario_commands():
    sc = Scenario("commands", "every command (get gets gat gats set add replace append prepend cas delete incr decr "
                              "touch version verbosity flush_all), noreply variants, multi-key gets with hits and "
                              "misses, several commands per datagram, a second client")
    m = sc.mc
    m("version\r\n")
    m("verbosity 1\r\n")
    m("verbosity 0 noreply\r\n")
    m("get nothing\r\n")
    m("set a 0 0 1\r\n1\r\n")
    m("set b 42 0 5\r\nhello\r\n")
    m("set q 7 0 3 noreply\r\nqqq\r\n")
    m("get a\r\n")
    m("gets a\r\n")
    m("get a b c\r\n")
    m("get c a\r\n")
    m("get c d a b q\r\n")
    m("gets a b missing q\r\n")
    m("add a 0 0 1\r\n2\r\n")
    m("add new 3 0 2\r\nhi\r\n")
    m("add new 3 0 2 noreply\r\nho\r\n")
    m("replace missing 0 0 1\r\nx\r\n")
    m("replace new 4 0 3\r\nbye\r\n")
    m("replace new 4 0 3 noreply\r\nBYE\r\n")
    m("append new 0 0 3\r\n!!!\r\n")
    m("prepend new 0 0 2\r\n<<\r\n")
    m("append new 0 0 1 noreply\r\n?\r\n")
    m("prepend new 0 0 1 noreply\r\n>\r\n")
    m("append missing 0 0 1\r\nx\r\n")
    m("prepend missing 0 0 1\r\nx\r\n")
    m("gets new\r\n")
    m("cas new 0 0 1 {cas:new}\r\nz\r\n")
    m("cas new 0 0 1 999999\r\nz\r\n")
    m("cas missing 0 0 1 1\r\nz\r\n")
    m("gets new\r\n")
    m("cas new 9 0 2 {cas:new} noreply\r\nzz\r\n")
    m("gets new\r\n")
    m("delete new\r\n")
    m("delete new\r\n")
    m("delete a 0\r\n")
    m("delete b noreply\r\n")
    m("get a b new\r\n")
    m("set n 0 0 2\r\n10\r\n")
    m("incr n 5\r\n")
    m("decr n 3\r\n")
    m("decr n 100\r\n")
    m("incr n 18446744073709551615\r\n")
    m("incr n 2\r\n")
    m("incr n 7 noreply\r\n")
    m("decr n 1 noreply\r\n")
    m("incr missing 1\r\n")
    m("decr missing 1\r\n")
    m("get n\r\n")
    m("set grow 0 0 1\r\n9\r\n")
    m("incr grow 1\r\n")
    m("get grow\r\n")
    m("touch n 100000\r\n")
    m("touch missing 100000\r\n")
    m("touch n 200000 noreply\r\n")
    m("gat 100000 n missing\r\n")
    m("gats 200000 n grow\r\n")
    m("gat 0 grow\r\n")
    m("set neg 0 -1 1\r\nx\r\n")
    m("get neg\r\n")
    m("set k0 0 0 0\r\n\r\n")
    m("get k0\r\n")
    m("set f 4294967295 0 1\r\nf\r\n")
    m("gets f\r\n")
    m("set m1 0 0 1\r\na\r\nset m2 0 0 1\r\nb\r\nget m1 m2\r\n")
    m("get m1\r\nget m2\r\nversion\r\n")
    m("set s1 0 0 2\r\nv1\r\n", client=C2)
    m("get s1 m1\r\n")
    m("gets s1\r\n", client=C2)
    m("get " + " ".join("k%d" % i for i in range(1, 31)) + " s1\r\n")
    m("version\r\n" * 21 + "get m1 s1\r\n")
    m("delete m1 noreply\r\nget m1 m2\r\n")
    m("get m2\n")
    m("flush_all\r\n")
    m("get m2 s1 n\r\n")
    m("set after 0 0 5\r\nafter\r\n")
    m("flush_all 0\r\n")
    m("set after 0 0 5\r\nagain\r\n")
    m("flush_all noreply\r\n")
    m("get after\r\n")
    m("set last 1 0 4\r\nlast\r\n", client=C2)
    m("gets last\r\n")
    return sc


def scenario_errors():
    sc = Scenario("errors", "ERROR and CLIENT_ERROR replies: unknown commands, wrong token counts, bad numbers, "
                            "bad data chunk, 250/251-byte keys, too many tokens, incr on non-numeric values, "
                            "bad exptime and delta, verbosity and flush_all errors, tabs and NULs")
    m = sc.mc
    k250, k251 = "k" * 250, "k" * 251
    m("bogus\r\n")
    m("GET a\r\n")
    m("\r\n")
    m("x\r\n")
    m("set\r\n")
    m("get\r\n")
    m("gets\r\n")
    m("delete\r\n")
    m("incr\r\n")
    m("set a 0 0\r\n")
    m("set a 0 0 1 noreply extra\r\nx\r\n")
    m("cas a 0 0 1\r\nz\r\n")
    m("set f abc 0 1\r\nf\r\n")
    m("set f -1 0 1\r\nf\r\n")
    m("set f 4294967296 0 1\r\nf\r\n")
    m("set f 0 abc 1\r\nf\r\n")
    m("set f 0 0 abc\r\nf\r\n")
    m("set f 0 0 -1\r\nf\r\n")
    m("set f 0 0 1\r\nff\r\n")
    m("set f 0 0 5\r\nhelloXX\r\n")
    m("set f 0 0 5 noreply\r\nhelloXX\r\n")
    m("cas f 0 0 1 abc\r\nz\r\n")
    m("set " + k250 + " 0 0 1\r\nx\r\n")
    m("get " + k250 + "\r\n")
    m("set " + k251 + " 0 0 1\r\nx\r\n")
    m("set " + k251 + " 0 0 1 noreply\r\nx\r\n")
    m("incr " + k251 + " 1\r\n")
    m("delete " + k251 + "\r\n")
    m("touch " + k251 + " 10\r\n")
    m("set k 0 0 1 " + "a " * 26 + "\r\nx\r\n")
    m("set num 0 0 2\r\n12\r\n")
    m("incr num 1 x\r\n")
    m("incr num 1 noreply x\r\n")
    m("incr num abc\r\n")
    m("incr num -1\r\n")
    m("decr num 18446744073709551616\r\n")
    m("set text 0 0 3\r\nabc\r\n")
    m("incr text 1\r\n")
    m("decr text 1\r\n")
    m("set long 0 0 22\r\n1234567890123456789012\r\n")
    m("incr long 1\r\n")
    m("set sp 0 0 5\r\n12 34\r\n")
    m("incr sp 1\r\n")
    m("get sp\r\n")
    m("touch num abc\r\n")
    m("touch num\r\n")
    m("touch num 0 x\r\n")
    m("gat abc num\r\n")
    m("gat 0\r\n")
    m("gats -x num\r\n")
    m("delete num 5\r\n")
    m("delete num x y z\r\n")
    m("verbosity\r\n")
    m("verbosity abc\r\n")
    m("verbosity 0 1 2\r\n")
    m("flush_all abc\r\n")
    m("flush_all 1 2 3\r\n")
    m("mx h1\r\n")
    m("get\ta\r\n")
    m("set a\tb 0 0 1\r\nt\r\n")
    m("version\x00junk\r\n")
    m("version a b c\r\n")
    m("get num\r\n")
    return sc


def scenario_multidatagram():
    sc = Scenario("multidatagram", "values of 3000 and 10000 bytes (stored through IPv4 fragments) read back as "
                                   "replies split into 1392-byte datagram groups, several groups per request")
    v3000 = "".join(chr(ord("a") + i % 26) for i in range(3000))
    v10000 = "".join(chr(ord("A") + i % 26) for i in range(10000))
    for name, value in (("v3000", v3000), ("v10000", v10000)):
        text = "set %s 5 0 %d\r\n%s\r\n" % (name, len(value), value)
        m_len = 8 + 8 + len(text)
        sc.mc(text, fragments=even_pieces(m_len))
    sc.mc("get v3000\r\n")
    sc.mc("get v10000\r\n")
    sc.mc("gets v3000 v10000\r\n")
    sc.mc("get v3000 missing v3000\r\n")
    sc.mc("set small 0 0 5\r\nsmall\r\n")
    sc.mc("get small v3000 small\r\n", client=C2)
    sc.mc("append v3000 0 0 1000\r\n" + "+" * 1000 + "\r\n")
    sc.mc("gat 100000 v3000\r\n")
    sc.mc("version\r\n" * 100)
    return sc


def scenario_arp():
    sc = Scenario("arp", "ARP: who-has 192.0.2.2 (broadcast and unicast, padded and unpadded, two clients) is "
                         "answered in place; requests for other addresses, replies and other hardware types are not")
    sc.arp(arp_frame(C1, STORE_IP))
    sc.arp(arp_frame(C2, STORE_IP, dst=STORE_MAC))
    sc.arp(arp_frame(C1, STORE_IP, pad=False))
    sc.silent(arp_frame(C1, bytes([192, 0, 2, 99])))
    sc.silent(arp_frame(C1, C1.ip))                          # gratuitous ARP
    sc.silent(arp_frame(C1, STORE_IP, dst=STORE_MAC, op=2))  # a reply, not a request
    sc.silent(arp_frame(C1, STORE_IP, htype=6))              # not Ethernet
    sc.silent(arp_frame(C1, STORE_IP, dst=OTHER_MAC))        # another host's frame
    sc.mc("version\r\n")
    sc.arp(arp_frame(C2, STORE_IP))
    return sc


def scenario_icmp():
    sc = Scenario("icmp", "ICMP echo: requests of several sizes (padded, odd, full 1500-byte frames, IP options, "
                          "TTL 1) answered in place; bad checksum, echo replies and other codes dropped")
    ping = bytes(range(16, 16 + 48))  # 56 bytes of data, like ping
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0x1234, 1, struct.pack("!II", 0, 0) + ping)))
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0x1234, 2, b"hi")))               # padded to 60 bytes
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0x1234, 3, b"odd length!")))
    sc.icmp(icmp_frame(sc, C2, icmp_echo(0x0042, 1, b"from the second client")))
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0x1234, 4, bytes(i & 0xFF for i in range(1472)))))
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0x1234, 5, b"ttl one"), ttl=1))
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0x1234, 6, b"with options"), options=b"\x01\x01\x01\x00"))
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0xFFFF, 0xFFFF, b"\xff" * 20)))
    sc.silent(icmp_frame(sc, C1, icmp_echo(0x1234, 7, b"bad checksum", bad=True)))
    sc.silent(icmp_frame(sc, C1, icmp_echo(0x1234, 8, b"a reply", type_=0)))
    sc.silent(icmp_frame(sc, C1, icmp_echo(0x1234, 9, b"code 1", code=1)))
    sc.silent(icmp_frame(sc, C1, icmp_echo(0x1234, 10, b"timestamp", type_=13)))
    sc.silent(icmp_frame(sc, C1, b"\x08\x00\xf7"))                          # shorter than 8 bytes
    sc.mc("version\r\n")
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0x1234, 11, b"after memcached")))
    return sc


def scenario_fragments():
    sc = Scenario("fragments", "IPv4 reassembly: set requests in fragments in order, out of order, interleaved "
                               "from two clients, UDP header alone in the first fragment; a fragmented echo; "
                               "overlapping and duplicate fragments drop the datagram")
    value = "".join(chr(ord("0") + i % 10) for i in range(2000))
    text = "set frag 1 0 %d\r\n%s\r\n" % (len(value), value)
    total = 16 + len(text)
    sc.mc(text, fragments=even_pieces(total))                                 # in order
    sc.mc("get frag\r\n")
    text2 = "set frag2 2 0 %d\r\n%s\r\n" % (len(value), value[::-1])
    t2 = 16 + len(text2)
    sc.mc(text2, fragments=[(1488, t2 - 1488), (0, 744), (744, 744)])        # last first, then the rest
    small = "set tiny 0 0 4\r\ntiny\r\n"
    sc.mc(small, fragments=[(8, 16 + len(small) - 8), (0, 8)])              # UDP header alone, sent second
    sc.mc("get frag2 tiny\r\n", fragments=[(0, 16), (16, 8), (24, 16 + len("get frag2 tiny\r\n") - 24)])

    # Two clients, same IP identification, fragments interleaved: two datagrams.
    a = "set c1 0 0 1200\r\n" + "1" * 1200 + "\r\n"
    b = "set c3 0 0 1200\r\n" + "3" * 1200 + "\r\n"
    rid_a, rid_b = sc.req_id(), sc.req_id()
    da, db = mc_header(rid_a) + a.encode(), mc_header(rid_b) + b.encode()
    ident = sc.new_ip_id()
    fa = sc.fragment_frames(C1, 17, sc.udp_l4(C1, da), [(0, 800), (800, len(da) + 8 - 800)], ident=ident)
    fb = sc.fragment_frames(C2, 17, sc.udp_l4(C2, db), [(0, 800), (800, len(db) + 8 - 800)], ident=ident)
    sc.events.append(dict(kind="silent", frames=[fa[0], fb[0]]))
    sc.events.append(dict(kind="mc_prebuilt", client=C1, datagram=da, req_id=rid_a, frames=[fa[1]]))
    sc.events.append(dict(kind="mc_prebuilt", client=C2, datagram=db, req_id=rid_b, frames=[fb[1]]))
    sc.mc("get c1 c3\r\n", client=C2)

    # Overlap: the second fragment starts inside the first; the datagram is dropped, and so is
    # one with a fragment sent twice.
    bad = mc_header(sc.req_id()) + ("set overlap 0 0 1500\r\n" + "o" * 1500 + "\r\n").encode()
    l4 = sc.udp_l4(C1, bad)
    for frame in sc.fragment_frames(C1, 17, l4, [(0, 1480), (1472, len(l4) - 1472)]):
        sc.silent(frame)
    dup = mc_header(sc.req_id()) + ("set dup 0 0 1500\r\n" + "d" * 1500 + "\r\n").encode()
    l4 = sc.udp_l4(C1, dup)
    for frame in sc.fragment_frames(C1, 17, l4, [(0, 1480), (0, 1480), (1480, len(l4) - 1480)]):
        sc.silent(frame)
    sc.mc("get overlap dup frag\r\n")

    # An echo request of 1400 bytes in two fragments: answered with one frame built afresh.
    echo = icmp_echo(0x4321, 1, bytes((i * 7) & 0xFF for i in range(1392)))
    frames = sc.fragment_frames(C1, 1, echo, [(0, 800), (800, len(echo) - 800)])
    sc.frames_answered(frames, [icmp_reply_reassembled(C1, echo)])
    sc.mc("version\r\n")
    return sc


def scenario_malformed():
    sc = Scenario("malformed", "frames the store drops without a word (truncated Ethernet, other EtherType and MAC, "
                               "IHL < 5, lengths beyond the frame, bad IPv4/UDP checksums, wrong address, port and "
                               "protocol, memcached frames of 8 bytes or total != 1, bad fragments), interleaved "
                               "with valid requests that are answered")
    ok = lambda: sc.mc("version\r\n")

    ok()
    sc.silent(bytes.fromhex("020000000002020000000001"))                    # 12 bytes: truncated Ethernet
    frame = sc.udp_frame(C1, mc_header(900) + b"version\r\n", dst_mac=OTHER_MAC)
    sc.silent(frame)                                                        # not our MAC
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x86DD, b"\x60" + b"\0" * 39)))  # IPv6
    # IHL 4
    udp = udp_segment(C1.ip, STORE_IP, C1.port, STORE_PORT, mc_header(901) + b"version\r\n")
    ip = ipv4_header(C1.ip, STORE_IP, 17, len(udp), sc.new_ip_id(), ihl_words=4)
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, ip + udp)))
    # Total length beyond the frame.
    ip = ipv4_header(C1.ip, STORE_IP, 17, len(udp), sc.new_ip_id(), total=20 + len(udp) + 100)
    sc.silent(eth(STORE_MAC, C1.mac, 0x0800, ip + udp))
    # Total length below the header length.
    ip = ipv4_header(C1.ip, STORE_IP, 17, len(udp), sc.new_ip_id(), total=12)
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, ip + udp)))
    # IPv4 header cut off (Ethernet + 10 bytes).
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, ip[:10]))[:24])
    # Version 6 in an IPv4 EtherType.
    ip6 = bytearray(ipv4_header(C1.ip, STORE_IP, 17, len(udp), sc.new_ip_id()))
    ip6[0] = 0x65
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, bytes(ip6) + udp)))
    ok()
    # Bad IP checksum.
    ip = ipv4_header(C1.ip, STORE_IP, 17, len(udp), sc.new_ip_id(), bad_checksum=True)
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, ip + udp)))
    # Not our IP (our MAC).
    udp_other = udp_segment(C1.ip, bytes([192, 0, 2, 77]), C1.port, STORE_PORT, mc_header(902) + b"version\r\n")
    ip = ipv4_header(C1.ip, bytes([192, 0, 2, 77]), 17, len(udp_other), sc.new_ip_id())
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, ip + udp_other)))
    # TCP.
    ip = ipv4_header(C1.ip, STORE_IP, 6, 20, sc.new_ip_id())
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, ip + struct.pack("!HHIIHHHH", 40000, 11211, 1, 0, 0x5002, 1024, 0, 0))))
    # UDP length beyond the IP payload; UDP length below 8.
    for length in (len(udp) + 10, 7):
        u = udp_segment(C1.ip, STORE_IP, C1.port, STORE_PORT, mc_header(903) + b"version\r\n", length=length)
        ip = ipv4_header(C1.ip, STORE_IP, 17, len(u), sc.new_ip_id())
        sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, ip + u)))
    # Bad UDP checksum.
    sc.silent(sc.udp_frame(C1, mc_header(904) + b"version\r\n", checksum_mode="bad"))
    ok()
    # Wrong port.
    sc.silent(sc.udp_frame(C1, mc_header(905) + b"version\r\n", dport=11212))
    # memcached frames: 8 bytes, fewer, total 2, total 0.
    sc.silent(sc.udp_frame(C1, mc_header(906)))
    sc.silent(sc.udp_frame(C1, mc_header(907)[:5]))
    sc.silent(sc.udp_frame(C1, mc_header(908, total=2) + b"version\r\n"))
    sc.silent(sc.udp_frame(C1, mc_header(909, total=0) + b"version\r\n"))
    # A checksum of 0 means none: answered.
    sc.mc("get nothing\r\n", checksum_mode="zero")
    # Fragments: a non-final fragment whose length is not a multiple of 8; one past 64 KiB.
    l4 = sc.udp_l4(C1, mc_header(910) + b"set x 0 0 100\r\n" + b"x" * 100 + b"\r\n")
    ident = sc.new_ip_id()
    ip = ipv4_header(C1.ip, STORE_IP, 17, 60, ident, flags_frag=0x2000)
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, ip + l4[:60])))
    ip = ipv4_header(C1.ip, STORE_IP, 17, 100, sc.new_ip_id(), flags_frag=0x1FFF)
    sc.silent(pad60(eth(STORE_MAC, C1.mac, 0x0800, ip + b"z" * 100)))
    # A frame whose Ethernet padding holds junk after a valid request: answered.
    sc.mc("get j\r\n")
    sc.events[-1]["pad_junk"] = True
    ok()
    return sc


def scenario_udp_differences():
    sc = Scenario("udp-differences", "where the store deliberately differs from memcached over UDP (expected "
                                     "payloads written by hand from MemcachedEngine's documentation): a value that "
                                     "runs past its datagram, an oversized set, quit")
    V = b"VERSION 1.6.18\r\n"
    sc.mc("set k 0 0 10\r\nabc", hand=[(0, 1, b"CLIENT_ERROR bad data chunk\r\n")])
    sc.mc("defghij\r\n", hand=[(0, 1, b"ERROR\r\n")])
    sc.mc("get k\r\n", hand=[(0, 1, b"END\r\n")])
    sc.mc("set k 0 0 1\r\nk\r\nset j 0 0 100\r\n" + "j" * 50, hand=[(0, 1, b"STORED\r\n"), (0, 1, b"CLIENT_ERROR bad data chunk\r\n")])
    sc.mc("get k j\r\n", hand=[(0, 1, b"VALUE k 0 1\r\nk\r\n"), (0, 1, b"END\r\n")])
    sc.mc("set big 0 0 1\r\nb\r\n", hand=[(0, 1, b"STORED\r\n")])
    sc.mc("set big 0 0 2000000\r\n" + "x" * 100 + "version\r\n", hand=[(0, 1, b"SERVER_ERROR object too large for cache\r\n")])
    sc.mc("version\r\n", hand=[(0, 1, V)])
    sc.mc("get big\r\n", hand=[(0, 1, b"END\r\n")])
    sc.mc("quit\r\n", hand=[(0, 0, b"")])
    sc.mc("version\r\nquit\r\nversion\r\n", hand=[(0, 1, V)])
    sc.mc("version\r\n", hand=[(0, 1, V)])
    return sc


def scenario_icmp_all_zero():
    sc = Scenario("icmp-all-zero", "an echo request whose reply message is all zeros (identifier 0, sequence 0, "
                                   "no data): the reply's ICMP checksum must be 0xFFFF")
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0, 0, b"")))
    sc.icmp(icmp_frame(sc, C1, icmp_echo(0, 1, b"")))
    return sc


def scenario_discards():
    sc = Scenario("discards", "memcached's conn_release_items cases: a get with a 251-byte key (alone, after hits and "
                              "misses, after other commands in the datagram), a line over 2 KiB without a newline, "
                              "HTTP request lines: stacked replies are dropped, later replies numbered on")
    k251 = "k" * 251
    m = sc.mc
    m("set a 0 0 1\r\n1\r\n")
    m("get " + k251 + "\r\n")
    m("version\r\n")
    m("get a " + k251 + " b\r\n")
    m("get missing " + k251 + "\r\n")
    m("version\r\nget " + k251 + "\r\n")
    m("get a\r\nget " + k251 + "\r\n")
    m("version\r\n" + "a" * 3000, fragments=even_pieces(8 + 8 + 9 + 3000))   # too long for one frame
    m("version\r\n")
    m("GET / HTTP/1.1\r\nversion\r\n")
    m("version\r\nGET / HTTP/1.0\r\n")
    m("get a\r\n")
    return sc


SCENARIOS = [scenario_commands, scenario_errors, scenario_multidatagram, scenario_arp, scenario_icmp,
             scenario_fragments, scenario_malformed, scenario_udp_differences,
             scenario_icmp_all_zero, scenario_discards]


def main():
    os.makedirs(OUT, exist_ok=True)
    for make in SCENARIOS:
        sc = make()
        inputs, expected = build(sc)
        write_pcap(os.path.join(OUT, sc.name + ".in.pcap"), inputs, [(T0, i) for i in range(len(inputs))])
        write_pcap(os.path.join(OUT, sc.name + ".expected.pcap"), expected, [(T0, 0)] * len(expected))
        print("%-16s %4d frames in, %4d frames expected" % (sc.name, len(inputs), len(expected)))


if __name__ == "__main__":
    main()
