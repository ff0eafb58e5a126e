import { strict as assert } from 'node:assert'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import { netnsUnavailable, type Netns } from '../fixtures/netns.js'
import { CLI } from '../fixtures/sidecar-process.js'
import { buildTopology, C1, H1, H2, startNsSidecar, type NsSidecar, type Topology } from '../fixtures/topology.js'
import { skipUnlessCi } from '../fixtures/skip.js'

/**
 * `p2p-cache diagnose` on emulated hosts (network namespaces built by the test, docs/design.md §5): a
 * host-networked pair, a bridge-networked "container" behind MASQUERADE with and without a
 * published port, and the usual mistakes in bootstrap addresses. Every diagnose run is a real
 * CLI process inside a namespace; its peers are real sidecars in other namespaces.
 */

interface Finding {
  check: string
  verdict: 'ok' | 'warn' | 'fail' | 'skip'
  summary: string
  subject?: string
  fix?: string
  facts?: Record<string, unknown>
}
interface Report {
  exitCode: number
  verdict: string
  findings: Finding[]
  network: { mode: string }
}

const SCHEMA = resolve(fileURLToPath(import.meta.url), '../../../docs/diagnose.schema.json')

describe('diagnose on emulated hosts (network namespaces)', function () {
  this.timeout(120_000)
  let topo: Topology
  let h2: NsSidecar
  let work: string
  let validate: (data: unknown) => boolean
  let schemaErrors: () => string

  before(async function () {
    const why = await netnsUnavailable()
    if (why !== undefined) {
      skipUnlessCi(this, why)
    }
    // Formats (date-time) are documentation here; ajv-formats would be a package for one field.
    const ajv = new Ajv({ allErrors: true, validateFormats: false })
    const compiled = ajv.compile(JSON.parse(await readFile(SCHEMA, 'utf8')) as object)
    validate = data => compiled(data)
    schemaErrors = () => ajv.errorsText(compiled.errors)
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-diagnose-'))
    topo = await buildTopology()
    h2 = await startNsSidecar(topo.h2)
  })

  after(async () => {
    await h2?.stop()
    await topo?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  let runs = 0
  /** `p2p-cache diagnose --json ...` in `ns`; the report, checked against the documented schema. */
  async function diagnose (ns: Netns, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Report & { code: number }> {
    const dir = join(work, `run-${++runs}`)
    const r = await ns.run(process.execPath, [CLI, 'diagnose', '--json', ...args], {
      timeoutMs: 60_000,
      env: {
        PATH: process.env.PATH,
        HOME: dir,
        CACHE_DIR: join(dir, 'data'),
        // The peer's sidecar is this run's upstream: reachable, and not the internet.
        CACHE_REGISTRY_UPSTREAMS: `docker.io=http://${H2}:9080`,
        CACHE_API_UPSTREAMS: `github=http://${H2}:9080/`,
        ...env
      }
    })
    let report: Report
    try {
      report = JSON.parse(r.stdout) as Report
    } catch {
      throw new Error(`diagnose printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`)
    }
    assert.ok(validate(report), `report does not match docs/diagnose.schema.json: ${schemaErrors()}`)
    assert.equal(r.code, report.exitCode, 'exit code = report.exitCode')
    return { ...report, code: r.code }
  }

  const find = (report: Report, check: string, subject?: string): Finding => {
    const f = report.findings.find(x => x.check === check && (subject === undefined || x.subject === subject))
    assert.ok(f !== undefined, `no ${check} finding in ${JSON.stringify(report.findings.map(x => x.check))}`)
    return f
  }
  const problems = (report: Report): string =>
    JSON.stringify(report.findings.filter(f => f.verdict === 'warn' || f.verdict === 'fail'), null, 1)
  const bootstrapOf = (host: string, peerId = h2.peerId, port = 9000): string => `/ip4/${host}/tcp/${port}/p2p/${peerId}`

  it('host network: two hosts on one LAN, sidecars on their host addresses — every check passes', async () => {
    const report = await diagnose(topo.h1, ['--bootstrap', bootstrapOf(H2), `/dns4/runner2/tcp/9000/p2p/${h2.peerId}`])
    assert.equal(report.code, 0, problems(report))
    assert.deepEqual(report.findings.filter(f => f.verdict === 'warn' || f.verdict === 'fail'), [])
    assert.equal(report.network.mode, 'host')
    assert.match(
      find(report, 'bootstrap.address', `/dns4/runner2/tcp/9000/p2p/${h2.peerId}`).summary,
      new RegExp(`runner2 resolves to ${H2.replaceAll('.', '\\.')}`)
    )
    const identify = find(report, 'bootstrap.identify', bootstrapOf(H2))
    assert.match(String(identify.facts?.agent), /^p2p-cache\//)
    assert.match(String(identify.facts?.observedAddr), new RegExp(`^/ip4/${H1.replaceAll('.', '\\.')}/tcp/`))
    assert.equal(find(report, 'dht.round-trip').verdict, 'ok')
    assert.equal(find(report, 'announce.addresses').verdict, 'ok')
    // Host 2 dialled host 1's announced address back and reached the probe listening there.
    assert.equal(find(report, 'announce.dialback', `/ip4/${H1}/tcp/9000`).verdict, 'ok')
  })

  it('host network with a running sidecar: --http reports its live state with verdicts', async () => {
    const h1 = await startNsSidecar(topo.h1, { CACHE_BOOTSTRAP_PEERS: bootstrapOf(H2) })
    try {
      const report = await diagnose(topo.h1, ['--http', 'http://127.0.0.1:9080'], {
        CACHE_BOOTSTRAP_PEERS: bootstrapOf(H2),
        CACHE_DIR: join(h1.dir, 'data')
      })
      assert.equal(report.code, 0, problems(report))
      assert.equal(find(report, 'listen.p2p').verdict, 'ok')
      assert.match(find(report, 'listen.p2p').summary, /in use by the running sidecar/)
      const peers = find(report, 'sidecar.peers')
      assert.equal(peers.verdict, 'ok', peers.summary)
      assert.deepEqual(peers.facts?.peers, [h2.peerId])
      assert.ok(Number(peers.facts?.routingTable) >= 1, peers.summary)
      // The dial-back reached the running sidecar (its ID), not the probe.
      assert.equal(find(report, 'announce.dialback').verdict, 'ok')
    } finally {
      await h1.stop()
    }
  })

  it('bridge network: a container announcing its 172.17.0.2 address gets ✗ and the --network host / CACHE_ANNOUNCE_ADDRS fix', async () => {
    const report = await diagnose(topo.c1, ['--bootstrap', bootstrapOf(H2)])
    assert.equal(report.code, 1)
    assert.equal(report.network.mode, 'bridge')
    const identify = find(report, 'bootstrap.identify')
    // Behind MASQUERADE the peer sees host 1's address, not the container's.
    assert.match(String(identify.facts?.observedAddr), new RegExp(`^/ip4/${H1.replaceAll('.', '\\.')}/tcp/`))
    const announce = find(report, 'announce.addresses')
    assert.equal(announce.verdict, 'fail')
    assert.match(announce.summary, new RegExp(C1.replaceAll('.', '\\.')))
    assert.match(announce.fix ?? '', /--network host/)
    assert.match(announce.fix ?? '', new RegExp(`-p 9000:9000 -e CACHE_ANNOUNCE_ADDRS=/ip4/${H1.replaceAll('.', '\\.')}/tcp/9000`))
  })

  it('bridge network with the port published (DNAT) and the host address announced: ✓', async () => {
    await topo.publish(9000)
    try {
      const report = await diagnose(topo.c1, ['--bootstrap', bootstrapOf(H2)], { CACHE_ANNOUNCE_ADDRS: `/ip4/${H1}/tcp/9000` })
      assert.equal(report.code, 0, problems(report))
      assert.equal(report.network.mode, 'bridge')
      assert.equal(find(report, 'announce.addresses').verdict, 'ok')
      assert.match(String(find(report, 'bootstrap.identify').facts?.observedAddr), new RegExp(`^/ip4/${H1.replaceAll('.', '\\.')}/tcp/`))
      assert.equal(find(report, 'dht.round-trip').verdict, 'ok')
      assert.equal(find(report, 'announce.dialback').verdict, 'ok', problems(report))
    } finally {
      await topo.unpublish(9000)
    }
  })

  it('bridge network announcing the host address without publishing the port: the dial-back fails with the -p fix', async () => {
    const report = await diagnose(topo.c1, ['--bootstrap', bootstrapOf(H2)], { CACHE_ANNOUNCE_ADDRS: `/ip4/${H1}/tcp/9000` })
    assert.equal(report.code, 1)
    assert.equal(find(report, 'announce.addresses').verdict, 'ok')
    const dialback = find(report, 'announce.dialback')
    assert.equal(dialback.verdict, 'fail')
    assert.match(dialback.summary, new RegExp(`could not dial /ip4/${H1.replaceAll('.', '\\.')}/tcp/9000 back`))
    assert.match(dialback.fix ?? '', /-p 9000:9000/)
  })

  it('wrong peer ID in a bootstrap address: names the ID actually found there', async () => {
    const other = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp'
    const report = await diagnose(topo.h1, ['--bootstrap', bootstrapOf(H2, other)])
    assert.equal(report.code, 1)
    const dial = find(report, 'bootstrap.libp2p')
    assert.equal(dial.verdict, 'fail')
    assert.match(dial.summary, new RegExp(`is ${h2.peerId}, not ${other}`))
    assert.match(dial.fix ?? '', new RegExp(`/ip4/${H2.replaceAll('.', '\\.')}/tcp/9000/p2p/${h2.peerId}`))
  })

  it('unreachable port: connection refused, with the publish / start fix', async () => {
    const report = await diagnose(topo.h1, ['--bootstrap', bootstrapOf(H2, h2.peerId, 9009)])
    assert.equal(report.code, 1)
    const tcp = find(report, 'bootstrap.tcp')
    assert.equal(tcp.verdict, 'fail')
    assert.match(tcp.summary, /refused/)
    assert.match(tcp.fix ?? '', /-p 9009:9000|--network host/)
  })

  it('swarm key: a mismatch is named as such, and so is a key on one side only', async () => {
    const keyA = 'a'.repeat(64)
    const keyB = 'b'.repeat(64)
    // A second sidecar on this host: 9001 is the first one's data channel (the P2P port + 1).
    const private2 = await startNsSidecar(topo.h2, { CACHE_SWARM_KEY: keyA, CACHE_P2P_PORT: '9010', CACHE_HTTP_ADDR: '127.0.0.1:9081' })
    try {
      const mismatch = await diagnose(topo.h1, ['--bootstrap', bootstrapOf(H2, private2.peerId, 9010)], { CACHE_SWARM_KEY: keyB })
      assert.equal(mismatch.code, 1)
      const dial = find(mismatch, 'bootstrap.libp2p')
      assert.equal(dial.verdict, 'fail')
      assert.match(dial.summary, /swarm key mismatch/)
      assert.match(dial.fix ?? '', /CACHE_SWARM_KEY/)

      const noKey = await diagnose(topo.h1, ['--bootstrap', bootstrapOf(H2, private2.peerId, 9010)])
      assert.match(find(noKey, 'bootstrap.libp2p').summary, /private swarm .* no CACHE_SWARM_KEY/)

      const same = await diagnose(topo.h1, ['--bootstrap', bootstrapOf(H2, private2.peerId, 9010)], { CACHE_SWARM_KEY: keyA })
      assert.equal(find(same, 'bootstrap.libp2p').verdict, 'ok', problems(same))
    } finally {
      await private2.stop()
    }
  })

  it('unresolvable DNS name: ✗ with the name and the compose-service hint', async () => {
    const report = await diagnose(topo.h1, ['--bootstrap', `/dns4/nosuch.invalid/tcp/9000/p2p/${h2.peerId}`])
    assert.equal(report.code, 1)
    const addr = find(report, 'bootstrap.address')
    assert.equal(addr.verdict, 'fail')
    assert.match(addr.summary, /nosuch\.invalid does not resolve/)
    assert.match(addr.fix ?? '', /service name/)
  })

  it('malformed multiaddr: unusable input, exit 2, the entry and the expected form named', async () => {
    const report = await diagnose(topo.h1, ['--bootstrap', '/ip4/10.77.0/tcp/9000'])
    assert.equal(report.code, 2)
    assert.equal(report.verdict, 'unusable-input')
    const addr = find(report, 'bootstrap.address', '/ip4/10.77.0/tcp/9000')
    assert.equal(addr.verdict, 'fail')
    assert.match(addr.summary, /malformed/)
    assert.match(addr.fix ?? '', /p2p-cache id/)
  })
})
