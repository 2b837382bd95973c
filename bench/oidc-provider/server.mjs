// A peer provider for side-by-side load runs: the npm oidc-provider package with its
// in-memory adapter, one confidential client for client_credentials and introspection, and
// request logging off (it logs nothing by default). Loopback only.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 4100);
const issuer = `http://127.0.0.1:${port}`;
const jwk = (type, options) => generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-bench-secret-bench-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'api:read',
  }],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    // RFC 9449, for the DPoP-bound client_credentials scenario; its proof replay check lives
    // in this process's memory.
    dPoP: { enabled: true },
    devInteractions: { enabled: false },
  },
  scopes: ['openid', 'api:read'],
  jwks: { keys: [{ ...jwk('rsa', { modulusLength: 2048 }), use: 'sig', alg: 'RS256' }, { ...jwk('ec', { namedCurve: 'P-256' }), use: 'sig', alg: 'ES256' }] },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
