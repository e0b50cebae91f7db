/**
 * @peculiar/x509, configured: the Reflect shim is loaded before it and its crypto provider is
 * node's WebCrypto. Every file in certs/ imports the library from here, never directly, so that
 * the order of those two steps cannot be got wrong. Internal to certs/.
 */
import './reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// Node 20's globalThis.crypto is this same object; the cast only bridges node's and the DOM's typings.
x509.cryptoProvider.set(webcrypto as unknown as typeof globalThis.crypto);

export { x509, webcrypto };

/** Key generation and import parameters: every Podium key is ECDSA on P-256. */
export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** Signature algorithm for certificates and CSRs. */
export const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
