import assert from 'node:assert/strict'
import { ClientLog, clientFamily } from '../../../src/http/client-log.js'

describe('ClientLog: which registry clients reach the sidecar', () => {
  it('sorts User-Agents into client families', () => {
    const cases: Array<[string | undefined, string]> = [
      ['docker/27.0.3 go/go1.21.11 git-commit/662f78c kernel/6.5 os/linux arch/amd64', 'docker'],
      ['containerd/v1.7.18', 'containerd'],
      ['libpod/5.0.3', 'podman'],
      ['Buildah/1.35', 'buildah'],
      ['skopeo/1.15.1', 'skopeo'],
      ['go-containerregistry/v0.19.1', 'crane'],
      ['crane/0.19', 'crane'],
      ['kubelet/v1.30.2', 'kubelet'],
      ['cri-o/1.30', 'kubelet'],
      ['curl/8.5.0', 'curl'],
      ['p2p-cache/1.0.0', 'p2p-cache'],
      ['Mozilla/5.0 (docker/1)', 'other'],
      ['', 'unknown'],
      [undefined, 'unknown']
    ]
    for (const [ua, family] of cases) assert.equal(clientFamily(ua), family, String(ua))
  })

  it('counts requests per family and keeps the latest User-Agent, cut to 200 characters', () => {
    const clients = new ClientLog()
    clients.note('docker/24.0')
    clients.note(`docker/27.0 ${'x'.repeat(500)}`)
    clients.note(undefined)
    const seen = clients.snapshot()
    assert.deepEqual(Object.keys(seen).sort(), ['docker', 'unknown'])
    assert.equal(seen.docker?.requests, 2)
    assert.equal(seen.docker?.user_agent.length, 200)
    assert.ok(seen.docker?.user_agent.startsWith('docker/27.0'))
    assert.ok(!Number.isNaN(Date.parse(seen.docker?.last_seen ?? '')), 'last_seen is an ISO time')
    assert.equal(seen.unknown?.user_agent, '')
  })

  it('stays bounded by the family list however many distinct agents come', () => {
    const clients = new ClientLog()
    for (let i = 0; i < 1000; i++) clients.note(`random-agent-${i}/1.0`)
    assert.deepEqual(Object.keys(clients.snapshot()), ['other'])
    assert.equal(clients.snapshot().other?.requests, 1000)
  })
})
