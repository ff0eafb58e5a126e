import type { ApiResolver } from '../apicache/resolver.js'
import type { BucketWriter } from '../bucket/bucket-writer.js'
import type { Swarm } from '../p2p/swarm.js'
import type { ReplicaKeeper } from '../push/replica-keeper.js'
import type { SwarmRecords } from '../records/swarm-records.js'
import type { BlobResolver } from '../resolver/blob-resolver.js'

/**
 * Parts that earlier ones call back into but that start after them: the store announces what it
 * commits through the swarm, the swarm asks the resolver what is in progress and the keeper to
 * hold pushes. Each is set once it has started; until then callers find it undefined and do
 * without (a peer asking before the resolver exists finds nothing in progress).
 */
export interface LateBound {
  swarm?: Swarm
  blobs?: BlobResolver
  api?: ApiResolver
  records?: SwarmRecords
  keeper?: ReplicaKeeper
  writer?: BucketWriter
}
