/**
 * The "proxy" rows of `npm run bench` (issue 24): one image pulled by skopeo on an emulated
 * runner host three ways, side by side in one run, over a 200 Mbit link (netns, tc tbf):
 *
 *   - direct: from `ghcr.io` itself (the Debian docker-registry over TLS under that name, with a
 *     test CA, on the "registry" host), no sidecar: the baseline of a cold pull;
 *   - mirror: through the sidecar's registry mirror (registries.conf `[[registry.mirror]]`);
 *   - proxy: through the sidecar's forward proxy (HTTPS_PROXY, the sidecar's CA trusted).
 *
 * Cold pulls start from an empty store (DELETE /api/cache), warm ones from a full one; the
 * methods alternate in each round. Goal: the proxy within 5% of the mirror, cold. Then the CPU
 * the TLS termination costs: the sidecar's CPU seconds per GiB of a stored blob read through
 * the proxy (TLS) and through the mirror (plain HTTP), by curl on the runner's loopback.
 *
 * Skipped (with the reason, as a row) where namespaces or tc tbf can't be used.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { startRegistry } from '../../test/fixtures/registry.js'
import { buildShapedLan, type ShapedHost } from '../../test/fixtures/shaped-lan.js'
import { startSidecar } from '../../test/fixtures/sidecar-process.js'
import { buildImage } from '../../test/fixtures/oci-image.js'
import { pushLayout, skopeoCopy } from '../../test/fixtures/skopeo.js'
import { makeTestPki } from '../../test/fixtures/test-pki.js'
import { withSectionCleanup } from './cleanup.js'
import { spread, type SectionCtx } from './common.js'
import { linkSkipReason } from './p2p-link.js'
import { cpuSeconds } from './proc.js'
import { median, MiB, ratioOf } from './report.js'

export interface ProxyBenchConfig {
  /** Layers of the image, and the bytes of each. */
  layers: number
  layerBytes: number
  /** Rounds; each pulls cold and warm through every method. */
  rounds: number
  rate: string
  rateMbit: number
  /** Bytes read (a stored blob, repeatedly) for the CPU rows, per method. */
  cpuBytes: number
}

export function proxyBenchConfig (quick: boolean): ProxyBenchConfig {
  return {
    layers: 4,
    layerBytes: (quick ? 8 : 32) * MiB,
    rounds: quick ? 2 : 3,
    rate: '200mbit',
    rateMbit: 200,
    cpuBytes: (quick ? 1 : 2) * 1024 * MiB
  }
}

const METHODS = ['direct', 'mirror', 'proxy'] as const
type Method = typeof METHODS[number]

