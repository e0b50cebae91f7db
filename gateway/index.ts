/**
 * The gateway (the Customer API): REST/JSON in front of the Pod API, in the grpc-gateway style.
 * This is the folder's one door; see README.md for the design.
 */
export { startGateway, type Gateway } from './gateway';
export type { GatewayConfig } from './config';
export { TokenStore, TOKEN_ROLES, type TokenIdentity, type TokenRecord, type TokenRole } from './token-store';
export { httpStatusFromGrpcCode } from './http-status';
