import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:net'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { cliNodeFlags, runCli, startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { freePort } from '../fixtures/ports.js'
import { httpStatus, waitFor } from '../fixtures/wait.js'
import { startSwarmNode, type SwarmNode } from '../fixtures/swarm.js'

/** A loopback port held by another server for the test's length. */
async function busyPort (): Promise<{ port: number, server: Server }> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  assert.ok(address !== null && typeof address === 'object')
  return { port: address.port, server }
}

/** A port in use whose predecessor is free: a P2P port whose `auto` data port (+1) is taken. */
async function busyAfterFreePort (): Promise<{ port: number, server: Server }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const free = await freePort()
    const server = createServer()
    const bound = await new Promise<boolean>(resolve => {
      server.once('error', () => {
        resolve(false)
      })
      server.listen(free + 1, '127.0.0.1', () => {
        resolve(true)
      })
    })
    if (bound) return { port: free + 1, server }
  }
  throw new Error('no free port followed by a free port in 20 attempts')
}

/** stderr as lines, the warnings of unrelated variables left out. */
const lines = (stderr: string): string[] => stderr.trim().split('\n').filter(Boolean)

/**
 * Start-up and CLI errors keep the one-line promise: what was wrong, the variable, what to do;
 * exit 2 for a configuration the command can't run with.
 */
