// The npm packages as users get them: the main tarball (loader, typings, public wrapper; no
// binary, no install script) and this platform's binary package, installed offline, without
// Rust, work together. scripts/release.sh builds the same from release binaries and
// scripts/test-artifacts.sh installs those. (Installing from the source folder is what
// examples/node does, via `file:`.)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync, cpSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { repoRoot } from './harness.mjs'

const pkgDir = path.join(repoRoot, 'bindings-node')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

test('npm pack → main + platform package installed offline → require and chat', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'polyroute-pack-'))
  try {
    const pack = (cwd) => JSON.parse(execFileSync(npm, ['pack', '--json', '--pack-destination', dir], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))[0]
    const main = pack(pkgDir)
    const files = main.files.map((f) => f.path).sort()
    for (const f of ['index.js', 'index.d.ts', 'polyroute.js', 'polyroute.d.ts', 'ai-sdk.mjs', 'ai-sdk.d.mts', 'package.json', 'LICENSE']) {
      assert.ok(files.includes(f), `${f} is packed`)
    }
    // binaries live in the platform packages; no install script (blocked by default in npm 11)
    assert.ok(!files.some((f) => f.endsWith('.node')), files.join(' '))
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('node_modules/') || f.startsWith('test/') || f.startsWith('scripts/')), files.join(' '))
    const manifest = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
    assert.equal(manifest.scripts.install, undefined)
    const platforms = readdirSync(path.join(pkgDir, 'npm'))
    assert.deepEqual(Object.keys(manifest.optionalDependencies).sort(), platforms.map((p) => `polyroute-${p}`).sort())

    // this machine's platform package, with the addon test.sh just built
    const platform = 'linux-x64-gnu'
    const stage = path.join(dir, platform)
    cpSync(path.join(pkgDir, 'npm', platform), stage, { recursive: true })
    copyFileSync(path.join(repoRoot, 'LICENSE'), path.join(stage, 'LICENSE'))
    copyFileSync(path.join(pkgDir, `polyroute.${platform}.node`), path.join(stage, `polyroute.${platform}.node`))
    const plat = pack(stage)
    assert.ok(plat.files.some((f) => f.path === `polyroute.${platform}.node`), 'the platform package carries the binary')
    assert.ok(plat.files.some((f) => f.path === 'LICENSE'), 'and the licence')

    const app = path.join(dir, 'app')
    mkdirSync(app)
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }))
    execFileSync(npm, ['install', '--offline', '--no-audit', '--no-fund', path.join(dir, main.filename), path.join(dir, plat.filename)], { cwd: app, stdio: 'ignore' })
    assert.ok(readdirSync(path.join(app, 'node_modules', 'polyroute')).includes('polyroute.js'))
    const script = `
      const { Router, ConfigError } = require('polyroute')
      const r = new Router({ providers: { m: { kind: 'mock' } }, deployments: { d: { provider: 'm', model: 'x' } },
        routes: [{ name: 'r', deployments: ['d'] }], default_route: 'r' })
      try { new Router('nope: [') } catch (e) { if (!(e instanceof ConfigError)) throw e }
      r.chat({ messages: [{ role: 'user', content: 'from the tarball' }] }).then((x) => console.log(x.choices[0].message.content))`
    const res = execFileSync(process.execPath, ['-e', script], { cwd: app, encoding: 'utf8' })
    assert.equal(res.trim(), 'echo: from the tarball')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
