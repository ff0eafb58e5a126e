// A swarm key type of its own, like api-key.ts: p2p/ names it in its frames without importing
// the modules that keep the records.

/**
 * The swarm-wide name of a small record (SwarmRecords): `rec:<kind> <name>`. Kinds are short
 * lower-case words (`url`: an immutable download's URL → digest); the name is the kind's own
 * (a URL), without whitespace.
 */
export type RecordKey = `rec:${string}`

const RECORD_KEY = /^rec:([a-z][a-z0-9-]{0,31}) (\S{1,600})$/

export function recordKey (kind: string, name: string): RecordKey {
  return `rec:${kind} ${name}`
}

export function isRecordKey (key: string): key is RecordKey {
  return RECORD_KEY.test(key)
}

/** The kind and name of a record key; undefined when malformed. */
export function parseRecordKey (key: string): { kind: string, name: string } | undefined {
  const m = RECORD_KEY.exec(key)
  return m === null ? undefined : { kind: m[1] as string, name: m[2] as string }
}
