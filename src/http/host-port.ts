/** A TCP listen or connect address: `host` an IP address or name (`0.0.0.0` = all interfaces), `port` 0–65535. */
export interface HostPort {
  host: string
  port: number
}
