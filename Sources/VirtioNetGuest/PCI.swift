import CUKHardware
import UKNetdev

/// Where a PCI function sits.
public struct PCIAddress: Equatable, Sendable, CustomStringConvertible {
    public var bus: UInt8
    public var device: UInt8
    public var function: UInt8
    public init(bus: UInt8, device: UInt8, function: UInt8) {
        self.bus = bus
        self.device = device
        self.function = function
    }
    public var description: String {
        hexByte(bus) + ":" + hexByte(device) + "." + String(function)
    }
}


/// PCI configuration space, through one of two mechanisms:
/// - the legacy one: an address written to port 0xCF8, the data read or written at 0xCFC (every
///   x86 PC, QEMU's pc and q35): two VM exits per access;
/// - ECAM (PCI Express: `useECAM`, from the ACPI MCFG table): the space mapped into memory, one
///   MMIO access and one exit per access; the only one on microvm with `pcie=on`.
/// Only bus 0 is reached through ECAM (the window mapped is bus 0's).
public enum PCIConfig {
    /// The mapped base of bus 0's ECAM space, or 0 for the legacy ports.
    nonisolated(unsafe) static var ecamBus0: UInt = 0

    /// From now on, config space through ECAM. The caller has mapped `ecam.bus0` uncached.
    public static func useECAM(_ ecam: PCIExpressECAM) {
        if let bus0 = ecam.bus0 { ecamBus0 = UInt(bus0.address) }
    }
    public static var usesECAM: Bool { ecamBus0 != 0 }

    @inline(__always)
    static func ecam(_ a: PCIAddress, _ offset: UInt8) -> UInt? {
        guard ecamBus0 != 0 else { return nil }
        guard a.bus == 0 else { return 0 }   // not mapped: reads as absent, writes dropped
        return ecamBus0 + UInt(a.device & 31) << 15 + UInt(a.function & 7) << 12 + UInt(offset)
    }
    @inline(__always)
    static func select(_ a: PCIAddress, _ offset: UInt8) {
        let address: UInt32 = 0x8000_0000 | UInt32(a.bus) << 16 | UInt32(a.device & 31) << 11
            | UInt32(a.function & 7) << 8 | UInt32(offset & 0xFC)
        uk_outl(0xCF8, address)
    }
    public static func read32(_ a: PCIAddress, _ offset: UInt8) -> UInt32 {
        if let m = ecam(a, offset & 0xFC) { return m == 0 ? 0xFFFF_FFFF : uk_mmio_read32(m) }
        select(a, offset)
        return uk_inl(0xCFC)
    }
    public static func read16(_ a: PCIAddress, _ offset: UInt8) -> UInt16 {
        if let m = ecam(a, offset & 0xFE) { return m == 0 ? 0xFFFF : uk_mmio_read16(m) }
        select(a, offset)
        return uk_inw(0xCFC + UInt16(offset & 2))
    }
    public static func read8(_ a: PCIAddress, _ offset: UInt8) -> UInt8 {
        if let m = ecam(a, offset) { return m == 0 ? 0xFF : uk_mmio_read8(m) }
        select(a, offset)
        return uk_inb(0xCFC + UInt16(offset & 3))
    }
    public static func write32(_ a: PCIAddress, _ offset: UInt8, _ value: UInt32) {
        if let m = ecam(a, offset & 0xFC) { if m != 0 { uk_mmio_write32(m, value) }; return }
        select(a, offset)
        uk_outl(0xCFC, value)
    }
    public static func write16(_ a: PCIAddress, _ offset: UInt8, _ value: UInt16) {
        if let m = ecam(a, offset & 0xFE) { if m != 0 { uk_mmio_write16(m, value) }; return }
        select(a, offset)
        uk_outw(0xCFC + UInt16(offset & 2), value)
    }
}

/// One function found on the bus.
public struct PCIFunction: Sendable {
    public var address: PCIAddress
    public var vendor: UInt16
    public var deviceID: UInt16
    /// Read when asked (each config read is two VM exits under KVM).
    public var subsystemID: UInt16 { UInt16(truncatingIfNeeded: PCIConfig.read32(address, 0x2C) >> 16) }
    public var revision: UInt8 { PCIConfig.read8(address, 0x08) }

    /// Command register bits.
    public static var ioSpace: UInt16 { 1 }
    public static var memorySpace: UInt16 { 2 }
    public static var busMaster: UInt16 { 4 }

    /// Turns on what the device needs (I/O or memory decoding, DMA): firmware such as qboot
    /// leaves it off.
    public func enable(_ bits: UInt16) {
        let command = PCIConfig.read16(address, 0x04)
        if command & bits != bits { PCIConfig.write16(address, 0x04, command | bits) }
    }

