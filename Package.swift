// swift-tools-version:6.0
// Polyroute for Swift, as a SwiftPM dependency by URL:
//
//     .package(url: "https://github.com/<org>/polyroute", from: "0.1.0")
//
// SwiftPM only accepts a manifest at the repository root for URL dependencies and refuses
// `unsafeFlags` in any package it builds as a dependency, so this manifest has none. The Swift
// sources are the repository's own (bindings-swift/Sources/Polyroute: the committed uniffi
// output plus the hand-written layer); only where the Rust core comes from differs:
//
// - Apple platforms: a binary target, the XCFramework `bindings-swift/scripts/build-xcframework.sh`
//   builds (static libpolyroute_ffi.a for iOS, the simulator and macOS, with the uniffi header
//   and module map). Until a release hosts it, run that script in a clone first (the path
//   below is where it writes the framework; it is not committed). A release switches to
//   the hosted zip and the checksum the script prints:
//       .binaryTarget(name: "polyrouteFFI",
//                     url: "https://github.com/<org>/polyroute/releases/download/0.1.0/polyrouteFFI.xcframework.zip",
//                     checksum: "<bindings-swift/build/apple/polyrouteFFI.xcframework.zip.checksum>")
// - Linux: a system-library target over the repository's module map (the uniffi header,
//   `link "polyroute_ffi"`), with the linker's search path from pkg-config: the user runs
//   `bindings-swift/scripts/install-linux.sh PREFIX` once (cargo build --release, installs the
//   static library and writes PREFIX/lib/pkgconfig/polyroute-ffi.pc) and sets PKG_CONFIG_PATH.
//   SwiftPM reads .pc files itself (no pkg-config binary needed) and only passes -L/-l flags.
//
// `#if canImport(Darwin)` is evaluated where the manifest is compiled, i.e. on the build host:
// right for building on a Mac for Apple platforms and on Linux for Linux, not for cross-builds
// from a Mac to Linux (out of scope). The repository's own tests use bindings-swift/Package.swift.
import PackageDescription

#if canImport(Darwin)
let ffi: Target = .binaryTarget(
    name: "polyrouteFFI",
    path: "bindings-swift/build/apple/Polyroute/polyrouteFFI.xcframework"
)
#else
let ffi: Target = .systemLibrary(
    name: "polyrouteFFI",
    path: "bindings-swift/Sources/polyrouteFFI",
    pkgConfig: "polyroute-ffi"
)
#endif

let package = Package(
    name: "Polyroute",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "Polyroute", targets: ["Polyroute"]),
    ],
    targets: [
        ffi,
        .target(
            name: "Polyroute",
            dependencies: ["polyrouteFFI"],
            path: "bindings-swift/Sources/Polyroute"
        ),
    ]
)
