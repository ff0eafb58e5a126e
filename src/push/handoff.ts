import type { Logger } from 'pino'
import type { StoreReader } from '../store/roles.js'
import type { RecordTable } from '../records/swarm-records.js'
import type { HoldKey, HoldRecord } from '../p2p/hold/frames.js'
import type { LocalTag } from './local-registry.js'
import type { Replicator } from './replicator.js'

/** Tag records handed off at most (the most a stopping node spends its budget on). */
const MAX_TAGS_HANDED_OFF = 4096

export interface HandOffInit {
  store: Pick<StoreReader, 'entries'>
  tags: RecordTable<LocalTag>
  replicas: Pick<Replicator, 'place'>
  /** This node's peer ID: what it keeps goes to the peers closest to it. */
  self: string
  log: Logger
  now?: () => number
}

/**
 * A node that stops gracefully hands what it keeps for the local namespace (its pushes and the
 * replicas it holds, within CACHE_LOCAL_TTL) to the peers that would hold a replica, so the last
 * copy does not leave with it while another node can hold it. Peers that hold it already answer
 * at once. Bounded by `timeoutMs`; what did not go is logged, never thrown.
 */
export async function handOff (init: HandOffInit, timeoutMs: number): Promise<void> {
  const now = (init.now ?? Date.now)()
  const keys: HoldKey[] = []
  for await (const [digest, record] of init.store.entries()) {
    if ((record.keepUntil ?? 0) > now) keys.push({ digest, ...(record.mediaType !== undefined ? { mediaType: record.mediaType } : {}) })
  }
  if (keys.length === 0) return
  const records: HoldRecord[] = init.tags.shared
    ? (await init.tags.list('', MAX_TAGS_HANDED_OFF)).map(r => ({ key: init.tags.key(r.name), value: JSON.stringify(r.value) }))
    : []
  try {
    const holders = await init.replicas.place(init.self, keys, records, { timeoutMs })
    if (holders.length > 0) {
      init.log.info({ keys: keys.length, tags: records.length, holders }, "handed the local namespace's content to peers before stopping")
    }
  } catch (err) {
    init.log.warn(
      { keys: keys.length, err: (err as Error).message },
      'stopping before every pushed blob is held by another node: what only this node kept is gone with it'
    )
  }
}
