// swift-tools-version:6.0
// Swift per-call overhead benchmark (issue 18): `bash bench/swift/run.sh`. Depends on the
// repository's Swift package by path; run.sh points POLYROUTE_FFI_LIB_DIR at a release build
// of the Rust library so the figures are not a debug build's.
import PackageDescription

let package = Package(
    name: "PolyrouteBench",
    platforms: [.macOS(.v12)],
    dependencies: [
        .package(name: "Polyroute", path: "../../bindings-swift"),
    ],
    targets: [
        .executableTarget(
            name: "PolyrouteBench",
            dependencies: [.product(name: "Polyroute", package: "Polyroute")]
        ),
    ]
)
