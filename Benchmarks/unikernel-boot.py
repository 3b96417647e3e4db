#!/usr/bin/env python3
"""Boot-time and memory figures of the KV store unikernel, as the paper splits them.

  Benchmarks/unikernel-boot.py [RUNS]        (Benchmarks/run-unikernel-bench.sh runs it)

For each machine (microvm with virtio-mmio, pc+qboot with legacy virtio-pci), RUNS boots
(default 10) of .build-image/kvstore/kvstore.elf under scripts/run-kvm.sh in a network namespace
of its own, on a TAP with 192.0.2.1/24 on our side (TEST-NET-1; nothing leaves the namespace):
  - whole: QEMU started -> the first GET answered (a UDP socket in the namespace sends a GET every
    half millisecond from the moment QEMU is started; a static neighbour entry spares Linux's ARP,
    which would otherwise wait a second to retry a request sent before the guest was up);
  - guest: the kernel's first instruction -> ready to serve, as the kernel reports it (`quiet`:
    no boot log on the serial port, whose every byte is a VM exit), and its port/MMIO exits;
  - VMM: QEMU started -> ready (seen from here) minus the guest time: QEMU's own start-up and the
    firmware before the first instruction.
Then both again with QEMU's -mem-prealloc: the host populates the guest's RAM before it starts.
Without it, the guest's first touch of each 2 MiB of RAM makes the host (itself a VM here)
populate it, which now and then costs ~5 ms in the middle of the guest's set-up (its pool or its
store): a host cost, not guest work, and the reason the guest-time range is wide.
Then the smallest -m (whole MiB, binary search) with which the store still answers a GET.
Medians and ranges are printed, one line per figure. Needs root, iproute2, qemu.
"""
import os, re, socket, statistics, subprocess, sys, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.path.join(REPO, ".build-image/kvstore/kvstore.elf")
RUN = os.path.join(REPO, "scripts/run-kvm.sh")
NS = "uknet-boot-%d" % os.getpid()
TAP = "ukb%d" % (os.getpid() % 10000)
GET = b"\x00\x07\x00\x00\x00\x01\x00\x00get bootkey\r\n"


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def setns():
    import ctypes
    fd = os.open("/var/run/netns/" + NS, os.O_RDONLY)
    if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:   # CLONE_NEWNET (os.setns is 3.12+)
        raise OSError(ctypes.get_errno(), "setns " + NS)
    os.close(fd)


def boot(machine, mem="64M", extra="", prealloc=False):
    """One boot: returns (ms QEMU start -> first GET answered, guest us, exits, console) or None."""
    device = "virtio-net-device" if machine == "microvm" else "virtio-net-pci"
    env = dict(os.environ, MACHINE=machine, MEM=mem, TIMEOUT="20",
               CMDLINE="netdev.ip=192.0.2.2/24 kv.memory=1 kv.shutdown=1 quiet " + extra,
               QEMU_ARGS=("-mem-prealloc " if prealloc else "") + "-netdev tap,id=n0,ifname=%s,script=no,downscript=no,vnet_hdr=off -device %s,netdev=n0,mac=02:00:00:00:00:02" % (TAP, device))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    start = time.monotonic()
    qemu = subprocess.Popen([RUN, IMAGE], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    answered = None
    try:
        while time.monotonic() - start < 10 and qemu.poll() is None:
            try:
                s.sendto(GET, ("192.0.2.2", 11211))
            except OSError:
                pass   # ARP not resolved yet (EHOSTUNREACH after its retries): keep trying
            time.sleep(0.0005)
            try:
                data = s.recv(2048)
                if data[:2] == GET[:2]:
                    answered = time.monotonic()
                    break
            except BlockingIOError:
                pass
        s.sendto(b"\x00\x09\x00\x00\x00\x01\x00\x00shutdown\r\n", ("192.0.2.2", 11211))
        out, _ = qemu.communicate(timeout=20)
    except Exception:
        qemu.kill()
        out, _ = qemu.communicate()
    finally:
        s.close()
    console = out.decode(errors="replace")
    m = re.search(r"guest time (\d+) us; (\d+) port/MMIO exits since main, (\d+) since boot", console)
    if answered is None or m is None or qemu.returncode != 0:
        return None, console
    return ((answered - start) * 1000, int(m.group(1)), int(m.group(3))), console


def summary(name, values, unit):
    v = sorted(values)
    return "%s: median %.1f %s (min %.1f, max %.1f, %d runs)" % (name, statistics.median(v), unit, v[0], v[-1], len(v))


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        sh("ip", "-n", NS, "tuntap", "add", "dev", TAP, "mode", "tap")
        sh("ip", "-n", NS, "addr", "add", "192.0.2.1/24", "dev", TAP)
        sh("ip", "-n", NS, "link", "set", TAP, "up")
        # A static neighbour entry: Linux would send one ARP request before the guest is up and
        # retry only after a second; ARP itself is tested elsewhere (the unikernel answers it).
        sh("ip", "-n", NS, "neigh", "replace", "192.0.2.2", "lladdr", "02:00:00:00:00:02", "dev", TAP, "nud", "permanent")
        setns()   # this process (and QEMU, its child) in the namespace from here on
        print("image: %s, %d bytes stripped" % (IMAGE, os.path.getsize(IMAGE)))
        for machine, prealloc in [("microvm", False), ("pc", False), ("microvm", True), ("pc", True)]:
            whole, guest, exits, failures = [], [], [], 0
            for _ in range(runs):
                r, console = boot(machine, prealloc=prealloc)
                if r is None:
                    failures += 1
                    print("  %s: a boot failed:\n%s" % (machine, console[-1500:]))
                    continue
                whole.append(r[0]); guest.append(r[1] / 1000); exits.append(r[2])
            label = (machine if machine == "microvm" else "pc+qboot") + (" -mem-prealloc" if prealloc else "")
            if not whole:
                print("%s: every boot failed" % label)
                continue
            print(summary("%s QEMU start -> first GET answered" % label, whole, "ms"))
            print(summary("%s guest: first instruction -> ready to serve" % label, guest, "ms"))
            print(summary("%s VMM + firmware (QEMU start -> first instruction: whole minus guest)" % label,
                          [w - g for w, g in zip(whole, guest)], "ms"))
            print(summary("%s port/MMIO exits, boot to ready" % label, exits, ""))
            if failures:
                print("%s: %d of %d boots failed" % (label, failures, runs))
        # Smallest -m that still answers a GET: binary search over whole MiB (microvm).
        lo, hi = 1, 64
        while lo < hi:
            mid = (lo + hi) // 2
            r, _ = boot("microvm", mem="%dM" % mid)
            if r is not None:
                hi = mid
            else:
                lo = mid + 1
        r, _ = boot("microvm", mem="%dM" % lo)
        print("smallest -m that answers a GET (microvm, kv.memory=1): %d MiB%s" % (lo, "" if r else " (did not answer on the check run)"))
    finally:
        subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
