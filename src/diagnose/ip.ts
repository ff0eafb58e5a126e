import { isIP } from 'node:net'

function v4 (address: string): number | undefined {
  if (isIP(address) !== 4) return undefined
  return address.split('.').reduce((n, part) => ((n << 8) | Number(part)) >>> 0, 0)
}

/** Whether an IPv4 address is inside `cidr` (a.b.c.d/len); false for anything else. */
export function inSubnet (address: string, cidr: string): boolean {
  const [base, len] = cidr.split('/')
  const a = v4(address)
  const b = v4(base ?? '')
  const bits = Number(len ?? '32')
  if (a === undefined || b === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) return false
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
  return ((a & mask) >>> 0) === ((b & mask) >>> 0)
}

export function isLoopback (address: string): boolean {
  return inSubnet(address, '127.0.0.0/8') || address === '::1'
}

export function isPrivate (address: string): boolean {
  return ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'].some(c => inSubnet(address, c)) || /^f[cd]/i.test(address)
}
