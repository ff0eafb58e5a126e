import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { buildImage, randomLayer, type ImageDescription } from '../fixtures/oci-image.js'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { layoutBlobDigests, pullToLayout, pushLayout } from '../fixtures/skopeo.js'
import {
  dumpLogsIfFailed,
  fetchBlob,
  pushBlob,
  startSwarmNode,
  stopAll,
  waitForPeers,
  waitForRoutingTables,
  type SwarmNode
} from '../fixtures/swarm.js'
import { startThrottleProxy, type ThrottleProxy } from '../fixtures/throttle-proxy.js'
import { waitFor } from '../fixtures/wait.js'

const MiB = 1024 * 1024
/** Debian's chromium (scripts/install-test-deps.sh): playwright-core downloads no browser of its own. */
const CHROMIUM = '/usr/bin/chromium'
/** Where the screenshot goes: docs/status-page.png (the README's) when STATUS_SCREENSHOT names it. */
const SCREENSHOT = process.env['STATUS_SCREENSHOT']

interface StatusJson {
  reachability: { state: string, verdict?: string, checkedAt?: string }
  images: { mostPulled: Array<{ image: string, tag?: string, pulls: number, bytes: number }> }
  peers: Array<{ peerId: string, bytesReceived: number, bytesSent: number, connected: boolean }>
}

async function json<T> (url: string): Promise<T> {
  const res = await fetch(url)
  assert.equal(res.status, 200, url)
  return await res.json() as T
}

/**
 * The little of the DOM the predicates below read in the page. They are functions, not strings:
 * the page's Content-Security-Policy allows no eval. (The test's TypeScript has no DOM types.)
 */
interface PageGlobals {
  document: {
    body: { dataset: Record<string, string | undefined> }
    getElementById: (id: string) => { dataset: Record<string, string | undefined> } | null
    querySelector: (selector: string) => { getAttribute: (name: string) => string | null } | null
  }
}

/** The number the page shows in element `#id` (its data-value). */
async function shown (page: Page, selector: string): Promise<number> {
  const value = await page.locator(selector).first().getAttribute('data-value')
  assert.ok(value !== null && value !== '', `${selector} shows a number`)
  return Number(value)
}

/** Waits until the page has rendered a status pushed after this call. */
async function nextUpdate (page: Page): Promise<void> {
  const before = Number(await page.locator('body').getAttribute('data-updates') ?? '0')
  await page.waitForFunction(n => Number((globalThis as unknown as PageGlobals).document.body.dataset['updates'] ?? '0') > n, before, {
    timeout: 10_000
  })
}

/**
 * Issue 29: the status page in a real browser (Debian's chromium driven by playwright-core),
 * against a 3-node swarm that has pulled an image: the numbers it shows are the sidecar's, a
 * transfer's progress moves, and the page loads nothing from anywhere else.
 */