describe('CLI: start-up errors and usage mistakes, one line each', function () {
  this.timeout(60_000)
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2p-cache-startup-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('the HTTP port in use: one line naming CACHE_HTTP_ADDR, exit 2', async () => {
    const { port, server } = await busyPort()
    try {
      const r = await runCli(['serve'], {
        CACHE_ENABLE_P2P: 'false',
        CACHE_HTTP_ADDR: `127.0.0.1:${port}`,
        CACHE_DIR: join(dir, 'http'),
        CACHE_LOG_LEVEL: 'silent'
      })
      assert.equal(r.code, 2, r.stderr)
      assert.deepEqual(lines(r.stderr), [
        `p2p-cache: cannot listen on CACHE_HTTP_ADDR=127.0.0.1:${port}: the port is in use (another sidecar, or another server); pick a free one with CACHE_HTTP_ADDR`
      ])
    } finally {
      server.close()
    }
  })

  it("the P2P port in use: one short line naming the port, the other sidecar's data channel (P2P port + 1) as a likely holder, and the fix; exit 2", async () => {
    const { port, server } = await busyPort()
    try {
      const r = await runCli(['serve'], {
        CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${port}`,
        CACHE_HTTP_ADDR: '127.0.0.1:0',
        CACHE_DIR: join(dir, 'p2p'),
        CACHE_LOG_LEVEL: 'silent'
      })
      assert.equal(r.code, 2, r.stderr)
      assert.equal(lines(r.stderr).length, 1, r.stderr)
      assert.match(
        r.stderr,
        new RegExp(`^p2p-cache: could not start the peer-to-peer node: TCP port ${port} \\(127\\.0\\.0\\.1\\) is already in use`)
      )
      assert.match(
        r.stderr,
        new RegExp(`data channel, which takes the P2P port \\+ 1 \\(a sidecar with CACHE_P2P_PORT=${port - 1} holds ${port} too\\)`)
      )
      assert.match(r.stderr, /CACHE_P2P_PORT=\d+, or CACHE_LISTEN_ADDRS\), or run without peers with CACHE_ENABLE_P2P=false/)
      // Not libp2p's advice (faultTolerance) nor a stack.
      assert.doesNotMatch(r.stderr, /faultTolerance|\s+at\s|node_modules/)
      assert.ok(r.stderr.length < 500, `${r.stderr.length} characters`)
    } finally {
      server.close()
    }
  })

  it('the data channel port: in use when set explicitly, one line naming CACHE_P2P_DATA_PORT (exit 2); with auto, another free port and a warning', async () => {
    const { port, server } = await busyAfterFreePort()
    try {
      const r = await runCli(['serve'], {
        CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${await freePort()}`,
        CACHE_P2P_DATA_PORT: String(port),
        CACHE_HTTP_ADDR: '127.0.0.1:0',
        CACHE_DIR: join(dir, 'data-port'),
        CACHE_LOG_LEVEL: 'silent'
      })
      assert.equal(r.code, 2, r.stderr)
      assert.equal(lines(r.stderr).length, 1, r.stderr)
      assert.match(
        r.stderr,
        new RegExp(`^p2p-cache: cannot listen on CACHE_P2P_DATA_PORT=${port} \\(127\\.0\\.0\\.1\\): .*EADDRINUSE.*CACHE_P2P_DATA_PORT=auto`)
      )
      // auto: the P2P port + 1 is taken, so any free port, said once at warn.
      const node = await startSidecar({
        CACHE_ENABLE_P2P: 'true',
        CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${port - 1}`,
        CACHE_LOG_LEVEL: 'warn'
      })
      try {
        const taken = node.logs().filter(l => l.includes('the data channel port is taken'))
        assert.equal(taken.length, 1, node.logs().join('\n'))
        assert.match(taken[0] ?? '', new RegExp(`"wanted":${port}`))
      } finally {
        await node.destroy()
      }
    } finally {
      server.close()
    }
  })

  it('CACHE_DIR in use by another running sidecar: one line, exit 2', async () => {
    const first: SidecarProcess = await startSidecar({ CACHE_ENABLE_P2P: 'false' })
    try {
      const r = await runCli(['serve'], {
        CACHE_ENABLE_P2P: 'false',
        CACHE_HTTP_ADDR: '127.0.0.1:0',
        CACHE_DIR: first.env.CACHE_DIR ?? '',
        CACHE_LOG_LEVEL: 'silent'
      })
      assert.equal(r.code, 2, r.stderr)
      assert.deepEqual(lines(r.stderr), [
        `p2p-cache: CACHE_DIR=${
          first.env.CACHE_DIR ?? ''
        } is in use by another p2p-cache process (its index is locked); stop that process, or give this one its own CACHE_DIR`
      ])
    } finally {
      await first.destroy()
    }
  })

  it("a CACHE_DIR that can't be created: one line, exit 2", async () => {
    const file = join(dir, 'a-file')
    await writeFile(file, 'not a directory')
    const r = await runCli(['serve'], {
      CACHE_ENABLE_P2P: 'false',
      CACHE_HTTP_ADDR: '127.0.0.1:0',
      CACHE_DIR: join(file, 'cache'),
      CACHE_LOG_LEVEL: 'silent'
    })
    assert.equal(r.code, 2, r.stderr)
    assert.equal(lines(r.stderr).length, 1, r.stderr)
    assert.match(
      r.stderr,
      /^p2p-cache: CACHE_DIR=.*a-file\/cache: cannot create .* \(ENOTDIR\); give the sidecar a writable directory \(a volume\) with CACHE_DIR\n$/
    )
  })

  it('an unknown CACHE_* variable is a warning naming the closest known one', async () => {
    const r = await runCli(['id'], {
      CACHE_DIR: join(dir, 'id-warn'),
      CACHE_MAXSIZE: '5GB',
      CACHE_BOOTSTRAP_PEER: '/ip4/10.0.0.1/tcp/9000',
      CACHE_HTTP_ADDR: '127.0.0.1:1'
    })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(lines(r.stderr), [
      'p2p-cache: warning: CACHE_BOOTSTRAP_PEER is not a p2p-cache setting and is ignored (did you mean CACHE_BOOTSTRAP_PEERS?)',
      'p2p-cache: warning: CACHE_MAXSIZE is not a p2p-cache setting and is ignored (did you mean CACHE_MAX_SIZE?)'
    ])
  })

  it('a mistyped command says "unknown command" with the closest one, exit 2', async () => {
    const r = await runCli(['statz'], {})
    assert.equal(r.code, 2)
    assert.match(r.stderr, /^p2p-cache: unknown command "statz" \(did you mean "stats"\?\); commands: serve, .*stats.*\n$/)
  })

  describe('`id` where a sidecar answers on CACHE_HTTP_ADDR', () => {
    let node: SwarmNode | undefined
    before(async () => {
      node = await startSwarmNode()
    })
    after(async () => {
      await node?.destroy()
    })

    it('with an empty CACHE_DIR: no new identity, the error names the running one (exit 2)', async () => {
      assert.ok(node)
      const empty = join(dir, 'id-empty')
      const r = await runCli(['id'], { CACHE_DIR: empty, CACHE_HTTP_ADDR: node.host })
      assert.equal(r.code, 2, r.stderr)
      assert.match(
        r.stderr,
        new RegExp(
          `^p2p-cache: CACHE_DIR=${empty} has no identity yet, but the sidecar at http://${node.host} is ${node.peerId}: run \`p2p-cache id\` with its CACHE_DIR`
        )
      )
      const again = await runCli(['id'], { CACHE_DIR: node.env.CACHE_DIR ?? '', CACHE_HTTP_ADDR: node.host })
      assert.equal(again.code, 0, again.stderr)
      assert.equal(again.stdout.split('\n')[0], node.peerId)
      assert.equal(again.stderr, '')
    })

    it('with another identity in CACHE_DIR: printed, with a warning naming the running one', async () => {
      assert.ok(node)
      const other = join(dir, 'id-other')
      const own = await runCli(['id'], { CACHE_DIR: other, CACHE_HTTP_ADDR: '127.0.0.1:1' })
      assert.equal(own.code, 0, own.stderr)
      const r = await runCli(['id'], { CACHE_DIR: other, CACHE_HTTP_ADDR: node.host })
      assert.equal(r.code, 0)
      assert.equal(r.stdout.split('\n')[0], own.stdout.split('\n')[0])
      assert.match(r.stderr, new RegExp(`^p2p-cache: warning: the sidecar answering at http://${node.host} is ${node.peerId}, not `))
    })
  })

  it('npm start: a SIGTERM to npm reaches the sidecar, which shuts down (the script execs node)', async () => {
    const port = await freePort()
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const npm = spawn('npm', ['start', '--silent'], {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        HOME: dir,
        CACHE_DIR: join(dir, 'npm-start'),
        CACHE_HTTP_ADDR: `127.0.0.1:${port}`,
        CACHE_ENABLE_P2P: 'false'
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: the cleanup below can kill node too, whatever npm did.
      detached: true
    })
    let out = ''
    npm.stdout.on('data', (c: Buffer) => {
      out += c.toString()
    })
    npm.stderr.on('data', (c: Buffer) => {
      out += c.toString()
    })
    const exited = new Promise<void>(resolve => npm.once('exit', () => resolve()))
    try {
      await waitFor(async () => await httpStatus(`http://127.0.0.1:${port}/readyz`, 1_000) === 200, {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: 'npm start to serve'
      })
      npm.kill('SIGTERM')
      await waitFor(async () => await httpStatus(`http://127.0.0.1:${port}/healthz`, 500).then(() => false, () => true), {
        timeoutMs: 15_000,
        intervalMs: 100,
        what: 'the sidecar to stop'
      })
      // The log line may reach the pipe after the listener closed.
      await waitFor(() => /"signal":"SIGTERM","msg":"shutting down"/.test(out), {
        timeoutMs: 10_000,
        intervalMs: 50,
        what: 'the shutdown logged'
      })
    } finally {
      try {
        process.kill(-(npm.pid ?? 0), 'SIGKILL')
      } catch {}
      await exited
    }
  })

  it("npm start, the p2p-cache command and the image run node with the same flags (the shebang's)", async () => {
    const flags = cliNodeFlags()
    assert.ok(flags.includes('--max-semi-space-size=4'), `shebang flags: ${flags.join(' ')}`)
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    assert.equal(pkg.scripts['start'], `exec node ${flags.join(' ')} dist/cli/main.js serve`)
    // The image runs the bin (its shebang): ENTRYPOINT ["p2p-cache"].
    assert.match(await readFile(join(root, 'Dockerfile'), 'utf8'), /^ENTRYPOINT \["p2p-cache"\]$/m)
  })
})
