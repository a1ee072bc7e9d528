// swift-tools-version:6.0
// A separate app that uses Polyroute the way a user does: as a URL dependency on the root
// Package.swift. Built and run by bindings-swift/scripts/consumer-test.sh, which points
// POLYROUTE_PACKAGE_URL at a file:// git snapshot of the working tree (tagged with the
// workspace version) so SwiftPM treats it as a remote source-control package, with the
// rules it applies to dependencies (no unsafeFlags). Without the variable this is the line
// a user writes.
import Foundation
import PackageDescription

let polyrouteURL = ProcessInfo.processInfo.environment["POLYROUTE_PACKAGE_URL"]
    ?? "https://github.com/<org>/polyroute"

let package = Package(
    name: "PolyrouteConsumer",
    platforms: [.macOS(.v12), .iOS(.v15)],
    dependencies: [
        .package(url: polyrouteURL, from: "0.1.0"),
    ],
    targets: [
        .executableTarget(
            name: "PolyrouteConsumer",
            dependencies: [.product(name: "Polyroute", package: "polyroute")]
        ),
    ]
)
