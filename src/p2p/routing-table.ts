import type { SingleKadDHT } from '@libp2p/kad-dht'
import type { P2pNode } from './node.js'

/**
 * Peers in the DHT routing table. kadDHT() is typed as the multi-DHT interface; with one
 * DHT configured the service is a SingleKadDHT, which has the table.
 */
export function routingTableSize (node: P2pNode): number {
  return (node.services.dht as SingleKadDHT).routingTable?.size ?? 0
}
