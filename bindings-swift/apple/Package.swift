// swift-tools-version:6.0
// Polyroute for Apple platforms: the Rust core as a prebuilt XCFramework (binary target).
//
// This manifest is a template: scripts/build-xcframework.sh copies it, the Swift sources and
// polyrouteFFI.xcframework into build/apple/Polyroute/, which is a self-contained package an
// app adds as a local package (or publishes, switching the binary target to url + checksum).
import PackageDescription

let package = Package(
    name: "Polyroute",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Polyroute", targets: ["Polyroute"]),
    ],
    targets: [
        // Static libpolyroute_ffi.a per platform plus the uniffi header and module map.
        .binaryTarget(name: "polyrouteFFI", path: "polyrouteFFI.xcframework"),
        // Generated bindings + the hand-written Swift layer (the same files as the source package).
        .target(name: "Polyroute", dependencies: ["polyrouteFFI"], path: "Sources/Polyroute"),
    ]
)
