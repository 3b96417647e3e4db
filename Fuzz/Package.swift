// swift-tools-version:5.4
import PackageDescription

// libFuzzer targets over the root package's libraries (issue 14). Built by scripts/fuzz.sh:
//   swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
// Each fuzzer is an executable whose one file defines LLVMFuzzerTestOneInput (libFuzzer brings
// main). Its name is the fuzzer's, and its seed corpus is Fuzz/Corpus/<name>/.
//
// Tools version 5.4 on purpose: from 5.5 on, SwiftPM renames an executable's entry point to
// `<module>_main` and links `main` to it, which -parse-as-library leaves undefined; at 5.4 the
// executables keep libFuzzer's `main`. (The root package keeps its own tools version.)

// One executable per fuzzer: its name (= its folder under Sources/) and the root products it fuzzes.
let fuzzers: [(String, [String])] = [
    ("wire", ["UKNetdev", "HostStack"]),
    ("kv-server", ["UKNetdev", "HostStack", "KVStore"]),
    ("memcached", ["UKNetdev", "KVStore"]),
    ("virtio-used-ring", ["UKNetdev", "VirtioNet", "VirtioNetEmulator"]),
]

let package = Package(
    name: "UKNetFuzz",
    dependencies: [.package(name: "UKNet", path: "..")],
    targets: [
        // What the fuzzers share: input framing, checksum repair, the pool check.
        .target(name: "FuzzSupport", dependencies: [.product(name: "UKNetdev", package: "UKNet")],
                path: "Sources/FuzzSupport"),
    ] + fuzzers.map { name, products in
        .executableTarget(name: name, dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: "UKNet") },
                          path: "Sources/\(name)")
    }
)
