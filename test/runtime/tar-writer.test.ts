import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TarWriter } from '../../agent/runtime';

describe('runtime/tar-writer (read back by GNU tar)', () => {
  const longDir = `deep/${'d'.repeat(90)}/${'e'.repeat(40)}`;
  function sample(): Buffer {
    return new TarWriter(1_700_000_000)
      .directory('tmp', { mode: 0o1777 })
      .directory('bin')
      .file('bin/tool', Buffer.from('#!/bin/sh\necho hi\n'), { mode: 0o755 })
      .symlink('bin/sh', 'tool')
      .file('etc/data', 'x'.repeat(1000), { uid: 65534, gid: 65534 })
      .directory(longDir)
      .file(`${longDir}/leaf.txt`, 'leaf')
      .finish();
  }

  it('writes blocks of 512 bytes with two zero blocks at the end, and the same bytes every time', () => {
    const tar = sample();
    assert.equal(tar.length % 512, 0);
    assert.ok(tar.subarray(tar.length - 1024).every((b) => b === 0));
    assert.deepEqual(sample(), tar);
  });

  it('lists with the names, modes, owners and link targets given', () => {
    const listing = execFileSync('tar', ['-tv', '--numeric-owner', '-f', '-'], { input: sample() }).toString();
    const lines = listing.trim().split('\n');
    assert.equal(lines.length, 7);
    assert.match(lines[0]!, /^drwxrwxrwt 0\/0 +0 .* tmp\/$/);
    assert.match(lines[2]!, /^-rwxr-xr-x 0\/0 +18 .* bin\/tool$/);
    assert.match(lines[3]!, /^lrwxrwxrwx 0\/0 +0 .* bin\/sh -> tool$/);
    assert.match(lines[4]!, /^-rw-r--r-- 65534\/65534 +1000 .* etc\/data$/);
    assert.ok(lines[6]!.endsWith(`${longDir}/leaf.txt`), lines[6]);
  });

  it('extracts to the same tree', () => {
    const dir = mkdtempSync(join(tmpdir(), 'podium-test-tar-'));
    try {
      execFileSync('tar', ['-x', '-p', '-C', dir, '-f', '-'], { input: sample() });
      assert.equal(lstatSync(join(dir, 'tmp')).mode & 0o7777, 0o1777);
      assert.equal(readFileSync(join(dir, 'bin/tool'), 'utf8'), '#!/bin/sh\necho hi\n');
      assert.equal(readlinkSync(join(dir, 'bin/sh')), 'tool');
      assert.equal(readFileSync(join(dir, longDir, 'leaf.txt'), 'utf8'), 'leaf');
      assert.equal(lstatSync(join(dir, 'bin/tool')).mtimeMs, 1_700_000_000_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses names that climb out, duplicates, and entries after finish', () => {
    assert.throws(() => new TarWriter().file('../etc/passwd', 'x'), /bad entry name/);
    assert.throws(() => new TarWriter().file('a', 'x').file('/a', 'y'), /duplicate/);
    const w = new TarWriter();
    w.finish();
    assert.throws(() => w.file('a', 'x'), /finished/);
  });
});
