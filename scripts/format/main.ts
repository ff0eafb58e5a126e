/**
 * `npm run format` (writes) and the format check of `npm run lint` (`--check`: lists the files
 * that are not formatted, exit 1): dprint's TypeScript plugin (a Wasm module from npm) through
 * @dprint/formatter, with the settings of dprint.json. The dprint CLI is not used: its platform
 * binaries are not all on the registry this project installs from, which breaks `npm ci`.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createContext } from '@dprint/formatter'
import { getPath } from '@dprint/typescript'

interface DprintConfig {
  lineWidth: number
  indentWidth: number
  typescript: Record<string, unknown>
  /** Folders whose .ts files are formatted (this script reads `<folder>/**\/*.ts`). */
  folders: string[]
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Every .ts file under `dir`, node_modules excluded. */
async function tsFiles (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory() && entry.name !== 'node_modules') out.push(...await tsFiles(path))
    else if (entry.isFile() && entry.name.endsWith('.ts')) out.push(path)
  }
  return out
}

const check = process.argv.includes('--check')
const config = JSON.parse(await readFile(join(ROOT, 'dprint.json'), 'utf8')) as DprintConfig
const context = createContext({ lineWidth: config.lineWidth, indentWidth: config.indentWidth })
context.addPlugin(await readFile(getPath()), config.typescript)
const unformatted: string[] = []
for (const folder of config.folders) {
  for (const file of await tsFiles(join(ROOT, folder))) {
    const text = await readFile(file, 'utf8')
    const formatted = context.formatText({ filePath: file, fileText: text })
    if (formatted === text) continue
    unformatted.push(relative(ROOT, file))
    if (!check) await writeFile(file, formatted)
  }
}
if (check && unformatted.length > 0) {
  process.stderr.write(`not formatted (run npm run format):\n${unformatted.map(f => `  ${f}`).join('\n')}\n`)
  process.exit(1)
}
process.stdout.write(check ? 'formatted\n' : `formatted ${unformatted.length} files\n`)
