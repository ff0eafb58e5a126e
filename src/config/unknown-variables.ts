import { closest, distance } from 'fastest-levenshtein'

/** A `CACHE_*` variable that is no setting, and the known one it most likely meant. */
export interface UnknownVariable {
  name: string
  /** The closest known name, when it is a plausible typo (a few edits away). */
  suggestion?: string
}

/**
 * The `CACHE_*` variables in `env` that no option reads (`CACHE_BOOTSTRAP_PEER`,
 * `CACHE_MAXSIZE`): set but silently ignored, they are a classic misconfiguration.
 */
export function unknownVariables (env: NodeJS.ProcessEnv, known: readonly string[]): UnknownVariable[] {
  const out: UnknownVariable[] = []
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('CACHE_') || known.includes(name)) continue
    const near = closest(name, known as string[])
    out.push(distance(name, near) <= Math.max(2, Math.floor(name.length / 4)) ? { name, suggestion: near } : { name })
  }
  return out
}

/** `unknown command "statz" (did you mean "stats"?)`: the closest of `commands` when it is near. */
export function closestCommand (word: string, commands: readonly string[]): string | undefined {
  const near = closest(word, commands as string[])
  return distance(word, near) <= 2 ? near : undefined
}
