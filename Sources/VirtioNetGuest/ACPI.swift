import UKNetdev

/// PCI Express configuration space mapped into memory (ECAM): 4 KiB per function at
/// `base + (bus - startBus) << 20 | device << 15 | function << 12`, for one PCI segment's buses
/// `startBus...endBus`, as the ACPI MCFG table lists it. QEMU's q35 has it at 0xB0000000 (and the
/// legacy ports too), microvm with `pcie=on` at 0xE0000000 (and nothing else).
public struct PCIExpressECAM: Sendable, Equatable {
    public var base: UInt64
    public var startBus: UInt8
    public var endBus: UInt8
    public init(base: UInt64, startBus: UInt8, endBus: UInt8) {
        self.base = base
        self.startBus = startBus
        self.endBus = endBus
    }
    /// Bytes of the window that hold bus 0 (the only bus scanned), where it is.
    public var bus0: (address: UInt64, size: UInt64)? {
        startBus == 0 ? (base, 1 << 20) : nil
    }
}

/// Just enough ACPI to find the ECAM window: the RSDP, the XSDT (or the RSDT of ACPI 1.0), and
/// the MCFG it points to. Firmware's tables are read in place (memory is mapped 1:1 below
/// 4 GiB), each table's checksum and length checked first, every entry read within them: a bad
/// table means no ECAM (the legacy ports then, where there are any), never a fault.
public enum ACPI {
    static let maxTableBytes = 1 << 16

    /// The MCFG entry for PCI segment 0, if the firmware's tables have one. `rsdp`: the RSDP's
    /// address (the platform's uk_acpi_rsdp()); 0 means none.
    public static func pciECAM(rsdp: UInt64) -> PCIExpressECAM? {
        guard let mcfg = findTable("MCFG", rsdp: rsdp), mcfg.length >= 44 + 16 else { return nil }
        var offset = 44   // the header (36) and 8 reserved bytes, then 16-byte entries
        while offset + 16 <= mcfg.length {
            let base = load(UInt64.self, mcfg.address, offset)
            let segment = load(UInt16.self, mcfg.address, offset + 8)
            let start = load(UInt8.self, mcfg.address, offset + 10)
            let end = load(UInt8.self, mcfg.address, offset + 11)
            if segment == 0 && base != 0 && end >= start && base < 1 << 32 {
                return PCIExpressECAM(base: base, startBus: start, endBus: end)
            }
            offset += 16
        }
        return nil
    }

    /// The table with `signature` (four ASCII letters) listed by the RSDP's XSDT (revision 2 and
    /// up) or RSDT: its address and length, checksum verified.
    static func findTable(_ signature: StaticString, rsdp: UInt64) -> (address: UInt, length: Int)? {
        guard rsdp != 0, rsdp < 1 << 32, matches(UInt(rsdp), "RSD PTR "), checksum(UInt(rsdp), 20) else { return nil }
        let revision = load(UInt8.self, UInt(rsdp), 15)
        let wide = revision >= 2 && checksum(UInt(rsdp), 36) && load(UInt64.self, UInt(rsdp), 24) != 0
        let rootAddress = wide ? load(UInt64.self, UInt(rsdp), 24) : UInt64(load(UInt32.self, UInt(rsdp), 16))
        guard let root = table(at: rootAddress, signature: wide ? "XSDT" : "RSDT") else { return nil }
        let entrySize = wide ? 8 : 4
        var offset = 36
        while offset + entrySize <= root.length {
            let address = wide ? load(UInt64.self, root.address, offset) : UInt64(load(UInt32.self, root.address, offset))
            if let t = table(at: address, signature: signature) { return t }
            offset += entrySize
        }
        return nil
    }

    /// The table at `address` if it has `signature`, a sane length and a zero checksum.
    static func table(at address: UInt64, signature: StaticString) -> (address: UInt, length: Int)? {
        guard address != 0, address < 1 << 32, matches(UInt(address), signature) else { return nil }
        let length = Int(load(UInt32.self, UInt(address), 4))
        guard length >= 36, length <= maxTableBytes, UInt64(length) + address <= 1 << 32,
              checksum(UInt(address), length) else { return nil }
        return (UInt(address), length)
    }

    static func load<T>(_ type: T.Type, _ address: UInt, _ offset: Int) -> T {
        UnsafeRawPointer(bitPattern: address + UInt(offset))!.loadUnaligned(as: T.self)
    }

    static func matches(_ address: UInt, _ signature: StaticString) -> Bool {
        let bytes = UnsafeRawPointer(bitPattern: address)!.assumingMemoryBound(to: UInt8.self)
        for i in 0..<signature.utf8CodeUnitCount where bytes[i] != signature.utf8Start[i] { return false }
        return true
    }

    static func checksum(_ address: UInt, _ length: Int) -> Bool {
        let bytes = UnsafeRawPointer(bitPattern: address)!.assumingMemoryBound(to: UInt8.self)
        var sum: UInt8 = 0
        for i in 0..<length { sum &+= bytes[i] }
        return sum == 0
    }
}
