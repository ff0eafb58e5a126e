/**
 * The data channel: large blob bytes between peers over a direct TLS 1.3 connection (Node's
 * native AES-GCM) instead of the libp2p connection (Noise's ChaCha20-Poly1305 in JS, yamux
 * frames, and pnet's XSalsa20 with a swarm key), which spends several times the CPU per byte.
 * The key is a one-time pre-shared key handed out inside the authenticated fetch exchange, so
 * the channel serves exactly the peers the libp2p connection would.
 */

/** Transfers shorter than this stay on the libp2p stream: a TLS handshake costs more than they do. */
export const DATA_MIN_BYTES = 1024 * 1024
/** An offer not taken up by a TLS connection within this long is dropped (and its upload slot freed). */
export const DATA_OFFER_TTL_MS = 10_000
/** Offers open at once; past this, transfers stay on the libp2p stream. */
export const MAX_DATA_OFFERS = 1024
/** The requester's budget to connect and finish the TLS handshake; past it, libp2p carries the bytes. */
export const DATA_CONNECT_TIMEOUT_MS = 2_000
/** A peer whose data port could not be reached is not tried again for this long. */
export const DATA_UNREACHABLE_MS = 10 * 60_000
/** TLS 1.3 only, AES-GCM first (hardware AES); PSK with (EC)DHE, so past transfers stay secret. */
export const DATA_TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256'
