// Runs the wallets' verifier, @digitalcredentials/verifier-core (what the Learner
// Credential Wallet and VerifierPlus run), unmodified, on credentials read as JSON lines.
// usage: NODE_EXTRA_CA_CERTS=<devstack ca.pem> node verifier_core.mjs
//          [--schema <url>=<file> ...] [--unreachable <url prefix> ...]
//          [--registries <file.json>] < credentials.jsonl
// prints one JSON line per credential: verifier-core's own result without the credential
// and stack traces: {"errors"?, "log"?, "additionalInformation"?}.
//
// verifier-core resolves did:web, fetches contexts it does not bundle and status lists over
// http(s) itself. This script only decides what the network is: loopback only (the running
// backbone); --unreachable makes URLs under a prefix fail as a dead network would;
// --schema answers a JSON Schema URL from a vendored copy (the OB 3.0 schemas live on
// 1EdTech's site, which CI does not reach). Anything else outside loopback is refused.
import fs from 'node:fs';

function options(name) {
  const args = process.argv.slice(2);
  return args.flatMap((a, i) => (a === name && i + 1 < args.length ? [args[i + 1]] : []));
}

const schemas = new Map(options('--schema').map(pair => {
  const at = pair.indexOf('=');
  return [pair.slice(0, at), fs.readFileSync(pair.slice(at + 1), 'utf8')];
}));
const unreachable = options('--unreachable');
const [registriesFile] = options('--registries');
const knownDIDRegistries = registriesFile ?
  JSON.parse(fs.readFileSync(registriesFile, 'utf8')) : [];
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
export const fetched = [];

const realFetch = globalThis.fetch;
globalThis.fetch = async function guardedFetch(input, init) {
  const url = typeof input === 'string' ? input : (input.url ?? String(input));
  fetched.push(url);
  if(unreachable.some(prefix => url.startsWith(prefix))) {
    throw new TypeError(`fetch failed: ${url} is unreachable (test)`);
  }
  if(schemas.has(url)) {
    return new Response(schemas.get(url), {headers: {'content-type': 'application/json'}});
  }
  if(!LOOPBACK.has(new URL(url).hostname)) {
    throw new TypeError(`fetch failed: ${url} is outside loopback (refused by the test)`);
  }
  return realFetch(input, init);
};

// Imported only now: every request the package makes goes through the guard above.
const {verifyCredential} = await import('@digitalcredentials/verifier-core');

function clean(value) {
  return JSON.parse(JSON.stringify(value, (key, v) =>
    (key === 'stackTrace' || key === 'stack' || key === 'credential' ? undefined : v)));
}

const input = fs.readFileSync(0, 'utf8');
for(const line of input.split('\n').filter(l => l.trim())) {
  const credential = JSON.parse(line);
  const before = fetched.length;
  const result = await verifyCredential({credential, knownDIDRegistries});
  console.log(JSON.stringify({...clean(result), fetched: fetched.slice(before)}));
}
