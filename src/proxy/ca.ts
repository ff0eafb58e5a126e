// @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata'
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto'

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createSecureContext, type SecureContext } from 'node:tls'
import type { Logger } from 'pino'
import * as x509 from '@peculiar/x509'
import { AsnConvert } from '@peculiar/asn1-schema'
import { GeneralName, GeneralSubtree, GeneralSubtrees, id_ce_nameConstraints, NameConstraints } from '@peculiar/asn1-x509'
import { ConfigError } from '../errors/config-error.js'
import { systemClock, type Clock } from '../clock/clock.js'
import type { HostList } from './host-list.js'
import { BACKDATE_MS, CA_DIR, CA_VALIDITY_MS, LEAF_CACHE_MAX, LEAF_VALIDITY_MS } from './constants.js'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

/** ECDSA P-256 with SHA-256: quick to make and to sign with, and every TLS client takes it. */
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const RSA_SHA256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const
type SigningAlgorithm = typeof EC_P256 | { name: 'ECDSA', namedCurve: string, hash: string } | typeof RSA_SHA256

export interface ProxyCaInit {
  /** CACHE_DIR: a CA the sidecar makes lives in <dir>/proxy-ca/. */
  dir: string
  /** The hosts leaves are minted for; a generated CA is name-constrained to them. */
  intercept: HostList
  /** CACHE_PROXY_CA_CERT and CACHE_PROXY_CA_KEY: the fleet's own CA (both or neither). */
  certFile?: string | undefined
  keyFile?: string | undefined
  log: Logger
  clock?: Clock
}

interface Leaf {
  context: SecureContext
  /** ms since the epoch after which it is minted again. */
  renewAt: number
}

/**
 * The proxy's certificate authority (issue 24): mints a leaf certificate for each intercepted
 * host on first use. Made on first start in CACHE_DIR (key file mode 0600, never logged) with
 * X.509 name constraints (RFC 5280 4.2.1.10) limited to the intercept list, so its key can't
 * impersonate other sites; made again (and said so) when the list changes. Or the operator's own
 * (CACHE_PROXY_CA_CERT, CACHE_PROXY_CA_KEY), so a whole fleet trusts one.
 */
export class ProxyCa {
  private readonly leaves = new Map<string, Promise<Leaf>>()
  private readonly clock: Clock

  private constructor (
    /** The CA certificate, PEM: what clients must trust (GET /ca.crt, `p2p-cache ca`). */
    readonly certPem: string,
    private readonly cert: x509.X509Certificate,
    private readonly signingKey: CryptoKey,
    private readonly algorithm: SigningAlgorithm,
    private readonly leafKeys: { pair: CryptoKeyPair, pem: string },
    clock: Clock
  ) {
    this.clock = clock
  }

