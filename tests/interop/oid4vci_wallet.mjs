// A wallet for microcred's OpenID4VCI tests: the third-party client
// @sphereon/oid4vci-client, unmodified from node_modules, drives the pre-authorized code
// flow against the running backbone with a fresh Ed25519 holder key.
// usage: NODE_EXTRA_CA_CERTS=<devstack ca.pem> node oid4vci_wallet.mjs <offer link> <tx_code>
//          [--key-as jwk|did] [--no-nonce] [--tamper-proof]
// prints one JSON line: {"holder": "did:key:…", "metadata": {…}, "token": {…},
//   "response": {…}} or {"holder", "failed": "token"|"credential", "error": "…"}.
// The client (0.19) reads a nonce only from the token response, as the drafts did;
// OpenID4VCI 1.0 moved it to the nonce endpoint, so the wallet asks that endpoint and hands
// the nonce to the client through its exported state (its public fromState/exportState).
import crypto from 'node:crypto';
import {OpenID4VCIClient} from '@sphereon/oid4vci-client';

const [link, txCode, ...rest] = process.argv.slice(2);
const flag = name => rest.includes(name);
const keyAs = rest.includes('--key-as') ? rest[rest.indexOf('--key-as') + 1] : 'did';

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
function base58(bytes) {
  let n = BigInt('0x' + Buffer.from(bytes).toString('hex'));
  let out = '';
  while(n > 0n) { out = ALPHABET[Number(n % 58n)] + out; n /= 58n; }
  for(const b of bytes) { if(b !== 0) break; out = '1' + out; }
  return out;
}

const {publicKey, privateKey} = crypto.generateKeyPairSync('ed25519');
const jwk = publicKey.export({format: 'jwk'});  // {kty: OKP, crv: Ed25519, x}
const raw = Buffer.from(jwk.x, 'base64url');
const multikey = 'z' + base58(Buffer.concat([Buffer.from([0xed, 0x01]), raw]));
const holder = `did:key:${multikey}`;
const kid = `${holder}#${multikey}`;

async function signCallback(args) {
  const header = Buffer.from(JSON.stringify(args.header)).toString('base64url');
  const payload = Buffer.from(JSON.stringify(args.payload)).toString('base64url');
  const signature = crypto.sign(null, Buffer.from(`${header}.${payload}`), privateKey);
  if(flag('--tamper-proof')) signature[0] ^= 1;
  return `${header}.${payload}.${signature.toString('base64url')}`;
}

function out(value) { process.stdout.write(JSON.stringify({holder, ...value}) + '\n'); }

let client = await OpenID4VCIClient.fromURI({uri: link, retrieveServerMetadata: true});
const metadata = client.endpointMetadata;
let token;
try {
  token = await client.acquireAccessToken({pin: txCode});
} catch(e) {
  out({failed: 'token', error: String(e.message ?? e)});
  process.exit(0);
}
if(!flag('--no-nonce')) {
  const r = await fetch(metadata.credentialIssuerMetadata.nonce_endpoint, {method: 'POST'});
  const {c_nonce} = await r.json();
  const state = JSON.parse(await client.exportState());
  state.accessTokenResponse = {...state.accessTokenResponse, c_nonce};
  client = await OpenID4VCIClient.fromState({state});
}
try {
  const response = await client.acquireCredentials({
    credentialTypes: ['VerifiableCredential', 'OpenBadgeCredential'],
    context: ['https://www.w3.org/ns/credentials/v2',
      'https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json'],
    format: 'ldp_vc', alg: 'EdDSA', proofCallbacks: {signCallback},
    ...(keyAs === 'jwk' ? {jwk: {kty: 'OKP', crv: 'Ed25519', x: jwk.x}} : {kid}),
  });
  out({metadata: metadata.credentialIssuerMetadata, token, response});
} catch(e) {
  out({failed: 'credential', error: String(e.message ?? e)});
}
