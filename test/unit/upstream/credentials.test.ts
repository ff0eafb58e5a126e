import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { loadDockerConfig, resolveCredentials } from '../../../src/upstream/credentials.js'
import type { Credential, Upstream } from '../../../src/upstream/upstream.js'

function captured (): { log: Logger, text: () => string } {
  const lines: string[] = []
  const out = new Writable({
    write (chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'))
      cb()
    }
  })
  return { log: pino<never>({ level: 'warn' }, out), text: () => lines.join('') }
}

const b64 = (s: string): string => Buffer.from(s).toString('base64')
const up = (name: string, url: string): Upstream => ({ name, url: new URL(url) })

describe('upstream credentials: CACHE_REGISTRY_AUTH and docker config.json', () => {
  let dir: string
  let saved: string | undefined
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'credentials-unit-'))
    saved = process.env.DOCKER_CONFIG
  })
  afterEach(async () => {
    if (saved === undefined) delete process.env.DOCKER_CONFIG
    else process.env.DOCKER_CONFIG = saved
    await rm(dir, { recursive: true, force: true })
  })

  async function config (content: unknown): Promise<string> {
    const path = join(dir, 'config.json')
    await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content))
    return path
  }

  it('reads `auth` (base64 user:password, the password may hold colons) by registry host', async () => {
    const path = await config({ auths: { 'ghcr.io': { auth: b64('me:tok:en') } } })
    const out = resolveCredentials([up('ghcr.io', 'https://ghcr.io')], new Map(), loadDockerConfig(path, captured().log), captured().log)
    assert.deepEqual(out.get('ghcr.io'), { username: 'me', password: 'tok:en' })
  })

  it('reads username/password fields, and Docker Hub under its v1 index URL', async () => {
    const path = await config({ auths: { 'https://index.docker.io/v1/': { username: 'hub', password: 'pw' } } })
    const out = resolveCredentials(
      [up('docker.io', 'https://registry-1.docker.io')],
      new Map(),
      loadDockerConfig(path, captured().log),
      captured().log
    )
    assert.deepEqual(out.get('docker.io'), { username: 'hub', password: 'pw' })
  })

  it('CACHE_REGISTRY_AUTH wins over the config file; naming an unknown upstream is warned about', async () => {
    const path = await config({ auths: { 'ghcr.io': { auth: b64('file:pw') } } })
    const log = captured()
    const explicit = new Map<string, Credential>([
      ['ghcr.io', { username: 'env', password: 'x' }],
      ['quay.io', { username: 'q', password: 'y' }]
    ])
    const out = resolveCredentials([up('ghcr.io', 'https://ghcr.io')], explicit, loadDockerConfig(path, log.log), log.log)
    assert.deepEqual(out.get('ghcr.io'), { username: 'env', password: 'x' })
    assert.equal(out.has('quay.io'), false)
    assert.match(log.text(), /CACHE_REGISTRY_AUTH names an upstream that is not in CACHE_REGISTRY_UPSTREAMS/)
    assert.ok(!log.text().includes('"y"'), 'no secret is logged')
  })

  it('a malformed CACHE_DOCKER_CONFIG is reported with its path and start-up goes on without it', async () => {
    const path = await config('{ "auths": ')
    const log = captured()
    const out = resolveCredentials([up('ghcr.io', 'https://ghcr.io')], new Map(), loadDockerConfig(path, log.log), log.log)
    assert.equal(out.size, 0)
    assert.match(log.text(), /cannot read CACHE_DOCKER_CONFIG; continuing without its credentials/)
    assert.ok(log.text().includes(path))
  })

  it('a missing CACHE_DOCKER_CONFIG is reported; a missing default ~/.docker/config.json is not', async () => {
    const named = captured()
    resolveCredentials([], new Map(), loadDockerConfig(join(dir, 'nope.json'), named.log), named.log)
    assert.match(named.text(), /ENOENT/)
    process.env.DOCKER_CONFIG = join(dir, 'no-docker-dir')
    const quiet = captured()
    assert.equal(resolveCredentials([up('ghcr.io', 'https://ghcr.io')], new Map(), loadDockerConfig('', quiet.log), quiet.log).size, 0)
    assert.equal(quiet.text(), '')
  })

  it('the default path follows DOCKER_CONFIG', async () => {
    await config({ auths: { 'ghcr.io': { auth: b64('a:b') } } })
    process.env.DOCKER_CONFIG = dir
    assert.deepEqual(
      resolveCredentials([up('ghcr.io', 'https://ghcr.io')], new Map(), loadDockerConfig('', captured().log), captured().log).get(
        'ghcr.io'
      ),
      { username: 'a', password: 'b' }
    )
  })

  it('an `auth` without a colon is skipped; a credsStore alone says to use CACHE_REGISTRY_AUTH', async () => {
    const path = await config({ auths: { 'ghcr.io': { auth: b64('nocolon') } }, credsStore: 'desktop' })
    const log = captured()
    assert.equal(resolveCredentials([up('ghcr.io', 'https://ghcr.io')], new Map(), loadDockerConfig(path, log.log), log.log).size, 0)
    assert.match(log.text(), /docker credential helpers are not supported; put credentials in CACHE_REGISTRY_AUTH/)
  })

  it('a config.json that is not an object, or a null entry, is reported and ignored instead of crashing start-up (regression)', async () => {
    for (const content of ['null', '[1]', '{"auths":{"ghcr.io":null}}', '{"auths":{"ghcr.io":{"auth":5}}}']) {
      const path = await config(content)
      const log = captured()
      assert.equal(
        resolveCredentials([up('ghcr.io', 'https://ghcr.io')], new Map(), loadDockerConfig(path, log.log), log.log).size,
        0,
        content
      )
      if (content !== '{"auths":{"ghcr.io":{"auth":5}}}') assert.ok(log.text().includes(path), content)
    }
  })
})
