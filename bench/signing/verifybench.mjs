// Peer yardstick for verification: how fast the reference JavaScript stack
// (@digitalbazaar/vc with @digitalbazaar/vc-bitstring-status-list, as tests/interop/verify.mjs
// runs it) verifies credentials on this machine, one core, offline: the proof, then both
// status entries, each list served from memory (a warm cache: no fetching, but the list's
// own proof is checked, as the library always does).
// usage: node verifybench.mjs documents.json credentials.jsonl
//   (run from a folder whose node_modules and loader.mjs are tests/interop's)
// prints one JSON line: {"peer", "n", "per_cred_ms", "creds_per_s"}
import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as rdfc} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {checkStatus} from '@digitalbazaar/vc-bitstring-status-list';
import {makeLoader, readDocuments, readJsonLines} from './loader.mjs';

const [documentsFile, credentialsFile] = process.argv.slice(2);
const documentLoader = makeLoader(readDocuments(documentsFile));
const credentials = await readJsonLines(credentialsFile);
const suite = new DataIntegrityProof({cryptosuite: rdfc});

async function verify(credential) {
  const result = await vc.verifyCredential({credential, suite, documentLoader, checkStatus});
  if(!result.verified) {
    throw new Error(`did not verify: ${JSON.stringify(result.error || result.statusResult)}`);
  }
}

await verify(credentials[0]);  // warm-up: contexts are processed once per process
const started = performance.now();
for(const credential of credentials) {
  await verify(credential);
}
const seconds = (performance.now() - started) / 1000;
const n = credentials.length;
console.log(JSON.stringify({peer: '@digitalbazaar/vc 7.3.0 + vc-bitstring-status-list 2.0.1',
  n, per_cred_ms: +(seconds / n * 1000).toFixed(3), creds_per_s: Math.round(n / seconds)}));
