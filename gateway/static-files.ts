/**
 * The hook for the dashboard: files under `staticDir`, for GET and HEAD on any path the API
 * does not own; `/` is `index.html`. No auth here (the dashboard asks for a token and then calls
 * the API like any client). Dot-files and anything outside the directory are never served.
 */
import { createReadStream, promises as fs } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
};

/**
 * Serves `pathname` from `root` if such a file exists; false (nothing written) otherwise.
 * `pathname` is the URL's path, already normalised by the URL parser.
 */
export async function serveStatic(root: string, pathname: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  let relative: string;
  try {
    relative = decodeURIComponent(pathname === '/' ? '/index.html' : pathname);
  } catch {
    return false;
  }
  if (relative.includes('\0') || relative.split('/').some((part) => part.startsWith('.'))) return false;
  const base = path.resolve(root);
  const file = path.resolve(base, `.${relative}`);
  if (file !== base && !file.startsWith(base + path.sep)) return false;
  let stat;
  try {
    // A symbolic link inside the directory must not lead out of it either.
    const real = await fs.realpath(file);
    const realBase = await fs.realpath(base);
    if (!real.startsWith(realBase + path.sep)) return false;
    stat = await fs.stat(real);
  } catch {
    return false;
  }
  if (!stat.isFile()) return false;
  res.writeHead(200, {
    'content-type': CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': stat.size,
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-cache',
  });
  if (req.method === 'HEAD') {
    res.end();
    return true;
  }
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
  return true;
}
