/**
 * One logger per process: JSON lines on stderr, with secrets redacted at the logger so that no
 * code path can print one by accident.
 */
import pino, { type Logger } from 'pino';

export function processLogger(name: string, level = process.env.PODIUM_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      name,
      level,
      redact: {
        paths: ['token', 'joinToken', '*.token', '*.joinToken', 'keyPem', '*.keyPem', 'password', '*.password', 'authorization', '*.authorization', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    pino.destination(2),
  );
}
