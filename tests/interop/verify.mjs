// Verifies credentials with the reference JavaScript stack (@digitalbazaar/vc), including
// Bitstring Status List checking, fully offline.
// usage: node verify.mjs --documents docs.json [--now ISO] [credentials.jsonl]
//   credentials: JSON lines (stdin when no file); docs.json: {url: document} for controller
//   documents, status list credentials and non-npm contexts.
// prints one JSON line per credential:
//   {"verified", "error", "status": {"revocation": bool, ...} | null}
import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as rdfc} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {createVerifyCryptosuite} from '@digitalbazaar/eddsa-jcs-2022-cryptosuite';
import {checkStatus} from '@digitalbazaar/vc-bitstring-status-list';
import {makeLoader, option, readDocuments, readJsonLines} from './loader.mjs';

const args = process.argv.slice(2);
const documentLoader = makeLoader(readDocuments(option(args, '--documents')));
const now = option(args, '--now');
const positional = args.filter((a, i) => !a.startsWith('--') &&
  !(i > 0 && args[i - 1].startsWith('--')));
const suite = [
  new DataIntegrityProof({cryptosuite: rdfc}),
  new DataIntegrityProof({cryptosuite: createVerifyCryptosuite()})
];

function messages(result) {
  const errors = [];
  const collect = (e) => {
    if(!e) {
      return;
    }
    if(Array.isArray(e)) {
      e.forEach(collect);
      return;
    }
    errors.push(e.message || String(e));
    if(e.errors) {
      collect(e.errors);
    }
  };
  collect(result.error);
  for(const r of result.results || []) {
    collect(r.error);
  }
  collect(result.statusResult && result.statusResult.error);
  return [...new Set(errors)].join('; ') || null;
}

for(const credential of await readJsonLines(positional[0])) {
  let out;
  try {
    const result = await vc.verifyCredential({credential, suite, documentLoader, checkStatus,
      ...(now ? {now} : {})});
    const status = result.statusResult && result.statusResult.results ?
      Object.fromEntries(result.statusResult.results.map(
        r => [r.credentialStatus.statusPurpose, r.status])) : null;
    out = {verified: result.verified, error: result.verified ? null : messages(result),
      status};
  } catch(e) {
    out = {verified: false, error: e.message, status: null};
  }
  console.log(JSON.stringify(out));
}
