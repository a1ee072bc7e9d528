// The npm package as users get it: `npm pack` produces a tarball with the napi-rs layout
// (loader, typings, public wrapper, the platform binary) that installs offline, without Rust,
// and works. (Installing from the source folder is what examples/node does, via `file:`.)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { repoRoot } from './harness.mjs'

const pkgDir = path.join(repoRoot, 'bindings-node')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

test('npm pack → npm install of the tarball → require and chat', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'polyroute-pack-'))
  try {
    const out = execFileSync(npm, ['pack', '--json', '--pack-destination', dir], { cwd: pkgDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    const [info] = JSON.parse(out)
    const files = info.files.map((f) => f.path).sort()
    for (const f of ['index.js', 'index.d.ts', 'polyroute.js', 'polyroute.d.ts', 'package.json', 'scripts/install.js']) {
      assert.ok(files.includes(f), `${f} is packed`)
    }
    assert.ok(files.some((f) => /^polyroute\.[a-z0-9-]+\.node$/.test(f)), 'the platform binary is packed')
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('node_modules/') || f.startsWith('test/')), files.join(' '))

    const app = path.join(dir, 'app')
    execFileSync('mkdir', ['-p', app])
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }))
    const env = { ...process.env }
    delete env.POLYROUTE_SKIP_BUILD // exercise the install hook: it must find the packed binary
    execFileSync(npm, ['install', '--offline', '--no-audit', '--no-fund', path.join(dir, info.filename)], { cwd: app, env, stdio: 'ignore' })
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
