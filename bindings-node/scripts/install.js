// npm `install` hook: make sure a native addon for this platform exists.
//
// A published package (or `npm pack` tarball) ships the prebuilt `polyroute.<platform>.node`
// (later: per-platform packages, as napi-rs lays them out), so this finds it and does
// nothing. Installing from a source checkout (`npm install ./bindings-node`) has no binary
// yet: then we build it with cargo, which is the only tool a source install may assume
// (no @napi-rs/cli: devDependencies are not installed for a dependency).
//
// Env: POLYROUTE_SKIP_BUILD=1 skips this (the repo's test.sh builds with `napi build`);
// POLYROUTE_BUILD_PROFILE=debug builds faster, unoptimised (default: release).
'use strict'

const { existsSync, copyFileSync } = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const root = path.resolve(__dirname, '..')

function log(msg) {
  process.stderr.write(`polyroute: ${msg}\n`)
}

/** The platform part of the file name napi-rs's loader (`index.js`) looks for. */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = process.report && typeof process.report.getReport === 'function' ? process.report.getReport() : null
    const glibc = report && report.header && report.header.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function libraryFile(targetDir, profileDir) {
  const base = 'polyroute_node'
  const name = process.platform === 'win32' ? `${base}.dll` : process.platform === 'darwin' ? `lib${base}.dylib` : `lib${base}.so`
  return path.join(targetDir, profileDir, name)
}

function loads() {
  try {
    require(path.join(root, 'index.js'))
    return true
  } catch {
    return false
  }
}

function main() {
  if (process.env.POLYROUTE_SKIP_BUILD) return 0
  if (loads()) return 0
  if (!existsSync(path.join(root, 'Cargo.toml'))) {
    log(`no prebuilt binary for ${platformSuffix()} in this package, and no sources to build one from`)
    return 1
  }
  const profile = process.env.POLYROUTE_BUILD_PROFILE === 'debug' ? 'debug' : 'release'
  log(`no binary for ${platformSuffix()}: building from source with cargo (${profile}); this takes a few minutes`)
  const meta = spawnSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (meta.error || meta.status !== 0) {
    log(`cargo is needed to build from source (https://rustup.rs): ${meta.error ? meta.error.message : meta.stderr}`)
    return 1
  }
  const targetDir = JSON.parse(meta.stdout).target_directory
  const args = ['build', '-p', 'polyroute-node', '--lib']
  if (profile === 'release') args.push('--release')
  const build = spawnSync('cargo', args, { cwd: root, stdio: 'inherit' })
  if (build.status !== 0) return build.status || 1
  const dest = path.join(root, `polyroute.${platformSuffix()}.node`)
  copyFileSync(libraryFile(targetDir, profile), dest)
  if (!loads()) {
    log(`built ${dest} but it does not load`)
    return 1
  }
  log(`built ${path.basename(dest)}`)
  return 0
}

process.exitCode = main()
