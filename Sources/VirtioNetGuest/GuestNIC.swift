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
    /// transitional; modern otherwise), else virtio-mmio in microvm's slots. Returns the visitor's
    /// status, or nil with `problem` set to one line saying what is missing.
    public static func open<V: GuestNICVisitor>(mmioCommandLineValues: [String], visitor: inout V,
                                                problem: inout String) -> Int32? {
        let mmioBases = VirtioMMIOTransport.bases(fromCommandLineValues: mmioCommandLineValues)
        if mmioBases.isEmpty, let pci = PCIBus.findVirtioNet() {
            if pci.barRegister(0) & 1 != 0, let t = VirtioPCILegacyTransport(pci: pci) {
                return visitor.visit(t, options: VirtioPCILegacyTransport.driverOptions,
                                     found: "pci: legacy virtio-net at " + pci.address.description)
            }
            guard let t = VirtioPCIModernTransport(pci: pci) else {
                problem = "virtio-net at " + pci.address.description + " has neither a legacy I/O BAR nor the modern capabilities"
                return nil
            }
            return visitor.visit(t, options: VirtioNetOptions(), found: "pci: modern virtio-net at " + pci.address.description)
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
