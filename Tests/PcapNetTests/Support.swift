import Foundation
import Testing
import TestSupport
import UKNetdev

let testFlow = UDPFlow(sourceMAC: MACAddress("02:00:00:00:00:01")!, destinationMAC: MACAddress("02:00:00:00:00:02")!,
                       source: IPv4Address("192.0.2.1")!, destination: IPv4Address("192.0.2.2")!,
                       sourcePort: 1234, destinationPort: 11211)

/// A valid Ethernet/IPv4/UDP frame whose `payload`-byte payload starts with `sequence` and is
/// then a pattern of it; the UDP source port says the sequence too (1000 + sequence).
func udpFrame(_ pool: NetBufPool, sequence: Int, payload: Int) throws -> NetBuf {
    let buf = try #require(pool.allocate())
    try buf.setLength(payload)
    for i in 0..<payload { buf.data.storeBytes(of: UInt8(truncatingIfNeeded: sequence &+ i), toByteOffset: i, as: UInt8.self) }
    var flow = testFlow
    flow.sourcePort = UInt16(1000 + sequence)
    try buf.prependUDPHeaders(flow, identification: UInt16(sequence))
    return buf
}

/// The whole chain's bytes.
func bytes(of buf: NetBuf) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: buf.packetLength)
    _ = out.withUnsafeMutableBytes { buf.copyOut(into: $0) }
    return out
}

/// A classic pcap file, little-endian, microsecond timestamps, written byte by byte (to make
/// files libpcap's writer never would: cut captures, cut files, other link types).
struct HandmadePcap {
    var data = Data()
    init(snapLength: UInt32 = 65535, linkType: UInt32 = 1) {
        append32(0xA1B2_C3D4)
        append16(2); append16(4)
        append32(0); append32(0)
        append32(snapLength)
        append32(linkType)
    }
    mutating func append16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func append32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    /// A record of `captured` bytes for a frame that was `length` bytes on the wire.
    mutating func record(_ captured: [UInt8], length: Int? = nil, seconds: UInt32 = 1) {
        append32(seconds); append32(0)
        append32(UInt32(captured.count)); append32(UInt32(length ?? captured.count))
        data.append(contentsOf: captured)
    }
    func write(to path: String) throws { try data.write(to: URL(fileURLWithPath: path)) }
}

/// Runs a program to completion; returns its exit status and standard output.
func run(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

let tsharkPath = ["/usr/bin/tshark", "/usr/local/bin/tshark"].first { FileManager.default.isExecutableFile(atPath: $0) }
