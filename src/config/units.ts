// Sizes: decimal units (kB, MB, GB, TB = powers of 1000) and binary units
// (KiB, MiB, GiB, TiB = powers of 1024), as Kubernetes and `du --si` read them.
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  ki: 1024,
  kib: 1024,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
  ti: 1024 ** 4,
  tib: 1024 ** 4
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * An exact whole number of `unit`s, or undefined: digits beyond 2^53 (about 9 PB, or 104 days
 * in ms) read as an approximation, or as Infinity with enough of them, not as what was written.
 */
function exact (value: number): number | undefined {
  return Number.isSafeInteger(value) ? value : undefined
}

/** Bytes for "20GB", "512MiB", "1048576"; undefined when the text is not a size (or not below 2^53 bytes). */
export function parseSize (text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  if (m === null) return undefined
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()]
  if (unit === undefined) return undefined
  return exact(Math.floor(Number(m[1]) * unit))
}

/** Milliseconds for "30s", "10m", "1h", "2d", "1500ms"; undefined when not a duration (or not below 2^53 ms). */
export function parseDuration (text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(text)
  if (m === null) return undefined
  const unit = DURATION_UNITS[(m[2] ?? '').toLowerCase()]
  return unit === undefined ? undefined : exact(Math.floor(Number(m[1]) * unit))
}

export function formatBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let i = 0
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024
    i++
  }
  return `${value.toFixed(i === 0 ? 0 : 1)} ${units[i] ?? 'B'}`
}