  /**
   * The operator's CA when its files are given, else the one in CACHE_DIR, made (or made again,
   * with a warning, when its name constraints no longer match the intercept list or it is about
   * to expire) as needed.
   * @throws ConfigError for the operator's files (unreadable, not PEM, not a CA, a key that is not the certificate's)
   */
  static async open (init: ProxyCaInit): Promise<ProxyCa> {
    const clock = init.clock ?? systemClock
    // Both files or neither: loadConfig checked it (a missing key file is then "unreadable").
    const material = init.certFile !== undefined && init.certFile !== ''
      ? await operatorCa(init.certFile, init.keyFile ?? '', init.intercept, init.log)
      : await ownCa(join(init.dir, CA_DIR), init.intercept, clock, init.log)
    const pair = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']) as CryptoKeyPair
    const pem = pkcs8Pem(Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey)))
    return new ProxyCa(material.pem, material.cert, material.key, material.algorithm, { pair, pem }, clock)
  }

  /** The DNS names the CA may certify (its name constraints); undefined = any (an operator's unconstrained CA). */
  get constraints (): string[] | undefined {
    return dnsConstraintsOf(this.cert)
  }

  /**
   * The TLS context for `host`: a leaf certificate for it (subjectAltName, serverAuth), minted on
   * first use and again a day before it ends; concurrent callers share one minting.
   */
  async context (host: string): Promise<SecureContext> {
    const now = this.clock.now()
    let leaf = this.leaves.get(host)
    if (leaf !== undefined) {
      const ready = await leaf.catch(() => undefined)
      if (ready !== undefined && ready.renewAt > now) {
        // Most recently used last: the first entry is the one to drop.
        this.leaves.delete(host)
        this.leaves.set(host, leaf)
        return ready.context
      }
    }
    leaf = this.mint(host)
    this.leaves.delete(host)
    this.leaves.set(host, leaf)
    if (this.leaves.size > LEAF_CACHE_MAX) this.leaves.delete(this.leaves.keys().next().value as string)
    return (await leaf).context
  }

  private async mint (host: string): Promise<Leaf> {
    const now = this.clock.now()
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${host}`,
      issuer: this.cert.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + LEAF_VALIDITY_MS),
      signingKey: this.signingKey,
      publicKey: this.leafKeys.pair.publicKey,
      signingAlgorithm: this.algorithm,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: host }]),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.BasicConstraintsExtension(false),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert)
      ]
    })
    return {
      context: createSecureContext({ key: this.leafKeys.pem, cert: cert.toString('pem') }),
      renewAt: now + LEAF_VALIDITY_MS - 24 * 3600_000
    }
  }
}

interface CaMaterial {
  pem: string
  cert: x509.X509Certificate
  key: CryptoKey
  algorithm: SigningAlgorithm
}

/** The CA in `dir`, made when there is none, when the intercept list changed, or when it ends within 30 days. */
async function ownCa (dir: string, intercept: HostList, clock: Clock, log: Logger): Promise<CaMaterial> {
  const certPath = join(dir, 'ca.crt')
  const keyPath = join(dir, 'ca.key')
  const wanted = intercept.dnsConstraints()
  const existing = await readPair(certPath, keyPath)
  if (existing !== undefined) {
    try {
      const cert = new x509.X509Certificate(existing.cert)
      const has = dnsConstraintsOf(cert) ?? []
      const endsSoon = cert.notAfter.getTime() - clock.now() < 30 * 24 * 3600_000
      if (!endsSoon && has.join() === wanted.join()) {
        const key = createPrivateKey(existing.key)
        return { pem: existing.cert, cert, key: await importSigningKey(key, EC_P256), algorithm: EC_P256 }
      }
      log.warn(
        { dir, had: has, now: wanted, endsSoon },
        endsSoon
          ? 'the proxy CA ends within 30 days: made a new one; install it on the clients again (p2p-cache ca)'
          : 'the proxy intercept list changed: made a new CA constrained to it; install it on the clients again (p2p-cache ca)'
      )
    } catch (err) {
      log.warn(
        { dir, err: (err as Error).message },
        'the proxy CA in CACHE_DIR is unreadable: made a new one; install it on the clients again (p2p-cache ca)'
      )
    }
  }
  const now = clock.now()
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']) as CryptoKeyPair
  const constraints = new NameConstraints({
    permittedSubtrees: new GeneralSubtrees(wanted.map(name => new GeneralSubtree({ base: new GeneralName({ dNSName: name }) })))
  })
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=p2p-cache proxy CA ${randomBytes(4).toString('hex')}, O=p2p-cache`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_VALIDITY_MS),
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      // Critical: a client that can't read the constraints must refuse the CA, not ignore them.
      new x509.Extension(id_ce_nameConstraints, true, AsnConvert.serialize(constraints)),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)
    ]
  })
  const pem = cert.toString('pem') + '\n'
  const keyPem = pkcs8Pem(Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)))
  await mkdir(dir, { recursive: true, mode: 0o700 })
  // The key first, each file whole (a crash leaves the old pair or a key without its certificate, made again).
  await writeAtomic(keyPath, keyPem, 0o600)
  await writeAtomic(certPath, pem, 0o644)
  // The SHA-256 fingerprint as openssl and `p2p-cache diagnose` print it.
  log.info(
    { certificate: certPath, names: wanted, fingerprint256: new X509Certificate(pem).fingerprint256 },
    'made the proxy CA; clients must trust it (GET /ca.crt or p2p-cache ca)'
  )
  return { pem, cert, key: keys.privateKey, algorithm: EC_P256 }
}

/**
 * The operator's CA: a CA certificate and its private key (PEM; EC P-256/P-384 or RSA).
 * @throws ConfigError naming the file and what is wrong with it
 */
