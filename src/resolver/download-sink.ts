import type { SourceFile } from './growing-file.js'

/** What is fetched: a blob (`/blobs/`), or a manifest by digest (`/manifests/`, typed, bounded). */
export type DownloadKind = 'blob' | 'manifest'

/** Who answered for a download's bytes (see DownloadSink.sourced). */
export interface SourceAnswer {
  /** The whole size in bytes as the source stated it; undefined when it did not (an upstream without Content-Length). */
  size: number | undefined
  /** `PEER`: a peer sends the bytes; `MISS`: the upstream. */
  cache: 'PEER' | 'MISS'
  /** The peer's ID, or the upstream's name. */
  origin: string
  /** A manifest's type as the upstream stated it (left as it was when undefined). */
  mediaType?: string | undefined
  /** The bytes come from peers piece by piece, each verified against piece hashes: peers may read them. */
  piecewise?: boolean
  /** The bytes come from the bucket (CACHE_S3_URL): `cache` is MISS, `origin` is `s3`. */
  bucket?: boolean
}

/**
 * Where a source of a download (upstream-source.ts, holder-source.ts) puts what it fetched:
 * the growing file, and what the download tells its readers. The sources see a download only
 * through this (BlobDownload implements it).
 */
export interface DownloadSink {
  /** The temporary file the bytes go to. */
  readonly file: SourceFile
  /**
   * A source committed to (an upstream 2xx, a peer's header): the download's `ready` resolves
   * with `answer.size`, and responses name this source. Called again for the next source after
   * the file started over.
   */
  sourced: (answer: SourceAnswer) => void
  /** A manifest's type to store: the one the body declares, or one a peer stated and the body confirms. */
  setMediaType: (mediaType: string | undefined) => void
}
