// pktgen-bench: the packet generator's TX path in a tight loop over the null device (which
// frees each burst in bulk), the setup `pktgen tx --netdev null` runs, for Mpps, callgrind
// instruction counts and the malloc counter. Run through Benchmarks/run-pktgen-bench.sh (beside
// testpmd txonly on DPDK's net_null) and Benchmarks/check-hotpath.sh.
//
//   pktgen-bench tx-null PACKETS         64-byte frames (60 without FCS), one flow, no probe
//   pktgen-bench tx-null-probe PACKETS   the same with 16 flows and a sequence/time stamp
//
// Prints `pktgen MODE packets=N seconds=S mpps=M mallocs=K warmup=W` (K: heap allocations in the
// loop; W: packets sent first through the same loop function, which callgrind counts too).
import BenchSupport
import Glibc
import PktGen
import UKNetdev

/// Sends `packets` frames in bursts of 32; the loop callgrind toggles on.
@inline(never)
func txNullLoop(_ gen: inout TxGenerator, _ dev: inout NullDevice, packets: Int, now: UInt64) -> Int {
    var sent = 0
    while sent < packets {
        let n = gen.send(on: &dev, limit: packets &- sent, now: now)
        if n == 0 { break }   // the pool ran dry: a setup error, not a hang
        sent &+= n
    }
    return sent
}

func run(mode: String, packets: Int) {
    let probe = mode == "tx-null-probe"
    let pool = try! NetBufPool(count: 1024, roomSize: 2048, headroom: 128, threading: .singleThread)
    var dev = NullDevice()
    try! dev.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
    let template = try! FrameTemplate(FrameSpec(frameLength: 60, flows: probe ? 16 : 1, variation: .both, probe: probe))
    var gen = try! TxGenerator(template: template, pool: pool, burstSize: 32, prefilled: true)
    let warmup = 10_000
    _ = txNullLoop(&gen, &dev, packets: warmup, now: 1)
    let m0 = malloc_counter_calls()
    let t0 = now()
    let sent = txNullLoop(&gen, &dev, packets: packets, now: 2)
    let t1 = now()
    let m1 = malloc_counter_calls()
    guard sent == packets else { fail("sent \(sent) of \(packets)") }
    print("pktgen \(mode) packets=\(packets) seconds=\(fixed3(t1 - t0)) mpps=\(fixed3(Double(packets) / (t1 - t0) / 1e6)) mallocs=\(m1 - m0) warmup=\(warmup)")
    gen.deallocate()
    template.deallocate()
    guard pool.inUse == 0 else { fail("\(pool.inUse) buffers not returned") }
}

let args = CommandLine.arguments
guard args.count == 3, ["tx-null", "tx-null-probe"].contains(args[1]), let packets = Int(args[2]), packets > 0 else {
    fail("usage: pktgen-bench tx-null|tx-null-probe PACKETS")
}
run(mode: args[1], packets: packets)
