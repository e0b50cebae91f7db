/**
 * Finding 6: the server certificate named only localhost and 127.0.0.1 whatever --listen said, so
 * an agent reaching the Pod API by any other address failed with ERR_TLS_CERT_ALTNAME_INVALID.
 * 127.0.0.2 stands in for "another machine's address": it is not one of the old names.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { serverCertificateNames } from '../../server';
import { startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { ScriptedAgent } from '../support/scripted-agent';

function presentedNames(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      const raw = s.getPeerCertificate().raw;
      s.end();
      resolve(new X509Certificate(raw).subjectAltName ?? '');
    });
    s.on('error', reject);
  });
}

describe('server certificate names', function () {
  this.timeout(30_000);

  it('derives the names from the advertised list, else from the listen address', () => {
    assert.deepEqual(serverCertificateNames('127.0.0.1', []), { dns: ['localhost'], ips: ['127.0.0.1'] });
    assert.deepEqual(serverCertificateNames('0.0.0.0', []), { dns: ['localhost'], ips: ['127.0.0.1'] });
    assert.deepEqual(serverCertificateNames('10.77.0.1', []), { dns: [], ips: ['10.77.0.1'] });
    assert.deepEqual(serverCertificateNames('0.0.0.0', ['pod-api.example', '10.77.0.1', '[fd00::1]']), {
      dns: ['pod-api.example'],
      ips: ['10.77.0.1', 'fd00::1'],
    });
  });

  describe('on a non-loopback-default address', () => {
    let h: PodApiHarness;
    afterEach(async () => h?.close());

    it('names the listen address, so an agent joins through it', async () => {
      h = await startPodApiHarness({ host: '127.0.0.2' });
      assert.match(await presentedNames('127.0.0.2', h.server.port), /IP Address:127\.0\.0\.2/);
      const agent = await ScriptedAgent.join(`127.0.0.2:${h.server.port}`, await h.joinToken());
      agent.connect();
      await agent.welcomed();
      agent.close();
    });

    it('names what --advertise says, and nothing else', async () => {
      h = await startPodApiHarness({ host: '127.0.0.2', advertise: ['pod-api.example', '127.0.0.3'] });
      const san = await presentedNames('127.0.0.2', h.server.port);
      assert.match(san, /DNS:pod-api\.example/);
      assert.match(san, /IP Address:127\.0\.0\.3/);
      assert.doesNotMatch(san, /127\.0\.0\.2|localhost/);
      await assert.rejects(ScriptedAgent.join(`127.0.0.2:${h.server.port}`, await h.joinToken()), /altname|Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME_INVALID|No connection established/i);
    });
  });
});
