import { readFileSync } from 'node:fs'
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { ConfigError } from '../errors/config-error.js'
import { TLS_CERT_EXPECTED, TLS_KEY_EXPECTED } from './constants.js'

/** The HTTPS listener's certificate (chain) and private key, as PEM. */
export interface TlsFiles {
  cert: Buffer
  key: Buffer
}

/**
 * Reads CACHE_TLS_CERT and CACHE_TLS_KEY and checks that the key belongs to the certificate.
 * Called before anything else starts: a wrong path or a mismatched pair is a configuration
 * error (one line naming the variable, exit 2), not a TLS failure on a client's first request.
 */
export function loadTlsFiles (certPath: string, keyPath: string): TlsFiles {
  const cert = readPem('CACHE_TLS_CERT', certPath)
  const key = readPem('CACHE_TLS_KEY', keyPath)
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch (err) {
    throw fileError('CACHE_TLS_CERT', certPath, `is not a PEM certificate (${(err as Error).message})`)
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(key)
  } catch (err) {
    throw fileError('CACHE_TLS_KEY', keyPath, `is not an unencrypted PEM private key (${(err as Error).message})`)
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw fileError('CACHE_TLS_KEY', keyPath, `is not the private key of the certificate in CACHE_TLS_CERT (${certPath})`)
  }
  return { cert, key }
}

function readPem (variable: 'CACHE_TLS_CERT' | 'CACHE_TLS_KEY', path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw fileError(variable, path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
}

function fileError (variable: 'CACHE_TLS_CERT' | 'CACHE_TLS_KEY', path: string, reason: string): ConfigError {
  return new ConfigError(
    variable,
    path,
    variable === 'CACHE_TLS_CERT' ? TLS_CERT_EXPECTED : TLS_KEY_EXPECTED,
    `file ${JSON.stringify(path)} ${reason}`
  )
}