    /// Base address register `index`: an I/O port base or a memory address (64-bit BARs take
    /// two registers), and its size (probed by writing all ones, then restored).
    public func bar(_ index: Int) -> PCIBar {
        let offset = UInt8(0x10 + 4 * index)
        let raw = PCIConfig.read32(address, offset)
        let isIO = raw & 1 != 0
        PCIConfig.write32(address, offset, 0xFFFF_FFFF)
        let mask = PCIConfig.read32(address, offset)
        PCIConfig.write32(address, offset, raw)
        if isIO {
            let size = (~(mask & 0xFFFF_FFFC) &+ 1) & 0xFFFF
            return PCIBar(isIO: true, base: UInt64(raw & 0xFFFF_FFFC), size: UInt64(size), is64Bit: false)
        }
        let is64 = (raw >> 1) & 3 == 2
        var base = UInt64(raw & 0xFFFF_FFF0)
        if is64 { base |= UInt64(PCIConfig.read32(address, offset + 4)) << 32 }
        let size = UInt64(~(mask & 0xFFFF_FFF0) &+ 1)
        return PCIBar(isIO: false, base: base, size: mask == 0 ? 0 : size, is64Bit: is64)
    }

    /// Base address register `index` as it reads: bit 0 set for an I/O BAR, whose port base is
    /// the rest; one config read, where `bar` (which also sizes it) takes four.
    public func barRegister(_ index: Int) -> UInt32 {
        PCIConfig.read32(address, UInt8(0x10 + 4 * index))
    }

    /// Gives an I/O BAR that firmware left unassigned (qboot assigns none) the port `base`.
    public func assignIOBar(_ index: Int, base: UInt16) {
        PCIConfig.write32(address, UInt8(0x10 + 4 * index), UInt32(base) | 1)
    }

    /// Gives a 32-bit memory BAR the address `base` (below 4 GiB, in the PCI hole).
    public func assignMemoryBar(_ index: Int, base: UInt32) {
        PCIConfig.write32(address, UInt8(0x10 + 4 * index), base)
    }

    /// The capability list: (id, offset) of each, as the device lists them.
    public func capabilities(_ body: (_ id: UInt8, _ offset: UInt8) -> Void) {
        guard PCIConfig.read16(address, 0x06) & 0x10 != 0 else { return }   // status: capability list
        var offset = PCIConfig.read8(address, 0x34) & 0xFC
        var hops = 0
        while offset != 0 && hops < 48 {   // bounded: a looping list cannot hang the boot
            body(PCIConfig.read8(address, offset), offset)
            offset = PCIConfig.read8(address, offset + 1) & 0xFC
            hops += 1
        }
    }
}

public struct PCIBar: Sendable {
    public var isIO: Bool
    public var base: UInt64
    public var size: UInt64
    public var is64Bit: Bool
}

public enum PCIBus {
    /// The functions on bus 0 (QEMU's pc and q35 put their devices there) until `body` returns
    /// true: function 0 of every slot first, one config read each, then the other functions of
    /// the multi-function devices. Each read is two port exits under KVM (~25 us each here), so
    /// the common case, a NIC at function 0 of a slot after a multi-function chipset device
    /// (pc's PIIX3 at 00:01), costs a read per slot up to it instead of eight for the chipset's.
    public static func scan(_ body: (PCIFunction) -> Bool) {
        var multiFunction: UInt32 = 0   // a bit per slot whose function 0 says it has others
        for device in UInt8(0)..<32 {
            let first = PCIAddress(bus: 0, device: device, function: 0)
            let id = PCIConfig.read32(first, 0)
            guard id & 0xFFFF != 0xFFFF else {
                if device == 0 { return }   // no host bridge at 00:00.0: no PCI at all (microvm): one read, not 32
                continue
            }
            if body(PCIFunction(address: first, vendor: UInt16(truncatingIfNeeded: id), deviceID: UInt16(truncatingIfNeeded: id >> 16))) {
                return
            }
            if PCIConfig.read8(first, 0x0E) & 0x80 != 0 { multiFunction |= 1 << UInt32(device) }
        }
        for device in UInt8(0)..<32 where multiFunction & (1 << UInt32(device)) != 0 {
            for function in UInt8(1)..<8 {
                let a = PCIAddress(bus: 0, device: device, function: function)
                let id = PCIConfig.read32(a, 0)
                guard id & 0xFFFF != 0xFFFF else { continue }
                if body(PCIFunction(address: a, vendor: UInt16(truncatingIfNeeded: id), deviceID: UInt16(truncatingIfNeeded: id >> 16))) {
                    return
                }
            }
        }
    }

    /// The first virtio-net function (in `scan`'s order): 1af4:1041 (modern), 1af4:1000
    /// (transitional network card), or another transitional id (1001-103f) whose subsystem id
    /// says network (1).
    public static func findVirtioNet() -> PCIFunction? {
        var found: PCIFunction?
        scan { f in
            guard f.vendor == 0x1AF4 else { return false }
            if f.deviceID == 0x1041 || f.deviceID == 0x1000 || ((0x1001...0x103F).contains(f.deviceID) && f.subsystemID == 1) {
                found = f
            }
            return found != nil
        }
        return found
    }
}