async function operatorCa (certFile: string, keyFile: string, intercept: HostList, log: Logger): Promise<CaMaterial> {
  const certText = await readText('CACHE_PROXY_CA_CERT', certFile, 'a PEM CA certificate')
  const keyText = await readText('CACHE_PROXY_CA_KEY', keyFile, 'the PEM private key of CACHE_PROXY_CA_CERT')
  let cert: x509.X509Certificate
  try {
    cert = new x509.X509Certificate(certText)
  } catch (err) {
    throw new ConfigError(
      'CACHE_PROXY_CA_CERT',
      certFile,
      'a PEM CA certificate',
      `file "${certFile}" is not a PEM certificate (${(err as Error).message})`
    )
  }
  const basic = cert.getExtension(x509.BasicConstraintsExtension)
  if (basic?.ca !== true) {
    throw new ConfigError(
      'CACHE_PROXY_CA_CERT',
      certFile,
      'a PEM CA certificate (basicConstraints CA:TRUE)',
      `file "${certFile}" is not a CA certificate`
    )
  }
  let key: KeyObject
  try {
    key = createPrivateKey(keyText)
  } catch (err) {
    throw new ConfigError(
      'CACHE_PROXY_CA_KEY',
      keyFile,
      'the PEM private key of CACHE_PROXY_CA_CERT',
      `file "${keyFile}" is not a PEM private key (${(err as Error).message})`
    )
  }
  const publicOfKey = createPublicKey(key).export({ type: 'spki', format: 'der' })
  const publicOfCert = createPublicKey(certText).export({ type: 'spki', format: 'der' })
  if (!publicOfKey.equals(publicOfCert)) {
    throw new ConfigError(
      'CACHE_PROXY_CA_KEY',
      keyFile,
      'the PEM private key of CACHE_PROXY_CA_CERT',
      `file "${keyFile}" is not the key of the certificate in CACHE_PROXY_CA_CERT`
    )
  }
  const algorithm = algorithmOf(key, keyFile)
  const constraints = dnsConstraintsOf(cert)
  if (constraints !== undefined) {
    const outside = intercept.entries.filter(e => !constraints.some(c => covers(c, e.startsWith('*.') ? e.slice(2) : e)))
    if (outside.length > 0) {
      log.warn(
        { outside, constraints },
        "the proxy CA's name constraints leave out intercepted hosts: clients will refuse their certificates; take them off CACHE_PROXY_INTERCEPT or widen the CA"
      )
    }
  }
  return { pem: certText.endsWith('\n') ? certText : certText + '\n', cert, key: await importSigningKey(key, algorithm), algorithm }
}

/** The WebCrypto signing algorithm of an operator's key. @throws ConfigError for other key types */
function algorithmOf (key: KeyObject, keyFile: string): SigningAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return RSA_SHA256
  const curve = key.asymmetricKeyDetails?.namedCurve
  if (key.asymmetricKeyType === 'ec' && (curve === 'prime256v1' || curve === 'P-256')) return EC_P256
  if (key.asymmetricKeyType === 'ec' && (curve === 'secp384r1' || curve === 'P-384')) {
    return { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' }
  }
  throw new ConfigError(
    'CACHE_PROXY_CA_KEY',
    keyFile,
    'an RSA, EC P-256 or EC P-384 private key',
    `file "${keyFile}" holds a ${key.asymmetricKeyType ?? 'unknown'} key ${curve ?? ''}`.trim()
  )
}

async function importSigningKey (key: KeyObject, algorithm: SigningAlgorithm): Promise<CryptoKey> {
  const der = key.export({ type: 'pkcs8', format: 'der' })
  return await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign'])
}

/** The permitted DNS names of a certificate's name constraints; undefined when it has none. */
function dnsConstraintsOf (cert: x509.X509Certificate): string[] | undefined {
  const ext = cert.getExtension(id_ce_nameConstraints)
  if (ext === null) return undefined
  const parsed = AsnConvert.parse(ext.value, NameConstraints)
  return Array.from(parsed.permittedSubtrees ?? [], s => s.base.dNSName).filter((n): n is string => n !== undefined).sort()
}

/** A DNS name constraint covers the name itself and its subdomains (RFC 5280 4.2.1.10). */
function covers (constraint: string, name: string): boolean {
  const c = constraint.replace(/^\./, '')
  return name === c || name.endsWith(`.${c}`)
}

/** A positive serial number of 16 random bytes (RFC 5280 4.1.2.2: at most 20 octets). */
function serial (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] as number) & 0x7f
  return bytes.toString('hex')
}

function pkcs8Pem (der: Buffer): string {
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END PRIVATE KEY-----\n`
}

async function readPair (certPath: string, keyPath: string): Promise<{ cert: string, key: string } | undefined> {
  try {
    return { cert: await readFile(certPath, 'utf8'), key: await readFile(keyPath, 'utf8') }
  } catch {
    return undefined
  }
}

async function readText (variable: string, path: string, expected: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new ConfigError(
      variable,
      path,
      expected,
      `file "${path}" is unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`
    )
  }
}

async function writeAtomic (path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(tmp, text, { mode })
  await chmod(tmp, mode)
  await rename(tmp, path)
}
