/**
 * A minimal POSIX ustar writer, in memory, for root filesystems the agent imports into Docker.
 *
 * Why our own and not `tar`: the archive must hold root-owned entries with exact modes (1777 on
 * /tmp) whoever runs the agent, the same bytes on every run (fixed mtime, fixed order), and no
 * temporary tree on disk. A writer for directories, regular files and symbolic links is ~100 lines.
 *
 * Format (POSIX.1-1988 ustar): per entry a 512-byte header, then the data padded to 512 bytes;
 * two zero blocks end the archive. Numeric fields are octal ASCII, NUL-terminated.
 */

const BLOCK = 512;

export interface TarEntryOptions {
  /** Permission bits, including setuid/setgid/sticky (e.g. 0o1777). */
  mode?: number;
  uid?: number;
  gid?: number;
}

export class TarWriter {
  private readonly blocks: Buffer[] = [];
  private readonly names = new Set<string>();
  private finished = false;

  /** `mtime` (seconds since the epoch) of every entry; fixed so the archive is reproducible. */
  constructor(private readonly mtime = 0) {}

  directory(path: string, opts: TarEntryOptions = {}): this {
    return this.entry(path.replace(/\/*$/, '/'), '5', Buffer.alloc(0), '', opts.mode ?? 0o755, opts);
  }

  file(path: string, data: Buffer | string, opts: TarEntryOptions = {}): this {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.entry(path, '0', bytes, '', opts.mode ?? 0o644, opts);
  }

  symlink(path: string, target: string, opts: TarEntryOptions = {}): this {
    if (Buffer.byteLength(target) > 100) throw new Error(`tar: link target too long: ${target}`);
    return this.entry(path, '2', Buffer.alloc(0), target, opts.mode ?? 0o777, opts);
  }

  /** The archive, with its end-of-archive blocks. No entries may be added afterwards. */
  finish(): Buffer {
    if (!this.finished) {
      this.blocks.push(Buffer.alloc(2 * BLOCK));
      this.finished = true;
    }
    return Buffer.concat(this.blocks);
  }

  private entry(path: string, type: string, data: Buffer, link: string, mode: number, opts: TarEntryOptions): this {
    if (this.finished) throw new Error('tar: archive already finished');
    const name = path.replace(/^\/+/, '');
    if (name === '' || name.split('/').includes('..') || /[\0\n]/.test(name)) throw new Error(`tar: bad entry name ${JSON.stringify(path)}`);
    if (this.names.has(name)) throw new Error(`tar: duplicate entry ${name}`);
    this.names.add(name);

    const header = Buffer.alloc(BLOCK);
    const { prefix, base } = splitName(name);
    header.write(base, 0, 100, 'utf8');
    octal(header, 100, 8, mode & 0o7777);
    octal(header, 108, 8, opts.uid ?? 0);
    octal(header, 116, 8, opts.gid ?? 0);
    octal(header, 124, 12, data.length);
    octal(header, 136, 12, this.mtime);
    header.fill(0x20, 148, 156); // checksum field counts as spaces while summing
    header.write(type, 156, 1, 'ascii');
    header.write(link, 157, 100, 'utf8');
    header.write('ustar\0', 257, 6, 'ascii');
    header.write('00', 263, 2, 'ascii');
    header.write((opts.uid ?? 0) === 0 ? 'root' : '', 265, 32, 'ascii');
    header.write((opts.gid ?? 0) === 0 ? 'root' : '', 297, 32, 'ascii');
    header.write(prefix, 345, 155, 'utf8');
    let sum = 0;
    for (const byte of header) sum += byte;
    // Six octal digits, NUL, space: the layout every tar reads.
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');

    this.blocks.push(header);
    if (data.length > 0) {
      this.blocks.push(data);
      const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
      if (pad > 0) this.blocks.push(Buffer.alloc(pad));
    }
    return this;
  }
}

/** ustar names: up to 100 bytes in `name`, longer ones split at a "/" into a prefix of up to 155. */
function splitName(name: string): { prefix: string; base: string } {
  if (Buffer.byteLength(name) <= 100) return { prefix: '', base: name };
  // A directory's trailing "/" belongs to the base; split at an earlier slash.
  for (let i = name.length - 2; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const base = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(base) <= 100 && base !== '') return { prefix, base };
  }
  throw new Error(`tar: name too long for ustar: ${name}`);
}

/** Writes `value` as zero-padded octal filling `width - 1` bytes, then a NUL. */
function octal(buf: Buffer, offset: number, width: number, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= 8 ** (width - 1)) throw new Error(`tar: value ${value} does not fit ${width} bytes`);
  buf.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'ascii');
}
