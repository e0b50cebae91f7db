import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { DockerEngine, busyboxRootfs, ensureBusyboxImage, isStaticElf } from '../../agent/runtime';
import { uniquePrefix } from './unique-prefix';
import { sweepStaleTestResources } from './sweep';

describe('runtime/base-image', function () {
  this.timeout(120_000);
  const engine = new DockerEngine({ socketPath: '/var/run/docker.sock' });
  const ref = `${uniquePrefix('image')}/busybox:latest`;

  before(async () => {
    await sweepStaleTestResources(engine, '/var/run/docker.sock');
  });

  after(async () => {
    await engine.removeImage(ref);
  });

  it('the root filesystem holds busybox, a link per applet, passwd, group, a sticky /tmp and /var/www', async () => {
    const listing = execFileSync('tar', ['-tv', '--numeric-owner', '-f', '-'], { input: await busyboxRootfs(), maxBuffer: 1 << 24 }).toString();
    const applets = execFileSync('/bin/busybox', ['--list']).toString().trim().split('\n').filter((a) => a !== 'busybox');
    assert.ok(applets.length > 100);
    assert.match(listing, /^-rwxr-xr-x 0\/0 +\d+ .* bin\/busybox$/m);
    for (const applet of applets) assert.ok(listing.includes(` bin/${applet} -> busybox\n`), `no link for ${applet}`);
    assert.match(listing, /^drwxrwxrwt 0\/0 .* tmp\/$/m);
    assert.match(listing, / var\/www\/$/m);
    assert.match(listing, / etc\/passwd$/m);
    assert.match(listing, / etc\/group$/m);
  });

  it('knows a static binary from a dynamic one', () => {
    assert.equal(isStaticElf(readFileSync('/bin/busybox')), true);
    assert.equal(isStaticElf(readFileSync(process.execPath)), false);
    assert.equal(isStaticElf(Buffer.from('#!/bin/sh\n')), false);
  });

  it('creates the image when missing, then reports it present', async () => {
    assert.equal(await engine.imageExists(ref), false);
    assert.equal(await ensureBusyboxImage(engine, ref), 'created');
    assert.equal(await engine.imageExists(ref), true);
    assert.equal(await ensureBusyboxImage(engine, ref), 'present');
  });
});
