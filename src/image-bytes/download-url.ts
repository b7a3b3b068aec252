import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { AppError, ErrorSet } from '../common/errors';

/** What a signed service download URL proves: "image `imageId` may be read until `expires` (unix seconds)". */
export interface DownloadGrant {
  imageId: string;
  expires: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The base of signed URLs in the embedded shape when PUBLIC_BASE_URL is not set: the address the HTTP server
 * listens on (never a request's Host header, which a caller chooses). A server bound to every interface
 * (0.0.0.0, ::) is named 127.0.0.1 / localhost; before it listens, HOST and PORT from the configuration.
 */
export function listeningBaseUrl(address: { address: string; port: number } | string | null | undefined, fallback: { host: string; port: number }): string {
  const { host, port } = address && typeof address === 'object' ? { host: address.address, port: address.port } : fallback;
  const name = host === '0.0.0.0' ? '127.0.0.1' : host === '::' || host === '' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  return `http://${name}:${port}`;
}

/**
 * Signs and checks the service's own download URLs (`GET /downloads/{id}?expires=&signature=`), the filesystem
 * store's stand-in for a presigned S3 URL. The signature is HMAC-SHA256 over the image id and the expiry, with a
 * key derived (HKDF) from DOWNLOAD_URL_SECRET or the JWT secret, so every replica signs and checks alike and the
 * key is never the JWT key itself. Anyone holding a valid URL may read the bytes until it expires; nothing else.
 */
export class DownloadUrlSigner {
  private readonly key: Buffer | null;

  constructor(secret: string | undefined) {
    this.key = secret ? Buffer.from(hkdfSync('sha256', secret, 'hcm-image-service', 'download-url-v1', 32)) : null;
  }

  /** The hex signature of a grant. */
  sign(g: DownloadGrant): string {
    if (!this.key) throw new Error('no download URL secret is configured (DOWNLOAD_URL_SECRET or AUTH_JWT_SECRET)');
    return createHmac('sha256', this.key).update(`download\n${g.imageId}\n${g.expires}`).digest('hex');
  }

  /** `<base>/downloads/<id>?expires=<unix>&signature=<hex>` */
  url(base: string, g: DownloadGrant): string {
    return `${base}/downloads/${g.imageId}?expires=${g.expires}&signature=${this.sign(g)}`;
  }

  /**
   * Checks a grant at `now`: DOWNLOAD_URL_INVALID when the signature does not match (checked first, in
   * constant time, so an altered expiry is "invalid", not "expired"), DOWNLOAD_URL_EXPIRED when it is past.
   */
  verify(g: DownloadGrant, signature: string, now = Date.now()): void {
    const expected = Buffer.from(this.key ? this.sign(g) : '', 'hex');
    const given = HEX64.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
    if (!this.key || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new AppError('DOWNLOAD_URL_INVALID', 'The download URL signature does not match; ask for a new launch');
    }
    if (g.expires * 1000 <= now) {
      throw new AppError('DOWNLOAD_URL_EXPIRED', `The download URL expired at ${new Date(g.expires * 1000).toISOString()}`, {
        expiredAt: new Date(g.expires * 1000).toISOString(),
      });
    }
  }
}

/** What checking a signed download URL raises (`DownloadUrlSigner.verify`). */
export const DOWNLOAD_URL_ERRORS: ErrorSet = ['DOWNLOAD_URL_INVALID', 'DOWNLOAD_URL_EXPIRED'];
