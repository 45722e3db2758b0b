// Makes verifiable presentations as a holder's wallet would, with the reference JavaScript
// stack: the holder is a did:key (from a seed), the proof is for authentication and bound
// to the verifier's challenge and domain.
// usage: node present.mjs --seed <64 hex> --challenge <c> [--domain <d>]
//          [--suite eddsa-rdfc-2022|eddsa-jcs-2022] [--documents docs.json] [file.jsonl]
// reads unsigned presentations as JSON lines (stdin when no file), prints signed ones;
// `holder` is set to the did:key.
import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as rdfc} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {createSignCryptosuite} from '@digitalbazaar/eddsa-jcs-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {makeLoader, option, readDocuments, readJsonLines} from './loader.mjs';

const args = process.argv.slice(2);
const seedHex = option(args, '--seed');
const challenge = option(args, '--challenge');
const domain = option(args, '--domain');
const suiteName = option(args, '--suite', 'eddsa-rdfc-2022');
if(!seedHex || !challenge) {
  console.error('--seed and --challenge are required');
  process.exit(2);
}
const documentLoader = makeLoader(readDocuments(option(args, '--documents')));
const positional = args.filter((a, i) => !a.startsWith('--') &&
  !(i > 0 && args[i - 1].startsWith('--')));
const key = await Ed25519Multikey.generate(
  {seed: Uint8Array.from(Buffer.from(seedHex, 'hex'))});
const did = `did:key:${key.publicKeyMultibase}`;
key.controller = did;
key.id = `${did}#${key.publicKeyMultibase}`;

for(const presentation of await readJsonLines(positional[0])) {
  const cryptosuite = suiteName === 'eddsa-jcs-2022' ? createSignCryptosuite() : rdfc;
  const suite = new DataIntegrityProof({signer: key.signer(), cryptosuite});
  const unsigned = {...presentation, holder: did};
  console.log(JSON.stringify(await vc.signPresentation({presentation: unsigned, suite,
    challenge, ...(domain ? {domain} : {}), documentLoader})));
}
