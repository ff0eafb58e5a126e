import { join } from 'node:path'
import { digestHex, type Digest } from '../oci/digest.js'

/** Where things live under CACHE_DIR (docs/design.md §3.5). */
export interface StoreLayout {
  root: string
  blobs: string
  tmp: string
  index: string
}

export function storeLayout (root: string): StoreLayout {
  return {
    root,
    blobs: join(root, 'blobs', 'sha256'),
    tmp: join(root, 'tmp'),
    index: join(root, 'index')
  }
}

export function blobPath (layout: StoreLayout, digest: Digest): string {
  const hex = digestHex(digest)
  return join(layout.blobs, hex.slice(0, 2), hex)
}
