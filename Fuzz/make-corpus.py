#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzzers (Fuzz/Corpus/<name>/) from Traces/*.in.pcap.

Run once from anywhere (python3, standard library only); the files it writes are committed, and
running it again writes the same bytes. It replaces only the seeds it makes (`trace-*`,
`ring-*`); regression inputs kept beside them (`crash-*`, named for what they found) stay.

  wire       frame records [control 0][length: 2 bytes, big-endian][frame]: per trace, its
             whole input as one seed, and two of its frames alone
  kv-server  a configuration byte (0x40: memcached, the fast paths compared with the general
             path; 0x41: the same in echo mode; 0x46: one frame per TX burst, 2 per RX burst), then
             the trace's frames as records: per trace one seed
  memcached  datagram records [clock step 0][length: 2 bytes][UDP payload]: meta commands and
             stats as one seed; per trace the
             memcached datagrams it sends (fragments reassembled) as one seed, and single
             requests of the command and error traces
  virtio-used-ring
             short scripts of device and driver actions (the opcodes of
             Fuzz/Sources/virtio-used-ring): honest traffic, each lie of HostileDeviceTests, merged
             buffers, stop and start, a device that goes away and comes back
"""
import glob
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Fuzz", "Corpus")
SERVER_PORT = 11211


def read_pcap(path):
    data = open(path, "rb").read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file")
    frames = []
    offset = 24
    while offset + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        offset += 16
        frames.append(data[offset:offset + incl])
        offset += incl
    return frames


def record(frame, control=0):
    return bytes([control]) + struct.pack(">H", len(frame)) + frame


def memcached_frame(request_id, body):
    """One memcached datagram from 192.0.2.3:40000 to the fuzzed store (02:00:00:00:00:02,
    192.0.2.2:11211), both checksums left zero."""
    udp = struct.pack(">HHHH", 40000, 11211, 8 + 8 + len(body), 0) + struct.pack(">HHHH", request_id, 0, 1, 0) + body
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), request_id, 0, 64, 17, 0,
                     bytes([192, 0, 2, 3]), bytes([192, 0, 2, 2]))
    return bytes.fromhex("020000000002" "020000000003" "0800") + ip + udp


def udp_payloads(frames):
    """The UDP payloads to the server's port, in order, IPv4 fragments reassembled."""
    pending = {}
    out = []
    for f in frames:
        if len(f) < 34:
            continue
        l2 = 18 if f[12:14] == b"\x81\x00" else 14
        if f[l2 - 2:l2] != b"\x08\x00" or len(f) < l2 + 20 or f[l2] >> 4 != 4:
            continue
        ihl = (f[l2] & 0x0F) * 4
        total = struct.unpack(">H", f[l2 + 2:l2 + 4])[0]
        if ihl < 20 or total < ihl or l2 + total > len(f) or f[l2 + 9] != 17:
            continue
        ip = f[l2:l2 + total]
        flags_offset = struct.unpack(">H", ip[6:8])[0]
        more, offset = flags_offset & 0x2000, (flags_offset & 0x1FFF) * 8
        payload = ip[ihl:]
        if more or offset:
            key = (ip[12:16], ip[4:6])
            parts = pending.setdefault(key, {})
            parts[offset] = payload
            if not more:
                parts["end"] = offset + len(payload)
            if "end" not in parts:
                continue
            data = b""
            while len(data) in parts:
                data += parts[len(data)]
            if len(data) != parts["end"]:
                continue
            del pending[key]
            payload = data
        if len(payload) < 8:
            continue
        udp_len = struct.unpack(">H", payload[4:6])[0]
        if struct.unpack(">H", payload[2:4])[0] != SERVER_PORT or udp_len < 8 or udp_len > len(payload):
            continue
        out.append(payload[8:udp_len])
    return out


def write(name, file, data):
    with open(os.path.join(CORPUS, name, file), "wb") as f:
        f.write(data)


def clear(name):
    os.makedirs(os.path.join(CORPUS, name), exist_ok=True)
    for path in glob.glob(os.path.join(CORPUS, name, "trace-*")) + glob.glob(os.path.join(CORPUS, name, "ring-*")):
        os.remove(path)


