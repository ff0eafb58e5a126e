import { rootCertificates } from 'node:tls'

/**
 * undici Agent options that trust `extra` CA certificates (PEM, CACHE_UPSTREAM_CA_FILE) besides
 * the system roots: giving `ca` alone would replace the roots. Empty without extras.
 */
export function trustOptions (extra: string[] | undefined): { connect?: { ca: string[] } } {
  return extra === undefined || extra.length === 0 ? {} : { connect: { ca: [...rootCertificates, ...extra] } }
}
