/**
 * `Authorization: Bearer <token>` → the tenant the request acts for. The token itself goes no
 * further than this function: not into logs, errors or metadata.
 */
import { status } from '@grpc/grpc-js';
import { isTenantName, TENANT_NAME_RULE } from '../certs';
import { GatewayError } from './gateway-error';
import type { TokenIdentity, TokenStore } from './token-store';

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The identity behind the request's bearer token; throws GatewayError(UNAUTHENTICATED). */
export async function authenticate(authorization: string | undefined, tokens: TokenStore): Promise<TokenIdentity> {
  const match = authorization === undefined ? null : BEARER.exec(authorization);
  if (!match) {
    throw new GatewayError(status.UNAUTHENTICATED, 'missing bearer token: send "Authorization: Bearer <token>"');
  }
  const identity = await tokens.lookup(match[1]);
  if (!identity) throw new GatewayError(status.UNAUTHENTICATED, 'the bearer token is not valid (unknown or revoked)');
  // Tokens made before tenant names had one rule may name a tenant the Pod API refuses: say so
  // here, rather than forward a call that can only fail with a message about metadata.
  if (!isTenantName(identity.tenant)) {
    throw new GatewayError(
      status.UNAUTHENTICATED,
      `the bearer token was made for a tenant name that is no longer valid (a tenant must be ${TENANT_NAME_RULE}): create a new token`,
    );
  }
  return identity;
}
