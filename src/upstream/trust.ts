import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { rootCertificates } from 'node:tls'
import { ConfigError } from '../errors/config-error.js'

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/**
 * The extra CA certificates of CACHE_UPSTREAM_CA_FILE (PEM, one or more), trusted for upstream
 * TLS besides the system roots; undefined when the option is unset.
 * @throws ConfigError when the file is unreadable or holds no certificate that parses
 */
export async function loadUpstreamCa (path: string): Promise<string[] | undefined> {
  if (path === '') return undefined
  const expected = 'the path of a readable PEM file of CA certificates'
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new ConfigError(
      'CACHE_UPSTREAM_CA_FILE',
      path,
      expected,
      `file "${path}" is unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`
    )
  }
  const certs = text.match(PEM_CERT) ?? []
  for (const pem of certs) {
    try {
      void new X509Certificate(pem)
    } catch (err) {
      throw new ConfigError(
        'CACHE_UPSTREAM_CA_FILE',
        path,
        expected,
        `file "${path}" holds a certificate that does not parse (${(err as Error).message})`
      )
    }
  }
  if (certs.length === 0) throw new ConfigError('CACHE_UPSTREAM_CA_FILE', path, expected, `file "${path}" holds no PEM certificate`)
  return certs
}

/**
 * The CA list for a TLS client that trusts `extra` (CACHE_UPSTREAM_CA_FILE) besides the system
 * roots: giving `ca` alone would replace the roots. Undefined without extras (the default roots).
 */
export function trustedCa (extra: string[] | undefined): string[] | undefined {
  return extra === undefined || extra.length === 0 ? undefined : [...rootCertificates, ...extra]
}

/** undici Agent options for `trustedCa(extra)`; empty without extras. */
export function trustOptions (extra: string[] | undefined): { connect?: { ca: string[] } } {
  const ca = trustedCa(extra)
  return ca === undefined ? {} : { connect: { ca } }
}
