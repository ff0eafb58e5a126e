import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../fixtures/ports.js'
import { waitFor } from '../fixtures/wait.js'
import { runCli } from '../fixtures/sidecar-process.js'
import { cliId, PEER_ID_RE, startSwarmNode, stopAll, waitForPeers, warnLines, p2pStats, type SwarmNode } from '../fixtures/swarm.js'

describe('p2p identity: `p2p-cache id`, persistence, bootstrap values', function () {
  this.timeout(60_000)
  let work: string
  let dir: string
  let p2pPort: number
  let printed: { peerId: string, addrs: string[] }
  const nodes: Array<SwarmNode | undefined> = []

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-identity-'))
    dir = join(work, 'cache')
    await mkdir(dir)
    p2pPort = await freePort()
  })

  after(async () => {
    try {
      await stopAll(nodes)
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  })

  const idEnv = (): NodeJS.ProcessEnv => ({ CACHE_DIR: dir, CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${p2pPort}` })

  it('`id` on an empty CACHE_DIR creates identity.key (0600) and prints the peer id and /p2p addrs', async () => {
    printed = await cliId(idEnv())
    assert.match(printed.peerId, PEER_ID_RE)
    assert.ok(printed.addrs.length >= 1, 'at least one address')
    for (const addr of printed.addrs) assert.ok(addr.endsWith(`/p2p/${printed.peerId}`), `${addr} ends with /p2p/<id>`)
    assert.ok(printed.addrs.includes(`/ip4/127.0.0.1/tcp/${p2pPort}/p2p/${printed.peerId}`), printed.addrs.join('\n'))
    const st = await stat(join(dir, 'identity.key'))
    assert.ok(st.isFile())
    assert.equal(st.mode & 0o777, 0o600, `mode ${(st.mode & 0o777).toString(8)}`)
  })

  it('`id` again prints the same id; `id --json` agrees', async () => {
    const again = await cliId(idEnv())
    assert.equal(again.peerId, printed.peerId)
    assert.deepEqual(again.addrs, printed.addrs)
    const json = await runCli(['id', '--json'], idEnv())
    assert.equal(json.code, 0, json.stderr)
    const parsed = JSON.parse(json.stdout) as { peerId: string, addrs: string[] }
    assert.equal(parsed.peerId, printed.peerId)
    assert.deepEqual(new Set(parsed.addrs), new Set(printed.addrs))
  })

  it('CACHE_ANNOUNCE_ADDRS are what `id` prints', async () => {
    const announce = '/ip4/127.0.0.1/tcp/45678'
    const res = await cliId({ ...idEnv(), CACHE_ANNOUNCE_ADDRS: announce })
    assert.equal(res.peerId, printed.peerId)
    assert.ok(res.addrs.includes(`${announce}/p2p/${printed.peerId}`), res.stdout)
    for (const addr of res.addrs) assert.ok(addr.endsWith(`/p2p/${printed.peerId}`), addr)
  })

  let first: SwarmNode | undefined

  it('a sidecar on that dir has that peer id, also after a restart; `id` works while it runs', async () => {
    first = await startSwarmNode({ CACHE_DIR: dir }, { p2pPort })
    nodes.push(first)
    assert.equal(first.peerId, printed.peerId)
    const info = await first.p2p()
    assert.ok(info.addrs.some(a => a.startsWith(`/ip4/127.0.0.1/tcp/${p2pPort}`)), JSON.stringify(info.addrs))
    const whileRunning = await cliId(idEnv())
    assert.equal(whileRunning.peerId, printed.peerId)
    await first.restart()
    assert.equal((await first.p2p()).peerId, printed.peerId)
  })

  it('the address printed by `id` works as CACHE_BOOTSTRAP_PEERS for another node', async () => {
    assert.ok(first)
    const bootstrap = printed.addrs.find(a => a.startsWith('/ip4/127.0.0.1/'))
    assert.ok(bootstrap)
    const second = await startSwarmNode({ CACHE_BOOTSTRAP_PEERS: bootstrap })
    nodes.push(second)
    await Promise.all([waitForPeers(first, 1), waitForPeers(second, 1)])
    assert.ok((await second.p2p()).peers.some(p => p.peerId === printed.peerId))
    await waitFor(async () => (await first?.p2p())?.peers.some(p => p.peerId === second.peerId), {
      timeoutMs: 5_000,
      what: 'the first node to list the second in /api/p2p peers'
    })
  })

  describe('bad values stop start-up with exit code 2 and a line naming them', () => {
    const validPeer = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
    const bad: Array<[string, string, string]> = [
      ['UDP, not TCP', '/ip4/127.0.0.1/udp/9000', '/ip4/127.0.0.1/udp/9000'],
      ['not a multiaddr', 'not-a-multiaddr', 'not-a-multiaddr'],
      ['invalid IPv4', `/ip4/999.1.1.1/tcp/1/p2p/${validPeer}`, '/ip4/999.1.1.1/tcp/1'],
      ['bad peer id', '/ip4/127.0.0.1/tcp/1/p2p/notapeerid', '/ip4/127.0.0.1/tcp/1/p2p/notapeerid'],
      ['one bad entry among good ones', `/ip4/127.0.0.1/tcp/4001/p2p/${validPeer}, /ip4/1.2.3/tcp/x`, '/ip4/1.2.3/tcp/x']
    ]

    async function serve (extra: NodeJS.ProcessEnv): Promise<{ code: number, stdout: string, stderr: string, timedOut?: boolean }> {
      const d = await mkdtemp(join(work, 'bad-'))
      return await runCli(
        ['serve'],
        {
          CACHE_DIR: join(d, 'data'),
          CACHE_HTTP_ADDR: `127.0.0.1:${await freePort()}`,
          CACHE_ENABLE_P2P: 'true',
          CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${await freePort()}`,
          ...extra
        },
        { timeoutMs: 30_000 }
      )
    }

    for (const [what, value, named] of bad) {
      it(`CACHE_BOOTSTRAP_PEERS: ${what}`, async () => {
        const res = await serve({ CACHE_BOOTSTRAP_PEERS: value })
        assert.ok(
          res.timedOut !== true,
          `serve kept running with CACHE_BOOTSTRAP_PEERS=${JSON.stringify(value)}; output:\n${res.stdout.slice(-2000)}`
        )
        assert.equal(res.code, 2, res.stderr)
        const lines = res.stderr.trim().split('\n')
        assert.equal(lines.length, 1, `one line on stderr:\n${res.stderr}`)
        assert.match(lines[0] ?? '', /^p2p-cache: /)
        assert.match(lines[0] ?? '', /CACHE_BOOTSTRAP_PEERS/)
        assert.ok((lines[0] ?? '').includes(named), `stderr names ${JSON.stringify(named)}: ${lines[0]}`)
      })
    }

    it('CACHE_LISTEN_ADDRS: malformed', async () => {
      const res = await serve({ CACHE_LISTEN_ADDRS: '/ip4/127.0.0.1/tcp/notaport' })
      assert.ok(res.timedOut !== true, `serve kept running; output:\n${res.stdout.slice(-2000)}`)
      assert.equal(res.code, 2, res.stderr)
      const lines = res.stderr.trim().split('\n')
      assert.equal(lines.length, 1, `one line on stderr:\n${res.stderr}`)
      assert.match(lines[0] ?? '', /CACHE_LISTEN_ADDRS/)
      assert.ok((lines[0] ?? '').includes('notaport'), lines[0])
    })
  })

  it('an unreachable bootstrap peer is a warning: the sidecar still becomes ready', async () => {
    // A real peer id (fresh identity) at a loopback port nobody listens on.
    const ghostDir = await mkdtemp(join(work, 'ghost-'))
    const ghost = await cliId({ CACHE_DIR: ghostDir, CACHE_LISTEN_ADDRS: '/ip4/127.0.0.1/tcp/1' })
    const deadAddr = `/ip4/127.0.0.1/tcp/${await freePort()}/p2p/${ghost.peerId}`
    const n = await startSwarmNode({ CACHE_BOOTSTRAP_PEERS: deadAddr })
    nodes.push(n)
    const warning = await waitFor(() => warnLines(n.logs()).find(l => l.includes(ghost.peerId)), {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: `a warning naming the bootstrap peer ${ghost.peerId}`
    })
    assert.ok(warning)
    const stats = await p2pStats(n)
    assert.equal(stats.peers_connected, 0)
    assert.equal((await fetch(`${n.url}/readyz`)).status, 200)
  })
})
