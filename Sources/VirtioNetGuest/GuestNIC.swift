import UKNetdev
import VirtioNet

/// What a kernel app does with the NIC `GuestNIC.open` found: generic over the transport, so the
/// driver specializes for each (no existentials in the kernel).
public protocol GuestNICVisitor {
    /// `found`: which transport and where, for the app's console ("pci: legacy virtio-net at 00:02.0").
    mutating func visit<T: VirtioTransport & ~Copyable>(_ transport: consuming T, options: VirtioNetOptions, found: String) -> Int32
}

public enum GuestNIC {
    /// Finds the guest's virtio-net device and hands its transport to `visitor`: virtio-mmio at
    /// the command line's `virtio_mmio.device=` addresses (QEMU's microvm names them for Linux
    /// kernels), else the first virtio-net on PCI bus 0 (legacy when it has an I/O BAR,
    /// transitional; modern otherwise), else virtio-mmio in microvm's slots. PCI config space
    /// goes through ECAM when the ACPI tables (from `acpiRSDP`, 0 if none) have an MCFG and
    /// `mapMMIO(base, size)` maps its bus-0 window (q35), through the legacy ports otherwise.
    /// (microvm with `pcie=on` describes its ECAM only in the DSDT's AML, which is not read here.) Returns the visitor's status, or nil with
    /// `problem` set to one line saying what is missing.
    public static func open<V: GuestNICVisitor>(mmioCommandLineValues: [String], acpiRSDP: UInt64,
                                                mapMMIO: (_ base: UInt64, _ size: UInt64) -> Bool,
                                                visitor: inout V, problem: inout String) -> Int32? {
        let mmioBases = VirtioMMIOTransport.bases(fromCommandLineValues: mmioCommandLineValues)
        var bus = "pci"
        if mmioBases.isEmpty, let ecam = ACPI.pciECAM(rsdp: acpiRSDP), let bus0 = ecam.bus0, mapMMIO(bus0.address, bus0.size) {
            PCIConfig.useECAM(ecam)
            bus = "pcie (ECAM at 0x" + String(bus0.address, radix: 16) + ")"
        }
        if mmioBases.isEmpty, let pci = PCIBus.findVirtioNet() {
            if pci.barRegister(0) & 1 != 0, let t = VirtioPCILegacyTransport(pci: pci) {
                return visitor.visit(t, options: VirtioPCILegacyTransport.driverOptions,
                                     found: bus + ": legacy virtio-net at " + pci.address.description)
            }
            guard let t = VirtioPCIModernTransport(pci: pci) else {
                problem = "virtio-net at " + pci.address.description + " has neither a legacy I/O BAR nor the modern capabilities"
                return nil
            }
            return visitor.visit(t, options: VirtioNetOptions(), found: bus + ": modern virtio-net at " + pci.address.description)
        }
        guard let base = VirtioMMIOTransport.find(commandLineBases: mmioBases), let t = VirtioMMIOTransport(base: base) else {
            problem = "no virtio-net device found (QEMU: -device virtio-net-pci,netdev=... or, on microvm, virtio-net-device)"
            return nil
        }
        let options = t.driverOptions
        let found = "virtio-mmio: net at 0x" + String(base, radix: 16) + ", version " + String(t.version)
        return visitor.visit(t, options: options, found: found)
    }
}
