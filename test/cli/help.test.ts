import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { runCli } from '../fixtures/sidecar-process.js'

const COMMANDS = ['serve', 'stats', 'gc', 'id', 'diagnose', 'swarm-key', 'warm', 'healthcheck']

describe('CLI: help and version', function () {
  this.timeout(30_000)

  it("ends every command's --help, and the top-level one, with real examples", async () => {
    const runs = await Promise.all([[], ...COMMANDS.map(c => [c])].map(async cmd => ({ cmd, res: await runCli([...cmd, '--help']) })))
    for (const { cmd, res } of runs) {
      const name = ['p2p-cache', ...cmd].join(' ')
      assert.equal(res.code, 0, `${name} --help: ${res.stderr}`)
      const examples = /\nExamples:\n((?: {2}\$ .+\n){2,4})$/.exec(res.stdout)
      assert.ok(examples !== null, `${name} --help does not end with 2-4 examples:\n${res.stdout}`)
      // Each example runs the command it documents (the top level's run any command).
      for (const line of examples[1]?.trimEnd().split('\n') ?? []) assert.match(line, new RegExp(`p2p-cache ?${cmd[0] ?? ''}`), line)
    }
  })

  it('prints the package version with --version and -V', async () => {
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    for (const flag of ['--version', '-V']) {
      const res = await runCli([flag])
      assert.equal(res.code, 0, res.stderr)
      assert.equal(res.stdout, `${version}\n`)
    }
  })
})