def virtio_seeds():
    """Scripts for Fuzz/Sources/virtio-used-ring (see `step` there for the opcodes)."""
    def receive(frame, flags=0):
        return bytes([0x00, flags]) + b"\x00\x00\x00\x00" + struct.pack(">H", len(frame)) + frame

    def rx_burst(n=32):
        return bytes([0x04, n])

    def put_used(queue, ident, length, publish=True):
        op = 0x01 | 0x20 | 0x10 | (queue << 7) | (0 if publish else 0x40)
        return bytes([op]) + struct.pack(">II", ident, length)

    def publish_used(queue, value):
        return bytes([0x02 | 0x20 | (queue << 7)]) + struct.pack(">H", value)

    def device_writes(buffers, frame, length=None):
        reported = 0 if length is None else 0x8000_0000 | length
        return (bytes([0x03, 0]) + struct.pack(">HHHI", buffers, 0, 0, reported)
                + struct.pack(">H", len(frame)) + frame)

    def transmit(frames):
        out = bytes([0x06, len(frames)])
        for kind, length in frames:
            out += bytes([kind]) + struct.pack(">H", length)
            out += b"\x00" * min(length, 64)
            if kind & 0x01:
                out += struct.pack(">HB", 14 + 20, 6)
            if kind & 0x04:
                out += b"\x10"
        return out

    frame = bytes(range(60))
    mrg_csum = 0x07 | (2 << 3)          # MRG_RXBUF, GUEST_CSUM, CSUM; ring of 8
    plain = 2 << 3                      # no offloads; ring of 8
    return {
        "ring-honest": bytes([mrg_csum]) + receive(frame) + receive(frame, flags=2) + rx_burst()
                       + transmit([(0, 60), (0x80, 100), (0x04, 200)]) + bytes([0x07, 8, 0x09]) + bytes([0x0E, 4]),
        "ring-checksums": bytes([plain]) + transmit([(0x03, 80), (0x83, 80)]) + bytes([0x07, 8, 0x09])
                          + receive(frame, flags=1) + rx_burst(),
        "ring-id-out-of-range": bytes([mrg_csum]) + put_used(0, 4000, 60) + rx_burst() + receive(frame) + rx_burst(),
        "ring-id-twice": bytes([mrg_csum]) + device_writes(1, frame) + put_used(0, 0, 60) + rx_burst(),
        "ring-length-beyond": bytes([mrg_csum]) + device_writes(1, frame, length=5000) + rx_burst(),
        "ring-index-ahead": bytes([mrg_csum]) + publish_used(0, 9) + rx_burst() + bytes([0x0B]) + receive(frame) + rx_burst(),
        "ring-merged-missing": bytes([mrg_csum]) + device_writes(3, frame) + rx_burst(),
        "ring-merged": bytes([mrg_csum]) + device_writes(2, frame) + device_writes(0, frame) + rx_burst(),
        "ring-tx-lie": bytes([mrg_csum]) + transmit([(0, 60)] * 4) + put_used(1, 77, 0) + transmit([(0, 60)]) + bytes([0x09]),
        "ring-runt": bytes([mrg_csum]) + device_writes(1, b"", length=5) + rx_burst(),
        "ring-gone-and-back": bytes([mrg_csum | 0x40 | 0x80]) + receive(frame) + bytes([0x0C]) + rx_burst()
                             + bytes([0x1C]) + rx_burst() + receive(frame) + rx_burst(),
        "ring-stop-start": bytes([mrg_csum]) + transmit([(0, 60)] * 3) + bytes([0x0A, 2, 0x0B]) + receive(frame) + rx_burst(),
    }


def main():
    traces = sorted(glob.glob(os.path.join(ROOT, "Traces", "*.in.pcap")))
    for name in ("wire", "kv-server", "memcached", "virtio-used-ring"):
        clear(name)
    counts = dict.fromkeys(("wire", "kv-server", "memcached", "virtio-used-ring"), 0)
    for path in traces:
        trace = os.path.basename(path)[:-len(".in.pcap")]
        frames = read_pcap(path)
        whole = b"".join(record(f) for f in frames)
        write("wire", f"trace-{trace}", whole)
        for i in sorted({len(frames) // 3, (2 * len(frames)) // 3}):
            write("wire", f"trace-{trace}-{i}", record(frames[i]))
        write("kv-server", f"trace-{trace}", b"\x40" + whole)
        payloads = udp_payloads(frames)
        if payloads:
            write("memcached", f"trace-{trace}", b"".join(b"\x00" + struct.pack(">H", len(p)) + p for p in payloads))
        if trace in ("commands", "errors"):
            for i in range(0, len(payloads), max(1, len(payloads) // 6)):
                p = payloads[i]
                write("memcached", f"trace-{trace}-{i}", b"\x00" + struct.pack(">H", len(p)) + p)
        if trace == "commands":
            write("kv-server", "trace-commands-echo", b"\x41" + whole)
            write("kv-server", "trace-commands-slow-tx", b"\x46" + whole)
    # The meta protocol and stats (no trace has them): one datagram per request.
    meta = [b"ms foo 3 T0 F5 c k O99\r\nbaz\r\n", b"mg foo s v f t c k h l O1\r\n", b"mg nope N30 t s v\r\n",
            b"ms st 1 C1 I\r\nb\r\n", b"md foo I T30 q\r\n", b"mg foo R30 v\r\n", b"ms Zm9v 1 b k ME\r\nx\r\n",
            b"mg Zm9v b k v\r\n", b"ma cnt N0 J10 v MD D3 t c\r\n", b"me foo\r\n", b"mn\r\n", b"stats\r\n",
            b"stats settings\r\n", b"stats reset\r\n", b"shutdown graceful\r\n"]
    header = b"\x00\x01\x00\x00\x00\x01\x00\x00"
    write("memcached", "meta-and-stats", b"".join(b"\x00" + struct.pack(">H", len(header + m)) + header + m for m in meta))
    # Lone GETs at memcached's key-length bound (250 bytes), the line ending in "\r\n" and in "\n"
    # alone, after a SET of the 250-byte key: the fast path and the general path must answer them
    # alike (the frame path once answered a 251-byte key on "\n" alone as a miss). Control 0x03:
    # the target fills in both checksums.
    bodies = [b"set " + b"k" * 250 + b" 0 0 1\r\nv\r\n"] + [b"get " + b"k" * n + end for n in (250, 251) for end in (b"\r\n", b"\n")]
    write("kv-server", "seed-lone-get-key-bounds",
          b"\x40" + b"".join(record(memcached_frame(i, body), control=0x03) for i, body in enumerate(bodies)))
    for file, data in virtio_seeds().items():
        write("virtio-used-ring", file, data)
    for name in counts:
        counts[name] = len(os.listdir(os.path.join(CORPUS, name)))
    print("seeds: " + ", ".join(f"{n} {c}" for n, c in counts.items()))


if __name__ == "__main__":
    main()