export async function proxyBench (ctx: SectionCtx, cfg: ProxyBenchConfig): Promise<void> {
  const size = `${(cfg.layers * cfg.layerBytes / MiB).toFixed(0)} MiB`
  const skip = await linkSkipReason()
  if (skip !== undefined) {
    ctx.log(`proxy: skipped: ${skip}`)
    ctx.samples.proxy_skipped = skip
    ctx.rows.push({
      metric: `proxy: cold pull ${size} vs mirror`,
      unit: 's',
      value: NaN,
      baseline: undefined,
      ratio: undefined,
      target: 'skipped',
      pass: undefined,
      digits: 2,
      note: skip
    })
    return
  }
  await withSectionCleanup(ctx, 'proxy', async local => {
    const dir = join(ctx.work, 'proxy')
    await mkdir(dir, { recursive: true })
    local.add('proxy dir', () => rm(dir, { recursive: true, force: true }))
    const lan = await buildShapedLan({ names: ['preg', 'prun'], subnet: '10.79.1', rate: cfg.rate })
    local.add('proxy lan', () => lan.destroy())
    const [reg, runner] = lan.hosts as [ShapedHost, ShapedHost]
    await runner.ns.etc('hosts', `127.0.0.1 localhost\n${reg.ip} ghcr.io\n`)
    await runner.ns.etc('resolv.conf', 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n')
    const pki = await makeTestPki(dir, ['DNS:ghcr.io', `IP:${reg.ip}`], 'bench-registry')
    const registry = await startRegistry({
      netns: reg.ns,
      listenHost: reg.ip,
      port: 443,
      tls: { certFile: pki.certFile, keyFile: pki.keyFile, caFile: pki.caFile }
    })
    local.add('proxy registry', () => registry.destroy())
    await buildImage(join(dir, 'image'), { tag: '1', layers: cfg.layers, layerSize: cfg.layerBytes })
    await pushLayout(join(dir, 'image'), '1', `${reg.ip}:443`, 'bench/app', { netns: reg.ns.name, timeoutMs: 300_000 })
    const sidecar = await startSidecar(
      {
        CACHE_REGISTRY_UPSTREAMS: 'ghcr.io=https://ghcr.io',
        CACHE_PROXY_ADDR: '127.0.0.1:3128',
        CACHE_UPSTREAM_CA_FILE: pki.caFile,
        CACHE_LOG_LEVEL: 'warn',
        CACHE_MAX_SIZE: '20GB'
      },
      { netns: runner.ns, dir: join(dir, 'sidecar') }
    )
    local.add('proxy sidecar', () => sidecar.destroy())
    const pid = sidecar.proc.child.pid
    if (pid === undefined) throw new Error('proxy bench: the sidecar has no pid')
    const sidecarCa = join(dir, 'sidecar-ca.crt')
    await writeFile(sidecarCa, await readFile(join(dir, 'sidecar', 'data', 'proxy-ca', 'ca.crt')))
    const mirrorConf = [
      '[[registry]]',
      'location = "ghcr.io"',
      '',
      '[[registry.mirror]]',
      `location = "${sidecar.host}"`,
      'insecure = true',
      ''
    ].join('\n')
    const clear = async (): Promise<void> => {
      const r = await runner.ns.run('curl', ['-sS', '-X', 'DELETE', '--max-time', '30', `${sidecar.url}/api/cache`])
      if (r.code !== 0) throw new Error(`DELETE /api/cache: ${r.stderr}`)
    }
    const pull = async (method: Method): Promise<number> => {
      const out = join(dir, `pull-${method}`)
      await rm(out, { recursive: true, force: true })
      const t = performance.now()
      await skopeoCopy('docker://ghcr.io/bench/app:1', `oci:${out}:x`, {
        netns: runner.ns.name,
        timeoutMs: 300_000,
        env: method === 'proxy' ? { HTTPS_PROXY: 'http://127.0.0.1:3128', SSL_CERT_FILE: sidecarCa } : { SSL_CERT_FILE: pki.caFile },
        ...(method === 'mirror' ? { registriesConf: mirrorConf } : {})
      })
      const s = (performance.now() - t) / 1000
      await rm(out, { recursive: true, force: true })
      return s
    }
    const cold: Record<Method, number[]> = { direct: [], mirror: [], proxy: [] }
    const warm: Record<'mirror' | 'proxy', number[]> = { mirror: [], proxy: [] }
    for (let round = 0; round < cfg.rounds; round++) {
      const order = round % 2 === 0 ? METHODS : [...METHODS].reverse()
      for (const method of order) {
        await clear()
        cold[method].push(await pull(method))
        if (method !== 'direct') warm[method].push(await pull(method))
      }
      ctx.log(
        `proxy: round ${round + 1}: cold direct ${cold.direct.at(-1)?.toFixed(2) ?? '-'} s, mirror ${
          cold.mirror.at(-1)?.toFixed(2) ?? '-'
        } s, proxy ${cold.proxy.at(-1)?.toFixed(2) ?? '-'} s; warm mirror ${warm.mirror.at(-1)?.toFixed(2) ?? '-'} s, proxy ${
          warm.proxy.at(-1)?.toFixed(2) ?? '-'
        } s`
      )
    }
    ctx.samples.proxy_pulls = { cold, warm, size, link: cfg.rate }
    const link = `${cfg.rateMbit} Mbit`
    const [coldProxy, coldMirror, coldDirect] = [median(cold.proxy), median(cold.mirror), median(cold.direct)]
    ctx.rows.push({
      metric: `proxy: cold pull ${size} through the proxy vs the mirror (${link}, netns)`,
      unit: 's',
      value: coldProxy,
      baseline: coldMirror,
      ratio: ratioOf(coldProxy, coldMirror),
      target: '<= 1.05',
      pass: ratioOf(coldProxy, coldMirror) <= 1.05,
      digits: 2,
      note: `proxy ${spread(cold.proxy, 2)}, mirror ${spread(cold.mirror, 2)}`
    })
    ctx.rows.push({
      metric: `proxy: cold pull ${size} through the proxy vs directly (${link}, netns)`,
      unit: 's',
      value: coldProxy,
      baseline: coldDirect,
      ratio: ratioOf(coldProxy, coldDirect),
      target: '-',
      pass: undefined,
      digits: 2,
      note: `direct ${spread(cold.direct, 2)}`
    })
    const [warmProxy, warmMirror] = [median(warm.proxy), median(warm.mirror)]
    ctx.rows.push({
      metric: `proxy: warm pull ${size} through the proxy vs the mirror (stored, runner loopback)`,
      unit: 's',
      value: warmProxy,
      baseline: warmMirror,
      ratio: ratioOf(warmProxy, warmMirror),
      target: '-',
      pass: undefined,
      digits: 2,
      note: `proxy ${spread(warm.proxy, 2)}, mirror ${spread(warm.mirror, 2)}`
    })

    // CPU of TLS termination: one stored layer read until cfg.cpuBytes, through each way in.
    const layer = await runner.ns.must('curl', [
      '-sS',
      '--max-time',
      '10',
      '-H',
      'accept: application/vnd.oci.image.manifest.v1+json',
      `${sidecar.url}/v2/bench/app/manifests/1?ns=ghcr.io`
    ])
    const digest = (JSON.parse(layer) as { layers: Array<{ digest: string }> }).layers[0]?.digest
    if (digest === undefined) throw new Error('proxy bench: no layer in the manifest')
    const reads = Math.max(1, Math.round(cfg.cpuBytes / cfg.layerBytes))
    const cpuPerGiB = async (method: 'mirror' | 'proxy'): Promise<number> => {
      const url = method === 'proxy'
        ? `https://ghcr.io/v2/bench/app/blobs/${digest}`
        : `${sidecar.url}/v2/bench/app/blobs/${digest}?ns=ghcr.io`
      const args = method === 'proxy' ? ['--proxy', 'http://127.0.0.1:3128', '--cacert', sidecarCa] : []
      const before = cpuSeconds(pid)
      // One curl, `reads` transfers on one connection (the keep-alive a pulling client uses).
      const r = await runner.ns.run('curl', [
        '-sS',
        '--fail',
        '-o',
        '/dev/null',
        ...args,
        ...Array.from({ length: reads }, () => [url, '-o', '/dev/null']).flat()
      ], { timeoutMs: 600_000 })
      if (r.code !== 0) throw new Error(`proxy bench: curl through the ${method}: ${r.stderr.trim()}`)
      return (cpuSeconds(pid) - before) / (reads * cfg.layerBytes / (1024 * MiB))
    }
    const cpuMirror = await cpuPerGiB('mirror')
    const cpuProxy = await cpuPerGiB('proxy')
    ctx.samples.proxy_cpu = { mirror: cpuMirror, proxy: cpuProxy, reads, bytes: reads * cfg.layerBytes }
    ctx.rows.push({
      metric: 'proxy: sidecar CPU per GiB served from the store through the proxy (TLS) vs the mirror (HTTP)',
      unit: 'CPU-s/GiB',
      value: cpuProxy,
      baseline: cpuMirror,
      ratio: ratioOf(cpuProxy, cpuMirror),
      target: '-',
      pass: undefined,
      digits: 2,
      note: `TLS termination ${(cpuProxy - cpuMirror).toFixed(2)} CPU-s/GiB over plain HTTP`
    })
  })
}
