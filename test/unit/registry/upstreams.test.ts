import assert from 'node:assert/strict'
import { UpstreamSet, upstreamEntryFor, upstreamRepository } from '../../../src/registry/upstreams.js'
import { OciError } from '../../../src/oci/errors.js'
import { FakeRegistryUpstream } from '../fakes/registry-upstream.js'

describe('UpstreamSet: which upstream a request goes to (?ns=)', () => {
  const hub = new FakeRegistryUpstream({ name: 'docker.io', url: 'https://registry-1.docker.io' })
  const ghcr = new FakeRegistryUpstream({ name: 'ghcr.io', url: 'https://ghcr.io' })
  const set = new UpstreamSet([hub, ghcr])

  it('without ns (Docker registry-mirrors), the first configured upstream', () => {
    assert.equal(set.select(null), hub)
    assert.equal(set.select(''), hub)
  })

  it('with ns (containerd), the upstream of that name', () => {
    assert.equal(set.select('ghcr.io'), ghcr)
    assert.equal(set.select('docker.io'), hub)
  })

  it('an unknown ns names the CACHE_REGISTRY_UPSTREAMS entry to add and what is configured', () => {
    assert.throws(() => set.select('quay.io'), (err: unknown) => {
      assert.ok(err instanceof OciError)
      assert.equal(err.status, 400)
      assert.equal(err.code, 'UNSUPPORTED')
      assert.match(
        err.message,
        /unknown registry namespace ns=quay\.io: add it to CACHE_REGISTRY_UPSTREAMS as quay\.io=https:\/\/quay\.io \(configured: docker\.io, ghcr\.io\)/
      )
      return true
    })
  })

  it('with no upstream configured, says to set CACHE_REGISTRY_UPSTREAMS', () => {
    assert.throws(() => new UpstreamSet([]).select(null), /no registry upstream is configured; set CACHE_REGISTRY_UPSTREAMS/)
  })

  it('close closes every upstream', async () => {
    const a = new FakeRegistryUpstream({ name: 'a.example' })
    const b = new FakeRegistryUpstream({ name: 'b.example' })
    await new UpstreamSet([a, b]).close()
    for (const c of [a, b]) {
      await assert.rejects(c.send('GET', 'x', '/v2/', {}), /client closed/)
    }
  })
})

describe('upstreamRepository and upstreamEntryFor', () => {
  it('Docker Hub official images get library/; names with a slash do not', () => {
    const hub = new FakeRegistryUpstream({ name: 'docker.io' })
    assert.equal(upstreamRepository(hub, 'alpine'), 'library/alpine')
    assert.equal(upstreamRepository(hub, 'bitnami/redis'), 'bitnami/redis')
  })

  it('an upstream on a *.docker.io host under another name is Docker Hub too', () => {
    const mirror = new FakeRegistryUpstream({ name: 'hub', url: 'https://registry-1.docker.io' })
    assert.equal(upstreamRepository(mirror, 'alpine'), 'library/alpine')
  })

  it('other registries keep single-component names as they are', () => {
    const ghcr = new FakeRegistryUpstream({ name: 'ghcr.io', url: 'https://ghcr.io' })
    assert.equal(upstreamRepository(ghcr, 'alpine'), 'alpine')
    const lookalike = new FakeRegistryUpstream({ name: 'evil', url: 'https://notdocker.io' })
    assert.equal(upstreamRepository(lookalike, 'alpine'), 'alpine')
  })

  it("Docker Hub's entry points at registry-1.docker.io, where its API is", () => {
    assert.equal(upstreamEntryFor('docker.io'), 'docker.io=https://registry-1.docker.io')
    assert.equal(upstreamEntryFor('registry.example.com:5000'), 'registry.example.com:5000=https://registry.example.com:5000')
  })
})
