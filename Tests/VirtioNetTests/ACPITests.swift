import Glibc
import Testing
@testable import VirtioNetGuest

/// The unikernel's ACPI reader (the MCFG table that names the PCI Express ECAM window), on tables
/// built here the way QEMU's q35 lays them out, and on broken ones: each must give "no ECAM",
/// never a fault. The reader only follows addresses below 4 GiB (the kernel maps those), so the
/// tables are placed in a mapping at a fixed low address.
@Suite(.serialized) struct ACPITests {
    static let base: UInt = 0x3000_0000
    static let size = 1 << 16

    /// Memory at `base`: RSDP at +0, XSDT at +0x100, RSDT at +0x200, FACP at +0x300, MCFG at +0x400.
    final class Tables {
        let p: UnsafeMutableRawPointer
        init() throws {
            let m = mmap(UnsafeMutableRawPointer(bitPattern: ACPITests.base), ACPITests.size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
            guard let m, m != MAP_FAILED, UInt(bitPattern: m) == ACPITests.base else {
                throw MappingFailed("could not map test memory at 0x30000000")
            }
            p = m
        }
        deinit { munmap(p, ACPITests.size) }

        func put<T>(_ value: T, at offset: Int) { p.storeBytes(of: value, toByteOffset: offset, as: T.self) }
        func put(_ text: String, at offset: Int) { for (i, b) in text.utf8.enumerated() { put(b, at: offset + i) } }
        /// Sets the byte at `offset + at` so that `length` bytes from `offset` sum to 0.
        func fixChecksum(_ offset: Int, length: Int, at: Int) {
            put(UInt8(0), at: offset + at)
            var sum: UInt8 = 0
            for i in 0..<length { sum &+= p.load(fromByteOffset: offset + i, as: UInt8.self) }
            put(UInt8(0) &- sum, at: offset + at)
        }
        func header(_ signature: String, at offset: Int, length: Int) {
            put(signature, at: offset)
            put(UInt32(length), at: offset + 4)
            put(UInt8(1), at: offset + 8)
            put("UKNET ", at: offset + 10)
        }
        var address: UInt64 { UInt64(ACPITests.base) }

        /// A well-formed set: RSDP revision 2 -> XSDT [FACP, MCFG]; RSDT [FACP, MCFG] for ACPI 1.0.
        func build(ecam: UInt64 = 0xB000_0000, segment: UInt16 = 0, startBus: UInt8 = 0, endBus: UInt8 = 0xFF) {
            memset(p, 0, ACPITests.size)
            put("RSD PTR ", at: 0)
            put(UInt8(2), at: 15)
            put(UInt32(ACPITests.base + 0x200), at: 16)
            put(UInt32(36), at: 20)
            put(UInt64(ACPITests.base + 0x100), at: 24)
            fixChecksum(0, length: 20, at: 8)
            fixChecksum(0, length: 36, at: 32)
            header("XSDT", at: 0x100, length: 36 + 16)
            put(UInt64(ACPITests.base + 0x300), at: 0x100 + 36)
            put(UInt64(ACPITests.base + 0x400), at: 0x100 + 44)
            fixChecksum(0x100, length: 52, at: 9)
            header("RSDT", at: 0x200, length: 36 + 8)
            put(UInt32(ACPITests.base + 0x300), at: 0x200 + 36)
            put(UInt32(ACPITests.base + 0x400), at: 0x200 + 40)
            fixChecksum(0x200, length: 44, at: 9)
            header("FACP", at: 0x300, length: 36)
            fixChecksum(0x300, length: 36, at: 9)
            header("MCFG", at: 0x400, length: 60)
            put(ecam, at: 0x400 + 44)
            put(segment, at: 0x400 + 52)
            put(startBus, at: 0x400 + 54)
            put(endBus, at: 0x400 + 55)
            fixChecksum(0x400, length: 60, at: 9)
        }
    }

    struct MappingFailed: Error { let message: String; init(_ m: String) { message = m } }

    @Test func findsQ35sECAMThroughTheXSDT() throws {
        let t = try Tables()
        t.build()
        #expect(ACPI.pciECAM(rsdp: t.address) == PCIExpressECAM(base: 0xB000_0000, startBus: 0, endBus: 0xFF))
        #expect(ACPI.pciECAM(rsdp: t.address)?.bus0?.size == 1 << 20)
    }

    @Test func findsItThroughTheRSDTOfACPI1() throws {
        let t = try Tables()
        t.build()
        t.put(UInt8(0), at: 15)                 // revision 0: no XSDT, the RSDT is used
        t.fixChecksum(0, length: 20, at: 8)
        t.put(UInt32(0xDEAD), at: 0x100)        // and a broken XSDT is not even looked at
        #expect(ACPI.pciECAM(rsdp: t.address)?.base == 0xB000_0000)
    }

    @Test func brokenTablesMeanNoECAM() throws {
        let t = try Tables()
        // Each breakage on an otherwise good set: nil, no fault.
        let breakages: [(String, (Tables) -> Void)] = [
            ("no RSDP", { _ in }),
            ("RSDP signature", { $0.put("RSD PTX ", at: 0) }),
            ("RSDP checksum", { $0.put(UInt8(0x55), at: 9) }),
            ("XSDT checksum, RSDP revision 2", { $0.put(UInt8(0x55), at: 0x100 + 20) }),
            ("MCFG checksum", { $0.put(UInt8(0x55), at: 0x400 + 20) }),
            ("MCFG length beyond 64 KiB", { t in t.put(UInt32(1 << 20), at: 0x404); t.fixChecksum(0x400, length: 60, at: 9) }),
            ("MCFG too short for an entry", { t in t.put(UInt32(44), at: 0x404); t.fixChecksum(0x400, length: 44, at: 9) }),
            ("XSDT entry above 4 GiB", { t in t.put(UInt64(1) << 40, at: 0x100 + 44); t.fixChecksum(0x100, length: 52, at: 9) }),
            ("ECAM above 4 GiB", { t in t.put(UInt64(1) << 33, at: 0x400 + 44); t.fixChecksum(0x400, length: 60, at: 9) }),
            ("segment 1 only", { t in t.put(UInt16(1), at: 0x400 + 52); t.fixChecksum(0x400, length: 60, at: 9) }),
            ("end bus before start bus", { t in t.put(UInt8(9), at: 0x400 + 54); t.put(UInt8(3), at: 0x400 + 55); t.fixChecksum(0x400, length: 60, at: 9) }),
        ]
        for (name, breakIt) in breakages {
            t.build()
            if name == "no RSDP" {
                #expect(ACPI.pciECAM(rsdp: 0) == nil, "\(name)")
                continue
            }
            breakIt(t)
            #expect(ACPI.pciECAM(rsdp: t.address) == nil, "\(name)")
        }
        t.build()
        #expect(ACPI.pciECAM(rsdp: t.address) != nil, "the good set again")
        #expect(ACPI.pciECAM(rsdp: 1 << 40) == nil, "an RSDP above 4 GiB")
    }

    @Test func anECAMThatDoesNotStartAtBus0HasNoBus0Window() {
        #expect(PCIExpressECAM(base: 0xB000_0000, startBus: 1, endBus: 4).bus0 == nil)
    }
}
