#if canImport(Glibc)
import Glibc
#endif
import CUKLinux

public enum SharedMemoryError: Error, Equatable, CustomStringConvertible {
    case invalidSize(Int)
    case memfdCreateFailed(errno: Int32)
    case resizeFailed(size: Int, errno: Int32)
    case mapFailed(size: Int, errno: Int32)

    public var description: String {
        switch self {
        case .invalidSize(let size):
            "shared memory of \(size) bytes: the size must be positive"
        case .memfdCreateFailed(let e):
            "memfd_create failed: \(String(cString: strerror(e)))"
        case .resizeFailed(let size, let e):
            "could not size the shared memory file to \(size) bytes (ftruncate): \(String(cString: strerror(e)))"
        case .mapFailed(let size, let e):
            "could not map \(size) bytes of shared memory (mmap): \(String(cString: strerror(e)))"
        }
    }
}

/// Memory a vhost-user backend can map too: one memfd mapped shared, read/write, once. Netbuf
/// slabs and virtqueue rings are carved out of it with `allocate`, and its `fd` goes to the
/// backend in SET_MEM_TABLE (see `vhostUserRegion`).
///
/// Addressing is identity, as DPDK's virtio_user does it: the "guest physical" address of a
/// byte is its virtual address here, so a pool built in this memory passes
/// `deviceAddress: UInt64(UInt(bitPattern: region.baseAddress))`.
public final class SharedMemory {
    public let base: UnsafeMutableRawPointer
    /// The mapped size: the requested size rounded up to whole pages (the backend maps whole
    /// pages, and touching a page past a file's end is SIGBUS).
    public let size: Int
    public let fd: Int32
    /// Bytes handed out so far, counting alignment padding.
    public private(set) var used = 0

    public init(size requested: Int, name: String = "uknet-vhost-user") throws(SharedMemoryError) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard requested > 0, requested <= Int.max - page else { throw .invalidSize(requested) }
        let size = (requested + page - 1) / page * page
        let fd = uk_memfd_create(name)
        guard fd >= 0 else { throw .memfdCreateFailed(errno: -fd) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let e = errno
            close(fd)
            throw .resizeFailed(size: size, errno: e)
        }
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = errno
            close(fd)
            throw .mapFailed(size: size, errno: e)
        }
        self.base = p
        self.size = size
        self.fd = fd
    }

    deinit {
        munmap(base, size)
        close(fd)
    }

    /// Bytes still free (before any alignment padding).
    public var remaining: Int { size - used }

    /// The next `bytes` bytes aligned to `alignment` (a power of two), zero-filled (a fresh memfd
    /// is zero and nothing is ever handed out twice); nil when they do not fit.
    public func allocate(bytes: Int, alignment: Int = 64) -> UnsafeMutableRawBufferPointer? {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment \(alignment) is not a power of two")
        guard bytes > 0 else { return nil }
        // Aligned as an address (the mapping is only page-aligned), with every step checked
        // so that no request, however large, can reach past the end.
        let start = UInt(bitPattern: base)
        let next = start + UInt(used)
        let (padded, overflow) = next.addingReportingOverflow(UInt(alignment - 1))
        guard !overflow else { return nil }
        let aligned = padded & ~UInt(alignment - 1)
        let offset = Int(aligned - start)
        guard offset <= size, bytes <= size - offset else { return nil }
        used = offset + bytes
        return UnsafeMutableRawBufferPointer(start: base + offset, count: bytes)
    }

    /// Whether `length` bytes from `pointer` lie wholly inside this memory.
    public func contains(_ pointer: UnsafeRawPointer, length: Int) -> Bool {
        guard length >= 0 else { return false }
        let start = UInt(bitPattern: base)
        let p = UInt(bitPattern: pointer)
        guard p >= start else { return false }
        let offset = p - start
        return offset <= UInt(size) && UInt(length) <= UInt(size) - offset
    }

    /// The address the backend knows `pointer` by (identity: its virtual address).
    public func deviceAddress(of pointer: UnsafeRawPointer) -> UInt64 {
        precondition(contains(pointer, length: 0), "the pointer is not in this shared memory")
        return UInt64(UInt(bitPattern: pointer))
    }

    /// This memory as one SET_MEM_TABLE region, identity-mapped. The region borrows `fd`: keep
    /// this object alive until the message is sent (the backend then holds its own mapping).
    public var vhostUserRegion: VhostUserMemoryRegion {
        let address = UInt64(UInt(bitPattern: base))
        return VhostUserMemoryRegion(guestPhysicalAddress: address, size: UInt64(size),
                                     userspaceAddress: address, mmapOffset: 0, fd: fd)
    }
}
