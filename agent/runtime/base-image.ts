import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { DockerEngine } from './docker-engine';
import { TarWriter } from './tar-writer';

/**
 * The platform's smallest base image, made on the host because no registry is reachable: Debian's
 * statically linked busybox (package busybox-static) with a link per applet in /bin, root and
 * nobody in /etc/passwd and /etc/group, a world-writable sticky /tmp and an empty /var/www (the
 * image's working directory, so `httpd -f -p 8080` serves it rather than "/").
 */

export const BUSYBOX_IMAGE = 'podium/busybox:latest';
export const BUSYBOX_BINARY = '/bin/busybox';

const run = promisify(execFile);

/** Makes sure image `ref` exists on the engine: 'present' when it already did, 'created' when it
 *  was built and imported now. Two agents sharing an engine may both import; the last tag wins and
 *  both images are the same filesystem. */
export async function ensureBusyboxImage(engine: DockerEngine, ref = BUSYBOX_IMAGE): Promise<'present' | 'created'> {
  if (await engine.imageExists(ref)) return 'present';
  const rootfs = await busyboxRootfs();
  await engine.importImage(ref, rootfs, ['WORKDIR /var/www', 'ENV PATH=/bin']);
  if (!(await engine.imageExists(ref))) throw new Error(`import image ${ref}: the engine reported success but has no such image`);
  return 'created';
}

/** The root filesystem as a tar archive, from `busybox` (which must be statically linked: the
 *  image has no C library). Same input, same bytes. */
export async function busyboxRootfs(busybox = BUSYBOX_BINARY): Promise<Buffer> {
  const binary = await readFile(busybox);
  if (!isStaticElf(binary)) throw new Error(`${busybox} is not a statically linked ELF binary: install busybox-static`);
  const { stdout } = await run(busybox, ['--list'], { maxBuffer: 1 << 20 });
  const applets = stdout
    .split('\n')
    .map((name) => name.trim())
    .filter((name) => name !== '' && name !== 'busybox');
  for (const name of applets) if (!/^[A-Za-z0-9_.[\]-]+$/.test(name)) throw new Error(`busybox --list: unexpected applet name ${JSON.stringify(name)}`);

  const tar = new TarWriter();
  tar
    .directory('bin')
    .directory('dev')
    .directory('etc')
    .directory('proc', { mode: 0o555 })
    .directory('root', { mode: 0o700 })
    .directory('sys', { mode: 0o555 })
    .directory('tmp', { mode: 0o1777 })
    .directory('var')
    .directory('var/www');
  tar.file('bin/busybox', binary, { mode: 0o755 });
  for (const name of [...new Set(applets)].sort()) tar.symlink(`bin/${name}`, 'busybox');
  tar.file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  tar.file('etc/group', 'root:x:0:\nnobody:x:65534:\n');
  return tar.finish();
}

/** True for an ELF executable without a PT_INTERP program header (no dynamic loader needed). */
export function isStaticElf(binary: Buffer): boolean {
  if (binary.length < 64 || binary.readUInt32BE(0) !== 0x7f454c46) return false;
  const is64 = binary[4] === 2;
  const little = binary[5] === 1;
  const u16 = (at: number): number => (little ? binary.readUInt16LE(at) : binary.readUInt16BE(at));
  const u32 = (at: number): number => (little ? binary.readUInt32LE(at) : binary.readUInt32BE(at));
  const phoff = is64 ? Number(little ? binary.readBigUInt64LE(32) : binary.readBigUInt64BE(32)) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  const PT_INTERP = 3;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > binary.length) return false;
    if (u32(at) === PT_INTERP) return false;
  }
  return phnum > 0;
}
