import { randomBytes } from 'node:crypto';

/**
 * A random certificate serial number as hex: 16 bytes (128 bits, above the 64 that the CA/Browser
 * baseline asks for) whose first byte is 0x01–0x7f, so the DER INTEGER is positive and exactly
 * 16 bytes long, within RFC 5280's 20-octet limit.
 */
export function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex');
}
