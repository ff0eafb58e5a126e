/**
 * Terminal output of the demo: plain text in a log or a pipe, colours only on a TTY (and not
 * with NO_COLOR), so `npm run demo > demo.log` reads the same as the screen.
 */

const useColour = process.stdout.isTTY === true && process.env.NO_COLOR === undefined

function sgr (code: string): (s: string) => string {
  return s => useColour ? `\u001b[${code}m${s}\u001b[0m` : s
}

export const bold = sgr('1')
export const dim = sgr('2')
export const green = sgr('32')
export const yellow = sgr('33')
export const cyan = sgr('36')
export const red = sgr('31')

export function say (line = ''): void {
  process.stdout.write(`${line}\n`)
}

/** A step of the run, with the seconds since start. */
export function step (t0: number, msg: string): void {
  say(`${dim(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(4)} s]`)} ${msg}`)
}

export interface Cell {
  text: string
  /** Applied after padding, so escape codes don't skew the column widths. */
  colour?: (s: string) => string
}

export type CellLike = string | Cell

/** A left/right aligned text table; `right` lists the right-aligned columns (numbers). */
export function table (header: string[], rows: CellLike[][], right: number[] = [], indent = '  '): string {
  const cells = rows.map(r => r.map(c => typeof c === 'string' ? { text: c } : c))
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map(r => r[i]?.text.length ?? 0)))
  const pad = (s: string, i: number): string => right.includes(i) ? s.padStart(widths[i] ?? 0) : s.padEnd(widths[i] ?? 0)
  const line = (r: Cell[]): string => indent + r.map((c, i) => (c.colour ?? (s => s))(pad(c.text, i))).join('  ').trimEnd()
  const head = indent + header.map((h, i) => bold(pad(h, i))).join('  ').trimEnd()
  const rule = indent + widths.map(w => '-'.repeat(w)).join('  ')
  return [head, rule, ...cells.map(line)].join('\n')
}

export function formatBytes (n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${n} B`
}

/** `sha256:0123456789ab` — enough to tell blobs apart on screen. */
export function shortDigest (digest: string): string {
  return digest.slice(0, 'sha256:'.length + 12)
}

/** `12D3KooW…<last 6>`: every libp2p Ed25519 id starts alike, the tail tells them apart. */
export function shortPeerId (id: string): string {
  return id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id
}
