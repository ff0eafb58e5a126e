import { P2pCacheError } from '../errors/p2p-cache-error.js'
/** Error codes of the OCI distribution spec, plus the status each is sent with. */
export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'SIZE_INVALID'
  | 'DIGEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'TAG_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'

export class OciError extends P2pCacheError {
  constructor (
    readonly status: number,
    readonly code: OciErrorCode | 'UPSTREAM_UNAVAILABLE' | 'STORE_UNAVAILABLE' | 'REPLICAS_UNAVAILABLE',
    message: string,
    readonly detail?: Record<string, unknown>,
    /** Response headers that go with it (Retry-After). */
    readonly headers: Record<string, string> = {}
  ) {
    super(message, { httpStatus: status })
  }

  body (): string {
    return JSON.stringify({ errors: [{ code: this.code, message: this.message, detail: this.detail ?? {} }] })
  }
}