describe('the status page (GET /ui) in a browser', function () {
  this.timeout(180_000)
  let work: string
  let registry: Registry
  let proxy: ThrottleProxy
  let image: ImageDescription
  let browser: Browser | undefined
  const nodes: SwarmNode[] = []

  before(async function () {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-ui-'))
    registry = await startRegistry()
    // 4 MiB/s from the upstream: the 24 MiB blob below takes about 6 s, long enough to watch.
    proxy = await startThrottleProxy({ target: { host: '127.0.0.1', port: registry.port }, bytesPerSecond: 4 * MiB })
    image = await buildImage(join(work, 'image'), { tag: 'v1', baseLayers: [randomLayer(MiB)], layers: 1 })
    await pushLayout(join(work, 'image'), 'v1', registry.host, 'ui/app')
    const env = { CACHE_REGISTRY_UPSTREAMS: `${proxy.host}=${proxy.url}` }
    const first = await startSwarmNode(env)
    nodes.push(first)
    for (let i = 0; i < 2; i++) nodes.push(await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: first.bootstrapAddr }))
    await waitForRoutingTables(nodes)
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Without the background-networking flags Chromium dials out to Google at start: nothing leaves loopback.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, Object.fromEntries(nodes.map((n, i) => [`n${i + 1}`, n])))
  })

  after(async () => {
    await browser?.close()
    await stopAll(nodes)
    await proxy?.close()
    await registry?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('shows the swarm that pulled an image: the numbers of /api/cache/stats, peers and bytes, images, reachability; then a transfer progressing', async () => {
    const [a, b, c] = nodes as [SwarmNode, SwarmNode, SwarmNode]
    // B pulls from the upstream, then A the same image from B, then A again from its own store.
    for (const [node, name] of [[b, 'b'], [a, 'a'], [a, 'a-again']] as const) {
      const out = await mkdtemp(join(work, `pull-${name}-`))
      await pullToLayout(node.host, 'ui/app', 'v1', out)
      assert.deepEqual(new Set(await layoutBlobDigests(out)), new Set(image.allBlobDigests))
    }
    await Promise.all([waitForPeers(a, 2), waitForPeers(c, 2)])

    const page = await browser!.newPage()
    const requested: string[] = []
    const errors: string[] = []
    page.on('request', r => requested.push(r.url()))
    page.on('pageerror', e => errors.push(e.message))
    const res = await page.goto(`${a.url}/ui`)
    assert.equal(res?.status(), 200)
    assert.match(res?.headers()['content-security-policy'] ?? '', /default-src 'none'/)
    await nextUpdate(page)
    await nextUpdate(page)

    // The numbers: A is idle now, so /api/cache/stats and the page agree exactly.
    const stats = await a.stats()
    assert.ok((stats['peer_hits'] ?? 0) > 0, 'A had the image from its peer B')
    assert.ok((stats['hits'] ?? 0) > 0, 'then from its own store')
    assert.equal(await shown(page, '#n-local'), stats['hits'])
    assert.equal(await shown(page, '#n-peer'), stats['peer_hits'])
    assert.equal(await shown(page, '#n-upstream'), stats['upstream_hits'])
    assert.equal(await shown(page, '#hit-ratio'), stats['hit_rate'])
    assert.equal(await shown(page, '#bytes-served'), stats['bytes_served'])
    assert.equal(await shown(page, '#bytes-fromPeers'), stats['bytes_from_peers'])
    assert.equal(await shown(page, '#store-used'), stats['current_size'])
    assert.equal(await shown(page, '#peers-connected'), 2)
    assert.equal(await shown(page, '#requests-saved'), (stats['hits'] ?? 0) + (stats['peer_hits'] ?? 0) + (stats['s3_hits'] ?? 0))
    // Peers: B sent A every byte A had from peers; C is connected with nothing exchanged.
    const bId = (await json<{ peerId: string }>(`${b.url}/api/p2p`)).peerId
    const cId = (await json<{ peerId: string }>(`${c.url}/api/p2p`)).peerId
    assert.equal(await shown(page, `tr[data-peer="${bId}"] td:nth-child(3)`), stats['bytes_from_peers'])
    assert.equal(await shown(page, `tr[data-peer="${cId}"] td:nth-child(3)`), 0)
    // Images: the one pulled, twice, at its size (config + layers).
    const row = page.locator('#most-pulled tr[data-image$="/ui/app"]')
    assert.match(await row.locator('td').first().innerText(), /\/ui\/app:v1$/)
    assert.equal(await shown(page, '#most-pulled tr[data-image$="/ui/app"] td:nth-child(2)'), 2)
    const status = await json<StatusJson>(`${a.url}/api/status`)
    const pulled = status.images.mostPulled.find(i => i.image.endsWith('/ui/app'))
    assert.ok(pulled !== undefined && pulled.bytes > MiB, `the image's size: ${JSON.stringify(pulled)}`)

    // Reachability: diagnose's checks ran once in the background; updates don't rerun them.
    await page.waitForFunction(
      () => (globalThis as unknown as PageGlobals).document.getElementById('reachability')?.dataset['value'] !== 'checking',
      undefined,
      { timeout: 60_000 }
    )
    assert.match(await page.locator('#reachability').getAttribute('data-value') ?? '', /^(ok|warn|fail)$/)
    const checked = (await json<StatusJson>(`${a.url}/api/status`)).reachability.checkedAt
    await nextUpdate(page)
    await nextUpdate(page)
    assert.equal(
      (await json<StatusJson>(`${a.url}/api/status`)).reachability.checkedAt,
      checked,
      'the verdict is cached, not rerun per update'
    )

    // A transfer: a 24 MiB blob from the throttled upstream; its row's bytes grow, then it goes.
    const data = randomBytes(24 * MiB)
    const digest = await pushBlob(registry.url, 'ui/big', data)
    const download = fetchBlob(`${a.url}/v2/ui/big/blobs/${digest}`)
    const transfer = page.locator(`#transfers tr[data-digest="${digest}"]`)
    await transfer.waitFor({ timeout: 15_000 })
    const first = Number(await transfer.getAttribute('data-written'))
    await page.waitForFunction(
      ([d, w]) =>
        Number(
          (globalThis as unknown as PageGlobals).document.querySelector(`#transfers tr[data-digest="${d}"]`)?.getAttribute(
            'data-written'
          ) ?? '0'
        ) > w,
      [digest, first] as const,
      { timeout: 15_000 }
    )
    const bar = await transfer.locator('.bar > div').getAttribute('style')
    assert.match(bar ?? '', /width:\s*\d+(\.\d+)?%/)
    assert.match(await transfer.locator('td').nth(1).innerText(), /^upstream/)
    if (SCREENSHOT !== undefined) await page.screenshot({ path: SCREENSHOT, fullPage: true })
    const got = await download
    assert.equal(got.digest, digest)
    await transfer.waitFor({ state: 'detached', timeout: 15_000 })
    const shot = SCREENSHOT ?? join(work, 'status-page.png')
    if (SCREENSHOT === undefined) await page.screenshot({ path: shot, fullPage: true })
    assert.ok((await stat(shot)).size > 10_000, 'a screenshot was saved')

    // Self-contained: every request the page made went to the sidecar itself.
    assert.deepEqual(requested.filter(u => !u.startsWith(`${a.url}/`)), [])
    assert.deepEqual(errors, [])
    await page.close()
  })

  it('the page and its data are read-only, and a page that leaves stops its updates', async () => {
    const a = nodes[0] as SwarmNode
    const post = await fetch(`${a.url}/api/status`, { method: 'POST' })
    assert.equal(post.status, 405)
    // Server-sent events: a status at once, and the stream ends cleanly when the client goes.
    const controller = new AbortController()
    const res = await fetch(`${a.url}/api/status/events`, { signal: controller.signal })
    assert.equal(res.headers.get('content-type'), 'text/event-stream')
    const reader = res.body!.getReader()
    const { value } = await reader.read()
    assert.match(Buffer.from(value!).toString('utf8'), /^event: status\ndata: \{/)
    controller.abort()
    await waitFor(async () => {
      const r = await fetch(`${a.url}/api/status/events`, { method: 'HEAD' })
      return r.status === 200
    }, { timeoutMs: 15_000, what: 'the stream to be released' })
  })
})
